use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::NewDeployment;
use hotswap_domain::Deployment;

use crate::dto::OwnerQuery;
use crate::dto::{
    CancelDeploymentRequest, CreateDeploymentRequest, DeploymentPath, FunctionName, Page,
    PageQuery, RollbackDeploymentRequest,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, Json, NoQuery, OptionalJson, Path, Query};
use crate::AppState;

/// Record a deployment of a version to an alias (one active per alias).
#[utoipa::path(post, path = "/v1/functions/{name}/deployments", tag = "deployments", params(FunctionName, OwnerQuery), request_body = CreateDeploymentRequest,
    responses((status = 201, body = Deployment), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Json(req): Json<CreateDeploymentRequest>,
) -> ApiResult<(StatusCode, axum::Json<Deployment>)> {
    let new = NewDeployment {
        alias_name: req.alias_name,
        target_version: req.target_version,
        strategy: req.strategy,
        config: req.config,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(s.control.create_deployment(&caller, &fref, new).await?),
    ))
}

/// Deployments of a function, newest first.
#[utoipa::path(get, path = "/v1/functions/{name}/deployments", tag = "deployments", params(FunctionName, OwnerQuery, PageQuery),
    responses((status = 200, body = Page<Deployment>), (status = 404, body = ApiError)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Deployment>>> {
    Ok(axum::Json(Page::of(
        s.control.list_deployments(&caller, &fref).await?,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/functions/{name}/deployments/{id}", tag = "deployments", params(DeploymentPath, OwnerQuery),
    responses((status = 200, body = Deployment), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Deployment>> {
    Ok(axum::Json(
        s.control.get_deployment(&caller, &fref, &id).await?,
    ))
}

/// Cancel a deployment that has not finished; all traffic goes back to the source version.
#[utoipa::path(post, path = "/v1/functions/{name}/deployments/{id}/cancel", tag = "deployments", params(DeploymentPath, OwnerQuery),
    request_body(content = Option<CancelDeploymentRequest>, description = "optional"),
    responses((status = 200, body = Deployment), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn cancel(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, id)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<CancelDeploymentRequest>,
) -> ApiResult<axum::Json<Deployment>> {
    Ok(axum::Json(
        s.control
            .cancel_deployment(&caller, &fref, &id, req.reason)
            .await?,
    ))
}

/// End the current step now: the next step begins (a manual gate such as
/// ABTesting's split, or the rest of a timed step skipped), or the
/// deployment completes.
#[utoipa::path(post, path = "/v1/functions/{name}/deployments/{id}/promote", tag = "deployments", params(DeploymentPath, OwnerQuery),
    responses((status = 200, body = Deployment), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn promote(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Deployment>> {
    Ok(axum::Json(
        s.control.promote_deployment(&caller, &fref, &id).await?,
    ))
}

/// Move all traffic back to the source version now (an active deployment,
/// or a completed one whose result still stands); `reason` is recorded.
#[utoipa::path(post, path = "/v1/functions/{name}/deployments/{id}/rollback", tag = "deployments", params(DeploymentPath, OwnerQuery),
    request_body(content = Option<RollbackDeploymentRequest>, description = "optional"),
    responses((status = 200, body = Deployment), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn rollback(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, id)): Path<(String, String)>,
    OptionalJson(req): OptionalJson<RollbackDeploymentRequest>,
) -> ApiResult<axum::Json<Deployment>> {
    Ok(axum::Json(
        s.control
            .rollback_deployment(&caller, &fref, &id, req.reason)
            .await?,
    ))
}
