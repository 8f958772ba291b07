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

/// How long a throttled attempt (the function at `MaxInstances`) waits
/// before it is tried again; throttled attempts are not counted.
pub const THROTTLE_DELAY: Duration = Duration::from_millis(250);

/// `errorType` of a final attempt whose worker stopped before recording it.
pub const ATTEMPT_LOST: &str = "Platform.AttemptLost";

/// One asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The token of the claim that runs it now. An attempt's outcome is
    /// recorded only while the stored row still holds the token its claim
    /// got, so a worker whose lease ran out cannot overwrite a newer attempt.
    #[serde(skip)]
    pub lease_token: Option<String>,
    /// The dead letter queued when this invocation finally failed.
    #[serde(default)]
    pub dead_letter_request_id: Option<String>,
    /// On a dead letter: the request id of the invocation it reports. Dead
    /// letters are not dead-lettered again (two functions naming each other
    /// would otherwise pass failures back and forth).
    #[serde(default)]
    pub dead_letter_of: Option<String>,
    /// HotSwap: the function it was queued for. An attempt runs only on that
    /// function: one deleted meanwhile (even if created again under the same
    /// name) fails it. `None` for invocations queued before function ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_id: Option<String>,
    /// HotSwap: the trigger (a schedule tick) that queued it, whose
    /// `failureCount` a final failure adds to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
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
            lease_token: None,
            dead_letter_request_id: None,
            dead_letter_of: None,
            function_id: None,
            trigger_id: None,
        }
    }

    /// Whether a claim may start another attempt.
    pub fn has_attempts_left(&self) -> bool {
        self.attempts < self.max_attempts
    }

    /// Puts back an attempt that never ran because the function was at its
    /// concurrency limit: not counted, tried again after `delay`.
    pub fn requeue_throttled(&mut self, delay: Duration) {
        let now = time::now();
        self.attempts = self.attempts.saturating_sub(1);
        self.status = AsyncStatus::Queued;
        self.next_attempt_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        self.lease_until = None;
        self.lease_token = None;
        self.updated_at = now;
    }

    /// Ends an invocation whose last attempt was lost with its worker (the
    /// lease ran out before an outcome was recorded): it has failed.
    pub fn fail_lost_attempt(&mut self) {
        let message = format!(
            "the worker running attempt {} of {} stopped before recording its outcome",
            self.attempts, self.max_attempts
        );
        let result = InvocationResult {
            success: false,
            status_code: 500,
            request_id: self.request_id.clone(),
            body: Some(
                serde_json::json!({ "errorType": ATTEMPT_LOST, "errorMessage": message })
                    .to_string(),
            ),
            error_type: Some(ATTEMPT_LOST.to_owned()),
            error_message: Some(message),
            ..InvocationResult::default()
        };
        let executed = self.executed_version.take();
        self.attempts = self.max_attempts;
        self.finish_attempt(result, executed);
    }

    /// The request id of this invocation's dead letter: derived from its own,
    /// so that queueing it again (after a crash) finds the one queued before.
    pub fn dead_letter_id(&self) -> String {
        format!("{}-dlq", self.request_id)
    }

    /// The dead letter of this finally failed invocation for `target`, in the
    /// shape of a Lambda destination record: the original event (as JSON when
    /// it is JSON, else its base64) and the last error.
    pub fn dead_letter(&self, target: &crate::DeadLetterTarget) -> AsyncInvocation {
        use base64::Engine;
        let event = base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .unwrap_or_else(|| serde_json::Value::String(self.payload.clone()));
        let result = self.result.clone().unwrap_or_default();
        let error = result
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .unwrap_or_else(|| {
                serde_json::json!({
                    "errorType": result.error_type,
                    "errorMessage": result.error_message,
                })
            });
        let record = serde_json::json!({
            "version": "1.0",
            "timestamp": time::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requestContext": {
                "requestId": self.request_id,
                "functionName": self.function_name,
                "qualifier": self.qualifier,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": self.attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": result.status_code,
                "executedVersion": self.executed_version,
                "functionError": result.error_type,
            },
            "responsePayload": error,
        });
        let mut letter = AsyncInvocation::new(
            self.dead_letter_id(),
            target.function.clone(),
            target.qualifier.to_string(),
            self.owner_id.clone(),
            base64::engine::general_purpose::STANDARD.encode(record.to_string()),
            "application/json",
        );
        letter.dead_letter_of = Some(self.request_id.clone());
        letter
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
        self.lease_token = None;
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

    #[test]
    fn a_throttled_attempt_is_not_counted() {
        let mut a = AsyncInvocation::new("r", "f", "1", "o", "", "application/json");
        a.attempts = 1;
        a.status = AsyncStatus::Running;
        a.lease_token = Some("t".into());
        let before = time::now();
        a.requeue_throttled(THROTTLE_DELAY);
        assert_eq!(
            (a.status, a.attempts, a.lease_token.as_deref()),
            (AsyncStatus::Queued, 0, None)
        );
        assert!(a.next_attempt_at >= before + chrono::Duration::milliseconds(200));
        assert!(a.has_attempts_left());
    }

    #[test]
    fn a_lost_last_attempt_fails_it() {
        let mut a = AsyncInvocation::new("r", "f", "1", "o", "", "application/json");
        a.attempts = 3;
        a.status = AsyncStatus::Running;
        assert!(!a.has_attempts_left());
        a.fail_lost_attempt();
        assert_eq!(a.status, AsyncStatus::Failed);
        let r = a.result.unwrap();
        assert_eq!(r.error_type.as_deref(), Some(ATTEMPT_LOST));
    }

    #[test]
    fn dead_letters_carry_the_event_and_the_error() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let decode = |inv: &AsyncInvocation| -> serde_json::Value {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&inv.payload)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let mut a = AsyncInvocation::new(
            "req",
            "f",
            "prod",
            "alice",
            b64(r#"{"n":1}"#),
            "application/json",
        );
        a.attempts = 3;
        a.finish_attempt(
            InvocationResult {
                status_code: 200,
                body: Some(r#"{"errorType":"ValueError","errorMessage":"bad"}"#.into()),
                error_type: Some("ValueError".into()),
                ..failed()
            },
            Some("4".into()),
        );
        let target: crate::DeadLetterTarget = "dlq:live".parse().unwrap();
        let letter = a.dead_letter(&target);
        assert_eq!(letter.request_id, "req-dlq");
        assert_eq!(letter.request_id, a.dead_letter_id());
        assert_eq!(
            (
                letter.function_name.as_str(),
                letter.qualifier.as_str(),
                letter.owner_id.as_str()
            ),
            ("dlq", "live", "alice")
        );
        assert_eq!(letter.dead_letter_of.as_deref(), Some("req"));
        assert_eq!(letter.status, AsyncStatus::Queued);
        let record = decode(&letter);
        assert_eq!(record["version"], "1.0");
        assert_eq!(record["requestContext"]["requestId"], "req");
        assert_eq!(record["requestContext"]["functionName"], "f");
        assert_eq!(record["requestContext"]["qualifier"], "prod");
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(record["requestPayload"], serde_json::json!({ "n": 1 }));
        assert_eq!(record["responseContext"]["executedVersion"], "4");
        assert_eq!(record["responseContext"]["functionError"], "ValueError");
        assert_eq!(record["responsePayload"]["errorMessage"], "bad");
        assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));

        // An event that is not JSON travels as its base64.
        a.payload = b64("\u{1}binary");
        let record = decode(&a.dead_letter(&target));
        assert_eq!(record["requestPayload"], b64("\u{1}binary"));
    }
}
