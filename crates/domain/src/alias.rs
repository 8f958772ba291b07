//! `FunctionAlias`: a mutable pointer to one version, optionally splitting
//! traffic across several by weight.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::validate_alias_name;
use crate::time;
use crate::validation::ValidationErrors;

/// A function alias (mutable pointer to versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FunctionAlias {
    pub function_name: String,
    /// HotSwap: the [`Function::function_id`](crate::Function) of its function.
    #[serde(default)]
    pub function_id: String,
    pub alias_name: String,
    /// Primary version this alias points to.
    pub version: u32,
    /// Version → traffic percentage, e.g. `{ "5": 90, "6": 10 }`. Empty means
    /// all traffic to `version`. A remainder below 100 goes to `version`.
    pub routing_config: BTreeMap<u32, f64>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FunctionAlias {
    pub fn new(
        function_name: impl Into<String>,
        alias_name: impl Into<String>,
        version: u32,
    ) -> Self {
        let now = time::now();
        Self {
            function_name: function_name.into(),
            function_id: String::new(),
            alias_name: alias_name.into(),
            version,
            routing_config: BTreeMap::new(),
            description: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The same alias, belonging to the function with this id.
    pub fn of_function(mut self, function_id: impl Into<String>) -> Self {
        self.function_id = function_id.into();
        self
    }

    /// Points the alias at `new_version` and clears any weighted routing.
    pub fn update_version(&mut self, new_version: u32) {
        self.version = new_version;
        self.routing_config.clear();
        self.updated_at = time::now();
    }

    /// Splits traffic: `100 - canary_percentage` to `primary_version`,
    /// `canary_percentage` to `canary_version`.
    pub fn set_weighted_routing(
        &mut self,
        primary_version: u32,
        canary_version: u32,
        canary_percentage: f64,
    ) {
        self.version = primary_version;
        self.routing_config = BTreeMap::from([
            (primary_version, 100.0 - canary_percentage),
            (canary_version, canary_percentage),
        ]);
        self.updated_at = time::now();
    }

    /// The version that a request drawing `random_value` (uniform in
    /// `[0, 1)`) goes to: cumulative weights in ascending version order, and
    /// the primary version for whatever the weights leave over. Versions with
    /// a weight of 0 never receive traffic (the seed's `<=` would send a draw
    /// of exactly 0 to a 0-weight first entry).
    pub fn route_version(&self, random_value: f64) -> u32 {
        if self.routing_config.is_empty() {
            return self.version;
        }
        let point = random_value * 100.0;
        let mut cumulative = 0.0;
        for (&version, &percentage) in &self.routing_config {
            if percentage <= 0.0 {
                continue;
            }
            cumulative += percentage;
            if point <= cumulative {
                return version;
            }
        }
        self.version
    }

    /// Version → percent of traffic: the weights, or all of it on `version`.
    pub fn traffic(&self) -> BTreeMap<u32, f64> {
        if self.routing_config.is_empty() {
            BTreeMap::from([(self.version, 100.0)])
        } else {
            self.routing_config.clone()
        }
    }

    /// Every version that can receive traffic through this alias.
    pub fn referenced_versions(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.version).chain(self.routing_config.keys().copied())
    }

    pub fn references(&self, version: u32) -> bool {
        self.referenced_versions().any(|v| v == version)
    }

    /// Checks the name and the routing weights. `version_exists` tells
    /// whether a published version exists; the alias must name only those.
    pub fn validate(&self, version_exists: impl Fn(u32) -> bool) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Err(e) = validate_alias_name(&self.alias_name) {
            errors.push(e);
        }
        if self.version == 0 {
            errors.push("Version must be a published version number (1 or more); aliases cannot point at $LATEST");
        } else if !version_exists(self.version) {
            errors.push(format!("Version {} does not exist", self.version));
        }
        errors.extend(validate_routing(&self.routing_config, &version_exists));
        errors.into_result()
    }
}

/// The weight rules: each weight 0–100 and finite, total at most 100, each
/// version a published one.
pub fn validate_routing(
    routing: &BTreeMap<u32, f64>,
    version_exists: impl Fn(u32) -> bool,
) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    for (&version, &weight) in routing {
        if !weight.is_finite() || weight < 0.0 {
            errors.push(format!(
                "RoutingConfig weight for version {version} must not be negative"
            ));
        } else if weight > 100.0 {
            errors.push(format!(
                "RoutingConfig weight for version {version} must be at most 100"
            ));
        }
        if version == 0 {
            errors.push("RoutingConfig cannot route to $LATEST (version 0)");
        } else if !version_exists(version) {
            errors.push(format!(
                "RoutingConfig names version {version}, which does not exist"
            ));
        }
    }
    let total: f64 = routing.values().filter(|w| w.is_finite()).sum();
    if total > 100.0 + 1e-9 {
        errors.push(format!(
            "RoutingConfig weights sum to {total}, more than 100"
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_the_weights_or_all_on_the_primary() {
        let mut a = FunctionAlias::new("f", "prod", 3);
        assert_eq!(a.traffic(), BTreeMap::from([(3, 100.0)]));
        a.set_weighted_routing(3, 4, 25.0);
        assert_eq!(a.traffic(), BTreeMap::from([(3, 75.0), (4, 25.0)]));
    }

    #[test]
    fn update_version_clears_routing() {
        let mut a = FunctionAlias::new("f", "prod", 1);
        a.set_weighted_routing(1, 2, 10.0);
        a.update_version(2);
        assert_eq!(a.version, 2);
        assert!(a.routing_config.is_empty());
    }

    #[test]
    fn weighted_routing_follows_weights() {
        let mut a = FunctionAlias::new("f", "prod", 5);
        a.set_weighted_routing(5, 6, 10.0);
        assert_eq!(a.routing_config[&5], 90.0);
        assert_eq!(a.routing_config[&6], 10.0);
        assert_eq!(a.route_version(0.0), 5);
        assert_eq!(a.route_version(0.9), 5);
        assert_eq!(a.route_version(0.9001), 6);
        assert_eq!(a.route_version(0.999), 6);
        let to_six = (0..10_000)
            .filter(|i| a.route_version(f64::from(*i) / 10_000.0) == 6)
            .count();
        assert_eq!(to_six, 999, "≈10% of uniform draws reach v6");
    }

    #[test]
    fn zero_weight_never_routes_and_remainder_goes_to_primary() {
        let mut a = FunctionAlias::new("f", "prod", 2);
        a.routing_config = BTreeMap::from([(1, 0.0), (2, 50.0)]);
        assert_eq!(a.route_version(0.0), 2);
        a.version = 3;
        a.routing_config = BTreeMap::from([(1, 20.0)]);
        assert_eq!(a.route_version(0.1), 1);
        assert_eq!(a.route_version(0.5), 3);
        assert_eq!(FunctionAlias::new("f", "x", 7).route_version(0.3), 7);
    }

    #[test]
    fn weight_validation() {
        let exists = |v: u32| v <= 3;
        let bad = BTreeMap::from([(1, -1.0)]);
        assert_eq!(
            validate_routing(&bad, exists).messages(),
            ["RoutingConfig weight for version 1 must not be negative"]
        );
        let over = BTreeMap::from([(1, 60.0), (2, 40.5)]);
        assert_eq!(
            validate_routing(&over, exists).messages(),
            ["RoutingConfig weights sum to 100.5, more than 100"]
        );
        let exact = BTreeMap::from([(1, 60.0), (2, 40.0)]);
        assert!(validate_routing(&exact, exists).is_empty());
        let missing = BTreeMap::from([(9, 10.0)]);
        assert_eq!(
            validate_routing(&missing, exists).messages(),
            ["RoutingConfig names version 9, which does not exist"]
        );
        let nan = BTreeMap::from([(1, f64::NAN)]);
        assert_eq!(validate_routing(&nan, exists).messages().len(), 1);
    }

    #[test]
    fn alias_validation() {
        let a = FunctionAlias::new("f", "prod", 4);
        assert_eq!(
            a.validate(|v| v < 4).unwrap_err().messages(),
            ["Version 4 does not exist"]
        );
        let a = FunctionAlias::new("f", "12", 0);
        assert_eq!(a.validate(|_| true).unwrap_err().messages().len(), 2);
        assert!(FunctionAlias::new("f", "prod", 1)
            .validate(|_| true)
            .is_ok());
    }

    #[test]
    fn references() {
        let mut a = FunctionAlias::new("f", "prod", 1);
        a.set_weighted_routing(1, 2, 10.0);
        assert!(a.references(1) && a.references(2) && !a.references(3));
    }

    #[test]
    fn routing_json_keys_are_strings() {
        let mut a = FunctionAlias::new("f", "prod", 5);
        a.set_weighted_routing(5, 6, 10.0);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["routingConfig"]["6"], 10.0);
        assert_eq!(v["aliasName"], "prod");
        let back: FunctionAlias = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }
}
