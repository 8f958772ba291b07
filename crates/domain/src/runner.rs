//! `RunnerNode`: an execution worker, its health, resources and metrics, and
//! the admission rule the router applies.

use std::collections::BTreeMap;

use chrono::Duration as ChronoDuration;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;
use crate::time::{self, Timestamp};
use crate::validation::ValidationErrors;

/// A runner with no heartbeat for longer than this is unhealthy.
pub const HEARTBEAT_TIMEOUT_SECS: i64 = 120;

/// A function runner node (execution worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerNode {
    pub node_id: String,
    pub hostname: String,
    pub port: u16,
    pub health: RunnerHealth,
    pub resources: RunnerResources,
    /// `"{function}:{version}"` → instance (container) ID.
    pub active_containers: BTreeMap<String, String>,
    pub last_heartbeat: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub metrics: RunnerMetrics,
    /// Runtimes this runner can execute (reported at registration).
    #[serde(default)]
    pub runtimes: Vec<Runtime>,
    /// The isolation backend, e.g. `"namespaces+cgroup-v1"` or `"unisolated"`.
    #[serde(default)]
    pub sandbox: Option<String>,
}

/// Runner health information.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RunnerHealth {
    pub is_healthy: bool,
    pub cpu_usage: f64,
    pub memory_usage: f64,
    pub active_containers: u32,
    pub queued_invocations: u32,
}

impl Default for RunnerHealth {
    fn default() -> Self {
        Self {
            is_healthy: true,
            cpu_usage: 0.0,
            memory_usage: 0.0,
            active_containers: 0,
            queued_invocations: 0,
        }
    }
}

/// Runner resource capacity and usage (usage in percent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RunnerResources {
    pub total_cpu_cores: u32,
    #[serde(rename = "totalMemoryMB")]
    pub total_memory_mb: u64,
    pub max_containers: u32,
    pub cpu_usage: f64,
    pub memory_usage: f64,
}

impl Default for RunnerResources {
    fn default() -> Self {
        Self {
            total_cpu_cores: 8,
            total_memory_mb: 16_384,
            max_containers: 100,
            cpu_usage: 0.0,
            memory_usage: 0.0,
        }
    }
}

/// Runner performance metrics (durations in milliseconds).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RunnerMetrics {
    pub total_invocations: u64,
    pub successful_invocations: u64,
    pub failed_invocations: u64,
    pub cold_starts: u64,
    pub avg_invocation_duration: f64,
    pub avg_cold_start_duration: f64,
}

impl RunnerNode {
    pub fn new(node_id: impl Into<String>, hostname: impl Into<String>) -> Self {
        let now = time::now();
        Self {
            node_id: node_id.into(),
            hostname: hostname.into(),
            port: 8080,
            health: RunnerHealth::default(),
            resources: RunnerResources::default(),
            active_containers: BTreeMap::new(),
            last_heartbeat: now,
            started_at: now,
            metrics: RunnerMetrics::default(),
            runtimes: Vec::new(),
            sandbox: None,
        }
    }

    /// Registration rules: a node ID of `[A-Za-z0-9._-]{1,64}`, a hostname,
    /// a port other than 0, usage percentages within 0–100.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.node_id.trim().is_empty() {
            errors.push("NodeId is required");
        } else if self.node_id.len() > 64
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            errors.push("NodeId must be letters, digits, '-', '_' or '.', max 64 characters");
        }
        if self.hostname.trim().is_empty() {
            errors.push("Hostname is required");
        }
        if self.port == 0 {
            errors.push("Port must be 1-65535");
        }
        for (name, v) in [
            ("Resources.CpuUsage", self.resources.cpu_usage),
            ("Resources.MemoryUsage", self.resources.memory_usage),
            ("Health.CpuUsage", self.health.cpu_usage),
            ("Health.MemoryUsage", self.health.memory_usage),
        ] {
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                errors.push(format!("{name} must be a percentage 0-100"));
            }
        }
        errors.into_result()
    }

    /// The seed's `IsHealthy` at time `now`: a heartbeat within the last two
    /// minutes and a healthy self-report.
    pub fn is_healthy_at(&self, now: Timestamp) -> bool {
        if now - self.last_heartbeat > ChronoDuration::seconds(HEARTBEAT_TIMEOUT_SECS) {
            return false;
        }
        self.health.is_healthy
    }

    /// The seed's `IsHealthy`, now.
    pub fn is_healthy(&self) -> bool {
        self.is_healthy_at(time::now())
    }

    /// The seed's `RecordHeartbeat`.
    pub fn record_heartbeat(&mut self) {
        self.record_heartbeat_at(time::now());
    }

    pub fn record_heartbeat_at(&mut self, now: Timestamp) {
        self.last_heartbeat = now;
    }

    /// The seed's `CanAcceptInvocations` at time `now`: healthy, CPU and
    /// memory below 80 %, and room for another container.
    pub fn can_accept_invocations_at(&self, now: Timestamp) -> bool {
        self.is_healthy_at(now)
            && self.resources.cpu_usage < 80.0
            && self.resources.memory_usage < 80.0
            && self.active_containers.len() < self.resources.max_containers as usize
    }

    pub fn can_accept_invocations(&self) -> bool {
        self.can_accept_invocations_at(time::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_seed() {
        let r = RunnerNode::new("runner-1", "10.0.0.5");
        assert_eq!(r.port, 8080);
        assert!(r.health.is_healthy);
        assert_eq!(r.resources.total_cpu_cores, 8);
        assert_eq!(r.resources.total_memory_mb, 16_384);
        assert_eq!(r.resources.max_containers, 100);
        assert_eq!(r.metrics, RunnerMetrics::default());
        assert!(r.validate().is_ok());
    }

    #[test]
    fn heartbeat_window_is_two_minutes() {
        let mut r = RunnerNode::new("r", "h");
        let t0 = r.last_heartbeat;
        assert!(r.is_healthy_at(t0 + ChronoDuration::seconds(120)));
        assert!(!r.is_healthy_at(t0 + ChronoDuration::seconds(121)));
        r.record_heartbeat_at(t0 + ChronoDuration::seconds(200));
        assert!(r.is_healthy_at(t0 + ChronoDuration::seconds(300)));
        r.health.is_healthy = false;
        assert!(!r.is_healthy_at(t0 + ChronoDuration::seconds(200)));
    }

    #[test]
    fn admission() {
        let mut r = RunnerNode::new("r", "h");
        let now = r.last_heartbeat;
        assert!(r.can_accept_invocations_at(now));
        r.resources.cpu_usage = 80.0;
        assert!(!r.can_accept_invocations_at(now));
        r.resources.cpu_usage = 79.9;
        r.resources.memory_usage = 80.0;
        assert!(!r.can_accept_invocations_at(now));
        r.resources.memory_usage = 10.0;
        r.resources.max_containers = 1;
        r.active_containers.insert("f:1".into(), "c1".into());
        assert!(!r.can_accept_invocations_at(now));
        r.resources.max_containers = 2;
        assert!(r.can_accept_invocations_at(now));
        assert!(!r.can_accept_invocations_at(now + ChronoDuration::seconds(121)));
    }

    #[test]
    fn registration_rules() {
        let mut r = RunnerNode::new("", " ");
        r.port = 0;
        r.resources.cpu_usage = 150.0;
        assert_eq!(r.validate().unwrap_err().messages().len(), 4);
        let r = RunnerNode::new("bad id!", "h");
        assert_eq!(r.validate().unwrap_err().messages().len(), 1);
    }

    #[test]
    fn json_names() {
        let v = serde_json::to_value(RunnerNode::new("r", "h")).unwrap();
        assert_eq!(v["resources"]["totalMemoryMB"], 16_384);
        assert_eq!(v["health"]["isHealthy"], true);
        assert!(v.get("lastHeartbeat").is_some() && v.get("activeContainers").is_some());
    }
}
