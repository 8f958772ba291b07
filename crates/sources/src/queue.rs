//! Queues: the [`QueueSource`] trait every queue backend implements
//! (HotSwap's embedded queue, RabbitMQ, NATS JetStream, Redis Streams), and
//! [`MemoryQueue`], an in-memory double with the same semantics for tests.
//!
//! The semantics are SQS's, which Lambda's queue event sources taught users:
//! a received message is invisible to other receivers for a visibility
//! timeout; it is gone only when acknowledged; released (or left to time
//! out) it is delivered again, with its receive count one higher.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::SourceError;

/// One message as a consumer receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub message_id: String,
    /// Names this receive of the message (a later receive gets another).
    pub receipt: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    /// How many times it was received, this time included.
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
    pub first_received_at: DateTime<Utc>,
}

/// Messages waiting in a source.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Backlog {
    /// Visible now.
    pub waiting: u64,
    /// Received and not yet acknowledged or visible again.
    pub in_flight: u64,
    /// Age of the oldest message, seconds.
    pub oldest_age_s: Option<f64>,
}

/// A queue a trigger consumes.
#[async_trait]
pub trait QueueSource: Send + Sync {
    /// For logs and `state.lastError`, e.g. `embedded queue 'orders'`.
    fn describe(&self) -> String;
    /// Up to `max` messages, each invisible to other receivers for
    /// `visibility`; waits at most `wait` for the first one.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError>;
    /// Done with these receipts: their messages are gone. A receipt of an
    /// earlier receive (the message was delivered again since) does nothing.
    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError>;
    /// Makes these messages visible again after `delay`. `count: false`
    /// takes the receive back (a batch that was throttled, never run).
    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError>;
    /// Moves a message to HotSwap's embedded queue `queue` (dead-letter
    /// targets are always embedded queues of the trigger's owner) in one
    /// step, when the source can: the embedded queue itself. `false`: this
    /// source cannot, and the consumer sends the message there and then
    /// acknowledges it (at least once: never lost).
    async fn dead_letter(&self, _receipt: &str, _queue: &str) -> Result<bool, SourceError> {
        Ok(false)
    }
    async fn backlog(&self) -> Result<Backlog, SourceError>;
}

#[derive(Debug, Clone)]
struct Stored {
    message_id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    receive_count: u32,
    sent_at: DateTime<Utc>,
    first_received_at: Option<DateTime<Utc>>,
    /// Receipt of the current receive, when in flight.
    receipt: Option<String>,
    /// Visible again at this (virtual) time, ms.
    visible_at_ms: u64,
}

/// An in-memory queue with SQS semantics on a virtual clock (tests move it
/// with [`MemoryQueue::advance`]).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    now_ms: u64,
    next: u64,
    messages: VecDeque<Stored>,
    dead: BTreeMap<String, Vec<Stored>>,
}

impl MemoryQueue {
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    /// Sends a message; its id.
    pub fn send(&self, body: &str) -> String {
        let mut s = self.inner.lock().unwrap();
        s.next += 1;
        let id = format!("m{}", s.next);
        let now = s.now_ms;
        s.messages.push_back(Stored {
            message_id: id.clone(),
            body: body.to_owned(),
            attributes: BTreeMap::new(),
            receive_count: 0,
            sent_at: DateTime::<Utc>::UNIX_EPOCH,
            first_received_at: None,
            receipt: None,
            visible_at_ms: now,
        });
        id
    }

    /// Moves the virtual clock.
    pub fn advance(&self, d: Duration) {
        self.inner.lock().unwrap().now_ms += d.as_millis() as u64;
    }

    /// Messages still in the queue (visible or not), with receive counts.
    pub fn remaining(&self) -> Vec<(String, u32)> {
        let s = self.inner.lock().unwrap();
        s.messages
            .iter()
            .map(|m| (m.message_id.clone(), m.receive_count))
            .collect()
    }

    /// Bodies moved to dead-letter queue `queue`.
    pub fn dead_lettered(&self, queue: &str) -> Vec<String> {
        let s = self.inner.lock().unwrap();
        s.dead
            .get(queue)
            .map(|v| v.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl QueueSource for MemoryQueue {
    fn describe(&self) -> String {
        "memory queue".into()
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        _wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        let mut s = self.inner.lock().unwrap();
        let now = s.now_ms;
        let mut out = Vec::new();
        let mut next = s.next;
        for m in s.messages.iter_mut() {
            if out.len() >= max {
                break;
            }
            if m.visible_at_ms > now {
                continue;
            }
            next += 1;
            m.receive_count += 1;
            m.visible_at_ms = now + visibility.as_millis() as u64;
            let first = *m
                .first_received_at
                .get_or_insert(DateTime::<Utc>::UNIX_EPOCH);
            let receipt = format!("{}#{next}", m.message_id);
            m.receipt = Some(receipt.clone());
            out.push(Delivery {
                message_id: m.message_id.clone(),
                receipt,
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                receive_count: m.receive_count,
                sent_at: m.sent_at,
                first_received_at: first,
            });
        }
        s.next = next;
        Ok(out)
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError> {
        let mut s = self.inner.lock().unwrap();
        s.messages
            .retain(|m| !m.receipt.as_ref().is_some_and(|r| receipts.contains(r)));
        Ok(())
    }

    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError> {
        let mut s = self.inner.lock().unwrap();
        let now = s.now_ms;
        for m in s.messages.iter_mut() {
            if m.receipt.as_ref().is_some_and(|r| receipts.contains(r)) {
                m.visible_at_ms = now + delay.as_millis() as u64;
                m.receipt = None;
                if !count {
                    m.receive_count -= 1;
                }
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, receipt: &str, queue: &str) -> Result<bool, SourceError> {
        let mut s = self.inner.lock().unwrap();
        let Some(i) = s
            .messages
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))
        else {
            return Ok(true);
        };
        let m = s.messages.remove(i).expect("index found");
        s.dead.entry(queue.to_owned()).or_default().push(m);
        Ok(true)
    }

    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let s = self.inner.lock().unwrap();
        let waiting = s
            .messages
            .iter()
            .filter(|m| m.visible_at_ms <= s.now_ms)
            .count() as u64;
        Ok(Backlog {
            waiting,
            in_flight: s.messages.len() as u64 - waiting,
            oldest_age_s: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIS: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn the_double_keeps_sqs_semantics() {
        let q = MemoryQueue::new();
        q.send("a");
        q.send("b");
        let first = q.receive(10, VIS, Duration::ZERO).await.unwrap();
        assert_eq!(first.len(), 2);
        // In flight: nobody else gets them.
        assert!(q.receive(10, VIS, Duration::ZERO).await.unwrap().is_empty());
        q.ack(&[first[0].receipt.clone()]).await.unwrap();
        q.advance(VIS);
        let again = q.receive(10, VIS, Duration::ZERO).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].body.as_str(), again[0].receive_count), ("b", 2));
        // A stale receipt acknowledges nothing.
        q.ack(&[first[1].receipt.clone()]).await.unwrap();
        assert_eq!(q.remaining().len(), 1);
        // Released without counting: the receive is taken back.
        q.release(&[again[0].receipt.clone()], Duration::ZERO, false)
            .await
            .unwrap();
        assert_eq!(q.remaining(), [("m2".to_owned(), 1)]);
    }
}
