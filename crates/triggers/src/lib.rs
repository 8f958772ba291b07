//! Event sources: how the outside world reaches a function.
//!
//! - [`http`]: the route table of HTTP triggers (`/fn/…`), the API Gateway
//!   HTTP API v2.0 event built from a request, the mapping of a function's
//!   result back to an HTTP response, CORS and the per-trigger rate limit.
//! - [`events`]: the EventBridge "Scheduled Event" a schedule tick
//!   delivers, and sample events of every shape (`hotswap event …`).
//! - [`queue`]: Queue triggers' SQS event, batch-failure responses,
//!   batching window and redrive.
//! - [`stream`]: Stream triggers' Kinesis event, batch-failure responses,
//!   bisection, retry limits, per-key lanes and checkpoints.
//!
//! Everything here is pure (no I/O, no clock reads: times are arguments),
//! so each rule has a unit test beside it.
//!
//! Queue triggers (being built): [`sources`] is the [`sources::QueueSource`]
//! trait every queue backend implements, with an in-memory double;
//! [`consumer`] runs one batch through a function with SQS event-source
//! semantics (acknowledge on success, partial batch failures, visibility,
//! `maxReceiveCount` and dead letters, throttling).
//!
//! Stream triggers: [`streams`] consumes a [`sources::StreamSource`] with
//! Kinesis event-source semantics (shard leases and durable checkpoints,
//! per-key lanes, retries, bisection, record age, on-failure records),
//! with in-memory doubles of a stream and of the lease store.

pub mod consumer;
pub mod events;
pub mod gateway;
pub mod http;
pub mod mappings;
pub mod queue;
pub mod queues;
pub mod scheduler;
pub mod stats;
pub mod stream;
pub mod streams;

/// Where Queue and Stream triggers read from (re-exported).
pub use hotswap_sources as sources;
