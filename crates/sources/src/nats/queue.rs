//! [`NatsQueue`]: a JetStream stream read as an SQS queue through a durable
//! pull consumer (see the [module docs](super) for the mapping).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{pull, AckPolicy, FromConsumer, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::pulls::{End, Pulls};
use super::{
    api_refusal, attributes, from_nanos, get_stream, header, parse_ack_subject, AckInfo,
    NatsConnection, MESSAGE_ID_HEADER,
};
use crate::queue::{Backlog, Delivery, QueueSource};
use crate::SourceError;

/// The consumer's `ack_wait` when it is created by a call that names no
/// visibility timeout (`backlog`); the first `receive` sets its own.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// Most messages whose receives are remembered (see [`Tracker`]); past it
/// the lowest stream sequences are forgotten.
const MAX_TRACKED: usize = 100_000;
/// Messages received and not yet acknowledged (released ones waiting out
/// their delay included) past which the consumer delivers no more: SQS's
/// in-flight limit (the server's default is 1,000).
const MAX_IN_FLIGHT: i64 = 120_000;
/// The shortest visibility timeout (`ack_wait`) a consumer gets.
const MIN_VISIBILITY: Duration = Duration::from_secs(1);
/// How long past its wait a pull request may take to be answered.
const PULL_GRACE: Duration = Duration::from_secs(5);
/// Shortest wait a pull request is made with; a shorter one is a fetch of
/// what is there (a request that expires within milliseconds costs a
/// server round trip for nothing; what it might still get is kept by its
/// inbox for the next request, see `pulls`).
const MIN_PULL_WAIT: Duration = Duration::from_millis(20);
/// How long the server may take to confirm acknowledgements.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A JetStream stream consumed as a queue with SQS semantics, through the
/// durable pull consumer `consumer` (`hotswap-{triggerId}`), created when
/// missing. The stream must exist.
pub struct NatsQueue {
    conn: NatsConnection,
    stream: String,
    consumer: String,
    bound: tokio::sync::Mutex<Option<Bound>>,
    /// Dropped with the binding (after an error).
    pulls: tokio::sync::Mutex<Option<Arc<Pulls>>>,
    tracker: Mutex<Tracker>,
}

/// The consumer as last checked, with the `ack_wait` it has.
struct Bound {
    consumer: PullConsumer,
    stream: jetstream::stream::Stream,
    ack_wait: Duration,
}

impl NatsQueue {
    /// One pull request: up to `max` messages, the request ending when
    /// they came or after `wait` (at once with none). Messages that came
    /// late for an earlier request on the same inbox are taken first.
    async fn pull(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, SourceError> {
        let pulls = self.pulls().await?;
        let mut out: Vec<Delivery> = Vec::new();
        // Stream sequence → index in `out`.
        let mut at = std::collections::HashMap::new();
        let mut take = |m: &async_nats::Message, out: &mut Vec<Delivery>| {
            let Some(d) = self.delivery(m, Utc::now()) else {
                return;
            };
            let seq = parse_ack_subject(&d.receipt).map(|i| i.stream_sequence);
            // Delivered again while the batch filled (the wait is longer
            // than the visibility timeout): the latest receive replaces the
            // earlier one.
            match seq.and_then(|s| at.get(&s).copied()) {
                Some(i) => out[i] = d,
                None => {
                    if let Some(s) = seq {
                        at.insert(s, out.len());
                    }
                    out.push(d);
                }
            }
        };
        let mut pull = match pulls.request(max, wait).await {
            Ok(p) => p,
            Err(e) => {
                self.unbind().await;
                return Err(SourceError::Unavailable(self.describe(), e));
            }
        };
        // The server ends the pull request (at once without a wait); past
        // this it was lost (the consumer was deleted, the connection broke).
        let deadline = tokio::time::Instant::now() + wait + PULL_GRACE;
        loop {
            match pull.next(deadline).await {
                Ok(m) => take(&m, &mut out),
                Err(End::Done) => break,
                Err(End::Unanswered) => {
                    self.unbind().await;
                    if out.is_empty() {
                        return Err(SourceError::Unavailable(
                            self.describe(),
                            "the server did not answer the pull request".into(),
                        ));
                    }
                    break;
                }
                Err(End::Failed(e)) => {
                    self.unbind().await;
                    if out.is_empty() {
                        return Err(SourceError::Unavailable(self.describe(), e));
                    }
                    // What came is in flight: hand it over.
                    tracing::warn!(queue = %self.describe(), error = %e, "pull request ended early");
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The pull requests (made when missing).
    async fn pulls(&self) -> Result<Arc<Pulls>, SourceError> {
        let mut slot = self.pulls.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let client = self.conn.client().await?;
        let p = Arc::new(Pulls::new(client, &self.stream, &self.consumer));
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Reads stream `stream` through the durable consumer named `consumer`.
    /// Nothing is checked until the first call.
    pub fn new(conn: &NatsConnection, stream: &str, consumer: &str) -> NatsQueue {
        NatsQueue {
            conn: conn.clone(),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            bound: tokio::sync::Mutex::new(None),
            pulls: tokio::sync::Mutex::new(None),
            tracker: Mutex::new(Tracker::default()),
        }
    }

    fn lock_tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The consumer, created when missing and updated when its `ack_wait`
    /// is not `visibility` (`None`: any).
    async fn bind(
        &self,
        visibility: Option<Duration>,
    ) -> Result<(PullConsumer, jetstream::stream::Stream), SourceError> {
        let mut bound = self.bound.lock().await;
        if let Some(b) = bound.as_ref() {
            if visibility.is_none_or(|v| v == b.ack_wait) {
                return Ok((b.consumer.clone(), b.stream.clone()));
            }
        }
        let what = self.describe();
        let js = self.conn.jetstream().await?;
        let stream = get_stream(&js, &what, &self.stream).await?;
        let existing = match stream.consumer_info(&self.consumer).await {
            Ok(info) => Some(info),
            Err(e) => {
                use jetstream::context::ConsumerInfoErrorKind as K;
                match e.kind() {
                    K::NotFound => None,
                    K::StreamNotFound => {
                        return Err(SourceError::Refused(
                            what,
                            "the stream does not exist".into(),
                        ))
                    }
                    K::InvalidName => {
                        return Err(SourceError::Refused(
                            what,
                            format!("invalid consumer name '{}'", self.consumer),
                        ))
                    }
                    K::JetStream(api) => return Err(api_refusal(&what, &api)),
                    K::Offline | K::Request | K::TimedOut | K::NoResponders => {
                        return Err(SourceError::Unavailable(what, e.to_string()))
                    }
                }
            }
        };
        let consumer = match existing {
            None => {
                let config = pull::Config {
                    durable_name: Some(self.consumer.clone()),
                    description: Some("HotSwap queue trigger".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: visibility.unwrap_or(DEFAULT_ACK_WAIT),
                    max_deliver: -1,
                    max_ack_pending: MAX_IN_FLIGHT,
                    ..pull::Config::default()
                };
                create(&stream, config, &what).await?
            }
            Some(info) => {
                if info.config.deliver_subject.is_some() {
                    return Err(SourceError::Refused(
                        what,
                        format!("consumer '{}' is a push consumer", self.consumer),
                    ));
                }
                if info.config.ack_policy != AckPolicy::Explicit {
                    return Err(SourceError::Refused(
                        what,
                        format!(
                            "consumer '{}' does not use explicit acknowledgements",
                            self.consumer
                        ),
                    ));
                }
                let mut config = pull::Config::try_from_consumer_config(info.config.clone())
                    .map_err(|e| SourceError::Refused(what.clone(), e.to_string()))?;
                let wait = visibility.unwrap_or(info.config.ack_wait);
                if wait != config.ack_wait || config.max_deliver != -1 {
                    config.ack_wait = wait;
                    config.max_deliver = -1;
                    create(&stream, config, &what).await?
                } else {
                    PullConsumer::new(config, info, js.clone())
                }
            }
        };
        let ack_wait = consumer.cached_info().config.ack_wait;
        *bound = Some(Bound {
            consumer: consumer.clone(),
            stream: stream.clone(),
            ack_wait,
        });
        Ok((consumer, stream))
    }

    /// Forgets the consumer: the next call checks the stream and the
    /// consumer again (after an error).
    async fn unbind(&self) {
        *self.bound.lock().await = None;
        *self.pulls.lock().await = None;
    }

    /// What a message is as a delivery; `None` when this source saw a
    /// later delivery of it already (a late message kept too long).
    fn delivery(&self, m: &async_nats::Message, now: DateTime<Utc>) -> Option<Delivery> {
        let receipt = m.reply.as_ref().map(|r| r.to_string()).unwrap_or_default();
        let info = parse_ack_subject(&receipt);
        let headers = m.headers.as_ref();
        let message_id = header(headers, MESSAGE_ID_HEADER)
            .map(str::to_owned)
            .or_else(|| info.as_ref().map(|i| i.stream_sequence.to_string()))
            .unwrap_or_default();
        let (receive_count, first_received_at) = match &info {
            Some(i) => {
                let mut tracker = self.lock_tracker();
                if tracker.stale(i.stream_sequence, i.consumer_sequence) {
                    return None;
                }
                tracker.received(i, now)
            }
            None => (1, now),
        };
        Some(Delivery {
            message_id,
            receipt,
            body: String::from_utf8_lossy(&m.payload).into_owned(),
            attributes: attributes(headers),
            receive_count,
            sent_at: info
                .as_ref()
                .map(|i| from_nanos(i.published_ns))
                .unwrap_or(now),
            first_received_at,
        })
    }

    /// The delivery a receipt names, when it is one of this consumer's.
    fn ours(&self, receipt: &str) -> Option<AckInfo> {
        let info = parse_ack_subject(receipt)
            .filter(|i| i.stream == self.stream && i.consumer == self.consumer);
        if info.is_none() {
            tracing::warn!(queue = %self.describe(), receipt, "not a receipt of this queue: ignored");
        }
        info
    }

    /// Publishes `payload` to each receipt `keep` accepts, then flushes.
    async fn settle(
        &self,
        receipts: &[String],
        payload: Bytes,
        mut keep: impl FnMut(&mut Tracker, &AckInfo) -> bool,
    ) -> Result<(), SourceError> {
        let mut targets = Vec::new();
        {
            for r in receipts {
                let Some(info) = self.ours(r) else { continue };
                if keep(&mut self.lock_tracker(), &info) {
                    targets.push(r.clone());
                } else {
                    tracing::debug!(queue = %self.describe(), receipt = %r, "receipt of an earlier receive: ignored");
                }
            }
        }
        if targets.is_empty() {
            return Ok(());
        }
        let client = self.conn.client().await?;
        // Confirmed: when this returns, the server has applied them.
        let replies = futures::future::join_all(targets.into_iter().map(|t| {
            let client = client.clone();
            let payload = payload.clone();
            async move { tokio::time::timeout(SETTLE_TIMEOUT, client.request(t, payload)).await }
        }))
        .await;
        let mut gone = false;
        for r in replies {
            use async_nats::client::RequestErrorKind as K;
            match r {
                Ok(Ok(_)) => {}
                // No consumer behind the receipt any more: its messages
                // will be delivered again by the next one.
                Ok(Err(e)) if e.kind() == K::NoResponders => gone = true,
                Ok(Err(e)) => return Err(SourceError::Unavailable(self.describe(), e.to_string())),
                Err(_) => {
                    return Err(SourceError::Unavailable(
                        self.describe(),
                        "the server did not confirm an acknowledgement in time".into(),
                    ))
                }
            }
        }
        if gone {
            tracing::warn!(queue = %self.describe(), consumer = %self.consumer, "the consumer is gone: acknowledgements not applied");
            self.unbind().await;
        }
        Ok(())
    }
}

async fn create(
    stream: &jetstream::stream::Stream,
    config: pull::Config,
    what: &str,
) -> Result<PullConsumer, SourceError> {
    use jetstream::stream::ConsumerErrorKind as K;
    stream
        .create_consumer(config)
        .await
        .map_err(|e| match e.kind() {
            K::JetStream(api) => api_refusal(what, &api),
            K::TimedOut | K::Request => SourceError::Unavailable(what.to_owned(), e.to_string()),
            K::InvalidConsumerType | K::InvalidName | K::Other => {
                SourceError::Refused(what.to_owned(), e.to_string())
            }
        })
}

#[async_trait]
impl QueueSource for NatsQueue {
    fn describe(&self) -> String {
        format!("NATS stream '{}'", self.stream)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let visibility = visibility.max(MIN_VISIBILITY);
        self.bind(Some(visibility)).await?;
        if wait < MIN_PULL_WAIT {
            return self.pull(max, Duration::ZERO).await;
        }
        // A long poll: wait for one message (a pull request that ends as
        // soon as it came, so none is delivered to a request nobody reads
        // any more), then take at once what else is there.
        let mut out = self.pull(1, wait).await?;
        if !out.is_empty() && max > 1 {
            let seen: std::collections::HashSet<String> =
                out.iter().map(|d| d.message_id.clone()).collect();
            match self.pull(max - 1, Duration::ZERO).await {
                Ok(more) => out.extend(more.into_iter().filter(|d| !seen.contains(&d.message_id))),
                // What came is in flight: hand it over.
                Err(e) => {
                    tracing::warn!(queue = %self.describe(), error = %e, "receive ended early")
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError> {
        self.settle(receipts, AckKind::Ack.into(), |t, i| {
            t.acked(i.stream_sequence, i.consumer_sequence)
        })
        .await
    }

    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError> {
        // A counted release after a delay: the message comes back when its
        // `ack_wait` ends (see the module docs on `-NAK` with a delay).
        if count && !delay.is_zero() {
            return Ok(());
        }
        let now = Utc::now();
        self.settle(receipts, AckKind::Nak(None).into(), |t, i| {
            t.released(i.stream_sequence, i.consumer_sequence, count, now)
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let (consumer, stream) = self.bind(None).await?;
        let info = match consumer.get_info().await {
            Ok(info) => info,
            Err(e) => {
                self.unbind().await;
                use jetstream::context::ConsumerInfoErrorKind as K;
                return Err(match e.kind() {
                    K::NotFound | K::StreamNotFound | K::InvalidName => {
                        SourceError::Refused(self.describe(), e.to_string())
                    }
                    K::JetStream(api) => api_refusal(&self.describe(), &api),
                    K::Offline | K::Request | K::TimedOut | K::NoResponders => {
                        SourceError::Unavailable(self.describe(), e.to_string())
                    }
                });
            }
        };
        let waiting = info.num_pending;
        let in_flight = info.num_ack_pending as u64;
        let oldest_age_s = if waiting + in_flight > 0 {
            oldest_age(&stream, info.ack_floor.stream_sequence.saturating_add(1)).await
        } else {
            None
        };
        Ok(Backlog {
            waiting,
            in_flight,
            oldest_age_s,
        })
    }
}

/// Age of the first message at or after `from` (the first not acknowledged
/// when `from` is just past the consumer's ack floor); `None` when it
/// cannot be read.
async fn oldest_age(stream: &jetstream::stream::Stream, from: u64) -> Option<f64> {
    let m = stream
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(">")
        .send()
        .await
        .ok()?;
    let stored: SystemTime = m.time.into();
    Some(
        SystemTime::now()
            .duration_since(stored)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

/// What this source remembers of the messages it received, per stream
/// sequence: receives taken back (`release(.., count: false)`), the
/// delivery of the latest receive (older receipts do nothing), and when it
/// first saw the message. In memory only.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    entries: BTreeMap<u64, Tracked>,
}

#[derive(Debug, Clone)]
struct Tracked {
    first_received_at: DateTime<Utc>,
    uncounted: u64,
    /// Consumer sequence of the latest receive.
    delivery: u64,
}

impl Tracker {
    /// A receive: its receive count and first receive time.
    fn received(&mut self, info: &AckInfo, now: DateTime<Utc>) -> (u32, DateTime<Utc>) {
        let fresh = Tracked {
            first_received_at: now,
            uncounted: 0,
            delivery: info.consumer_sequence,
        };
        let e = self
            .entries
            .entry(info.stream_sequence)
            .or_insert_with(|| fresh.clone());
        if info.delivered <= 1 {
            // First delivery (or the consumer was recreated): nothing to keep.
            *e = fresh;
        }
        e.delivery = e.delivery.max(info.consumer_sequence);
        let count = info.delivered.saturating_sub(e.uncounted).max(1);
        let first = e.first_received_at;
        self.trim();
        (u32::try_from(count).unwrap_or(u32::MAX), first)
    }

    fn stale(&self, seq: u64, delivery: u64) -> bool {
        self.entries
            .get(&seq)
            .is_some_and(|e| delivery < e.delivery)
    }

    /// An acknowledgement: `false` when the receipt is of an earlier receive.
    fn acked(&mut self, seq: u64, delivery: u64) -> bool {
        if self.stale(seq, delivery) {
            return false;
        }
        self.entries.remove(&seq);
        true
    }

    /// A release: `false` when the receipt is of an earlier receive.
    fn released(&mut self, seq: u64, delivery: u64, count: bool, now: DateTime<Utc>) -> bool {
        if self.stale(seq, delivery) {
            return false;
        }
        if !count {
            let e = self.entries.entry(seq).or_insert(Tracked {
                first_received_at: now,
                uncounted: 0,
                delivery,
            });
            e.uncounted += 1;
            self.trim();
        }
        true
    }

    fn trim(&mut self) {
        while self.entries.len() > MAX_TRACKED {
            self.entries.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(seq: u64, delivery: u64, delivered: u64) -> AckInfo {
        AckInfo {
            stream: "s".into(),
            consumer: "c".into(),
            delivered,
            stream_sequence: seq,
            consumer_sequence: delivery,
            published_ns: 0,
            pending: 0,
        }
    }

    #[test]
    fn uncounted_releases_are_taken_off_the_delivery_count() {
        let mut t = Tracker::default();
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let t1 = t0 + chrono::Duration::seconds(5);
        assert_eq!(t.received(&info(7, 1, 1), t0), (1, t0));
        assert!(t.released(7, 1, false, t1));
        // Delivered twice, one of them taken back.
        assert_eq!(t.received(&info(7, 2, 2), t1), (1, t0));
        assert!(t.released(7, 2, true, t1));
        assert_eq!(t.received(&info(7, 3, 3), t1), (2, t0));
        assert!(t.acked(7, 3));
        assert!(t.entries.is_empty());
    }

    #[test]
    fn receipts_of_earlier_receives_do_nothing() {
        let mut t = Tracker::default();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        t.received(&info(3, 10, 1), now);
        // The visibility timeout ended: delivered again.
        t.received(&info(3, 14, 2), now);
        assert!(!t.acked(3, 10));
        assert!(!t.released(3, 10, false, now));
        assert!(t.acked(3, 14));
        // Unknown messages (received before a restart) are settled.
        assert!(t.acked(99, 1));
    }

    #[test]
    fn a_first_delivery_starts_afresh() {
        let mut t = Tracker::default();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        t.received(&info(5, 1, 1), now);
        t.released(5, 1, false, now);
        t.released(5, 1, false, now);
        // The consumer was recreated: sequence 5 is delivered for the first time.
        assert_eq!(t.received(&info(5, 1, 1), now).0, 1);
        assert_eq!(t.received(&info(5, 2, 2), now).0, 2);
    }

    #[test]
    fn the_tracker_is_bounded() {
        let mut t = Tracker::default();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        for seq in 1..=(MAX_TRACKED as u64 + 10) {
            t.received(&info(seq, seq, 1), now);
        }
        assert_eq!(t.entries.len(), MAX_TRACKED);
        assert_eq!(t.entries.first_key_value().map(|(k, _)| *k), Some(11));
    }
}
