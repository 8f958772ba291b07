//! The table mapping of each stored domain type. Every field is stored in
//! the column of the same name (see the migrations); how is decided by the
//! field's type: its [`Column`](super::record::Column) impl.

use std::collections::BTreeMap;

use hotswap_domain::deployment::DeploymentMetrics;
use hotswap_domain::runner::{RunnerHealth, RunnerMetrics, RunnerResources};
use hotswap_domain::{
    AsyncInvocation, AsyncStatus, Deployment, DeploymentConfig, DeploymentEvent, DeploymentStatus,
    DeploymentStrategy, Function, FunctionAlias, FunctionVersion, InvocationResult, LayerVersion,
    RunnerNode, Runtime, ScalingConfig, Trigger, TriggerConfig, TriggerType, VersionStatus,
    VpcConfig,
};
use hotswap_domain::{EgressRule, Ipv4Cidr, SecurityGroup, Subnet};

use super::record::{columns, json_columns, named_columns, Record};
use crate::{ApiToken, TokenRole};

named_columns!(
    TokenRole,
    AsyncStatus,
    Runtime,
    VersionStatus,
    TriggerType,
    DeploymentStrategy,
    DeploymentStatus,
);

json_columns!(
    InvocationResult,
    BTreeMap<String, String>,
    BTreeMap<u32, f64>,
    Vec<String>,
    Vec<Runtime>,
    VpcConfig,
    ScalingConfig,
    TriggerConfig,
    RunnerHealth,
    RunnerResources,
    RunnerMetrics,
    DeploymentConfig,
    DeploymentMetrics,
    Vec<DeploymentEvent>,
    BTreeMap<u32, DeploymentMetrics>,
    Vec<EgressRule>,
);

/// A CIDR block is stored as its text, `10.0.0.0/16`.
impl super::record::Column for Ipv4Cidr {
    fn encode(&self, _: &str) -> crate::Result<super::record::Value> {
        Ok(super::record::Value::Text(self.to_string()))
    }
    fn decode(cols: &super::record::Cols<'_>, column: &str) -> crate::Result<Self> {
        cols.parsed(column)
    }
}

impl Record for Function {
    const TABLE: &'static str = "functions";
    const KIND: &'static str = "function";
    const KEY_LEN: usize = 1;
    /// Set by `insert_version` (published version) and `record_invocations`
    /// (counters) only, so that a read-modify-write of the configuration
    /// cannot roll them back.
    const KEEP_ON_UPDATE: &'static [&'static str] =
        &["published_version", "total_invocations", "last_invoked_at"];

    columns! {
        function_id, owner_id, name, description, runtime, handler, memory_size, timeout, environment,
        layers, vpc_config, tags, published_version, created_at, updated_at, total_invocations,
        last_invoked_at, scaling_config, dead_letter_target
    }

    fn describe(&self) -> String {
        format!("'{}'", self.name)
    }
}

impl Record for FunctionVersion {
    const TABLE: &'static str = "versions";
    const KIND: &'static str = "version";
    const KEY_LEN: usize = 2;
    /// Counted by `record_invocations` only (rewriting `$LATEST` keeps it).
    const KEEP_ON_UPDATE: &'static [&'static str] = &["invocation_count"];

    columns! {
        function_id, version, function_name, code_sha256, code_size, code_location, runtime, handler,
        memory_size, timeout, environment, layers, created_at, created_by, description,
        invocation_count, status, vpc_config
    }

    fn describe(&self) -> String {
        format!("{} of function '{}'", self.version, self.function_name)
    }

    fn parent_function(&self) -> Option<&str> {
        Some(&self.function_name)
    }
}

impl Record for FunctionAlias {
    const TABLE: &'static str = "aliases";
    const KIND: &'static str = "alias";
    const KEY_LEN: usize = 2;
    const KEEP_ON_UPDATE: &'static [&'static str] = &["created_at"];

    columns! {
        function_id, alias_name, function_name, version, routing_config, description, created_at,
        updated_at
    }

    fn describe(&self) -> String {
        format!("'{}' of function '{}'", self.alias_name, self.function_name)
    }

    fn parent_function(&self) -> Option<&str> {
        Some(&self.function_name)
    }
}

impl Record for Trigger {
    const TABLE: &'static str = "triggers";
    const KIND: &'static str = "trigger";
    const KEY_LEN: usize = 1;

    columns! {
        trigger_id, function_id, function_name, target_version, trigger_type, is_enabled, config, created_at,
        last_executed_at, execution_count, failure_count, enabled_at
    }

    /// Runs are counted by the store itself (`record_trigger_runs`,
    /// `claim_tick`): enabling or disabling a trigger never overwrites them.
    const KEEP_ON_UPDATE: &'static [&'static str] =
        &["last_executed_at", "execution_count", "failure_count"];

    fn describe(&self) -> String {
        format!("'{}'", self.trigger_id)
    }

    fn parent_function(&self) -> Option<&str> {
        Some(&self.function_name)
    }
}

impl Record for RunnerNode {
    const TABLE: &'static str = "runners";
    const KIND: &'static str = "runner";
    const KEY_LEN: usize = 1;

    columns! {
        node_id, hostname, port, health, resources, active_containers, last_heartbeat,
        started_at, metrics, runtimes, sandbox
    }

    fn describe(&self) -> String {
        format!("'{}'", self.node_id)
    }
}

impl Record for Deployment {
    const TABLE: &'static str = "deployments";
    const KIND: &'static str = "deployment";
    const KEY_LEN: usize = 1;

    columns! {
        deployment_id, function_id, function_name, alias_name, target_version, source_version, strategy,
        config, status, progress, current_phase, started_at, completed_at, deployed_by,
        error_message, rollback_reason, metrics, step, step_started_at, timeline,
        version_metrics, revision, rolling_nodes
    }

    fn describe(&self) -> String {
        format!("'{}'", self.deployment_id)
    }

    fn parent_function(&self) -> Option<&str> {
        Some(&self.function_name)
    }
}

impl Record for AsyncInvocation {
    const TABLE: &'static str = "async_invocations";
    const KIND: &'static str = "async invocation";
    const KEY_LEN: usize = 1;

    columns! {
        request_id, function_name, qualifier, owner_id, payload, content_type, status, attempts,
        max_attempts, next_attempt_at, lease_until, created_at, updated_at, result, executed_version,
        lease_token, dead_letter_request_id, dead_letter_of, function_id, trigger_id
    }

    fn describe(&self) -> String {
        format!("'{}'", self.request_id)
    }
}

impl Record for LayerVersion {
    const TABLE: &'static str = "layer_versions";
    const KIND: &'static str = "layer version";
    const KEY_LEN: usize = 2;

    columns! {
        layer_name, version, description, code_sha256, code_size, code_location, owner_id, created_at
    }

    fn describe(&self) -> String {
        format!("'{}'", self.reference())
    }
}

impl Record for Subnet {
    const TABLE: &'static str = "subnets";
    const KIND: &'static str = "subnet";
    const KEY_LEN: usize = 1;

    columns! {
        subnet_id, subnet_name, cidr, created_at, created_by
    }

    fn describe(&self) -> String {
        format!("'{}'", self.subnet_name)
    }
}

impl Record for SecurityGroup {
    const TABLE: &'static str = "security_groups";
    const KIND: &'static str = "security group";
    const KEY_LEN: usize = 1;
    /// A group never changes hands, and keeps its creation time.
    const KEEP_ON_UPDATE: &'static [&'static str] = &["owner_id", "created_at"];

    columns! {
        security_group_id, group_name, owner_id, egress, created_at, updated_at
    }

    fn describe(&self) -> String {
        format!("'{}'", self.group_name)
    }
}

impl Record for ApiToken {
    const TABLE: &'static str = "api_tokens";
    const KIND: &'static str = "API token";
    const KEY_LEN: usize = 1;

    columns! {
        token_hash, token_id, owner_id, role, name, created_at, expires_at, last_used_at,
        revoked_at
    }

    /// The hash is a credential's fingerprint: keep it out of messages.
    fn describe(&self) -> String {
        format!("'{}' of owner '{}'", self.token_id, self.owner_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::record::{SqlText, Value};

    fn consistent<R: Record>() {
        assert!(
            R::KEY_LEN >= 1 && R::KEY_LEN < R::COLUMNS.len(),
            "{}",
            R::TABLE
        );
        for kept in R::KEEP_ON_UPDATE {
            assert!(
                R::COLUMNS[R::KEY_LEN..].contains(kept),
                "{}.{kept}",
                R::TABLE
            );
        }
    }

    #[test]
    fn mappings_are_consistent() {
        consistent::<Function>();
        consistent::<FunctionVersion>();
        consistent::<FunctionAlias>();
        consistent::<Trigger>();
        consistent::<RunnerNode>();
        consistent::<Deployment>();
        consistent::<ApiToken>();
        consistent::<Subnet>();
        consistent::<SecurityGroup>();
    }

    #[test]
    fn generated_sql() {
        assert_eq!(
            SqlText::insert::<FunctionAlias>(),
            "INSERT INTO aliases (function_id, alias_name, function_name, version, routing_config, \
             description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        assert_eq!(
            SqlText::update::<FunctionAlias>(),
            "UPDATE aliases SET function_name = $1, version = $2, routing_config = $3, \
             description = $4, updated_at = $5 WHERE function_id = $6 AND alias_name = $7"
        );
        assert_eq!(
            SqlText::upsert::<ApiToken>(),
            "INSERT INTO api_tokens (token_hash, token_id, owner_id, role, name, created_at, \
             expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (token_hash) DO UPDATE SET token_id = excluded.token_id, owner_id = \
             excluded.owner_id, role = excluded.role, name = excluded.name, created_at = \
             excluded.created_at, expires_at = excluded.expires_at, last_used_at = \
             excluded.last_used_at, revoked_at = excluded.revoked_at"
        );
        assert_eq!(
            SqlText::select::<ApiToken>(&SqlText::where_key::<ApiToken>()),
            "SELECT token_hash, token_id, owner_id, role, name, created_at, expires_at, \
             last_used_at, revoked_at FROM api_tokens WHERE token_hash = $1"
        );
    }

    #[test]
    fn update_binds_updated_columns_then_the_key() {
        let alias = FunctionAlias::new("f", "prod", 3).of_function("id-f");
        let values = SqlText::update_values::<FunctionAlias>(alias.values().unwrap());
        assert_eq!(values.len(), 7);
        assert!(matches!(values[1], Value::Int(3)));
        assert!(matches!(&values[5], Value::Text(f) if f == "id-f"));
        assert!(matches!(&values[6], Value::Text(a) if a == "prod"));
    }
}
