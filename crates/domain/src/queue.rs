//! HotSwap's embedded queue: durable, owner-scoped message queues kept in
//! the metadata store (the `embedded` source of Queue triggers).
//!
//! A queue is named per owner (two owners may each have a queue `orders`)
//! and exists from its first message on. A message is *visible* (can be
//! received) once `visible_at` has passed; receiving it makes it invisible
//! for the visibility timeout and hands out a fresh [`Receipt`], the only
//! handle that can acknowledge (delete), release or dead-letter it — until
//! the next receive, which makes the earlier receipt stale.
//!
//! Limits follow SQS: names of 1–80 letters, digits, `-` and `_`; a message
//! (body plus attribute names and values) of at most 256 KiB; at most 10
//! attributes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::validation::ValidationErrors;

/// Longest queue name.
pub const MAX_QUEUE_NAME_LEN: usize = 80;
/// Largest message: the body's UTF-8 bytes plus every attribute name and
/// value (SQS's 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most attributes on one message.
pub const MAX_ATTRIBUTES: usize = 10;
/// Longest attribute name.
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 256;
/// The attribute a dead-lettered message gets: the queue it came from.
pub const DEAD_LETTER_SOURCE_ATTRIBUTE: &str = "DeadLetterSourceQueue";

/// Whether `name` is a queue name: 1–80 of `[A-Za-z0-9_-]`.
pub fn is_valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The queue-name rule; the message names `queueName`.
pub fn validate_queue_name(name: &str) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    if !is_valid_queue_name(name) {
        errors.push(format!(
            "queueName: must be 1-{MAX_QUEUE_NAME_LEN} letters, digits, '-' or '_' (got '{}')",
            shorten(name)
        ));
    }
    errors
}

/// At most 64 characters of user input, for messages.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(64).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short.escape_debug().to_string()
}

/// Characters SQS accepts in bodies and attribute values (XML's): tab, line
/// feed, carriage return, and everything from U+0020 except U+FFFE and
/// U+FFFF. (Surrogates cannot occur in a Rust string.) NUL in particular
/// could not be stored in PostgreSQL text.
fn is_allowed_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// The first character `text` may not contain, if any.
fn first_forbidden(text: &str) -> Option<char> {
    text.chars().find(|c| !is_allowed_char(*c))
}

/// An attribute name: 1–256 of `[A-Za-z0-9_.-]`, not starting with `AWS.`
/// or `Amazon.` (any case), not starting or ending with `.`, no `..`.
pub fn validate_attribute_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let why = if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME_LEN {
        format!("must be 1-{MAX_ATTRIBUTE_NAME_LEN} characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "may only contain letters, digits, '-', '_' and '.'".to_owned()
    } else if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        "must not start or end with '.' or contain '..'".to_owned()
    } else if lower.starts_with("aws.") || lower.starts_with("amazon.") {
        "must not start with 'AWS.' or 'Amazon.' (reserved)".to_owned()
    } else {
        return Ok(());
    };
    Err(format!("attributes.{}: name {why}", shorten(name)))
}

/// The size a message counts against [`MAX_MESSAGE_BYTES`].
pub fn message_size(body: &str, attributes: &BTreeMap<String, String>) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Why a message to send was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Fields break the rules; every message names its field.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// Larger than [`MAX_MESSAGE_BYTES`] (the size given).
    #[error("the message is {0} bytes (body plus attribute names and values); the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
}

/// Checks a message to send: a non-empty body of allowed characters, at
/// most [`MAX_ATTRIBUTES`] attributes with valid names and non-empty values
/// of allowed characters, and the size limit (checked last, so that a
/// message that is both invalid and too large reports its fields).
pub fn validate_message(
    body: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<(), MessageError> {
    let mut errors = ValidationErrors::new();
    if body.is_empty() {
        errors.push("body: must not be empty");
    } else if let Some(c) = first_forbidden(body) {
        errors.push(format!(
            "body: must not contain the character U+{:04X}",
            u32::from(c)
        ));
    }
    if attributes.len() > MAX_ATTRIBUTES {
        errors.push(format!(
            "attributes: at most {MAX_ATTRIBUTES} attributes (got {})",
            attributes.len()
        ));
    }
    for (name, value) in attributes {
        if let Err(e) = validate_attribute_name(name) {
            errors.push(e);
            continue;
        }
        if value.is_empty() {
            errors.push(format!("attributes.{name}: the value must not be empty"));
        } else if let Some(c) = first_forbidden(value) {
            errors.push(format!(
                "attributes.{name}: the value must not contain the character U+{:04X}",
                u32::from(c)
            ));
        }
    }
    errors.into_result().map_err(MessageError::Invalid)?;
    let size = message_size(body, attributes);
    if size > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge(size));
    }
    Ok(())
}

/// One message of an embedded queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QueueMessage {
    /// A UUID, kept when the message is dead-lettered.
    pub message_id: String,
    pub queue_name: String,
    pub owner_id: String,
    pub body: String,
    /// String attributes (the function gets them as `messageAttributes`).
    pub attributes: BTreeMap<String, String>,
    pub sent_at: DateTime<Utc>,
    /// The first receive (`None` until then).
    pub first_received_at: Option<DateTime<Utc>>,
    /// How many times it was received (SQS's `ApproximateReceiveCount`).
    pub receive_count: u32,
    /// It can be received from this instant on.
    pub visible_at: DateTime<Utc>,
}

impl QueueMessage {
    /// A new message with a fresh id, sent (and visible) at `now`. Not
    /// validated: see [`validate_message`].
    pub fn new(
        owner_id: impl Into<String>,
        queue_name: impl Into<String>,
        body: impl Into<String>,
        attributes: BTreeMap<String, String>,
        now: Timestamp,
    ) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            queue_name: queue_name.into(),
            owner_id: owner_id.into(),
            body: body.into(),
            attributes,
            sent_at: now,
            first_received_at: None,
            receive_count: 0,
            visible_at: now,
        }
    }
}

/// What `GET /v1/queues[/{name}]` shows of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct QueueSummary {
    pub queue_name: String,
    pub owner_id: String,
    /// When its first message was sent.
    pub created_at: DateTime<Utc>,
    /// Messages that can be received now.
    pub depth: u64,
    /// Messages not visible now: received and not yet acknowledged or back,
    /// or released with a delay.
    pub in_flight: u64,
    /// Age of the oldest message in the queue, visible or not (0 when
    /// empty).
    pub oldest_age_seconds: u64,
}

/// The handle one receive of a message hands out:
/// `{messageId}.{receiveCount}.{random}`. It acknowledges, releases or
/// dead-letters that message only while no later receive happened; it is
/// opaque to everyone else (SQS's receipt handle).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(String);

/// A string that is not a receipt this server handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a receipt handle")]
pub struct InvalidReceipt(pub String);

impl Receipt {
    /// The receipt of receive number `receive_count` of `message_id`, with
    /// `nonce` making it unguessable (one per receive call is enough: the
    /// id and count already differ between messages and receives).
    pub fn new(message_id: &str, receive_count: u32, nonce: &str) -> Self {
        Self(format!("{message_id}.{receive_count}.{nonce}"))
    }

    /// A fresh random nonce for [`Receipt::new`].
    pub fn nonce() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Reads a receipt back from its text (as the event carried it).
    pub fn parse(text: &str) -> Result<Self, InvalidReceipt> {
        let refused = || InvalidReceipt(shorten(text));
        let mut parts = text.split('.');
        let (Some(id), Some(count), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused());
        };
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let nonce_ok = !nonce.is_empty()
            && nonce.len() <= 64
            && nonce.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok || !nonce_ok || count.parse::<u32>().is_err() {
            return Err(refused());
        }
        Ok(Self(text.to_owned()))
    }

    /// The message this receipt is for.
    pub fn message_id(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// Which receive of the message handed it out (1 for the first).
    pub fn receive_count(&self) -> u32 {
        self.0
            .split('.')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn invalid(body: &str, attributes: &BTreeMap<String, String>) -> Vec<String> {
        match validate_message(body, attributes) {
            Err(MessageError::Invalid(e)) => e.into_messages(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn queue_names() {
        for ok in ["orders", "a", "dead_letters-2", &"q".repeat(80)] {
            assert!(is_valid_queue_name(ok), "{ok}");
            assert!(validate_queue_name(ok).is_empty());
        }
        for bad in ["", "a.b", "a b", "ünï", &"q".repeat(81), "x/y", "%2F"] {
            assert!(!is_valid_queue_name(bad), "{bad}");
        }
        let e = validate_queue_name("a b").into_messages();
        assert_eq!(
            e,
            ["queueName: must be 1-80 letters, digits, '-' or '_' (got 'a b')"]
        );
    }

    #[test]
    fn attribute_names() {
        for ok in ["trace-id", "a.b_c", "X", &"n".repeat(256), "awsish"] {
            assert!(validate_attribute_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "AWS.x",
            "amazon.y",
            "sp ace",
            "é",
            &"n".repeat(257),
        ] {
            let e = validate_attribute_name(bad).unwrap_err();
            assert!(e.starts_with("attributes."), "{bad}: {e}");
        }
    }

    #[test]
    fn messages_are_checked_field_by_field() {
        assert!(validate_message("hello", &BTreeMap::new()).is_ok());
        assert!(validate_message("tab\tand\nnewline\r€ 😀", &attrs(&[("k", "v")])).is_ok());
        assert_eq!(invalid("", &BTreeMap::new()), ["body: must not be empty"]);
        assert_eq!(
            invalid("nul\0", &BTreeMap::new()),
            ["body: must not contain the character U+0000"]
        );
        assert_eq!(
            invalid("x", &attrs(&[("k", ""), ("ok", "\u{1}"), ("AWS.n", "v")])),
            [
                "attributes.AWS.n: name must not start with 'AWS.' or 'Amazon.' (reserved)",
                "attributes.k: the value must not be empty",
                "attributes.ok: the value must not contain the character U+0001",
            ]
        );
        let many: BTreeMap<String, String> =
            (0..11).map(|i| (format!("a{i}"), "v".to_owned())).collect();
        assert_eq!(
            invalid("x", &many),
            ["attributes: at most 10 attributes (got 11)"]
        );
    }

    #[test]
    fn size_counts_body_and_attributes() {
        let body = "b".repeat(MAX_MESSAGE_BYTES - 4);
        assert!(validate_message(&body, &attrs(&[("ab", "cd")])).is_ok());
        assert_eq!(
            validate_message(&body, &attrs(&[("ab", "cde")])),
            Err(MessageError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        // Multi-byte characters count in bytes.
        let body = "é".repeat(MAX_MESSAGE_BYTES / 2 + 1);
        assert!(matches!(
            validate_message(&body, &BTreeMap::new()),
            Err(MessageError::TooLarge(_))
        ));
        // Field errors win over size.
        let body = format!("{}\0", "b".repeat(MAX_MESSAGE_BYTES));
        assert!(matches!(
            validate_message(&body, &BTreeMap::new()),
            Err(MessageError::Invalid(_))
        ));
    }

    #[test]
    fn receipts_round_trip_and_name_their_receive() {
        let m = QueueMessage::new("alice", "orders", "hi", BTreeMap::new(), crate::time::now());
        assert_eq!(m.visible_at, m.sent_at);
        assert_eq!(m.receive_count, 0);
        let nonce = Receipt::nonce();
        let r = Receipt::new(&m.message_id, 3, &nonce);
        assert_eq!(r.message_id(), m.message_id);
        assert_eq!(r.receive_count(), 3);
        assert_eq!(Receipt::parse(r.as_str()).unwrap(), r);
        assert_ne!(r, Receipt::new(&m.message_id, 3, &Receipt::nonce()));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!(r.as_str())
        );
        for bad in [
            "", "a.b", "a.1", "a.x.n", "a.1.n.m", ".1.n", "a.1.", "a b.1.n",
        ] {
            assert!(Receipt::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summaries_speak_camel_case() {
        let s = QueueSummary {
            queue_name: "orders".into(),
            owner_id: "alice".into(),
            created_at: crate::time::now(),
            depth: 2,
            in_flight: 1,
            oldest_age_seconds: 7,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["queueName"], "orders");
        assert_eq!(v["inFlight"], 1);
        assert_eq!(v["oldestAgeSeconds"], 7);
    }
}
