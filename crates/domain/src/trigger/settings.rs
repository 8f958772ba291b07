//! A Queue or Stream trigger's settings with every default filled in, as a
//! consumer runs them ([`TriggerConfig::queue_settings`],
//! [`TriggerConfig::stream_settings`]).

use std::time::Duration;

use super::source::{parse_starting_timestamp, StartingPosition, TriggerSource};
use super::target::DeliveryTarget;
use super::{TriggerConfig, TriggerType};
use crate::validation::ValidationErrors;

/// A queue trigger's `batchSize` when none is given.
pub const DEFAULT_QUEUE_BATCH_SIZE: u32 = 10;
/// A stream trigger's `batchSize` when none is given.
pub const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;
/// Longest `maximumBatchingWindow`, seconds (Lambda's).
pub const MAX_BATCHING_WINDOW_S: u32 = 300;
/// `visibilityTimeout` when none is given, seconds (SQS's default).
pub const DEFAULT_VISIBILITY_TIMEOUT_S: u32 = 30;
/// `maxReceiveCount` when none is given.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 3;
/// Highest `maxReceiveCount` (SQS's redrive limit).
pub const MAX_MAX_RECEIVE_COUNT: u32 = 1_000;
/// Lowest `maximumConcurrency` (Lambda's).
pub const MIN_MAXIMUM_CONCURRENCY: u32 = 2;
/// Highest `maximumConcurrency` (Lambda's).
pub const MAX_MAXIMUM_CONCURRENCY: u32 = 1_000;
/// Highest `parallelizationFactor`.
pub const MAX_PARALLELIZATION_FACTOR: u32 = 10;
/// `parallelizationFactor` when none is given.
pub const DEFAULT_PARALLELIZATION_FACTOR: u32 = 1;
/// Highest finite `maximumRetryAttempts` (-1 is "until the record expires").
pub const MAX_RETRY_ATTEMPTS: i32 = 10_000;
/// Lowest finite `maximumRecordAgeInSeconds` (-1 is "no limit").
pub const MIN_RECORD_AGE_S: i32 = 60;
/// Highest finite `maximumRecordAgeInSeconds` (a week).
pub const MAX_RECORD_AGE_S: i32 = 604_800;

/// How a Queue trigger consumes, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub queue_name: String,
    pub source: TriggerSource,
    /// Most messages per invocation (default 10).
    pub batch_size: u32,
    /// Longest wait to fill a batch, seconds (default 0: send what is there).
    pub maximum_batching_window_s: u32,
    /// Seconds a received message stays invisible (default 30); see
    /// [`QueueSettings::visibility_timeout_for`].
    pub visibility_timeout_s: u32,
    /// Receives after which a failing message is dead-lettered (default 3).
    pub max_receive_count: u32,
    /// Whether the function's `batchItemFailures` are read.
    pub report_batch_item_failures: bool,
    /// Most concurrent batches; `None`: bounded by the function's
    /// `maxInstances` only.
    pub maximum_concurrency: Option<u32>,
    /// Where a message goes after `max_receive_count` receives; `None`: it
    /// stays in the queue (never dropped), counted as dead-lettered.
    pub dead_letter_target: Option<DeliveryTarget>,
}

impl QueueSettings {
    pub fn batching_window(&self) -> Duration {
        Duration::from_secs(self.maximum_batching_window_s.into())
    }

    /// The visibility timeout to use for a function whose timeout is
    /// `function_timeout_s`: never shorter than the function may run (the
    /// trigger's value is checked against it when the trigger is created,
    /// but the function's timeout may have grown since).
    pub fn visibility_timeout_for(&self, function_timeout_s: u32) -> Duration {
        Duration::from_secs(self.visibility_timeout_s.max(function_timeout_s).into())
    }
}

/// How a Stream trigger consumes, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The stream (`streamArn`: a NATS stream, Redis key or Kafka topic).
    pub stream: String,
    pub source: TriggerSource,
    pub starting_position: StartingPosition,
    /// Most records per invocation (default 100).
    pub batch_size: u32,
    /// Concurrent batches per shard (default 1).
    pub parallelization_factor: u32,
    pub bisect_batch_on_function_error: bool,
    /// Retries of a failing batch; `None` (-1, the default): until its
    /// records expire.
    pub maximum_retry_attempts: Option<u32>,
    /// Oldest record sent, seconds; `None` (-1, the default): no limit.
    pub maximum_record_age_s: Option<u32>,
    pub report_batch_item_failures: bool,
    /// Where a discarded batch's description goes; `None`: dropped from
    /// the stream's point of view (counted as failed).
    pub on_failure: Option<DeliveryTarget>,
}

impl StreamSettings {
    pub fn maximum_record_age(&self) -> Option<Duration> {
        self.maximum_record_age_s
            .map(|s| Duration::from_secs(s.into()))
    }
}

/// -1 is "unlimited"; other values are taken as validated.
fn finite(v: Option<i32>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

impl TriggerConfig {
    /// The config as a Queue trigger runs it, or the validation errors it
    /// has as a Queue trigger's config.
    pub fn queue_settings(&self) -> Result<QueueSettings, ValidationErrors> {
        super::config_errors(TriggerType::Queue, self).into_result()?;
        Ok(QueueSettings {
            queue_name: self.queue_name.clone().unwrap_or_default(),
            source: self.source.unwrap_or(TriggerSource::DEFAULT_QUEUE),
            batch_size: self.batch_size.unwrap_or(DEFAULT_QUEUE_BATCH_SIZE),
            maximum_batching_window_s: self.maximum_batching_window.unwrap_or(0),
            visibility_timeout_s: self
                .visibility_timeout
                .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_S),
            max_receive_count: self.max_receive_count.unwrap_or(DEFAULT_MAX_RECEIVE_COUNT),
            report_batch_item_failures: self.report_batch_item_failures.unwrap_or(false),
            maximum_concurrency: self.maximum_concurrency,
            dead_letter_target: self
                .dead_letter_target
                .as_deref()
                .and_then(|t| t.parse().ok()),
        })
    }

    /// The config as a Stream trigger runs it, or the validation errors it
    /// has as a Stream trigger's config.
    pub fn stream_settings(&self) -> Result<StreamSettings, ValidationErrors> {
        super::config_errors(TriggerType::Stream, self).into_result()?;
        let position = match self.starting_position.as_deref() {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("AT_TIMESTAMP") => match self
                .starting_position_timestamp
                .as_deref()
                .and_then(parse_starting_timestamp)
            {
                Some(t) => StartingPosition::AtTimestamp(t),
                None => return Err(
                    "StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP"
                        .into(),
                ),
            },
            _ => StartingPosition::Latest,
        };
        let Some(source) = self.source else {
            return Err("Source is required for Stream triggers".into());
        };
        Ok(StreamSettings {
            stream: self.stream_arn.clone().unwrap_or_default(),
            source,
            starting_position: position,
            batch_size: self.batch_size.unwrap_or(DEFAULT_STREAM_BATCH_SIZE),
            parallelization_factor: self
                .parallelization_factor
                .unwrap_or(DEFAULT_PARALLELIZATION_FACTOR),
            bisect_batch_on_function_error: self.bisect_batch_on_function_error.unwrap_or(false),
            maximum_retry_attempts: finite(self.maximum_retry_attempts),
            maximum_record_age_s: finite(self.maximum_record_age_in_seconds),
            report_batch_item_failures: self.report_batch_item_failures.unwrap_or(false),
            on_failure: self.on_failure.as_deref().and_then(|t| t.parse().ok()),
        })
    }
}
