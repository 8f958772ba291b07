//! Shard leases: one consumer at a time per shard of a Stream trigger,
//! however many servers run the trigger, and the shard's checkpoint, which
//! only the lease's holder may move.
//!
//! A lease is taken for a time (its TTL) and renewed well before it runs
//! out; a server that stops renewing (stopped, crashed, cut off from the
//! store) loses it when it expires, and another takes the shard over from
//! the stored checkpoint. [`StoreLeases`] keeps leases and checkpoints in
//! the metadata store (`stream_shards`), so they survive restarts and are
//! shared by every server on one database; [`super::memory::MemoryLeases`]
//! is the in-memory double.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hotswap_control::ControlPlane;
use hotswap_store::MetadataStore;

/// The lease of a shard after [`ShardLeases::take_or_renew`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// The caller holds it; the shard's stored checkpoint (`None`: the
    /// shard was never started).
    Held { checkpoint: Option<String> },
    /// Another owner holds an unexpired lease.
    HeldElsewhere,
}

/// The lease store failed (the lease's state is unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard lease store: {0}")]
pub struct LeaseError(pub String);

/// Where a trigger's shard leases and checkpoints are kept.
#[async_trait]
pub trait ShardLeases: Send + Sync {
    /// Takes the lease of `shard` for `owner` for `ttl` from now when it is
    /// free, expired or `owner`'s already (a renewal), atomically.
    async fn take_or_renew(
        &self,
        shard: u32,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseState, LeaseError>;
    /// Stores `sequence` as the shard's checkpoint if `owner` holds the
    /// lease; `false` (nothing written) when it does not.
    async fn checkpoint(&self, shard: u32, owner: &str, sequence: &str)
        -> Result<bool, LeaseError>;
    /// Gives the lease up if `owner` holds it (the checkpoint stays), so
    /// another consumer may take the shard at once.
    async fn release(&self, shard: u32, owner: &str) -> Result<(), LeaseError>;
}

/// A trigger's leases in the metadata store.
#[derive(Clone)]
pub struct StoreLeases {
    store: Arc<dyn MetadataStore>,
    trigger_id: String,
}

impl StoreLeases {
    pub fn new(store: Arc<dyn MetadataStore>, trigger_id: impl Into<String>) -> Self {
        Self {
            store,
            trigger_id: trigger_id.into(),
        }
    }

    /// The leases of `trigger_id` in the control plane's store.
    pub fn of(control: &ControlPlane, trigger_id: impl Into<String>) -> Self {
        Self::new(control.store().clone(), trigger_id)
    }
}

/// `e` and its sources, `: `-separated (the store's errors keep the
/// database's detail in their source).
fn chain(e: &dyn std::error::Error) -> LeaseError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    LeaseError(text)
}

#[async_trait]
impl ShardLeases for StoreLeases {
    async fn take_or_renew(
        &self,
        shard: u32,
        owner: &str,
        ttl: Duration,
    ) -> Result<LeaseState, LeaseError> {
        let now = hotswap_domain::time::now();
        let until = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let got = self
            .store
            .stream_lease(&self.trigger_id, shard, owner, until, now)
            .await
            .map_err(|e| chain(&e))?;
        Ok(match got {
            Some(checkpoint) => LeaseState::Held { checkpoint },
            None => LeaseState::HeldElsewhere,
        })
    }

    async fn checkpoint(
        &self,
        shard: u32,
        owner: &str,
        sequence: &str,
    ) -> Result<bool, LeaseError> {
        self.store
            .stream_checkpoint(&self.trigger_id, shard, owner, sequence)
            .await
            .map_err(|e| chain(&e))
    }

    async fn release(&self, shard: u32, owner: &str) -> Result<(), LeaseError> {
        self.store
            .stream_release(&self.trigger_id, shard, owner)
            .await
            .map(|_| ())
            .map_err(|e| chain(&e))
    }
}
