//! The seed's value objects: `VpcConfig`, `ScalingConfig`, `InvocationResult`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::validation::ValidationErrors;

/// VPC configuration for function execution.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct VpcConfig {
    /// Subnet IDs (for multi-AZ deployment).
    pub subnet_ids: Vec<String>,
    /// Security group IDs.
    pub security_group_ids: Vec<String>,
    /// VPC ID (optional, for validation).
    pub vpc_id: Option<String>,
}

impl VpcConfig {
    pub fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if self.subnet_ids.iter().any(|s| s.trim().is_empty()) {
            errors.push("VpcConfig.SubnetIds must not contain empty IDs");
        }
        if self.security_group_ids.iter().any(|s| s.trim().is_empty()) {
            errors.push("VpcConfig.SecurityGroupIds must not contain empty IDs");
        }
        if !self.security_group_ids.is_empty() && self.subnet_ids.is_empty() {
            errors.push("VpcConfig.SubnetIds is required when SecurityGroupIds are set");
        }
        errors
    }
}

/// Auto-scaling configuration. Durations are seconds on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ScalingConfig {
    pub min_instances: u32,
    pub max_instances: u32,
    pub target_concurrency: u32,
    #[serde(with = "duration::secs")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub scale_up_cooldown: Duration,
    #[serde(with = "duration::secs")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub scale_down_cooldown: Duration,
    pub pre_provisioned_concurrency: u32,
    pub keep_warm_enabled: bool,
    #[serde(with = "duration::secs")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub keep_warm_interval: Duration,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            min_instances: 0,
            max_instances: 100,
            target_concurrency: 10,
            scale_up_cooldown: Duration::from_secs(30),
            scale_down_cooldown: Duration::from_secs(5 * 60),
            pre_provisioned_concurrency: 0,
            keep_warm_enabled: false,
            keep_warm_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// Upper bound on instances of one function version.
pub const MAX_INSTANCES_LIMIT: u32 = 1000;

impl ScalingConfig {
    pub fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if self.max_instances < 1 || self.max_instances > MAX_INSTANCES_LIMIT {
            errors.push(format!(
                "ScalingConfig.MaxInstances must be 1-{MAX_INSTANCES_LIMIT}"
            ));
        }
        if self.min_instances > self.max_instances {
            errors.push("ScalingConfig.MinInstances must not exceed MaxInstances");
        }
        if self.pre_provisioned_concurrency > self.max_instances {
            errors.push("ScalingConfig.PreProvisionedConcurrency must not exceed MaxInstances");
        }
        if self.target_concurrency < 1 {
            errors.push("ScalingConfig.TargetConcurrency must be at least 1");
        }
        if self.keep_warm_enabled && self.keep_warm_interval < Duration::from_secs(1) {
            errors.push("ScalingConfig.KeepWarmInterval must be at least 1 second");
        }
        errors
    }
}

/// Function invocation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct InvocationResult {
    pub success: bool,
    pub status_code: u16,
    pub body: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub execution_time_ms: u32,
    pub billed_duration_ms: u32,
    #[serde(rename = "memoryUsedMB")]
    pub memory_used_mb: u32,
    pub was_cold_start: bool,
    pub error_message: Option<String>,
    pub error_type: Option<String>,
    pub log_stream_name: Option<String>,
    pub request_id: String,
}

impl Default for InvocationResult {
    fn default() -> Self {
        Self {
            success: false,
            status_code: 0,
            body: None,
            headers: BTreeMap::new(),
            execution_time_ms: 0,
            billed_duration_ms: 0,
            memory_used_mb: 0,
            was_cold_start: false,
            error_message: None,
            error_type: None,
            log_stream_name: None,
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Billed duration: the execution time rounded up to the next whole
/// millisecond (and at least 1 ms).
pub fn billed_ms(execution: Duration) -> u32 {
    let micros = execution.as_micros();
    let ms = micros.div_ceil(1000).max(1);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_defaults_match_seed() {
        let s = ScalingConfig::default();
        assert_eq!(s.min_instances, 0);
        assert_eq!(s.max_instances, 100);
        assert_eq!(s.target_concurrency, 10);
        assert_eq!(s.scale_up_cooldown, Duration::from_secs(30));
        assert_eq!(s.scale_down_cooldown, Duration::from_secs(300));
        assert_eq!(s.pre_provisioned_concurrency, 0);
        assert!(!s.keep_warm_enabled);
        assert_eq!(s.keep_warm_interval, Duration::from_secs(300));
        assert!(s.validate().is_empty());
    }

    #[test]
    fn scaling_rules() {
        let s = ScalingConfig {
            min_instances: 5,
            max_instances: 2,
            pre_provisioned_concurrency: 3,
            target_concurrency: 0,
            ..Default::default()
        };
        assert_eq!(s.validate().messages().len(), 3);
        let zero = ScalingConfig {
            max_instances: 0,
            ..Default::default()
        };
        assert_eq!(
            zero.validate().messages()[0],
            "ScalingConfig.MaxInstances must be 1-1000"
        );
    }

    #[test]
    fn scaling_json_is_camel_case_seconds() {
        let s: ScalingConfig =
            serde_json::from_str(r#"{"maxInstances":3,"scaleUpCooldown":"1m"}"#).unwrap();
        assert_eq!(s.max_instances, 3);
        assert_eq!(s.scale_up_cooldown, Duration::from_secs(60));
        assert_eq!(s.target_concurrency, 10);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["scaleDownCooldown"], 300);
        assert!(serde_json::from_str::<ScalingConfig>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn billing_rounds_up_to_the_next_ms() {
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::from_micros(1000)), 1);
        assert_eq!(billed_ms(Duration::from_micros(1001)), 2);
        assert_eq!(billed_ms(Duration::ZERO), 1);
    }

    #[test]
    fn invocation_result_wire_names() {
        let r = InvocationResult::default();
        assert_eq!(r.request_id.len(), 36);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "success",
            "statusCode",
            "body",
            "headers",
            "executionTimeMs",
            "billedDurationMs",
            "memoryUsedMB",
            "wasColdStart",
            "errorMessage",
            "errorType",
            "logStreamName",
            "requestId",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn vpc_rules() {
        let v = VpcConfig {
            security_group_ids: vec!["sg-1".into()],
            ..Default::default()
        };
        assert_eq!(v.validate().messages().len(), 1);
        assert!(VpcConfig::default().validate().is_empty());
    }
}
