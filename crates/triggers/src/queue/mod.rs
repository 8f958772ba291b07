//! Queue triggers' pure rules (the consumers that run them live apart).
//!
//! - [`event`]: the SQS event of a batch of messages.
//! - [`response`]: what the function's result means for the batch
//!   (`batchItemFailures` with Lambda's rules).
//! - [`batching`]: when a buffered batch goes (`batchSize`,
//!   `maximumBatchingWindow`, payload limit).
//! - [`redrive`]: retry or dead-letter a failed message
//!   (`maxReceiveCount`).

pub mod batching;
pub mod event;
pub mod redrive;
pub mod response;

pub use batching::{BatchPolicy, Dispatch};
pub use event::{queue_arn, sqs_event, MessageAttribute, QueueMessage};
pub use redrive::{after_failure, AfterFailure};
pub use response::{
    queue_outcome, try_queue_outcome, BatchOutcome, InvokeResult, MalformedResponse,
};
