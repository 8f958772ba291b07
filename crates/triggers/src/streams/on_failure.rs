//! The record a Stream trigger sends to its `onFailure` destination when it
//! gives up on records: Lambda's shape for Kinesis event sources, which
//! describes the records (shard, first and last sequence numbers, arrival
//! times, count) without their data, so the function or queue that gets it
//! can read them again from the stream while it retains them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::stream::event::{shard_id, StreamRecord};
use crate::stream::retry::Discard;

/// Lambda's name of a [`Discard`] (`requestContext.condition`).
pub fn condition(reason: Discard) -> &'static str {
    match reason {
        Discard::RetriesExhausted => "RetryAttemptsExhausted",
        Discard::RecordExpired => "RecordAgeExceeded",
    }
}

/// How the last attempt at the records ended, if one was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastAttempt {
    /// The function failed; its error type (`Unhandled`, `Handled`…).
    FunctionError(String),
    /// The function returned, listing some of the records as failed (or
    /// answering with an invalid `batchItemFailures`).
    ItemFailures,
}

impl LastAttempt {
    /// From the text of a failed invocation (`"Unhandled: message"` from
    /// the router): its leading error type when it names one, else
    /// `Unhandled`.
    pub fn from_failure(message: &str) -> Self {
        let kind = message
            .split_once(':')
            .map(|(k, _)| k.trim())
            .filter(|k| matches!(*k, "Handled" | "Unhandled"))
            .unwrap_or("Unhandled");
        LastAttempt::FunctionError(kind.to_owned())
    }
}

/// Records given up on, as the on-failure record describes them.
#[derive(Debug, Clone)]
pub struct DiscardedBatch<'a> {
    /// The record's `requestContext.requestId` (a fresh id).
    pub request_id: &'a str,
    pub function_arn: &'a str,
    /// The version that ran the last attempt (`responseContext`).
    pub executed_version: &'a str,
    pub stream_arn: &'a str,
    pub shard: u32,
    /// The records given up on, in shard order (at least one).
    pub records: &'a [StreamRecord],
    pub reason: Discard,
    /// Attempts made with these records (throttled ones not counted).
    pub invoke_count: u32,
    /// `None`: the records were never sent (too old when their turn came).
    pub last_attempt: Option<&'a LastAttempt>,
    /// When they were given up on, milliseconds since the epoch.
    pub at_ms: i64,
}

fn iso(ms: i64) -> Value {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

impl DiscardedBatch<'_> {
    /// The on-failure record. `responseContext.statusCode` is 200 when the
    /// function was invoked (its error, if any, in `functionError`) and 0
    /// when the records were never sent.
    pub fn record(&self) -> Value {
        let first = self.records.first();
        let last = self.records.last();
        let response = match self.last_attempt {
            None => json!({ "statusCode": 0, "executedVersion": null }),
            Some(LastAttempt::ItemFailures) => {
                json!({ "statusCode": 200, "executedVersion": self.executed_version })
            }
            Some(LastAttempt::FunctionError(kind)) => json!({
                "statusCode": 200,
                "executedVersion": self.executed_version,
                "functionError": kind
            }),
        };
        json!({
            "requestContext": {
                "requestId": self.request_id,
                "functionArn": self.function_arn,
                "condition": condition(self.reason),
                "approximateInvokeCount": self.invoke_count
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": iso(self.at_ms),
            "KinesisBatchInfo": {
                "shardId": shard_id(self.shard),
                "startSequenceNumber": first.map(|r| r.sequence_number.as_str()),
                "endSequenceNumber": last.map(|r| r.sequence_number.as_str()),
                "approximateArrivalOfFirstRecord": first.map(|r| iso(r.arrival_timestamp_ms)),
                "approximateArrivalOfLastRecord": last.map(|r| iso(r.arrival_timestamp_ms)),
                "batchSize": self.records.len(),
                "streamArn": self.stream_arn
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str, at: i64) -> StreamRecord {
        StreamRecord {
            partition_key: "k".into(),
            sequence_number: seq.into(),
            data: b"secret".to_vec(),
            arrival_timestamp_ms: at,
        }
    }

    #[test]
    fn has_lambdas_kinesis_shape_without_the_data() {
        let records = [
            record("101", 1_573_690_378_617),
            record("102", 1_573_690_378_700),
            record("103", 1_573_690_378_917),
        ];
        let failed = LastAttempt::from_failure("Unhandled: boom");
        let r = DiscardedBatch {
            request_id: "c9b8fa9f-5a7f-4b5c-af9c-0c604cde93a5",
            function_arn: "arn:aws:lambda:local:000000000000:function:f",
            executed_version: "$LATEST",
            stream_arn: "arn:aws:kinesis:local:000000000000:stream/s",
            shard: 1,
            records: &records,
            reason: Discard::RetriesExhausted,
            invoke_count: 4,
            last_attempt: Some(&failed),
            at_ms: 1_573_690_429_717,
        }
        .record();
        assert_eq!(
            r,
            json!({
                "requestContext": {
                    "requestId": "c9b8fa9f-5a7f-4b5c-af9c-0c604cde93a5",
                    "functionArn": "arn:aws:lambda:local:000000000000:function:f",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 4
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled"
                },
                "version": "1.0",
                "timestamp": "2019-11-14T00:13:49.717Z",
                "KinesisBatchInfo": {
                    "shardId": "shardId-000000000001",
                    "startSequenceNumber": "101",
                    "endSequenceNumber": "103",
                    "approximateArrivalOfFirstRecord": "2019-11-14T00:12:58.617Z",
                    "approximateArrivalOfLastRecord": "2019-11-14T00:12:58.917Z",
                    "batchSize": 3,
                    "streamArn": "arn:aws:kinesis:local:000000000000:stream/s"
                }
            })
        );
        assert!(!r.to_string().contains("c2VjcmV0"), "no record data");
    }

    #[test]
    fn conditions_and_responses() {
        assert_eq!(condition(Discard::RecordExpired), "RecordAgeExceeded");
        assert_eq!(
            LastAttempt::from_failure("Handled: ValueError"),
            LastAttempt::FunctionError("Handled".into())
        );
        assert_eq!(
            LastAttempt::from_failure("function 'f' not found"),
            LastAttempt::FunctionError("Unhandled".into())
        );
        let records = [record("7", 0)];
        let base = DiscardedBatch {
            request_id: "r",
            function_arn: "f",
            executed_version: "3",
            stream_arn: "s",
            shard: 0,
            records: &records,
            reason: Discard::RecordExpired,
            invoke_count: 0,
            last_attempt: None,
            at_ms: 0,
        };
        let never = base.record();
        assert_eq!(never["responseContext"]["statusCode"], 0);
        assert_eq!(never["requestContext"]["condition"], "RecordAgeExceeded");
        assert_eq!(never["KinesisBatchInfo"]["startSequenceNumber"], "7");
        assert_eq!(never["KinesisBatchInfo"]["endSequenceNumber"], "7");
        let partial = DiscardedBatch {
            last_attempt: Some(&LastAttempt::ItemFailures),
            ..base
        }
        .record();
        assert_eq!(
            partial["responseContext"],
            json!({"statusCode": 200, "executedVersion": "3"})
        );
    }
}
