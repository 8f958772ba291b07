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

pub mod events;
pub mod gateway;
pub mod http;
pub mod queue;
pub mod scheduler;
pub mod stats;
pub mod stream;
