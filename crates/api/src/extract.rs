//! Extractors whose rejections speak the API's error model: JSON bodies,
//! path and query parameters, and the caller's identity.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use hotswap_control::{FunctionRef, Principal};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(
            "request body is larger than the configured limit (--max-body-bytes)",
        )
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        ApiError::new(
            status,
            "UnsupportedMediaType",
            "expected a JSON body with Content-Type: application/json",
        )
    } else {
        ApiError::bad_request(text)
    }
}

/// `axum::Json` with JSON errors: 400 for malformed JSON, unknown fields and
/// wrong types; 413 past the body limit; 415 without a JSON content type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::bad_request(e.body_text())),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::bad_request(e.body_text())),
            Err(e) => Err(body_error(e.status(), e.body_text())),
        }
    }
}

/// An optional JSON body: empty body → `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| body_error(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        parse_json(&mut de).map(OptionalJson)
    }
}

fn parse_json<T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, ApiError> {
    let v = T::deserialize(&mut *de)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(v)
}

/// `axum::extract::Path` with JSON errors.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))
    }
}

/// `axum::extract::Query` with JSON errors. The `owner` parameter is left
/// out: it names the namespace of the function a route addresses, which
/// [`FunctionPath`] and [`Owner`] read for every route alike.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(OWNER_PARAM))
            .collect();
        let uri: axum::http::Uri = format!("/?{}", rest.join("&"))
            .parse()
            .map_err(|_| ApiError::bad_request("invalid query string"))?;
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The query parameter that names a function's owner.
const OWNER_PARAM: &str = "owner";

#[derive(serde::Deserialize)]
struct OwnerParam {
    owner: Option<String>,
}

/// `?owner=OWNER`: the namespace of the functions a request addresses
/// (function names are unique per owner). `None` means the caller's own;
/// only an admin may name another (a tenant gets 404 for reads and 403 for
/// writes, as for any function it cannot see).
pub struct Owner(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = axum::extract::Query::<OwnerParam>::try_from_uri(&parts.uri)
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))?;
        match q.0.owner {
            Some(o) if o.trim().is_empty() => {
                Err(ApiError::validation(vec!["owner must not be empty".into()]))
            }
            owner => Ok(Owner(owner)),
        }
    }
}

/// The function a `/v1/functions/{name}/…` route addresses: `{name}` in the
/// namespace of `?owner=` (or the caller's own). Every function-scoped
/// handler takes it, so the owner rule lives here once.
pub struct FunctionPath(pub FunctionRef);

impl<S: Send + Sync> FromRequestParts<S> for FunctionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await?;
        let name = params
            .get("name")
            .cloned()
            .ok_or_else(|| ApiError::bad_request("this route names no function"))?;
        let Owner(owner) = Owner::from_request_parts(parts, state).await?;
        Ok(FunctionPath(FunctionRef { owner, name }))
    }
}

/// The authenticated caller (`Authorization: Bearer TOKEN`).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer TOKEN'"))?;
        state.authenticate(secret).await.map(Caller)
    }
}
