//! A RabbitMQ queue as a [`QueueSource`] ([`RabbitQueue`]), over AMQP 0-9-1
//! with `lapin`.
//!
//! # How SQS's semantics are mapped
//!
//! - **The queue.** HotSwap never declares a queue: it must exist. The
//!   source checks with a *passive* `queue.declare`; a missing queue is
//!   `Refused("RabbitMQ queue 'x'", "does not exist")`.
//! - **Connection.** Made on the first call, named after the consumer tag
//!   (`hotswap-{triggerId}`, shown in the management UI). After the
//!   connection or a channel breaks (or the broker cancels the consumer),
//!   the call that notices returns `Unavailable` and the next call connects
//!   again (the consumer paces its retries). Nothing is lost: the broker
//!   requeues every unacknowledged delivery of a closed connection itself.
//! - **Receive.** One `basic.consume` (manual acknowledgements) with
//!   `basic.qos` = `prefetch` fills a local buffer; `receive` waits at most
//!   `wait` for the first message and then takes what is already buffered,
//!   up to `max`. A received delivery is held unacknowledged; if it is
//!   neither acknowledged nor released within `visibility`, it is
//!   `basic.nack`ed with requeue, so the broker delivers it again (SQS's
//!   visibility timeout). A held delivery counts against the prefetch, so
//!   `prefetch` should be at least the trigger's batch size times its
//!   concurrency (0 is the broker's "no limit"); released deliveries waiting
//!   out their delay count too, so while they fill the prefetch no new
//!   message arrives.
//! - **Receipts** are `<connection generation>.<delivery tag>`: they name
//!   one delivery on one connection. A receipt of an earlier connection, or
//!   of a delivery already acknowledged, released or timed out, does nothing
//!   (delivery tags are never reused on a channel, and a redelivery has a
//!   new tag).
//! - **Ack** is `basic.ack` of those deliveries. An acknowledgement that
//!   cannot be sent (the connection broke) is `Unavailable`: the broker will
//!   deliver that message again (at least once).
//! - **Release** holds the deliveries for `delay`, then `basic.nack`s them
//!   with requeue (at once for a zero delay). RabbitMQ has no delayed
//!   requeue without plugins or extra queues, which HotSwap does not create.
//! - **Receive count.** A quorum queue sets `x-delivery-count` on a
//!   redelivery (RabbitMQ 3.10+): the count is that header + 1. Elsewhere
//!   (classic queues) it is derived: 1 on a first delivery (`redelivered`
//!   unset), and for a redelivery one more than the count this source last
//!   gave that message id. **Limit:** a redelivered message this source has
//!   not seen (after a HotSwap restart, or first delivered to another
//!   consumer) counts as 2 on a classic queue, whatever came before. On a
//!   quorum queue the count is the larger of the header's and the derived
//!   one, so it never stalls. Messages that were prefetched but not yet
//!   handed out when a connection is replaced are not counted for it.
//! - **`release(.., count: false)`** (a throttled batch) takes the receive
//!   back with an in-memory adjustment per message id: the classic count
//!   goes one down, and one is subtracted from a quorum queue's
//!   `x-delivery-count` from then on. **Limit:** the adjustment lives in this
//!   process (at most 100,000 message ids, the least recently seen are
//!   forgotten first); after a restart a quorum queue's count includes
//!   throttled receives. An acknowledged message is forgotten.
//! - **Dead letters** are left to the consumer (the trait's default): it
//!   sends the message to HotSwap's embedded queue and then acknowledges.
//! - **Backlog.** `waiting` is the passive declare's `message_count` (ready
//!   messages); `in_flight` is what this source holds (prefetched, received
//!   or waiting out a release delay); `oldest_age_s` is unknown (`None`).
//!
//! # How a message is read
//!
//! - `message_id`: the AMQP `message-id` property; without one, an id
//!   derived from the content (`amqp-` and 16 hex digits of a 64-bit FNV-1a
//!   hash of exchange, routing key, timestamp, attributes and body), stable
//!   across redeliveries. Two identical messages without a `message-id`
//!   share an id (they are then settled by their receipts all the same, but
//!   share a receive count and a batch-item failure): publishers should set
//!   `message-id`.
//! - `body`: the payload as UTF-8, invalid sequences replaced by U+FFFD.
//! - `attributes`: the AMQP headers whose values are strings (long strings
//!   read as lossy UTF-8), booleans or numbers (integers, floats, decimals,
//!   timestamps in seconds), as text; arrays, tables, byte arrays and void
//!   values are skipped, and so is the broker's `x-delivery-count`. Nothing
//!   else is added.
//! - `sent_at`: the AMQP `timestamp` property (seconds), else the time this
//!   source received it; `first_received_at`: when this source first handed
//!   the message out (best effort: in memory).
//!
//! Stream queues (`x-queue-type: stream`) are not supported as queues.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::queue::{Backlog, Delivery, QueueSource};
use crate::SourceError;

/// The header a quorum queue sets on a redelivery: how many times the
/// message was delivered before.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Longest wait for a connection (TCP, AMQP handshake, channels, consume).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a replaced connection to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most message ids whose receive counts are remembered.
const SEEN_CAP: usize = 100_000;

/// A RabbitMQ queue consumed with SQS semantics (see the module docs).
pub struct RabbitQueue {
    url: String,
    queue: String,
    consumer_tag: String,
    prefetch: u16,
    shared: Arc<Shared>,
    /// The current connection; the lock also serializes reconnecting.
    link: tokio::sync::Mutex<Option<Link>>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("url", &redact(&self.url))
            .field("queue", &self.queue)
            .field("consumer_tag", &self.consumer_tag)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

/// One connection: a channel for passive declares (a failed one closes
/// its channel) and one that consumes.
struct Link {
    generation: u64,
    connection: Connection,
    control: Channel,
    consuming: Channel,
    pump: AbortHandle,
}

impl Drop for Link {
    fn drop(&mut self) {
        // The pump owns the consumer; once it is gone lapin closes the
        // connection with its last handle.
        self.pump.abort();
    }
}

/// What the source's tasks (the pump, the visibility timers) share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken when a delivery arrives or the connection breaks.
    arrived: Notify,
}

#[derive(Default)]
struct State {
    /// The current connection's generation (0: none yet).
    generation: u64,
    /// Why the current connection is unusable, once it is.
    broken: Option<String>,
    /// Prefetched, not yet handed out.
    buffer: VecDeque<AmqpDelivery>,
    /// Handed out and not settled, by delivery tag (current connection).
    held: HashMap<u64, Held>,
    counts: Counts,
    next_lease: u64,
}

/// A delivery handed out and not yet settled.
struct Held {
    message_id: String,
    acker: Acker,
    /// Which timer may requeue it.
    lease: u64,
    /// Its receipt still settles it (false once released, waiting out the
    /// release delay).
    leased: bool,
    timer: AbortHandle,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arrive(&self, generation: u64, delivery: AmqpDelivery) {
        let mut s = self.lock();
        if s.generation == generation && s.broken.is_none() {
            s.buffer.push_back(delivery);
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    fn break_link(&self, generation: u64, why: String) {
        let mut s = self.lock();
        if s.generation == generation && s.broken.is_none() {
            tracing::debug!(generation, %why, "RabbitMQ connection unusable");
            s.broken = Some(why);
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    /// A visibility or release timer ran out: requeue the delivery, unless
    /// it was settled (or leased again) since.
    async fn expire(&self, generation: u64, tag: u64, lease: u64) {
        let acker = {
            let mut s = self.lock();
            if s.generation != generation || s.held.get(&tag).is_none_or(|h| h.lease != lease) {
                return;
            }
            match s.held.remove(&tag) {
                Some(h) => h.acker,
                None => return,
            }
        };
        requeue(&acker).await;
    }
}

impl State {
    /// Forgets the current connection's deliveries (the broker requeues
    /// them when it closes) and starts generation `generation`. Prefetched
    /// deliveries that were never handed out were not received: their
    /// redelivery is not counted.
    fn start(&mut self, generation: u64) {
        for h in self.held.values() {
            h.timer.abort();
        }
        self.held.clear();
        for d in std::mem::take(&mut self.buffer) {
            self.counts.not_received(&read_message(&d).message_id);
        }
        self.broken = None;
        self.generation = generation;
    }

    fn lease(&mut self) -> u64 {
        self.next_lease += 1;
        self.next_lease
    }

    /// Hands out up to `max` buffered deliveries, each held for
    /// `visibility`.
    fn hand_out(
        &mut self,
        max: usize,
        visibility: Duration,
        shared: &Weak<Shared>,
    ) -> Vec<Delivery> {
        let now = Utc::now();
        let n = max.min(self.buffer.len());
        let taken: Vec<AmqpDelivery> = self.buffer.drain(..n).collect();
        let mut out = Vec::with_capacity(n);
        for d in taken {
            let m = read_message(&d);
            let (receive_count, first_received_at) =
                self.counts
                    .on_delivery(&m.message_id, d.redelivered, m.delivered_before, now);
            let tag = d.delivery_tag;
            let lease = self.lease();
            let timer = spawn_timer(shared.clone(), self.generation, tag, lease, visibility);
            self.held.insert(
                tag,
                Held {
                    message_id: m.message_id.clone(),
                    acker: d.acker,
                    lease,
                    leased: true,
                    timer,
                },
            );
            out.push(Delivery {
                message_id: m.message_id,
                receipt: receipt(self.generation, tag),
                body: m.body,
                attributes: m.attributes,
                receive_count,
                sent_at: m.sent_at.unwrap_or(now),
                first_received_at,
            });
        }
        out
    }

    /// The held delivery `receipt` names, if it still settles it.
    fn leased_tag(&self, receipt: &str) -> Option<u64> {
        let (generation, tag) = parse_receipt(receipt)?;
        let held = self.held.get(&tag)?;
        (generation == self.generation && held.leased).then_some(tag)
    }
}

fn spawn_timer(
    shared: Weak<Shared>,
    generation: u64,
    tag: u64,
    lease: u64,
    after: Duration,
) -> AbortHandle {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(shared) = shared.upgrade() {
            shared.expire(generation, tag, lease).await;
        }
    })
    .abort_handle()
}

/// Puts a delivery back in the queue. A failure needs nothing more: it
/// means the channel is gone, and the broker requeues it by itself.
async fn requeue(acker: &Acker) {
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    if let Err(e) = acker.nack(options).await {
        tracing::debug!(error = %e, "RabbitMQ nack failed; the broker requeues on close");
    }
}

/// Moves deliveries from the consumer into the buffer until the consumer
/// ends; then the connection is marked unusable.
async fn pump(mut consumer: Consumer, shared: Weak<Shared>, generation: u64) {
    loop {
        let next = consumer.next().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match next {
            Some(Ok(delivery)) => shared.arrive(generation, delivery),
            Some(Err(e)) => {
                shared.break_link(generation, e.to_string());
                return;
            }
            None => {
                shared.break_link(
                    generation,
                    "the broker cancelled the consumer (was the queue deleted?)".into(),
                );
                return;
            }
        }
    }
}

impl RabbitQueue {
    /// A source for queue `queue` of the broker at `url`
    /// (`amqp://user:password@host:port/vhost`), consuming as
    /// `consumer_tag` (`hotswap-{triggerId}`) with at most `prefetch`
    /// unacknowledged deliveries. Connects on the first call.
    pub fn new(url: &str, queue: &str, consumer_tag: &str, prefetch: u16) -> RabbitQueue {
        RabbitQueue {
            url: url.to_owned(),
            queue: queue.to_owned(),
            consumer_tag: consumer_tag.to_owned(),
            prefetch,
            shared: Arc::new(Shared::default()),
            link: tokio::sync::Mutex::new(None),
        }
    }

    fn unavailable(&self, why: impl Into<String>) -> SourceError {
        SourceError::Unavailable(
            format!("RabbitMQ queue '{}' at {}", self.queue, redact(&self.url)),
            why.into(),
        )
    }

    fn error(&self, e: &lapin::Error) -> SourceError {
        if let lapin::ErrorKind::ProtocolError(amqp) = e.kind() {
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => {
                    return SourceError::Refused(self.describe(), "does not exist".into());
                }
                AMQPErrorKind::Soft(
                    AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::RESOURCELOCKED
                    | AMQPSoftError::PRECONDITIONFAILED,
                )
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => {
                    return SourceError::Refused(
                        self.describe(),
                        amqp.get_message().as_str().to_owned(),
                    );
                }
                _ => {}
            }
        }
        self.unavailable(e.to_string())
    }

    /// The current connection (made if there is none or it broke): its
    /// generation and control channel.
    async fn link(&self) -> Result<(u64, Channel), SourceError> {
        let mut slot = self.link.lock().await;
        if let Some(link) = slot.as_ref() {
            let usable = {
                let s = self.shared.lock();
                s.generation == link.generation && s.broken.is_none()
            } && link.connection.status().connected()
                && link.control.status().connected()
                && link.consuming.status().connected();
            if usable {
                return Ok((link.generation, link.control.clone()));
            }
        }
        let generation = {
            let mut s = self.shared.lock();
            let next = s.generation + 1;
            s.start(next);
            next
        };
        if let Some(old) = slot.take() {
            tracing::info!(queue = %self.queue, "reconnecting to RabbitMQ");
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    old.connection.close(200, "reconnecting".into()),
                )
                .await;
                drop(old);
            });
        }
        let link = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect(generation)).await {
            Ok(Ok(link)) => link,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(
                    self.unavailable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))
                );
            }
        };
        let control = link.control.clone();
        *slot = Some(link);
        Ok((generation, control))
    }

    async fn connect(&self, generation: u64) -> Result<Link, SourceError> {
        let queue = ShortString::try_new(self.queue.as_str()).map_err(|_| {
            SourceError::Refused(self.describe(), "the name is longer than 255 bytes".into())
        })?;
        let tag = ShortString::try_new(self.consumer_tag.as_str()).map_err(|_| {
            SourceError::Refused(
                self.describe(),
                "the consumer tag is longer than 255 bytes".into(),
            )
        })?;
        let properties =
            ConnectionProperties::default().with_connection_name(self.consumer_tag.as_str().into());
        let connection = Connection::connect(&self.url, properties)
            .await
            .map_err(|e| self.error(&e))?;
        let control = connection
            .create_channel()
            .await
            .map_err(|e| self.error(&e))?;
        control
            .queue_declare(queue.clone(), passive(), FieldTable::default())
            .await
            .map_err(|e| self.error(&e))?;
        let consuming = connection
            .create_channel()
            .await
            .map_err(|e| self.error(&e))?;
        consuming
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| self.error(&e))?;
        let consumer = consuming
            .basic_consume(
                queue,
                tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error(&e))?;
        let pump =
            tokio::spawn(pump(consumer, Arc::downgrade(&self.shared), generation)).abort_handle();
        Ok(Link {
            generation,
            connection,
            control,
            consuming,
            pump,
        })
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

#[async_trait]
impl QueueSource for RabbitQueue {
    fn describe(&self) -> String {
        format!("RabbitMQ queue '{}'", self.queue)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        self.link().await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(86_400));
        let weak = Arc::downgrade(&self.shared);
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.shared.lock();
                if let Some(why) = &s.broken {
                    return Err(self.unavailable(why.clone()));
                }
                if !s.buffer.is_empty() {
                    return Ok(s.hand_out(max, visibility, &weak));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError> {
        let ackers: Vec<Acker> = {
            let mut s = self.shared.lock();
            let mut ackers = Vec::new();
            for r in receipts {
                let Some(tag) = s.leased_tag(r) else { continue };
                if let Some(h) = s.held.remove(&tag) {
                    h.timer.abort();
                    s.counts.forget(&h.message_id);
                    ackers.push(h.acker);
                }
            }
            ackers
        };
        // The frames go out together; none waits for another's.
        let sent =
            futures::future::join_all(ackers.iter().map(|a| a.ack(BasicAckOptions::default())))
                .await;
        let mut failed = None;
        for result in sent {
            match result {
                Ok(true) => {}
                Ok(false) => {
                    failed.get_or_insert_with(|| {
                        self.unavailable(
                            "the connection closed before the acknowledgement; the message will be delivered again",
                        )
                    });
                }
                Err(e) => {
                    failed.get_or_insert_with(|| self.error(&e));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError> {
        let weak = Arc::downgrade(&self.shared);
        let now: Vec<Acker> = {
            let mut s = self.shared.lock();
            let mut now = Vec::new();
            for r in receipts {
                let Some(tag) = s.leased_tag(r) else { continue };
                let lease = s.lease();
                let generation = s.generation;
                let State { held, counts, .. } = &mut *s;
                let Some(h) = held.get_mut(&tag) else {
                    continue;
                };
                h.timer.abort();
                if !count {
                    counts.uncount(&h.message_id);
                }
                if delay.is_zero() {
                    if let Some(h) = held.remove(&tag) {
                        now.push(h.acker);
                    }
                } else {
                    h.leased = false;
                    h.lease = lease;
                    h.timer = spawn_timer(weak.clone(), generation, tag, lease, delay);
                }
            }
            now
        };
        for acker in now {
            requeue(&acker).await;
        }
        Ok(())
    }

    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let (generation, control) = self.link().await?;
        let queue = ShortString::try_new(self.queue.as_str()).map_err(|_| {
            SourceError::Refused(self.describe(), "the name is longer than 255 bytes".into())
        })?;
        match control
            .queue_declare(queue, passive(), FieldTable::default())
            .await
        {
            Ok(q) => {
                let s = self.shared.lock();
                Ok(Backlog {
                    waiting: u64::from(q.message_count()),
                    in_flight: (s.buffer.len() + s.held.len()) as u64,
                    oldest_age_s: None,
                })
            }
            Err(e) => {
                // The failed declare closed the control channel.
                self.shared.break_link(generation, e.to_string());
                Err(self.error(&e))
            }
        }
    }
}

/// Receive counts this source knows, by message id (see the module docs).
#[derive(Debug, Default)]
struct Counts {
    seen: HashMap<String, Seen>,
    tick: u64,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The count last handed out (less the receives taken back).
    count: u32,
    /// Deliveries that were not receives (taken back, or prefetched and
    /// returned unseen) since the message's first delivery.
    uncounted: u32,
    /// When first handed out.
    first: Option<DateTime<Utc>>,
    touched: u64,
}

impl Counts {
    /// The receive count and first-received time of a delivery of message
    /// `id`; `delivered_before` is a quorum queue's `x-delivery-count`.
    fn on_delivery(
        &mut self,
        id: &str,
        redelivered: bool,
        delivered_before: Option<u32>,
        now: DateTime<Utc>,
    ) -> (u32, DateTime<Utc>) {
        self.tick += 1;
        let fresh = Seen {
            count: 1,
            uncounted: 0,
            first: Some(now),
            touched: self.tick,
        };
        if !redelivered && delivered_before.is_none_or(|n| n == 0) {
            self.seen.insert(id.to_owned(), fresh);
            self.trim();
            return (1, now);
        }
        // Unknown: received once before, as far as this source can tell.
        let seen = self.seen.entry(id.to_owned()).or_insert(fresh);
        let derived = seen.count.saturating_add(1);
        let count = match delivered_before {
            Some(before) => before
                .saturating_add(1)
                .saturating_sub(seen.uncounted)
                .max(derived),
            None => derived,
        };
        seen.count = count;
        seen.touched = self.tick;
        let first = *seen.first.get_or_insert(now);
        self.trim();
        (count, first)
    }

    /// Message `id` was prefetched and goes back to the broker without
    /// having been handed out.
    fn not_received(&mut self, id: &str) {
        self.tick += 1;
        let seen = self.seen.entry(id.to_owned()).or_insert(Seen {
            count: 0,
            uncounted: 0,
            first: None,
            touched: self.tick,
        });
        seen.uncounted = seen.uncounted.saturating_add(1);
        self.trim();
    }

    /// Takes back the last receive of message `id`.
    fn uncount(&mut self, id: &str) {
        if let Some(seen) = self.seen.get_mut(id) {
            seen.count = seen.count.saturating_sub(1);
            seen.uncounted = seen.uncounted.saturating_add(1);
        }
    }

    /// The message is gone.
    fn forget(&mut self, id: &str) {
        self.seen.remove(id);
    }

    /// Past the cap, forgets the least recently seen half.
    fn trim(&mut self) {
        if self.seen.len() <= SEEN_CAP {
            return;
        }
        let mut ages: Vec<(u64, String)> = self
            .seen
            .iter()
            .map(|(id, s)| (s.touched, id.clone()))
            .collect();
        ages.sort_unstable();
        for (_, id) in ages.into_iter().take(self.seen.len() - SEEN_CAP / 2) {
            self.seen.remove(&id);
        }
    }
}

/// What a delivery says, read without trusting it.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    message_id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    sent_at: Option<DateTime<Utc>>,
    /// A quorum queue's `x-delivery-count`.
    delivered_before: Option<u32>,
}

fn read_message(d: &AmqpDelivery) -> Message {
    let mut attributes = BTreeMap::new();
    let mut delivered_before = None;
    if let Some(headers) = d.properties.headers() {
        for (k, v) in headers.inner() {
            if k.as_str() == DELIVERY_COUNT_HEADER {
                delivered_before = as_count(v);
                continue;
            }
            if let Some(text) = value_text(v) {
                attributes.insert(k.as_str().to_owned(), text);
            }
        }
    }
    let timestamp = *d.properties.timestamp();
    let sent_at = timestamp
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
    let message_id = match d.properties.message_id() {
        Some(id) if !id.as_str().is_empty() => id.as_str().to_owned(),
        _ => derived_id(d, &attributes, timestamp),
    };
    Message {
        message_id,
        body: String::from_utf8_lossy(&d.data).into_owned(),
        attributes,
        sent_at,
        delivered_before,
    }
}

/// A header value as text, when it is a string, a boolean or a number.
fn value_text(v: &AMQPValue) -> Option<String> {
    Some(match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::DecimalValue(d) => decimal_text(d.value, d.scale),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::FieldArray(_)
        | AMQPValue::FieldTable(_)
        | AMQPValue::ByteArray(_)
        | AMQPValue::Void => return None,
    })
}

/// `value` × 10^-`scale` in decimal notation.
fn decimal_text(value: u32, scale: u8) -> String {
    let scale = usize::from(scale);
    if scale == 0 {
        return value.to_string();
    }
    let digits = format!("{value:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{int}.{frac}")
}

fn as_count(v: &AMQPValue) -> Option<u32> {
    let n: i128 = match v {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        _ => return None,
    };
    Some(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

/// An id for a message without `message-id`, from its content.
fn derived_id(d: &AmqpDelivery, attributes: &BTreeMap<String, String>, ts: Option<u64>) -> String {
    let mut h = Fnv::default();
    h.write(d.exchange.as_str().as_bytes());
    h.write(d.routing_key.as_str().as_bytes());
    h.write(ts.map(|t| t.to_string()).unwrap_or_default().as_bytes());
    for (k, v) in attributes {
        h.write(k.as_bytes());
        h.write(v.as_bytes());
    }
    h.write(&d.data);
    format!("amqp-{:016x}", h.0)
}

/// 64-bit FNV-1a; each field is followed by its length, so fields cannot
/// run into each other.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes
            .iter()
            .chain((bytes.len() as u64).to_le_bytes().iter())
        {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn receipt(generation: u64, tag: u64) -> String {
    format!("{generation}.{tag}")
}

fn parse_receipt(receipt: &str) -> Option<(u64, u64)> {
    let (generation, tag) = receipt.split_once('.')?;
    Some((generation.parse().ok()?, tag.parse().ok()?))
}

/// `url` without its credentials, path or query: `amqp://host:port`.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};
    use lapin::BasicProperties;

    fn delivery(props: BasicProperties, data: &[u8], redelivered: bool) -> AmqpDelivery {
        AmqpDelivery::mock(7, "ex".into(), "rk".into(), redelivered, data.to_vec())
            .with_props(props)
    }

    trait WithProps {
        fn with_props(self, p: BasicProperties) -> Self;
    }
    impl WithProps for AmqpDelivery {
        fn with_props(mut self, p: BasicProperties) -> Self {
            self.properties = p;
            self
        }
    }

    #[test]
    fn headers_become_text_attributes_and_others_are_skipped() {
        let mut h = FieldTable::default();
        h.insert("s".into(), AMQPValue::LongString(LongString::from("héllo")));
        h.insert(
            "bad".into(),
            AMQPValue::LongString(LongString::from(vec![0x66, 0xff])),
        );
        h.insert("short".into(), AMQPValue::ShortString("x".into()));
        h.insert("b".into(), AMQPValue::Boolean(true));
        h.insert("i".into(), AMQPValue::LongLongInt(-42));
        h.insert("u".into(), AMQPValue::ShortShortUInt(7));
        h.insert("f".into(), AMQPValue::Double(1.5));
        h.insert(
            "d".into(),
            AMQPValue::DecimalValue(lapin::types::DecimalValue {
                scale: 3,
                value: 12,
            }),
        );
        h.insert("t".into(), AMQPValue::Timestamp(1_700_000_000));
        h.insert("arr".into(), AMQPValue::FieldArray(FieldArray::default()));
        h.insert("tbl".into(), AMQPValue::FieldTable(FieldTable::default()));
        h.insert("void".into(), AMQPValue::Void);
        h.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongLongInt(3));
        let props = BasicProperties::default()
            .with_headers(h)
            .with_message_id("m-1".into())
            .with_timestamp(1_700_000_123);
        let m = read_message(&delivery(props, b"\xffbody", true));
        let expected: BTreeMap<String, String> = [
            ("s", "héllo"),
            ("bad", "f\u{fffd}"),
            ("short", "x"),
            ("b", "true"),
            ("i", "-42"),
            ("u", "7"),
            ("f", "1.5"),
            ("d", "0.012"),
            ("t", "1700000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(m.attributes, expected);
        assert_eq!(m.message_id, "m-1");
        assert_eq!(m.body, "\u{fffd}body");
        assert_eq!(m.delivered_before, Some(3));
        assert_eq!(m.sent_at.map(|t| t.timestamp()), Some(1_700_000_123));
    }

    #[test]
    fn a_message_without_id_gets_a_stable_content_id() {
        let props = BasicProperties::default();
        let a = read_message(&delivery(props.clone(), b"one", false));
        let again = read_message(&delivery(props.clone(), b"one", true));
        let b = read_message(&delivery(props, b"two", false));
        assert!(a.message_id.starts_with("amqp-") && a.message_id.len() == 21);
        assert_eq!(a.message_id, again.message_id);
        assert_ne!(a.message_id, b.message_id);
        assert_eq!(a.sent_at, None);
        assert!(a.attributes.is_empty());
        // The broker's delivery count does not change the id.
        let mut h = FieldTable::default();
        h.insert(DELIVERY_COUNT_HEADER.into(), AMQPValue::LongInt(2));
        let counted = read_message(&delivery(
            BasicProperties::default().with_headers(h),
            b"one",
            true,
        ));
        assert_eq!(counted.message_id, a.message_id);
    }

    #[test]
    fn decimals_and_counts_read_safely() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(5, 0), "5");
        assert_eq!(decimal_text(5, 4), "0.0005");
        assert_eq!(as_count(&AMQPValue::LongLongInt(-1)), Some(0));
        assert_eq!(as_count(&AMQPValue::LongLongInt(i64::MAX)), Some(u32::MAX));
        assert_eq!(as_count(&AMQPValue::Boolean(true)), None);
    }

    #[test]
    fn receipts_name_a_generation_and_a_tag() {
        assert_eq!(parse_receipt(&receipt(3, 41)), Some((3, 41)));
        assert_eq!(parse_receipt("3"), None);
        assert_eq!(parse_receipt("x.1"), None);
        assert_eq!(parse_receipt("1.2.3"), None);
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact("amqp://guest:secret@10.0.0.1:5672/%2f"),
            "amqp://10.0.0.1:5672"
        );
        assert_eq!(
            redact("amqps://u:p%40x@host/vh?heartbeat=5"),
            "amqps://host"
        );
        assert_eq!(redact("localhost"), "amqp://localhost");
    }

    #[test]
    fn classic_counts_are_derived_and_throttles_taken_back() {
        let now = Utc::now();
        let mut c = Counts::default();
        assert_eq!(c.on_delivery("a", false, None, now).0, 1);
        assert_eq!(c.on_delivery("a", true, None, now).0, 2);
        c.uncount("a");
        assert_eq!(c.on_delivery("a", true, None, now).0, 2);
        assert_eq!(c.on_delivery("a", true, None, now).0, 3);
        // Unknown and redelivered: the documented guess.
        assert_eq!(c.on_delivery("b", true, None, now).0, 2);
        // A first delivery starts over.
        let later = now + chrono::Duration::seconds(5);
        assert_eq!(c.on_delivery("a", false, None, later), (1, later));
        c.forget("a");
        assert_eq!(c.on_delivery("a", true, None, now).0, 2);
    }

    #[test]
    fn quorum_counts_follow_the_header_less_throttles() {
        let now = Utc::now();
        let mut c = Counts::default();
        assert_eq!(c.on_delivery("q", false, None, now), (1, now));
        c.uncount("q");
        let later = now + chrono::Duration::seconds(1);
        assert_eq!(c.on_delivery("q", true, Some(1), later), (1, now));
        assert_eq!(c.on_delivery("q", true, Some(2), later).0, 2);
        c.uncount("q");
        assert_eq!(c.on_delivery("q", true, Some(3), later).0, 2);
        assert_eq!(c.on_delivery("q", true, Some(4), later).0, 3);
        // Unknown (a restart): the broker's count as it is.
        assert_eq!(c.on_delivery("r", true, Some(4), later).0, 5);
        // A broker that would not count a requeue never stalls the count.
        assert_eq!(c.on_delivery("r", true, Some(4), later).0, 6);
    }

    #[test]
    fn prefetched_messages_returned_unseen_are_not_counted() {
        let now = Utc::now();
        let mut c = Counts::default();
        // Classic: new, returned unseen, then its redelivery is its first
        // receive; returned unseen again later, the count goes on.
        c.not_received("n");
        assert_eq!(c.on_delivery("n", true, None, now), (1, now));
        assert_eq!(c.on_delivery("n", true, None, now).0, 2);
        c.not_received("n");
        assert_eq!(c.on_delivery("n", true, None, now).0, 3);
        // Quorum: the broker counts the unseen deliveries, this source not.
        c.not_received("q");
        assert_eq!(c.on_delivery("q", true, Some(1), now).0, 1);
        assert_eq!(c.on_delivery("q", true, Some(2), now).0, 2);
        c.not_received("q");
        assert_eq!(c.on_delivery("q", true, Some(4), now).0, 3);
    }

    #[test]
    fn counts_forget_the_least_recently_seen_past_the_cap() {
        let now = Utc::now();
        let mut c = Counts::default();
        for i in 0..=SEEN_CAP {
            c.on_delivery(&i.to_string(), false, None, now);
        }
        assert_eq!(c.seen.len(), SEEN_CAP / 2);
        assert!(!c.seen.contains_key("0"));
        assert!(c.seen.contains_key(&SEEN_CAP.to_string()));
    }
}
