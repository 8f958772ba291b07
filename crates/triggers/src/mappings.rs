//! The event source mappings of this server: one consumer per enabled
//! Queue or Stream trigger ([`consume`] for queues, [`consume_stream`] for
//! streams), started, restarted (its settings, its function's timeout or
//! `maxInstances` changed) and stopped (disabled, deleted) as triggers
//! change, by [`EventSourceMappings::poll`] — the server's
//! `event-source-mappings` task.
//!
//! - **Queues**: every server consumes every queue trigger. A queue's
//!   messages are shared between receivers by their visibility timeouts
//!   (a received message is invisible to the others), so more servers are
//!   more consumers, and a server that dies leaves its messages to come
//!   back to the others when their timeouts end.
//! - **Streams**: every server runs a consumer, but each shard is read by
//!   the one holding its lease in the metadata store (taken over when that
//!   server dies: [`crate::streams`]), from the checkpoint stored there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotswap_domain::{
    DeliveryTarget, QueueSettings, StreamSettings, Trigger, TriggerSource, TriggerType,
};
use hotswap_router::Router;

use crate::consumer::{consume, BatchReport, BatchSettings, ConsumeSettings, DeadLetter, Reporter};
use crate::queue::event::{queue_arn, sqs_event, MessageAttribute, QueueMessage};
use crate::queue::response::{queue_outcome, InvokeResult};
use crate::queues::embedded::EmbeddedQueue;
use crate::queues::{DeadLetterFunction, RouterInvoker};
use crate::sources::{Delivery, QueueSource, SourceError, StreamSource};
use crate::stats::{BatchCounts, Labels, TriggerStats};
use crate::streams::{
    consume_stream, RouterStreamInvoker, StoreLeases, StreamBatchReport, StreamConsumeSettings,
    StreamError, StreamReporter,
};

/// Longest wait of one receive for a first message: a trigger stops
/// within about this long.
const LONG_POLL: Duration = Duration::from_secs(1);
/// Pause after a source error, doubled while it lasts (reconnection
/// backoff), at most [`MAX_ERROR_PAUSE`].
const ERROR_PAUSE: Duration = Duration::from_millis(200);
const MAX_ERROR_PAUSE: Duration = Duration::from_secs(10);
/// How long a throttled batch waits before it is visible again.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(200);
/// Most concurrent batches of a trigger without `maximumConcurrency` (and
/// never more than the function's `maxInstances`).
pub const DEFAULT_MAX_CONCURRENCY: u32 = 5;
/// Longest wait for a queue's backlog reading.
const BACKLOG_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the trigger list is read again without a change seen here
/// (a trigger changed through another server).
const RELOAD: Duration = Duration::from_secs(2);

/// Where the broker sources are (server flags); `None`: not configured.
#[derive(Debug, Clone, Default)]
pub struct Brokers {
    pub rabbitmq_url: Option<String>,
    pub nats_url: Option<String>,
    pub redis_url: Option<String>,
    /// Kafka's bootstrap servers (`host:port,…`); served only by a build
    /// with the `kafka` feature.
    pub kafka_brokers: Option<String>,
}

impl Brokers {
    /// The queue sources these brokers (and the embedded queue) serve.
    pub fn queue_sources(&self) -> Vec<TriggerSource> {
        let mut v = vec![TriggerSource::Embedded];
        for (s, url) in [
            (TriggerSource::Rabbitmq, &self.rabbitmq_url),
            (TriggerSource::Nats, &self.nats_url),
            (TriggerSource::Redis, &self.redis_url),
        ] {
            if url.is_some() && backend_built(s) {
                v.push(s);
            }
        }
        v
    }
}

impl Brokers {
    /// The stream sources these brokers serve.
    pub fn stream_sources(&self) -> Vec<TriggerSource> {
        let mut v = Vec::new();
        for (s, url) in [
            (TriggerSource::Nats, &self.nats_url),
            (TriggerSource::Redis, &self.redis_url),
            (TriggerSource::Kafka, &self.kafka_brokers),
        ] {
            if url.is_some() && stream_backend_built(s) {
                v.push(s);
            }
        }
        v
    }
}

/// Whether this build has a stream backend for `source`.
fn stream_backend_built(source: TriggerSource) -> bool {
    match source {
        TriggerSource::Redis | TriggerSource::Nats => true,
        TriggerSource::Kafka => cfg!(feature = "kafka"),
        TriggerSource::Embedded | TriggerSource::Rabbitmq => false,
    }
}

/// Whether this build has a queue backend for `source`.
fn backend_built(source: TriggerSource) -> bool {
    matches!(
        source,
        TriggerSource::Embedded
            | TriggerSource::Rabbitmq
            | TriggerSource::Nats
            | TriggerSource::Redis
    )
}

struct Running {
    /// What the consumer was started with; a change restarts it.
    fingerprint: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// A queue's source, whose backlog is read each poll (a stream's
    /// consumer reports its lag itself).
    queue: Option<Arc<dyn QueueSource>>,
    kind: &'static str,
    function: String,
    owner: String,
}

struct State {
    epoch: u64,
    loaded: Option<Instant>,
    running: HashMap<String, Running>,
}

/// Every queue and stream consumer of this server.
pub struct EventSourceMappings {
    router: Arc<Router>,
    stats: Arc<TriggerStats>,
    brokers: Brokers,
    /// One Redis client for every Redis source (its connections shared).
    redis: Option<Result<hotswap_sources::redis::RedisBroker, SourceError>>,
    /// One NATS connection for every NATS source.
    nats: Option<hotswap_sources::nats::NatsConnection>,
    /// This server's run, in the names of the stream leases it holds.
    instance: String,
    /// How long a stream shard's lease lasts unless renewed: how soon
    /// another server takes over a dead one's shards.
    stream_lease_ttl: Duration,
    state: tokio::sync::Mutex<State>,
}

fn labels<'a>(id: &'a str, kind: &'static str, function: &'a str, owner: &'a str) -> Labels<'a> {
    Labels {
        trigger_id: id,
        kind,
        function,
        owner,
    }
}

fn kind_of(t: &Trigger) -> &'static str {
    if t.trigger_type == TriggerType::Stream {
        "stream"
    } else {
        "queue"
    }
}

impl EventSourceMappings {
    pub fn new(router: Arc<Router>, stats: Arc<TriggerStats>, brokers: Brokers) -> Self {
        let redis = brokers
            .redis_url
            .as_deref()
            .map(hotswap_sources::redis::RedisBroker::new);
        let nats = brokers
            .nats_url
            .clone()
            .map(hotswap_sources::nats::NatsConnection::new);
        Self {
            router,
            stats,
            brokers,
            redis,
            nats,
            instance: uuid::Uuid::new_v4().to_string(),
            stream_lease_ttl: crate::streams::DEFAULT_LEASE_TTL,
            state: tokio::sync::Mutex::new(State {
                epoch: u64::MAX,
                loaded: None,
                running: HashMap::new(),
            }),
        }
    }

    /// Sets how long stream shard leases last unless renewed.
    pub fn with_stream_lease_ttl(mut self, ttl: Duration) -> Self {
        self.stream_lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// Starts, restarts and stops consumers to match the enabled Queue and
    /// Stream triggers, and reads each running queue's backlog.
    pub async fn poll(&self) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let control = self.router.control();
        let epoch = control.trigger_epoch();
        if state.epoch != epoch || state.loaded.is_none_or(|l| l.elapsed() >= RELOAD) {
            let triggers: Vec<Trigger> = control
                .store()
                .list_triggers(None)
                .await
                .map_err(|e| format!("cannot list triggers: {e}"))?
                .into_iter()
                .filter(|t| {
                    matches!(t.trigger_type, TriggerType::Queue | TriggerType::Stream)
                        && t.is_enabled
                })
                .collect();
            state.epoch = epoch;
            state.loaded = Some(Instant::now());
            self.reconcile(&mut state, triggers).await;
        }
        // Backlogs are read together and outside the lock, each bounded:
        // a broker that hangs delays neither the others nor the next poll.
        let queues: Vec<(String, String, String, Arc<dyn QueueSource>)> = state
            .running
            .iter()
            .filter_map(|(id, r)| {
                let q = r.queue.clone()?;
                Some((id.clone(), r.function.clone(), r.owner.clone(), q))
            })
            .collect();
        drop(state);
        let mut reads = tokio::task::JoinSet::new();
        for (id, function, owner, source) in queues {
            reads.spawn(async move {
                let read = tokio::time::timeout(BACKLOG_TIMEOUT, source.backlog()).await;
                (id, function, owner, source.describe(), read)
            });
        }
        while let Some(Ok((id, function, owner, what, read))) = reads.join_next().await {
            let l = labels(&id, "queue", &function, &owner);
            match read {
                Ok(Ok(b)) => self
                    .stats
                    .set_backlog(l, b.waiting, b.in_flight, b.oldest_age_s),
                Ok(Err(e)) => self.stats.error(l, e.to_string()),
                Err(_) => self.stats.error(
                    l,
                    format!("{what}: no backlog answer within {BACKLOG_TIMEOUT:?}"),
                ),
            }
        }
        Ok(())
    }

    async fn reconcile(&self, state: &mut State, triggers: Vec<Trigger>) {
        // `None`: the function could not be read; whatever runs is kept.
        let mut wanted: HashMap<String, (Trigger, Option<hotswap_domain::Function>)> =
            HashMap::new();
        for t in triggers {
            match self
                .router
                .control()
                .store()
                .get_function_by_id(&t.function_id)
                .await
            {
                Ok(Some(f)) => {
                    wanted.insert(t.trigger_id.clone(), (t, Some(f)));
                }
                // Deleted with its function: its consumer stops below.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(trigger = %t.trigger_id, error = %e, "cannot read a trigger's function");
                    wanted.insert(t.trigger_id.clone(), (t, None));
                }
            }
        }
        let stale: Vec<String> = state
            .running
            .iter()
            .filter(|(id, r)| match wanted.get(*id) {
                None => true,
                Some((_, None)) => false,
                Some((t, Some(f))) => fingerprint(t, f) != r.fingerprint,
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(r) = state.running.remove(&id) {
                tracing::info!(trigger = %id, kind = r.kind, "consumer stopping");
                // In-flight batches finish and settle their messages.
                let _ = r.stop.send(true);
            }
        }
        for (id, (t, f)) in wanted {
            let Some(f) = f else { continue };
            if state.running.contains_key(&id) {
                continue;
            }
            let started = match t.trigger_type {
                TriggerType::Stream => self.start_stream(&t, &f),
                _ => self.start(&t, &f),
            };
            match started {
                Ok(r) => {
                    tracing::info!(trigger = %id, kind = r.kind, function = %f.name, "consumer started");
                    self.stats.clear_error(&id);
                    self.stats
                        .started(labels(&id, r.kind, &f.name, &f.owner_id));
                    state.running.insert(id, r);
                }
                Err(e) => {
                    self.stats
                        .error(labels(&id, kind_of(&t), &f.name, &f.owner_id), e.clone());
                    tracing::warn!(trigger = %id, error = %e, "consumer not started");
                }
            }
        }
    }

    fn start(&self, t: &Trigger, f: &hotswap_domain::Function) -> Result<Running, String> {
        let settings = t
            .config
            .queue_settings()
            .map_err(|e| format!("invalid queue trigger: {e}"))?;
        let concurrency = max_concurrency(&settings, f);
        let source = self.open_source(&settings, t, &f.owner_id, concurrency)?;
        let (dead_letter, dl_function) = match &settings.dead_letter_target {
            None => (DeadLetter::Keep, None),
            Some(DeliveryTarget::Queue { name }) => (DeadLetter::Queue(name.clone()), None),
            Some(DeliveryTarget::Function { name, qualifier }) => (
                DeadLetter::Function,
                Some(DeadLetterFunction {
                    name: name.clone(),
                    qualifier: qualifier.to_string(),
                    event: {
                        let arn = queue_arn(&settings.queue_name);
                        Arc::new(move |d: &Delivery| dead_letter_event(&arn, d))
                    },
                }),
            ),
        };
        let arn = queue_arn(&settings.queue_name);
        let invoker = Arc::new(RouterInvoker {
            router: self.router.clone(),
            function_id: f.function_id.clone(),
            qualifier: t.target_version.clone(),
            owner: f.owner_id.clone(),
            queue: settings.queue_name.clone(),
            dead_letter: dl_function,
        });
        let report_failures = settings.report_batch_item_failures;
        let consume_settings = ConsumeSettings {
            batch: BatchSettings {
                visibility: settings.visibility_timeout_for(f.timeout),
                max_receive_count: settings.max_receive_count,
                dead_letter,
                throttle_backoff: THROTTLE_BACKOFF,
            },
            batch_size: settings.batch_size as usize,
            window: settings.batching_window(),
            long_poll: LONG_POLL,
            max_concurrency: concurrency as usize,
            idle_pause: ERROR_PAUSE,
            max_error_pause: MAX_ERROR_PAUSE,
            event: Arc::new(move |batch: &[Delivery]| {
                let messages: Vec<QueueMessage> = batch.iter().map(queue_message).collect();
                Bytes::from(sqs_event(&arn, &messages).to_string())
            }),
            outcome: Arc::new(move |payload: &Bytes, ids: &[String]| {
                queue_outcome(InvokeResult::Succeeded(payload), report_failures, ids)
            }),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let reporter = self.reporter(&t.trigger_id, &f.name, &f.owner_id);
        let task = tokio::spawn(consume(
            source.clone(),
            invoker,
            consume_settings,
            stop_rx,
            reporter,
        ));
        Ok(Running {
            fingerprint: fingerprint(t, f),
            stop,
            task,
            queue: Some(source),
            kind: "queue",
            function: f.name.clone(),
            owner: f.owner_id.clone(),
        })
    }

    fn start_stream(&self, t: &Trigger, f: &hotswap_domain::Function) -> Result<Running, String> {
        let settings = t
            .config
            .stream_settings()
            .map_err(|e| format!("invalid stream trigger: {e}"))?;
        let source = self.open_stream(&settings, &t.trigger_id)?;
        let invoker = Arc::new(RouterStreamInvoker {
            router: self.router.clone(),
            function_id: f.function_id.clone(),
            qualifier: t.target_version.clone(),
            owner: f.owner_id.clone(),
            on_failure: settings.on_failure.clone(),
        });
        let leases = Arc::new(StoreLeases::of(self.router.control(), &t.trigger_id));
        let function_arn = format!(
            "arn:aws:lambda:local:000000000000:function:{}:{}",
            f.name, t.target_version
        );
        // A lease holder is this server's run: a restarted server takes
        // over its old leases once they expire (or at once, released).
        let owner = format!("{}/{}", self.instance, t.trigger_id);
        let mut cs = StreamConsumeSettings::new(settings, owner, function_arn);
        cs.executed_version = t.target_version.clone();
        cs.lease_ttl = self.stream_lease_ttl;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let reporter = self.stream_reporter(&t.trigger_id, &f.name, &f.owner_id);
        let task = tokio::spawn(consume_stream(
            source, invoker, leases, cs, stop_rx, reporter,
        ));
        Ok(Running {
            fingerprint: fingerprint(t, f),
            stop,
            task,
            queue: None,
            kind: "stream",
            function: f.name.clone(),
            owner: f.owner_id.clone(),
        })
    }

    /// The stream source of trigger `trigger_id`.
    fn open_stream(
        &self,
        settings: &StreamSettings,
        trigger_id: &str,
    ) -> Result<Arc<dyn StreamSource>, String> {
        #[cfg(feature = "kafka")]
        if let (TriggerSource::Kafka, Some(brokers)) =
            (settings.source, &self.brokers.kafka_brokers)
        {
            return hotswap_sources::kafka::KafkaStream::new(brokers, &settings.stream, trigger_id)
                .map(|s| Arc::new(s) as Arc<dyn StreamSource>)
                .map_err(|e| format!("--kafka-brokers: {e}"));
        }
        #[cfg(not(feature = "kafka"))]
        let _ = trigger_id;
        match (settings.source, &self.redis) {
            (TriggerSource::Nats, _) if self.nats.is_some() => {
                let conn = self.nats.as_ref().expect("checked");
                Ok(Arc::new(hotswap_sources::nats::NatsStream::new(
                    conn,
                    &settings.stream,
                )))
            }
            (TriggerSource::Redis, Some(Ok(b))) => Ok(Arc::new(b.stream(&settings.stream))),
            (TriggerSource::Redis, Some(Err(e))) => Err(format!("--redis-url: {e}")),
            (other, _) => Err(hotswap_control::unserved_source(other, "stream")),
        }
    }

    /// Counts each attempt, keeps the lag, and keeps source, lease and
    /// on-failure errors as the trigger's `lastError`.
    fn stream_reporter(&self, id: &str, function: &str, owner: &str) -> StreamReporter {
        let (stats, id, function, owner) = (
            self.stats.clone(),
            id.to_owned(),
            function.to_owned(),
            owner.to_owned(),
        );
        Arc::new(move |r: Result<&StreamBatchReport, &StreamError>| {
            let l = labels(&id, "stream", &function, &owner);
            match r {
                Ok(r) => {
                    if let Some(lag) = r.lag {
                        stats.set_lag(l, lag);
                    }
                    if r.records > 0 || r.discarded > 0 {
                        stats.record_batch(l, stream_counts(r), chrono::Utc::now());
                    }
                    stats.clear_error(&id);
                }
                Err(e) => stats.error(l, e.to_string()),
            }
        })
    }

    fn open_source(
        &self,
        settings: &QueueSettings,
        t: &Trigger,
        owner: &str,
        concurrency: u32,
    ) -> Result<Arc<dyn QueueSource>, String> {
        // api.md: consumers and consumer groups are `hotswap-{triggerId}`.
        let consumer = format!("hotswap-{}", t.trigger_id);
        match (settings.source, &self.brokers.rabbitmq_url, &self.redis) {
            (TriggerSource::Embedded, _, _) => Ok(Arc::new(EmbeddedQueue::new(
                self.router.control().clone(),
                owner,
                settings.queue_name.clone(),
            ))),
            (TriggerSource::Rabbitmq, Some(url), _) => {
                // Every message of every batch in flight (held messages
                // keep their prefetch slot), with room for the next ones.
                let prefetch =
                    (settings.batch_size * concurrency * 2).clamp(10, u32::from(u16::MAX));
                Ok(Arc::new(hotswap_sources::rabbitmq::RabbitQueue::new(
                    url,
                    &settings.queue_name,
                    &consumer,
                    u16::try_from(prefetch).unwrap_or(u16::MAX),
                )))
            }
            (TriggerSource::Nats, _, _) if self.nats.is_some() => {
                let conn = self.nats.as_ref().expect("checked");
                Ok(Arc::new(hotswap_sources::nats::NatsQueue::new(
                    conn,
                    &settings.queue_name,
                    &consumer,
                )))
            }
            (TriggerSource::Redis, _, Some(broker)) => match broker {
                Ok(b) => Ok(Arc::new(b.queue(&settings.queue_name, &consumer))),
                Err(e) => Err(format!("--redis-url: {e}")),
            },
            (other, _, _) => Err(hotswap_control::unserved_source(other, "queue")),
        }
    }

    /// Counts each batch; keeps source and dead-letter errors as the
    /// trigger's `lastError` (cleared by the next batch that works).
    fn reporter(&self, id: &str, function: &str, owner: &str) -> Reporter {
        let (stats, id, function, owner) = (
            self.stats.clone(),
            id.to_owned(),
            function.to_owned(),
            owner.to_owned(),
        );
        Arc::new(move |r: Result<&BatchReport, &SourceError>| {
            let l = labels(&id, "queue", &function, &owner);
            match r {
                Ok(r) => {
                    stats.record_batch(l, counts(r), chrono::Utc::now());
                    match &r.platform_error {
                        Some(e) => stats.error(l, e.clone()),
                        None => stats.clear_error(&id),
                    }
                }
                Err(e) => stats.error(l, e.to_string()),
            }
        })
    }

    /// Stops every consumer; in-flight batches get `grace` to settle
    /// (what they do not settle comes back after its visibility timeout).
    pub async fn shutdown(&self, grace: Duration) {
        let mut state = self.state.lock().await;
        let running: Vec<Running> = state.running.drain().map(|(_, r)| r).collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        let all = futures_join(running.into_iter().map(|r| r.task).collect());
        let _ = tokio::time::timeout(grace, all).await;
    }

    /// Trigger IDs with a running consumer (for tests and `/v1/status`).
    pub async fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state.lock().await.running.keys().cloned().collect();
        ids.sort();
        ids
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// What a consumer depends on: the trigger's target and config, and its
/// function's timeout (the visibility timeout's floor) and `maxInstances`.
fn fingerprint(t: &Trigger, f: &hotswap_domain::Function) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        t.target_version,
        serde_json::to_string(&t.config).unwrap_or_default(),
        f.timeout,
        f.scaling_config.max_instances,
        f.owner_id
    )
}

/// `maximumConcurrency`, or the default, never past `maxInstances`.
fn max_concurrency(s: &QueueSettings, f: &hotswap_domain::Function) -> u32 {
    let wanted = s.maximum_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    match f.scaling_config.max_instances {
        0 => wanted,
        max => wanted.min(max),
    }
    .max(1)
}

fn counts(r: &BatchReport) -> BatchCounts {
    let received = r.received as u64;
    let succeeded = r.succeeded as u64;
    BatchCounts {
        received,
        succeeded,
        failed: if r.throttled { 0 } else { received - succeeded },
        retried: r.retried as u64,
        dead_lettered: r.dead_lettered as u64,
        invoked: !r.throttled,
        invocation_failed: r.failed,
    }
}

fn stream_counts(r: &StreamBatchReport) -> BatchCounts {
    BatchCounts {
        received: r.records as u64,
        succeeded: r.succeeded as u64,
        failed: r.failed as u64,
        retried: r.retried as u64,
        dead_lettered: r.discarded as u64,
        invoked: r.records > 0 && !r.throttled,
        invocation_failed: r.failed > 0,
    }
}

fn queue_message(d: &Delivery) -> QueueMessage {
    QueueMessage {
        message_id: d.message_id.clone(),
        receipt_handle: d.receipt.clone(),
        body: d.body.clone(),
        attributes: d
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), MessageAttribute::String(v.clone())))
            .collect(),
        receive_count: d.receive_count,
        sent_timestamp_ms: d.sent_at.timestamp_millis(),
        first_receive_timestamp_ms: d.first_received_at.timestamp_millis(),
        sender_id: None,
    }
}

/// The event a dead message reaches a dead-letter function with: an SQS
/// event of that one message, from its queue.
fn dead_letter_event(arn: &str, d: &Delivery) -> Bytes {
    Bytes::from(sqs_event(arn, &[queue_message(d)]).to_string())
}
