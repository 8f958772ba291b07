//! The Kinesis event a Stream trigger delivers: `{"Records": [...]}`, one
//! record per stream entry, with Kinesis's field names, so Lambda handlers
//! written for Kinesis work unchanged.

use base64::Engine;
use serde_json::{json, Value};

use crate::events::{DEFAULT_ACCOUNT, DEFAULT_REGION};

/// The `invokeIdentityArn` of every record.
pub const INVOKE_IDENTITY_ARN: &str = "arn:aws:iam::000000000000:role/hotswap";

pub use hotswap_sources::StreamRecord;

/// The `eventSourceARN` of stream `name`.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:stream/{name}")
}

/// Kinesis's name of shard `index` (`shardId-000000000000` for the first):
/// a NATS or Redis stream is shard 0, a Kafka topic's partition N shard N.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// One Kinesis record of shard `shard` (see [`shard_id`]).
pub fn kinesis_record(source_arn: &str, shard: &str, r: &StreamRecord) -> Value {
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r.partition_key,
            "sequenceNumber": r.sequence_number,
            "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
            "approximateArrivalTimestamp": r.arrival_timestamp_ms as f64 / 1000.0
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{shard}:{}", r.sequence_number),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": INVOKE_IDENTITY_ARN,
        "awsRegion": DEFAULT_REGION,
        "eventSourceARN": source_arn
    })
}

/// The Kinesis event of a batch of shard `shard` from `source_arn` (see
/// [`stream_arn`]), records in the batch's order.
pub fn kinesis_event(source_arn: &str, shard: &str, records: &[StreamRecord]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| kinesis_record(source_arn, shard, r))
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, seq: &str, data: &[u8]) -> StreamRecord {
        StreamRecord {
            partition_key: key.into(),
            sequence_number: seq.into(),
            data: data.to_vec(),
            arrival_timestamp_ms: 1_545_084_650_987,
        }
    }

    #[test]
    fn record_has_kinesis_field_names_and_values() {
        let seq = "49590338271490256608559692538361571095921575989136588898";
        let e = kinesis_event(
            &stream_arn("lambda-stream"),
            &shard_id(0),
            &[record("1", seq, b"Hello, this is a test.")],
        );
        assert_eq!(
            e,
            json!({"Records": [{
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "1",
                    "sequenceNumber": seq,
                    "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                    "approximateArrivalTimestamp": 1545084650.987
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/hotswap",
                "awsRegion": "local",
                "eventSourceARN": "arn:aws:kinesis:local:000000000000:stream/lambda-stream"
            }]})
        );
    }

    #[test]
    fn shards_are_numbered_like_kinesis() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(12), "shardId-000000000012");
        let e = kinesis_event(
            "arn:x",
            &shard_id(3),
            &[record("k", "1526919030474-55", b"")],
        );
        assert_eq!(
            e["Records"][0]["eventID"],
            "shardId-000000000003:1526919030474-55"
        );
        assert_eq!(e["Records"][0]["kinesis"]["data"], "");
    }

    #[test]
    fn binary_data_and_order_are_kept() {
        let batch = [record("a", "1", &[0, 255, 1]), record("b", "2", b"x")];
        let e = kinesis_event("arn:x", &shard_id(0), &batch);
        let r = e["Records"].as_array().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["kinesis"]["data"], "AP8B");
        assert_eq!(r[1]["kinesis"]["sequenceNumber"], "2");
        assert_eq!(kinesis_event("arn:x", "s", &[]), json!({"Records": []}));
    }
}
