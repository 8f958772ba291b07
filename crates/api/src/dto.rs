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

/// An optional struct, taken only from a JSON object (or `null`): serde's
/// derived structs also accept an array of their fields in order, which the
/// documented schema (an object) does not allow.
fn object<'de, T: serde::de::DeserializeOwned, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
        Some(other) => Err(D::Error::invalid_type(
            match &other {
                serde_json::Value::Array(_) => serde::de::Unexpected::Seq,
                serde_json::Value::Bool(b) => serde::de::Unexpected::Bool(*b),
                serde_json::Value::String(s) => serde::de::Unexpected::Str(s),
                _ => serde::de::Unexpected::Other("a number"),
            },
            &"an object",
        )),
    }
}

/// [`object`] for a field that defaults when absent.
fn object_or_default<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: serde::de::DeserializeOwned + Default,
    D: Deserializer<'de>,
{
    object(d).map(Option::unwrap_or_default)
}

/// A code package, base64-encoded.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeInput {
    /// The zip file, base64 (standard alphabet, padding optional).
    #[schema(format = Byte, min_length = 1)]
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
    /// Letters, digits and dashes, at most 64; unique per owner.
    #[schema(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub name: String,
    pub runtime: Runtime,
    /// E.g. `index.handler`; its form depends on the runtime.
    #[schema(pattern = r"\S")]
    pub handler: String,
    pub description: Option<String>,
    /// MB: 128–10240 in steps of 64 (default 256).
    #[schema(minimum = 128, maximum = 10240, multiple_of = 64)]
    pub memory_size: Option<u32>,
    /// Seconds: 1–900 (default 30).
    #[schema(minimum = 1, maximum = 900)]
    pub timeout: Option<u32>,
    /// Names start with a letter and hold letters, digits and `_`; keys and
    /// values together at most 4 KB.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `NAME` or `NAME:VERSION`, at most 5, each layer once.
    #[serde(default)]
    #[schema(max_items = 5)]
    pub layers: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "object")]
    pub vpc_config: Option<VpcConfig>,
    #[serde(default, deserialize_with = "object")]
    pub scaling_config: Option<ScalingConfig>,
    /// `function[:qualifier]` (same owner) that receives an asynchronous
    /// invocation of this one, in Lambda's destination-record shape, once
    /// its attempts are exhausted.
    pub dead_letter_target: Option<String>,
    /// Required in a JSON request; in a multipart request the code comes as
    /// the `code` part instead.
    #[schema(value_type = CodeInput)]
    pub code: Option<CodeInput>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateFunctionRequest {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub runtime: Option<Runtime>,
    #[schema(pattern = r"\S")]
    pub handler: Option<String>,
    /// MB: 128–10240 in steps of 64.
    #[schema(minimum = 128, maximum = 10240, multiple_of = 64)]
    pub memory_size: Option<u32>,
    /// Seconds: 1–900.
    #[schema(minimum = 1, maximum = 900)]
    pub timeout: Option<u32>,
    pub environment: Option<BTreeMap<String, String>>,
    #[schema(max_items = 5)]
    pub layers: Option<Vec<String>>,
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<VpcConfig>)]
    pub vpc_config: Option<Option<VpcConfig>>,
    #[serde(default, deserialize_with = "object")]
    pub scaling_config: Option<ScalingConfig>,
    /// `function[:qualifier]`; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub dead_letter_target: Option<Option<String>>,
}

/// A body of raw bytes (a zip, an event).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBytes(pub Vec<u8>);

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
    /// Letters, digits, `-` and `_`, at most 128, not all digits.
    #[schema(
        pattern = r"^[a-zA-Z0-9_-]*[a-zA-Z_-][a-zA-Z0-9_-]*$",
        max_length = 128
    )]
    pub alias_name: String,
    /// A published version (1 or more).
    #[schema(minimum = 1)]
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
    #[schema(minimum = 1)]
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
    #[schema(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub function_name: String,
    /// The function's owner (admins binding another owner's function;
    /// default: the caller's own). Function names are unique per owner.
    pub owner_id: Option<String>,
    /// `$LATEST` (default), a version number or an alias name.
    pub target_version: Option<String>,
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    pub is_enabled: Option<bool>,
    #[serde(default, deserialize_with = "object_or_default")]
    pub config: TriggerConfig,
}

/// `POST /v1/subnets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSubnetRequest {
    /// Letters, digits and dashes, at most 64; unique.
    #[schema(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub subnet_name: String,
    /// A private block (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or
    /// 100.64.0.0/10), /16 to /28, with no host bits set, overlapping no
    /// other subnet.
    #[schema(example = "10.20.0.0/24")]
    pub cidr: String,
}

/// `POST /v1/security-groups`, and `PUT /v1/security-groups/{id}` (which
/// replaces both fields).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityGroupRequest {
    /// Letters, digits and dashes, at most 64; unique per owner.
    #[schema(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub group_name: String,
    /// At most 60 allow-rules (none when absent).
    #[serde(default)]
    #[schema(max_items = 60)]
    pub egress: Vec<hotswap_domain::EgressRuleInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTriggerRequest {
    pub is_enabled: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRunnerRequest {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub node_id: String,
    #[schema(pattern = r"\S")]
    pub hostname: String,
    #[schema(minimum = 1, maximum = 65535)]
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
    #[serde(default, deserialize_with = "object")]
    pub health: Option<RunnerHealth>,
    #[serde(default, deserialize_with = "object")]
    pub resources: Option<RunnerResources>,
    #[serde(default, deserialize_with = "object")]
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
    #[schema(
        pattern = r"^[a-zA-Z0-9_-]*[a-zA-Z_-][a-zA-Z0-9_-]*$",
        max_length = 128
    )]
    pub alias_name: String,
    /// A published version (1 or more).
    #[schema(minimum = 1)]
    pub target_version: u32,
    #[serde(default)]
    pub strategy: DeploymentStrategy,
    #[serde(default, deserialize_with = "object_or_default")]
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

/// What a token may do: `tenant` (its owner's resources), `admin` (every
/// owner's, and tokens), `metrics` (`GET /metrics` only) or `runner`
/// (reserved for remote runners; refused until they exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    Tenant,
    Admin,
    Runner,
    Metrics,
}

impl From<TokenRole> for hotswap_control::TokenRole {
    fn from(r: TokenRole) -> Self {
        match r {
            TokenRole::Tenant => Self::Tenant,
            TokenRole::Admin => Self::Admin,
            TokenRole::Runner => Self::Runner,
            TokenRole::Metrics => Self::Metrics,
        }
    }
}

impl From<hotswap_control::TokenRole> for TokenRole {
    fn from(r: hotswap_control::TokenRole) -> Self {
        match r {
            hotswap_control::TokenRole::Tenant => Self::Tenant,
            hotswap_control::TokenRole::Admin => Self::Admin,
            hotswap_control::TokenRole::Runner => Self::Runner,
            hotswap_control::TokenRole::Metrics => Self::Metrics,
        }
    }
}

/// `POST /v1/tokens`. `ownerId` is required for tenant tokens (admin and
/// metrics tokens default to `admin` and `metrics`); `"admin": true` is the
/// older spelling of `"role": "admin"`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1–128 letters, digits, `-`, `_`, `.` or `@`.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,128}$")]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub admin: bool,
    /// Defaults to `tenant` (or `admin` with `"admin": true`).
    pub role: Option<TokenRole>,
    /// A label, 1–64 characters.
    pub name: Option<String>,
    /// Lifetime: seconds, or a string such as `"30d"` or `"12h"`.
    #[serde(default, with = "hotswap_domain::duration::opt_secs")]
    #[schema(value_type = Option<String>, example = "30d")]
    pub expires_in: Option<std::time::Duration>,
    /// Expiry instant (RFC 3339); give this or `expiresIn`, not both.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A token as listed: never its secret nor its hash.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Public id, for `GET|DELETE /v1/tokens/{tokenId}`.
    pub token_id: String,
    pub owner_id: String,
    pub role: TokenRole,
    /// `role == admin`.
    pub admin: bool,
    pub name: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When a server last accepted it from the store (servers cache tokens
    /// for 30 s, so this trails real use by up to that).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<hotswap_control::ApiToken> for TokenInfo {
    fn from(t: hotswap_control::ApiToken) -> Self {
        Self {
            admin: t.is_admin(),
            token_id: t.token_id,
            owner_id: t.owner_id,
            role: t.role.into(),
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token: its secret (shown once, stored only as a hash) and its
/// details.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The secret; shown once, stored only as a hash.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// `GET /v1/tokens` filters and paging.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTokensQuery {
    /// Only this owner's tokens (a tenant may only name itself).
    #[param(pattern = r"^[A-Za-z0-9._@-]{1,128}$")]
    pub owner_id: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub next_token: Option<String>,
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
impl<T> From<hotswap_control::Page<T>> for Page<T> {
    fn from(p: hotswap_control::Page<T>) -> Self {
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
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListFunctionsQuery {
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
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
    #[param(pattern = "^(Pending|Queued|Running|Succeeded|Failed)?$")]
    pub status: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `nextToken` (`{microseconds}.{requestId}`).
    #[param(pattern = r"^(-?[0-9]{1,15}\.[\s\S]+)?$")]
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
    /// Only this function's triggers.
    pub function_name: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The previous page's `nextToken`.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub next_token: Option<String>,
}

// Path parameters, declared once and named in each operation's `params(…)`.
// The handlers read them positionally (`Path<String>`, `Path<(String, String)>`);
// `openapi::tests::every_path_parameter_is_declared` keeps the two in step.

/// `{name}`: a function.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FunctionName {
    /// The function's name.
    #[param(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub name: String,
}

/// `{name}/…/{version}`: a version of a function.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    /// The function's name.
    #[param(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub name: String,
    /// `$LATEST`, a version number or `v` and a version number.
    #[param(pattern = r"^(\$LATEST|v?[0-9]{1,9})$")]
    pub version: String,
}

/// `{name}/…/{alias}`: an alias of a function.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AliasPath {
    /// The function's name.
    #[param(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub name: String,
    /// The alias's name.
    #[param(pattern = r"^[a-zA-Z0-9_-]{1,128}$")]
    pub alias: String,
}

/// `{name}/…/{id}`: a deployment of a function.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeploymentPath {
    /// The function's name.
    #[param(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub name: String,
    /// The deployment's `deploymentId`.
    pub id: String,
}

/// `{name}`: a layer.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LayerPath {
    /// The layer's name.
    pub name: String,
}

/// `{name}/versions/{version}`: a version of a layer.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LayerVersionPath {
    /// The layer's name.
    pub name: String,
    /// The layer version's number.
    pub version: u32,
}

/// `{id}`: a subnet.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SubnetPath {
    /// The subnet's `subnetId`.
    pub id: String,
}

/// `{id}`: a security group.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecurityGroupPath {
    /// The group's `securityGroupId`.
    pub id: String,
}

/// `{id}`: a trigger.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TriggerPath {
    /// The trigger's `triggerId`.
    pub id: String,
}

/// `{node_id}`: a runner node.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunnerPath {
    /// The runner's `nodeId`.
    pub node_id: String,
}

/// `{request_id}`: an asynchronous invocation.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InvocationPath {
    /// The `requestId` the 202 answer gave.
    pub request_id: String,
}

/// The 202 answer to an asynchronous invocation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedInvocation {
    /// Fetch its result with `GET /v1/invocations/{requestId}`.
    pub request_id: String,
    pub status: AsyncStatus,
}

/// One log line of a function's instance (`GET …/logs`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LogLine)]
pub struct LogLineSchema {
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub function_name: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub log_stream_name: String,
    pub request_id: Option<String>,
    /// `stdout`, `stderr` or `platform` (the `START` / `END` / `REPORT` lines).
    pub stream: String,
    pub message: String,
    /// Present (`true`) when the line was cut at the server's line cap.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A version's figures as the runner measured them (`GET …/metrics`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = VersionMetrics)]
pub struct VersionMetricsSchema {
    pub function_name: String,
    /// The function's owner.
    pub owner_id: String,
    /// `$LATEST` or the version number.
    pub version: String,
    pub invocations: u64,
    pub errors: u64,
    /// Percent, 0–100.
    pub error_rate: f64,
    pub cold_starts: u64,
    pub avg_duration_ms: f64,
    pub p50_duration_ms: f64,
    pub p99_duration_ms: f64,
}

/// One instance of a function (`GET …/instances`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Instance)]
pub struct InstanceSchema {
    pub instance_id: String,
    /// `$LATEST` or the version number.
    pub version: String,
    /// `Initializing` (its runtime has not asked for an event yet), `Idle`
    /// or `Busy`.
    pub state: String,
    /// Kept initialised by `minInstances`, keep-warm, the autoscaler or a
    /// deployment's provisioned concurrency.
    pub provisioned: bool,
    /// Calls it is running.
    pub in_flight: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Its last call's start; absent before its first call.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The runner node it runs on.
    pub node_id: String,
}

impl From<hotswap_runner::InstanceInfo> for InstanceSchema {
    fn from(i: hotswap_runner::InstanceInfo) -> Self {
        Self {
            instance_id: i.instance_id,
            version: i.version,
            state: i.state.as_str().to_owned(),
            provisioned: i.provisioned,
            in_flight: i.in_flight,
            started_at: i.started_at,
            last_used_at: i.last_used_at,
            node_id: i.node_id,
        }
    }
}

/// The owner whose function a `/v1/functions/{name}/…` route addresses.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// The function's owner (admins; default: the caller's own functions).
    /// Function names are unique per owner.
    #[param(pattern = r"^[A-Za-z0-9._@-]{1,128}$")]
    pub owner: Option<String>,
}

/// The owner whose security groups a request creates or lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct GroupOwnerQuery {
    /// The groups' owner (admins; default: the caller's own).
    #[param(pattern = r"^[A-Za-z0-9._@-]{1,128}$")]
    pub owner: Option<String>,
}

// ---- embedded queues ----------------------------------------------------------

/// `POST /v1/queues/{name}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendQueueMessageRequest {
    /// The message, at most 256 KiB with its attributes' names and values
    /// (413 past that). Tab, line feed, carriage return and characters from
    /// U+0020 on (but U+FFFE and U+FFFF), as SQS allows.
    #[schema(min_length = 1)]
    pub body: String,
    /// At most 10 string attributes (the function gets them as
    /// `messageAttributes`). Names: 1-256 of letters, digits, `-`, `_` and
    /// `.`, not starting with `AWS.` or `Amazon.`, not starting or ending
    /// with `.`, no `..`; values non-empty.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The answer to `POST /v1/queues/{name}/messages`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendQueueMessageResponse {
    /// The message's id (a UUID).
    pub message_id: String,
}

/// The answer to `DELETE /v1/queues/{name}/messages`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeQueueResponse {
    /// How many messages were deleted (received ones included).
    pub purged: u64,
}

/// `{name}`: a queue of the caller (or of `?owner=`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// The queue's name: 1-80 letters, digits, `-` or `_`; unique per owner.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,80}$")]
    pub name: String,
}

/// The owner whose queues a request addresses.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct QueueOwnerQuery {
    /// The queues' owner (admins; default: the caller's own). Queue names
    /// are unique per owner.
    #[param(pattern = r"^[A-Za-z0-9._@-]{1,128}$")]
    pub owner: Option<String>,
}

#[cfg(test)]
mod object_tests {
    use super::*;

    #[test]
    fn struct_fields_take_objects_only() {
        let ok: HeartbeatRequest =
            serde_json::from_str(r#"{"health": {}, "metrics": null}"#).unwrap();
        assert!(ok.health.is_some() && ok.metrics.is_none());
        for bad in [
            r#"{"health": []}"#,
            r#"{"resources": [1, 2]}"#,
            r#"{"metrics": "x"}"#,
        ] {
            let e = serde_json::from_str::<HeartbeatRequest>(bad).unwrap_err();
            assert!(e.to_string().contains("expected an object"), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<CreateDeploymentRequest>(
            r#"{"aliasName": "a", "targetVersion": 1, "config": []}"#
        )
        .is_err());
        let d: CreateDeploymentRequest =
            serde_json::from_str(r#"{"aliasName": "a", "targetVersion": 1}"#).unwrap();
        assert_eq!(d.target_version, 1);
    }
}

/// `GET /v1/status`: this server's background tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The server's version.
    pub version: String,
    /// Every background task (`runner-heartbeat`, `counter-flush`,
    /// `window-prune`, `async-worker`, `deployments`, `scheduler`,
    /// `http-routes`, `trigger-counters`), in start order.
    pub tasks: Vec<hotswap_tasks::TaskStatus>,
}

/// A trigger as the API shows it: the stored trigger, where it is reached
/// or when it fires next, and what it has done on this server.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: hotswap_domain::Trigger,
    /// HTTP triggers: the URL it is served at (`--public-url` + `/fn` +
    /// its path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Scheduled triggers: the next tick (null when disabled or it never
    /// fires again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// What the trigger has done on this server.
    pub state: hotswap_triggers::stats::TriggerState,
}
