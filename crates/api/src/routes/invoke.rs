use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotswap_domain::AsyncInvocation;
use hotswap_router::{Call, LogQuery, RouteError, RunnerError};
use serde::Deserialize;

use crate::dto::{
    AcceptedInvocation, FunctionName, InstanceSchema, InvocationPath, ListInvocationsQuery,
    LogLineSchema, OwnerQuery, Page, RawBytes, StoredResult, VersionMetricsSchema,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, NoQuery, Path, Query};
use crate::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvokeQuery {
    /// `$LATEST` (default), a version number or an alias name.
    pub qualifier: Option<String>,
    /// `full`: answer with the whole InvocationResult as JSON.
    #[param(inline)]
    pub result: Option<ResultMode>,
    /// `tail`: add the last 4 KB of the invocation's log (`X-Log-Result`,
    /// base64), ending with its `END` and `REPORT` lines.
    #[param(inline)]
    pub log: Option<LogMode>,
    /// `true`: queue it and answer 202 (same as `X-Invocation-Type: Event`).
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
}

/// What a synchronous invocation answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum ResultMode {
    /// The whole InvocationResult as JSON instead of the function's payload.
    #[serde(rename = "full")]
    Full,
}

/// Which log lines a synchronous invocation adds in `X-Log-Result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum LogMode {
    /// The last 4 KB (Lambda's `LogType: Tail`).
    #[serde(rename = "tail", alias = "Tail")]
    Tail,
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::Control(c) | RouteError::Layer(c) => c.into(),
            RouteError::Run(r) => r.into(),
        }
    }
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

/// Reads an invocation's event, refusing one over its limit with 413
/// `RequestEntityTooLarge` — by its `Content-Length` before reading, or as
/// soon as the streamed body passes the limit, so an oversized event is
/// never buffered whole, let alone stored.
pub(crate) async fn read_event(
    headers: &HeaderMap,
    body: Body,
    limits: crate::PayloadLimits,
    is_async: bool,
) -> ApiResult<Bytes> {
    let (limit, kind) = if is_async {
        (limits.async_bytes, "an asynchronous")
    } else {
        (limits.sync_bytes, "a synchronous")
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the event is larger than the {limit} bytes allowed for {kind} invocation"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(c) = cause {
                if c.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                cause = c.source();
            }
            Err(ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            )))
        }
    }
}

fn header(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Invoke a function; the body is the event (any bytes, `{}` when empty).
/// Synchronously the function's payload is the response body (on a
/// function error, its error JSON with `X-Function-Error`) and the
/// InvocationResult is in `X-…` headers; with `?result=full` the body is the
/// whole InvocationResult instead. `X-Invocation-Type: Event` or
/// `?async=true` queues it and answers 202.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "invoke",
    params(FunctionName, OwnerQuery, InvokeQuery,
        ("X-Invocation-Type" = Option<String>, Header, nullable = false, description = "`Event` queues the invocation (202); anything else invokes synchronously")),
    request_body(content((Option<serde_json::Value> = "application/json"), (RawBytes = "application/octet-stream")), description = "the event"),
    responses(
        (status = 200, description = "the function's payload as it returned it (any JSON value, or its bytes); the whole InvocationResult with `?result=full`",
            content((serde_json::Value = "application/json")),
            headers(
                ("X-Request-Id" = String, description = "the invocation's request id"),
                ("X-Executed-Version" = String, description = "`$LATEST` or the version number that ran"),
                ("X-Cold-Start" = String, description = "`true` or `false`"),
                ("X-Execution-Ms" = String, description = "execution time in ms"),
                ("X-Billed-Ms" = String, description = "billed ms (rounded up)"),
                ("X-Memory-Used-Mb" = String, description = "peak memory in MB"),
                ("X-Log-Stream" = String, description = "the instance's log stream"),
                ("X-Function-Error" = String, description = "on a function error: its errorType"),
                ("X-Log-Result" = String, description = "with `?log=tail`: the last 4 KB of the log, base64"),
            )),
        (status = 202, description = "queued (`X-Invocation-Type: Event` or `?async=true`)", body = AcceptedInvocation,
            headers(("X-Request-Id" = String, description = "the invocation's request id"))),
        (status = 403, body = ApiError),
        (status = 404, body = ApiError),
        (status = 413, description = "the event is over the synchronous or asynchronous limit (`RequestEntityTooLarge`)", body = ApiError),
        (status = 429, body = ApiError),
        (status = 502, body = ApiError),
        (status = 503, body = ApiError)))]
pub(crate) async fn invoke(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let qualifier = q.qualifier.as_deref().unwrap_or(hotswap_domain::LATEST);
    let event_type = headers
        .get("x-invocation-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.eq_ignore_ascii_case("event"));
    let is_async = event_type || q.is_async == Some(true);
    let body = read_event(&headers, body, s.payload, is_async).await?;
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
    if is_async {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&payload);
        let inv = s
            .router
            .enqueue(&caller, &fref, qualifier, encoded, &content_type)
            .await?;
        let mut h = HeaderMap::new();
        header(&mut h, "x-request-id", &inv.request_id);
        let body = axum::Json(AcceptedInvocation {
            request_id: inv.request_id,
            status: inv.status,
        });
        return Ok((StatusCode::ACCEPTED, h, body).into_response());
    }
    let route = s.router.resolve(&caller, &fref, qualifier).await?;
    let inv = s
        .router
        .invoke(&route, Call::new(payload, content_type))
        .await?;
    let executed = route.executed_version();
    let log_tail = match q.log {
        Some(LogMode::Tail) => Some(s.router.logs().tail(
            &route.function.function_id,
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
    if q.result == Some(ResultMode::Full) {
        return Ok((StatusCode::OK, h, axum::Json(inv.result)).into_response());
    }
    header(&mut h, "content-type", "application/json");
    Ok((StatusCode::OK, h, inv.payload).into_response())
}

/// The logs query, as given: each field is checked by [`LogsQuery::check`]
/// so that every problem is reported at once.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// One invocation's lines: its request id (1–128 letters, digits, `-`
    /// or `_`).
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub request_id: Option<String>,
    /// `$LATEST` or a version number.
    #[param(value_type = Option<String>, pattern = r"^(\$LATEST|[1-9][0-9]{0,8})$")]
    pub version: Option<String>,
    /// Lines at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Most lines, the newest: 1–1000 (default 1000).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Most lines one logs query returns.
pub const MAX_LOG_LINES: usize = 1000;

impl LogsQuery {
    /// The runner's query, or every problem with the parameters.
    pub fn check(self) -> Result<LogQuery, ApiError> {
        let mut errors = Vec::new();
        let limit = match self.limit.as_deref() {
            None => MAX_LOG_LINES,
            Some(l) => match l.parse::<u64>() {
                Ok(n) if (1..=MAX_LOG_LINES as u64).contains(&n) => n as usize,
                _ => {
                    errors.push(format!(
                        "limit must be between 1 and {MAX_LOG_LINES} (got {l})"
                    ));
                    0
                }
            },
        };
        let since = match self.since.as_deref() {
            None => None,
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => {
                    errors.push(format!(
                        "since must be an RFC 3339 time such as 2024-05-01T12:00:00Z (got {t:?})"
                    ));
                    None
                }
            },
        };
        if let Some(v) = &self.version {
            let number =
                v.len() <= 9 && v.parse::<u32>().is_ok_and(|n| n > 0) && !v.starts_with('0');
            if v != hotswap_domain::LATEST && !number {
                errors.push(format!(
                    "version must be $LATEST or a version number (got {v:?})"
                ));
            }
        }
        if let Some(r) = &self.request_id {
            let ok = (1..=128).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                errors.push("requestId must be 1-128 letters, digits, '-' or '_'".to_owned());
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        Ok(LogQuery {
            request_id: self.request_id,
            version: self.version,
            since,
            limit,
        })
    }
}

/// Log lines of a function's instances, each with its request id, oldest
/// first: the newest `limit` that match. Every invocation has
/// `START` / `END` / `REPORT` lines (stream `platform`); a line cut at the
/// server's line cap has `truncated: true`.
#[utoipa::path(get, path = "/v1/functions/{name}/logs", tag = "invoke", params(FunctionName, OwnerQuery, LogsQuery),
    responses((status = 200, body = Page<LogLineSchema>), (status = 404, body = ApiError)))]
pub(crate) async fn logs(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let query = q.check()?;
    let function = s.control.get_function(&caller, &fref).await?;
    let lines = s.router.logs().query(&function.function_id, &query);
    Ok(axum::Json(serde_json::json!({ "items": lines, "nextToken": null })).into_response())
}

/// Per-version figures of a function as measured by the runner: invocations,
/// errors, error rate, cold starts, average / p50 / p99 duration.
#[utoipa::path(get, path = "/v1/functions/{name}/metrics", tag = "invoke", params(FunctionName, OwnerQuery),
    responses((status = 200, body = Page<VersionMetricsSchema>), (status = 404, body = ApiError)))]
pub(crate) async fn metrics(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
) -> ApiResult<Response> {
    let function = s.control.get_function(&caller, &fref).await?;
    let items = s.router.metrics().versions(Some(&function.function_id));
    Ok(axum::Json(serde_json::json!({ "items": items, "nextToken": null })).into_response())
}

/// A function's instances on this server's runner, newest first: each with
/// its version, state (`Initializing`, `Idle`, `Busy`), whether it is kept
/// initialised (`provisioned`), its calls in flight and its times.
#[utoipa::path(get, path = "/v1/functions/{name}/instances", tag = "invoke", params(FunctionName, OwnerQuery),
    responses((status = 200, body = Vec<InstanceSchema>), (status = 404, body = ApiError)))]
pub(crate) async fn instances(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
) -> ApiResult<axum::Json<Vec<InstanceSchema>>> {
    let function = s.control.get_function(&caller, &fref).await?;
    let items: Vec<InstanceSchema> = s
        .router
        .runner()
        .instances(&function.function_id)
        .into_iter()
        .map(InstanceSchema::from)
        .collect();
    Ok(axum::Json(items))
}

/// A function's asynchronous invocations, newest first, paged; `status`
/// picks those in one state (e.g. `Failed` to find what was dead-lettered).
#[utoipa::path(get, path = "/v1/functions/{name}/invocations", tag = "invoke", params(FunctionName, OwnerQuery, ListInvocationsQuery),
    responses((status = 200, body = Page<AsyncInvocation>), (status = 404, body = ApiError)))]
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
#[utoipa::path(get, path = "/v1/invocations/{request_id}", tag = "invoke", params(InvocationPath),
    responses(
        (status = 200, body = StoredResult, headers(
            ("X-Invocation-Status" = String, description = "`Succeeded` or `Failed`"),
            ("X-Attempts" = String, description = "attempts made"),
            ("X-Executed-Version" = String, description = "the version that ran"),
            ("X-Dead-Letter-Request-Id" = String, description = "the dead letter queued for it"))),
        (status = 404, body = ApiError)))]
pub(crate) async fn get_invocation(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> LogsQuery {
        let mut q = LogsQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "limit" => q.limit = v,
                "since" => q.since = v,
                "version" => q.version = v,
                "requestId" => q.request_id = v,
                _ => unreachable!(),
            }
        }
        q
    }

    #[test]
    fn logs_query_defaults_and_bounds() {
        let q = query(&[]).check().unwrap();
        assert_eq!(q.limit, MAX_LOG_LINES);
        let q = query(&[
            ("limit", "1000"),
            ("since", "2024-05-01T12:00:00+02:00"),
            ("version", "$LATEST"),
            ("requestId", "abc-DEF_1"),
        ])
        .check()
        .unwrap();
        assert_eq!(q.limit, 1000);
        assert_eq!(q.since.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
        for (k, v) in [
            ("limit", "1001"),
            ("limit", "0"),
            ("limit", "ten"),
            ("since", "2024-05-01"),
            ("version", "01"),
            ("version", "4294967296"),
            ("requestId", "a/b"),
        ] {
            let e = query(&[(k, v)]).check().unwrap_err();
            assert_eq!(
                (e.status, e.code, e.errors.len()),
                (StatusCode::BAD_REQUEST, "ValidationFailed", 1),
                "{k}={v}"
            );
            assert!(e.errors[0].starts_with(k), "{k}={v}: {:?}", e.errors);
        }
        let e = query(&[("limit", "-1"), ("version", "x")])
            .check()
            .unwrap_err();
        assert_eq!(e.errors.len(), 2, "{:?}", e.errors);
    }
}
