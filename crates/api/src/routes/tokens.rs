use axum::extract::State;
use axum::http::StatusCode;

use crate::dto::{CreateTokenRequest, TokenResponse, WhoAmIResponse};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery};
use crate::AppState;

/// Issue an API token for an owner (admin only).
#[utoipa::path(post, path = "/v1/tokens", tag = "auth", request_body = CreateTokenRequest,
    responses((status = 201, body = TokenResponse), (status = 403, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<TokenResponse>)> {
    let token = s
        .control
        .create_token(&caller, &req.owner_id, req.admin)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenResponse {
            token,
            owner_id: req.owner_id,
            admin: req.admin,
        }),
    ))
}

/// The identity behind the presented token.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", responses((status = 200, body = WhoAmIResponse)))]
pub(crate) async fn whoami(Caller(caller): Caller, _: NoQuery) -> axum::Json<WhoAmIResponse> {
    axum::Json(WhoAmIResponse {
        owner_id: caller.owner_id,
        admin: caller.is_admin,
    })
}
