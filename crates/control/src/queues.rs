//! The embedded queue: owner-scoped like functions. A tenant addresses its
//! own queues (names are per owner); an admin names another owner with
//! `owner`. Another owner's queue is "not found" for a tenant's reads and
//! "forbidden" for its writes.
//!
//! The `*_for` methods are the platform's (the queue-trigger consumer's):
//! they act for a function's owner, given explicitly, with no caller.

use std::collections::BTreeMap;
use std::time::Duration;

use hotswap_domain::queue::{validate_message, validate_queue_name, MessageError};
use hotswap_domain::{time, QueueMessage, QueueSummary, Receipt};

use crate::{ControlError, ControlPlane, Principal, Result};

/// A message to send (`POST /v1/queues/{name}/messages`).
#[derive(Debug, Clone, Default)]
pub struct NewQueueMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

/// Wakes this server's receivers of an embedded queue when a message
/// becomes visible in it here (sent, released at once, dead-lettered into
/// it), so a waiting consumer starts at once instead of at its next look
/// at the store. Messages made visible by another server are found by the
/// receivers' polling.
#[derive(Debug, Default)]
pub struct QueueSignals {
    waiting: std::sync::Mutex<
        std::collections::HashMap<(String, String), std::sync::Weak<tokio::sync::Notify>>,
    >,
}

impl QueueSignals {
    /// The signal of `owner`'s queue `queue` (kept while someone holds it).
    pub fn signal(&self, owner: &str, queue: &str) -> std::sync::Arc<tokio::sync::Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let key = (owner.to_owned(), queue.to_owned());
        if let Some(n) = waiting.get(&key).and_then(std::sync::Weak::upgrade) {
            return n;
        }
        waiting.retain(|_, w| w.strong_count() > 0);
        let n = std::sync::Arc::new(tokio::sync::Notify::new());
        waiting.insert(key, std::sync::Arc::downgrade(&n));
        n
    }

    fn wake(&self, owner: &str, queue: &str) {
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = waiting
            .get(&(owner.to_owned(), queue.to_owned()))
            .and_then(std::sync::Weak::upgrade)
        {
            n.notify_waiters();
        }
    }
}

fn check_name(queue_name: &str) -> Result<()> {
    validate_queue_name(queue_name)
        .into_result()
        .map_err(ControlError::from)
}

fn not_found(queue_name: &str) -> ControlError {
    ControlError::NotFound(format!("queue '{queue_name}' not found"))
}

impl ControlPlane {
    /// The owner a request addresses: `owner` or the caller's own. A tenant
    /// naming another owner gets 404 (`write == false`) or 403.
    fn queue_owner<'a>(
        &self,
        caller: &'a Principal,
        owner: Option<&'a str>,
        queue_name: &str,
        write: bool,
    ) -> Result<&'a str> {
        let owner = owner.unwrap_or(&caller.owner_id);
        if caller.owns(owner) {
            return Ok(owner);
        }
        Err(if write {
            ControlError::Forbidden(format!("queues of owner '{owner}' belong to another owner"))
        } else {
            not_found(queue_name)
        })
    }

    /// Sends a message to the caller's queue (or, an admin, `owner`'s),
    /// creating the queue with its first message. Field errors name
    /// `queueName`, `body` or `attributes.NAME`; a message over 256 KiB is
    /// `PayloadTooLarge`.
    pub async fn send_queue_message(
        &self,
        caller: &Principal,
        owner: Option<&str>,
        queue_name: &str,
        message: NewQueueMessage,
    ) -> Result<QueueMessage> {
        let owner = self
            .queue_owner(caller, owner, queue_name, true)?
            .to_owned();
        self.send_queue_message_for(&owner, queue_name, message)
            .await
    }

    /// Sends a message to `owner`'s queue, checked like
    /// [`ControlPlane::send_queue_message`] (for the platform: a
    /// `queue:NAME` destination of a function of `owner`).
    pub async fn send_queue_message_for(
        &self,
        owner: &str,
        queue_name: &str,
        message: NewQueueMessage,
    ) -> Result<QueueMessage> {
        let mut errors = validate_queue_name(queue_name);
        match validate_message(&message.body, &message.attributes) {
            Ok(()) => {}
            Err(MessageError::Invalid(e)) => errors.extend(e),
            Err(e @ MessageError::TooLarge(_)) if errors.is_empty() => {
                return Err(ControlError::PayloadTooLarge(e.to_string()))
            }
            Err(MessageError::TooLarge(_)) => {}
        }
        errors.into_result()?;
        let m = QueueMessage::new(
            owner,
            queue_name,
            message.body,
            message.attributes,
            time::now(),
        );
        self.store.queue_send(&m).await?;
        self.queue_signals.wake(owner, queue_name);
        tracing::debug!(owner, queue = queue_name, message = %m.message_id, "queue message sent");
        Ok(m)
    }

    /// The caller's queues (an admin: every owner's, or `owner`'s), by
    /// name. A tenant naming another owner gets an empty list.
    pub async fn list_queues(
        &self,
        caller: &Principal,
        owner: Option<&str>,
    ) -> Result<Vec<QueueSummary>> {
        let now = time::now();
        if !caller.is_admin {
            if owner.is_some_and(|o| o != caller.owner_id) {
                return Ok(Vec::new());
            }
            return Ok(self
                .store
                .queue_summaries(Some(&caller.owner_id), now)
                .await?);
        }
        Ok(self.store.queue_summaries(owner, now).await?)
    }

    /// One queue; 404 when it never had a message.
    pub async fn get_queue(
        &self,
        caller: &Principal,
        owner: Option<&str>,
        queue_name: &str,
    ) -> Result<QueueSummary> {
        check_name(queue_name)?;
        let owner = self.queue_owner(caller, owner, queue_name, false)?;
        self.queue_summary_for(owner, queue_name)
            .await?
            .ok_or_else(|| not_found(queue_name))
    }

    /// `owner`'s queue as it is now, if it ever had a message (for the
    /// platform: backlog and age of the oldest message).
    pub async fn queue_summary_for(
        &self,
        owner: &str,
        queue_name: &str,
    ) -> Result<Option<QueueSummary>> {
        Ok(self
            .store
            .queue_summary(owner, queue_name, time::now())
            .await?)
    }

    /// Deletes every message of the queue (received or not); how many. The
    /// queue stays, empty. 404 when it never had a message.
    pub async fn purge_queue(
        &self,
        caller: &Principal,
        owner: Option<&str>,
        queue_name: &str,
    ) -> Result<u64> {
        check_name(queue_name)?;
        let owner = self.queue_owner(caller, owner, queue_name, true)?;
        if self.queue_summary_for(owner, queue_name).await?.is_none() {
            return Err(not_found(queue_name));
        }
        let purged = self.store.queue_purge(owner, queue_name).await?;
        tracing::info!(owner, queue = queue_name, purged, "queue purged");
        Ok(purged)
    }

    // ---- the consumer's side (no caller: the platform acts for `owner`) ----

    /// Receives up to `max` visible messages of `owner`'s queue, oldest
    /// first, each invisible for `visibility` and with a fresh receipt.
    pub async fn receive_queue_messages(
        &self,
        owner: &str,
        queue_name: &str,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<(QueueMessage, Receipt)>> {
        Ok(self
            .store
            .queue_receive(owner, queue_name, max, visibility, time::now())
            .await?)
    }

    /// Deletes the messages of these receipts (current ones only); how many.
    pub async fn ack_queue_messages(
        &self,
        owner: &str,
        queue_name: &str,
        receipts: &[Receipt],
    ) -> Result<u64> {
        Ok(self.store.queue_ack(owner, queue_name, receipts).await?)
    }

    /// Makes the messages of these receipts visible again after `delay`;
    /// `uncount` takes the receive back (a throttled batch). How many.
    pub async fn release_queue_messages(
        &self,
        owner: &str,
        queue_name: &str,
        receipts: &[Receipt],
        delay: Duration,
        uncount: bool,
    ) -> Result<u64> {
        let released = self
            .store
            .queue_release(owner, queue_name, receipts, delay, uncount, time::now())
            .await?;
        if delay.is_zero() && released > 0 {
            self.queue_signals.wake(owner, queue_name);
        }
        Ok(released)
    }

    /// The signal a receiver of `owner`'s embedded queue waits on between
    /// looks at the store ([`QueueSignals`]).
    pub fn queue_signal(
        &self,
        owner: &str,
        queue_name: &str,
    ) -> std::sync::Arc<tokio::sync::Notify> {
        self.queue_signals.signal(owner, queue_name)
    }

    /// Dead-letters the message of this receipt to `owner`'s queue
    /// `to_queue` (with the attribute `DeadLetterSourceQueue`); `None` when
    /// the receipt is stale. A validation error when `to_queue` is not a
    /// queue name or is the queue itself.
    pub async fn dead_letter_queue_message(
        &self,
        owner: &str,
        queue_name: &str,
        receipt: &Receipt,
        to_queue: &str,
    ) -> Result<Option<QueueMessage>> {
        check_name(to_queue)?;
        if to_queue == queue_name {
            return Err(ControlError::validation(format!(
                "deadLetterTarget: queue '{to_queue}' is the queue itself"
            )));
        }
        let moved = self
            .store
            .queue_move(owner, queue_name, receipt, to_queue, time::now())
            .await?;
        if moved.is_some() {
            self.queue_signals.wake(owner, to_queue);
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodeLimits;
    use hotswap_store::BlobStore;

    async fn plane(dir: &std::path::Path) -> ControlPlane {
        let store =
            hotswap_store::open_metadata_store(&format!("sqlite://{}", dir.join("m.db").display()))
                .await
                .unwrap();
        let blobs = BlobStore::local(&dir.join("blobs")).unwrap();
        ControlPlane::new(store, blobs, CodeLimits::default())
    }

    fn user(name: &str, is_admin: bool) -> Principal {
        Principal {
            owner_id: name.into(),
            is_admin,
        }
    }

    fn msg(body: &str) -> NewQueueMessage {
        NewQueueMessage {
            body: body.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Whether `n` is notified within `within`, armed before `act` runs.
    async fn woken_by(
        n: &tokio::sync::Notify,
        within: std::time::Duration,
        act: impl std::future::Future<Output = ()>,
    ) -> bool {
        let woken = n.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        act.await;
        tokio::time::timeout(within, woken).await.is_ok()
    }

    #[tokio::test]
    async fn a_message_sent_here_wakes_that_queues_receivers_only() {
        let dir = tempfile::tempdir().unwrap();
        let cp = plane(dir.path()).await;
        let alice_orders = cp.queue_signal("alice", "orders");
        let bob_orders = cp.queue_signal("bob", "orders");
        let second = std::time::Duration::from_secs(1);
        let short = std::time::Duration::from_millis(100);
        assert!(
            woken_by(&alice_orders, second, async {
                cp.send_queue_message_for("alice", "orders", msg("a"))
                    .await
                    .unwrap();
            })
            .await
        );
        // Another owner's queue of the same name, another queue of hers.
        assert!(
            !woken_by(&bob_orders, short, async {
                cp.send_queue_message_for("alice", "orders", msg("b"))
                    .await
                    .unwrap();
                cp.send_queue_message_for("bob", "other", msg("c"))
                    .await
                    .unwrap();
            })
            .await
        );
        // Released at once: visible again, receivers woken.
        let got = cp
            .receive_queue_messages("alice", "orders", 1, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let receipt = got[0].1.clone();
        assert!(
            woken_by(&alice_orders, second, async {
                cp.release_queue_messages(
                    "alice",
                    "orders",
                    &[receipt],
                    std::time::Duration::ZERO,
                    false,
                )
                .await
                .unwrap();
            })
            .await
        );
    }

    #[tokio::test]
    async fn queues_are_owner_scoped_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cp = plane(dir.path()).await;
        let (alice, bob, admin) = (user("alice", false), user("bob", false), user("root", true));

        let m = cp
            .send_queue_message(&alice, None, "orders", msg("hi"))
            .await
            .unwrap();
        assert_eq!(
            (m.owner_id.as_str(), m.queue_name.as_str()),
            ("alice", "orders")
        );
        // Bob has no queue "orders"; he cannot reach Alice's.
        assert!(matches!(
            cp.get_queue(&bob, None, "orders").await,
            Err(ControlError::NotFound(_))
        ));
        assert!(matches!(
            cp.get_queue(&bob, Some("alice"), "orders").await,
            Err(ControlError::NotFound(_))
        ));
        assert!(matches!(
            cp.purge_queue(&bob, Some("alice"), "orders").await,
            Err(ControlError::Forbidden(_))
        ));
        assert!(matches!(
            cp.send_queue_message(&bob, Some("alice"), "orders", msg("x"))
                .await,
            Err(ControlError::Forbidden(_))
        ));
        assert!(cp.list_queues(&bob, None).await.unwrap().is_empty());
        assert!(cp
            .list_queues(&bob, Some("alice"))
            .await
            .unwrap()
            .is_empty());
        // An admin reaches any owner's.
        cp.send_queue_message(&admin, Some("alice"), "orders", msg("two"))
            .await
            .unwrap();
        let q = cp.get_queue(&admin, Some("alice"), "orders").await.unwrap();
        assert_eq!(q.depth, 2);
        assert_eq!(cp.list_queues(&admin, None).await.unwrap().len(), 1);
        assert_eq!(cp.list_queues(&alice, None).await.unwrap()[0].depth, 2);
        assert_eq!(cp.purge_queue(&alice, None, "orders").await.unwrap(), 2);
        assert_eq!(cp.get_queue(&alice, None, "orders").await.unwrap().depth, 0);
        assert!(matches!(
            cp.purge_queue(&alice, None, "never").await,
            Err(ControlError::NotFound(_))
        ));

        // Every field error at once; size only when the fields are fine.
        let bad = NewQueueMessage {
            body: String::new(),
            attributes: BTreeMap::from([("AWS.x".to_owned(), "v".to_owned())]),
        };
        let Err(ControlError::Validation(e)) =
            cp.send_queue_message(&alice, None, "bad name", bad).await
        else {
            panic!("expected a validation error")
        };
        assert_eq!(e.messages().len(), 3, "{e}");
        let big = msg(&"x".repeat(hotswap_domain::queue::MAX_MESSAGE_BYTES + 1));
        assert!(matches!(
            cp.send_queue_message(&alice, None, "orders", big).await,
            Err(ControlError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            cp.get_queue(&alice, None, "a/b").await,
            Err(ControlError::Validation(_))
        ));
    }

    #[tokio::test]
    async fn the_consumer_side_receives_acks_and_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let cp = plane(dir.path()).await;
        for body in ["a", "b", "c"] {
            cp.send_queue_message_for("alice", "jobs", msg(body))
                .await
                .unwrap();
        }
        let got = cp
            .receive_queue_messages("alice", "jobs", 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        let receipts: Vec<Receipt> = got.iter().map(|(_, r)| r.clone()).collect();
        assert_eq!(
            cp.ack_queue_messages("alice", "jobs", &receipts[..1])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            cp.release_queue_messages("alice", "jobs", &receipts[1..2], Duration::ZERO, true)
                .await
                .unwrap(),
            1
        );
        assert!(matches!(
            cp.dead_letter_queue_message("alice", "jobs", &receipts[2], "jobs")
                .await,
            Err(ControlError::Validation(_))
        ));
        let moved = cp
            .dead_letter_queue_message("alice", "jobs", &receipts[2], "jobs-dlq")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(moved.attributes["DeadLetterSourceQueue"], "jobs");
        let jobs = cp
            .queue_summary_for("alice", "jobs")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((jobs.depth, jobs.in_flight), (1, 0));
        let dlq = cp
            .queue_summary_for("alice", "jobs-dlq")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dlq.depth, 1);
    }
}
