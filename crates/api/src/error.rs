//! The one public error shape: `{ "code", "message", "errors": [...] }`,
//! built here and nowhere else. Internal detail goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hotswap_control::ControlError;
use serde::Serialize;

/// An API error as the caller sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable machine-readable code: `ValidationFailed`, `NotFound`,
    /// `Conflict`, `PayloadTooLarge`, `Unauthorized`, `Forbidden`,
    /// `BadRequest`, `InvalidCode`, `UnsupportedMediaType`, `MethodNotAllowed`,
    /// `Internal`.
    pub code: &'static str,
    pub message: String,
    /// Every validation message that applies (empty otherwise).
    pub errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn validation(errors: Vec<String>) -> Self {
        let message = match errors.as_slice() {
            [one] => one.clone(),
            _ => format!("{} validation errors", errors.len()),
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "ValidationFailed",
            message,
            errors,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", message)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Validation(errors) => ApiError::validation(errors.into_messages()),
            ControlError::NotFound(m) => ApiError::not_found(m),
            ControlError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "Forbidden", m),
            ControlError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            ControlError::PayloadTooLarge(m) => ApiError::payload_too_large(m),
            ControlError::InvalidCode(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "InvalidCode", m)
            }
            ControlError::Internal(source) => {
                let mut chain = source.to_string();
                let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&source);
                while let Some(c) = cause {
                    chain.push_str(": ");
                    chain.push_str(&c.to_string());
                    cause = c.source();
                }
                tracing::error!(error = %chain, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
