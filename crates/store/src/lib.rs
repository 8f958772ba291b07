//! Durable storage for HotSwap.
//!
//! - [`MetadataStore`]: functions, versions, aliases, triggers, runners,
//!   deployments, API tokens, the embedded queue and stream triggers'
//!   checkpoints and shard leases, behind one trait with a SQLite backend
//!   (the embedded default) and a PostgreSQL backend, sharing one test
//!   suite.
//! - [`BlobStore`]: code packages on `object_store` (local directory or
//!   S3-compatible), with SHA-256 and size checked when read back.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use hotswap_domain::time::Timestamp;
use hotswap_domain::{
    AsyncInvocation, AsyncStatus, Deployment, Function, FunctionAlias, FunctionVersion,
    LayerVersion, QueueMessage, QueueSummary, Receipt, RunnerNode, SecurityGroup, Subnet, Trigger,
    VersionStatus,
};

pub mod blob;
pub use blob::{BlobStore, StoredBlob};

mod open;
pub use open::open_metadata_store;

mod sql;
pub use sql::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed record does not exist.
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// What is missing: `"function"`, `"version"`, `"alias"`, …
        kind: &'static str,
        /// Its identity (`name`, `function:version`, `function:alias`, …).
        id: String,
    },
    /// The write conflicts with what is stored (duplicate key, a version
    /// still referenced by an alias, an active deployment on the alias…).
    #[error("{0}")]
    Conflict(String),
    /// A stored row could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A code package read back does not match its recorded hash or size.
    #[error("integrity check failed for {location}: {detail}")]
    Integrity {
        /// The blob's location.
        location: String,
        /// What differs (size or hash, with both values).
        detail: String,
    },
    /// The database failed (connection, I/O, an unexpected SQL error).
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// The object store failed.
    #[error("blob store error")]
    Blob(#[source] object_store::Error),
    /// The configuration (URL, path) is unusable.
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

/// The result of every storage operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenRole {
    /// Acts for its owner's resources only.
    Tenant,
    /// Acts for every owner, and manages tokens.
    Admin,
    /// Reserved for remote runners (not issued yet).
    Runner,
    /// Reads `/metrics` and nothing else.
    Metrics,
}

impl TokenRole {
    /// Every role, in the order documented.
    pub const ALL: [TokenRole; 4] = [
        TokenRole::Tenant,
        TokenRole::Admin,
        TokenRole::Runner,
        TokenRole::Metrics,
    ];

    /// The stored and wire name: `tenant`, `admin`, `runner`, `metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Tenant => "tenant",
            TokenRole::Admin => "admin",
            TokenRole::Runner => "runner",
            TokenRole::Metrics => "metrics",
        }
    }
}

impl fmt::Display for TokenRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`TokenRole::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}': expected tenant, admin, runner or metrics")]
pub struct UnknownRole(pub String);

impl FromStr for TokenRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        TokenRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// An API token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Lower-case hex SHA-256 of the token secret.
    pub token_hash: String,
    /// The token's public identity (random; unrelated to the secret), used
    /// to list and revoke it.
    pub token_id: String,
    /// The tenant the token acts for.
    pub owner_id: String,
    /// What the token may do.
    pub role: TokenRole,
    /// A label chosen at issue (`"ci"`, `"laptop"`).
    pub name: Option<String>,
    /// When the token was issued.
    pub created_at: Timestamp,
    /// After this instant the token is refused.
    pub expires_at: Option<Timestamp>,
    /// When a server last looked the token up in the store to accept it
    /// (servers cache tokens, so this lags real use by up to the cache's
    /// lifetime).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked token is refused for good.
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether the token may act for every tenant.
    pub fn is_admin(&self) -> bool {
        self.role == TokenRole::Admin
    }

    /// Whether the token has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Which functions `list_functions` returns, and which page.
#[derive(Debug, Clone, Default)]
pub struct FunctionFilter {
    /// Only functions of this owner.
    pub owner_id: Option<String>,
    /// Only functions carrying this tag key (and value, when given).
    pub tag: Option<(String, Option<String>)>,
    /// Page size (1–1000; the store clamps, and 0 means
    /// [`DEFAULT_PAGE_SIZE`]).
    pub limit: u32,
    /// Return functions strictly after this position (the previous page's
    /// `next_token`: `name:owner`, or a bare name, which skips every owner's
    /// function of that name).
    pub after: Option<String>,
}

/// One page of a listing, ordered by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// At most `limit` items.
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// A function, or one of its stored versions, whose `vpcConfig` names a
/// subnet or a security group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VpcUser {
    pub owner_id: String,
    pub function_name: String,
    pub function_id: String,
    /// 0: the function's own configuration (its `$LATEST`); n ≥ 1: the
    /// published version n.
    pub version: u32,
}

/// `owner/function ($LATEST, v2), …`: who uses a subnet or a group, one
/// entry per function, for a conflict message.
pub fn describe_vpc_users(users: &[VpcUser]) -> String {
    let mut sorted: Vec<&VpcUser> = users.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let head = sorted[i];
        let versions: Vec<String> = sorted[i..]
            .iter()
            .take_while(|u| u.function_id == head.function_id)
            .map(|u| hotswap_domain::version::version_string(u.version))
            .collect();
        i += versions.len();
        parts.push(format!(
            "{}/{} ({})",
            head.owner_id,
            head.function_name,
            versions.join(", ")
        ));
    }
    parts.join(", ")
}

/// What a claim hands a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// Run one more attempt (already counted in `attempts`).
    Attempt(AsyncInvocation),
    /// Its last attempt was lost with its worker (the lease ran out): not to
    /// be run again, but to be recorded as failed (and dead-lettered).
    Exhausted(AsyncInvocation),
}

impl Claimed {
    pub fn invocation(&self) -> &AsyncInvocation {
        match self {
            Claimed::Attempt(i) | Claimed::Exhausted(i) => i,
        }
    }
}

/// Which asynchronous invocations `list_invocations` returns, and which page.
#[derive(Debug, Clone, Default)]
pub struct InvocationFilter {
    /// Invocations of this function name…
    pub function_name: String,
    /// …of this owner…
    pub owner_id: String,
    /// …queued for the function with this id (or before ids existed): an
    /// earlier function of the same name keeps its invocations to itself.
    pub function_id: Option<String>,
    /// Only those in this state.
    pub status: Option<AsyncStatus>,
    /// Page size (clamped to 1–1000; 0 means [`DEFAULT_PAGE_SIZE`]).
    pub limit: u32,
    /// Return those after this position (the previous page's `next_token`).
    pub after: Option<InvocationCursor>,
}

/// A position in a listing of invocations, which runs newest first (by
/// creation time, then request id). Its text form is the page token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationCursor {
    pub created_at: Timestamp,
    pub request_id: String,
}

impl fmt::Display for InvocationCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.request_id
        )
    }
}

/// A page token that is not one this store handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid nextToken '{0}'")]
pub struct InvalidCursor(pub String);

impl FromStr for InvocationCursor {
    type Err = InvalidCursor;
    fn from_str(s: &str) -> Result<Self, InvalidCursor> {
        let refused = || InvalidCursor(s.to_owned());
        let (micros, id) = s.split_once('.').ok_or_else(refused)?;
        let created_at = micros
            .parse::<i64>()
            .ok()
            .and_then(Timestamp::from_timestamp_micros)
            .ok_or_else(refused)?;
        if id.is_empty() {
            return Err(refused());
        }
        Ok(Self {
            created_at,
            request_id: id.to_owned(),
        })
    }
}

/// A Stream trigger's place in one shard of its stream, and who consumes
/// it ([`MetadataStore::stream_shards`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamShardState {
    pub shard: u32,
    /// The sequence number of the last record the trigger is done with
    /// (`""`: before the first record); `None`: never started.
    pub checkpoint: Option<String>,
    /// The server holding the shard's lease (expired or not); `None` once
    /// released.
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
}

/// The metadata store. Every method is atomic; backends serialise the
/// mutations of one function's sub-resources (versions, aliases, deployments)
/// so that the invariants below hold under concurrent requests.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// A one-line description for logs and `/v1/runners` (backend, location).
    fn summary(&self) -> String;

    // ---- functions -------------------------------------------------------

    /// Inserts the function and its `$LATEST` version (number 0).
    /// `Conflict` when its owner has a function of that name (or the id is
    /// taken).
    ///
    /// Functions are found by (owner, name) — names are unique per owner —
    /// or by [`Function::function_id`]; everything that belongs to a
    /// function (versions, aliases, triggers, deployments, counters) is
    /// addressed by the function's id, which a function created again under
    /// the same name never shares.
    async fn create_function(&self, function: &Function, latest: &FunctionVersion) -> Result<()>;
    /// The function of this owner with this name, if any.
    async fn get_function(&self, owner_id: &str, name: &str) -> Result<Option<Function>>;
    /// The function with this id, if any.
    async fn get_function_by_id(&self, function_id: &str) -> Result<Option<Function>>;
    /// One page of functions, ordered by name then owner (the database's
    /// collation; byte order on SQLite), filtered by owner and tag. See
    /// [`FunctionFilter`].
    async fn list_functions(&self, filter: &FunctionFilter) -> Result<Page<Function>>;
    /// Replaces the function's configuration and its `$LATEST` row (found
    /// by `function.function_id`). `NotFound` when absent.
    async fn update_function(&self, function: &Function, latest: &FunctionVersion) -> Result<()>;
    /// Deletes the function with this id with its versions, aliases,
    /// triggers and deployments. `false` when it did not exist.
    async fn delete_function(&self, function_id: &str) -> Result<bool>;

    /// Adds `count` invocations to the function's `total_invocations` and
    /// the version's `invocation_count`, and moves `last_invoked_at` forward
    /// to `at`; atomic increments, so concurrent writers never lose counts.
    /// A function or version deleted meanwhile is ignored.
    async fn record_invocations(
        &self,
        function_id: &str,
        version: u32,
        count: u64,
        at: hotswap_domain::time::Timestamp,
    ) -> Result<()>;

    // ---- versions --------------------------------------------------------

    /// Reserves the next version number of the function (1, 2, …). Numbers
    /// are never reused, even after a version is deleted. `NotFound` when the
    /// function does not exist.
    async fn allocate_version_number(&self, function_id: &str) -> Result<u32>;
    /// Inserts a published version (number ≥ 1) and sets the function's
    /// `published_version` to its version string. `Conflict` if it exists.
    async fn insert_version(&self, version: &FunctionVersion) -> Result<()>;
    /// Version 0 is `$LATEST`.
    async fn get_version(&self, function_id: &str, version: u32)
        -> Result<Option<FunctionVersion>>;
    /// `$LATEST` first, then published versions in ascending order.
    async fn list_versions(&self, function_id: &str) -> Result<Vec<FunctionVersion>>;
    /// `NotFound` when absent; returns the updated version.
    async fn set_version_status(
        &self,
        function_id: &str,
        version: u32,
        status: VersionStatus,
    ) -> Result<FunctionVersion>;
    /// Deletes a published version. `Conflict` (with a message naming the
    /// aliases) while an alias routes to it, or when `can_delete()` is false;
    /// `NotFound` when absent. Checked and deleted atomically.
    async fn delete_version(&self, function_id: &str, version: u32) -> Result<FunctionVersion>;

    // ---- aliases ---------------------------------------------------------

    /// `Conflict` when the alias exists, or when a version it routes to does
    /// not exist at the time of the write (checked atomically).
    async fn create_alias(&self, alias: &FunctionAlias) -> Result<()>;
    /// The alias of this function with this name, if any.
    async fn get_alias(&self, function_id: &str, alias: &str) -> Result<Option<FunctionAlias>>;
    /// The function's aliases, ordered by name.
    async fn list_aliases(&self, function_id: &str) -> Result<Vec<FunctionAlias>>;
    /// Replaces version, routing, description and `updated_at`. `NotFound`
    /// when absent; `Conflict` when a routed version no longer exists.
    async fn update_alias(&self, alias: &FunctionAlias) -> Result<()>;
    /// Deletes the alias; `false` when it did not exist.
    async fn delete_alias(&self, function_id: &str, alias: &str) -> Result<bool>;

    // ---- triggers --------------------------------------------------------

    /// Inserts a trigger. `Conflict` when the ID is taken, `NotFound` when
    /// its function does not exist.
    async fn create_trigger(&self, trigger: &Trigger) -> Result<()>;
    /// The trigger with this ID, if any.
    async fn get_trigger(&self, trigger_id: &str) -> Result<Option<Trigger>>;
    /// All triggers, or those of one function; ordered by creation time.
    async fn list_triggers(&self, function_id: Option<&str>) -> Result<Vec<Trigger>>;
    /// Replaces the stored trigger. `NotFound` when absent.
    async fn update_trigger(&self, trigger: &Trigger) -> Result<()>;
    /// Deletes the trigger; `false` when it did not exist.
    async fn delete_trigger(&self, trigger_id: &str) -> Result<bool>;
    /// Adds runs and failures to a trigger's counters and moves its
    /// `last_executed_at` forward to `at`; atomic increments. A trigger
    /// deleted meanwhile is ignored.
    async fn record_trigger_runs(
        &self,
        trigger_id: &str,
        runs: u64,
        failures: u64,
        at: Option<Timestamp>,
    ) -> Result<()>;
    /// Claims one tick of a scheduled trigger and queues its asynchronous
    /// invocation, in one transaction; the trigger's run counters move with
    /// it. `false` (nothing written) when the tick was claimed already — by
    /// this server or another sharing the database — or the trigger is
    /// gone or disabled (checked in the same statement, so a disable on
    /// any server stops the next tick on all of them).
    async fn claim_tick(
        &self,
        trigger_id: &str,
        tick_at: Timestamp,
        invocation: &AsyncInvocation,
    ) -> Result<bool>;
    /// The newest claimed tick of a trigger.
    async fn last_tick(&self, trigger_id: &str) -> Result<Option<Timestamp>>;
    /// Forgets claims older than `before`, keeping each trigger's newest.
    async fn prune_ticks(&self, before: Timestamp) -> Result<u64>;

    // ---- runner nodes ----------------------------------------------------

    /// Inserts or replaces the runner with this node ID.
    async fn upsert_runner(&self, runner: &RunnerNode) -> Result<()>;
    /// The runner with this node ID, if any.
    async fn get_runner(&self, node_id: &str) -> Result<Option<RunnerNode>>;
    /// Ordered by node ID.
    async fn list_runners(&self) -> Result<Vec<RunnerNode>>;
    /// Deletes the runner; `false` when it did not exist.
    async fn delete_runner(&self, node_id: &str) -> Result<bool>;

    // ---- deployments -----------------------------------------------------

    /// `Conflict` when another deployment of the same function and alias is
    /// still active (Pending or InProgress); checked atomically.
    async fn create_deployment(&self, deployment: &Deployment) -> Result<()>;
    /// The deployment with this ID, if any.
    async fn get_deployment(&self, deployment_id: &str) -> Result<Option<Deployment>>;
    /// Newest first.
    async fn list_deployments(&self, function_id: &str) -> Result<Vec<Deployment>>;
    /// Replaces the stored deployment. `NotFound` when absent.
    async fn update_deployment(&self, deployment: &Deployment) -> Result<()>;
    /// Deployments still Pending or InProgress, of every function, oldest
    /// first: what a deployment controller drives.
    async fn list_active_deployments(&self) -> Result<Vec<Deployment>>;
    /// One step of a deployment, atomically: writes `alias` (when given) and
    /// the deployment with its revision bumped, only if the stored revision
    /// is still `deployment.revision`; `Conflict` otherwise (someone else
    /// moved it first). Returns the new revision.
    async fn apply_deployment(
        &self,
        deployment: &Deployment,
        alias: Option<&FunctionAlias>,
    ) -> Result<u64>;

    // ---- asynchronous invocations ----------------------------------------

    /// Persists a queued invocation; `Conflict` if the request id exists.
    async fn enqueue_invocation(&self, invocation: &AsyncInvocation) -> Result<()>;
    async fn get_invocation(&self, request_id: &str) -> Result<Option<AsyncInvocation>>;
    /// One page of a function's invocations, newest first. See
    /// [`InvocationFilter`].
    async fn list_invocations(&self, filter: &InvocationFilter) -> Result<Page<AsyncInvocation>>;
    /// Atomically claims up to `limit` invocations that are due at `now`
    /// (Queued with `next_attempt_at <= now`, or Running with an expired
    /// lease): each becomes Running with `lease_until` and a fresh
    /// `lease_token`. One with attempts left gets one more attempt
    /// ([`Claimed::Attempt`]); one whose last attempt was lost is handed
    /// back as [`Claimed::Exhausted`], never run again. Concurrent claimers
    /// never get the same invocation.
    async fn claim_invocations(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Claimed>>;
    /// Moves the lease of a claimed invocation to `lease_until`, if the
    /// stored row still holds `lease_token`; whether it did.
    async fn renew_invocation_lease(
        &self,
        request_id: &str,
        lease_token: &str,
        lease_until: Timestamp,
    ) -> Result<bool>;
    /// Records the outcome of an attempt: replaces the stored invocation if
    /// it still holds `lease_token` (the claim that started the attempt),
    /// and, in the same transaction, queues `dead_letter` unless an
    /// invocation with its request id exists already. `false` (and nothing
    /// written) when the token has changed: a newer claim owns it.
    async fn record_attempt(
        &self,
        invocation: &AsyncInvocation,
        lease_token: &str,
        dead_letter: Option<&AsyncInvocation>,
    ) -> Result<bool>;

    // ---- layers ------------------------------------------------------------

    /// Stores `layer` as the next version of its name (1, 2, …; numbers are
    /// never reused, even after the newest version is deleted) and returns it
    /// with its number. A name belongs to the owner who first published it,
    /// for good: `Conflict` when it is another owner's.
    async fn publish_layer_version(&self, layer: &LayerVersion) -> Result<LayerVersion>;
    /// `version: None` is the newest.
    async fn get_layer_version(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<LayerVersion>>;
    /// Versions of one layer, oldest first.
    async fn list_layer_versions(&self, name: &str) -> Result<Vec<LayerVersion>>;
    /// The newest version of every layer, by name.
    async fn list_layers(&self) -> Result<Vec<LayerVersion>>;
    async fn delete_layer_version(&self, name: &str, version: u32) -> Result<bool>;

    // ---- networking --------------------------------------------------------

    /// Inserts a subnet. `Conflict` when its id or name is taken, or when
    /// its block overlaps another subnet's (checked atomically with the
    /// insert).
    async fn create_subnet(&self, subnet: &Subnet) -> Result<()>;
    /// The subnet with this id, if any.
    async fn get_subnet(&self, subnet_id: &str) -> Result<Option<Subnet>>;
    /// Every subnet, by name.
    async fn list_subnets(&self) -> Result<Vec<Subnet>>;
    /// Deletes the subnet; `false` when it did not exist. `Conflict`
    /// (naming them) while a function or a stored version names it in its
    /// `vpcConfig`, checked in the same transaction.
    async fn delete_subnet(&self, subnet_id: &str) -> Result<bool>;
    /// The functions and stored versions whose `vpcConfig` names the subnet.
    async fn subnet_users(&self, subnet_id: &str) -> Result<Vec<VpcUser>>;

    /// Inserts a security group. `Conflict` when its id is taken or its
    /// owner has a group of that name.
    async fn create_security_group(&self, group: &SecurityGroup) -> Result<()>;
    /// The group with this id, if any.
    async fn get_security_group(&self, group_id: &str) -> Result<Option<SecurityGroup>>;
    /// Every group, or one owner's; by name, then id.
    async fn list_security_groups(&self, owner_id: Option<&str>) -> Result<Vec<SecurityGroup>>;
    /// Replaces name, rules and `updated_at` (owner and creation time are
    /// kept). `NotFound` when absent; `Conflict` when another group of the
    /// owner has the name.
    async fn update_security_group(&self, group: &SecurityGroup) -> Result<()>;
    /// Deletes the group; `false` when it did not exist. `Conflict` (naming
    /// them) while a function or a stored version names it.
    async fn delete_security_group(&self, group_id: &str) -> Result<bool>;
    /// The functions and stored versions whose `vpcConfig` names the group.
    async fn security_group_users(&self, group_id: &str) -> Result<Vec<VpcUser>>;

    // ---- embedded queues ---------------------------------------------------
    //
    // Queues are named per owner and exist from their first message on (a
    // row in `queues`; purging keeps it). Messages are received oldest first
    // (by `sent_at`); a received message stays invisible until the
    // visibility timeout passes, and only the receipt of its latest receive
    // can delete, release or move it.

    /// Stores a new message (and its queue, when new) in one transaction.
    /// `Conflict` when the message id is taken.
    async fn queue_send(&self, message: &QueueMessage) -> Result<()>;
    /// Receives up to `max` messages of the queue that are visible at
    /// `now`, oldest first: each becomes invisible until `now + visibility`,
    /// counts the receive, keeps (or gets) its `first_received_at` and gets
    /// a new receipt, which is returned with it. Concurrent receivers never
    /// get the same message while it is invisible.
    async fn queue_receive(
        &self,
        owner_id: &str,
        queue_name: &str,
        max: u32,
        visibility: std::time::Duration,
        now: Timestamp,
    ) -> Result<Vec<(QueueMessage, Receipt)>>;
    /// Deletes the messages whose latest receive handed out these receipts
    /// (a stale receipt deletes nothing); how many were deleted.
    async fn queue_ack(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[Receipt],
    ) -> Result<u64>;
    /// Makes the messages of these (current) receipts visible again at
    /// `now + delay`, spending the receipts. With `uncount`, the receive
    /// is taken back: `receive_count` goes down by one (and
    /// `first_received_at` is cleared when it reaches 0), for batches that
    /// were never handed to the function. How many were released.
    async fn queue_release(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipts: &[Receipt],
        delay: std::time::Duration,
        uncount: bool,
        now: Timestamp,
    ) -> Result<u64>;
    /// Moves the message of this (current) receipt to the owner's queue
    /// `to_queue` (recorded when new), in one transaction: it keeps its id,
    /// body, attributes and `sent_at`, gains the attribute
    /// `DeadLetterSourceQueue` = `queue_name`, and starts over there
    /// (visible at `now`, not received). `None` when the receipt is stale.
    async fn queue_move(
        &self,
        owner_id: &str,
        queue_name: &str,
        receipt: &Receipt,
        to_queue: &str,
        now: Timestamp,
    ) -> Result<Option<QueueMessage>>;
    /// Deletes every message of the queue, received or not; how many. The
    /// queue itself stays (with depth 0).
    async fn queue_purge(&self, owner_id: &str, queue_name: &str) -> Result<u64>;
    /// Every queue, or one owner's, by name then owner, counted at `now`.
    async fn queue_summaries(
        &self,
        owner_id: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<QueueSummary>>;
    /// The queue, counted at `now`; `None` when it never had a message.
    async fn queue_summary(
        &self,
        owner_id: &str,
        queue_name: &str,
        now: Timestamp,
    ) -> Result<Option<QueueSummary>>;

    // ---- stream shards -----------------------------------------------------
    //
    // A Stream trigger's checkpoint in each shard of its stream, and the
    // lease that lets one server at a time consume the shard. Rows go with
    // their trigger.

    /// Takes the lease of `shard` for `owner` until `until`, or renews it:
    /// in one conditional statement, so two servers never both hold it.
    /// `Some(checkpoint)` (the shard's stored checkpoint, `None` when it has
    /// none yet) when `owner` holds the lease after the call: it was free
    /// (never taken, released, or expired at `now`) or already `owner`'s.
    /// `None` when another owner holds a lease unexpired at `now`.
    /// `NotFound` when the trigger does not exist.
    async fn stream_lease(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Option<String>>>;
    /// Stores `sequence` as the shard's checkpoint if `owner` holds its
    /// lease (the last [`MetadataStore::stream_lease`] that succeeded was
    /// `owner`'s and none was released since); whether it did. A server
    /// that lost its lease can therefore never move the checkpoint.
    async fn stream_checkpoint(
        &self,
        trigger_id: &str,
        shard: u32,
        owner: &str,
        sequence: &str,
    ) -> Result<bool>;
    /// Gives the lease up (the checkpoint stays) if `owner` holds it;
    /// whether it did.
    async fn stream_release(&self, trigger_id: &str, shard: u32, owner: &str) -> Result<bool>;
    /// The trigger's shards that have a row (leased at least once), by
    /// shard.
    async fn stream_shards(&self, trigger_id: &str) -> Result<Vec<StreamShardState>>;

    // ---- API tokens ------------------------------------------------------

    /// Inserts a token; `Conflict` when the hash or the id exists.
    async fn insert_token(&self, token: &ApiToken) -> Result<()>;
    /// The token with this hash, if any, revoked or not.
    async fn find_token(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    /// The token with this id, if any, revoked or not.
    async fn get_token(&self, token_id: &str) -> Result<Option<ApiToken>>;
    /// Tokens not revoked (expired ones included), of one owner or of all,
    /// oldest first.
    async fn list_tokens(&self, owner_id: Option<&str>) -> Result<Vec<ApiToken>>;
    /// Marks the token revoked at `at`; `false` when there is no such token
    /// or it was revoked already.
    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool>;
    /// Moves the token's `last_used_at` forward to `at` (never back).
    async fn touch_token(&self, token_id: &str, at: Timestamp) -> Result<()>;
    /// Whether any admin token that is neither revoked nor expired exists
    /// (first-start bootstrap).
    async fn has_admin_token(&self) -> Result<bool>;
}
