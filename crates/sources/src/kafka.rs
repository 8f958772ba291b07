//! [`KafkaStream`]: a Kafka topic read by position, with Kinesis semantics
//! (behind the `kafka` cargo feature).
//!
//! # How Kinesis semantics are mapped
//!
//! - **Shards** are the topic's partitions (from its metadata); a missing
//!   topic is [`SourceError::Refused`].
//! - **Positions** are the offset of the last record done with, as decimal
//!   text; [`BEFORE_FIRST`] (`""`) is before the partition's first record.
//! - **Start.** `TRIM_HORIZON` → `""`; `LATEST` → high watermark − 1 (`""`
//!   when the partition never held a record); `AT_TIMESTAMP` → the offset
//!   just before the first record at or after the time (`offsets_for_times`
//!   − 1; `""` when that is the partition's first record).
//! - **Read** returns the records of offset > position, in order: a
//!   consumer per shard, assigned (never subscribed) at position + 1 and
//!   reused while reads continue where the last one ended; a read from
//!   elsewhere re-assigns it. Records trimmed by retention are skipped (it
//!   starts at the low watermark).
//! - **Record.** `sequence_number` = offset; `partition_key` = the message
//!   key (UTF-8, lossy), else the offset; `data` = the payload;
//!   `arrival_timestamp_ms` = the message's timestamp (create or log-append
//!   time, as the topic says; now when it has none).
//! - **Lag** = high watermark − max(position + 1, low watermark), at least 0.
//!
//! Consumers belong to group `hotswap-{name}` but never commit: HotSwap
//! keeps the checkpoints. librdkafka's calls block, so they run on
//! `spawn_blocking` threads.

/// The Kafka client this backend is built on, for callers that pass their
/// own configuration to [`KafkaStream::with_config`] (and for tests that
/// run librdkafka's mock cluster).
pub use rdkafka;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hotswap_domain::trigger::source::StartingPosition;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::stream::{StreamRecord, StreamSource, BEFORE_FIRST};
use crate::SourceError;

/// How long a metadata, watermark or offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Once a read has its first record, how long it waits for each of the
/// others the partition held then (they are normally in flight).
const LINGER: Duration = Duration::from_secs(1);

/// A Stream trigger's `source: "kafka"`: the existing topic `topic`, one
/// shard per partition (see the [module docs](self)).
pub struct KafkaStream {
    what: String,
    topic: String,
    shared: Arc<Shared>,
    /// Each shard's reader, kept while reads continue.
    readers: Mutex<HashMap<u32, Arc<Mutex<Option<Reader>>>>>,
}

/// What the blocking calls need.
struct Shared {
    what: String,
    topic: String,
    /// Every consumer's configuration.
    config: ClientConfig,
    /// For metadata, watermarks and offsets by time.
    admin: BaseConsumer,
}

impl std::fmt::Debug for KafkaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStream")
            .field("topic", &self.topic)
            .finish()
    }
}

/// A consumer assigned to one partition, and the offset it reads next.
struct Reader {
    consumer: BaseConsumer,
    next: i64,
}

impl KafkaStream {
    /// Reads topic `topic` of the cluster at `bootstrap_servers` as
    /// consumer group `hotswap-{name}` (which never commits). Nothing is
    /// checked until the first call.
    pub fn new(
        bootstrap_servers: &str,
        topic: &str,
        name: &str,
    ) -> Result<KafkaStream, SourceError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", format!("hotswap-{name}"));
        KafkaStream::with_config(config, topic)
    }

    /// Reads topic `topic` with consumers of configuration `config` (e.g.
    /// with security settings); it needs at least `bootstrap.servers`.
    /// Committing, storing offsets and partition-EOF events are turned off.
    pub fn with_config(mut config: ClientConfig, topic: &str) -> Result<KafkaStream, SourceError> {
        let what = format!("Kafka topic '{topic}'");
        config
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // A position trimmed away meanwhile: go on from the oldest.
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false");
        if config.get("group.id").is_none() {
            config.set("group.id", "hotswap");
        }
        if config.get("queued.max.messages.kbytes").is_none() {
            // An idle reader keeps prefetching; bound what it buffers.
            config.set("queued.max.messages.kbytes", "4096");
        }
        let admin = config
            .create::<BaseConsumer>()
            .map_err(|e| failure(&what, e))?;
        Ok(KafkaStream {
            what: what.clone(),
            topic: topic.to_owned(),
            shared: Arc::new(Shared {
                what,
                topic: topic.to_owned(),
                config,
                admin,
            }),
            readers: Mutex::new(HashMap::new()),
        })
    }

    fn partition(&self, shard: u32) -> Result<i32, SourceError> {
        i32::try_from(shard)
            .map_err(|_| SourceError::Refused(self.what.clone(), format!("no partition {shard}")))
    }

    /// `None` for [`BEFORE_FIRST`].
    fn position(&self, after: &str) -> Result<Option<i64>, SourceError> {
        if after == BEFORE_FIRST {
            return Ok(None);
        }
        match after.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(SourceError::Refused(
                self.what.clone(),
                format!("'{after}' is not a Kafka offset"),
            )),
        }
    }

    /// Runs `f` with the admin consumer on a blocking thread.
    async fn blocking<T, F>(&self, f: F) -> Result<T, SourceError>
    where
        T: Send + 'static,
        F: FnOnce(&BaseConsumer, &str, &str) -> Result<T, SourceError> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared.admin, &shared.topic, &shared.what))
            .await
            .map_err(|e| SourceError::Unavailable(self.what.clone(), e.to_string()))?
    }

    /// The partition's (low, high) watermarks.
    async fn watermarks(&self, shard: u32) -> Result<(i64, i64), SourceError> {
        let p = self.partition(shard)?;
        self.blocking(move |c, topic, what| watermarks(c, topic, what, p))
            .await
    }

    fn reader(&self, shard: u32) -> Arc<Mutex<Option<Reader>>> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.entry(shard).or_default().clone()
    }
}

/// Maps a librdkafka error: a refusal by the cluster (no such topic or
/// partition, not allowed, bad configuration) is [`SourceError::Refused`],
/// anything else (unreachable, timed out…) [`SourceError::Unavailable`].
fn failure(what: &str, e: KafkaError) -> SourceError {
    use RDKafkaErrorCode as C;
    let refused = match &e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => true,
        _ => matches!(
            e.rdkafka_error_code(),
            Some(
                C::UnknownTopicOrPartition
                    | C::UnknownTopic
                    | C::UnknownPartition
                    | C::TopicAuthorizationFailed
                    | C::GroupAuthorizationFailed
                    | C::ClusterAuthorizationFailed
                    | C::SaslAuthenticationFailed
                    | C::Authentication
                    | C::InvalidArgument
                    | C::InvalidTopic
            )
        ),
    };
    if refused {
        SourceError::Refused(what.to_owned(), e.to_string())
    } else {
        SourceError::Unavailable(what.to_owned(), e.to_string())
    }
}

/// The topic's partitions (sorted); a missing topic is refused.
fn partitions(c: &BaseConsumer, topic: &str, what: &str) -> Result<Vec<i32>, SourceError> {
    let md = c
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| failure(what, e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(SourceError::Refused(
            what.to_owned(),
            "no such topic".into(),
        ));
    };
    if let Some(err) = t.error() {
        return Err(failure(what, KafkaError::MetadataFetch(err.into())));
    }
    if t.partitions().is_empty() {
        return Err(SourceError::Refused(
            what.to_owned(),
            "no such topic".into(),
        ));
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

fn watermarks(
    c: &BaseConsumer,
    topic: &str,
    what: &str,
    p: i32,
) -> Result<(i64, i64), SourceError> {
    match c.fetch_watermarks(topic, p, REQUEST_TIMEOUT) {
        Ok(w) => Ok(w),
        Err(e) => {
            let err = failure(what, e);
            // Tell a missing topic or partition from a slow cluster.
            if let SourceError::Unavailable(..) = err {
                let ids = partitions(c, topic, what)?;
                if !ids.contains(&p) {
                    return Err(SourceError::Refused(
                        what.to_owned(),
                        format!("no partition {p}"),
                    ));
                }
            }
            Err(err)
        }
    }
}

fn text(offset: i64) -> String {
    if offset < 0 {
        BEFORE_FIRST.to_owned()
    } else {
        offset.to_string()
    }
}

/// The position before offset `found` (what `offsets_for_times` gave) in a
/// partition of watermarks `low`, `high`.
fn before(found: Offset, low: i64, high: i64) -> String {
    match found {
        Offset::Offset(o) if o <= low => BEFORE_FIRST.to_owned(),
        Offset::Offset(o) => text(o - 1),
        // No record at or after the time: after the last one.
        _ => text(high - 1),
    }
}

fn record<M: Message>(m: &M) -> StreamRecord {
    let offset = m.offset().to_string();
    StreamRecord {
        partition_key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_else(|| offset.clone()),
        data: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        arrival_timestamp_ms: m
            .timestamp()
            .to_millis()
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        sequence_number: offset,
    }
}

/// Reads up to `max` records of partition `p` from offset `want` on, with
/// `slot`'s reader (made or re-assigned as needed).
fn read_blocking(
    stream: &Shared,
    slot: &Mutex<Option<Reader>>,
    p: i32,
    want: i64,
    max: usize,
    wait: Duration,
) -> Result<Vec<StreamRecord>, SourceError> {
    let what = stream.what.as_str();
    let topic = stream.topic.as_str();
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if !matches!(slot.as_ref(), Some(r) if r.next == want) {
        let (low, high) = watermarks(&stream.admin, topic, what, p)?;
        // Trimmed records are skipped; a position past the end is read
        // from the end (records before `want` are dropped below).
        let from = want.max(low).min(high.max(low));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(from))
            .map_err(|e| failure(what, e))?;
        let consumer = match slot.take() {
            Some(r) => r.consumer,
            None => stream
                .config
                .create::<BaseConsumer>()
                .map_err(|e| failure(what, e))?,
        };
        consumer.unassign().map_err(|e| failure(what, e))?;
        consumer.assign(&tpl).map_err(|e| failure(what, e))?;
        *slot = Some(Reader {
            consumer,
            next: want,
        });
    }
    let Some(reader) = slot.as_mut() else {
        return Ok(Vec::new());
    };
    let mut deadline = Instant::now() + wait;
    // Once the first record is in: the end of the partition then (the
    // records before it are in flight, and waited for up to LINGER).
    let mut end: Option<i64> = None;
    let mut out = Vec::new();
    while out.len() < max {
        if end.is_some_and(|end| reader.next >= end) {
            break;
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        match reader.consumer.poll(timeout) {
            None => {
                if Instant::now() >= deadline {
                    break;
                }
            }
            Some(Ok(m)) => {
                if m.partition() != p || m.offset() < reader.next {
                    continue;
                }
                reader.next = m.offset() + 1;
                out.push(record(&m));
                if end.is_none() {
                    end = Some(
                        stream
                            .admin
                            .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                            .map_or(0, |(_, high)| high),
                    );
                }
                deadline = Instant::now() + LINGER;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                let err = failure(what, e);
                *slot = None;
                return if out.is_empty() { Err(err) } else { Ok(out) };
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl StreamSource for KafkaStream {
    fn describe(&self) -> String {
        self.what.clone()
    }

    async fn shards(&self) -> Result<Vec<u32>, SourceError> {
        let ids = self.blocking(partitions).await?;
        Ok(ids
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect())
    }

    async fn start(&self, shard: u32, at: StartingPosition) -> Result<String, SourceError> {
        let p = self.partition(shard)?;
        match at {
            StartingPosition::TrimHorizon => {
                self.watermarks(shard).await?;
                Ok(BEFORE_FIRST.to_owned())
            }
            StartingPosition::Latest => {
                let (_, high) = self.watermarks(shard).await?;
                Ok(text(high - 1))
            }
            StartingPosition::AtTimestamp(t) => {
                let ms = t.timestamp_millis();
                self.blocking(move |c, topic, what| {
                    let (low, high) = watermarks(c, topic, what, p)?;
                    if ms <= 0 {
                        return Ok(BEFORE_FIRST.to_owned());
                    }
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(topic, p, Offset::Offset(ms))
                        .map_err(|e| failure(what, e))?;
                    let found = c
                        .offsets_for_times(tpl, REQUEST_TIMEOUT)
                        .map_err(|e| failure(what, e))?;
                    let offset = found
                        .find_partition(topic, p)
                        .map(|e| e.offset())
                        .unwrap_or(Offset::End);
                    Ok(before(offset, low, high))
                })
                .await
            }
        }
    }

    async fn read(
        &self,
        shard: u32,
        after: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        let p = self.partition(shard)?;
        let after = self.position(after)?;
        if max == 0 {
            self.watermarks(shard).await?;
            return Ok(Vec::new());
        }
        let want = after.map_or(0, |a| a.saturating_add(1));
        let slot = self.reader(shard);
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || read_blocking(&shared, &slot, p, want, max, wait))
            .await
            .map_err(|e| SourceError::Unavailable(self.what.clone(), e.to_string()))?
    }

    async fn lag(&self, shard: u32, after: &str) -> Result<u64, SourceError> {
        let after = self.position(after)?;
        let (low, high) = self.watermarks(shard).await?;
        let from = after.map_or(low, |a| a.saturating_add(1).max(low));
        Ok(u64::try_from(high - from).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_checked() {
        let s = KafkaStream::new("127.0.0.1:1", "t", "f").unwrap();
        assert_eq!(s.position("").unwrap(), None);
        assert_eq!(s.position("41").unwrap(), Some(41));
        assert!(matches!(s.position("-1"), Err(SourceError::Refused(..))));
        assert!(matches!(s.position("5-1"), Err(SourceError::Refused(..))));
        assert_eq!(text(-1), "");
        assert_eq!(text(7), "7");
    }

    #[test]
    fn positions_before_a_time() {
        assert_eq!(before(Offset::Offset(0), 0, 5), "");
        assert_eq!(before(Offset::Offset(3), 0, 5), "2");
        assert_eq!(before(Offset::Offset(3), 3, 5), "");
        assert_eq!(before(Offset::End, 0, 5), "4");
        assert_eq!(before(Offset::End, 0, 0), "");
    }
}
