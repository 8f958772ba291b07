//! [`NatsStream`]: a JetStream stream read as a single-shard Kinesis stream
//! (see the [module docs](super) for the mapping).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self};
use async_trait::async_trait;
use futures::StreamExt;
use hotswap_domain::trigger::source::StartingPosition;

use super::{
    api_refusal, get_stream, header, parse_ack_subject, parse_position, position_text, AckInfo,
    NatsConnection, PARTITION_KEY_HEADER,
};
use crate::stream::{StreamRecord, StreamSource};
use crate::SourceError;

/// Once a read has its first record, how long it waits for each of the
/// records the server said were pending (they are normally in flight).
const LINGER: Duration = Duration::from_secs(1);
/// A reader left alone longer than this is replaced rather than reused:
/// its client keeps pulling (a batch of 500 every 35 s) and would buffer
/// ever more records while nobody reads.
const REUSE_WITHIN: Duration = Duration::from_secs(30);
/// How long the server keeps the consumer that finds a timestamp's
/// position (it is deleted right away; this is for a crash in between).
const PROBE_INACTIVE: Duration = Duration::from_secs(10);

/// A JetStream stream consumed with Kinesis semantics: one shard (`0`),
/// positions are stream sequences. The stream must exist.
pub struct NatsStream {
    conn: NatsConnection,
    stream: String,
    reader: tokio::sync::Mutex<Option<Reader>>,
}

/// An ordered consumer, and the sequence of the last record taken from it.
struct Reader {
    messages: pull::Ordered,
    position: u64,
    /// When the last read ended.
    used: Instant,
}

impl NatsStream {
    /// Reads stream `stream`. Nothing is checked until the first call.
    pub fn new(conn: &NatsConnection, stream: &str) -> NatsStream {
        NatsStream {
            conn: conn.clone(),
            stream: stream.to_owned(),
            reader: tokio::sync::Mutex::new(None),
        }
    }

    fn check_shard(&self, shard: u32) -> Result<(), SourceError> {
        if shard == 0 {
            Ok(())
        } else {
            Err(SourceError::Refused(
                self.describe(),
                format!("a NATS stream has one shard (0), not {shard}"),
            ))
        }
    }

    async fn stream(&self) -> Result<jetstream::stream::Stream, SourceError> {
        let js = self.conn.jetstream().await?;
        get_stream(&js, &self.describe(), &self.stream).await
    }

    /// An ordered consumer that starts after `after`.
    async fn open(&self, after: u64) -> Result<Reader, SourceError> {
        let what = self.describe();
        let stream = self.stream().await?;
        let deliver_policy = match after {
            0 => DeliverPolicy::All,
            n => DeliverPolicy::ByStartSequence {
                start_sequence: n.saturating_add(1),
            },
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                description: Some("HotSwap stream trigger".into()),
                deliver_policy,
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| consumer_error(&what, e))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| SourceError::Unavailable(what, e.to_string()))?;
        Ok(Reader {
            messages,
            position: after,
            used: Instant::now(),
        })
    }

    /// The position before the first record stored at or after `t`.
    async fn position_at(
        &self,
        stream: &jetstream::stream::Stream,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, SourceError> {
        let state = &stream.cached_info().state;
        let Some(ns) = t.timestamp_nanos_opt() else {
            // Out of JetStream's range: before every record, or after all.
            return Ok(if t.timestamp() < 0 {
                String::new()
            } else {
                position_text(state.last_sequence)
            });
        };
        let start_time = async_nats::datetime::from_nanos(i128::from(ns))
            .map_err(|e| SourceError::Refused(self.describe(), e.to_string()))?;
        // A consumer that would start at that time says where it is: the
        // position before its first record.
        let probe = stream
            .create_consumer(pull::Config {
                description: Some("HotSwap: position of a time".into()),
                deliver_policy: DeliverPolicy::ByStartTime { start_time },
                ack_policy: AckPolicy::None,
                inactive_threshold: PROBE_INACTIVE,
                ..pull::Config::default()
            })
            .await
            .map_err(|e| consumer_error(&self.describe(), e))?;
        let info = probe.cached_info();
        let seq = info.delivered.stream_sequence;
        if let Err(e) = stream.delete_consumer(&info.name).await {
            tracing::debug!(stream = %self.describe(), error = %e, "probe consumer left to expire");
        }
        Ok(position_text(seq))
    }

    /// After a read that found nothing or failed: a stream that is gone
    /// is refused (the ordered consumer would wait for it forever).
    async fn still_there(&self) -> Result<(), SourceError> {
        self.stream().await.map(|_| ())
    }
}

fn consumer_error(what: &str, e: jetstream::stream::ConsumerError) -> SourceError {
    use jetstream::stream::ConsumerErrorKind as K;
    match e.kind() {
        K::JetStream(api) => api_refusal(what, &api),
        K::TimedOut | K::Request => SourceError::Unavailable(what.to_owned(), e.to_string()),
        K::InvalidConsumerType | K::InvalidName | K::Other => {
            SourceError::Refused(what.to_owned(), e.to_string())
        }
    }
}

fn record(m: &jetstream::Message, info: &AckInfo) -> StreamRecord {
    StreamRecord {
        partition_key: header(m.headers.as_ref(), PARTITION_KEY_HEADER)
            .map(str::to_owned)
            .unwrap_or_else(|| m.subject.to_string()),
        sequence_number: info.stream_sequence.to_string(),
        data: m.payload.to_vec(),
        arrival_timestamp_ms: i64::try_from(info.published_ns / 1_000_000).unwrap_or(0),
    }
}

/// Records after `after` in a stream holding `messages` records from
/// `first` to `last` (deleted ones in between are counted).
fn lag_of(after: u64, first: u64, last: u64, messages: u64) -> u64 {
    if messages == 0 {
        return 0;
    }
    last.saturating_sub(after.max(first.saturating_sub(1)))
}

#[async_trait]
impl StreamSource for NatsStream {
    fn describe(&self) -> String {
        format!("NATS stream '{}'", self.stream)
    }

    async fn shards(&self) -> Result<Vec<u32>, SourceError> {
        self.stream().await?;
        Ok(vec![0])
    }

    async fn start(&self, shard: u32, at: StartingPosition) -> Result<String, SourceError> {
        self.check_shard(shard)?;
        let stream = self.stream().await?;
        match at {
            StartingPosition::TrimHorizon => Ok(String::new()),
            StartingPosition::Latest => Ok(position_text(stream.cached_info().state.last_sequence)),
            StartingPosition::AtTimestamp(t) => self.position_at(&stream, t).await,
        }
    }

    async fn read(
        &self,
        shard: u32,
        after: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StreamRecord>, SourceError> {
        self.check_shard(shard)?;
        let after = parse_position(&self.describe(), after)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut slot = self.reader.lock().await;
        let mut reader = match slot.take() {
            Some(r) if r.position == after && r.used.elapsed() < REUSE_WITHIN => r,
            // Somewhere else (a replay, a restart): a consumer from there.
            _ => self.open(after).await?,
        };
        let mut out = Vec::new();
        let mut timeout = wait;
        let mut failure = None;
        let mut ended = false;
        loop {
            let m = match tokio::time::timeout(timeout, reader.messages.next()).await {
                Err(_) => break,
                Ok(None) => {
                    ended = true;
                    break;
                }
                Ok(Some(Err(e))) => {
                    failure = Some(e.to_string());
                    break;
                }
                Ok(Some(Ok(m))) => m,
            };
            let reply = m.reply.as_ref().map(|r| r.as_str()).unwrap_or_default();
            let Some(info) = parse_ack_subject(reply) else {
                tracing::warn!(stream = %self.describe(), reply, "a record without its stream sequence: skipped");
                continue;
            };
            if info.stream_sequence <= reader.position {
                // Already read (the client recreated the consumer from
                // further back).
                continue;
            }
            reader.position = info.stream_sequence;
            out.push(record(&m, &info));
            if out.len() >= max || info.pending == 0 {
                break;
            }
            timeout = LINGER;
        }
        if let Some(e) = failure {
            // The reader is dropped: the next read starts a new one.
            if !out.is_empty() {
                tracing::warn!(stream = %self.describe(), error = %e, "read ended early");
                return Ok(out);
            }
            self.still_there().await?;
            return Err(SourceError::Unavailable(self.describe(), e));
        }
        if out.is_empty() {
            if let Err(e) = self.still_there().await {
                if matches!(e, SourceError::Unavailable(..)) && !ended {
                    *slot = Some(reader);
                }
                return Err(e);
            }
        }
        if !ended {
            reader.used = Instant::now();
            *slot = Some(reader);
        }
        Ok(out)
    }

    async fn lag(&self, shard: u32, after: &str) -> Result<u64, SourceError> {
        self.check_shard(shard)?;
        let after = parse_position(&self.describe(), after)?;
        let stream = self.stream().await?;
        let s = &stream.cached_info().state;
        Ok(lag_of(after, s.first_sequence, s.last_sequence, s.messages))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_position_or_the_oldest_record_held() {
        // Records 1..=10.
        assert_eq!(lag_of(0, 1, 10, 10), 10);
        assert_eq!(lag_of(4, 1, 10, 10), 6);
        assert_eq!(lag_of(10, 1, 10, 10), 0);
        assert_eq!(lag_of(12, 1, 10, 10), 0);
        // 1..=5 trimmed: a position among them lags by what is left.
        assert_eq!(lag_of(2, 6, 10, 5), 5);
        // Everything trimmed.
        assert_eq!(lag_of(3, 11, 10, 0), 0);
    }
}
