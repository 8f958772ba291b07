use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotswap_domain::{AsyncInvocation, InvocationResult};
use hotswap_runner::{InvokeRequest, LogQuery, RunnerError};
use serde::Deserialize;

use crate::dto::{ListInvocationsQuery, OwnerQuery, Page, StoredResult};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, Path, Query};
use crate::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvokeQuery {
    /// `$LATEST` (default), a version number or an alias name.
    pub qualifier: Option<String>,
    /// `full`: answer with the whole InvocationResult as JSON.
    pub result: Option<String>,
    /// `tail`: add the last 4 KB of the invocation's log (`X-Log-Result`, base64).
    pub log: Option<String>,
    /// `true`: queue it and answer 202 (same as `X-Invocation-Type: Event`).
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
}

impl From<RunnerError> for ApiError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::RuntimeUnavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "RuntimeUnavailable", m)
            }
            RunnerError::TooManyRequests(m) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", m)
            }
            other => {
                let mut chain = other.to_string();
                let mut cause = std::error::Error::source(&other);
                while let Some(c) = cause {
                    chain.push_str(": ");
                    chain.push_str(&c.to_string());
                    cause = c.source();
                }
                tracing::error!(error = %chain, "invocation failed in the platform");
                ApiError::new(StatusCode::BAD_GATEWAY, "InvocationFailed", chain)
            }
        }
    }
}

fn header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Invoke a function synchronously; the body is the event. The function's
/// payload is the response body and the InvocationResult is in `X-…`
/// headers (or the whole result as JSON with `?result=full`).
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "invoke", params(InvokeQuery, OwnerQuery),
    request_body(content = String, description = "the event", content_type = "application/json"),
    responses((status = 200, body = InvocationResult), (status = 404, body = ApiError), (status = 429, body = ApiError), (status = 503, body = ApiError)))]
pub(crate) async fn invoke(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let qualifier = q.qualifier.as_deref().unwrap_or(hotswap_domain::LATEST);
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let payload = if body.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        body
    };
    let event_type = headers
        .get("x-invocation-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.eq_ignore_ascii_case("event"));
    if event_type || q.is_async == Some(true) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&payload);
        let inv = s
            .control
            .enqueue_invocation(&caller, &fref, qualifier, encoded, &content_type)
            .await?;
        let mut h = HeaderMap::new();
        header(&mut h, "x-request-id", &inv.request_id);
        let body =
            axum::Json(serde_json::json!({ "requestId": inv.request_id, "status": inv.status }));
        return Ok((StatusCode::ACCEPTED, h, body).into_response());
    }
    let (function, version) = s
        .control
        .resolve_invocation(&caller, &fref, qualifier)
        .await?;
    let layers = s.control.layers_for(&version).await?;
    let inv = s
        .runner
        .invoke(InvokeRequest {
            function: &function,
            version: &version,
            layers: &layers,
            payload,
            content_type,
        })
        .await?;
    let executed = if version.version == 0 {
        hotswap_domain::LATEST.to_owned()
    } else {
        version.version.to_string()
    };
    let log_tail = match q.log.as_deref() {
        Some("tail") | Some("Tail") => Some(s.runner.logs().tail(
            &function.function_id,
            &inv.result.request_id,
            4096,
        )),
        _ => None,
    };
    let r = &inv.result;
    let mut h = HeaderMap::new();
    header(&mut h, "x-request-id", &r.request_id);
    header(&mut h, "x-executed-version", &executed);
    header(
        &mut h,
        "x-cold-start",
        if r.was_cold_start { "true" } else { "false" },
    );
    header(&mut h, "x-execution-ms", &r.execution_time_ms.to_string());
    header(&mut h, "x-billed-ms", &r.billed_duration_ms.to_string());
    header(&mut h, "x-memory-used-mb", &r.memory_used_mb.to_string());
    if let Some(stream) = &r.log_stream_name {
        header(&mut h, "x-log-stream", stream);
    }
    if let Some(t) = &inv.function_error {
        header(&mut h, "x-function-error", t);
    }
    if let Some(tail) = &log_tail {
        use base64::Engine;
        header(
            &mut h,
            "x-log-result",
            &base64::engine::general_purpose::STANDARD.encode(tail),
        );
    }
    if q.result.as_deref() == Some("full") {
        return Ok((StatusCode::OK, h, axum::Json(inv.result)).into_response());
    }
    header(&mut h, "content-type", "application/json");
    Ok((StatusCode::OK, h, inv.payload).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    pub request_id: Option<String>,
    /// `$LATEST` or a version number.
    pub version: Option<String>,
    /// RFC 3339 timestamp.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Most lines (default 1000).
    pub limit: Option<usize>,
}

/// Log lines of a function's instances, each with its request id.
#[utoipa::path(get, path = "/v1/functions/{name}/logs", tag = "invoke", params(LogsQuery),
    responses((status = 200, description = "{ items: [LogLine] }"), (status = 404, body = ApiError)))]
pub(crate) async fn logs(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let function = s.control.get_function(&caller, &fref).await?;
    let query = LogQuery {
        request_id: q.request_id,
        version: q.version,
        since: q.since,
        limit: q.limit.unwrap_or(1000),
    };
    let lines = s.runner.logs().query(&function.function_id, &query);
    Ok(axum::Json(serde_json::json!({ "items": lines, "nextToken": null })).into_response())
}

/// Per-version figures of a function as measured by the runner: invocations,
/// errors, error rate, cold starts, average / p50 / p99 duration.
#[utoipa::path(get, path = "/v1/functions/{name}/metrics", tag = "invoke",
    responses((status = 200, description = "{ items: [VersionMetrics] }"), (status = 404, body = ApiError)))]
pub(crate) async fn metrics(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
) -> ApiResult<Response> {
    let function = s.control.get_function(&caller, &fref).await?;
    let items = s.runner.metrics().versions(Some(&function.function_id));
    Ok(axum::Json(serde_json::json!({ "items": items, "nextToken": null })).into_response())
}

/// A function's asynchronous invocations, newest first, paged; `status`
/// picks those in one state (e.g. `Failed` to find what was dead-lettered).
#[utoipa::path(get, path = "/v1/functions/{name}/invocations", tag = "invoke", params(ListInvocationsQuery, OwnerQuery),
    responses((status = 200, body = Page<AsyncInvocation>), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn list_invocations(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<ListInvocationsQuery>,
) -> ApiResult<axum::Json<Page<AsyncInvocation>>> {
    let limit = crate::dto::check_limit(q.limit)?;
    let status = q.status()?;
    let page = s
        .control
        .list_invocations(&caller, &fref, status, limit, q.next_token.as_deref())
        .await?;
    Ok(axum::Json(page.into()))
}

/// The stored result of an asynchronous invocation: its InvocationResult
/// once it has succeeded or finally failed (404 until then, with its state
/// in the message). `X-Invocation-Status`, `X-Attempts` and
/// `X-Executed-Version` say more; a failed one that was dead-lettered names
/// its dead letter in `X-Dead-Letter-Request-Id` and in the body's
/// `deadLetterRequestId`.
#[utoipa::path(get, path = "/v1/invocations/{request_id}", tag = "invoke",
    responses((status = 200, body = StoredResult), (status = 404, body = ApiError)))]
pub(crate) async fn get_invocation(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(request_id): Path<String>,
) -> ApiResult<Response> {
    let inv = s.control.get_invocation(&caller, &request_id).await?;
    let mut h = HeaderMap::new();
    header(&mut h, "x-invocation-status", inv.status.as_str());
    header(&mut h, "x-attempts", &inv.attempts.to_string());
    if let Some(v) = &inv.executed_version {
        header(&mut h, "x-executed-version", v);
    }
    if let Some(id) = &inv.dead_letter_request_id {
        header(&mut h, "x-dead-letter-request-id", id);
    }
    match inv.result {
        Some(result) if inv.status.is_final() => Ok((
            StatusCode::OK,
            h,
            axum::Json(StoredResult {
                result,
                dead_letter_request_id: inv.dead_letter_request_id,
            }),
        )
            .into_response()),
        _ => {
            let msg = format!(
                "invocation '{request_id}' has no result yet: {} (attempt {} of {})",
                inv.status, inv.attempts, inv.max_attempts
            );
            Ok((h, ApiError::not_found(msg)).into_response())
        }
    }
}
