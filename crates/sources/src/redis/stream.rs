//! [`RedisStream`]: a Redis stream read by position, with Kinesis
//! semantics.

use std::time::Duration;

use async_trait::async_trait;
use hotswap_domain::trigger::source::StartingPosition;

use super::{
    lossy, parse_entries, parse_read_reply, value_items, value_text, Entry, EntryId, Link,
    RedisBroker,
};
use crate::stream::BEFORE_FIRST;
use crate::{SourceError, StreamRecord, StreamSource};

/// A Stream trigger's `source: "redis"`: the existing Redis stream of key
/// `streamArn`, one shard (`0`), read by position without a consumer group
/// (HotSwap keeps the checkpoint).
///
/// # How Kinesis semantics are mapped
///
/// - **Positions** are entry ids (`<ms>-<seq>`); [`BEFORE_FIRST`] (`""`)
///   is before the first entry. Any valid id is a position, whether or not
///   an entry has it.
/// - **Start.** `TRIM_HORIZON` → `""`; `LATEST` → the last entry's id
///   (`""` when the stream is empty); `AT_TIMESTAMP` → the id of the last
///   entry added before the time (`""` when none), so reading starts at
///   the first entry at or after it.
/// - **Read** = `XRANGE key (after + COUNT max`: entries strictly after the
///   position, in order; when there are none, `XREAD BLOCK wait` on a
///   dedicated connection. Entries trimmed away meanwhile are skipped by
///   construction (the range starts at the oldest one still held).
/// - **Record.** `sequence_number` = entry id; `partition_key` = field
///   `partitionKey` (UTF-8, lossy), else the entry id; `data` = the bytes
///   of field `data`, else all the entry's fields as a JSON object;
///   `arrival_timestamp_ms` = the id's milliseconds.
/// - **Lag** = entries after the position: exact when either side of it
///   holds at most 100,000 entries (the smaller side is counted, in chunks,
///   by a script; `XLEN` gives the other), an estimate from the ids' times
///   otherwise (Redis keeps no count of entries between two ids, and
///   `entries-added` is not exact after deletions).
///
/// A missing stream (or a key of another type) is [`SourceError::Refused`];
/// a malformed position is too.
pub struct RedisStream {
    link: Link,
    key: String,
}

impl std::fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStream")
            .field("key", &self.key)
            .finish()
    }
}

impl RedisStream {
    /// A stream over key `key` of the server at `url`, on connections of its
    /// own (a server with many triggers shares one [`RedisBroker`] and calls
    /// [`RedisBroker::stream`]).
    pub fn new(url: &str, key: &str) -> Result<RedisStream, SourceError> {
        Ok(RedisBroker::new(url)?.stream(key))
    }

    pub(super) fn on(broker: RedisBroker, key: &str) -> RedisStream {
        RedisStream {
            link: Link::new(broker, format!("Redis stream '{key}'")),
            key: key.to_owned(),
        }
    }

    fn check_shard(&self, shard: u32) -> Result<(), SourceError> {
        if shard == 0 {
            Ok(())
        } else {
            Err(self.link.refused(format!(
                "no shard {shard} (a Redis stream has one shard: 0)"
            )))
        }
    }

    /// `None` for [`BEFORE_FIRST`].
    fn position(&self, after: &str) -> Result<Option<EntryId>, SourceError> {
        if after == BEFORE_FIRST {
            return Ok(None);
        }
        EntryId::parse(after).map(Some).ok_or_else(|| {
            self.link
                .refused(format!("'{after}' is not a Redis stream position"))
        })
    }

    /// The id of the last entry in `XREVRANGE key end - COUNT 1`, or `""`.
    async fn last_before(&self, end: &str) -> Result<String, SourceError> {
        let v = self
            .link
            .query(
                redis::cmd("XREVRANGE")
                    .arg(&self.key)
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(value_items(&v)
            .first()
            .and_then(|e| value_items(e).first())
            .and_then(value_text)
            .unwrap_or_default())
    }
}

fn record(entry: Entry) -> StreamRecord {
    let id = entry.id.to_string();
    StreamRecord {
        partition_key: entry
            .field("partitionKey")
            .map(lossy)
            .unwrap_or_else(|| id.clone()),
        data: match entry.field("data") {
            Some(d) => d.to_vec(),
            None => entry.fields_json().into_bytes(),
        },
        arrival_timestamp_ms: i64::try_from(entry.id.ms).unwrap_or(i64::MAX),
        sequence_number: id,
    }
}

#[async_trait]
impl StreamSource for RedisStream {
    fn describe(&self) -> String {
        self.link.what().to_owned()
    }

    async fn shards(&self) -> Result<Vec<u32>, SourceError> {
        self.link.ensure_stream(&self.key).await?;
        Ok(vec![0])
    }

    async fn start(&self, shard: u32, at: StartingPosition) -> Result<String, SourceError> {
        self.check_shard(shard)?;
        self.link.ensure_stream(&self.key).await?;
        match at {
            StartingPosition::TrimHorizon => Ok(BEFORE_FIRST.to_owned()),
            StartingPosition::Latest => self.last_before("+").await,
            StartingPosition::AtTimestamp(t) => match t.timestamp_millis() {
                ms if ms <= 0 => Ok(BEFORE_FIRST.to_owned()),
                ms => self.last_before(&format!("({ms}-0")).await,
            },
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
        let after = self.position(after)?;
        if max == 0 || after == Some(EntryId::MAX) {
            // Nothing can come after the greatest id.
            self.link.ensure_stream(&self.key).await?;
            return Ok(Vec::new());
        }
        let start = match after {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        let v = self
            .link
            .query(
                redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(max),
            )
            .await?;
        let entries = parse_entries(&v);
        if !entries.is_empty() {
            return Ok(entries.into_iter().map(record).collect());
        }
        // Nothing: a missing stream reads as empty, so look.
        self.link.ensure_stream(&self.key).await?;
        if wait.is_zero() {
            return Ok(Vec::new());
        }
        let block = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let from = after
            .map(|id| id.to_string())
            .unwrap_or_else(|| "0-0".into());
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(block)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(from);
        let v = self.link.blocking(&cmd, wait).await?;
        Ok(parse_read_reply(&v).into_iter().map(record).collect())
    }

    async fn lag(&self, shard: u32, after: &str) -> Result<u64, SourceError> {
        self.check_shard(shard)?;
        let after = self.position(after)?;
        self.link.ensure_stream(&self.key).await?;
        Ok(self.link.count_after(&self.key, after).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_map_fields() {
        let id = EntryId::parse("1700000000123-4").unwrap();
        let r = record(Entry {
            id,
            fields: vec![
                ("partitionKey".into(), b"user-1".to_vec()),
                ("data".into(), vec![0, 159, 146, 150]),
            ],
        });
        assert_eq!(r.sequence_number, "1700000000123-4");
        assert_eq!(r.partition_key, "user-1");
        assert_eq!(r.data, vec![0, 159, 146, 150]);
        assert_eq!(r.arrival_timestamp_ms, 1_700_000_000_123);
        let r = record(Entry {
            id,
            fields: vec![("a".into(), b"1".to_vec())],
        });
        assert_eq!(r.partition_key, "1700000000123-4");
        assert_eq!(r.data, br#"{"a":"1"}"#.to_vec());
    }

    #[test]
    fn positions_are_checked() {
        let s = RedisBroker::new("redis://127.0.0.1:1").unwrap().stream("s");
        assert_eq!(s.position("").unwrap(), None);
        assert_eq!(s.position("5-1").unwrap(), Some(EntryId { ms: 5, seq: 1 }));
        assert!(matches!(s.position("5"), Err(SourceError::Refused(..))));
        assert!(matches!(s.check_shard(1), Err(SourceError::Refused(..))));
    }
}
