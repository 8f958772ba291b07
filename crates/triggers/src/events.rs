//! Event shapes: the EventBridge "Scheduled Event" a schedule tick delivers,
//! and sample events of each shape a trigger can deliver (what
//! `hotswap event …` prints, like `sam local generate-event`).
//!
//! Everything is pure: times are arguments, and the IDs a sample needs
//! (request, message and sequence IDs) are derived from its arguments, so the
//! same call gives the same event.

use base64::Engine;
use chrono::{DateTime, DurationRound, SecondsFormat, Utc};
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

/// The region of HotSwap's ARNs and events (there is one, local, region).
pub const DEFAULT_REGION: &str = "local";
/// The account ID of HotSwap's ARNs and events.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// The resource of [`sample_schedule`]'s event.
pub const SAMPLE_SCHEDULE_RESOURCE: &str = "arn:aws:events:local:000000000000:rule/sample-schedule";
/// The body of [`sample_sqs`]'s message when none is given.
pub const SAMPLE_SQS_BODY: &str = "Test message.";
/// The record of [`sample_kinesis`] when none is given.
pub const SAMPLE_KINESIS_DATA: &str = "Hello, this is a test.";

/// The host name of the sample HTTP event.
const SAMPLE_DOMAIN: &str = "localhost";
/// Where the sample events say they come from.
const SAMPLE_SOURCE_IP: &str = "127.0.0.1";
const SAMPLE_USER_AGENT: &str = "hotswap-cli";

/// The EventBridge "Scheduled Event" for one tick: `time` is the tick's
/// scheduled time (RFC 3339, whole seconds, `Z`), `resource` the ARN of what
/// fired (a rule or schedule).
pub fn scheduled_event(
    id: &str,
    time: DateTime<Utc>,
    resource: &str,
    region: &str,
    account: &str,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": region,
        "resources": [resource],
        "detail": {}
    })
}

/// A sample schedule tick: the [`scheduled_event`] of the minute `now` is in.
pub fn sample_schedule(now: DateTime<Utc>) -> Value {
    let tick = now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now);
    scheduled_event(
        &sample_id(&["schedule", &millis(tick).to_string()]),
        tick,
        SAMPLE_SCHEDULE_RESOURCE,
        DEFAULT_REGION,
        DEFAULT_ACCOUNT,
    )
}

/// A sample HTTP request event: the API Gateway HTTP API payload 2.0 (also
/// the Lambda Function URL shape). `path` may carry a query string
/// (`/orders?status=open`); `method` is upper-cased.
pub fn sample_http(method: &str, path: &str, body: Option<&str>, now: DateTime<Utc>) -> Value {
    let method = method.to_ascii_uppercase();
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let raw_path = if raw_path.starts_with('/') {
        raw_path.to_owned()
    } else {
        format!("/{raw_path}")
    };
    let mut headers = Map::new();
    headers.insert("accept".into(), "*/*".into());
    if let Some(b) = body {
        headers.insert("content-length".into(), b.len().to_string().into());
        let content_type = if serde_json::from_str::<serde::de::IgnoredAny>(b).is_ok() {
            "application/json"
        } else {
            "text/plain"
        };
        headers.insert("content-type".into(), content_type.into());
    }
    headers.insert("host".into(), SAMPLE_DOMAIN.into());
    headers.insert("user-agent".into(), SAMPLE_USER_AGENT.into());
    headers.insert("x-forwarded-for".into(), SAMPLE_SOURCE_IP.into());
    headers.insert("x-forwarded-proto".into(), "http".into());

    let ms = millis(now);
    let request_id = sample_id(&["http", &method, path, body.unwrap_or(""), &ms.to_string()]);
    let mut event = Map::new();
    event.insert("version".into(), "2.0".into());
    event.insert("routeKey".into(), "$default".into());
    event.insert("rawPath".into(), raw_path.clone().into());
    event.insert("rawQueryString".into(), query.into());
    event.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), query_parameters(query));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": DEFAULT_ACCOUNT,
            "apiId": "hotswap",
            "domainName": SAMPLE_DOMAIN,
            "domainPrefix": SAMPLE_DOMAIN.split('.').next().unwrap_or(SAMPLE_DOMAIN),
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": SAMPLE_SOURCE_IP,
                "userAgent": SAMPLE_USER_AGENT
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": ms
        }),
    );
    if let Some(b) = body {
        event.insert("body".into(), b.into());
    }
    event.insert("isBase64Encoded".into(), false.into());
    Value::Object(event)
}

/// `a=1&b=2&a=3` as API Gateway gives it: `{"a": "1,3", "b": "2"}` (values
/// as written, repeated keys joined with commas).
fn query_parameters(query: &str) -> Value {
    let mut params: Map<String, Value> = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match params.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                params.insert(k.to_owned(), v.into());
            }
        }
    }
    Value::Object(params)
}

/// A sample SQS batch: one record per body, from queue `queue` (a name, or
/// an ARN used as is). The shape is [`crate::queue::event`]'s.
pub fn sample_sqs(bodies: &[String], queue: &str, now: DateTime<Utc>) -> Value {
    let arn = arn_or(queue, crate::queue::event::queue_arn);
    let ms = millis(now);
    let messages: Vec<crate::queue::QueueMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let message_id = sample_id(&["sqs", &arn, &ms.to_string(), &i.to_string(), body]);
            let receipt = base64::engine::general_purpose::STANDARD
                .encode(format!("{message_id} {arn} {ms}"));
            crate::queue::QueueMessage {
                message_id,
                receipt_handle: format!("AQEB{receipt}"),
                body: body.clone(),
                attributes: Default::default(),
                receive_count: 1,
                sent_timestamp_ms: ms,
                first_receive_timestamp_ms: ms,
                sender_id: None,
            }
        })
        .collect();
    crate::queue::sqs_event(&arn, &messages)
}

/// A sample Kinesis batch: one record per entry of `records` (sent base64),
/// all with `partition_key`, from stream `stream` (a name, or an ARN used as
/// is). The shape is [`crate::stream::event`]'s.
pub fn sample_kinesis(
    records: &[String],
    partition_key: &str,
    stream: &str,
    now: DateTime<Utc>,
) -> Value {
    let arn = arn_or(stream, crate::stream::event::stream_arn);
    let ms = millis(now);
    let records: Vec<crate::stream::StreamRecord> = records
        .iter()
        .enumerate()
        .map(|(i, data)| crate::stream::StreamRecord {
            partition_key: partition_key.to_owned(),
            sequence_number: sequence_number(ms, i),
            data: data.as_bytes().to_vec(),
            arrival_timestamp_ms: ms,
        })
        .collect();
    crate::stream::kinesis_event(&arn, &crate::stream::shard_id(0), &records)
}

/// A Kinesis-like 56-digit sequence number, increasing with time and index.
fn sequence_number(ms: i64, index: usize) -> String {
    format!("49{:024}{:030}", ms.max(0), index)
}

fn arn_or(name: &str, make: impl FnOnce(&str) -> String) -> String {
    if name.starts_with("arn:") {
        name.to_owned()
    } else {
        make(name)
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Lower-case hex MD5, as SQS's `md5OfBody`.
pub fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", Md5::digest(data))
}

/// A UUID-shaped (version 4) ID derived from `parts`: stable for the same
/// arguments, different for different ones.
fn sample_id(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    uuid::Builder::from_random_bytes(h.finalize().into())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn scheduled_event_shape() {
        let e = scheduled_event(
            "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            at("2031-03-30T01:00:00.123456Z"),
            "arn:aws:scheduler:local:000000000000:schedule/default/t1",
            "local",
            "000000000000",
        );
        assert_eq!(
            e,
            json!({
                "version": "0",
                "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": "000000000000",
                "time": "2031-03-30T01:00:00Z",
                "region": "local",
                "resources": ["arn:aws:scheduler:local:000000000000:schedule/default/t1"],
                "detail": {}
            })
        );
    }

    #[test]
    fn sample_schedule_is_the_minutes_tick() {
        let e = sample_schedule(at("2031-05-05T10:20:42.5Z"));
        assert_eq!(e["time"], "2031-05-05T10:20:00Z");
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["resources"][0], SAMPLE_SCHEDULE_RESOURCE);
        assert_eq!(e["region"], DEFAULT_REGION);
        assert_eq!(e["account"], DEFAULT_ACCOUNT);
        assert!(uuid::Uuid::parse_str(e["id"].as_str().unwrap()).is_ok());
        // Pure: the same call gives the same event.
        assert_eq!(e, sample_schedule(at("2031-05-05T10:20:42.5Z")));
    }

    #[test]
    fn sample_http_shape() {
        let now = at("2020-03-12T19:03:58.123Z");
        let e = sample_http(
            "post",
            "/orders/42?status=open&tag=a&tag=b",
            Some(r#"{"n":1}"#),
            now,
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/orders/42");
        assert_eq!(e["rawQueryString"], "status=open&tag=a&tag=b");
        assert_eq!(
            e["queryStringParameters"],
            json!({"status": "open", "tag": "a,b"})
        );
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert_eq!(e["headers"]["content-length"], "7");
        for k in e["headers"].as_object().unwrap().keys() {
            assert_eq!(k, &k.to_ascii_lowercase());
        }
        let rc = &e["requestContext"];
        assert_eq!(rc["accountId"], DEFAULT_ACCOUNT);
        assert_eq!(rc["stage"], "$default");
        assert_eq!(rc["routeKey"], "$default");
        assert_eq!(rc["domainName"], "localhost");
        assert_eq!(rc["domainPrefix"], "localhost");
        assert!(rc["apiId"].is_string());
        assert_eq!(
            rc["http"],
            json!({
                "method": "POST", "path": "/orders/42", "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "hotswap-cli"
            })
        );
        assert_eq!(rc["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(rc["timeEpoch"], 1_584_039_838_123_i64);
        assert!(uuid::Uuid::parse_str(rc["requestId"].as_str().unwrap()).is_ok());
        assert_eq!(e["body"], r#"{"n":1}"#);
        assert_eq!(e["isBase64Encoded"], false);

        // No body, no query: neither field; a path without '/' gets one.
        let e = sample_http("GET", "health", None, now);
        assert_eq!(e["rawPath"], "/health");
        assert_eq!(e["rawQueryString"], "");
        assert!(e.get("body").is_none());
        assert!(e.get("queryStringParameters").is_none());
        assert!(e["headers"].get("content-type").is_none());
        let e = sample_http("PUT", "/", Some("plain words"), now);
        assert_eq!(e["headers"]["content-type"], "text/plain");
    }

    #[test]
    fn sample_sqs_shape() {
        let now = at("2031-05-05T10:20:42.5Z");
        let bodies = vec!["Test message.".to_owned(), "".to_owned()];
        let e = sample_sqs(&bodies, "jobs", now);
        let records = e["Records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        let r = &records[0];
        assert_eq!(r["body"], "Test message.");
        assert_eq!(r["md5OfBody"], "e4e68fb7bd0e697a0ae8f1bb342846b3");
        assert_eq!(records[1]["md5OfBody"], "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            r["attributes"],
            json!({
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1935742842500",
                "SenderId": "000000000000",
                "ApproximateFirstReceiveTimestamp": "1935742842500"
            })
        );
        assert_eq!(r["messageAttributes"], json!({}));
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:local:000000000000:jobs");
        assert_eq!(r["awsRegion"], "local");
        assert!(r["receiptHandle"].as_str().unwrap().starts_with("AQEB"));
        assert!(uuid::Uuid::parse_str(r["messageId"].as_str().unwrap()).is_ok());
        assert_ne!(r["messageId"], records[1]["messageId"]);
        // An ARN is kept.
        let arn = "arn:aws:sqs:eu-west-1:123456789012:q";
        assert_eq!(
            sample_sqs(&bodies, arn, now)["Records"][0]["eventSourceARN"],
            arn
        );
    }

    #[test]
    fn sample_kinesis_shape() {
        let now = at("2031-05-05T10:20:42.5Z");
        let data = vec!["Hello from Kinesis".to_owned(), "second".to_owned()];
        let e = sample_kinesis(&data, "pk-1", "orders", now);
        let records = e["Records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        let r = &records[0];
        let k = &r["kinesis"];
        assert_eq!(k["kinesisSchemaVersion"], "1.0");
        assert_eq!(k["partitionKey"], "pk-1");
        assert_eq!(k["data"], "SGVsbG8gZnJvbSBLaW5lc2lz");
        assert_eq!(k["approximateArrivalTimestamp"], 1_935_742_842.5);
        let seq = k["sequenceNumber"].as_str().unwrap();
        assert_eq!(seq.len(), 56);
        assert!(seq.bytes().all(|b| b.is_ascii_digit()));
        let seq2 = records[1]["kinesis"]["sequenceNumber"].as_str().unwrap();
        assert!(seq2 > seq);
        assert_eq!(r["eventID"], format!("shardId-000000000000:{seq}"));
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(
            r["invokeIdentityArn"],
            "arn:aws:iam::000000000000:role/hotswap"
        );
        assert_eq!(r["awsRegion"], "local");
        assert_eq!(
            r["eventSourceARN"],
            "arn:aws:kinesis:local:000000000000:stream/orders"
        );
    }
}
