//! What a function's result means for a queue batch: which messages are
//! done (acknowledged) and which come back after the visibility timeout.
//!
//! Without `reportBatchItemFailures` the batch succeeds or fails as one.
//! With it, the function may return `{"batchItemFailures":
//! [{"itemIdentifier": "<messageId>"}]}` and only those messages are
//! retried, with Lambda's rules:
//! - complete success: an empty or `null` `batchItemFailures`, an object
//!   without it (`{}`), a `null` (or empty) response;
//! - complete failure: the invocation failed, a response that is not JSON,
//!   JSON that is not an object, a `batchItemFailures` that is not a list,
//!   an entry whose `itemIdentifier` is missing (a wrong key name), `null`,
//!   empty or not a string, or names a message not in the batch.

use std::collections::HashSet;

use serde_json::Value;

/// How an invocation of the function ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeResult<'a> {
    /// The function returned this payload (JSON, possibly empty).
    Succeeded(&'a [u8]),
    /// The function raised an error, timed out or its instance crashed.
    Failed,
}

/// The fate of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Acknowledge every message.
    AllSucceeded,
    /// Acknowledge none: every message comes back.
    AllFailed,
    /// Only these messages (IDs, in batch order, each once) come back; the
    /// others are acknowledged. Never empty and never the whole batch
    /// (those are [`BatchOutcome::AllSucceeded`] and
    /// [`BatchOutcome::AllFailed`]).
    Partial(Vec<String>),
}

/// Why a `batchItemFailures` response counts as a complete failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedResponse {
    #[error("the function's response is not JSON")]
    NotJson,
    #[error("the function's response is not a JSON object")]
    NotAnObject,
    #[error("batchItemFailures is not a list")]
    NotAList,
    #[error("batchItemFailures[{0}] has no itemIdentifier string")]
    MissingIdentifier(usize),
    #[error("batchItemFailures[{0}].itemIdentifier is empty")]
    EmptyIdentifier(usize),
    #[error("batchItemFailures names '{0}', which is not in the batch")]
    UnknownIdentifier(String),
}

/// The `itemIdentifier`s of a response (as listed), or why the response
/// is malformed. An empty list means complete success.
pub fn parse_batch_item_failures(payload: &[u8]) -> Result<Vec<String>, MalformedResponse> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(payload).map_err(|_| MalformedResponse::NotJson)?;
    let object = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        _ => return Err(MalformedResponse::NotAnObject),
    };
    let items = match object.get("batchItemFailures") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(MalformedResponse::NotAList),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.get("itemIdentifier") {
            Some(Value::String(s)) if s.is_empty() => Err(MalformedResponse::EmptyIdentifier(i)),
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(MalformedResponse::MissingIdentifier(i)),
        })
        .collect()
}

/// The outcome of a batch whose messages have IDs `batch_ids` (in batch
/// order), or why the response made it a complete failure.
pub fn try_queue_outcome<S: AsRef<str>>(
    result: InvokeResult<'_>,
    report_batch_item_failures: bool,
    batch_ids: &[S],
) -> Result<BatchOutcome, MalformedResponse> {
    let payload = match result {
        InvokeResult::Failed => return Ok(BatchOutcome::AllFailed),
        InvokeResult::Succeeded(_) if !report_batch_item_failures => {
            return Ok(BatchOutcome::AllSucceeded)
        }
        InvokeResult::Succeeded(p) => p,
    };
    let listed = parse_batch_item_failures(payload)?;
    if listed.is_empty() {
        return Ok(BatchOutcome::AllSucceeded);
    }
    let in_batch: HashSet<&str> = batch_ids.iter().map(AsRef::as_ref).collect();
    if let Some(unknown) = listed.iter().find(|id| !in_batch.contains(id.as_str())) {
        return Err(MalformedResponse::UnknownIdentifier(unknown.clone()));
    }
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let failed: Vec<String> = batch_ids
        .iter()
        .map(AsRef::as_ref)
        .filter(|id| listed.contains(id) && seen.insert(*id))
        .map(str::to_owned)
        .collect();
    if failed.len() == in_batch.len() {
        return Ok(BatchOutcome::AllFailed);
    }
    Ok(BatchOutcome::Partial(failed))
}

/// [`try_queue_outcome`], a malformed response being a complete failure.
pub fn queue_outcome<S: AsRef<str>>(
    result: InvokeResult<'_>,
    report_batch_item_failures: bool,
    batch_ids: &[S],
) -> BatchOutcome {
    try_queue_outcome(result, report_batch_item_failures, batch_ids)
        .unwrap_or(BatchOutcome::AllFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 3] = ["m1", "m2", "m3"];

    fn with_report(payload: &str) -> BatchOutcome {
        queue_outcome(InvokeResult::Succeeded(payload.as_bytes()), true, &IDS)
    }

    fn malformed(payload: &str) -> MalformedResponse {
        try_queue_outcome(InvokeResult::Succeeded(payload.as_bytes()), true, &IDS).unwrap_err()
    }

    #[test]
    fn without_reporting_the_invocation_decides() {
        let r = |res| queue_outcome(res, false, &IDS);
        assert_eq!(r(InvokeResult::Succeeded(b"")), BatchOutcome::AllSucceeded);
        // The response is not read, even one listing failures.
        let listing = br#"{"batchItemFailures":[{"itemIdentifier":"m1"}]}"#;
        assert_eq!(
            r(InvokeResult::Succeeded(listing)),
            BatchOutcome::AllSucceeded
        );
        assert_eq!(
            r(InvokeResult::Succeeded(b"not json")),
            BatchOutcome::AllSucceeded
        );
        assert_eq!(r(InvokeResult::Failed), BatchOutcome::AllFailed);
    }

    #[test]
    fn a_failed_invocation_fails_the_batch_even_with_reporting() {
        assert_eq!(
            queue_outcome(InvokeResult::Failed, true, &IDS),
            BatchOutcome::AllFailed
        );
    }

    #[test]
    fn empty_list_is_complete_success() {
        assert_eq!(
            with_report(r#"{"batchItemFailures":[]}"#),
            BatchOutcome::AllSucceeded
        );
    }

    #[test]
    fn null_list_is_complete_success() {
        assert_eq!(
            with_report(r#"{"batchItemFailures":null}"#),
            BatchOutcome::AllSucceeded
        );
    }

    #[test]
    fn empty_object_or_other_keys_is_complete_success() {
        assert_eq!(with_report("{}"), BatchOutcome::AllSucceeded);
        assert_eq!(
            with_report(r#"{"statusCode":200}"#),
            BatchOutcome::AllSucceeded
        );
    }

    #[test]
    fn null_or_empty_response_is_complete_success() {
        assert_eq!(with_report("null"), BatchOutcome::AllSucceeded);
        assert_eq!(with_report(""), BatchOutcome::AllSucceeded);
        assert_eq!(with_report(" \n"), BatchOutcome::AllSucceeded);
    }

    #[test]
    fn listed_items_fail_alone_in_batch_order_once() {
        assert_eq!(
            with_report(
                r#"{"batchItemFailures":[{"itemIdentifier":"m3"},{"itemIdentifier":"m1"},{"itemIdentifier":"m3"}]}"#
            ),
            BatchOutcome::Partial(vec!["m1".into(), "m3".into()])
        );
        // Other keys of an entry are ignored.
        assert_eq!(
            with_report(r#"{"batchItemFailures":[{"itemIdentifier":"m2","reason":"x"}]}"#),
            BatchOutcome::Partial(vec!["m2".into()])
        );
    }

    #[test]
    fn every_item_listed_is_complete_failure() {
        assert_eq!(
            with_report(
                r#"{"batchItemFailures":[{"itemIdentifier":"m2"},{"itemIdentifier":"m1"},{"itemIdentifier":"m3"}]}"#
            ),
            BatchOutcome::AllFailed
        );
    }

    #[test]
    fn invalid_json_is_complete_failure() {
        assert_eq!(malformed("{batchItemFailures:"), MalformedResponse::NotJson);
        assert_eq!(with_report("{batchItemFailures:"), BatchOutcome::AllFailed);
    }

    #[test]
    fn json_that_is_not_an_object_is_complete_failure() {
        for p in [r#""ok""#, "42", "true", r#"[{"itemIdentifier":"m1"}]"#] {
            assert_eq!(malformed(p), MalformedResponse::NotAnObject, "{p}");
            assert_eq!(with_report(p), BatchOutcome::AllFailed, "{p}");
        }
    }

    #[test]
    fn a_list_that_is_not_a_list_is_complete_failure() {
        for p in [
            r#"{"batchItemFailures":"m1"}"#,
            r#"{"batchItemFailures":{"itemIdentifier":"m1"}}"#,
        ] {
            assert_eq!(malformed(p), MalformedResponse::NotAList, "{p}");
        }
    }

    #[test]
    fn null_identifier_is_complete_failure() {
        assert_eq!(
            malformed(r#"{"batchItemFailures":[{"itemIdentifier":"m1"},{"itemIdentifier":null}]}"#),
            MalformedResponse::MissingIdentifier(1)
        );
    }

    #[test]
    fn empty_identifier_is_complete_failure() {
        assert_eq!(
            malformed(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#),
            MalformedResponse::EmptyIdentifier(0)
        );
    }

    #[test]
    fn bad_key_name_is_complete_failure() {
        assert_eq!(
            malformed(r#"{"batchItemFailures":[{"itemId":"m1"}]}"#),
            MalformedResponse::MissingIdentifier(0)
        );
        assert_eq!(
            malformed(r#"{"batchItemFailures":["m1"]}"#),
            MalformedResponse::MissingIdentifier(0)
        );
    }

    #[test]
    fn identifier_that_is_not_a_string_is_complete_failure() {
        assert_eq!(
            malformed(r#"{"batchItemFailures":[{"itemIdentifier":1}]}"#),
            MalformedResponse::MissingIdentifier(0)
        );
    }

    #[test]
    fn identifier_not_in_the_batch_is_complete_failure() {
        assert_eq!(
            malformed(r#"{"batchItemFailures":[{"itemIdentifier":"m1"},{"itemIdentifier":"m9"}]}"#),
            MalformedResponse::UnknownIdentifier("m9".into())
        );
        assert_eq!(
            with_report(r#"{"batchItemFailures":[{"itemIdentifier":"m9"}]}"#),
            BatchOutcome::AllFailed
        );
    }

    #[test]
    fn messages_say_what_was_wrong() {
        assert_eq!(
            MalformedResponse::UnknownIdentifier("m9".into()).to_string(),
            "batchItemFailures names 'm9', which is not in the batch"
        );
    }
}
