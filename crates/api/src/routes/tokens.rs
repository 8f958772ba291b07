use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::{NewToken, TokenRole};

use crate::dto::{
    CreateTokenRequest, ListTokensQuery, Page, TokenInfo, TokenResponse, WhoAmIResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, Path, Query};
use crate::AppState;

/// The role asked for: `role`, or the older `"admin": true`.
fn role_of(req: &CreateTokenRequest) -> ApiResult<TokenRole> {
    match (req.role.map(TokenRole::from), req.admin) {
        (None, admin) => Ok(if admin {
            TokenRole::Admin
        } else {
            TokenRole::Tenant
        }),
        (Some(role), false) | (Some(role @ TokenRole::Admin), true) => Ok(role),
        (Some(role), true) => Err(ApiError::validation(vec![format!(
            "\"admin\": true contradicts \"role\": \"{role}\"; give one of them"
        )])),
    }
}

/// The expiry asked for: `expiresIn` from now, or `expiresAt`.
fn expiry_of(req: &CreateTokenRequest) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    match (req.expires_in, req.expires_at) {
        (Some(_), Some(_)) => Err(ApiError::validation(vec![
            "give expiresIn or expiresAt, not both".into(),
        ])),
        (Some(d), None) if d.is_zero() => Err(ApiError::validation(vec![
            "expiresIn must be more than 0 seconds".into(),
        ])),
        (Some(d), None) => {
            let d = chrono::Duration::from_std(d)
                .map_err(|_| ApiError::validation(vec!["expiresIn is too long".into()]))?;
            Ok(Some(chrono::Utc::now() + d))
        }
        (None, at) => Ok(at),
    }
}

/// Issue an API token (admin only). `role` is `tenant` (default), `admin`
/// or `metrics` (reads `/metrics`, nothing else); `runner` is refused until
/// remote runners exist. The secret is in the answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "auth", request_body = CreateTokenRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<TokenResponse>)> {
    caller.require_admin()?;
    let role = role_of(&req)?;
    let expires_at = expiry_of(&req)?;
    let issued = s
        .control
        .issue_token(
            &caller,
            NewToken {
                owner_id: req.owner_id,
                role,
                name: req.name,
                expires_at,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenResponse {
            token: issued.secret,
            info: issued.token.into(),
        }),
    ))
}

/// List tokens that are not revoked (never their secrets): an admin sees
/// all (or one owner's with `ownerId`), a tenant its own.
#[utoipa::path(get, path = "/v1/tokens", tag = "auth", params(ListTokensQuery),
    responses((status = 200, body = Page<TokenInfo>), (status = 404, body = ApiError)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<ListTokensQuery>,
) -> ApiResult<axum::Json<Page<TokenInfo>>> {
    let tokens = s
        .control
        .list_tokens(&caller, q.owner_id.as_deref())
        .await?;
    let items = tokens.into_iter().map(TokenInfo::from).collect();
    Ok(axum::Json(Page::of(
        items,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

/// One token (an admin: any; a tenant: its own).
#[utoipa::path(get, path = "/v1/tokens/{tokenId}", tag = "auth",
    params(("tokenId" = String, Path, description = "The token's id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(token_id): Path<String>,
    _: NoQuery,
) -> ApiResult<axum::Json<TokenInfo>> {
    let token = s.control.get_token(&caller, &token_id).await?;
    Ok(axum::Json(token.into()))
}

/// Revoke a token (an admin: any; a tenant: its own). This server refuses
/// it at once; other servers sharing the database within 30 s (their token
/// cache). A revoked `HOTSWAP_ADMIN_TOKEN` is never installed again.
#[utoipa::path(delete, path = "/v1/tokens/{tokenId}", tag = "auth",
    params(("tokenId" = String, Path, description = "The token's id")),
    responses((status = 204), (status = 404, body = ApiError)))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(token_id): Path<String>,
    _: NoQuery,
) -> ApiResult<StatusCode> {
    let token = s.control.revoke_token(&caller, &token_id).await?;
    s.forget_token(&token.token_id);
    Ok(StatusCode::NO_CONTENT)
}

/// The identity behind the presented token.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", responses((status = 200, body = WhoAmIResponse)))]
pub(crate) async fn whoami(Caller(caller): Caller, _: NoQuery) -> axum::Json<WhoAmIResponse> {
    axum::Json(WhoAmIResponse {
        owner_id: caller.owner_id,
        admin: caller.is_admin,
    })
}
