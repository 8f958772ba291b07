use axum::extract::State;
use axum::http::StatusCode;
use hotswap_domain::Qualifier;

use crate::dto::OwnerQuery;
use crate::dto::{
    FunctionName, Page, PageQuery, PublishVersionRequest, UpdateVersionRequest, VersionPath,
    VersionResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, Json, NoQuery, OptionalJson, Path, Query};
use crate::AppState;

/// `$LATEST`, `3` or `v3`.
fn version_number(text: &str) -> ApiResult<u32> {
    match text.parse::<Qualifier>() {
        Ok(Qualifier::Latest) => Ok(0),
        Ok(Qualifier::Version(n)) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "'{text}' is not a version: expected $LATEST or a version number"
        ))),
    }
}

/// Publish `$LATEST` as a new immutable version.
#[utoipa::path(post, path = "/v1/functions/{name}/versions", tag = "versions", params(FunctionName, OwnerQuery),
    request_body(content = Option<PublishVersionRequest>, description = "optional; an empty body publishes without a description"),
    responses((status = 201, body = VersionResponse), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn publish(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    OptionalJson(req): OptionalJson<PublishVersionRequest>,
) -> ApiResult<(StatusCode, axum::Json<VersionResponse>)> {
    let v = s
        .control
        .publish_version(&caller, &fref, req.description)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(v.into())))
}

/// `$LATEST` first, then published versions in order.
#[utoipa::path(get, path = "/v1/functions/{name}/versions", tag = "versions", params(FunctionName, OwnerQuery, PageQuery),
    responses((status = 200, body = Page<VersionResponse>), (status = 404, body = ApiError)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<VersionResponse>>> {
    let versions = s.control.list_versions(&caller, &fref).await?;
    Ok(axum::Json(Page::of(
        versions.into_iter().map(Into::into).collect(),
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/functions/{name}/versions/{version}", tag = "versions", params(VersionPath, OwnerQuery),
    responses((status = 200, body = VersionResponse), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, version)): Path<(String, String)>,
) -> ApiResult<axum::Json<VersionResponse>> {
    let n = version_number(&version)?;
    Ok(axum::Json(
        s.control.get_version(&caller, &fref, n).await?.into(),
    ))
}

/// Set a version's status (Active, Deprecated, Archived).
#[utoipa::path(patch, path = "/v1/functions/{name}/versions/{version}", tag = "versions", params(VersionPath, OwnerQuery), request_body = UpdateVersionRequest,
    responses((status = 200, body = VersionResponse), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, version)): Path<(String, String)>,
    Json(req): Json<UpdateVersionRequest>,
) -> ApiResult<axum::Json<VersionResponse>> {
    let n = version_number(&version)?;
    Ok(axum::Json(
        s.control
            .set_version_status(&caller, &fref, n, req.status)
            .await?
            .into(),
    ))
}

/// Delete a version; 409 while an alias routes to it or it is Active and
/// has served invocations.
#[utoipa::path(delete, path = "/v1/functions/{name}/versions/{version}", tag = "versions", params(VersionPath, OwnerQuery),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let n = version_number(&version)?;
    let (f, v) = s.control.delete_version(&caller, &fref, n).await?;
    s.router.forget_version(&f.function_id, v.version);
    Ok(StatusCode::NO_CONTENT)
}
