//! What a function's result means for a stream batch: how far the shard's
//! checkpoint may advance.
//!
//! Without `reportBatchItemFailures` the batch succeeds or fails as one.
//! With it, `{"batchItemFailures": [{"itemIdentifier": "<sequenceNumber>"}]}`
//! moves the checkpoint up to the lowest listed record (the earliest in the
//! batch, whose records are in shard order); the records from it on are
//! retried. The success and failure rules for malformed responses are the
//! queue's ([`crate::queue::response`]): an identifier that is missing,
//! `null`, empty or not a sequence number of the batch fails the batch.

use std::collections::HashSet;

use crate::queue::response::{parse_batch_item_failures, InvokeResult, MalformedResponse};

/// The fate of a stream batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Checkpoint past the whole batch.
    AllSucceeded,
    /// Checkpoint unchanged; the whole batch is retried.
    AllFailed,
    /// Records before `first_failed` (an index into the batch, at least 1)
    /// succeeded: checkpoint past them and retry from `first_failed`, whose
    /// sequence number is `sequence_number`. A listed first record is
    /// [`StreamOutcome::AllFailed`].
    Partial {
        first_failed: usize,
        sequence_number: String,
    },
}

/// The outcome of a batch whose records have `sequence_numbers` (in batch
/// order), or why the response made it a complete failure.
pub fn try_stream_outcome<S: AsRef<str>>(
    result: InvokeResult<'_>,
    report_batch_item_failures: bool,
    sequence_numbers: &[S],
) -> Result<StreamOutcome, MalformedResponse> {
    let payload = match result {
        InvokeResult::Failed => return Ok(StreamOutcome::AllFailed),
        InvokeResult::Succeeded(_) if !report_batch_item_failures => {
            return Ok(StreamOutcome::AllSucceeded)
        }
        InvokeResult::Succeeded(p) => p,
    };
    let listed = parse_batch_item_failures(payload)?;
    if listed.is_empty() {
        return Ok(StreamOutcome::AllSucceeded);
    }
    let in_batch: HashSet<&str> = sequence_numbers.iter().map(AsRef::as_ref).collect();
    if let Some(unknown) = listed.iter().find(|s| !in_batch.contains(s.as_str())) {
        return Err(MalformedResponse::UnknownIdentifier(unknown.clone()));
    }
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let first = sequence_numbers
        .iter()
        .position(|s| listed.contains(s.as_ref()))
        .unwrap_or(0);
    Ok(match first {
        0 => StreamOutcome::AllFailed,
        i => StreamOutcome::Partial {
            first_failed: i,
            sequence_number: sequence_numbers[i].as_ref().to_owned(),
        },
    })
}

/// [`try_stream_outcome`], a malformed response being a complete failure.
pub fn stream_outcome<S: AsRef<str>>(
    result: InvokeResult<'_>,
    report_batch_item_failures: bool,
    sequence_numbers: &[S],
) -> StreamOutcome {
    try_stream_outcome(result, report_batch_item_failures, sequence_numbers)
        .unwrap_or(StreamOutcome::AllFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEQS: [&str; 4] = ["101", "102", "103", "104"];

    fn with_report(payload: &str) -> StreamOutcome {
        stream_outcome(InvokeResult::Succeeded(payload.as_bytes()), true, &SEQS)
    }

    fn failures(seqs: &[&str]) -> String {
        let items: Vec<String> = seqs
            .iter()
            .map(|s| format!(r#"{{"itemIdentifier":"{s}"}}"#))
            .collect();
        format!(r#"{{"batchItemFailures":[{}]}}"#, items.join(","))
    }

    #[test]
    fn without_reporting_the_invocation_decides() {
        let listing = failures(&["103"]);
        assert_eq!(
            stream_outcome(InvokeResult::Succeeded(listing.as_bytes()), false, &SEQS),
            StreamOutcome::AllSucceeded
        );
        assert_eq!(
            stream_outcome(InvokeResult::Failed, false, &SEQS),
            StreamOutcome::AllFailed
        );
        assert_eq!(
            stream_outcome(InvokeResult::Failed, true, &SEQS),
            StreamOutcome::AllFailed
        );
    }

    #[test]
    fn checkpoint_at_the_lowest_failed_record() {
        assert_eq!(
            with_report(&failures(&["104", "102"])),
            StreamOutcome::Partial {
                first_failed: 1,
                sequence_number: "102".into()
            }
        );
        assert_eq!(
            with_report(&failures(&["104"])),
            StreamOutcome::Partial {
                first_failed: 3,
                sequence_number: "104".into()
            }
        );
    }

    #[test]
    fn lowest_is_by_batch_order_not_by_text() {
        // Sequence numbers of different lengths: "99" < "100" in the shard.
        let seqs = ["99", "100", "101"];
        let out = stream_outcome(
            InvokeResult::Succeeded(failures(&["101", "100"]).as_bytes()),
            true,
            &seqs,
        );
        assert_eq!(
            out,
            StreamOutcome::Partial {
                first_failed: 1,
                sequence_number: "100".into()
            }
        );
    }

    #[test]
    fn the_first_record_failing_is_complete_failure() {
        assert_eq!(
            with_report(&failures(&["103", "101"])),
            StreamOutcome::AllFailed
        );
    }

    #[test]
    fn empty_null_or_missing_list_is_complete_success() {
        for p in [
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
            "{}",
            "null",
            "",
        ] {
            assert_eq!(with_report(p), StreamOutcome::AllSucceeded, "{p}");
        }
    }

    #[test]
    fn malformed_responses_are_complete_failure() {
        for p in [
            "not json",
            "[]",
            r#""101""#,
            r#"{"batchItemFailures":"101"}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"sequenceNumber":"102"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":102}]}"#,
        ] {
            assert_eq!(with_report(p), StreamOutcome::AllFailed, "{p}");
        }
        assert_eq!(
            try_stream_outcome(
                InvokeResult::Succeeded(failures(&["102", "999"]).as_bytes()),
                true,
                &SEQS
            ),
            Err(MalformedResponse::UnknownIdentifier("999".into()))
        );
    }
}
