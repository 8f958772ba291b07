//! Stream triggers' pure rules (the consumers that run them live apart).
//!
//! - [`event`]: the Kinesis event of a batch of records.
//! - [`response`]: what the function's result means for the checkpoint
//!   (`batchItemFailures` with sequence numbers).
//! - [`bisect`]: the checkpoint and the next sub-batches after an attempt
//!   (`bisectBatchOnFunctionError`).
//! - [`retry`]: when to give up on a batch (`maximumRetryAttempts`,
//!   `maximumRecordAgeInSeconds`).
//! - [`order`]: lanes of a shard (`parallelizationFactor`), one per
//!   partition key.
//! - [`checkpoint`]: a shard's checkpoint while its lanes finish out of
//!   order.

pub mod bisect;
pub mod checkpoint;
pub mod event;
pub mod order;
pub mod response;
pub mod retry;

pub use bisect::{plan_after, RetryPlan};
pub use checkpoint::{Checkpointer, Ticket};
pub use event::{kinesis_event, shard_id, stream_arn, StreamRecord};
pub use order::{lane_of, split_by_key};
pub use response::{stream_outcome, try_stream_outcome, StreamOutcome};
pub use retry::{give_up, is_expired, Discard};
