//! NATS JetStream backends: [`NatsQueue`] (a [`QueueSource`](crate::QueueSource)
//! over a stream, read through a durable pull consumer) and [`NatsStream`]
//! (a [`StreamSource`](crate::StreamSource) over a stream, read by
//! sequence number). Both share a [`NatsConnection`].
//!
//! HotSwap creates no streams: the stream a trigger names must exist, and a
//! missing one is [`SourceError::Refused`]. Consumers are HotSwap's: the
//! queue's durable consumer is named `hotswap-{triggerId}` (the caller
//! passes that name) and is created when missing.
//!
//! # Queues (SQS semantics on a JetStream consumer)
//!
//! | SQS                         | JetStream                                               |
//! |-----------------------------|---------------------------------------------------------|
//! | queue                       | stream `queueName` (every subject of it)                |
//! | receive                     | pull request on the durable consumer (explicit acks)    |
//! | visibility timeout          | the consumer's `ack_wait` (updated when it changes)     |
//! | receipt handle              | the message's reply subject (`$JS.ACK.…`)               |
//! | delete                      | `+ACK` to the receipt                                   |
//! | release at once             | `-NAK`                                                  |
//! | release after a delay       | nothing: the message comes back when `ack_wait` ends    |
//! | `ApproximateReceiveCount`   | the delivery count in the reply subject                 |
//! | `maxReceiveCount` / DLQ     | `max_deliver` unlimited: the trigger's consumer decides |
//! | message id                  | header `Nats-Msg-Id`, else the stream sequence          |
//! | message attributes          | the headers (first value each, `Nats-*` left out)       |
//! | `SentTimestamp`             | when the stream stored the message                      |
//! | in flight / waiting         | consumer info `num_ack_pending` / `num_pending`         |
//!
//! `receive(max, visibility, wait)` sends one pull request for `max`
//! messages: with no `wait` it answers at once with what is there; with a
//! `wait` it returns when `max` came or the wait ended (the batching
//! window). A message delivered twice while a long wait fills the batch
//! (the wait is longer than the visibility timeout) is in it once, with
//! its latest receipt. The visibility timeout is at least 1 s; the
//! consumer allows 120,000 messages in flight (SQS's limit; released
//! messages waiting out their delay count). The age of the oldest message
//! is that of the first one past the consumer's acknowledgement floor.
//! A pull request the server leaves unanswered 5 s past its wait (the
//! consumer was deleted, the connection broke) is `Unavailable`, and the
//! next call creates the consumer again if it is gone (from the stream's
//! first message: what it had acknowledged is delivered again).
//!
//! A delayed release sends nothing, so the message is redelivered when its
//! visibility timeout, counted from its receive, ends (SQS's rule for a
//! message nobody deleted). `-NAK {"delay": …}` is never sent: on
//! nats-server 2.9 (Debian 12's) it makes the server lose later
//! deliveries of that message (the delivery count skips one) and deliver
//! messages it had acknowledged again (`tests/nats.rs`,
//! `repeated_delayed_releases_…`, replays the pattern). A release that does not count is a plain
//! `-NAK`: the message is delivered again at once.
//!
//! Acknowledgements and releases are published as requests: when `ack` or
//! `release` returns, the server has applied them (a receipt whose
//! consumer is gone is skipped: its message comes back anyway). Receipts
//! of another stream or consumer are ignored. `+TERM` is never sent: a
//! dead message is sent to HotSwap's embedded queue by the trigger's
//! consumer and then acknowledged. Bodies are read as UTF-8, invalid bytes
//! replaced (U+FFFD).
//!
//! Limits, all kept in memory by one [`NatsQueue`] (lost when the process
//! restarts, and not shared between servers reading the same consumer):
//!
//! - a release that does not count (`count: false`, a throttled batch) is
//!   remembered per stream sequence and subtracted from the delivery count
//!   the server reports; after a restart those receives count again;
//! - a receipt of an earlier receive of a message that was delivered again
//!   since is recognised (and does nothing) only when both receives went
//!   through this source: JetStream itself accepts an acknowledgement with
//!   an old reply subject;
//! - `first_received_at` is the time this source first saw the message
//!   (the time of this receive when it was first received elsewhere);
//! - at most 100,000 messages are remembered (the lowest sequences are
//!   forgotten first).
//!
//! Pull requests are answered on inboxes that outlive them (see `pulls`):
//! a message that comes after its request ended (nats-server 2.9 can send
//! it right after the `408` that expires the request), or for a receive
//! that was cancelled (its future dropped), is taken by the next request
//! on that inbox. Only when the binding is dropped after an error is such
//! a message left to come back after its visibility timeout.
//!
//! # Streams (Kinesis semantics on a JetStream stream)
//!
//! A stream is one shard (`0`). A record's sequence number is its stream
//! sequence, in decimal; [`BEFORE_FIRST`](crate::stream::BEFORE_FIRST)
//! (`""`) is sequence 0. `LATEST` is the stream's last sequence,
//! `AT_TIMESTAMP` the sequence before the first record stored at or after
//! the time (asked of a short-lived consumer starting at that time, deleted
//! at once).
//!
//! Reads go through one ordered consumer (ephemeral, no acknowledgements,
//! kept in memory) positioned after the last record returned: reads that
//! continue where the previous one ended reuse it; a read from another
//! position (a replay after a failure, a restart) replaces it, and so
//! does a read more than 30 s after the last one (the client keeps pulling
//! for an idle consumer, so its buffer would grow: reused within 30 s, it
//! holds about 1,000 records at most). A read
//! waits up to `wait` for the first record, then takes the records the
//! server says are pending, up to `max`, without waiting for new ones.
//! Records trimmed from the stream are skipped by the server. A read that
//! finds nothing checks that the stream still exists (the ordered consumer
//! would wait for a deleted one forever). The partition key is the header
//! `Hotswap-Partition-Key`, else the subject; the arrival time is when the
//! stream stored the record; the data is the payload as is.
//!
//! The lag is `last sequence - position`, counted from the oldest record
//! still held when the position was trimmed: records deleted from the
//! middle of the stream are still counted.
//!
//! # Connection
//!
//! [`NatsConnection`] connects on first use. A server that cannot be
//! reached is [`SourceError::Unavailable`], and the next call tries again
//! (after a short backoff that grows with consecutive failures, up to 5 s).
//! Once connected, the client reconnects by itself; while it is
//! disconnected every call is `Unavailable` at once, and the next call
//! after an error checks the stream and the consumer again.

mod pulls;
mod queue;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};

use crate::SourceError;

pub use queue::NatsQueue;
pub use stream::NatsStream;

/// The header that names a stream record's partition key.
pub const PARTITION_KEY_HEADER: &str = "Hotswap-Partition-Key";
/// The header JetStream de-duplicates by: a queue message's id.
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";

/// Longest pause between two connection attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A NATS server HotSwap reads from (`--nats-url`), shared by every NATS
/// source (cheap to clone). It connects on first use.
#[derive(Clone)]
pub struct NatsConnection {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    client: Option<async_nats::Client>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

impl std::fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConnection")
            .field("url", &self.inner.url)
            .finish()
    }
}

impl NatsConnection {
    /// A connection to `url` (`nats://host:port`, several separated by
    /// commas); nothing happens until a source uses it.
    pub fn new(url: impl Into<String>) -> NatsConnection {
        NatsConnection {
            inner: Arc::new(Inner {
                url: url.into(),
                slot: tokio::sync::Mutex::new(Slot::default()),
            }),
        }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    fn who(&self) -> String {
        format!("NATS at {}", self.inner.url)
    }

    /// The connected client, connecting when needed.
    pub(crate) async fn client(&self) -> Result<async_nats::Client, SourceError> {
        let mut slot = self.inner.slot.lock().await;
        if let Some(client) = &slot.client {
            return match client.connection_state() {
                async_nats::connection::State::Connected => Ok(client.clone()),
                _ => Err(SourceError::Unavailable(
                    self.who(),
                    "disconnected (reconnecting)".into(),
                )),
            };
        }
        if let Some(at) = slot.retry_at {
            if Instant::now() < at {
                return Err(SourceError::Unavailable(
                    self.who(),
                    slot.last_error.clone(),
                ));
            }
        }
        let connect = async_nats::ConnectOptions::new()
            .name("hotswap")
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(self.inner.url.as_str());
        let result = match tokio::time::timeout(CONNECT_TIMEOUT * 2, connect).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connection timed out".to_owned()),
        };
        match result {
            Ok(client) => {
                *slot = Slot {
                    client: Some(client.clone()),
                    ..Slot::default()
                };
                Ok(client)
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                slot.retry_at = Some(Instant::now() + backoff(slot.failures));
                slot.last_error = e.clone();
                Err(SourceError::Unavailable(self.who(), e))
            }
        }
    }

    pub(crate) async fn jetstream(&self) -> Result<jetstream::Context, SourceError> {
        Ok(jetstream::new(self.client().await?))
    }
}

/// Pause before connection attempt `failures + 1`: 250 ms doubling, at
/// most [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let ms = 250u64.saturating_mul(1 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// What a JetStream message's reply subject says about its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckInfo {
    pub stream: String,
    pub consumer: String,
    /// Times delivered, this delivery included.
    pub delivered: u64,
    pub stream_sequence: u64,
    pub consumer_sequence: u64,
    /// When the stream stored the message, ns since the epoch.
    pub published_ns: i128,
    /// Messages left for the consumer after this one.
    pub pending: u64,
}

/// Reads a `$JS.ACK.` reply subject: `<stream>.<consumer>.<delivered>.
/// <stream seq>.<consumer seq>.<timestamp>.<pending>`, optionally preceded
/// by `<domain>.<account hash>` and followed by more tokens (ADR-15).
pub(crate) fn parse_ack_subject(reply: &str) -> Option<AckInfo> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let t: &[&str] = match tokens.len() {
        7 => &tokens,
        n if n >= 9 => &tokens[2..9],
        _ => return None,
    };
    if t[0].is_empty() || t[1].is_empty() {
        return None;
    }
    Some(AckInfo {
        stream: t[0].to_owned(),
        consumer: t[1].to_owned(),
        delivered: t[2].parse().ok()?,
        stream_sequence: t[3].parse().ok()?,
        consumer_sequence: t[4].parse().ok()?,
        published_ns: t[5].parse().ok()?,
        pending: t[6].parse().ok()?,
    })
}

/// A time in ns since the epoch (the epoch itself when out of range).
pub(crate) fn from_nanos(ns: i128) -> DateTime<Utc> {
    i64::try_from(ns)
        .map(DateTime::<Utc>::from_timestamp_nanos)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The first value of header `name` (compared without case).
pub(crate) fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?
        .iter()
        .find(|(k, _)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(|v| v.as_str())
}

/// A message's headers as attributes: the first value of each, without
/// the `Nats-*` headers JetStream uses itself.
pub(crate) fn attributes(headers: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let Some(headers) = headers else {
        return BTreeMap::new();
    };
    headers
        .iter()
        .filter(|(k, _)| {
            let k: &str = k.as_ref();
            !k.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("nats-"))
        })
        .filter_map(|(k, v)| Some((k.to_string(), v.first()?.as_str().to_owned())))
        .collect()
}

/// A position of a NATS stream: [`BEFORE_FIRST`](crate::stream::BEFORE_FIRST)
/// is 0, otherwise a stream sequence in decimal.
pub(crate) fn parse_position(what: &str, position: &str) -> Result<u64, SourceError> {
    if position.is_empty() {
        return Ok(0);
    }
    position.parse().map_err(|_| {
        SourceError::Refused(
            what.to_owned(),
            format!("'{position}' is not a position of a NATS stream (a stream sequence)"),
        )
    })
}

/// The text of a position (0 is [`BEFORE_FIRST`](crate::stream::BEFORE_FIRST)).
pub(crate) fn position_text(seq: u64) -> String {
    if seq == 0 {
        String::new()
    } else {
        seq.to_string()
    }
}

/// Turns a JetStream API error into a source error: the server answered,
/// so it is a refusal.
pub(crate) fn api_refusal(what: &str, e: &jetstream::Error) -> SourceError {
    let msg = match e.error_code() {
        jetstream::ErrorCode::STREAM_NOT_FOUND => "the stream does not exist".to_owned(),
        _ => e.to_string(),
    };
    SourceError::Refused(what.to_owned(), msg)
}

/// Checks that the stream exists; its handle (with fresh info).
pub(crate) async fn get_stream(
    js: &jetstream::Context,
    what: &str,
    name: &str,
) -> Result<jetstream::stream::Stream, SourceError> {
    use jetstream::context::GetStreamErrorKind as K;
    js.get_stream(name).await.map_err(|e| match e.kind() {
        K::JetStream(api) => api_refusal(what, &api),
        K::EmptyName | K::InvalidStreamName => {
            SourceError::Refused(what.to_owned(), format!("invalid stream name: {e}"))
        }
        K::Request => SourceError::Unavailable(what.to_owned(), e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subjects_are_read_in_both_formats() {
        let v1 =
            parse_ack_subject("$JS.ACK.orders.hotswap-t1.3.42.77.1700000000123456789.5").unwrap();
        assert_eq!(
            v1,
            AckInfo {
                stream: "orders".into(),
                consumer: "hotswap-t1".into(),
                delivered: 3,
                stream_sequence: 42,
                consumer_sequence: 77,
                published_ns: 1_700_000_000_123_456_789,
                pending: 5,
            }
        );
        let v2 = parse_ack_subject(
            "$JS.ACK.hub.ACCHASH.orders.hotswap-t1.1.9.9.1700000000000000000.0.tok.more",
        )
        .unwrap();
        assert_eq!(
            (v2.stream.as_str(), v2.delivered, v2.stream_sequence),
            ("orders", 1, 9)
        );
        for bad in [
            "",
            "_INBOX.x",
            "$JS.ACK.orders.c.1.2.3",
            "$JS.ACK.orders.c.x.2.3.4.5",
            "$JS.ACK.orders.c.1.2.3.4.5.6",
            "$JS.ACK..c.1.2.3.4.5",
        ] {
            assert_eq!(parse_ack_subject(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_and_positions() {
        assert_eq!(
            from_nanos(1_700_000_000_123_456_789).timestamp_millis(),
            1_700_000_000_123
        );
        assert_eq!(from_nanos(i128::MAX), DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(parse_position("s", "").unwrap(), 0);
        assert_eq!(parse_position("s", "17").unwrap(), 17);
        assert!(matches!(
            parse_position("s", "1-0"),
            Err(SourceError::Refused(..))
        ));
        assert_eq!(position_text(0), "");
        assert_eq!(position_text(12), "12");
    }

    #[test]
    fn headers_become_attributes_without_internal_ones() {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", "m-1");
        h.insert("tenant", "acme");
        h.append("Color", "red");
        h.append("Color", "blue");
        h.insert(PARTITION_KEY_HEADER, "user-7");
        let a = attributes(Some(&h));
        assert_eq!(a.get("tenant").map(String::as_str), Some("acme"));
        assert_eq!(a.get("Color").map(String::as_str), Some("red"));
        assert!(!a.contains_key("Nats-Msg-Id"));
        assert_eq!(header(Some(&h), "nats-msg-id"), Some("m-1"));
        assert_eq!(header(Some(&h), "hotswap-partition-key"), Some("user-7"));
        assert_eq!(header(None, "x"), None);
        assert!(attributes(None).is_empty());
    }

    #[test]
    fn backoff_grows_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
