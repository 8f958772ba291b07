//! What can go wrong in a client command, how it is shown, and which exit
//! code it gives.

use std::fmt;

use serde::Deserialize;

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code when the server refused the request or could not be reached.
pub const EXIT_API: i32 = 1;
/// Exit code for bad usage or local problems found before any request.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when an invoked function itself failed (it raised, timed out or
/// crashed); the platform answered normally.
pub const EXIT_FUNCTION: i32 = 3;
/// Exit code when a followed deployment ended without completing (rolled
/// back, failed or cancelled).
pub const EXIT_DEPLOYMENT: i32 = 4;

/// An error answer from the API: the HTTP status and the error body
/// `{ "code", "message", "errors" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl ApiError {
    /// Builds the error from a non-2xx answer. A body that is not the API's
    /// error JSON (a proxy's HTML page, say) still gives a readable error.
    pub fn from_response(status: u16, body: &str) -> Self {
        if let Ok(mut e) = serde_json::from_str::<ApiError>(body) {
            e.status = status;
            return e;
        }
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        let text = body.trim();
        let message = if text.is_empty() {
            format!("HTTP {status} {reason}")
        } else {
            let short: String = text.chars().take(300).collect();
            format!("HTTP {status} {reason}: {short}")
        };
        ApiError {
            status,
            code: format!("Http{status}"),
            message,
            errors: Vec::new(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Any failure of a client command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input or a local problem (missing directory, unreadable file, …),
    /// found before any request was sent.
    #[error("{0}")]
    Usage(String),

    /// The server answered with an error.
    #[error(transparent)]
    Api(ApiError),

    /// The server could not be reached, or the connection broke.
    #[error("cannot reach HotSwap at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The server answered 2xx with something that is not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    BadResponse(String),

    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),

    /// An invoked function failed: its error type (`ValueError`,
    /// `Sandbox.Timedout`, …) and message. The result was already printed.
    #[error("function error {error_type}{}", colon_message(.message))]
    Function { error_type: String, message: String },

    /// A followed deployment ended without completing; the deployment was
    /// already printed.
    #[error("deployment {status}{}", colon_message(.reason))]
    Deployment { status: String, reason: String },
}

fn colon_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Api(_)
            | CliError::Unreachable { .. }
            | CliError::BadResponse(_)
            | CliError::Output(_) => EXIT_API,
            CliError::Function { .. } => EXIT_FUNCTION,
            CliError::Deployment { .. } => EXIT_DEPLOYMENT,
        }
    }

    /// The text printed on stderr: `error: CODE: message`, then each field
    /// error on its own line, then a hint where one helps.
    pub fn render(&self, token_given: bool) -> String {
        let mut s = format!("error: {self}\n");
        if let CliError::Api(e) = self {
            for line in &e.errors {
                s.push_str("  - ");
                s.push_str(line);
                s.push('\n');
            }
            if e.status == 401 && !token_given {
                s.push_str("hint: set HOTSWAP_TOKEN or pass --token\n");
            }
        }
        s
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        CliError::Api(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_body_is_parsed_and_rendered() {
        let e = ApiError::from_response(
            400,
            r#"{"code":"ValidationFailed","message":"invalid function","errors":["MemorySize must be between 128 and 10240 MB","Timeout must be between 1 and 900 seconds"]}"#,
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.code, "ValidationFailed");
        let err = CliError::from(e);
        assert_eq!(err.exit_code(), EXIT_API);
        assert_eq!(
            err.render(true),
            "error: ValidationFailed: invalid function\n  - MemorySize must be between 128 and 10240 MB\n  - Timeout must be between 1 and 900 seconds\n"
        );
    }

    #[test]
    fn not_found_renders_on_one_line() {
        let e = ApiError::from_response(
            404,
            r#"{"code":"NotFound","message":"function 'x' not found","errors":[]}"#,
        );
        assert_eq!(
            CliError::from(e).render(true),
            "error: NotFound: function 'x' not found\n"
        );
    }

    #[test]
    fn errors_field_is_optional_and_401_gets_a_hint() {
        let e =
            ApiError::from_response(401, r#"{"code":"Unauthorized","message":"missing token"}"#);
        assert!(e.errors.is_empty());
        let text = CliError::from(e).render(false);
        assert!(text.starts_with("error: Unauthorized: missing token\n"));
        assert!(text.contains("HOTSWAP_TOKEN"));
    }

    #[test]
    fn non_json_error_bodies_stay_readable() {
        let e = ApiError::from_response(502, "<html>Bad Gateway</html>");
        assert_eq!(e.code, "Http502");
        assert_eq!(e.message, "HTTP 502 Bad Gateway: <html>Bad Gateway</html>");
        let e = ApiError::from_response(500, "");
        assert_eq!(e.to_string(), "Http500: HTTP 500 Internal Server Error");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::usage("no such directory").exit_code(), EXIT_USAGE);
        let e = CliError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(e.exit_code(), EXIT_API);
        assert_eq!(
            e.render(true),
            "error: cannot reach HotSwap at http://127.0.0.1:1: connection refused\n"
        );
        let e = CliError::Function {
            error_type: "ValueError".into(),
            message: "bad input: 42".into(),
        };
        assert_eq!(e.exit_code(), EXIT_FUNCTION);
        assert_eq!(
            e.render(false),
            "error: function error ValueError: bad input: 42\n"
        );
        let e = CliError::Function {
            error_type: "Runtime.ExitError".into(),
            message: String::new(),
        };
        assert_eq!(e.render(true), "error: function error Runtime.ExitError\n");
    }
}
