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
use hotswap_control::{hash_token, ControlPlane, Principal};
use hotswap_runner::Runner;

pub mod dto;
pub mod error;
pub mod extract;
pub mod openapi;
mod routes;

pub use error::{ApiError, ApiResult};

/// How long a resolved token is trusted without asking the store again.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub control: ControlPlane,
    pub runner: Arc<Runner>,
    tokens: Arc<RwLock<HashMap<String, (Principal, Instant)>>>,
}

impl AppState {
    pub fn new(control: ControlPlane, runner: Arc<Runner>) -> Self {
        Self {
            control,
            runner,
            tokens: Arc::default(),
        }
    }

    /// Resolves a bearer secret, with a short-lived cache keyed by its hash
    /// so that the hot path does not hit the store on every request.
    pub async fn authenticate(&self, secret: &str) -> ApiResult<Principal> {
        let key = hash_token(secret);
        if let Some((p, at)) = self.tokens.read().ok().and_then(|m| m.get(&key).cloned()) {
            if at.elapsed() < TOKEN_CACHE_TTL {
                return Ok(p);
            }
        }
        let principal = self
            .control
            .authenticate(secret)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API token"))?;
        if let Ok(mut m) = self.tokens.write() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(key, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        // A 50 MiB zip grows by a third in base64, plus the JSON around it.
        Self {
            max_body_bytes: 70 * 1024 * 1024,
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(prometheus))
        .nest("/v1", routes::v1())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(state)
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match state.control.store().has_admin_token().await {
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
/// version only), warm instances, isolation.
async fn prometheus(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl IntoResponse {
    let r = &state.runner;
    let mut text = r.metrics().prometheus(r.idle_instances(), r.isolated());
    text.push_str(&r.logs().prometheus());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
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
