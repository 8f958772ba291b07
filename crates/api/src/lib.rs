//! The HotSwap REST API: axum routes under `/v1`, `/healthz`, and the
//! OpenAPI document at `/v1/openapi.json`. Handlers are thin: they decode the
//! request, call the [`ControlPlane`], and encode the result or the error.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hotswap_control::{hash_token, ControlPlane, Grant, Principal, Refused, TokenRole};
use hotswap_router::Router as InvocationRouter;
use hotswap_tasks::Driver;

pub mod dto;
pub mod error;
pub mod extract;
pub mod openapi;
mod routes;

pub use error::{ApiError, ApiResult};

/// How long a resolved token is trusted without asking the store again: a
/// token revoked through another server (sharing the database) keeps
/// working here for at most this long. Expiry is checked on every request.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

/// Most tokens the cache holds; past it, it starts over.
const TOKEN_CACHE_MAX: usize = 10_000;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub control: ControlPlane,
    /// The one way into a function.
    pub router: Arc<InvocationRouter>,
    /// The server's background tasks, reported by `GET /v1/status`.
    pub tasks: Option<Arc<Driver>>,
    /// HTTP triggers (`/fn/…`); none: `/fn` answers 404.
    pub gateway: Option<Arc<hotswap_triggers::gateway::Gateway>>,
    /// What each trigger has done on this server.
    pub trigger_stats: Arc<hotswap_triggers::stats::TriggerStats>,
    /// The server's public base URL (HTTP trigger URLs start with it).
    pub public_url: String,
    /// Verified tokens by the SHA-256 of their secret, with when they were
    /// read from the store.
    tokens: Arc<RwLock<HashMap<String, (Grant, Instant)>>>,
    /// Serve `/metrics` without a token (`--metrics-public`).
    metrics_public: bool,
    /// Event size limits of invocations (set by [`router`] from [`ApiConfig`]).
    pub(crate) payload: PayloadLimits,
}

/// The largest invocation events, in bytes (Lambda's limits by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// A synchronous event (6 MiB on Lambda).
    pub sync_bytes: usize,
    /// An asynchronous event, as it would be stored (256 KiB on Lambda).
    pub async_bytes: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        Self {
            sync_bytes: 6 * 1024 * 1024,
            async_bytes: 256 * 1024,
        }
    }
}

impl AppState {
    pub fn new(router: Arc<InvocationRouter>) -> Self {
        Self {
            control: router.control().clone(),
            router,
            tasks: None,
            gateway: None,
            trigger_stats: Arc::default(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            tokens: Arc::default(),
            payload: PayloadLimits::default(),
            metrics_public: false,
        }
    }

    /// Resolves a bearer secret to its grant, with a short-lived cache keyed
    /// by its hash so that the hot path does not hit the store on every
    /// request. Unknown, revoked and expired tokens are 401; expiry is
    /// checked on cache hits too.
    pub async fn verify(&self, secret: &str) -> ApiResult<Grant> {
        let key = hash_token(secret);
        let cached = self.tokens.read().ok().and_then(|m| m.get(&key).cloned());
        let grant = match cached {
            Some((grant, at)) if at.elapsed() < TOKEN_CACHE_TTL => grant,
            _ => {
                let grant = self
                    .control
                    .verify_token(secret)
                    .await?
                    .map_err(|refused| ApiError::unauthorized(refused.to_string()))?;
                if let Ok(mut m) = self.tokens.write() {
                    if m.len() >= TOKEN_CACHE_MAX {
                        m.clear();
                    }
                    m.insert(key.clone(), (grant.clone(), Instant::now()));
                }
                grant
            }
        };
        if grant.is_expired(chrono::Utc::now()) {
            if let Ok(mut m) = self.tokens.write() {
                m.remove(&key);
            }
            return Err(ApiError::unauthorized(Refused::Expired.to_string()));
        }
        Ok(grant)
    }

    /// The API identity behind a bearer secret: tenant and admin tokens
    /// only; a `metrics` (or `runner`) token is 403 here.
    pub async fn authenticate(&self, secret: &str) -> ApiResult<Principal> {
        let grant = self.verify(secret).await?;
        grant.principal().ok_or_else(|| {
            ApiError::forbidden(format!(
                "a {} token cannot use the /v1 API",
                grant.role.as_str()
            ))
        })
    }

    /// Drops a revoked token from this server's cache, so that it is
    /// refused here at once.
    pub fn forget_token(&self, token_id: &str) {
        if let Ok(mut m) = self.tokens.write() {
            m.retain(|_, (grant, _)| grant.token_id != token_id);
        }
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (bytes); larger ones get 413
    /// `PayloadTooLarge`.
    pub max_body_bytes: usize,
    /// Largest invocation events; larger ones get 413 `RequestEntityTooLarge`
    /// (invoke bodies are limited by these alone, not by `max_body_bytes`).
    pub payload: PayloadLimits,
    /// Serve `/metrics` to anyone who can reach it (no token).
    pub metrics_public: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        // A 50 MiB zip grows by a third in base64, plus the JSON around it.
        Self {
            max_body_bytes: 70 * 1024 * 1024,
            payload: PayloadLimits::default(),
            metrics_public: false,
        }
    }
}

/// The whole HTTP application.
pub fn router(mut state: AppState, config: &ApiConfig) -> Router {
    state.payload = config.payload;
    state.metrics_public = config.metrics_public;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .route("/fn", axum::routing::any(routes::fn_http::serve))
        .route("/fn/", axum::routing::any(routes::fn_http::serve))
        .route("/fn/{*path}", axum::routing::any(routes::fn_http::serve))
        .nest("/v1", routes::v1())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match state.control.check_store().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: metadata store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "metadata store unavailable",
            )
            .into_response()
        }
    }
}

/// Prometheus text: per-version invocation metrics (labels: function and
/// version only), warm instances, isolation. It names every tenant's
/// functions, so it needs an admin or `metrics` token unless the server
/// runs with `--metrics-public`.
async fn prometheus(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl IntoResponse> {
    if !state.metrics_public {
        let secret = extract::bearer(&headers)?;
        let grant = state.verify(secret).await?;
        if !matches!(grant.role, TokenRole::Admin | TokenRole::Metrics) {
            return Err(ApiError::forbidden(
                "/metrics needs an admin or metrics token",
            ));
        }
    }
    let r = state.router.runner();
    let mut text = r.metrics().prometheus(r.idle_instances(), r.isolated());
    text.push_str(&r.logs().prometheus());
    text.push_str(&state.trigger_stats.prometheus());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    ))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method not allowed on this endpoint",
    )
}
