//! HotSwap's own durable queue (in the metadata store: SQLite or
//! PostgreSQL) as a [`QueueSource`]: one owner's queue, read through the
//! control plane.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use hotswap_control::ControlPlane;
use hotswap_domain::queue::{QueueMessage, Receipt};

use crate::sources::{Backlog, Delivery, QueueSource, SourceError};

/// How often an empty queue is asked again while a batching window is open.
const POLL: Duration = Duration::from_millis(50);

/// `owner`'s embedded queue `queue`.
pub struct EmbeddedQueue {
    control: ControlPlane,
    owner: String,
    queue: String,
}

impl EmbeddedQueue {
    pub fn new(control: ControlPlane, owner: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            control,
            owner: owner.into(),
            queue: queue.into(),
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable(self.describe(), e.to_string())
    }

    fn receipts(&self, receipts: &[String]) -> Vec<Receipt> {
        // A receipt this source did not hand out names no message: skipped.
        receipts
            .iter()
            .filter_map(|r| Receipt::parse(r).ok())
            .collect()
    }
}

fn delivery(m: QueueMessage, r: Receipt) -> Delivery {
    Delivery {
        first_received_at: m.first_received_at.unwrap_or(m.sent_at),
        message_id: m.message_id,
        receipt: r.to_string(),
        body: m.body,
        attributes: m.attributes,
        receive_count: m.receive_count,
        sent_at: m.sent_at,
    }
}

#[async_trait]
impl QueueSource for EmbeddedQueue {
    fn describe(&self) -> String {
        format!("embedded queue '{}'", self.queue)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        let deadline = Instant::now() + wait;
        let mut out: Vec<Delivery> = Vec::new();
        let signal = self.control.queue_signal(&self.owner, &self.queue);
        loop {
            // Armed before the look at the store: a message sent meanwhile
            // wakes the wait below.
            let woken = signal.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let want = max.saturating_sub(out.len()).min(u32::MAX as usize) as u32;
            let got = self
                .control
                .receive_queue_messages(&self.owner, &self.queue, want, visibility)
                .await
                .map_err(|e| self.unavailable(e))?;
            out.extend(got.into_iter().map(|(m, r)| delivery(m, r)));
            // A long poll: back as soon as there is something.
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
            // Sent here: woken at once; sent through another server: seen
            // at the next look.
            let _ = tokio::time::timeout(
                POLL.min(deadline.saturating_duration_since(Instant::now())),
                woken,
            )
            .await;
        }
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError> {
        self.control
            .ack_queue_messages(&self.owner, &self.queue, &self.receipts(receipts))
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError> {
        self.control
            .release_queue_messages(
                &self.owner,
                &self.queue,
                &self.receipts(receipts),
                delay,
                !count,
            )
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(e))
    }

    async fn dead_letter(&self, receipt: &str, queue: &str) -> Result<bool, SourceError> {
        let Ok(receipt) = Receipt::parse(receipt) else {
            return Ok(true);
        };
        self.control
            .dead_letter_queue_message(&self.owner, &self.queue, &receipt, queue)
            .await
            .map(|_| true)
            .map_err(|e| SourceError::Refused(self.describe(), e.to_string()))
    }

    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let s = self
            .control
            .queue_summary_for(&self.owner, &self.queue)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(match s {
            Some(s) => Backlog {
                waiting: s.depth,
                in_flight: s.in_flight,
                oldest_age_s: Some(s.oldest_age_seconds as f64),
            },
            None => Backlog::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hotswap_control::{CodeLimits, NewQueueMessage};
    use hotswap_store::BlobStore;

    use super::*;
    use crate::consumer::{run_batch, BatchInvoker, BatchSettings, DeadLetter, Invoked};
    use crate::queue::response::BatchOutcome;

    async fn control(dir: &std::path::Path) -> ControlPlane {
        let store =
            hotswap_store::open_metadata_store(&format!("sqlite://{}", dir.join("m.db").display()))
                .await
                .unwrap();
        ControlPlane::new(
            store,
            BlobStore::local(&dir.join("blobs")).unwrap(),
            CodeLimits::default(),
        )
    }

    async fn send(c: &ControlPlane, queue: &str, body: &str) {
        c.send_queue_message_for(
            "alice",
            queue,
            NewQueueMessage {
                body: body.into(),
                attributes: BTreeMap::new(),
            },
        )
        .await
        .unwrap();
    }

    struct FailAll;

    #[async_trait]
    impl BatchInvoker for FailAll {
        async fn invoke(&self, _event: bytes::Bytes) -> Invoked {
            Invoked::Failed("boom".into())
        }
        async fn dead_letter_to_function(&self, _m: &Delivery) -> Result<(), String> {
            Err("none".into())
        }
        async fn dead_letter_to_queue(&self, _q: &str, _m: &Delivery) -> Result<(), String> {
            Err("none".into())
        }
    }

    #[tokio::test]
    async fn the_embedded_queue_is_a_queue_source() {
        let dir = tempfile::tempdir().unwrap();
        let c = control(dir.path()).await;
        for b in ["a", "b", "c"] {
            send(&c, "orders", b).await;
        }
        let q = EmbeddedQueue::new(c.clone(), "alice", "orders");
        let vis = Duration::from_secs(30);
        // A long poll returns what is there at once.
        let batch = q.receive(10, vis, Duration::from_secs(5)).await.unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch[0].receive_count, 1);
        assert_eq!(q.backlog().await.unwrap().in_flight, 3);
        q.ack(&[batch[0].receipt.clone()]).await.unwrap();
        q.release(&[batch[1].receipt.clone()], Duration::ZERO, false)
            .await
            .unwrap();
        let again = q.receive(10, vis, Duration::ZERO).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].body.as_str(), again[0].receive_count), ("b", 1));
        // Another owner's queue of the same name is another queue.
        let bob = EmbeddedQueue::new(c.clone(), "bob", "orders");
        let t0 = Instant::now();
        assert!(bob
            .receive(10, vis, Duration::from_millis(150))
            .await
            .unwrap()
            .is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(150), "waited for one");
    }

    #[tokio::test]
    async fn a_failing_message_is_dead_lettered_after_max_receives() {
        let dir = tempfile::tempdir().unwrap();
        let c = control(dir.path()).await;
        send(&c, "orders", "poison").await;
        let q = EmbeddedQueue::new(c.clone(), "alice", "orders");
        let settings = BatchSettings {
            visibility: Duration::ZERO,
            max_receive_count: 2,
            dead_letter: DeadLetter::Queue("orders-dlq".into()),
            throttle_backoff: Duration::ZERO,
        };
        for expected_dead in [0, 1] {
            let batch = q.receive(10, Duration::ZERO, Duration::ZERO).await.unwrap();
            assert_eq!(batch.len(), 1);
            let r = run_batch(
                &q,
                &FailAll,
                &settings,
                batch,
                |_| bytes::Bytes::new(),
                |_, _| BatchOutcome::AllSucceeded,
            )
            .await
            .unwrap();
            assert_eq!(r.dead_lettered, expected_dead);
        }
        let dlq = c
            .queue_summary_for("alice", "orders-dlq")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dlq.depth, 1);
        assert_eq!(q.backlog().await.unwrap().waiting, 0);
    }
}
