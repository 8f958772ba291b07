//! Streams: the [`StreamSource`] trait every stream backend implements
//! (NATS JetStream, Redis Streams, Kafka), read by position.
//!
//! A stream has one or more shards (a NATS or Redis stream is one shard, a
//! Kafka topic has one per partition). Within a shard records are ordered
//! and each has a sequence number, text whose meaning only the backend
//! knows. A consumer reads *after* a position: the sequence number of the
//! last record it is done with, or [`BEFORE_FIRST`].

use std::time::Duration;

use async_trait::async_trait;
use hotswap_domain::trigger::source::StartingPosition;

use crate::SourceError;

/// The position before a shard's first record (read from it: the oldest
/// record the stream still holds).
pub const BEFORE_FIRST: &str = "";

/// One record of a shard, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    /// The backend's position of the record in its shard, as text (what a
    /// function names in `batchItemFailures`, and a checkpoint stores).
    pub sequence_number: String,
    /// The record's bytes (sent base64).
    pub data: Vec<u8>,
    /// When the stream received it, milliseconds since the epoch.
    pub arrival_timestamp_ms: i64,
}

/// A stream a trigger consumes.
#[async_trait]
pub trait StreamSource: Send + Sync {
    /// For logs and `state.lastError`, e.g. `NATS stream 'orders'`.
    fn describe(&self) -> String;
    /// The stream's shards (`[0]` for a single-shard stream). A stream that
    /// does not exist is [`SourceError::Refused`].
    async fn shards(&self) -> Result<Vec<u32>, SourceError>;
    /// The position to read after when a shard has no checkpoint:
    /// [`BEFORE_FIRST`] for `TRIM_HORIZON`, the last record's sequence
    /// number (or [`BEFORE_FIRST`] when empty) for `LATEST`, and the
    /// position just before the first record at or after the time for
    /// `AT_TIMESTAMP`.
    async fn start(&self, shard: u32, at: StartingPosition) -> Result<String, SourceError>;
    /// Up to `max` records of `shard` after position `after`, in order;
    /// waits at most `wait` for the first one (empty when none came).
    /// Records trimmed from the stream meanwhile are skipped: the first
    /// record returned is then the oldest still held.
    async fn read(
        &self,
        shard: u32,
        after: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError>;
    /// Records of `shard` after position `after` (the trigger's lag).
    async fn lag(&self, shard: u32, after: &str) -> Result<u64, SourceError>;
}
