use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::{Heartbeat, RunnerView};
use hotswap_domain::RunnerNode;

use crate::dto::{
    HeartbeatRequest, Page, PageQuery, RegisterRunnerRequest, RunnerPath, RunnerResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, OptionalJson, Path, Query};
use crate::AppState;

fn response(v: RunnerView) -> RunnerResponse {
    RunnerResponse {
        runner: v.runner,
        healthy: v.healthy,
        can_accept_invocations: v.can_accept_invocations,
    }
}

/// Register a runner node (admin token).
#[utoipa::path(post, path = "/v1/runners", tag = "runners", request_body = RegisterRunnerRequest,
    responses((status = 201, body = RunnerResponse), (status = 403, body = ApiError)))]
pub(crate) async fn register(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<RegisterRunnerRequest>,
) -> ApiResult<(StatusCode, axum::Json<RunnerResponse>)> {
    let mut node = RunnerNode::new(req.node_id, req.hostname);
    node.port = req.port.unwrap_or(node.port);
    node.health = req.health.unwrap_or_default();
    node.resources = req.resources.unwrap_or_default();
    node.metrics = req.metrics.unwrap_or_default();
    node.active_containers = req.active_containers.unwrap_or_default();
    node.runtimes = req.runtimes;
    node.sandbox = req.sandbox;
    let view = s.control.register_runner(&caller, node).await?;
    Ok((StatusCode::CREATED, axum::Json(response(view))))
}

/// Record a heartbeat with the runner's current health, resources and metrics.
#[utoipa::path(post, path = "/v1/runners/{node_id}/heartbeat", tag = "runners", params(RunnerPath),
    request_body(content = Option<HeartbeatRequest>, description = "optional"),
    responses((status = 200, body = RunnerResponse), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn heartbeat(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(node_id): Path<String>,
    OptionalJson(req): OptionalJson<HeartbeatRequest>,
) -> ApiResult<axum::Json<RunnerResponse>> {
    let beat = Heartbeat {
        health: req.health,
        resources: req.resources,
        metrics: req.metrics,
        active_containers: req.active_containers,
    };
    Ok(axum::Json(response(
        s.control.heartbeat(&caller, &node_id, beat).await?,
    )))
}

#[utoipa::path(get, path = "/v1/runners", tag = "runners", params(PageQuery), responses((status = 200, body = Page<RunnerResponse>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<RunnerResponse>>> {
    let runners = s.control.list_runners(&caller).await?;
    Ok(axum::Json(Page::of(
        runners.into_iter().map(response).collect(),
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/runners/{node_id}", tag = "runners", params(RunnerPath),
    responses((status = 200, body = RunnerResponse), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(node_id): Path<String>,
) -> ApiResult<axum::Json<RunnerResponse>> {
    Ok(axum::Json(response(
        s.control.get_runner(&caller, &node_id).await?,
    )))
}

/// This server's background tasks (admin token): each one's period, runs,
/// failures, last run and last error.
#[utoipa::path(get, path = "/v1/status", tag = "runners",
    responses((status = 200, body = crate::dto::ServerStatus), (status = 403, body = ApiError)))]
pub(crate) async fn status(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
) -> ApiResult<axum::Json<crate::dto::ServerStatus>> {
    if !caller.is_admin {
        return Err(ApiError::forbidden(
            "the server status needs an admin token",
        ));
    }
    Ok(axum::Json(crate::dto::ServerStatus {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        tasks: s.tasks.as_ref().map(|t| t.statuses()).unwrap_or_default(),
    }))
}
