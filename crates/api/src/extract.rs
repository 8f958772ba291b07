//! Extractors whose rejections speak the API's error model: JSON bodies,
//! path and query parameters, and the caller's identity.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
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

/// Whether the request says its body is JSON (`application/json` or a
/// `+json` type, parameters allowed).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// A JSON body with JSON errors: 400 for malformed JSON, unknown fields and
/// wrong types; 413 past the body limit; 415 without a JSON content type.
///
/// JSON has one number type: `3.0` is the integer 3 (JSON Schema's
/// `integer` admits it), so whole numbers written with a fraction or an
/// exponent are read as integers before the body meets the Rust type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(body_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                String::new(),
            ));
        }
        let bytes = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| body_error(e.status(), e.body_text()))?;
        parse_json(&bytes).map(Json)
    }
}

/// An optional JSON body: an empty body or `null` → `T::default()`.
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
        match parse_json::<Option<T>>(&bytes)? {
            Some(v) => Ok(OptionalJson(v)),
            None => Ok(OptionalJson(T::default())),
        }
    }
}

/// Parses a JSON document into `T` (whole numbers normalised, see [`Json`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    whole_numbers_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body: {path}: {inner}"))
        }
    })
}

/// Rewrites every float that is a whole number within ±2^53 (where `f64`
/// is exact) as an integer, in place.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() <= EXACT {
                    // Exact: |f| ≤ 2^53 and whole, so the casts lose nothing.
                    *n = if f >= 0.0 {
                        serde_json::Number::from(f as u64)
                    } else {
                        serde_json::Number::from(f as i64)
                    };
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(whole_numbers_as_integers)
        }
        _ => {}
    }
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

/// Whether `?owner=` means something on this request: a function's routes
/// (read by [`FunctionPath`], or by [`Owner`] on `/v1/functions`), the
/// trigger listing, creating or listing security groups, and the queue
/// routes. Everywhere else it is an unknown parameter (400), never
/// silently ignored.
fn owner_applies(parts: &Parts) -> bool {
    // Inside the `/v1` nest the path has lost its prefix.
    let path = parts.uri.path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    path.starts_with("/functions")
        || (path == "/triggers" && parts.method == Method::GET)
        || path == "/security-groups"
        || path == "/queues"
        || path.starts_with("/queues/")
}

/// The query parameters other than an `owner` that [`owner_applies`] to.
fn query_pairs(parts: &Parts) -> impl Iterator<Item = &str> {
    let skip_owner = owner_applies(parts);
    parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(move |pair| !(skip_owner && pair.split('=').next() == Some(OWNER_PARAM)))
}

/// `axum::extract::Query` with JSON errors. An `owner` that names the
/// function's namespace is left out ([`FunctionPath`] and [`Owner`] read
/// it); anywhere else it is refused like any unknown parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let rest: Vec<&str> = query_pairs(parts).collect();
        let uri: axum::http::Uri = format!("/?{}", rest.join("&"))
            .parse()
            .map_err(|_| ApiError::bad_request("invalid query string"))?;
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The secret of an `Authorization: Bearer TOKEN` header; 401 when it is
/// missing or malformed.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer TOKEN'"))
}

/// For operations that take no query parameters: any parameter is refused
/// with 400, as the typed query structs refuse the ones they do not name —
/// except an `owner` that [`owner_applies`] to.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let first = query_pairs(parts).next();
        match first {
            None => Ok(NoQuery),
            Some(pair) => {
                let name: String = pair
                    .split('=')
                    .next()
                    .unwrap_or(pair)
                    .chars()
                    .take(64)
                    .collect();
                Err(ApiError::bad_request(format!(
                    "unknown query parameter '{name}': this endpoint takes none"
                )))
            }
        }
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
            Some(o) if !hotswap_control::valid_owner_id(&o) => Err(ApiError::validation(vec![
                "owner must be 1-128 letters, digits, '-', '_', '.' or '@'".into(),
            ])),
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

/// The authenticated caller (`Authorization: Bearer TOKEN`) of a tenant or
/// admin token; other roles get 403.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(&parts.headers)?;
        state.authenticate(secret).await.map(Caller)
    }
}
