//! Where Queue and Stream triggers read from, behind two small traits:
//!
//! - [`QueueSource`] ([`queue`]): a queue with SQS semantics (receive with
//!   a visibility timeout, acknowledge, release, dead-letter). Backends:
//!   HotSwap's embedded queue (in `hotswap-triggers`, it reads the metadata
//!   store), RabbitMQ, NATS JetStream and Redis Streams; [`MemoryQueue`]
//!   is the test double.
//! - [`StreamSource`] ([`stream`]): an ordered, retained log read from a
//!   position, shard by shard (Kinesis semantics). Where a trigger is in
//!   the stream (its checkpoint) is kept by HotSwap, not by the broker, so
//!   every backend replays, bisects and resumes the same way. Backends:
//!   NATS JetStream, Redis Streams and, with cargo feature `kafka`, Kafka
//!   (`kafka::KafkaStream`).
//!
//! This crate knows no function, router or store: a consumer (in
//! `hotswap-triggers`) drives a source.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod nats;
pub mod queue;
pub mod rabbitmq;
pub mod redis;
pub mod stream;

pub use queue::{Backlog, Delivery, MemoryQueue, QueueSource};
pub use stream::{StreamRecord, StreamSource};

/// Errors of a source.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The broker cannot be reached (or the connection broke); the
    /// consumer retries with backoff and shows it in the trigger's state.
    #[error("{0} is unreachable: {1}")]
    Unavailable(String, String),
    /// The broker answered with a refusal (no such queue, no permission…).
    #[error("{0}: {1}")]
    Refused(String, String),
}
