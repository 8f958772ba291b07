use axum::extract::State;
use axum::http::StatusCode;
use hotswap_domain::LayerVersion;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::dto::{CodeInput, LayerPath, LayerVersionPath, Page, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, Path, Query};
use crate::AppState;

/// A new layer version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishLayerRequest {
    /// Letters, digits and dashes, at most 64.
    #[schema(pattern = r"^[a-zA-Z0-9-]{1,64}$")]
    pub layer_name: String,
    pub description: Option<String>,
    /// The zip: `python/` and `nodejs/node_modules/` are on the runtimes'
    /// search paths; everything lands under `/opt`.
    pub content: CodeInput,
}

/// Publish a new version of a layer (the name's first publisher owns it).
#[utoipa::path(post, path = "/v1/layers", tag = "layers", request_body = PublishLayerRequest,
    responses((status = 201, body = LayerVersion), (status = 409, body = ApiError)))]
pub(crate) async fn publish(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<PublishLayerRequest>,
) -> ApiResult<(StatusCode, axum::Json<LayerVersion>)> {
    let code = req.content.decode()?;
    let layer = s
        .control
        .publish_layer(&caller, &req.layer_name, req.description, code)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(layer)))
}

/// The newest version of each of your layers.
#[utoipa::path(get, path = "/v1/layers", tag = "layers", params(PageQuery),
    responses((status = 200, body = Page<LayerVersion>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<LayerVersion>>> {
    Ok(axum::Json(Page::of(
        s.control.list_layers(&caller).await?,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/layers/{name}/versions", tag = "layers", params(LayerPath, PageQuery),
    responses((status = 200, body = Page<LayerVersion>), (status = 404, body = ApiError)))]
pub(crate) async fn versions(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<LayerVersion>>> {
    let all = s.control.list_layer_versions(&caller, &name).await?;
    Ok(axum::Json(Page::of(all, q.limit, q.next_token.as_deref())?))
}

#[utoipa::path(get, path = "/v1/layers/{name}/versions/{version}", tag = "layers", params(LayerVersionPath),
    responses((status = 200, body = LayerVersion), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path((name, version)): Path<(String, u32)>,
) -> ApiResult<axum::Json<LayerVersion>> {
    Ok(axum::Json(
        s.control.get_layer_version(&caller, &name, version).await?,
    ))
}

/// Delete a layer version; 409 while a function version uses it.
#[utoipa::path(delete, path = "/v1/layers/{name}/versions/{version}", tag = "layers", params(LayerVersionPath),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path((name, version)): Path<(String, u32)>,
) -> ApiResult<StatusCode> {
    s.control
        .delete_layer_version(&caller, &name, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
