//! `FunctionVersion`: an immutable snapshot of a function's code and
//! configuration. Version 0 is `$LATEST`, the mutable working copy.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::function::Function;
use crate::names::LATEST;
use crate::runtime::Runtime;
use crate::time;
use crate::value::VpcConfig;

/// Function version status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VersionStatus {
    #[default]
    Active,
    Deprecated,
    Archived,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Active => "Active",
            VersionStatus::Deprecated => "Deprecated",
            VersionStatus::Archived => "Archived",
        }
    }
}

impl fmt::Display for VersionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VersionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            VersionStatus::Active,
            VersionStatus::Deprecated,
            VersionStatus::Archived,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("unknown version status '{s}' (Active, Deprecated, Archived)"))
    }
}

/// An immutable function version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FunctionVersion {
    pub function_name: String,
    /// HotSwap: the [`Function::function_id`] of the function it belongs to.
    #[serde(default)]
    pub function_id: String,
    /// 1, 2, 3…; 0 is `$LATEST`.
    pub version: u32,
    /// SHA-256 of the code package, lower-case hex.
    pub code_sha256: String,
    pub code_size: u64,
    /// `functions/{functionId}/versions/{version}/code.zip` (versions stored
    /// before function ids existed keep `functions/{functionName}/…`)
    pub code_location: String,
    pub runtime: Runtime,
    pub handler: String,
    pub memory_size: u32,
    pub timeout: u32,
    pub environment: BTreeMap<String, String>,
    pub layers: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub description: Option<String>,
    pub invocation_count: u64,
    pub status: VersionStatus,
    /// HotSwap: the function's `vpcConfig` when this version was published
    /// (for `$LATEST`, the function's current one). Versions stored before
    /// networking existed have none.
    #[serde(default)]
    pub vpc_config: Option<VpcConfig>,
}

/// Where a version's code package lives in the blob store, under the
/// function's id (so two owners' functions of one name, or a function and
/// its re-created namesake, never share a location): published versions at
/// `functions/{id}/versions/{n}/code.zip` (written once), and the mutable
/// `$LATEST` content-addressed at
/// `functions/{id}/versions/latest/{sha256}/code.zip`, so that replacing
/// its code is an atomic switch of the stored pointer, never an overwrite in
/// place that a reader could catch half-done.
pub fn code_location(function_id: &str, version: u32, code_sha256: &str) -> String {
    if version == 0 {
        format!("functions/{function_id}/versions/latest/{code_sha256}/code.zip")
    } else {
        format!("functions/{function_id}/versions/{version}/code.zip")
    }
}

/// `"$LATEST"` for 0, `"v{n}"` otherwise.
pub fn version_string(version: u32) -> String {
    if version == 0 {
        LATEST.to_owned()
    } else {
        format!("v{version}")
    }
}

impl FunctionVersion {
    /// A snapshot of `function`'s configuration with the given code, as
    /// version `version` (0 for `$LATEST`).
    pub fn snapshot(
        function: &Function,
        version: u32,
        code_sha256: impl Into<String>,
        code_size: u64,
        created_by: impl Into<String>,
        description: Option<String>,
    ) -> Self {
        let code_sha256 = code_sha256.into();
        Self {
            function_name: function.name.clone(),
            function_id: function.function_id.clone(),
            version,
            code_location: code_location(&function.function_id, version, &code_sha256),
            code_sha256,
            code_size,
            runtime: function.runtime,
            handler: function.handler.clone(),
            memory_size: function.memory_size,
            timeout: function.timeout,
            environment: function.environment.clone(),
            layers: function.layers.clone(),
            created_at: time::now(),
            created_by: created_by.into(),
            description,
            invocation_count: 0,
            status: VersionStatus::Active,
            vpc_config: function.vpc_config.clone(),
        }
    }

    /// The seed's `VersionString`: `"$LATEST"` for 0, `"v{n}"` otherwise.
    pub fn version_string(&self) -> String {
        version_string(self.version)
    }

    /// The seed's `CanDelete`: an Active version that has served invocations
    /// must be deprecated or archived first. (Aliases pointing at a version
    /// are checked by the service, which knows them.)
    pub fn can_delete(&self) -> bool {
        self.status != VersionStatus::Active || self.invocation_count == 0
    }

    pub fn is_latest(&self) -> bool {
        self.version == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u32) -> FunctionVersion {
        let f = Function::new("f", Runtime::Node20, "index.handler", "o");
        FunctionVersion::snapshot(&f, n, "ab", 10, "o", None)
    }

    #[test]
    fn version_strings() {
        assert_eq!(v(0).version_string(), "$LATEST");
        assert_eq!(v(1).version_string(), "v1");
        assert_eq!(v(42).version_string(), "v42");
    }

    #[test]
    fn code_locations() {
        // Under the function's id, never its name alone.
        let (three, latest) = (v(3), v(0));
        assert!(!three.function_id.is_empty());
        assert_eq!(
            three.code_location,
            format!("functions/{}/versions/3/code.zip", three.function_id)
        );
        assert_eq!(
            latest.code_location,
            format!(
                "functions/{}/versions/latest/ab/code.zip",
                latest.function_id
            )
        );
    }

    #[test]
    fn can_delete_rules() {
        let mut x = v(1);
        assert!(x.can_delete(), "active, never invoked");
        x.invocation_count = 1;
        assert!(!x.can_delete(), "active and invoked");
        x.status = VersionStatus::Deprecated;
        assert!(x.can_delete());
        x.status = VersionStatus::Archived;
        assert!(x.can_delete());
    }

    #[test]
    fn snapshot_copies_configuration() {
        let mut f = Function::new("f", Runtime::Python311, "app.handler", "o");
        f.memory_size = 512;
        f.environment.insert("A".into(), "1".into());
        f.layers.push("deps".into());
        f.vpc_config = Some(VpcConfig {
            subnet_ids: vec!["subnet-1".into()],
            ..Default::default()
        });
        let s = FunctionVersion::snapshot(&f, 2, "cafe", 99, "alice", Some("d".into()));
        assert_eq!(s.vpc_config, f.vpc_config);
        assert_eq!(s.memory_size, 512);
        assert_eq!(s.environment["A"], "1");
        assert_eq!(s.layers, vec!["deps"]);
        assert_eq!(s.created_by, "alice");
        assert_eq!(s.status, VersionStatus::Active);
        assert_eq!(s.invocation_count, 0);
    }

    #[test]
    fn versions_without_vpc_config_still_load() {
        let original = v(1);
        let mut json = serde_json::to_value(&original).unwrap();
        assert_eq!(json["vpcConfig"], serde_json::Value::Null);
        json.as_object_mut().unwrap().remove("vpcConfig");
        let back: FunctionVersion = serde_json::from_value(json).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn status_parse() {
        assert_eq!(
            "deprecated".parse::<VersionStatus>().unwrap(),
            VersionStatus::Deprecated
        );
        assert!("gone".parse::<VersionStatus>().is_err());
    }
}
