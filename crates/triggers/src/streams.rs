//! Consuming a stream for a Stream trigger, with the semantics of Lambda's
//! Kinesis event source mappings, on any [`StreamSource`].
//!
//! - **Shards and leases.** Each shard is consumed by one server at a time:
//!   the one holding the shard's lease ([`ShardLeases`]), taken for
//!   `lease_ttl` and renewed every third of it. A server that loses the
//!   lease (another took it after it expired) stops reading that shard at
//!   once; the invocation in flight ends, nothing new starts, and its
//!   checkpoint writes are refused by the lease store. A stopped consumer
//!   finishes its invocations in flight, writes its checkpoint and releases
//!   its leases, so another server takes over at once; a crashed one is
//!   taken over when its leases expire.
//! - **Checkpoints.** A shard is read after its stored checkpoint (the last
//!   record done with), or from the trigger's `startingPosition` when it
//!   has none; that position is stored at once, so `LATEST` means "from
//!   when the trigger first ran", not from each restart. The checkpoint
//!   moves past a record once it and every earlier record of the shard are
//!   done (succeeded, or given up on), and is written after every attempt
//!   that moved it. Delivery is at least once: after a crash the records
//!   after the last checkpoint are sent again.
//! - **Lanes.** With `parallelizationFactor` N a shard's records go to N
//!   lanes by partition key ([`crate::stream::order`]); each lane runs its
//!   batches (up to `batchSize` records) strictly one after the other, so
//!   one key's records always reach the function in order.
//! - **Failures.** Each attempt sends a Kinesis event
//!   ([`crate::stream::event`]); the answer is read with
//!   [`crate::stream::response`] (`reportBatchItemFailures`), and
//!   [`crate::stream::bisect`] says what is done and what is tried next: the
//!   records before the lowest failed one are done, the rest retried after a
//!   short backoff (doubling, capped), or split in two with
//!   `bisectBatchOnFunctionError` (a split is not counted as a retry, as on
//!   Lambda). A batch that failed `maximumRetryAttempts` + 1 times, or whose
//!   oldest record is older than `maximumRecordAgeInSeconds`, is given up on
//!   ([`crate::stream::retry`]); records already too old when their turn
//!   comes are not sent at all. Records given up on are described to
//!   `onFailure` ([`on_failure`]; sent again until the destination takes
//!   it, so they are never skipped silently while one is configured) and
//!   the checkpoint moves past them.
//! - **Throttling.** A throttled attempt (the function at its concurrency
//!   limit) is tried again after `throttle_backoff` and not counted.
//!
//! Every attempt, every give-up and every change of lag when idle is
//! reported as a [`StreamBatchReport`]; every error of the source, the lease
//! store or the on-failure destination as a [`StreamError`].

pub mod leases;
pub mod memory;
pub mod on_failure;

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use hotswap_domain::trigger::settings::StreamSettings;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use crate::consumer::Invoked;
use crate::queue::response::InvokeResult;
use crate::sources::{SourceError, StreamRecord, StreamSource};
use crate::stream::{
    give_up, is_expired, kinesis_event, plan_after, shard_id, split_by_key, stream_arn,
    try_stream_outcome, Checkpointer, Discard, StreamOutcome, Ticket,
};
pub use leases::{LeaseError, LeaseState, ShardLeases, StoreLeases};
pub use on_failure::{DiscardedBatch, LastAttempt};

/// Runs a Stream trigger's batches through its function.
#[async_trait]
pub trait StreamInvoker: Send + Sync {
    /// Invokes the function with a batch's Kinesis event.
    async fn invoke(&self, event: Bytes) -> Invoked;
    /// Sends an on-failure record ([`DiscardedBatch::record`]) to the
    /// trigger's `onFailure` destination; `Err` is retried.
    async fn on_failure(&self, record: serde_json::Value) -> Result<(), String>;
}

/// Runs a Stream trigger's batches through the router, and sends its
/// on-failure records to the trigger's `onFailure` destination (a
/// function, invoked asynchronously, or an embedded queue of the owner).
pub struct RouterStreamInvoker {
    pub router: std::sync::Arc<hotswap_router::Router>,
    pub function_id: String,
    /// The trigger's `targetVersion`.
    pub qualifier: String,
    pub owner: String,
    pub on_failure: Option<hotswap_domain::DeliveryTarget>,
}

#[async_trait]
impl StreamInvoker for RouterStreamInvoker {
    async fn invoke(&self, event: Bytes) -> Invoked {
        crate::queues::invoke_target(&self.router, &self.function_id, &self.qualifier, event).await
    }

    async fn on_failure(&self, record: serde_json::Value) -> Result<(), String> {
        use base64::Engine;
        use hotswap_domain::DeliveryTarget;
        match &self.on_failure {
            None => Err("no onFailure destination".into()),
            Some(DeliveryTarget::Function { name, qualifier }) => {
                let caller = hotswap_control::Principal {
                    owner_id: self.owner.clone(),
                    is_admin: false,
                };
                let payload = base64::engine::general_purpose::STANDARD.encode(record.to_string());
                self.router
                    .enqueue(
                        &caller,
                        &hotswap_control::FunctionRef::new(name.clone()),
                        &qualifier.to_string(),
                        payload,
                        "application/json",
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Some(DeliveryTarget::Queue { name }) => self
                .router
                .control()
                .send_queue_message_for(
                    &self.owner,
                    name,
                    hotswap_control::NewQueueMessage {
                        body: record.to_string(),
                        attributes: Default::default(),
                    },
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

/// Milliseconds since the epoch (record ages, on-failure timestamps).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// How long a shard lease lasts unless renewed (renewed every third).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How a Stream trigger's consumer runs.
#[derive(Clone)]
pub struct StreamConsumeSettings {
    /// The trigger's settings, defaults filled in.
    pub stream: StreamSettings,
    /// This consumer's name in the shard leases: unique per server (and
    /// per start, so a restarted server waits for its old leases to
    /// expire or takes them over as released).
    pub owner: String,
    /// The events' `eventSourceARN` (default: [`stream_arn`] of the stream).
    pub event_source_arn: String,
    /// `requestContext.functionArn` of on-failure records.
    pub function_arn: String,
    /// `responseContext.executedVersion` of on-failure records.
    pub executed_version: String,
    pub lease_ttl: Duration,
    /// Longest wait of one read for a first record.
    pub read_wait: Duration,
    /// Pause after an error of the source.
    pub idle_pause: Duration,
    /// Wait before the first retry of a failed batch; doubles with each
    /// further failure, up to `max_retry_backoff` (also the backoff of
    /// on-failure sends).
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    /// Wait before a throttled batch is tried again.
    pub throttle_backoff: Duration,
    /// How often the stream's shards are listed again (new Kafka
    /// partitions).
    pub shard_refresh: Duration,
    pub clock: Clock,
}

impl StreamConsumeSettings {
    /// `stream` run by `owner` for the function `function_arn`, with the
    /// defaults: 10 s leases, 1 s reads and pauses, retries after 100 ms
    /// up to 5 s, throttled batches again after 1 s, shards listed every
    /// minute, `executedVersion` `$LATEST`, the system clock.
    pub fn new(
        stream: StreamSettings,
        owner: impl Into<String>,
        function_arn: impl Into<String>,
    ) -> Self {
        Self {
            event_source_arn: stream_arn(&stream.stream),
            stream,
            owner: owner.into(),
            function_arn: function_arn.into(),
            executed_version: hotswap_domain::LATEST.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            read_wait: Duration::from_secs(1),
            idle_pause: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(5),
            throttle_backoff: Duration::from_secs(1),
            shard_refresh: Duration::from_secs(60),
            clock: system_clock(),
        }
    }

    fn renew_every(&self) -> Duration {
        (self.lease_ttl / 3).max(Duration::from_millis(1))
    }

    /// The wait before try `n` (1: the first retry).
    fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(20);
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_retry_backoff)
    }
}

/// What one step of a shard did: an attempt at a batch, a give-up of
/// records too old to send, or (all counts 0) a change of lag while idle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamBatchReport {
    pub shard: u32,
    /// Records sent to the function (0: no invocation).
    pub records: usize,
    /// Of them, done (the checkpoint may move past them).
    pub succeeded: usize,
    /// Of them, failed (the whole batch, or from the lowest listed one).
    pub failed: usize,
    /// Of the failed, sent again later.
    pub retried: usize,
    /// Not run: the function is at its concurrency limit (tried again,
    /// not counted).
    pub throttled: bool,
    /// Records given up on (retries exhausted, or too old).
    pub discarded: usize,
    /// Of them, described to the `onFailure` destination.
    pub on_failure_sent: usize,
    /// Records of the shard not read yet, at the last read.
    pub lag: Option<u64>,
    /// The function's error, or why its answer failed the batch.
    pub error: Option<String>,
}

/// An error of the source, the lease store or the on-failure destination
/// (each retried; none stops the consumer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// Listing the stream's shards failed.
    #[error("{0}")]
    Shards(SourceError),
    /// Finding a shard's start, reading it or its lag failed.
    #[error("shard {shard}: {error}")]
    Read { shard: u32, error: SourceError },
    /// Taking, renewing or releasing a lease, or writing a checkpoint,
    /// failed.
    #[error("shard {shard}: {error}")]
    Lease { shard: u32, error: LeaseError },
    /// The on-failure destination refused a record (sent again).
    #[error("shard {shard}: on-failure destination: {error}")]
    OnFailure { shard: u32, error: String },
}

/// Sees every [`StreamBatchReport`] and every [`StreamError`].
pub type StreamReporter = Arc<dyn Fn(Result<&StreamBatchReport, &StreamError>) + Send + Sync>;

/// What every shard of one consumer shares.
struct Consumer {
    source: Arc<dyn StreamSource>,
    invoker: Arc<dyn StreamInvoker>,
    leases: Arc<dyn ShardLeases>,
    settings: StreamConsumeSettings,
    report: StreamReporter,
}

/// Whether `stop` says stop (a dropped sender does too).
fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Returns once `stop` says stop (or true, for any flag).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `d` unless stopped first; whether it slept it out.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => !is_stopped(stop),
        _ = stopped(stop) => false,
    }
}

/// Consumes every shard of `source` for one trigger until `stop` turns
/// true (or its sender is dropped), then lets the invocations in flight
/// end, writes the checkpoints and releases the leases before returning.
/// Shards are listed again every `shard_refresh`; each gets its own task,
/// which waits for the shard's lease while another consumer holds it.
pub async fn consume_stream(
    source: Arc<dyn StreamSource>,
    invoker: Arc<dyn StreamInvoker>,
    leases: Arc<dyn ShardLeases>,
    settings: StreamConsumeSettings,
    stop: watch::Receiver<bool>,
    report: StreamReporter,
) {
    let consumer = Arc::new(Consumer {
        source,
        invoker,
        leases,
        settings,
        report,
    });
    let mut running: HashSet<u32> = HashSet::new();
    let mut shards = JoinSet::new();
    let mut stop_rx = stop.clone();
    while !is_stopped(&stop_rx) {
        let listed = tokio::select! {
            listed = consumer.source.shards() => listed,
            _ = stopped(&mut stop_rx) => break,
        };
        let pause = match listed {
            Ok(list) => {
                for shard in list {
                    if running.insert(shard) {
                        shards.spawn(shard_loop(consumer.clone(), shard, stop.clone()));
                    }
                }
                consumer.settings.shard_refresh
            }
            Err(e) => {
                (consumer.report)(Err(&StreamError::Shards(e)));
                consumer.settings.idle_pause
            }
        };
        if !sleep_or_stop(pause, &mut stop_rx).await {
            break;
        }
    }
    while shards.join_next().await.is_some() {}
}

/// One shard: holds its lease and consumes it while held; waits for it
/// while another consumer holds it.
async fn shard_loop(c: Arc<Consumer>, shard: u32, mut stop: watch::Receiver<bool>) {
    let owner = c.settings.owner.clone();
    while !is_stopped(&stop) {
        match c
            .leases
            .take_or_renew(shard, &owner, c.settings.lease_ttl)
            .await
        {
            Ok(LeaseState::Held { checkpoint }) => {
                Tenure::run(c.clone(), shard, checkpoint, stop.clone()).await;
            }
            Ok(LeaseState::HeldElsewhere) => {}
            Err(error) => (c.report)(Err(&StreamError::Lease { shard, error })),
        }
        sleep_or_stop(c.settings.renew_every(), &mut stop).await;
    }
}

/// Where a shard's records are, while its lease is held.
struct Progress {
    checkpointer: Checkpointer,
    /// A checkpoint to write (the last write failed, or none was made).
    unwritten: Option<String>,
    /// The checkpoint as this tenure last stored (or found) it.
    written: Option<String>,
}

/// A lane of a shard: records waiting for their turn.
struct Lane {
    records: Mutex<VecDeque<(Ticket, StreamRecord)>>,
    filled: Notify,
    drained: Notify,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, VecDeque<(Ticket, StreamRecord)>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Records of a batch still to settle, and their history.
struct Pending {
    range: Range<usize>,
    /// Failed attempts counted against `maximumRetryAttempts`.
    failed: u32,
    /// Attempts made with these records.
    invokes: u32,
    last: Option<LastAttempt>,
}

/// One holding of a shard's lease, from taking it to stopping or losing it.
struct Tenure {
    c: Arc<Consumer>,
    shard: u32,
    /// Set on stop or loss: no new read, attempt or retry starts.
    halt: watch::Sender<bool>,
    lost: AtomicBool,
    progress: tokio::sync::Mutex<Progress>,
    lag: Mutex<Option<u64>>,
    /// When the lag was last measured (at most every [`LAG_EVERY`] while
    /// records flow: counting it can cost the source more than a read).
    lag_measured: Mutex<Option<Instant>>,
}

/// How often a shard's lag is measured while records flow (an idle shard's
/// at every empty read).
const LAG_EVERY: Duration = Duration::from_secs(1);

impl Tenure {
    /// Consumes the shard from `checkpoint` until `stop` or the lease is
    /// lost.
    async fn run(
        c: Arc<Consumer>,
        shard: u32,
        checkpoint: Option<String>,
        stop: watch::Receiver<bool>,
    ) {
        let tenure = Arc::new(Tenure {
            c,
            shard,
            halt: watch::channel(false).0,
            lost: AtomicBool::new(false),
            progress: tokio::sync::Mutex::new(Progress {
                checkpointer: Checkpointer::new(),
                unwritten: None,
                written: checkpoint.clone(),
            }),
            lag: Mutex::new(None),
            lag_measured: Mutex::new(None),
        });
        let (done_tx, done_rx) = watch::channel(false);
        let work = async {
            tenure.clone().work(checkpoint).await;
            done_tx.send_replace(true);
        };
        tokio::join!(tenure.keep_lease(stop, done_rx), work);
        if !tenure.is_lost() {
            let c = &tenure.c;
            if let Err(error) = c.leases.release(shard, &c.settings.owner).await {
                (c.report)(Err(&StreamError::Lease { shard, error }));
            }
        }
    }

    fn report(&self, r: Result<&StreamBatchReport, &StreamError>) {
        (self.c.report)(r);
    }

    fn report_base(&self) -> StreamBatchReport {
        StreamBatchReport {
            shard: self.shard,
            lag: *self.lag.lock().unwrap_or_else(|p| p.into_inner()),
            ..StreamBatchReport::default()
        }
    }

    fn halted(&self) -> bool {
        *self.halt.borrow()
    }

    async fn until_halted(&self) {
        let mut rx = self.halt.subscribe();
        let _ = rx.wait_for(|h| *h).await;
    }

    /// Sleeps `d` unless halted first; whether it slept it out.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.halted(),
            _ = self.until_halted() => false,
        }
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.halt.send_replace(true);
    }

    /// Renews the lease every third of its TTL until the work is done.
    /// Lost when another owner holds it, when the stored checkpoint is not
    /// the one this tenure wrote (another consumer held it meanwhile), or
    /// when renewals failed for two thirds of the TTL (it may expire before
    /// the next one). A stop halts the work but renewals go on until it is
    /// done, so invocations in flight keep the shard.
    async fn keep_lease(&self, mut stop: watch::Receiver<bool>, mut done: watch::Receiver<bool>) {
        let settings = &self.c.settings;
        let every = settings.renew_every();
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ok = Instant::now();
        let mut stop_seen = false;
        loop {
            tokio::select! {
                _ = stopped(&mut done) => return,
                _ = stopped(&mut stop), if !stop_seen => {
                    stop_seen = true;
                    self.halt.send_replace(true);
                }
                _ = ticks.tick() => {
                    if self.is_lost() {
                        return;
                    }
                    let progress = self.progress.lock().await;
                    match self
                        .c
                        .leases
                        .take_or_renew(self.shard, &settings.owner, settings.lease_ttl)
                        .await
                    {
                        Ok(LeaseState::Held { checkpoint }) if checkpoint == progress.written => {
                            last_ok = Instant::now();
                        }
                        Ok(_) => {
                            self.lose();
                            return;
                        }
                        Err(error) => {
                            self.report(Err(&StreamError::Lease { shard: self.shard, error }));
                            if last_ok.elapsed() >= settings.lease_ttl.saturating_sub(every) {
                                self.lose();
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads the shard into its lanes until halted, lets the lanes finish
    /// their attempts in flight, then writes the checkpoint.
    async fn work(self: Arc<Self>, checkpoint: Option<String>) {
        let start = match checkpoint {
            Some(c) => c,
            None => match self.start_position().await {
                Some(p) => p,
                None => return,
            },
        };
        let factor = self.c.settings.stream.parallelization_factor.max(1);
        let lanes: Vec<Arc<Lane>> = (0..factor)
            .map(|_| {
                Arc::new(Lane {
                    records: Mutex::new(VecDeque::new()),
                    filled: Notify::new(),
                    drained: Notify::new(),
                })
            })
            .collect();
        let mut running = JoinSet::new();
        for lane in &lanes {
            running.spawn(self.clone().lane(lane.clone()));
        }
        self.read(start, factor, &lanes).await;
        while running.join_next().await.is_some() {}
        self.commit(&[]).await;
    }

    /// The shard's starting position, stored as its checkpoint at once;
    /// `None` when halted first.
    async fn start_position(&self) -> Option<String> {
        let at = self.c.settings.stream.starting_position;
        loop {
            let started = tokio::select! {
                s = self.c.source.start(self.shard, at) => s,
                _ = self.until_halted() => return None,
            };
            match started {
                Ok(position) => {
                    self.progress.lock().await.unwritten = Some(position.clone());
                    self.commit(&[]).await;
                    return Some(position);
                }
                Err(error) => {
                    self.report(Err(&StreamError::Read {
                        shard: self.shard,
                        error,
                    }));
                    if !self.pause(self.c.settings.idle_pause).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Reads batches after `after` and hands their records to the lanes by
    /// partition key, until halted. A lane holding a batch's worth of
    /// records waits for its lane to take them before the next read.
    async fn read(&self, mut after: String, factor: u32, lanes: &[Arc<Lane>]) {
        let settings = &self.c.settings;
        let max = (settings.stream.batch_size as usize).max(1);
        loop {
            for lane in lanes {
                while lane.lock().len() >= max {
                    tokio::select! {
                        _ = lane.drained.notified() => {}
                        _ = self.until_halted() => return,
                    }
                }
            }
            if self.halted() {
                return;
            }
            let begun = Instant::now();
            let read = tokio::select! {
                r = self.c.source.read(self.shard, &after, max, settings.read_wait) => r,
                _ = self.until_halted() => return,
            };
            let records = match read {
                Ok(r) => r,
                Err(error) => {
                    self.report(Err(&StreamError::Read {
                        shard: self.shard,
                        error,
                    }));
                    if !self.pause(settings.idle_pause).await {
                        return;
                    }
                    continue;
                }
            };
            if let Some(last) = records.last() {
                after = last.sequence_number.clone();
            }
            self.measure_lag(&after, records.is_empty()).await;
            if records.is_empty() {
                // A source that answers before its wait is up is not asked
                // again sooner.
                tokio::select! {
                    _ = tokio::time::sleep_until(begun + settings.read_wait) => {}
                    _ = self.until_halted() => return,
                }
                continue;
            }
            let tickets: Vec<Ticket> = {
                let mut progress = self.progress.lock().await;
                records
                    .iter()
                    .map(|r| progress.checkpointer.read(r.sequence_number.clone()))
                    .collect()
            };
            let by_lane = split_by_key(tickets.into_iter().zip(records), factor, |(_, r)| {
                r.partition_key.as_str()
            });
            for (i, batch) in by_lane {
                if let Some(lane) = lanes.get(i) {
                    lane.lock().extend(batch);
                    lane.filled.notify_one();
                }
            }
        }
    }

    /// Records the lag after `after`; when idle, reports it if it changed.
    async fn measure_lag(&self, after: &str, idle: bool) {
        {
            let mut last = self.lag_measured.lock().unwrap_or_else(|p| p.into_inner());
            if !idle && last.is_some_and(|t| t.elapsed() < LAG_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.c.source.lag(self.shard, after).await {
            Ok(n) => {
                let changed = {
                    let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
                    lag.replace(n) != Some(n)
                };
                if idle && changed {
                    self.report(Ok(&self.report_base()));
                }
            }
            Err(error) => self.report(Err(&StreamError::Read {
                shard: self.shard,
                error,
            })),
        }
    }

    /// Runs a lane's batches one after the other until halted.
    async fn lane(self: Arc<Self>, lane: Arc<Lane>) {
        let max = (self.c.settings.stream.batch_size as usize).max(1);
        loop {
            if self.halted() {
                return;
            }
            let batch: Vec<(Ticket, StreamRecord)> = {
                let mut records = lane.lock();
                let n = records.len().min(max);
                records.drain(..n).collect()
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = lane.filled.notified() => {}
                    _ = self.until_halted() => return,
                }
                continue;
            }
            lane.drained.notify_one();
            let (tickets, records): (Vec<Ticket>, Vec<StreamRecord>) = batch.into_iter().unzip();
            self.run_batch(&tickets, &records).await;
        }
    }

    /// Settles a batch: attempts, retries, splits and give-ups until every
    /// record is done, or until halted (the records left are read again by
    /// whoever consumes the shard next).
    async fn run_batch(&self, tickets: &[Ticket], records: &[StreamRecord]) {
        let settings = &self.c.settings;
        let stream = &settings.stream;
        let mut queue = VecDeque::from([Pending {
            range: 0..records.len(),
            failed: 0,
            invokes: 0,
            last: None,
        }]);
        while let Some(mut p) = queue.pop_front() {
            if self.halted() {
                return;
            }
            // Records too old to send are given up on unsent.
            let now = (settings.clock)();
            let expired = records[p.range.clone()]
                .iter()
                .take_while(|r| {
                    is_expired(r.arrival_timestamp_ms, stream.maximum_record_age_s, now)
                })
                .count();
            if expired > 0 {
                let gone = p.range.start..p.range.start + expired;
                let mut report = self.report_base();
                if !self
                    .discard(
                        records,
                        gone.clone(),
                        Discard::RecordExpired,
                        &p,
                        &mut report,
                    )
                    .await
                {
                    return;
                }
                self.commit(&tickets[gone]).await;
                self.report(Ok(&report));
                p.range.start += expired;
                if p.range.is_empty() {
                    continue;
                }
            }

            let batch = &records[p.range.clone()];
            let event = kinesis_event(&settings.event_source_arn, &shard_id(self.shard), batch);
            let event = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
            let invoked = self.c.invoker.invoke(event).await;
            let mut report = StreamBatchReport {
                records: batch.len(),
                ..self.report_base()
            };
            let sequence_numbers: Vec<&str> =
                batch.iter().map(|r| r.sequence_number.as_str()).collect();
            let (outcome, last) = match invoked {
                Invoked::Throttled => {
                    report.throttled = true;
                    self.report(Ok(&report));
                    queue.push_front(p);
                    if !self.pause(settings.throttle_backoff).await {
                        return;
                    }
                    continue;
                }
                Invoked::Failed(e) => {
                    let last = LastAttempt::from_failure(&e);
                    report.error = Some(e);
                    (StreamOutcome::AllFailed, last)
                }
                Invoked::Succeeded(payload) => match try_stream_outcome(
                    InvokeResult::Succeeded(&payload),
                    stream.report_batch_item_failures,
                    &sequence_numbers,
                ) {
                    Ok(outcome) => (outcome, LastAttempt::ItemFailures),
                    Err(malformed) => {
                        report.error = Some(format!(
                            "the function's batchItemFailures answer is invalid ({malformed}): the whole batch failed"
                        ));
                        (StreamOutcome::AllFailed, LastAttempt::ItemFailures)
                    }
                },
            };
            p.invokes += 1;
            let plan = plan_after(batch.len(), &outcome, stream.bisect_batch_on_function_error);
            let first_left = p.range.start + plan.done;
            let mut finished: Vec<Ticket> = tickets[p.range.start..first_left].to_vec();
            report.succeeded = plan.done;
            report.failed = batch.len() - plan.done;
            if plan.next.is_empty() {
                self.commit(&finished).await;
                self.report(Ok(&report));
                continue;
            }

            // A split is not a retry (as on Lambda); anything else is.
            let split = plan.next.len() > 1;
            let left = Pending {
                range: first_left..p.range.end,
                failed: if split { p.failed } else { p.failed + 1 },
                invokes: p.invokes,
                last: Some(last),
            };
            let oldest = records[left.range.clone()]
                .iter()
                .map(|r| r.arrival_timestamp_ms)
                .min()
                .unwrap_or(now);
            let verdict = if split {
                None
            } else {
                give_up(
                    left.failed,
                    stream.maximum_retry_attempts,
                    oldest,
                    stream.maximum_record_age_s,
                    (settings.clock)(),
                )
            };
            match verdict {
                Some(reason) => {
                    let sent = self
                        .discard(records, left.range.clone(), reason, &left, &mut report)
                        .await;
                    if sent {
                        finished.extend_from_slice(&tickets[left.range.clone()]);
                    }
                    self.commit(&finished).await;
                    self.report(Ok(&report));
                    if !sent {
                        return;
                    }
                }
                None => {
                    report.retried = left.range.len();
                    self.commit(&finished).await;
                    self.report(Ok(&report));
                    let failed = left.failed;
                    for r in plan.next.iter().rev() {
                        queue.push_front(Pending {
                            range: p.range.start + r.start..p.range.start + r.end,
                            failed,
                            invokes: left.invokes,
                            last: left.last.clone(),
                        });
                    }
                    if !split && !self.pause(settings.backoff(failed)).await {
                        return;
                    }
                }
            }
        }
    }

    /// Gives up on `records[range]`: describes them to the on-failure
    /// destination, if any, until it takes the record. `false` when halted
    /// before it did (the records stay pending).
    async fn discard(
        &self,
        records: &[StreamRecord],
        range: Range<usize>,
        reason: Discard,
        history: &Pending,
        report: &mut StreamBatchReport,
    ) -> bool {
        let settings = &self.c.settings;
        let n = range.len();
        if settings.stream.on_failure.is_some() {
            let request_id = uuid::Uuid::new_v4().to_string();
            let record = DiscardedBatch {
                request_id: &request_id,
                function_arn: &settings.function_arn,
                executed_version: &settings.executed_version,
                stream_arn: &settings.event_source_arn,
                shard: self.shard,
                records: &records[range],
                reason,
                invoke_count: history.invokes,
                last_attempt: history.last.as_ref(),
                at_ms: (settings.clock)(),
            }
            .record();
            let mut refused = 0;
            while let Err(error) = self.c.invoker.on_failure(record.clone()).await {
                self.report(Err(&StreamError::OnFailure {
                    shard: self.shard,
                    error,
                }));
                refused += 1;
                if !self.pause(settings.backoff(refused)).await {
                    return false;
                }
            }
            report.on_failure_sent += n;
        }
        report.discarded += n;
        true
    }

    /// Marks `done` records done and writes the checkpoint if it moved (or
    /// an earlier write failed), unless the lease is lost.
    async fn commit(&self, done: &[Ticket]) {
        let mut progress = self.progress.lock().await;
        for t in done {
            progress.checkpointer.done(*t);
        }
        if let Some(sequence) = progress.checkpointer.advance() {
            progress.unwritten = Some(sequence);
        }
        if self.is_lost() {
            return;
        }
        let Some(sequence) = progress.unwritten.clone() else {
            return;
        };
        let c = &self.c;
        match c
            .leases
            .checkpoint(self.shard, &c.settings.owner, &sequence)
            .await
        {
            Ok(true) => {
                progress.unwritten = None;
                progress.written = Some(sequence);
            }
            Ok(false) => self.lose(),
            Err(error) => self.report(Err(&StreamError::Lease {
                shard: self.shard,
                error,
            })),
        }
    }
}

#[cfg(test)]
mod tests;
