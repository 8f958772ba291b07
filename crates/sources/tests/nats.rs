//! The NATS JetStream sources against a real server (nats://127.0.0.1:4222,
//! JetStream on; CI starts it). Each test creates its own stream, with a
//! random name, and deletes it. A server that cannot be reached fails the
//! tests.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::Utc;
use hotswap_domain::trigger::source::StartingPosition;
use hotswap_sources::nats::{NatsConnection, NatsQueue, NatsStream};
use hotswap_sources::{QueueSource, SourceError, StreamSource};

const URL: &str = "nats://127.0.0.1:4222";
const VIS: Duration = Duration::from_secs(30);

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:016x}", h.finish())
}

async fn js() -> jetstream::Context {
    let client = async_nats::connect(URL)
        .await
        .expect("the NATS server at 127.0.0.1:4222 must be running (with JetStream)");
    jetstream::new(client)
}

/// A stream of its own for one test, deleted when dropped.
struct TestStream {
    js: jetstream::Context,
    name: String,
    subject: String,
}

impl TestStream {
    async fn new() -> TestStream {
        let js = js().await;
        let name = format!("hs-test-{}", random_suffix());
        js.create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{name}.>")],
            ..Default::default()
        })
        .await
        .expect("create the test stream");
        TestStream {
            js,
            subject: format!("{name}.events"),
            name,
        }
    }

    async fn publish(&self, body: impl Into<Vec<u8>>) -> u64 {
        self.publish_to(&self.subject, HeaderMap::new(), body).await
    }

    async fn publish_to(&self, subject: &str, headers: HeaderMap, body: impl Into<Vec<u8>>) -> u64 {
        self.js
            .publish_with_headers(subject.to_owned(), headers, body.into().into())
            .await
            .expect("publish")
            .await
            .expect("publish acknowledged")
            .sequence
    }

    async fn consumer_ack_wait(&self, consumer: &str) -> Duration {
        let stream = self.js.get_stream(&self.name).await.unwrap();
        stream
            .consumer_info(consumer)
            .await
            .unwrap()
            .config
            .ack_wait
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Runs even when the test failed; on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(URL).await {
                    let _ = jetstream::new(client).delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

fn queue(s: &TestStream) -> NatsQueue {
    NatsQueue::new(&NatsConnection::new(URL), &s.name, "hotswap-trigger-1")
}

fn receipts(d: &[hotswap_sources::Delivery]) -> Vec<String> {
    d.iter().map(|d| d.receipt.clone()).collect()
}

#[tokio::test]
async fn a_thousand_messages_are_each_received_once_when_acknowledged() {
    let s = TestStream::new().await;
    for i in 0..1000 {
        s.publish(format!("m{i}")).await;
    }
    let q = queue(&s);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 1000 && Instant::now() < deadline {
        let batch = q
            .receive(100, VIS, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(batch.len() <= 100);
        for d in &batch {
            assert_eq!(d.receive_count, 1, "{}", d.body);
            seen.push(d.body.clone());
        }
        q.ack(&receipts(&batch)).await.unwrap();
    }
    assert_eq!(seen.len(), 1000);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 1000, "a message was received twice");
    assert_eq!(
        distinct,
        (0..1000)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
    // In order, as the stream holds them.
    assert_eq!(seen[0], "m0");
    assert_eq!(seen[999], "m999");
    assert!(q
        .receive(100, VIS, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    let backlog = q.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 0));
    assert_eq!(backlog.oldest_age_s, None);
}

#[tokio::test]
async fn a_message_carries_its_id_body_attributes_and_times() {
    let s = TestStream::new().await;
    let before = Utc::now();
    let mut h = HeaderMap::new();
    h.insert("Nats-Msg-Id", "order-1");
    h.insert("tenant", "acme");
    s.publish_to(&s.subject, h, b"f\xffo".to_vec()).await;
    let second = s.publish("plain").await;
    let q = queue(&s);
    let backlog = q.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (2, 0));
    let age = backlog.oldest_age_s.expect("an oldest message");
    assert!((0.0..60.0).contains(&age), "{age}");

    let got = q.receive(10, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 2);
    let (a, b) = (&got[0], &got[1]);
    assert_eq!(a.message_id, "order-1");
    assert_eq!(a.body, "f\u{FFFD}o");
    assert_eq!(a.attributes.get("tenant").map(String::as_str), Some("acme"));
    assert!(!a.attributes.contains_key("Nats-Msg-Id"));
    assert_eq!(a.receive_count, 1);
    let skew = chrono::Duration::seconds(2);
    assert!(a.sent_at >= before - skew && a.sent_at <= Utc::now() + skew);
    assert!(a.first_received_at >= a.sent_at - skew);
    assert_ne!(a.receipt, b.receipt);
    assert_eq!(b.message_id, second.to_string());
    assert_eq!(b.body, "plain");
    assert!(b.attributes.is_empty());

    let backlog = q.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 2));
    q.ack(&receipts(&got)).await.unwrap();
    let backlog = q.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 0));
    // HotSwap created its consumer, with the visibility as ack wait.
    assert_eq!(s.consumer_ack_wait("hotswap-trigger-1").await, VIS);
}

#[tokio::test]
async fn a_delayed_release_comes_back_when_its_visibility_timeout_ends_counted() {
    let s = TestStream::new().await;
    s.publish("retry me").await;
    let q = queue(&s);
    let vis = Duration::from_secs(2);
    let received = Instant::now();
    let first = q.receive(10, vis, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    q.release(&receipts(&first), vis, true).await.unwrap();
    assert!(q
        .receive(10, vis, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    let again = q.receive(10, vis, Duration::from_secs(5)).await.unwrap();
    let waited = received.elapsed();
    assert_eq!(again.len(), 1);
    assert!(waited >= Duration::from_millis(1800), "{waited:?}");
    assert_eq!(again[0].body, "retry me");
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_eq!(again[0].first_received_at, first[0].first_received_at);
    q.ack(&receipts(&again)).await.unwrap();
}

/// The pattern that made nats-server 2.9 lose deliveries and redeliver
/// acknowledged messages when releases were `-NAK {"delay": …}`: one
/// message failing again and again, another acknowledged beside it.
#[tokio::test]
async fn repeated_delayed_releases_count_every_receive_and_never_bring_back_acknowledged_messages()
{
    let s = TestStream::new().await;
    s.publish("poison").await;
    s.publish("fine").await;
    let q = queue(&s);
    let vis = Duration::from_secs(1);
    let mut counts = Vec::new();
    let mut fine = 0;
    let deadline = Instant::now() + Duration::from_secs(12);
    while counts.len() < 6 && Instant::now() < deadline {
        for d in q.receive(1, vis, Duration::from_secs(1)).await.unwrap() {
            if d.body == "fine" {
                fine += 1;
                q.ack(std::slice::from_ref(&d.receipt)).await.unwrap();
            } else {
                counts.push(d.receive_count);
                q.release(std::slice::from_ref(&d.receipt), vis, true)
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(counts, [1, 2, 3, 4, 5, 6]);
    assert_eq!(fine, 1, "an acknowledged message came back");
}

#[tokio::test]
async fn an_unacknowledged_message_returns_after_the_visibility_timeout() {
    let s = TestStream::new().await;
    s.publish("slow").await;
    let q = queue(&s);
    let vis = Duration::from_secs(2);
    let first = q.receive(10, vis, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(s.consumer_ack_wait("hotswap-trigger-1").await, vis);
    // Invisible meanwhile.
    assert!(q
        .receive(10, vis, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    let again = q.receive(10, vis, Duration::from_secs(3)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    // The first receipt is stale: acknowledging with it does nothing.
    q.ack(&receipts(&first)).await.unwrap();
    q.release(&receipts(&again), Duration::ZERO, true)
        .await
        .unwrap();
    // A longer visibility timeout updates the consumer.
    let third = q.receive(10, VIS, Duration::from_secs(2)).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].receive_count, 3);
    assert_eq!(s.consumer_ack_wait("hotswap-trigger-1").await, VIS);
    q.ack(&receipts(&third)).await.unwrap();
    assert!(q
        .receive(10, VIS, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_messages_are_there() {
    let s = TestStream::new().await;
    s.publish("first").await;
    s.publish("second").await;
    let q = queue(&s);
    let vis = Duration::from_secs(1);
    // Longer than the visibility timeout: had the receive waited it out,
    // the messages would have come back while it waited.
    let t0 = Instant::now();
    let got = q
        .receive(10, vis, Duration::from_millis(2500))
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|d| d.receive_count == 1), "{got:?}");
    q.ack(&receipts(&got)).await.unwrap();
    // Nothing comes back; an empty long poll waits it out.
    let t0 = Instant::now();
    assert!(q
        .receive(10, vis, Duration::from_millis(1500))
        .await
        .unwrap()
        .is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test]
async fn a_release_that_does_not_count_keeps_the_receive_count() {
    let s = TestStream::new().await;
    s.publish("throttled").await;
    let q = queue(&s);
    let first = q.receive(10, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(first[0].receive_count, 1);
    q.release(&receipts(&first), Duration::ZERO, false)
        .await
        .unwrap();
    let second = q.receive(10, VIS, Duration::from_secs(2)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(
        second[0].receive_count, 1,
        "an uncounted release was counted"
    );
    q.release(&receipts(&second), Duration::ZERO, false)
        .await
        .unwrap();
    let third = q.receive(10, VIS, Duration::from_secs(2)).await.unwrap();
    assert_eq!(third[0].receive_count, 1);
    q.release(&receipts(&third), Duration::ZERO, true)
        .await
        .unwrap();
    let fourth = q.receive(10, VIS, Duration::from_secs(2)).await.unwrap();
    assert_eq!(fourth[0].receive_count, 2);
    q.ack(&receipts(&fourth)).await.unwrap();
}

#[tokio::test]
async fn a_consumer_deleted_by_someone_is_created_again() {
    let s = TestStream::new().await;
    s.publish("one").await;
    let q = queue(&s);
    let got = q.receive(10, VIS, Duration::ZERO).await.unwrap();
    q.ack(&receipts(&got)).await.unwrap();
    let stream = s.js.get_stream(&s.name).await.unwrap();
    stream.delete_consumer("hotswap-trigger-1").await.unwrap();
    s.publish("two").await;
    // The first call may fail (Unavailable, never a panic); a later one
    // recreates the consumer, which starts from the stream's beginning.
    let mut bodies = Vec::new();
    for _ in 0..3 {
        match q.receive(10, VIS, Duration::ZERO).await {
            Ok(b) => {
                bodies.extend(b.iter().map(|d| d.body.clone()));
                q.ack(&receipts(&b)).await.unwrap();
                if !b.is_empty() {
                    break;
                }
            }
            Err(e) => assert!(matches!(e, SourceError::Unavailable(..)), "{e:?}"),
        }
    }
    assert_eq!(bodies, ["one", "two"]);
}

#[tokio::test]
async fn a_missing_stream_is_refused() {
    js().await; // the server is up
    let conn = NatsConnection::new(URL);
    let name = format!("hs-missing-{}", random_suffix());
    let q = NatsQueue::new(&conn, &name, "hotswap-trigger-1");
    let e = q.receive(10, VIS, Duration::ZERO).await.unwrap_err();
    assert!(matches!(e, SourceError::Refused(..)), "{e:?}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(matches!(q.backlog().await, Err(SourceError::Refused(..))));
    let st = NatsStream::new(&conn, &name);
    assert!(matches!(st.shards().await, Err(SourceError::Refused(..))));
    assert!(matches!(
        st.start(0, StartingPosition::Latest).await,
        Err(SourceError::Refused(..))
    ));
    assert!(matches!(
        st.read(0, "", 10, Duration::ZERO).await,
        Err(SourceError::Refused(..))
    ));
    assert!(matches!(st.lag(0, "").await, Err(SourceError::Refused(..))));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let conn = NatsConnection::new("nats://127.0.0.1:1");
    let q = NatsQueue::new(&conn, "orders", "hotswap-trigger-1");
    let e = q.receive(10, VIS, Duration::ZERO).await.unwrap_err();
    assert!(matches!(e, SourceError::Unavailable(..)), "{e:?}");
    assert!(matches!(
        q.ack(&["$JS.ACK.orders.hotswap-trigger-1.1.1.1.1.0".into()])
            .await,
        Err(SourceError::Unavailable(..))
    ));
    let st = NatsStream::new(&conn, "clicks");
    assert!(matches!(
        st.read(0, "", 10, Duration::ZERO).await,
        Err(SourceError::Unavailable(..))
    ));
    // Later calls try again (after a short backoff) and stay unavailable.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        st.lag(0, "").await,
        Err(SourceError::Unavailable(..))
    ));
}

fn seqs(records: &[hotswap_sources::StreamRecord]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r.sequence_number.parse().unwrap())
        .collect()
}

fn bodies(records: &[hotswap_sources::StreamRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.data.clone()).unwrap())
        .collect()
}

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_stream_is_read_in_order_from_trim_horizon() {
    let s = TestStream::new().await;
    let before = Utc::now().timestamp_millis();
    for i in 1..=25 {
        s.publish(format!("r{i}")).await;
    }
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    assert_eq!(st.shards().await.unwrap(), vec![0]);
    let after = st.start(0, StartingPosition::TrimHorizon).await.unwrap();
    assert_eq!(after, "");
    let a = st.read(0, &after, 10, WAIT).await.unwrap();
    assert_eq!(seqs(&a), (1..=10).collect::<Vec<_>>());
    assert_eq!(bodies(&a)[0], "r1");
    assert!(a[0].arrival_timestamp_ms >= before - 2000);
    assert!(a[0].arrival_timestamp_ms <= Utc::now().timestamp_millis() + 2000);
    let b = st.read(0, "10", 10, WAIT).await.unwrap();
    assert_eq!(seqs(&b), (11..=20).collect::<Vec<_>>());
    let c = st.read(0, "20", 10, WAIT).await.unwrap();
    assert_eq!(seqs(&c), (21..=25).collect::<Vec<_>>());
    assert_eq!(bodies(&c)[4], "r25");
    let started = Instant::now();
    assert!(st
        .read(0, "25", 10, Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    assert!(started.elapsed() < Duration::from_secs(3));
    // A record that comes while a read waits is returned at once.
    let publisher = {
        let js = s.js.clone();
        let subject = s.subject.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            js.publish(subject, "late".into())
                .await
                .unwrap()
                .await
                .unwrap();
        })
    };
    let started = Instant::now();
    let d = st.read(0, "25", 10, Duration::from_secs(10)).await.unwrap();
    publisher.await.unwrap();
    assert_eq!(bodies(&d), ["late"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        st.read(1, "", 10, WAIT).await,
        Err(SourceError::Refused(..))
    ));
}

#[tokio::test]
async fn latest_sees_only_later_records() {
    let s = TestStream::new().await;
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    assert_eq!(st.start(0, StartingPosition::Latest).await.unwrap(), "");
    for i in 1..=5 {
        s.publish(format!("old{i}")).await;
    }
    let after = st.start(0, StartingPosition::Latest).await.unwrap();
    assert_eq!(after, "5");
    for i in 1..=3 {
        s.publish(format!("new{i}")).await;
    }
    let got = st.read(0, &after, 100, WAIT).await.unwrap();
    assert_eq!(bodies(&got), ["new1", "new2", "new3"]);
    assert_eq!(seqs(&got), [6, 7, 8]);
}

#[tokio::test]
async fn at_timestamp_starts_at_the_first_record_at_or_after_the_time() {
    let s = TestStream::new().await;
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    let long_ago = Utc::now() - chrono::Duration::days(1);
    for i in 1..=3 {
        s.publish(format!("before{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 1..=3 {
        s.publish(format!("after{i}")).await;
    }
    let after = st.start(0, StartingPosition::AtTimestamp(t)).await.unwrap();
    assert_eq!(after, "3");
    let got = st.read(0, &after, 100, WAIT).await.unwrap();
    assert_eq!(bodies(&got), ["after1", "after2", "after3"]);
    assert_eq!(
        st.start(0, StartingPosition::AtTimestamp(long_ago))
            .await
            .unwrap(),
        ""
    );
    let future = Utc::now() + chrono::Duration::days(1);
    assert_eq!(
        st.start(0, StartingPosition::AtTimestamp(future))
            .await
            .unwrap(),
        "6"
    );
    // The probing consumers are gone.
    let mut info = s.js.get_stream(&s.name).await.unwrap();
    assert_eq!(info.info().await.unwrap().state.consumer_count, 1);
}

#[tokio::test]
async fn rereading_from_an_earlier_position_replays_the_same_records() {
    let s = TestStream::new().await;
    for i in 1..=30 {
        s.publish(format!("r{i}")).await;
    }
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    let first = st.read(0, "", 10, WAIT).await.unwrap();
    let second = st.read(0, "10", 10, WAIT).await.unwrap();
    assert_eq!(seqs(&second), (11..=20).collect::<Vec<_>>());
    // The batch after 5 failed: read from there again.
    let replay = st.read(0, "5", 10, WAIT).await.unwrap();
    assert_eq!(seqs(&replay), (6..=15).collect::<Vec<_>>());
    assert_eq!(&bodies(&replay)[..5], &bodies(&first)[5..]);
    assert_eq!(&bodies(&replay)[5..], &bodies(&second)[..5]);
    // And on from where the replay ended.
    let next = st.read(0, "15", 100, WAIT).await.unwrap();
    assert_eq!(seqs(&next), (16..=30).collect::<Vec<_>>());
    // A restart: a new source, from a checkpoint.
    let restarted = NatsStream::new(&NatsConnection::new(URL), &s.name);
    let again = restarted.read(0, "28", 100, WAIT).await.unwrap();
    assert_eq!(bodies(&again), ["r29", "r30"]);
    // The stream is deleted under a reader that waits for more.
    s.js.delete_stream(&s.name).await.unwrap();
    let e = restarted
        .read(0, "30", 100, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Refused(..)), "{e:?}");
}

#[tokio::test]
async fn records_trimmed_from_the_stream_are_skipped() {
    let s = TestStream::new().await;
    for i in 1..=10 {
        s.publish(format!("r{i}")).await;
    }
    let stream = s.js.get_stream(&s.name).await.unwrap();
    // Everything before sequence 6 goes.
    stream.purge().sequence(6).await.unwrap();
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    let got = st.read(0, "", 100, WAIT).await.unwrap();
    assert_eq!(seqs(&got), [6, 7, 8, 9, 10]);
    let got = st.read(0, "2", 100, WAIT).await.unwrap();
    assert_eq!(seqs(&got), [6, 7, 8, 9, 10]);
    assert_eq!(st.lag(0, "2").await.unwrap(), 5);
}

#[tokio::test]
async fn the_partition_key_is_the_header_else_the_subject() {
    let s = TestStream::new().await;
    let mut h = HeaderMap::new();
    h.insert("Hotswap-Partition-Key", "user-7");
    s.publish_to(&format!("{}.clicks", s.name), h, "a").await;
    s.publish_to(&format!("{}.views", s.name), HeaderMap::new(), "b")
        .await;
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    let got = st.read(0, "", 10, WAIT).await.unwrap();
    let keys: Vec<&str> = got.iter().map(|r| r.partition_key.as_str()).collect();
    assert_eq!(keys, ["user-7".to_owned(), format!("{}.views", s.name)]);
}

#[tokio::test]
async fn lag_is_the_records_after_a_position() {
    let s = TestStream::new().await;
    let st = NatsStream::new(&NatsConnection::new(URL), &s.name);
    assert_eq!(st.lag(0, "").await.unwrap(), 0);
    for i in 1..=10 {
        s.publish(format!("r{i}")).await;
    }
    assert_eq!(st.lag(0, "").await.unwrap(), 10);
    assert_eq!(st.lag(0, "4").await.unwrap(), 6);
    assert_eq!(st.lag(0, "10").await.unwrap(), 0);
    assert_eq!(st.lag(0, "12").await.unwrap(), 0);
    let read = st.read(0, "4", 3, WAIT).await.unwrap();
    let last = read.last().unwrap().sequence_number.clone();
    assert_eq!(last, "7");
    assert_eq!(st.lag(0, &last).await.unwrap(), 3);
    let all: BTreeSet<u64> = seqs(&read).into_iter().collect();
    assert_eq!(all, BTreeSet::from([5, 6, 7]));
    assert!(matches!(
        st.lag(0, "not-a-sequence").await,
        Err(SourceError::Refused(..))
    ));
}
