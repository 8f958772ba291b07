//! The control plane's error type. The API maps each variant to one status
//! and one stable code.

use hotswap_domain::ValidationErrors;
use hotswap_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Input broke domain rules; every message applies.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// The resource does not exist, or the caller may not see it.
    #[error("{0}")]
    NotFound(String),
    /// The caller may see the resource but not change it.
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The code package is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The code package is not a usable zip.
    #[error("{0}")]
    InvalidCode(String),
    /// Stored data is unreadable, or a backend failed.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ControlError {
    pub fn validation(message: impl Into<String>) -> Self {
        ControlError::Validation(ValidationErrors::from(message.into()))
    }
}

impl From<ValidationErrors> for ControlError {
    fn from(e: ValidationErrors) -> Self {
        ControlError::Validation(e)
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { kind, id } => {
                ControlError::NotFound(format!("{kind} '{id}' not found"))
            }
            StoreError::Conflict(m) => ControlError::Conflict(m),
            other => ControlError::Internal(other),
        }
    }
}
