//! `Deployment`: moving an alias from one version to another by a strategy,
//! with its configuration, metrics snapshot and state machine.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::duration;
use crate::time;
use crate::validation::ValidationErrors;

/// Deployment strategy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeploymentStrategy {
    /// Deploy all at once (fastest, highest risk).
    #[default]
    AllAtOnce,
    /// Gradual canary deployment with automatic rollback.
    Canary,
    /// Blue-green deployment with instant switch.
    BlueGreen,
    /// Rolling deployment across runner nodes.
    Rolling,
    /// A/B testing deployment (manual promotion).
    ABTesting,
}

/// Deployment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeploymentStatus {
    #[default]
    Pending,
    InProgress,
    Completed,
    Failed,
    RolledBack,
    Cancelled,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident),* }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => stringify!($v)),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $t {
            type Err = String;
            /// Case-insensitive; `-` and `_` are ignored (`all-at-once`).
            fn from_str(s: &str) -> Result<Self, String> {
                let wanted: String = s.chars().filter(|c| *c != '-' && *c != '_').collect();
                Self::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(&wanted)).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown value '{s}' (expected one of {})", names.join(", "))
                })
            }
        }
    };
}

str_enum!(DeploymentStrategy {
    AllAtOnce,
    Canary,
    BlueGreen,
    Rolling,
    ABTesting
});
str_enum!(DeploymentStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    RolledBack,
    Cancelled
});

impl DeploymentStatus {
    /// Pending or InProgress: the deployment still owns its alias.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Pending | DeploymentStatus::InProgress
        )
    }

    pub fn is_terminal(self) -> bool {
        !self.is_active()
    }
}

/// Strategy-specific settings. Durations are seconds on the wire (or strings
/// like `"5m"`); rates and percentages are 0–100; `rollbackOnLatencyP99` is
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct DeploymentConfig {
    pub canary_percentage: Option<f64>,
    #[serde(with = "duration::opt_secs", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub canary_duration: Option<Duration>,
    pub canary_increments: Option<Vec<f64>>,
    #[serde(with = "duration::opt_secs", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub test_duration: Option<Duration>,
    pub keep_blue: Option<bool>,
    /// A fraction of the runner fleet (0 < x ≤ 1) or a whole count of nodes (x ≥ 1).
    pub batch_size: Option<f64>,
    #[serde(with = "duration::opt_secs", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub batch_duration: Option<Duration>,
    /// Percent (0–100) of failed invocations that triggers a rollback.
    pub rollback_on_error_rate: Option<f64>,
    /// Milliseconds of p99 latency that triggers a rollback.
    #[serde(rename = "rollbackOnLatencyP99")]
    pub rollback_on_latency_p99: Option<f64>,
    /// Percent (0–100) of successful invocations below which to roll back.
    pub rollback_on_success_rate: Option<f64>,
    /// HotSwap: how long to keep watching once all traffic is on the target
    /// (any strategy). Defaults to 0, or to 60 s for AllAtOnce with
    /// thresholds, which would otherwise never be checked.
    #[serde(with = "duration::opt_secs", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub bake_duration: Option<Duration>,
    /// HotSwap: invocations of the target a step needs before its metrics
    /// give a verdict (default 10). Fewer is "no verdict yet", never a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_invocations: Option<u64>,
}

fn percent_ok(p: f64) -> bool {
    p.is_finite() && (0.0..=100.0).contains(&p)
}

impl DeploymentConfig {
    /// Checks every given value; strategy-specific settings given to another
    /// strategy are refused, so that a typo'd strategy is not silently
    /// deployed all at once.
    pub fn validate(&self, strategy: DeploymentStrategy) -> ValidationErrors {
        use DeploymentStrategy::*;
        let mut errors = ValidationErrors::new();
        if let Some(p) = self.canary_percentage {
            if !(p.is_finite() && p > 0.0 && p < 100.0) {
                errors.push("CanaryPercentage must be greater than 0 and less than 100");
            }
        }
        if let Some(steps) = &self.canary_increments {
            if steps.is_empty() {
                errors.push("CanaryIncrements must list at least one step");
            } else if steps
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0 && *s <= 100.0))
            {
                errors.push("CanaryIncrements must be percentages greater than 0 and at most 100");
            } else if steps.windows(2).any(|w| w[1] <= w[0]) {
                errors.push("CanaryIncrements must be strictly increasing");
            }
        }
        for (name, d) in [
            ("CanaryDuration", self.canary_duration),
            ("TestDuration", self.test_duration),
            ("BatchDuration", self.batch_duration),
            ("BakeDuration", self.bake_duration),
        ] {
            if d == Some(Duration::ZERO) {
                errors.push(format!("{name} must be greater than 0"));
            } else if d.is_some_and(|d| d > MAX_STEP_DURATION) {
                errors.push(format!("{name} must be at most 30 days"));
            }
        }
        if self.min_invocations == Some(0) {
            errors.push("MinInvocations must be at least 1");
        }
        if let Some(b) = self.batch_size {
            if !(b.is_finite() && b > 0.0 && (b <= 1.0 || b.fract() == 0.0)) {
                errors.push("BatchSize must be a fraction in (0, 1] or a whole number of nodes");
            }
        }
        if let Some(r) = self.rollback_on_error_rate {
            if !percent_ok(r) {
                errors.push("RollbackOnErrorRate must be a percentage 0-100");
            }
        }
        if let Some(r) = self.rollback_on_success_rate {
            if !percent_ok(r) {
                errors.push("RollbackOnSuccessRate must be a percentage 0-100");
            }
        }
        if let Some(ms) = self.rollback_on_latency_p99 {
            if !(ms.is_finite() && ms > 0.0) {
                errors.push("RollbackOnLatencyP99 must be a positive number of milliseconds");
            }
        }
        let canary_set = self.canary_percentage.is_some()
            || self.canary_duration.is_some()
            || self.canary_increments.is_some();
        let blue_green_set = self.test_duration.is_some() || self.keep_blue.is_some();
        let rolling_set = self.batch_size.is_some() || self.batch_duration.is_some();
        if canary_set && !matches!(strategy, Canary | ABTesting) {
            errors.push(format!(
                "Canary settings do not apply to the {strategy} strategy"
            ));
        }
        if self.canary_increments.is_some() && strategy == ABTesting {
            errors.push("CanaryIncrements do not apply to the ABTesting strategy (use CanaryPercentage for the split)");
        }
        if blue_green_set && strategy != BlueGreen {
            errors.push(format!(
                "BlueGreen settings do not apply to the {strategy} strategy"
            ));
        }
        if rolling_set && strategy != Rolling {
            errors.push(format!(
                "Rolling settings do not apply to the {strategy} strategy"
            ));
        }
        errors
    }

    /// The traffic percentages a canary moves through, ending at 100.
    /// `CanaryIncrements` wins; otherwise `CanaryPercentage` (default 10)
    /// then 100.
    pub fn canary_steps(&self) -> Vec<f64> {
        let mut steps = match (&self.canary_increments, self.canary_percentage) {
            (Some(inc), _) if !inc.is_empty() => inc.clone(),
            (_, Some(p)) => vec![p],
            _ => vec![DEFAULT_CANARY_PERCENTAGE],
        };
        if steps.last().copied() != Some(100.0) {
            steps.push(100.0);
        }
        steps
    }
}

pub const DEFAULT_CANARY_PERCENTAGE: f64 = 10.0;
/// The split of an ABTesting deployment when `CanaryPercentage` is not set.
pub const DEFAULT_AB_PERCENTAGE: f64 = 50.0;
pub const DEFAULT_CANARY_DURATION: Duration = Duration::from_secs(300);
pub const DEFAULT_TEST_DURATION: Duration = Duration::from_secs(60);
pub const DEFAULT_BATCH_DURATION: Duration = Duration::from_secs(60);
pub const DEFAULT_ALL_AT_ONCE_BAKE: Duration = Duration::from_secs(60);
pub const DEFAULT_MIN_INVOCATIONS: u64 = 10;
/// Longest step, test or bake a deployment may ask for.
pub const MAX_STEP_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl DeploymentConfig {
    /// Whether any rollback threshold is set (otherwise steps advance on
    /// time alone).
    pub fn has_thresholds(&self) -> bool {
        self.rollback_on_error_rate.is_some()
            || self.rollback_on_latency_p99.is_some()
            || self.rollback_on_success_rate.is_some()
    }

    pub fn min_invocations(&self) -> u64 {
        self.min_invocations
            .unwrap_or(DEFAULT_MIN_INVOCATIONS)
            .max(1)
    }
}

/// Deployment metrics snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeploymentMetrics {
    pub invocation_count: u64,
    pub error_count: u64,
    /// Percent, 0–100.
    pub error_rate: f64,
    /// Milliseconds.
    pub avg_duration: f64,
    /// Milliseconds.
    pub p99_duration: f64,
    pub captured_at: DateTime<Utc>,
    /// HotSwap: percent (0–100) of successful invocations; 0 with none.
    #[serde(default)]
    pub success_rate: f64,
}

impl Default for DeploymentMetrics {
    fn default() -> Self {
        Self {
            invocation_count: 0,
            error_count: 0,
            error_rate: 0.0,
            avg_duration: 0.0,
            p99_duration: 0.0,
            captured_at: time::now(),
            success_rate: 0.0,
        }
    }
}

/// A function deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub deployment_id: String,
    pub function_name: String,
    /// HotSwap: the [`Function::function_id`](crate::Function) of its function.
    #[serde(default)]
    pub function_id: String,
    /// The alias this deployment moves (HotSwap deploys through aliases).
    pub alias_name: String,
    pub target_version: u32,
    pub source_version: Option<u32>,
    pub strategy: DeploymentStrategy,
    pub config: DeploymentConfig,
    pub status: DeploymentStatus,
    /// 0–100.
    pub progress: f64,
    pub current_phase: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deployed_by: String,
    pub error_message: Option<String>,
    pub rollback_reason: Option<String>,
    /// The seed's snapshot: the target version's metrics at the last analysis.
    pub metrics: Option<DeploymentMetrics>,
    /// HotSwap: index of the current step of the strategy's plan.
    #[serde(default)]
    pub step: u32,
    /// HotSwap: when the current step began.
    #[serde(default)]
    pub step_started_at: Option<DateTime<Utc>>,
    /// HotSwap: every step taken, with its time and the traffic split.
    #[serde(default)]
    pub timeline: Vec<DeploymentEvent>,
    /// HotSwap: the source's and the target's metrics side by side (version
    /// → snapshot over the current step).
    #[serde(default)]
    pub version_metrics: BTreeMap<u32, DeploymentMetrics>,
    /// HotSwap: bumped on every stored change; writers compare it so that
    /// the controller and a person's promote/rollback cannot overwrite each
    /// other.
    #[serde(default)]
    pub revision: u64,
    /// HotSwap: for Rolling, the healthy runner nodes when it started, in
    /// the order their batches move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolling_nodes: Vec<String>,
}

/// One entry of a deployment's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEvent {
    pub at: DateTime<Utc>,
    pub phase: String,
    pub message: String,
    /// Version → percent of the alias's traffic after this event.
    pub traffic: BTreeMap<u32, f64>,
    /// The target's metrics when the event happened, if any were measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<DeploymentMetrics>,
}

/// A state change the deployment's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment is {from}; it cannot become {to}")]
pub struct InvalidTransition {
    pub from: DeploymentStatus,
    pub to: DeploymentStatus,
}

impl Deployment {
    pub fn new(
        function_name: impl Into<String>,
        alias_name: impl Into<String>,
        source_version: Option<u32>,
        target_version: u32,
        strategy: DeploymentStrategy,
        config: DeploymentConfig,
        deployed_by: impl Into<String>,
    ) -> Self {
        Self {
            deployment_id: uuid::Uuid::new_v4().to_string(),
            function_name: function_name.into(),
            function_id: String::new(),
            alias_name: alias_name.into(),
            target_version,
            source_version,
            strategy,
            config,
            status: DeploymentStatus::Pending,
            progress: 0.0,
            current_phase: None,
            started_at: time::now(),
            completed_at: None,
            deployed_by: deployed_by.into(),
            error_message: None,
            rollback_reason: None,
            metrics: None,
            step: 0,
            step_started_at: None,
            timeline: Vec::new(),
            version_metrics: BTreeMap::new(),
            revision: 0,
            rolling_nodes: Vec::new(),
        }
    }

    /// Appends a timeline entry.
    pub fn record(
        &mut self,
        phase: impl Into<String>,
        message: impl Into<String>,
        traffic: BTreeMap<u32, f64>,
    ) {
        self.timeline.push(DeploymentEvent {
            at: time::now(),
            phase: phase.into(),
            message: message.into(),
            traffic,
            metrics: self.metrics.clone(),
        });
    }

    /// Whether `to` may follow the current status: Pending → InProgress;
    /// Pending/InProgress → any end state; end states are final.
    pub fn can_transition_to(&self, to: DeploymentStatus) -> bool {
        use DeploymentStatus::*;
        match (self.status, to) {
            (Pending, InProgress) => true,
            (Pending | InProgress, Completed | Failed | RolledBack | Cancelled) => true,
            // A completed deployment can still be rolled back (CanRollback).
            (Completed, RolledBack) => self.can_rollback(),
            _ => false,
        }
    }

    fn transition(&mut self, to: DeploymentStatus) -> Result<(), InvalidTransition> {
        if self.can_transition_to(to) {
            Ok(())
        } else {
            Err(InvalidTransition {
                from: self.status,
                to,
            })
        }
    }

    /// Pending → InProgress.
    pub fn start(&mut self, phase: impl Into<String>) -> Result<(), InvalidTransition> {
        self.transition(DeploymentStatus::InProgress)?;
        self.status = DeploymentStatus::InProgress;
        self.current_phase = Some(phase.into());
        Ok(())
    }

    /// The seed's `CanRollback`: a completed deployment with a source version.
    pub fn can_rollback(&self) -> bool {
        self.status == DeploymentStatus::Completed && self.source_version.is_some()
    }

    /// The seed's `MarkCompleted`.
    pub fn mark_completed(&mut self) {
        self.status = DeploymentStatus::Completed;
        self.progress = 100.0;
        self.completed_at = Some(time::now());
    }

    /// The seed's `MarkFailed`.
    pub fn mark_failed(&mut self, error_message: impl Into<String>) {
        self.status = DeploymentStatus::Failed;
        self.error_message = Some(error_message.into());
        self.completed_at = Some(time::now());
    }

    /// The seed's `MarkRolledBack`.
    pub fn mark_rolled_back(&mut self, reason: impl Into<String>) {
        self.status = DeploymentStatus::RolledBack;
        self.rollback_reason = Some(reason.into());
        self.completed_at = Some(time::now());
    }

    /// Stops a deployment that has not finished.
    pub fn cancel(&mut self, reason: Option<String>) -> Result<(), InvalidTransition> {
        self.transition(DeploymentStatus::Cancelled)?;
        self.status = DeploymentStatus::Cancelled;
        self.error_message = reason;
        self.completed_at = Some(time::now());
        Ok(())
    }

    /// Checked variants of the seed's marks for callers acting on requests.
    pub fn try_mark(
        &mut self,
        to: DeploymentStatus,
        message: &str,
    ) -> Result<(), InvalidTransition> {
        self.transition(to)?;
        match to {
            DeploymentStatus::Completed => self.mark_completed(),
            DeploymentStatus::Failed => self.mark_failed(message),
            DeploymentStatus::RolledBack => self.mark_rolled_back(message),
            DeploymentStatus::Cancelled => self.cancel(Some(message.to_owned()))?,
            DeploymentStatus::InProgress => self.start(message)?,
            DeploymentStatus::Pending => unreachable!("no transition leads to Pending"),
        }
        Ok(())
    }
}

pub mod plan;

#[cfg(test)]
mod tests;
