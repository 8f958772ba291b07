//! The SQS event a Queue trigger delivers: `{"Records": [...]}`, one record
//! per message, with SQS's field names, so Lambda handlers written for SQS
//! work unchanged.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::events::{md5_hex, DEFAULT_ACCOUNT, DEFAULT_REGION};

/// A message attribute as SQS types it (`dataType` `String`, `Number` or
/// `Binary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAttribute {
    String(String),
    /// A number, as written (SQS keeps numbers as text).
    Number(String),
    Binary(Vec<u8>),
}

impl MessageAttribute {
    /// An attribute from a JSON value (the embedded queue's `attributes`):
    /// strings are `String`, numbers `Number`, anything else `String` with
    /// its JSON text.
    pub fn from_json(v: &Value) -> Self {
        match v {
            Value::String(s) => MessageAttribute::String(s.clone()),
            Value::Number(n) => MessageAttribute::Number(n.to_string()),
            other => MessageAttribute::String(other.to_string()),
        }
    }

    pub fn data_type(&self) -> &'static str {
        match self {
            MessageAttribute::String(_) => "String",
            MessageAttribute::Number(_) => "Number",
            MessageAttribute::Binary(_) => "Binary",
        }
    }

    /// The attribute as the SQS event carries it.
    fn to_event(&self) -> Value {
        let mut v = Map::new();
        match self {
            MessageAttribute::String(s) | MessageAttribute::Number(s) => {
                v.insert("stringValue".into(), s.clone().into());
            }
            MessageAttribute::Binary(b) => {
                v.insert(
                    "binaryValue".into(),
                    base64::engine::general_purpose::STANDARD.encode(b).into(),
                );
            }
        }
        v.insert("stringListValues".into(), json!([]));
        v.insert("binaryListValues".into(), json!([]));
        v.insert("dataType".into(), self.data_type().into());
        Value::Object(v)
    }
}

impl From<&str> for MessageAttribute {
    fn from(s: &str) -> Self {
        MessageAttribute::String(s.to_owned())
    }
}

impl From<String> for MessageAttribute {
    fn from(s: String) -> Self {
        MessageAttribute::String(s)
    }
}

/// One message of a batch, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The backend's ID of the message (the `itemIdentifier` a function
    /// names in `batchItemFailures`).
    pub message_id: String,
    /// The backend's handle of this receive (what acknowledges it).
    pub receipt_handle: String,
    /// The body as text (see [`body_text`] for bytes that are not UTF-8).
    pub body: String,
    /// The sender's attributes (`messageAttributes`).
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// How many times the message was received, this receive included.
    pub receive_count: u32,
    /// When it was sent, milliseconds since the epoch.
    pub sent_timestamp_ms: i64,
    /// When it was first received, milliseconds since the epoch.
    pub first_receive_timestamp_ms: i64,
    /// Who sent it (`SenderId`); the account ID when unknown.
    pub sender_id: Option<String>,
}

/// A body that may not be UTF-8, as SQS-style text: invalid sequences
/// become U+FFFD (SQS bodies are text; a backend delivering raw bytes
/// keeps them in its own store).
pub fn body_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `eventSourceARN` of queue `name`.
pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{name}")
}

/// One SQS record.
pub fn sqs_record(source_arn: &str, m: &QueueMessage) -> Value {
    let attributes: Map<String, Value> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.to_event()))
        .collect();
    json!({
        "messageId": m.message_id,
        "receiptHandle": m.receipt_handle,
        "body": m.body,
        "attributes": {
            "ApproximateReceiveCount": m.receive_count.to_string(),
            "SentTimestamp": m.sent_timestamp_ms.to_string(),
            "SenderId": m.sender_id.as_deref().unwrap_or(DEFAULT_ACCOUNT),
            "ApproximateFirstReceiveTimestamp": m.first_receive_timestamp_ms.to_string()
        },
        "messageAttributes": attributes,
        "md5OfBody": md5_hex(m.body.as_bytes()),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": DEFAULT_REGION
    })
}

/// The SQS event of a batch from `source_arn` (see [`queue_arn`]), records
/// in the batch's order.
pub fn sqs_event(source_arn: &str, messages: &[QueueMessage]) -> Value {
    let records: Vec<Value> = messages.iter().map(|m| sqs_record(source_arn, m)).collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> QueueMessage {
        QueueMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: body.into(),
            attributes: BTreeMap::new(),
            receive_count: 1,
            sent_timestamp_ms: 1_545_082_649_183,
            first_receive_timestamp_ms: 1_545_082_649_185,
            sender_id: None,
        }
    }

    #[test]
    fn record_has_sqs_field_names_and_values() {
        let mut m = message("059f36b4-87a3-44ab-83d2-661975830a7d", "Test message.");
        m.receive_count = 2;
        let e = sqs_event(&queue_arn("my-queue"), &[m]);
        assert_eq!(
            e,
            json!({"Records": [{
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "rh-059f36b4-87a3-44ab-83d2-661975830a7d",
                "body": "Test message.",
                "attributes": {
                    "ApproximateReceiveCount": "2",
                    "SentTimestamp": "1545082649183",
                    "SenderId": "000000000000",
                    "ApproximateFirstReceiveTimestamp": "1545082649185"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:local:000000000000:my-queue",
                "awsRegion": "local"
            }]})
        );
    }

    #[test]
    fn message_attributes_as_sqs_sends_them() {
        let mut m = message("1", "");
        m.attributes.insert("myAttribute".into(), "myValue".into());
        m.attributes
            .insert("n".into(), MessageAttribute::from_json(&json!(42.5)));
        m.attributes
            .insert("b".into(), MessageAttribute::Binary(b"hi".to_vec()));
        m.attributes
            .insert("flag".into(), MessageAttribute::from_json(&json!(true)));
        m.sender_id = Some("tenant-1".into());
        let r = &sqs_event("arn:x", &[m])["Records"][0];
        assert_eq!(
            r["messageAttributes"]["myAttribute"],
            json!({"stringValue": "myValue", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
        assert_eq!(
            r["messageAttributes"]["n"],
            json!({"stringValue": "42.5", "stringListValues": [], "binaryListValues": [], "dataType": "Number"})
        );
        assert_eq!(
            r["messageAttributes"]["b"],
            json!({"binaryValue": "aGk=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"})
        );
        assert_eq!(r["messageAttributes"]["flag"]["stringValue"], "true");
        assert_eq!(r["attributes"]["SenderId"], "tenant-1");
        assert_eq!(r["md5OfBody"], "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(r["eventSourceARN"], "arn:x");
    }

    #[test]
    fn batch_keeps_order_and_empty_batch_has_no_records() {
        let batch: Vec<QueueMessage> = (0..3)
            .map(|i| message(&i.to_string(), &format!("b{i}")))
            .collect();
        let e = sqs_event(&queue_arn("q"), &batch);
        let ids: Vec<&str> = e["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["messageId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["0", "1", "2"]);
        assert_eq!(sqs_event("arn:x", &[]), json!({"Records": []}));
    }

    #[test]
    fn bodies_that_are_not_utf8_become_text() {
        assert_eq!(body_text(b"plain"), "plain");
        assert_eq!(body_text(&[0x66, 0xff, 0x6f]), "f\u{fffd}o");
    }
}
