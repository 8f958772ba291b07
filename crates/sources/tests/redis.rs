//! The Redis sources against the Redis server of this machine
//! (redis://127.0.0.1:6379; CI starts it: if it is not there, these tests
//! fail). Every test works on streams of its own, named with a random
//! suffix, deleted afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hotswap_domain::trigger::source::StartingPosition;
use hotswap_sources::redis::{RedisBroker, RedisQueue, RedisStream};
use hotswap_sources::{QueueSource, SourceError, StreamSource};
use redis::aio::MultiplexedConnection;
use redis::Value;

const URL: &str = "redis://127.0.0.1:6379";
const LONG: Duration = Duration::from_secs(30);
const NO_WAIT: Duration = Duration::ZERO;

/// A stream key of the test's own, deleted when dropped (even when the
/// test fails).
struct Key(String);

impl Key {
    fn new(name: &str) -> Key {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Key(format!(
            "hotswap-test-{name}-{nanos:x}-{}",
            std::process::id()
        ))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        let client = redis::Client::open(URL).unwrap();
        if let Ok(mut con) = client.get_connection() {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&self.0).query(&mut con);
        }
    }
}

async fn con() -> MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the Redis server at 127.0.0.1:6379 must run for these tests")
}

/// `XADD key id field value …`; the entry's id.
async fn add(
    con: &mut MultiplexedConnection,
    key: &str,
    id: &str,
    fields: &[(&str, &[u8])],
) -> String {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg(id);
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(con).await.unwrap()
}

async fn add_bodies(
    con: &mut MultiplexedConnection,
    key: &str,
    bodies: impl Iterator<Item = String>,
) {
    let mut pipe = redis::pipe();
    for b in bodies {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("body")
            .arg(b)
            .ignore();
    }
    let () = pipe.query_async(con).await.unwrap();
}

/// The group's pending entries: `(id, delivery count)`.
async fn pending(con: &mut MultiplexedConnection, key: &str, group: &str) -> Vec<(String, i64)> {
    let v: Vec<(String, String, i64, i64)> = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(con)
        .await
        .unwrap();
    v.into_iter().map(|(id, _, _, count)| (id, count)).collect()
}

async fn xlen(con: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("XLEN").arg(key).query_async(con).await.unwrap()
}

fn queue(key: &Key) -> RedisQueue {
    RedisQueue::new(URL, &key.0, "hotswap-t1").unwrap()
}

fn receipts(d: &[hotswap_sources::Delivery]) -> Vec<String> {
    d.iter().map(|d| d.receipt.clone()).collect()
}

// ---------------------------------------------------------------- queue

#[tokio::test]
async fn a_thousand_entries_are_each_received_once_when_acknowledged() {
    let key = Key::new("q1000");
    let mut c = con().await;
    add_bodies(&mut c, &key.0, (0..1000).map(|i| i.to_string())).await;
    let q = queue(&key);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let batch = q.receive(100, LONG, NO_WAIT).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.iter().all(|d| d.receive_count == 1));
        seen.extend(batch.iter().map(|d| d.body.parse::<u32>().unwrap()));
        q.ack(&receipts(&batch)).await.unwrap();
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>(), "each once, in order");
    assert!(q.receive(100, LONG, NO_WAIT).await.unwrap().is_empty());
    assert!(pending(&mut c, &key.0, "hotswap-t1").await.is_empty());
    // Acknowledged, not deleted: other groups may read the stream.
    assert_eq!(xlen(&mut c, &key.0).await, 1000);
    let b = q.backlog().await.unwrap();
    assert_eq!((b.waiting, b.in_flight, b.oldest_age_s), (0, 0, None));
}

#[tokio::test]
async fn entries_become_messages_with_attributes() {
    let key = Key::new("qattr");
    let mut c = con().await;
    let with_body = add(
        &mut c,
        &key.0,
        "*",
        &[("body", b"hello"), ("kind", b"order"), ("n", b"\xff7")],
    )
    .await;
    let without = add(&mut c, &key.0, "*", &[("a", b"1"), ("b", b"two")]).await;
    let binary = add(&mut c, &key.0, "*", &[("body", b"caf\xe9")]).await;
    let q = queue(&key);
    let got = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].message_id, with_body);
    assert_eq!(got[0].body, "hello");
    assert_eq!(
        got[0].attributes,
        BTreeMap::from([
            ("kind".to_owned(), "order".to_owned()),
            ("n".to_owned(), "\u{fffd}7".to_owned())
        ])
    );
    assert_eq!(got[0].receipt, format!("{with_body}/1"));
    let ms: i64 = with_body.split('-').next().unwrap().parse().unwrap();
    assert_eq!(got[0].sent_at.timestamp_millis(), ms);
    assert!(got[0].first_received_at >= got[0].sent_at);
    assert_eq!(got[1].message_id, without);
    let json: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(json, serde_json::json!({"a": "1", "b": "two"}));
    assert_eq!(got[1].attributes.len(), 2);
    assert_eq!(got[2].message_id, binary);
    assert_eq!(got[2].body, "caf\u{fffd}");
    assert!(got[2].attributes.is_empty());
}

#[tokio::test]
async fn a_released_entry_comes_back_after_its_delay_counted() {
    let key = Key::new("qrelease");
    let mut c = con().await;
    let id = add(&mut c, &key.0, "*", &[("body", b"x")]).await;
    let q = queue(&key);
    let first = q
        .receive(10, Duration::from_secs(10), NO_WAIT)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    q.release(&receipts(&first), Duration::from_millis(1200), true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        q.receive(10, Duration::from_secs(10), NO_WAIT)
            .await
            .unwrap()
            .is_empty(),
        "not before the delay"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = q
        .receive(10, Duration::from_secs(10), NO_WAIT)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].message_id.as_str(), again[0].receive_count),
        (id.as_str(), 2)
    );
    assert_eq!(again[0].body, "x");
    assert_eq!(again[0].receipt, format!("{id}/2"));
    q.ack(&receipts(&again)).await.unwrap();
    assert!(pending(&mut c, &key.0, "hotswap-t1").await.is_empty());
}

#[tokio::test]
async fn an_unacknowledged_entry_comes_back_after_the_visibility_timeout() {
    let key = Key::new("qvis");
    let mut c = con().await;
    add(&mut c, &key.0, "*", &[("body", b"a")]).await;
    add(&mut c, &key.0, "*", &[("body", b"b")]).await;
    let q = queue(&key);
    let vis = Duration::from_millis(700);
    let first = q.receive(10, vis, NO_WAIT).await.unwrap();
    assert_eq!(first.len(), 2);
    q.ack(&receipts(&first[..1])).await.unwrap();
    assert!(
        q.receive(10, vis, NO_WAIT).await.unwrap().is_empty(),
        "invisible while in flight"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = q.receive(10, vis, NO_WAIT).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].body.as_str(), again[0].receive_count), ("b", 2));
    assert_eq!(again[0].message_id, first[1].message_id);
    assert_ne!(again[0].receipt, first[1].receipt);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let third = q.receive(10, vis, NO_WAIT).await.unwrap();
    assert_eq!(third[0].receive_count, 3);
}

#[tokio::test]
async fn an_uncounted_release_keeps_the_count() {
    let key = Key::new("qnocount");
    let mut c = con().await;
    add(&mut c, &key.0, "*", &[("body", b"x")]).await;
    let q = queue(&key);
    let first = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(first[0].receive_count, 1);
    q.release(&receipts(&first), NO_WAIT, false).await.unwrap();
    let again = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].receive_count, 1,
        "the throttled receive was taken back"
    );
    q.release(&receipts(&again), NO_WAIT, true).await.unwrap();
    let counted = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(counted[0].receive_count, 2);
    q.release(&receipts(&counted), NO_WAIT, false)
        .await
        .unwrap();
    let kept = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(kept[0].receive_count, 2);
    assert_eq!(pending(&mut c, &key.0, "hotswap-t1").await[0].1, 2);
}

#[tokio::test]
async fn a_stale_receipt_acknowledges_nothing() {
    let key = Key::new("qstale");
    let mut c = con().await;
    let id = add(&mut c, &key.0, "*", &[("body", b"x")]).await;
    let q = queue(&key);
    let vis = Duration::from_millis(400);
    let first = q.receive(10, vis, NO_WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Delivered again (here to another server).
    let other = RedisQueue::new(URL, &key.0, "hotswap-t1").unwrap();
    let again = other.receive(10, vis, NO_WAIT).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    q.ack(&receipts(&first)).await.unwrap();
    assert_eq!(
        pending(&mut c, &key.0, "hotswap-t1").await,
        [(id.clone(), 2)]
    );
    // Nor does a stale release make it visible.
    q.release(&receipts(&first), NO_WAIT, false).await.unwrap();
    assert!(q.receive(10, vis, NO_WAIT).await.unwrap().is_empty());
    assert_eq!(pending(&mut c, &key.0, "hotswap-t1").await, [(id, 2)]);
    // Receipts that are not this source's are ignored.
    q.ack(&["nonsense".into(), String::new()]).await.unwrap();
    other.ack(&receipts(&again)).await.unwrap();
    assert!(pending(&mut c, &key.0, "hotswap-t1").await.is_empty());
}

#[tokio::test]
async fn two_servers_never_hold_the_same_entry_at_once() {
    let key = Key::new("qtwo");
    let mut c = con().await;
    add_bodies(&mut c, &key.0, (0..300).map(|i| i.to_string())).await;
    let a = Arc::new(RedisBroker::new(URL).unwrap().queue(&key.0, "hotswap-t1"));
    let b = Arc::new(RedisBroker::new(URL).unwrap().queue(&key.0, "hotswap-t1"));
    assert_ne!(a.consumer(), b.consumer());
    // Round 1: new entries, both at once; nothing acknowledged.
    let vis = Duration::from_secs(3);
    let drain = |q: Arc<RedisQueue>| async move {
        let mut got = Vec::new();
        loop {
            let batch = q.receive(7, vis, NO_WAIT).await.unwrap();
            if batch.is_empty() {
                return got;
            }
            got.extend(batch);
        }
    };
    let (ga, gb) = tokio::join!(
        tokio::spawn(drain(a.clone())),
        tokio::spawn(drain(b.clone()))
    );
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    let ids = |v: &[hotswap_sources::Delivery]| {
        v.iter()
            .map(|d| d.message_id.clone())
            .collect::<BTreeSet<_>>()
    };
    assert!(ids(&ga).is_disjoint(&ids(&gb)));
    assert_eq!(ga.len() + gb.len(), 300);
    assert_eq!(ids(&ga).len() + ids(&gb).len(), 300);
    // Round 2: all expire; both reclaim at once.
    tokio::time::sleep(vis + Duration::from_millis(200)).await;
    let (ra, rb) = tokio::join!(
        tokio::spawn(drain(a.clone())),
        tokio::spawn(drain(b.clone()))
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ids(&ra).is_disjoint(&ids(&rb)));
    assert_eq!(ra.len() + rb.len(), 300);
    assert!(ra.iter().chain(&rb).all(|d| d.receive_count == 2));
    a.ack(&receipts(&ra)).await.unwrap();
    b.ack(&receipts(&rb)).await.unwrap();
    assert!(pending(&mut c, &key.0, "hotswap-t1").await.is_empty());
}

#[tokio::test]
async fn a_receive_waits_for_the_first_entry() {
    let key = Key::new("qwait");
    let mut c = con().await;
    add(&mut c, &key.0, "*", &[("body", b"first")]).await;
    let q = queue(&key);
    let first = q.receive(10, LONG, NO_WAIT).await.unwrap();
    q.ack(&receipts(&first)).await.unwrap();
    // Nothing: returns after about `wait`.
    let t = Instant::now();
    assert!(q
        .receive(10, LONG, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // An entry added while waiting ends the wait.
    let k = key.0.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        add(&mut con().await, &k, "*", &[("body", b"late")]).await;
    });
    let t = Instant::now();
    let got = q.receive(10, LONG, Duration::from_secs(5)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "late");
    // Meanwhile the shared connection was free.
    let waiting = {
        let q2 = queue(&key);
        tokio::spawn(async move { q2.receive(10, LONG, Duration::from_secs(2)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    q.backlog().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(waiting.await.unwrap().unwrap().is_empty());
}

#[tokio::test]
async fn the_backlog_counts_waiting_and_in_flight_entries() {
    let key = Key::new("qbacklog");
    let mut c = con().await;
    let now = Utc::now().timestamp_millis();
    add(
        &mut c,
        &key.0,
        &format!("{}-0", now - 60_000),
        &[("body", b"old")],
    )
    .await;
    add_bodies(&mut c, &key.0, (0..4).map(|i| i.to_string())).await;
    let q = queue(&key);
    let b = q.backlog().await.unwrap();
    assert_eq!((b.waiting, b.in_flight), (5, 0));
    let age = b.oldest_age_s.unwrap();
    assert!((59.0..120.0).contains(&age), "{age}");
    let got = q.receive(2, LONG, NO_WAIT).await.unwrap();
    let b = q.backlog().await.unwrap();
    assert_eq!((b.waiting, b.in_flight), (3, 2));
    assert!(b.oldest_age_s.unwrap() >= 59.0);
    q.ack(&receipts(&got)).await.unwrap();
    let b = q.backlog().await.unwrap();
    assert_eq!((b.waiting, b.in_flight), (3, 0));
    assert!(b.oldest_age_s.unwrap() < 59.0);
    // Deleting an undelivered entry leaves Redis unable to tell the lag:
    // it is counted.
    let next: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&key.0)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XDEL")
        .arg(&key.0)
        .arg(&next[3].0)
        .query_async(&mut c)
        .await
        .unwrap();
    let b = q.backlog().await.unwrap();
    assert_eq!((b.waiting, b.in_flight), (2, 0));
}

#[tokio::test]
async fn a_missing_stream_is_refused_and_not_created() {
    let key = Key::new("qmissing");
    let mut c = con().await;
    let q = queue(&key);
    let e = q.receive(10, LONG, NO_WAIT).await.unwrap_err();
    assert!(
        matches!(&e, SourceError::Refused(_, why) if why.contains("does not exist")),
        "{e:?}"
    );
    assert!(matches!(q.backlog().await, Err(SourceError::Refused(..))));
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key.0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    // A key of another type.
    let _: () = redis::cmd("SET")
        .arg(&key.0)
        .arg("x")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(matches!(
        q.receive(10, LONG, NO_WAIT).await,
        Err(SourceError::Refused(..))
    ));
    let _: i64 = redis::cmd("DEL")
        .arg(&key.0)
        .query_async(&mut c)
        .await
        .unwrap();
    // Created by its owner later: the same source now works.
    add(&mut c, &key.0, "*", &[("body", b"now")]).await;
    let got = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(got[0].body, "now");
}

#[tokio::test]
async fn a_deleted_group_is_created_again() {
    let key = Key::new("qgroup");
    let mut c = con().await;
    add(&mut c, &key.0, "*", &[("body", b"a")]).await;
    let q = queue(&key);
    let first = q.receive(10, LONG, NO_WAIT).await.unwrap();
    q.ack(&receipts(&first)).await.unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&key.0)
        .arg("hotswap-t1")
        .query_async(&mut c)
        .await
        .unwrap();
    // Again from the stream's start (at least once).
    let again = q.receive(10, LONG, NO_WAIT).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, "a");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let q = RedisQueue::new("redis://127.0.0.1:1", "orders", "hotswap-t1").unwrap();
    for _ in 0..2 {
        let e = q.receive(10, LONG, NO_WAIT).await.unwrap_err();
        assert!(matches!(e, SourceError::Unavailable(..)), "{e:?}");
    }
    assert!(matches!(
        q.ack(&["1-0/1".into()]).await,
        Err(SourceError::Unavailable(..))
    ));
    let s = RedisStream::new("redis://127.0.0.1:1", "clicks").unwrap();
    assert!(matches!(
        s.read(0, "", 10, NO_WAIT).await,
        Err(SourceError::Unavailable(..))
    ));
    assert!(matches!(
        s.shards().await,
        Err(SourceError::Unavailable(..))
    ));
    assert!(matches!(
        RedisQueue::new("nope://x", "k", "g"),
        Err(SourceError::Refused(..))
    ));
}

// --------------------------------------------------------------- stream

#[tokio::test]
async fn starting_positions() {
    let key = Key::new("spos");
    let mut c = con().await;
    for id in ["1000-0", "2000-0", "2000-1", "3000-0"] {
        add(&mut c, &key.0, id, &[("data", id.as_bytes())]).await;
    }
    let s = RedisStream::new(URL, &key.0).unwrap();
    assert_eq!(s.shards().await.unwrap(), [0]);
    assert_eq!(s.start(0, StartingPosition::TrimHorizon).await.unwrap(), "");
    assert_eq!(
        s.start(0, StartingPosition::Latest).await.unwrap(),
        "3000-0"
    );
    let at = |ms: i64| {
        StartingPosition::AtTimestamp(DateTime::<Utc>::from_timestamp_millis(ms).unwrap())
    };
    assert_eq!(s.start(0, at(2000)).await.unwrap(), "1000-0");
    assert_eq!(s.start(0, at(2500)).await.unwrap(), "2000-1");
    assert_eq!(s.start(0, at(500)).await.unwrap(), "");
    assert_eq!(s.start(0, at(1000)).await.unwrap(), "");
    assert_eq!(s.start(0, at(9000)).await.unwrap(), "3000-0");
    // Reading from AT_TIMESTAMP's position starts at the first entry at
    // or after the time.
    let from = s.start(0, at(2000)).await.unwrap();
    let got = s.read(0, &from, 10, NO_WAIT).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|r| r.sequence_number.as_str())
            .collect::<Vec<_>>(),
        ["2000-0", "2000-1", "3000-0"]
    );
    // A position between entries reads from the next one.
    let next = s.read(0, "1500-7", 1, NO_WAIT).await.unwrap();
    assert_eq!(next[0].sequence_number, "2000-0");
    let next = s.read(0, "2000-0", 1, NO_WAIT).await.unwrap();
    assert_eq!(next[0].sequence_number, "2000-1");
    // LATEST: only what comes after.
    let latest = s.start(0, StartingPosition::Latest).await.unwrap();
    assert!(s.read(0, &latest, 10, NO_WAIT).await.unwrap().is_empty());
    add(&mut c, &key.0, "4000-0", &[("data", b"new")]).await;
    let got = s.read(0, &latest, 10, NO_WAIT).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, b"new");
    assert!(matches!(
        s.start(1, StartingPosition::TrimHorizon).await,
        Err(SourceError::Refused(..))
    ));
}

#[tokio::test]
async fn an_empty_stream_starts_before_the_first_entry() {
    let key = Key::new("sempty");
    let mut c = con().await;
    let id = add(&mut c, &key.0, "*", &[("data", b"x")]).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(&key.0)
        .arg(&id)
        .query_async(&mut c)
        .await
        .unwrap();
    let s = RedisStream::new(URL, &key.0).unwrap();
    assert_eq!(s.start(0, StartingPosition::Latest).await.unwrap(), "");
    assert_eq!(s.lag(0, "").await.unwrap(), 0);
    assert!(s.read(0, "", 10, NO_WAIT).await.unwrap().is_empty());
}

#[tokio::test]
async fn records_come_in_order_and_replay_from_an_earlier_position() {
    let key = Key::new("sorder");
    let mut c = con().await;
    let mut ids = Vec::new();
    for i in 0..10u8 {
        let pk = format!("user-{}", i % 3);
        let data = [i, 0xff];
        let fields: Vec<(&str, &[u8])> = if i == 9 {
            vec![("kind", b"no-data")]
        } else {
            vec![("partitionKey", pk.as_bytes()), ("data", &data)]
        };
        ids.push(add(&mut c, &key.0, "*", &fields).await);
    }
    let s = RedisStream::new(URL, &key.0).unwrap();
    let first = s.read(0, "", 4, NO_WAIT).await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|r| r.sequence_number.clone())
            .collect::<Vec<_>>(),
        ids[..4]
    );
    assert_eq!(first[1].data, vec![1, 0xff]);
    assert_eq!(first[1].partition_key, "user-1");
    let ms: i64 = ids[1].split('-').next().unwrap().parse().unwrap();
    assert_eq!(first[1].arrival_timestamp_ms, ms);
    let rest = s
        .read(0, &first[3].sequence_number, 100, NO_WAIT)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|r| r.sequence_number.clone())
            .collect::<Vec<_>>(),
        ids[4..]
    );
    // No partitionKey: the entry id; no data: the fields as JSON.
    assert_eq!(rest[5].partition_key, ids[9]);
    assert_eq!(rest[5].data, br#"{"kind":"no-data"}"#);
    // Replay from an earlier position: the same records again.
    let replay = s.read(0, &ids[1], 3, NO_WAIT).await.unwrap();
    assert_eq!(
        replay
            .iter()
            .map(|r| r.sequence_number.clone())
            .collect::<Vec<_>>(),
        ids[2..5]
    );
    assert_eq!(replay[0], rest_or_first(&first, &rest, 2));
    assert!(matches!(
        s.read(0, "not-a-position", 1, NO_WAIT).await,
        Err(SourceError::Refused(..))
    ));
    assert!(s.read(0, &ids[9], 10, NO_WAIT).await.unwrap().is_empty());
    let max = format!("{}-{}", u64::MAX, u64::MAX);
    assert!(s.read(0, &max, 10, NO_WAIT).await.unwrap().is_empty());
}

fn rest_or_first(
    first: &[hotswap_sources::StreamRecord],
    rest: &[hotswap_sources::StreamRecord],
    i: usize,
) -> hotswap_sources::StreamRecord {
    first
        .get(i)
        .cloned()
        .unwrap_or_else(|| rest[i - first.len()].clone())
}

#[tokio::test]
async fn trimmed_records_are_skipped() {
    let key = Key::new("strim");
    let mut c = con().await;
    let mut ids = Vec::new();
    for i in 0..6u8 {
        ids.push(add(&mut c, &key.0, "*", &[("data", &[i])]).await);
    }
    let _: i64 = redis::cmd("XTRIM")
        .arg(&key.0)
        .arg("MAXLEN")
        .arg(3)
        .query_async(&mut c)
        .await
        .unwrap();
    let s = RedisStream::new(URL, &key.0).unwrap();
    let got = s.read(0, &ids[0], 10, NO_WAIT).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|r| r.sequence_number.clone())
            .collect::<Vec<_>>(),
        ids[3..]
    );
    assert_eq!(s.lag(0, &ids[0]).await.unwrap(), 3);
}

#[tokio::test]
async fn a_read_waits_for_the_first_record() {
    let key = Key::new("swait");
    let mut c = con().await;
    let id = add(&mut c, &key.0, "*", &[("data", b"a")]).await;
    let s = RedisStream::new(URL, &key.0).unwrap();
    let t = Instant::now();
    assert!(s
        .read(0, &id, 10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    let k = key.0.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        add(
            &mut con().await,
            &k,
            "*",
            &[("data", b"b"), ("partitionKey", b"p")],
        )
        .await;
    });
    let t = Instant::now();
    let got = s.read(0, &id, 10, Duration::from_secs(5)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].data.as_slice(), got[0].partition_key.as_str()),
        (&b"b"[..], "p")
    );
}

#[tokio::test]
async fn lag_counts_the_records_after_a_position() {
    let key = Key::new("slag");
    let mut c = con().await;
    let mut ids = Vec::new();
    for i in 0..10u8 {
        ids.push(add(&mut c, &key.0, "*", &[("data", &[i])]).await);
    }
    let s = RedisStream::new(URL, &key.0).unwrap();
    assert_eq!(s.lag(0, "").await.unwrap(), 10);
    assert_eq!(s.lag(0, &ids[2]).await.unwrap(), 7);
    assert_eq!(s.lag(0, &ids[9]).await.unwrap(), 0);
    let _: i64 = redis::cmd("XDEL")
        .arg(&key.0)
        .arg(&ids[5])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(s.lag(0, &ids[2]).await.unwrap(), 6);
    assert_eq!(s.lag(0, "0-1").await.unwrap(), 9);
}

#[tokio::test]
async fn lag_is_exact_over_many_records() {
    let key = Key::new("slagmany");
    let mut c = con().await;
    let mut pipe = redis::pipe();
    for i in 1..=25_000u64 {
        pipe.cmd("XADD")
            .arg(&key.0)
            .arg(format!("{i}-0"))
            .arg("data")
            .arg("x")
            .ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
    let s = RedisStream::new(URL, &key.0).unwrap();
    assert_eq!(s.lag(0, "5000-0").await.unwrap(), 20_000);
    assert_eq!(s.lag(0, "21000-0").await.unwrap(), 4_000);
    assert_eq!(s.lag(0, "12345-7").await.unwrap(), 12_655);
}

#[tokio::test]
async fn a_missing_stream_is_refused() {
    let key = Key::new("smissing");
    let s = RedisStream::new(URL, &key.0).unwrap();
    assert!(matches!(s.shards().await, Err(SourceError::Refused(..))));
    assert!(matches!(
        s.start(0, StartingPosition::Latest).await,
        Err(SourceError::Refused(..))
    ));
    let e = s
        .read(0, "", 10, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SourceError::Refused(_, why) if why.contains("does not exist")),
        "{e:?}"
    );
    assert!(matches!(s.lag(0, "").await, Err(SourceError::Refused(..))));
    let mut c = con().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key.0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    let _: Value = redis::cmd("PING").query_async(&mut c).await.unwrap();
}

/// Kills every client connection that uses database 9 (only this test's
/// sources do).
async fn kill_db9_clients(c: &mut MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(c)
        .await
        .unwrap();
    let mut killed = 0;
    for line in list.lines().filter(|l| l.contains(" db=9 ")) {
        let id = line.split(' ').find_map(|f| f.strip_prefix("id=")).unwrap();
        let n: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(c)
            .await
            .unwrap();
        killed += n as usize;
    }
    killed
}

#[tokio::test]
async fn the_sources_reconnect_by_themselves() {
    let key = Key::new("reconnect");
    let mut c = con().await;
    let mut c9 = redis::Client::open(format!("{URL}/9"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    add(&mut c9, &key.0, "*", &[("body", b"a"), ("data", b"a")]).await;
    let broker = RedisBroker::new(&format!("{URL}/9")).unwrap();
    let s = broker.stream(&key.0);
    let q = broker.queue(&key.0, "hotswap-t1");
    assert_eq!(s.read(0, "", 10, NO_WAIT).await.unwrap().len(), 1);
    // A wait puts a dedicated connection in the pool.
    let last = s.start(0, StartingPosition::Latest).await.unwrap();
    assert!(s
        .read(0, &last, 10, Duration::from_millis(50))
        .await
        .unwrap()
        .is_empty());
    assert!(kill_db9_clients(&mut c).await >= 2);
    // The next calls may fail as Unavailable, then work again.
    let mut read = None;
    for _ in 0..20 {
        match s.read(0, "", 10, NO_WAIT).await {
            Ok(r) => {
                read = Some(r);
                break;
            }
            Err(e) => assert!(matches!(e, SourceError::Unavailable(..)), "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read.expect("reconnected").len(), 1);
    // The pooled connection died too: a wait still works.
    let k = key.0.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut c9 = redis::Client::open(format!("{URL}/9"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        add(&mut c9, &k, "*", &[("body", b"b")]).await;
        let _: i64 = redis::cmd("DEL")
            .arg(&k)
            .query_async(&mut c9)
            .await
            .unwrap();
    });
    let got = s.read(0, &last, 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    // The key lived in database 9: the queue sees it gone now.
    let e = q.receive(10, LONG, NO_WAIT).await.unwrap_err();
    assert!(matches!(e, SourceError::Refused(..)), "{e:?}");
}

#[tokio::test]
async fn errors_read_well() {
    let q = RedisQueue::new("redis://127.0.0.1:1", "orders", "hotswap-t1").unwrap();
    let e = q.receive(1, LONG, NO_WAIT).await.unwrap_err().to_string();
    assert!(
        e.starts_with("Redis stream 'orders' (group 'hotswap-t1') at 127.0.0.1:1 is unreachable: "),
        "{e}"
    );
    let key = Key::new("qerr");
    let e = queue(&key)
        .receive(1, LONG, NO_WAIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "Redis stream '{}' (group 'hotswap-t1'): the stream does not exist",
            key.0
        )),
        "{e}"
    );
}
