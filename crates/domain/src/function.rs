//! `Function`: a serverless function definition.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::is_valid_function_name;
use crate::runtime::Runtime;
use crate::time;
use crate::validation::ValidationErrors;
use crate::value::{ScalingConfig, VpcConfig};

pub const MIN_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 10_240;
pub const MEMORY_STEP_MB: u32 = 64;
pub const MIN_TIMEOUT_S: u32 = 1;
pub const MAX_TIMEOUT_S: u32 = 900;
pub const MAX_LAYERS: usize = 5;
pub const MAX_ENV_BYTES: usize = 4096;
pub const DEFAULT_MEMORY_MB: u32 = 256;
pub const DEFAULT_TIMEOUT_S: u32 = 30;
/// Memory at which a function gets one whole vCPU.
pub const MB_PER_VCPU: f64 = 1792.0;

/// A serverless function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Function {
    /// HotSwap: the function's identity, a UUID v4 given at create and never
    /// shared by another function (a function deleted and created again
    /// under the same name gets a new one). Instances, logs and metrics are
    /// keyed by it, never by the name alone.
    #[serde(default)]
    pub function_id: String,
    /// Function name (alphanumeric, dashes, max 64 chars), unique per owner.
    pub name: String,
    pub description: Option<String>,
    pub runtime: Runtime,
    /// Handler, e.g. `index.handler`; format varies by runtime.
    pub handler: String,
    /// Memory in MB: 128–10240 in 64 MB steps.
    pub memory_size: u32,
    /// Timeout in seconds: 1–900.
    pub timeout: u32,
    pub environment: BTreeMap<String, String>,
    /// Attached layer names (max 5), unpacked in order into `/opt`.
    pub layers: Vec<String>,
    pub vpc_config: Option<VpcConfig>,
    pub tags: BTreeMap<String, String>,
    /// Newest published version (`"v5"`), or `None` before the first publish.
    pub published_version: Option<String>,
    pub owner_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub total_invocations: u64,
    pub last_invoked_at: Option<DateTime<Utc>>,
    pub scaling_config: ScalingConfig,
    /// `function[:qualifier]` that receives an asynchronous invocation of
    /// this function once its attempts are exhausted (a
    /// [`DeadLetterTarget`](crate::DeadLetterTarget)).
    #[serde(default)]
    pub dead_letter_target: Option<String>,
}

impl Function {
    /// A function with the seed's defaults for everything not given.
    pub fn new(
        name: impl Into<String>,
        runtime: Runtime,
        handler: impl Into<String>,
        owner_id: impl Into<String>,
    ) -> Self {
        let now = time::now();
        Self {
            function_id: uuid::Uuid::new_v4().to_string(),
            name: name.into(),
            description: None,
            runtime,
            handler: handler.into(),
            memory_size: DEFAULT_MEMORY_MB,
            timeout: DEFAULT_TIMEOUT_S,
            environment: BTreeMap::new(),
            layers: Vec::new(),
            vpc_config: None,
            tags: BTreeMap::new(),
            published_version: None,
            owner_id: owner_id.into(),
            created_at: now,
            updated_at: now,
            total_invocations: 0,
            last_invoked_at: None,
            scaling_config: ScalingConfig::default(),
            dead_letter_target: None,
        }
    }

    /// The seed's `IsValid`: every rule that fails, with the seed's messages,
    /// followed by the checks of the nested value objects.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.name.trim().is_empty() {
            errors.push("Name is required");
        } else if !is_valid_function_name(&self.name) {
            errors.push("Name must be alphanumeric with dashes, max 64 characters");
        }
        if self.handler.trim().is_empty() {
            errors.push("Handler is required");
        }
        if !is_valid_memory_size(self.memory_size) {
            errors.push("MemorySize must be 128-10240 MB in 64 MB increments");
        }
        if !(MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&self.timeout) {
            errors.push("Timeout must be 1-900 seconds");
        }
        if self.layers.len() > MAX_LAYERS {
            errors.push("Maximum 5 layers allowed");
        }
        if environment_size(&self.environment) > MAX_ENV_BYTES {
            errors.push("Environment variables exceed 4 KB limit");
        }
        if self.environment.keys().any(|k| !is_valid_env_key(k)) {
            errors.push("Environment variable names must start with a letter and hold only letters, digits and '_'");
        }
        for layer in &self.layers {
            if let Err(e) = crate::layer::LayerRef::parse(layer) {
                errors.push(e);
            }
        }
        if (1..self.layers.len()).any(|i| {
            let name = |l: &str| l.split(':').next().unwrap_or_default().to_owned();
            self.layers[..i]
                .iter()
                .any(|earlier| name(earlier) == name(&self.layers[i]))
        }) {
            errors.push("A layer may be attached only once");
        }
        if let Some(vpc) = &self.vpc_config {
            errors.extend(vpc.validate());
        }
        errors.extend(self.scaling_config.validate());
        if let Some(target) = &self.dead_letter_target {
            match target.parse::<crate::DeadLetterTarget>() {
                Err(e) => errors.push(e.to_string()),
                Ok(t) if t.function == self.name => {
                    errors.push("DeadLetterTarget must name another function, not this one")
                }
                Ok(_) => {}
            }
        }
        errors.into_result()
    }

    /// The seed's `IsValid` as a boolean.
    pub fn is_valid(&self) -> bool {
        self.validate().is_ok()
    }

    /// vCPU share: 1 vCPU at 1,792 MB, proportional below and above.
    pub fn cpu_allocation(&self) -> f64 {
        f64::from(self.memory_size) / MB_PER_VCPU
    }
}

pub fn is_valid_memory_size(mb: u32) -> bool {
    (MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb) && mb.is_multiple_of(MEMORY_STEP_MB)
}

/// The seed's measure: the sum of key and value lengths (here in bytes).
pub fn environment_size(env: &BTreeMap<String, String>) -> usize {
    env.iter().map(|(k, v)| k.len() + v.len()).sum()
}

fn is_valid_env_key(k: &str) -> bool {
    let mut bytes = k.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests;
