//! Asynchronous invocations: queued durably before the caller gets its 202,
//! retried on failure with backoff, then recorded as succeeded or failed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time;
use crate::value::InvocationResult;

/// Where an asynchronous invocation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AsyncStatus {
    /// Waiting for its next attempt.
    Queued,
    /// Claimed by a worker until its lease runs out.
    Running,
    Succeeded,
    /// Every attempt failed.
    Failed,
}

impl AsyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AsyncStatus::Queued => "Queued",
            AsyncStatus::Running => "Running",
            AsyncStatus::Succeeded => "Succeeded",
            AsyncStatus::Failed => "Failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, AsyncStatus::Succeeded | AsyncStatus::Failed)
    }
}

impl fmt::Display for AsyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AsyncStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            AsyncStatus::Queued,
            AsyncStatus::Running,
            AsyncStatus::Succeeded,
            AsyncStatus::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| format!("unknown async invocation status '{s}'"))
    }
}

/// The first attempt plus two retries, as Lambda does for asynchronous calls.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Delay before the first retry; doubled for each further one.
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// One asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncInvocation {
    pub request_id: String,
    pub function_name: String,
    /// `$LATEST`, a version number or an alias, resolved at each attempt.
    pub qualifier: String,
    /// Who queued it; only they (or an admin) may read it.
    pub owner_id: String,
    /// The event, base64.
    pub payload: String,
    pub content_type: String,
    pub status: AsyncStatus,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    /// A `Running` invocation whose lease has passed is claimed again (its
    /// worker died): at least once, never lost.
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last attempt's result.
    pub result: Option<InvocationResult>,
    pub executed_version: Option<String>,
}

impl AsyncInvocation {
    pub fn new(
        request_id: impl Into<String>,
        function_name: impl Into<String>,
        qualifier: impl Into<String>,
        owner_id: impl Into<String>,
        payload_base64: impl Into<String>,
        content_type: impl Into<String>,
    ) -> Self {
        let now = time::now();
        Self {
            request_id: request_id.into(),
            function_name: function_name.into(),
            qualifier: qualifier.into(),
            owner_id: owner_id.into(),
            payload: payload_base64.into(),
            content_type: content_type.into(),
            status: AsyncStatus::Queued,
            attempts: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            next_attempt_at: now,
            lease_until: None,
            created_at: now,
            updated_at: now,
            result: None,
            executed_version: None,
        }
    }

    /// Records the outcome of the attempt just made: success ends it; a
    /// failure is retried after `RETRY_BASE × 2^(attempt-1)` until
    /// `max_attempts`, then the invocation has failed.
    pub fn finish_attempt(&mut self, result: InvocationResult, executed_version: Option<String>) {
        let now = time::now();
        let success = result.success;
        self.result = Some(result);
        self.executed_version = executed_version;
        self.lease_until = None;
        self.updated_at = now;
        if success {
            self.status = AsyncStatus::Succeeded;
        } else if self.attempts >= self.max_attempts {
            self.status = AsyncStatus::Failed;
        } else {
            self.status = AsyncStatus::Queued;
            let delay = RETRY_BASE * 2u32.saturating_pow(self.attempts.saturating_sub(1));
            self.next_attempt_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> InvocationResult {
        InvocationResult {
            success: false,
            error_type: Some("ValueError".into()),
            ..Default::default()
        }
    }

    #[test]
    fn retried_twice_with_backoff_then_failed() {
        let mut a = AsyncInvocation::new("r", "f", "$LATEST", "o", "e30=", "application/json");
        assert_eq!(
            (a.status, a.attempts, a.max_attempts),
            (AsyncStatus::Queued, 0, 3)
        );
        a.attempts = 1;
        let before = time::now();
        a.finish_attempt(failed(), Some("1".into()));
        assert_eq!(a.status, AsyncStatus::Queued);
        assert!(a.next_attempt_at >= before + chrono::Duration::milliseconds(900));
        a.attempts = 2;
        a.finish_attempt(failed(), None);
        assert_eq!(a.status, AsyncStatus::Queued);
        assert!(
            a.next_attempt_at >= before + chrono::Duration::milliseconds(1900),
            "doubled"
        );
        a.attempts = 3;
        a.finish_attempt(failed(), None);
        assert_eq!(a.status, AsyncStatus::Failed);
        assert!(a.status.is_final());
    }

    #[test]
    fn success_ends_it() {
        let mut a = AsyncInvocation::new("r", "f", "1", "o", "", "application/json");
        a.attempts = 1;
        a.finish_attempt(
            InvocationResult {
                success: true,
                ..Default::default()
            },
            Some("1".into()),
        );
        assert_eq!(a.status, AsyncStatus::Succeeded);
        assert_eq!(
            "Succeeded".parse::<AsyncStatus>().unwrap(),
            AsyncStatus::Succeeded
        );
    }
}
