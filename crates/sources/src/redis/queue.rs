//! [`RedisQueue`]: a Redis stream consumed by a consumer group, with SQS
//! semantics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{Script, Value};

#[cfg(doc)]
use super::RedisStream;
use super::{
    lossy, parse_read_reply, value_int, value_items, value_pairs, value_text, Entry, EntryId,
    Failure, Link, RedisBroker, NO_STREAM,
};
use crate::{Backlog, Delivery, QueueSource, SourceError};

/// Receipts acknowledged or released by one script call.
const RECEIPTS_PER_CALL: usize = 500;
/// Visibility assumed by `release` before the first `receive`.
const DEFAULT_VISIBILITY_MS: u64 = 30_000;

/// A Queue trigger's `source: "redis"`: the existing Redis stream of key
/// `queueName`, consumed by the consumer group `hotswap-{triggerId}`.
///
/// # How SQS semantics are mapped
///
/// - **The group.** Created when missing with `XGROUP CREATE key group 0`
///   (without `MKSTREAM`: a missing stream is [`SourceError::Refused`]), so
///   the entries already in the stream are delivered too. Every server
///   reads as its own consumer, `{group}-{random}`; an entry is delivered to
///   one consumer at a time. Consumers of earlier runs left with nothing
///   pending and idle for an hour are deleted when the group is set up.
///   A group deleted behind HotSwap's back is created again, from the
///   stream's start (entries are then delivered again: at least once).
/// - **Receive.** First the group's entries delivered longer ago than the
///   visibility timeout and not acknowledged (`XPENDING … IDLE` then
///   `XCLAIM` to this consumer, in one script: atomic, so two servers never
///   reclaim the same entry; claiming raises the entry's delivery count),
///   oldest first; then new entries (`XREADGROUP … >`), waiting up to
///   `wait` (`BLOCK`, on a dedicated connection) only when nothing was
///   reclaimed. (`XAUTOCLAIM` is not used: it scans at most ten times its
///   `COUNT` of pending entries per call and could miss expired ones behind
///   many in-flight ones.)
/// - **Receipt** = `<entry id>/<delivery count>`. The delivery count is
///   Redis's: it grows with every receive, so a receipt of an earlier
///   receive no longer matches. `ack` and `release` check it atomically (a
///   script reads the entry's pending record first) and do nothing for a
///   stale receipt, or an entry no longer pending.
/// - **Ack** = `XACK` (not `XDEL`: other groups may read the same stream;
///   trimming the stream is its owner's business).
/// - **Release** after `delay` = `XCLAIM` to this consumer with
///   `IDLE (visibility − delay)`, so the next receives reclaim it once
///   `delay` has passed (`delay` is thus capped at the visibility timeout
///   of the last receive). `RETRYCOUNT` keeps the delivery count
///   (`count: true`: the next receive raises it) or lowers it by one
///   (`count: false`: the next receive shows the same count again).
/// - **Message.** `message_id` = entry id; `body` = field `body` (UTF-8,
///   lossy), or, when the entry has no `body` field, all its fields as a
///   JSON object; `attributes` = the fields other than `body` (lossy
///   UTF-8); `receive_count` = the delivery count; `sent_at` = the id's
///   time; `first_received_at` = now on a first delivery, the entry's
///   `sent_at` on a later one (Redis keeps no first-delivery time).
/// - **Backlog.** `waiting` = the group's `lag` (`XINFO GROUPS`; when
///   Redis cannot tell it, after deletions, the entries after the group's
///   last delivered id are counted, as [`RedisStream`]'s lag is);
///   `in_flight` = the group's pending entries (this
///   includes entries whose visibility ended and that wait to be
///   reclaimed); `oldest_age_s` = age of the oldest pending or undelivered
///   entry, from its id.
///
/// # Limits
///
/// - A receipt given back by `release(count: false)` reads the same as the
///   receipt of the entry's next receive: it must not be used again (the
///   consumer never does).
/// - A receive cancelled while it waits may leave entries delivered to this
///   consumer and never returned: they come back after the visibility
///   timeout, counted.
/// - Clocks: visibility is measured by Redis (idle times); ages in the
///   backlog compare entry ids with this machine's clock.
pub struct RedisQueue {
    link: Link,
    key: String,
    group: String,
    consumer: String,
    /// The visibility timeout of the last receive, ms.
    visibility_ms: AtomicU64,
    group_ready: AtomicBool,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("key", &self.key)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// Runs a command of the group, creating the group first when needed (and
/// once more when Redis answers that it is gone).
macro_rules! grouped {
    ($self:ident, $call:expr) => {{
        $self.ensure_group().await?;
        match $call.await {
            Err(f) if $self.group_lost(&f) => {
                $self.ensure_group().await?;
                $call.await.map_err(SourceError::from)
            }
            other => other.map_err(SourceError::from),
        }
    }};
}

impl RedisQueue {
    /// A queue over stream `key` of the server at `url`, consumed by group
    /// `group`, on connections of its own (a server with many triggers
    /// shares one [`RedisBroker`] and calls [`RedisBroker::queue`]).
    pub fn new(url: &str, key: &str, group: &str) -> Result<RedisQueue, SourceError> {
        Ok(RedisBroker::new(url)?.queue(key, group))
    }

    pub(super) fn on(broker: RedisBroker, key: &str, group: &str) -> RedisQueue {
        let consumer = format!("{group}-{}", broker.instance());
        RedisQueue {
            link: Link::new(broker, format!("Redis stream '{key}' (group '{group}')")),
            key: key.to_owned(),
            group: group.to_owned(),
            consumer,
            visibility_ms: AtomicU64::new(DEFAULT_VISIBILITY_MS),
            group_ready: AtomicBool::new(false),
        }
    }

    /// This server's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the group unless done already.
    async fn ensure_group(&self) -> Result<(), SourceError> {
        if self.group_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let created = self
            .link
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.key)
                    .arg(&self.group)
                    .arg("0"),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(f) if f.is("BUSYGROUP") => {}
            Err(f) if f.detail.contains("requires the key to exist") => {
                return Err(self.link.refused(NO_STREAM));
            }
            Err(f) if f.is("WRONGTYPE") => {
                return Err(self
                    .link
                    .refused("the key holds something else than a stream"));
            }
            Err(f) => return Err(f.into()),
        }
        if let Err(f) = self
            .link
            .script(
                &FORGET_CONSUMERS,
                &self.key,
                &[self.group.clone(), self.consumer.clone(), "3600000".into()],
            )
            .await
        {
            tracing::warn!(queue = %self.link.what(), error = %f.detail, "Redis: old consumers are kept");
        }
        self.group_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether `f` says the group (or the stream) is gone; if so, the group
    /// is set up again on the next call.
    fn group_lost(&self, f: &Failure) -> bool {
        let lost = f.is("NOGROUP") || f.is("UNBLOCKED");
        if lost {
            self.group_ready.store(false, Ordering::Release);
        }
        lost
    }

    fn delivery(&self, entry: Entry, count: u32, now: DateTime<Utc>) -> Delivery {
        let sent_at = entry.id.time();
        let body = match entry.field("body") {
            Some(b) => lossy(b),
            None => entry.fields_json(),
        };
        Delivery {
            message_id: entry.id.to_string(),
            receipt: format!("{}/{count}", entry.id),
            body,
            attributes: entry.fields_but("body"),
            receive_count: count,
            sent_at,
            first_received_at: if count <= 1 { now } else { sent_at },
        }
    }

    /// Runs a receipt script (`ACK`, `RELEASE`) over `receipts`, in chunks,
    /// `head` being its arguments before the id/count pairs. A group or
    /// stream that is gone leaves nothing to settle.
    async fn settle(
        &self,
        script: &Script,
        head: &[String],
        receipts: &[String],
    ) -> Result<(), SourceError> {
        let parsed: Vec<(EntryId, u32)> = receipts
            .iter()
            .filter_map(|r| {
                let p = parse_receipt(r);
                if p.is_none() {
                    tracing::warn!(queue = %self.link.what(), receipt = %r, "Redis: not a receipt of this source");
                }
                p
            })
            .collect();
        for chunk in parsed.chunks(RECEIPTS_PER_CALL) {
            let mut args = head.to_vec();
            for (id, count) in chunk {
                args.push(id.to_string());
                args.push(count.to_string());
            }
            match self.link.script(script, &self.key, &args).await {
                Ok(_) => {}
                Err(f) if self.group_lost(&f) => return Ok(()),
                Err(f) => return Err(f.into()),
            }
        }
        Ok(())
    }
}

/// `<id>/<count>`.
fn parse_receipt(r: &str) -> Option<(EntryId, u32)> {
    let (id, count) = r.split_once('/')?;
    Some((EntryId::parse(id)?, count.parse().ok()?))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The entries reclaimed by `RECLAIM`: `[[count, [id, fields]], …]`.
fn parse_reclaimed(v: &Value) -> Vec<(Entry, u32)> {
    value_items(v)
        .iter()
        .filter_map(|item| {
            let [count, entry] = value_items(item) else {
                return None;
            };
            let count = u32::try_from(value_int(count)?).ok()?;
            Some((super::parse_entry(entry)?, count))
        })
        .collect()
}

#[async_trait]
impl QueueSource for RedisQueue {
    fn describe(&self) -> String {
        self.link.what().to_owned()
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, SourceError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let visibility_ms = millis(visibility);
        self.visibility_ms.store(visibility_ms, Ordering::Relaxed);
        let now = Utc::now();
        let args = [
            self.group.clone(),
            self.consumer.clone(),
            visibility_ms.to_string(),
            max.to_string(),
        ];
        let reclaimed = grouped!(self, self.link.script(&RECLAIM, &self.key, &args))?;
        let mut got = parse_reclaimed(&reclaimed);
        let remaining = max.saturating_sub(got.len());
        if remaining > 0 {
            let block = (got.is_empty() && !wait.is_zero()).then_some(wait);
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(&self.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(remaining);
            if let Some(block) = block {
                cmd.arg("BLOCK").arg(millis(block).max(1));
            }
            cmd.arg("STREAMS").arg(&self.key).arg(">");
            let fresh = match block {
                Some(block) => grouped!(self, self.link.blocking(&cmd, block))?,
                None => grouped!(self, self.link.query(&cmd))?,
            };
            got.extend(parse_read_reply(&fresh).into_iter().map(|e| (e, 1)));
        }
        Ok(got
            .into_iter()
            .map(|(entry, count)| self.delivery(entry, count, now))
            .collect())
    }

    async fn ack(&self, receipts: &[String]) -> Result<(), SourceError> {
        self.settle(&ACK, std::slice::from_ref(&self.group), receipts)
            .await
    }

    async fn release(
        &self,
        receipts: &[String],
        delay: Duration,
        count: bool,
    ) -> Result<(), SourceError> {
        let visibility = self.visibility_ms.load(Ordering::Relaxed);
        let idle = visibility.saturating_sub(millis(delay));
        let head = [
            self.group.clone(),
            self.consumer.clone(),
            idle.to_string(),
            if count { "1" } else { "0" }.to_owned(),
        ];
        self.settle(&RELEASE, &head, receipts).await
    }

    async fn backlog(&self) -> Result<Backlog, SourceError> {
        let groups = grouped!(
            self,
            self.link
                .query(redis::cmd("XINFO").arg("GROUPS").arg(&self.key))
        );
        let groups = match groups {
            Err(SourceError::Refused(_, why)) if why.contains("no such key") => {
                self.group_ready.store(false, Ordering::Release);
                return Err(self.link.refused(NO_STREAM));
            }
            other => other?,
        };
        let mine = value_items(&groups).iter().find_map(|g| {
            let pairs = value_pairs(g);
            let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            (field("name").and_then(value_text).as_deref() == Some(self.group.as_str())).then(
                || {
                    (
                        field("pending").and_then(value_int),
                        field("last-delivered-id")
                            .and_then(value_text)
                            .and_then(|t| EntryId::parse(&t)),
                        field("lag").and_then(value_int),
                    )
                },
            )
        });
        let Some((pending, last_delivered, lag)) = mine else {
            // Deleted meanwhile: set up again by the next call.
            self.group_ready.store(false, Ordering::Release);
            return Err(self.link.refused("the consumer group is gone"));
        };
        let waiting = match lag {
            Some(lag) => lag.max(0) as u64,
            None => self.link.count_after(&self.key, last_delivered).await?,
        };
        // The oldest pending entry, and the next one to deliver.
        let mut pipe = redis::pipe();
        pipe.cmd("XPENDING").arg(&self.key).arg(&self.group);
        let start = match last_delivered {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        pipe.cmd("XRANGE")
            .arg(&self.key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let answers = self.link.pipeline(&pipe).await?;
        let oldest_pending = answers
            .first()
            .and_then(|s| value_items(s).get(1))
            .and_then(value_text)
            .and_then(|t| EntryId::parse(&t));
        let next = answers
            .get(1)
            .and_then(|r| value_items(r).first())
            .and_then(|e| value_items(e).first())
            .and_then(value_text)
            .and_then(|t| EntryId::parse(&t));
        let oldest = match (oldest_pending, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now_ms = Utc::now().timestamp_millis();
        Ok(Backlog {
            waiting,
            in_flight: pending.unwrap_or(0).max(0) as u64,
            oldest_age_s: oldest.map(|id| {
                let sent = i64::try_from(id.ms).unwrap_or(i64::MAX);
                (now_ms.saturating_sub(sent).max(0)) as f64 / 1000.0
            }),
        })
    }
}

/// Reclaims up to `ARGV[4]` entries of group `ARGV[1]` delivered at least
/// `ARGV[3]` ms ago, for consumer `ARGV[2]`: `[[delivery count, entry], …]`
/// (entries deleted from the stream meanwhile leave the group's pending
/// list and are not returned).
static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local out = {}
for _, p in ipairs(pending) do
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], p[1])
  if claimed[1] then
    out[#out + 1] = {p[4] + 1, claimed[1]}
  end
end
return out
"#,
    )
});

/// Acknowledges, for group `ARGV[1]`, each entry `ARGV[i]` still pending
/// with delivery count `ARGV[i + 1]`: how many were.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for i = 2, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][4] == tonumber(ARGV[i + 1]) then
    n = n + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  end
end
return n
"#,
    )
});

/// Releases, for group `ARGV[1]`, each entry `ARGV[i]` still pending with
/// delivery count `ARGV[i + 1]`: claimed by consumer `ARGV[2]` as if
/// delivered `ARGV[3]` ms ago, its count kept (`ARGV[4]` = `1`) or lowered
/// by one (`0`). How many were.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for i = 5, #ARGV, 2 do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  local count = tonumber(ARGV[i + 1])
  if p[1] and p[1][4] == count then
    if ARGV[4] == '0' and count > 0 then count = count - 1 end
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i],
      'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
    n = n + 1
  end
end
return n
"#,
    )
});

/// Deletes the consumers of group `ARGV[1]` other than `ARGV[2]` that have
/// nothing pending and were idle for `ARGV[3]` ms (atomic: a consumer
/// that holds entries is never deleted, which would lose them).
static FORGET_CONSUMERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['name'] ~= ARGV[2] and info['pending'] == 0 and info['idle'] >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    n = n + 1
  end
end
return n
"#,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse() {
        assert_eq!(
            parse_receipt("1700000000000-3/2"),
            Some((EntryId::parse("1700000000000-3").unwrap(), 2))
        );
        for bad in ["", "1-0", "1-0/", "1-0/x", "x/1", "1-0/-1", "1-0/1/2"] {
            assert_eq!(parse_receipt(bad), None, "{bad}");
        }
    }

    #[test]
    fn deliveries_map_fields() {
        let q = RedisBroker::new("redis://127.0.0.1:1")
            .unwrap()
            .queue("orders", "hotswap-t1");
        assert!(q.consumer().starts_with("hotswap-t1-"));
        let now = Utc::now();
        let with_body = Entry {
            id: EntryId::parse("1700000000000-1").unwrap(),
            fields: vec![
                ("body".into(), b"hello".to_vec()),
                ("kind".into(), b"order".to_vec()),
            ],
        };
        let d = q.delivery(with_body, 1, now);
        assert_eq!(d.message_id, "1700000000000-1");
        assert_eq!(d.receipt, "1700000000000-1/1");
        assert_eq!(d.body, "hello");
        assert_eq!(d.attributes.len(), 1);
        assert_eq!(d.attributes["kind"], "order");
        assert_eq!(d.sent_at.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(d.first_received_at, now);
        let without = Entry {
            id: EntryId::parse("1700000000000-2").unwrap(),
            fields: vec![("a".into(), b"1".to_vec())],
        };
        let d = q.delivery(without, 3, now);
        assert_eq!(d.body, r#"{"a":"1"}"#);
        assert_eq!(
            (d.receive_count, d.receipt.as_str()),
            (3, "1700000000000-2/3")
        );
        assert_eq!(d.first_received_at, d.sent_at);
    }

    #[test]
    fn reclaimed_replies_parse() {
        let entry = Value::Array(vec![
            Value::BulkString(b"5-0".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"body".to_vec()),
                Value::BulkString(b"x".to_vec()),
            ]),
        ]);
        let v = Value::Array(vec![
            Value::Array(vec![Value::Int(2), entry]),
            Value::Array(vec![Value::Int(-1), Value::Nil]),
            Value::Nil,
        ]);
        let got = parse_reclaimed(&v);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0.id.to_string(), got[0].1), ("5-0".to_owned(), 2));
    }
}
