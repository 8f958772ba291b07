use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::AliasUpdate;
use hotswap_domain::FunctionAlias;

use crate::dto::{
    AliasPath, CreateAliasRequest, FunctionName, OwnerQuery, Page, PageQuery, UpdateAliasRequest,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, Json, NoQuery, Path, Query};
use crate::AppState;

#[utoipa::path(post, path = "/v1/functions/{name}/aliases", tag = "aliases", params(FunctionName, OwnerQuery), request_body = CreateAliasRequest,
    responses((status = 201, body = FunctionAlias), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Json(req): Json<CreateAliasRequest>,
) -> ApiResult<(StatusCode, axum::Json<FunctionAlias>)> {
    let a = s
        .control
        .create_alias(
            &caller,
            &fref,
            &req.alias_name,
            req.version,
            req.routing_config,
            req.description,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(a)))
}

#[utoipa::path(get, path = "/v1/functions/{name}/aliases", tag = "aliases", params(FunctionName, OwnerQuery, PageQuery),
    responses((status = 200, body = Page<FunctionAlias>), (status = 404, body = ApiError)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    FunctionPath(fref): FunctionPath,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<FunctionAlias>>> {
    Ok(axum::Json(Page::of(
        s.control.list_aliases(&caller, &fref).await?,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases", params(AliasPath, OwnerQuery),
    responses((status = 200, body = FunctionAlias), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
) -> ApiResult<axum::Json<FunctionAlias>> {
    Ok(axum::Json(
        s.control.get_alias(&caller, &fref, &alias).await?,
    ))
}

/// Move an alias and/or set its weighted routing.
#[utoipa::path(put, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases", params(AliasPath, OwnerQuery), request_body = UpdateAliasRequest,
    responses((status = 200, body = FunctionAlias), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
    Json(req): Json<UpdateAliasRequest>,
) -> ApiResult<axum::Json<FunctionAlias>> {
    let update = AliasUpdate {
        version: req.version,
        routing_config: req.routing_config,
        description: req.description,
    };
    Ok(axum::Json(
        s.control
            .update_alias(&caller, &fref, &alias, update)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases", params(AliasPath, OwnerQuery),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.control.delete_alias(&caller, &fref, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Same as `PUT`.
#[utoipa::path(patch, path = "/v1/functions/{name}/aliases/{alias}", tag = "aliases", params(AliasPath, OwnerQuery), request_body = UpdateAliasRequest,
    responses((status = 200, body = FunctionAlias), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn patch(
    state: State<AppState>,
    caller: Caller,
    no_query: NoQuery,
    function: FunctionPath,
    path: Path<(String, String)>,
    body: Json<UpdateAliasRequest>,
) -> ApiResult<axum::Json<FunctionAlias>> {
    update(state, caller, no_query, function, path, body).await
}
