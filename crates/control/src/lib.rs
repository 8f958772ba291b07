//! The control plane: every operation the REST API offers, as plain async
//! methods on [`ControlPlane`]. It enforces ownership, validates with the
//! domain rules, and keeps the metadata store and the blob store consistent.
//! The API crate only maps HTTP onto these calls and errors onto responses.

use std::sync::Arc;

use hotswap_store::{BlobStore, MetadataStore};

mod aliases;
mod auth;
mod code;
mod deployments;
mod error;
mod functions;
mod invoke;
mod layers;
mod network;
mod queues;
mod runners;
mod triggers;
mod versions;

pub use aliases::AliasUpdate;
pub use auth::{
    hash_token, valid_owner_id, Grant, IssuedToken, NewToken, Principal, Refused, MAX_TOKEN_NAME,
};
pub use code::{CodeLimits, CodePackage};
pub use deployments::NewDeployment;
pub use error::ControlError;
pub use functions::{FunctionPatch, FunctionRef, NewFunction};
pub use hotswap_store::{ApiToken, FunctionFilter, InvocationCursor, Page, TokenRole, VpcUser};
pub use network::{NewSubnet, SecurityGroupSpec};
pub use queues::NewQueueMessage;
pub use runners::{Heartbeat, RunnerView};
pub use triggers::{source_flag, unserved_source, NewTrigger};

pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// The control plane over one metadata store and one blob store.
#[derive(Clone)]
pub struct ControlPlane {
    store: Arc<dyn MetadataStore>,
    blobs: BlobStore,
    limits: CodeLimits,
    /// Bumped by every change to what an invocation resolves to (a
    /// function, version, alias, layer, subnet, security group or
    /// deployment step): the router's
    /// cached routes are only used while it is unchanged.
    routing: Arc<std::sync::atomic::AtomicU64>,
    /// Bumped by every trigger write (and a function's deletion, which
    /// takes its triggers): the gateway's route table and the scheduler's
    /// trigger list follow it.
    triggers: Arc<std::sync::atomic::AtomicU64>,
    /// The sources this server's consumers serve (Queue, Stream triggers).
    sources: Arc<std::sync::RwLock<ServedSources>>,
    /// Wakes this server's embedded-queue receivers.
    queue_signals: Arc<queues::QueueSignals>,
}

/// The sources Queue and Stream triggers may name on this server: those
/// whose consumers run here (a broker's needs its URL flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedSources {
    pub queues: Vec<hotswap_domain::TriggerSource>,
    pub streams: Vec<hotswap_domain::TriggerSource>,
}

impl Default for ServedSources {
    /// HotSwap's embedded queue alone: it needs nothing configured.
    fn default() -> Self {
        Self {
            queues: vec![hotswap_domain::TriggerSource::Embedded],
            streams: Vec::new(),
        }
    }
}

impl ControlPlane {
    pub fn new(store: Arc<dyn MetadataStore>, blobs: BlobStore, limits: CodeLimits) -> Self {
        Self {
            store,
            blobs,
            limits,
            routing: Arc::default(),
            triggers: Arc::default(),
            sources: Arc::default(),
            queue_signals: Arc::default(),
        }
    }

    /// Sets the sources Queue and Stream triggers may name (the server
    /// does, from its broker flags).
    pub fn serve_sources(&self, served: ServedSources) {
        *self.sources.write().unwrap_or_else(|p| p.into_inner()) = served;
    }

    pub fn served_sources(&self) -> ServedSources {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The routing epoch: changes whenever something an invocation resolves
    /// through (function, version, alias, layer, subnet, security group,
    /// deployment weights) changes on this server.
    pub fn routing_epoch(&self) -> u64 {
        self.routing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The trigger epoch: changes whenever a trigger is created, changed or
    /// deleted on this server.
    pub fn trigger_epoch(&self) -> u64 {
        self.triggers.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks cached trigger lists stale; called after each trigger write
    /// commits.
    pub(crate) fn triggers_changed(&self) {
        self.triggers
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Marks cached routes stale; called after each such write commits.
    pub(crate) fn routing_changed(&self) {
        self.routing
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Whether the metadata store answers (the health check).
    pub async fn check_store(&self) -> Result<()> {
        self.store.has_admin_token().await?;
        Ok(())
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn limits(&self) -> &CodeLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests;
