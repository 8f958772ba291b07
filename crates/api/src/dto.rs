//! Request and response bodies of the API (camelCase, unknown fields
//! refused). Domain types are used as they are where the wire shape is the
//! seed's; these are the shapes the seed does not define.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use hotswap_domain::{
    AsyncStatus, DeploymentConfig, DeploymentStrategy, FunctionVersion, InvocationResult,
    RunnerHealth, RunnerMetrics, RunnerNode, RunnerResources, Runtime, ScalingConfig,
    TriggerConfig, TriggerType, VersionStatus, VpcConfig,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Distinguishes an absent field (`None`) from an explicit `null`
/// (`Some(None)`), for settings that can be cleared.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A code package, base64-encoded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeInput {
    /// The zip file, base64 (standard alphabet, padding optional).
    pub zip_file: String,
}

impl CodeInput {
    pub fn decode(&self) -> Result<Bytes, ApiError> {
        let text: String = self
            .zip_file
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.as_bytes()))
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("code.zipFile is not valid base64: {e}")))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFunctionRequest {
    pub name: String,
    pub runtime: Runtime,
    pub handler: String,
    pub description: Option<String>,
    pub memory_size: Option<u32>,
    pub timeout: Option<u32>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub layers: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub vpc_config: Option<VpcConfig>,
    pub scaling_config: Option<ScalingConfig>,
    /// `function[:qualifier]` (same owner) that receives an asynchronous
    /// invocation of this one, in Lambda's destination-record shape, once
    /// its attempts are exhausted.
    pub dead_letter_target: Option<String>,
    /// Required in a JSON request; in a multipart request the code comes as
    /// the `code` part instead.
    pub code: Option<CodeInput>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateFunctionRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub runtime: Option<Runtime>,
    pub handler: Option<String>,
    pub memory_size: Option<u32>,
    pub timeout: Option<u32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub layers: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<VpcConfig>)]
    pub vpc_config: Option<Option<VpcConfig>>,
    pub scaling_config: Option<ScalingConfig>,
    /// `function[:qualifier]`; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub dead_letter_target: Option<Option<String>>,
}

/// A version with its `versionString` (the seed's computed property).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionResponse {
    #[serde(flatten)]
    pub version: FunctionVersion,
    /// `"$LATEST"` or `"v{n}"`.
    pub version_string: String,
}

impl From<FunctionVersion> for VersionResponse {
    fn from(version: FunctionVersion) -> Self {
        Self {
            version_string: version.version_string(),
            version,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishVersionRequest {
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateVersionRequest {
    pub status: VersionStatus,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAliasRequest {
    pub alias_name: String,
    pub version: u32,
    /// Version → percent of traffic, e.g. `{ "5": 90, "6": 10 }`.
    #[serde(default)]
    pub routing_config: BTreeMap<u32, f64>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAliasRequest {
    /// Moves the alias; without `routingConfig` this clears the weights.
    pub version: Option<u32>,
    /// Replaces the weights; `{}` clears them.
    pub routing_config: Option<BTreeMap<u32, f64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTriggerRequest {
    pub function_name: String,
    /// The function's owner (admins binding another owner's function;
    /// default: the caller's own). Function names are unique per owner.
    pub owner_id: Option<String>,
    /// `$LATEST` (default), a version number or an alias name.
    pub target_version: Option<String>,
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    pub is_enabled: Option<bool>,
    #[serde(default)]
    pub config: TriggerConfig,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTriggerRequest {
    pub is_enabled: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRunnerRequest {
    pub node_id: String,
    pub hostname: String,
    pub port: Option<u16>,
    pub health: Option<RunnerHealth>,
    pub resources: Option<RunnerResources>,
    pub metrics: Option<RunnerMetrics>,
    pub active_containers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub runtimes: Vec<Runtime>,
    pub sandbox: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub health: Option<RunnerHealth>,
    pub resources: Option<RunnerResources>,
    pub metrics: Option<RunnerMetrics>,
    pub active_containers: Option<BTreeMap<String, String>>,
}

/// A runner with the seed's rules evaluated at the time of the response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerResponse {
    #[serde(flatten)]
    pub runner: RunnerNode,
    /// `IsHealthy()`: heartbeat within 2 minutes and a healthy self-report.
    pub healthy: bool,
    /// `CanAcceptInvocations()`.
    pub can_accept_invocations: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    pub alias_name: String,
    pub target_version: u32,
    #[serde(default)]
    pub strategy: DeploymentStrategy,
    #[serde(default)]
    pub config: DeploymentConfig,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelDeploymentRequest {
    pub reason: Option<String>,
}

/// Why a deployment is rolled back (recorded as its `rollbackReason`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackDeploymentRequest {
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub owner_id: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The secret; shown once, stored only as a hash.
    pub token: String,
    pub owner_id: String,
    pub admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmIResponse {
    pub owner_id: String,
    pub admin: bool,
}

/// The stored result of an asynchronous invocation: its InvocationResult,
/// and the dead letter queued when it finally failed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredResult {
    #[serde(flatten)]
    pub result: InvocationResult,
    /// Request id of the dead letter (`GET /v1/invocations/{it}`), when the
    /// function has a `deadLetterTarget` and every attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_request_id: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `nextToken` for the next page; `null` on the last.
    pub next_token: Option<String>,
}

/// A page the store cut (keyset paging) goes out as is.
impl<T> From<hotswap_store::Page<T>> for Page<T> {
    fn from(p: hotswap_store::Page<T>) -> Self {
        Page {
            items: p.items,
            next_token: p.next_token,
        }
    }
}

impl<T> Page<T> {
    /// One page of an in-memory listing: `nextToken` is the offset of the
    /// next item.
    pub fn of(
        items: Vec<T>,
        limit: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<Self, ApiError> {
        let limit = check_limit(limit)? as usize;
        let start = match next_token.filter(|t| !t.is_empty()) {
            Some(t) => t
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid nextToken '{t}'")))?,
            None => 0,
        };
        let total = items.len();
        let items: Vec<T> = items.into_iter().skip(start).take(limit).collect();
        let end = start + items.len();
        Ok(Self {
            items,
            next_token: (end < total).then(|| end.to_string()),
        })
    }
}

/// Page sizes are 1–1000; 50 when not given.
pub fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::validation(vec!["limit must be 1-1000".into()]))
    }
}

/// Paging of the listings that are not filtered further.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–1000 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFunctionsQuery {
    /// Page size, 1–1000 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
    /// Only this owner's functions (admins).
    pub owner: Option<String>,
    /// `key` or `key=value`.
    pub tag: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListInvocationsQuery {
    /// `Pending` (or `Queued`), `Running`, `Succeeded` or `Failed`.
    pub status: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

impl ListInvocationsQuery {
    /// The status filter; `Pending` names the `Queued` state.
    pub fn status(&self) -> Result<Option<AsyncStatus>, ApiError> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some("Pending") => Ok(Some(AsyncStatus::Queued)),
            Some(s) => s.parse().map(Some).map_err(|_| {
                ApiError::validation(vec![format!(
                    "status must be Pending, Running, Succeeded or Failed (got '{s}')"
                )])
            }),
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTriggersQuery {
    pub function_name: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

/// The owner whose function a `/v1/functions/{name}/…` route addresses.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// The function's owner (admins; default: the caller's own functions).
    /// Function names are unique per owner.
    pub owner: Option<String>,
}
