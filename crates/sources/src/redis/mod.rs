//! Redis Streams, as a queue ([`RedisQueue`], a Queue trigger's
//! `source: "redis"`) and as a stream ([`RedisStream`], a Stream trigger's
//! `source: "redis"`). Both read an existing Redis stream: HotSwap creates no
//! stream (a missing key, or a key that is not a stream, is
//! [`SourceError::Refused`]); the only object it creates is a queue
//! trigger's consumer group.
//!
//! # Connections
//!
//! One [`RedisBroker`] stands for the server of `--redis-url`; every source
//! made from it shares one multiplexed connection (the `redis` crate's
//! `ConnectionManager`). Nothing is connected before the first call; a
//! connection that breaks is replaced by itself, so after
//! [`SourceError::Unavailable`] the next call simply tries again (the
//! manager retries a connection twice, with a short exponential backoff,
//! before it gives up; the consumer's pause does the rest). Blocking reads
//! (`XREADGROUP … BLOCK`, `XREAD … BLOCK`) would hold up every other command
//! of a multiplexed connection, so they go over a small pool of dedicated
//! connections instead (one per concurrent wait, up to eight kept idle).
//!
//! # Errors
//!
//! [`SourceError::Unavailable`]: the server cannot be reached, the
//! connection broke or timed out, or the server answers that it cannot
//! serve now (`LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `READONLY`…).
//! [`SourceError::Refused`]: every other answer (no such stream, a key of
//! another type, `NOPERM`, a failed authentication, an invalid URL,
//! position or reply).
//!
//! # Entries
//!
//! A stream entry is an id (`<ms>-<seq>`, the milliseconds being when Redis
//! added it) and an ordered list of field/value pairs of bytes. How a queue
//! message and a stream record are read from it is told in [`RedisQueue`]
//! and [`RedisStream`]; wherever an entry is shown "as JSON", it is a JSON
//! object of its fields whose values are the bytes read as UTF-8 (invalid
//! sequences replaced by U+FFFD), a repeated field keeping its last value.
//!
//! Redis 7.0 or later is expected (`XPENDING … IDLE` and exclusive ranges
//! need 6.2; a consumer group's `lag` needs 7.0).

mod queue;
mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, Script, ServerErrorKind, Value,
};

pub use queue::RedisQueue;
pub use stream::RedisStream;

use crate::SourceError;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a (non-blocking) command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than its `BLOCK` a blocking read may take to answer.
const BLOCK_GRACE: Duration = Duration::from_secs(3);
/// Idle dedicated connections kept for blocking reads.
const IDLE_BLOCKING_CONNECTIONS: usize = 8;
/// Entries counted one by one, at most, on each side of a position (see
/// [`Link::count_after`]).
const COUNT_CAP: u64 = 100_000;
/// Entries counted by one call of the counting script (it blocks Redis
/// while it runs).
const COUNT_CHUNK: u64 = 10_000;

/// A Redis server the sources read from (`--redis-url`). Cheap to clone:
/// clones share the connections.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// `host:port` (never the URL: it may hold a password).
    address: String,
    manager: tokio::sync::Mutex<Option<ConnectionManager>>,
    blocking: Mutex<Vec<MultiplexedConnection>>,
    /// Tells this broker's consumers from other servers' in a group.
    instance: String,
}

impl fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBroker")
            .field("address", &self.inner.address)
            .field("instance", &self.inner.instance)
            .finish()
    }
}

impl RedisBroker {
    /// A broker for `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://…`, `unix://…`). Nothing is connected yet: an unreachable
    /// server shows on the sources' first calls. An invalid URL is
    /// [`SourceError::Refused`].
    pub fn new(url: &str) -> Result<RedisBroker, SourceError> {
        let client = Client::open(url)
            .map_err(|e| SourceError::Refused("Redis URL".into(), error_text(&e)))?;
        let address = client.get_connection_info().addr().to_string();
        Ok(RedisBroker {
            inner: Arc::new(Inner {
                client,
                address,
                manager: tokio::sync::Mutex::new(None),
                blocking: Mutex::new(Vec::new()),
                instance: random_suffix(),
            }),
        })
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// A queue over the existing stream `key`, consumed by consumer group
    /// `group` (`hotswap-{triggerId}`), created when missing.
    pub fn queue(&self, key: &str, group: &str) -> RedisQueue {
        RedisQueue::on(self.clone(), key, group)
    }

    /// A stream over the existing stream `key`, read by position.
    pub fn stream(&self, key: &str) -> RedisStream {
        RedisStream::on(self.clone(), key)
    }

    pub(crate) fn instance(&self) -> &str {
        &self.inner.instance
    }
}

/// 48 random bits in hex (from the standard library's randomly keyed
/// hasher, the time and the process id).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A failed command: the source's error, and the server's error code when
/// the server answered (`NOGROUP`, `WRONGTYPE`…) for callers that handle
/// some answers themselves.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: SourceError,
    pub(crate) code: Option<String>,
    pub(crate) detail: String,
}

impl Failure {
    pub(crate) fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl From<Failure> for SourceError {
    fn from(f: Failure) -> SourceError {
        f.error
    }
}

/// `CODE detail` of a server's answer, the error's text otherwise.
fn error_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    }
}

/// Whether an error means "not now" rather than "no".
fn is_transient(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly,
        ) => true,
        ErrorKind::Extension => matches!(e.code(), Some("BUSY")),
        _ => e.is_timeout() || e.is_connection_dropped(),
    }
}

/// What a source uses to talk to Redis, with its name for errors.
#[derive(Clone)]
pub(crate) struct Link {
    broker: RedisBroker,
    what: String,
}

impl Link {
    pub(crate) fn new(broker: RedisBroker, what: String) -> Link {
        Link { broker, what }
    }

    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    pub(crate) fn refused(&self, why: impl Into<String>) -> SourceError {
        SourceError::Refused(self.what.clone(), why.into())
    }

    fn fail(&self, e: &RedisError) -> Failure {
        let detail = error_text(e);
        let error = if is_transient(e) {
            SourceError::Unavailable(
                format!("{} at {}", self.what, self.broker.inner.address),
                detail.clone(),
            )
        } else {
            SourceError::Refused(self.what.clone(), detail.clone())
        };
        Failure {
            error,
            code: e.code().map(str::to_owned),
            detail,
        }
    }

    fn timed_out(&self, what: &str) -> Failure {
        let detail = format!("no answer to {what} in time");
        Failure {
            error: SourceError::Unavailable(
                format!("{} at {}", self.what, self.broker.inner.address),
                detail.clone(),
            ),
            code: None,
            detail,
        }
    }

    /// The shared connection, connected on first use.
    async fn manager(&self) -> Result<ConnectionManager, Failure> {
        let mut slot = self.broker.inner.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let m = ConnectionManager::new_with_config(self.broker.inner.client.clone(), config)
            .await
            .map_err(|e| self.fail(&e))?;
        *slot = Some(m.clone());
        Ok(m)
    }

    /// One command on the shared connection.
    pub(crate) async fn query(&self, cmd: &Cmd) -> Result<Value, Failure> {
        let mut con = self.manager().await?;
        cmd.query_async::<Value>(&mut con)
            .await
            .map_err(|e| self.fail(&e))
    }

    /// Commands in one round trip on the shared connection.
    pub(crate) async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<Vec<Value>, Failure> {
        let mut con = self.manager().await?;
        pipe.query_async::<Vec<Value>>(&mut con)
            .await
            .map_err(|e| self.fail(&e))
    }

    /// A Lua script (`EVALSHA`, loaded when Redis does not know it) on the
    /// shared connection.
    pub(crate) async fn script(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
    ) -> Result<Value, Failure> {
        let mut con = self.manager().await?;
        let mut call = script.prepare_invoke();
        call.key(key);
        for a in args {
            call.arg(a);
        }
        call.invoke_async::<Value>(&mut con)
            .await
            .map_err(|e| self.fail(&e))
    }

    /// A blocking command (its `BLOCK` being `block`) on a dedicated
    /// connection. A pooled connection found dead is replaced once.
    pub(crate) async fn blocking(&self, cmd: &Cmd, block: Duration) -> Result<Value, Failure> {
        let pooled = self.pool().pop();
        let fresh = pooled.is_none();
        let con = match pooled {
            Some(con) => con,
            None => self.dedicated().await?,
        };
        match self.blocking_on(con, cmd, block).await {
            Err((_, true)) if !fresh => {
                let con = self.dedicated().await?;
                self.blocking_on(con, cmd, block).await.map_err(|(f, _)| f)
            }
            Err((f, _)) => Err(f),
            Ok(v) => Ok(v),
        }
    }

    /// Runs `cmd` on `con`, returned to the pool when still usable; on
    /// error, whether the connection was dead.
    async fn blocking_on(
        &self,
        mut con: MultiplexedConnection,
        cmd: &Cmd,
        block: Duration,
    ) -> Result<Value, (Failure, bool)> {
        let answer =
            tokio::time::timeout(block + BLOCK_GRACE, cmd.query_async::<Value>(&mut con)).await;
        match answer {
            Err(_) => Err((self.timed_out("a blocking read"), false)),
            Ok(Ok(v)) => {
                self.give_back(con);
                Ok(v)
            }
            Ok(Err(e)) => {
                let dead = e.is_io_error() || e.is_connection_dropped() || e.is_timeout();
                if !dead {
                    self.give_back(con);
                }
                Err((self.fail(&e), dead))
            }
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        self.broker
            .inner
            .blocking
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn give_back(&self, con: MultiplexedConnection) {
        let mut pool = self.pool();
        if pool.len() < IDLE_BLOCKING_CONNECTIONS {
            pool.push(con);
        }
    }

    async fn dedicated(&self) -> Result<MultiplexedConnection, Failure> {
        // No response timeout: the caller bounds the wait (block + grace).
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        self.broker
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.fail(&e))
    }

    /// `Ok` when `key` holds a stream; [`SourceError::Refused`] when it
    /// does not exist or holds something else.
    pub(crate) async fn ensure_stream(&self, key: &str) -> Result<(), SourceError> {
        let t = self.query(redis::cmd("TYPE").arg(key)).await?;
        match value_text(&t).as_deref() {
            Some("stream") => Ok(()),
            Some("none") => Err(self.refused(NO_STREAM)),
            Some(other) => Err(self.refused(format!("the key holds a {other}, not a stream"))),
            None => Err(self.refused("unexpected answer to TYPE")),
        }
    }

    /// How many entries of stream `key` come after `after` (all of them
    /// for `None`). Exact when either side of `after` holds at most
    /// [`COUNT_CAP`] entries (the smaller side is counted, in chunks, by a
    /// script); beyond that, an estimate from the ids' times, kept within
    /// the bounds the counting proved.
    pub(crate) async fn count_after(
        &self,
        key: &str,
        after: Option<EntryId>,
    ) -> Result<u64, Failure> {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(key);
        pipe.cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        pipe.cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let answers = self.pipeline(&pipe).await?;
        let len = answers.first().and_then(value_int).unwrap_or(0).max(0) as u64;
        let first = answers.get(1).and_then(first_id);
        let last = answers.get(2).and_then(first_id);
        let (Some(after), Some(first), Some(last)) = (after, first, last) else {
            // No position: everything; an empty stream: nothing.
            return Ok(if first.is_some() { len } else { 0 });
        };
        if last <= after {
            return Ok(0);
        }
        if after < first {
            return Ok(len);
        }
        let (ahead, done) = self
            .count_range(key, &format!("({after}"), "+", false)
            .await?;
        if done {
            return Ok(ahead);
        }
        let (behind, done) = self.count_range(key, &after.to_string(), "-", true).await?;
        if done {
            return Ok(len.saturating_sub(behind));
        }
        // Both sides hold more than COUNT_CAP entries.
        let span = last.ms.saturating_sub(first.ms).max(1) as f64;
        let share = last.ms.saturating_sub(after.ms) as f64 / span;
        let estimate = (len as f64 * share) as u64;
        Ok(estimate.clamp(COUNT_CAP, len.saturating_sub(COUNT_CAP).max(COUNT_CAP)))
    }

    /// Counts entries from `start` towards `stop` (backwards with
    /// `XREVRANGE`), at most [`COUNT_CAP`]; whether the end was reached.
    async fn count_range(
        &self,
        key: &str,
        start: &str,
        stop: &str,
        backwards: bool,
    ) -> Result<(u64, bool), Failure> {
        let mut total = 0;
        let mut start = start.to_owned();
        while total < COUNT_CAP {
            let chunk = COUNT_CHUNK.min(COUNT_CAP - total);
            let args = [
                start.clone(),
                stop.to_owned(),
                chunk.to_string(),
                if backwards { "b" } else { "f" }.to_owned(),
            ];
            let answer = self.script(&COUNT, key, &args).await?;
            let parts = match &answer {
                Value::Array(parts) => parts.as_slice(),
                _ => &[],
            };
            let n = parts.first().and_then(value_int).unwrap_or(0).max(0) as u64;
            total += n;
            match parts.get(1).and_then(value_text) {
                Some(next) if !next.is_empty() && n > 0 => start = next,
                _ => return Ok((total, true)),
            }
        }
        Ok((total, false))
    }
}

pub(crate) const NO_STREAM: &str = "the stream does not exist (HotSwap creates no broker objects)";

/// Counts the entries of stream `KEYS[1]` from `ARGV[1]` towards `ARGV[2]`
/// (`XRANGE`, or `XREVRANGE` when `ARGV[4]` is `b`), at most `ARGV[3]`:
/// `{count, where to go on ('' when the end was reached)}`.
static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local start, stop, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local command = 'XRANGE'
if ARGV[4] == 'b' then command = 'XREVRANGE' end
local n = 0
while n < limit do
  local want = math.min(1000, limit - n)
  local got = redis.call(command, KEYS[1], start, stop, 'COUNT', want)
  n = n + #got
  if #got < want then return {n, ''} end
  start = '(' .. got[#got][1]
end
return {n, start}
"#,
    )
});

/// A stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct EntryId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl EntryId {
    pub(crate) const MAX: EntryId = EntryId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// `<ms>-<seq>`, both decimal (the only form entries have).
    pub(crate) fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// When Redis added the entry (the epoch when out of range).
    pub(crate) fn time(&self) -> DateTime<Utc> {
        i64::try_from(self.ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One stream entry as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: EntryId,
    /// Field names (read as UTF-8, lossy) and values, in order.
    pub(crate) fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// The value of field `name` (the last one when repeated).
    pub(crate) fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The fields as a JSON object (values lossy UTF-8, the last of a
    /// repeated field).
    pub(crate) fn fields_json(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(lossy(v))))
            .collect();
        serde_json::Value::Object(object).to_string()
    }

    /// The fields but `except`, as text (the last of a repeated field).
    pub(crate) fn fields_but(&self, except: &str) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter(|(k, _)| k != except)
            .map(|(k, v)| (k.clone(), lossy(v)))
            .collect()
    }
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The bytes of a string-like reply.
pub(crate) fn value_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

/// A string-like reply as text (lossy).
pub(crate) fn value_text(v: &Value) -> Option<String> {
    value_bytes(v).map(|b| lossy(&b))
}

/// An integer reply (or a string of one).
pub(crate) fn value_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Double(d) if d.is_finite() => Some(*d as i64),
        other => value_text(other)?.trim().parse().ok(),
    }
}

/// The items of an array-like reply.
pub(crate) fn value_items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// The pairs of a map reply, or of an array of alternating keys and
/// values (RESP2's form of a map).
pub(crate) fn value_pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((value_text(k)?, v)))
            .collect(),
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|kv| Some((value_text(&kv[0])?, &kv[1])))
            .collect(),
        _ => Vec::new(),
    }
}

/// An entry, `[id, [field, value, …]]`; `None` when malformed or when its
/// fields are nil (an entry deleted since).
pub(crate) fn parse_entry(v: &Value) -> Option<Entry> {
    let [id, fields] = value_items(v) else {
        return None;
    };
    let id = EntryId::parse(&value_text(id)?)?;
    let fields = match fields {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| Some((value_text(k)?, value_bytes(v)?)))
            .collect::<Option<Vec<_>>>()?,
        Value::Array(items) => items
            .chunks_exact(2)
            .map(|kv| Some((value_text(&kv[0])?, value_bytes(&kv[1])?)))
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some(Entry { id, fields })
}

/// The entries of an `XRANGE`-like reply, malformed ones left out (and
/// logged).
pub(crate) fn parse_entries(v: &Value) -> Vec<Entry> {
    value_items(v)
        .iter()
        .filter_map(|e| {
            let entry = parse_entry(e);
            if entry.is_none() && !matches!(value_items(e), [_, Value::Nil]) {
                tracing::warn!(entry = ?e, "Redis: an unreadable stream entry is skipped");
            }
            entry
        })
        .collect()
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one key (nil when the
/// wait ended with nothing).
pub(crate) fn parse_read_reply(v: &Value) -> Vec<Entry> {
    match v {
        Value::Map(pairs) => pairs
            .first()
            .map(|(_, entries)| parse_entries(entries))
            .unwrap_or_default(),
        Value::Array(streams) => streams
            .first()
            .and_then(|s| value_items(s).get(1))
            .map(parse_entries)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The id of the first entry of an `XRANGE`-like reply.
fn first_id(v: &Value) -> Option<EntryId> {
    let first = value_items(v).first()?;
    EntryId::parse(&value_text(value_items(first).first()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[(&str, &[u8])]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(
                fields
                    .iter()
                    .flat_map(|(k, v)| [bulk(k), Value::BulkString(v.to_vec())])
                    .collect(),
            ),
        ])
    }

    #[test]
    fn entry_ids_parse_and_order() {
        let a = EntryId::parse("1700000000000-5").unwrap();
        assert_eq!((a.ms, a.seq), (1_700_000_000_000, 5));
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(a < EntryId::parse("1700000000000-10").unwrap());
        assert!(a < EntryId::parse("1700000000001-0").unwrap());
        assert_eq!(a.time().timestamp_millis(), 1_700_000_000_000);
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "a-1",
            "1-b",
            "1-2-3",
            "+1-2",
            "99999999999999999999-0",
        ] {
            assert_eq!(EntryId::parse(bad), None, "{bad}");
        }
        assert_eq!(EntryId::MAX.time(), DateTime::<Utc>::UNIX_EPOCH);
    }

    #[test]
    fn entries_are_read_whatever_their_bytes() {
        let v = Value::Array(vec![
            entry("1-0", &[("body", b"hi"), ("a", b"\xff1")]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
            bulk("garbage"),
            entry("3-1", &[("x", b"1"), ("x", b"2")]),
        ]);
        let entries = parse_entries(&v);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, EntryId { ms: 1, seq: 0 });
        assert_eq!(entries[0].field("body"), Some(&b"hi"[..]));
        assert_eq!(
            entries[0].fields_but("body"),
            BTreeMap::from([("a".to_owned(), "\u{fffd}1".to_owned())])
        );
        assert_eq!(entries[1].field("x"), Some(&b"2"[..]));
        assert_eq!(entries[1].fields_json(), r#"{"x":"2"}"#);
        assert_eq!(
            entries[0].fields_json(),
            "{\"a\":\"\u{fffd}1\",\"body\":\"hi\"}"
        );
    }

    #[test]
    fn read_replies_in_both_protocols() {
        let entries = Value::Array(vec![entry("5-0", &[("k", b"v")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("s"), entries)]);
        for v in [resp2, resp3] {
            let got = parse_read_reply(&v);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].id.to_string(), "5-0");
        }
        assert!(parse_read_reply(&Value::Nil).is_empty());
        assert!(parse_read_reply(&Value::Int(3)).is_empty());
    }

    #[test]
    fn map_replies_in_both_protocols() {
        let flat = Value::Array(vec![
            bulk("name"),
            bulk("g"),
            bulk("pending"),
            Value::Int(2),
        ]);
        let map = Value::Map(vec![
            (bulk("name"), bulk("g")),
            (bulk("pending"), Value::Int(2)),
        ]);
        for v in [flat, map] {
            let pairs = value_pairs(&v);
            assert_eq!(pairs.len(), 2);
            assert_eq!(value_text(pairs[0].1).as_deref(), Some("g"));
            assert_eq!(value_int(pairs[1].1), Some(2));
        }
    }

    #[test]
    fn errors_are_classified() {
        let refused: RedisError = (ErrorKind::Server(ServerErrorKind::ResponseError), "x").into();
        assert!(!is_transient(&refused));
        let loading: RedisError = (ErrorKind::Server(ServerErrorKind::BusyLoading), "x").into();
        assert!(is_transient(&loading));
        let io: RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert!(is_transient(&io));
        assert!(RedisBroker::new("not a url").is_err());
        let b = RedisBroker::new("redis://user:secret@example.com:6380/2").unwrap();
        assert_eq!(b.address(), "example.com:6380");
        assert!(!format!("{b:?}").contains("secret"));
        assert_ne!(random_suffix(), random_suffix());
    }
}
