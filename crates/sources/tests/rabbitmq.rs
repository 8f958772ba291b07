//! `RabbitQueue` against the RabbitMQ running on this machine
//! (amqp://guest:guest@127.0.0.1:5672; CI starts it). Every test declares
//! its own uniquely named queue (with `x-expires` as a safety net) and
//! deletes it; an unreachable broker fails the tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotswap_sources::rabbitmq::RabbitQueue;
use hotswap_sources::{Delivery, QueueSource, SourceError};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const VIS: Duration = Duration::from_secs(30);

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Classic,
    Quorum,
}

/// A queue made for one test, and a publishing channel (with confirms).
struct TestQueue {
    name: String,
    _connection: Connection,
    channel: Channel,
}

impl TestQueue {
    async fn new(kind: Kind) -> TestQueue {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ must be running at 127.0.0.1:5672");
        let channel = connection.create_channel().await.unwrap();
        let name = unique("hotswap-test");
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(600_000));
        if kind == Kind::Quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.as_str().into(), options, args)
            .await
            .unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        TestQueue {
            name,
            _connection: connection,
            channel,
        }
    }

    /// Publishes and waits for the broker's confirmation.
    async fn publish(&self, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.name.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "the broker did not confirm");
    }

    async fn publish_id(&self, id: &str, body: &str) {
        self.publish(
            body.as_bytes(),
            BasicProperties::default().with_message_id(id.into()),
        )
        .await;
    }

    /// Ready messages, as the broker counts them.
    async fn ready(&self) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(self.name.as_str().into(), options, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    fn source(&self, prefetch: u16) -> (RabbitQueue, String) {
        let tag = unique("hotswap-trigger");
        (RabbitQueue::new(URL, &self.name, &tag, prefetch), tag)
    }

    async fn delete(self) {
        self.channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

/// Receives until `n` deliveries came or `within` passed.
async fn receive_n(
    src: &RabbitQueue,
    n: usize,
    visibility: Duration,
    within: Duration,
) -> Vec<Delivery> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < n && start.elapsed() < within {
        out.extend(
            src.receive(n - out.len(), visibility, Duration::from_millis(500))
                .await
                .unwrap(),
        );
    }
    out
}

async fn receive_one(src: &RabbitQueue) -> Delivery {
    let mut got = receive_n(src, 1, VIS, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "no message came");
    got.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_confirmed_messages_are_each_received_once_with_body_and_attributes() {
    let q = TestQueue::new(Kind::Classic).await;
    let mut confirms = Vec::new();
    for i in 0..1000u32 {
        let mut h = FieldTable::default();
        h.insert("n".into(), AMQPValue::LongInt(i as i32));
        h.insert(
            "kind".into(),
            AMQPValue::LongString(LongString::from("order")),
        );
        h.insert("even".into(), AMQPValue::Boolean(i.is_multiple_of(2)));
        h.insert(
            "nested".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        let props = BasicProperties::default()
            .with_message_id(format!("m-{i}").into())
            .with_timestamp(1_700_000_000 + u64::from(i))
            .with_headers(h);
        let confirm = q
            .channel
            .basic_publish(
                "".into(),
                q.name.as_str().into(),
                BasicPublishOptions::default(),
                format!("body {i}").as_bytes(),
                props,
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    assert_eq!(q.ready().await, 1000);

    let (src, _) = q.source(100);
    let mut seen: HashMap<String, u32> = HashMap::new();
    let start = Instant::now();
    while seen.len() < 1000 && start.elapsed() < Duration::from_secs(60) {
        let batch = src.receive(25, VIS, Duration::from_secs(1)).await.unwrap();
        assert!(batch.len() <= 25);
        for d in &batch {
            let i: u32 = d.message_id.strip_prefix("m-").unwrap().parse().unwrap();
            assert!(
                seen.insert(d.message_id.clone(), i).is_none(),
                "{} received twice",
                d.message_id
            );
            assert_eq!(d.body, format!("body {i}"));
            assert_eq!(d.receive_count, 1);
            let expected: BTreeMap<String, String> = [
                ("n".to_owned(), i.to_string()),
                ("kind".to_owned(), "order".to_owned()),
                ("even".to_owned(), i.is_multiple_of(2).to_string()),
            ]
            .into_iter()
            .collect();
            assert_eq!(d.attributes, expected);
            assert_eq!(d.sent_at.timestamp(), 1_700_000_000 + i64::from(i));
        }
        let receipts: Vec<String> = batch.iter().map(|d| d.receipt.clone()).collect();
        src.ack(&receipts).await.unwrap();
    }
    assert_eq!(seen.len(), 1000);
    // All acknowledged: nothing comes again, nothing is left.
    assert!(src
        .receive(100, VIS, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
    let backlog = src.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 0));
    assert_eq!(backlog.oldest_age_s, None);
    assert_eq!(q.ready().await, 0);
    drop(src);
    q.delete().await;
}

async fn released_message_comes_back_after_the_delay(kind: Kind) {
    let q = TestQueue::new(kind).await;
    q.publish_id("r-1", "hello").await;
    let (src, _) = q.source(10);
    let first = receive_one(&src).await;
    assert_eq!(
        (first.message_id.as_str(), first.body.as_str()),
        ("r-1", "hello")
    );
    assert_eq!(first.receive_count, 1);
    let released = Instant::now();
    src.release(
        std::slice::from_ref(&first.receipt),
        Duration::from_millis(1500),
        true,
    )
    .await
    .unwrap();
    // Released, its receipt settles it no more.
    src.ack(std::slice::from_ref(&first.receipt)).await.unwrap();
    let backlog = src.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 1));
    // Not before the delay…
    let early = src
        .receive(10, VIS, Duration::from_millis(1000))
        .await
        .unwrap();
    assert!(early.is_empty(), "came back early: {early:?}");
    // …but after it, counted.
    let again = receive_one(&src).await;
    assert!(released.elapsed() >= Duration::from_millis(1500));
    assert_eq!(again.message_id, "r-1");
    assert_eq!(again.body, "hello");
    assert_eq!(again.receive_count, 2);
    assert_ne!(again.receipt, first.receipt);
    assert_eq!(again.first_received_at, first.first_received_at);
    src.ack(&[again.receipt]).await.unwrap();
    assert_eq!(src.backlog().await.unwrap().in_flight, 0);
    assert_eq!(q.ready().await, 0);
    drop(src);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_message_comes_back_counted_after_the_delay_classic() {
    released_message_comes_back_after_the_delay(Kind::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_message_comes_back_counted_after_the_delay_quorum() {
    released_message_comes_back_after_the_delay(Kind::Quorum).await;
}

async fn visibility_expiry_makes_a_message_visible_again(kind: Kind) {
    let q = TestQueue::new(kind).await;
    q.publish_id("v-1", "slow").await;
    let (src, _) = q.source(10);
    let mut first = receive_n(&src, 1, Duration::from_secs(1), Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    let first = first.remove(0);
    let received = Instant::now();
    assert_eq!(first.receive_count, 1);
    // Invisible while its visibility lasts…
    let early = src
        .receive(10, VIS, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(early.is_empty(), "visible too early: {early:?}");
    // …then visible again, counted.
    let again = receive_one(&src).await;
    assert!(received.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        (again.message_id.as_str(), again.body.as_str()),
        ("v-1", "slow")
    );
    assert_eq!(again.receive_count, 2);
    // The first receipt no longer settles it.
    src.ack(std::slice::from_ref(&first.receipt)).await.unwrap();
    assert_eq!(src.backlog().await.unwrap().in_flight, 1);
    src.ack(&[again.receipt]).await.unwrap();
    assert_eq!(src.backlog().await.unwrap().in_flight, 0);
    assert_eq!(q.ready().await, 0);
    drop(src);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_expiry_makes_an_unacked_message_visible_again_classic() {
    visibility_expiry_makes_a_message_visible_again(Kind::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_expiry_makes_an_unacked_message_visible_again_quorum() {
    visibility_expiry_makes_a_message_visible_again(Kind::Quorum).await;
}

async fn release_without_count_keeps_the_count(kind: Kind) {
    let q = TestQueue::new(kind).await;
    q.publish_id("c-1", "throttled").await;
    let (src, _) = q.source(10);
    let mut counts = Vec::new();
    // (delay, count) of each release after a receive.
    let releases = [
        (Duration::ZERO, false),
        (Duration::ZERO, true),
        (Duration::ZERO, false),
        (Duration::from_millis(300), false),
        (Duration::ZERO, true),
    ];
    for (delay, count) in releases {
        let d = receive_one(&src).await;
        assert_eq!(d.message_id, "c-1");
        counts.push(d.receive_count);
        src.release(&[d.receipt], delay, count).await.unwrap();
    }
    let last = receive_one(&src).await;
    counts.push(last.receive_count);
    assert_eq!(counts, [1, 1, 2, 2, 2, 3]);
    src.ack(&[last.receipt]).await.unwrap();
    assert_eq!(q.ready().await, 0);
    drop(src);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_without_count_does_not_increase_the_count_classic() {
    release_without_count_keeps_the_count(Kind::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_without_count_does_not_increase_the_count_quorum() {
    release_without_count_keeps_the_count(Kind::Quorum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_receipt_acks_nothing() {
    let q = TestQueue::new(Kind::Classic).await;
    q.publish_id("s-a", "a").await;
    q.publish_id("s-b", "b").await;
    let (src, _) = q.source(10);
    let both = receive_n(&src, 2, VIS, Duration::from_secs(10)).await;
    let ids: Vec<&str> = both.iter().map(|d| d.message_id.as_str()).collect();
    assert_eq!(ids, ["s-a", "s-b"]);
    let (a, b) = (&both[0], &both[1]);
    src.release(std::slice::from_ref(&a.receipt), Duration::ZERO, true)
        .await
        .unwrap();
    let a2 = receive_one(&src).await;
    assert_eq!((a2.message_id.as_str(), a2.receive_count), ("s-a", 2));
    // The earlier receipt of a, and receipts naming nothing, do nothing.
    let junk = [
        a.receipt.clone(),
        "nonsense".to_owned(),
        "99.1".to_owned(),
        String::new(),
    ];
    src.ack(&junk).await.unwrap();
    src.release(&junk, Duration::ZERO, true).await.unwrap();
    assert_eq!(src.backlog().await.unwrap().in_flight, 2);
    // a is still there: released again, it comes back once more.
    src.release(std::slice::from_ref(&a2.receipt), Duration::ZERO, true)
        .await
        .unwrap();
    let a3 = receive_one(&src).await;
    assert_eq!((a3.message_id.as_str(), a3.receive_count), ("s-a", 3));
    // Acknowledging twice settles once.
    src.ack(&[a3.receipt.clone(), b.receipt.clone()])
        .await
        .unwrap();
    src.ack(&[a3.receipt.clone(), b.receipt.clone()])
        .await
        .unwrap();
    let backlog = src.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 0));
    assert!(src
        .receive(10, VIS, Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    drop(src);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_is_refused_and_not_created() {
    let name = unique("hotswap-missing");
    let src = RabbitQueue::new(URL, &name, &unique("hotswap-trigger"), 10);
    let refused = SourceError::Refused(format!("RabbitMQ queue '{name}'"), "does not exist".into());
    assert_eq!(
        src.receive(10, VIS, Duration::from_millis(100)).await,
        Err(refused.clone())
    );
    // Again (each call tries anew), and from backlog.
    assert_eq!(src.backlog().await, Err(refused.clone()));
    assert_eq!(src.receive(10, VIS, Duration::ZERO).await, Err(refused));
    // Nothing was declared.
    let connection = Connection::connect(URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must be running at 127.0.0.1:5672");
    let channel = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    assert!(channel
        .queue_declare(name.as_str().into(), options, FieldTable::default())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_unavailable_without_credentials_in_the_error() {
    let src = RabbitQueue::new(
        "amqp://guest:secret@127.0.0.1:1/%2f",
        "orders",
        "hotswap-t1",
        10,
    );
    let start = Instant::now();
    for _ in 0..2 {
        match src.receive(10, VIS, Duration::from_millis(100)).await {
            Err(SourceError::Unavailable(what, _)) => {
                assert_eq!(what, "RabbitMQ queue 'orders' at amqp://127.0.0.1:1");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert!(matches!(
        src.backlog().await,
        Err(SourceError::Unavailable(..))
    ));
    assert!(matches!(src.ack(&["1.1".to_owned()]).await, Ok(())));
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Closes the broker-side connection named `name` with rabbitmqctl.
async fn close_connection_named(name: String) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = std::process::Command::new("rabbitmqctl")
                .args(["list_connections", "-s", "pid", "client_properties"])
                .output()
                .expect("rabbitmqctl must be available");
            let listing = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(line) = listing.lines().find(|l| l.contains(&name)) {
                let pid = line.split_whitespace().next().unwrap().to_owned();
                let status = std::process::Command::new("rabbitmqctl")
                    .args(["close_connection", &pid, "closed by a HotSwap test"])
                    .status()
                    .unwrap();
                assert!(status.success());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "connection {name} not listed: {listing}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_reconnected_and_unacked_messages_come_again() {
    let q = TestQueue::new(Kind::Classic).await;
    q.publish_id("k-a", "a").await;
    q.publish_id("k-b", "b").await;
    let (src, tag) = q.source(10);
    // a is received (held); b is prefetched, not handed out.
    let mut first = receive_n(&src, 1, VIS, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 1);
    let a = first.remove(0);
    assert_eq!((a.message_id.as_str(), a.receive_count), ("k-a", 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(src.backlog().await.unwrap().in_flight, 2);

    close_connection_named(tag).await;
    // The call that notices may fail; a later one reconnects. Both come
    // again: a counted (it was received), b not (it never was).
    let mut again: HashMap<String, Delivery> = HashMap::new();
    let mut unavailable = 0;
    let start = Instant::now();
    while again.len() < 2 && start.elapsed() < Duration::from_secs(20) {
        match src.receive(10, VIS, Duration::from_millis(500)).await {
            Ok(batch) => {
                for d in batch {
                    assert!(again.insert(d.message_id.clone(), d).is_none());
                }
            }
            Err(SourceError::Unavailable(..)) => unavailable += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(unavailable <= 1, "{unavailable} failed calls");
    let a2 = &again["k-a"];
    let b2 = &again["k-b"];
    assert_eq!((a2.body.as_str(), a2.receive_count), ("a", 2));
    assert_eq!((b2.body.as_str(), b2.receive_count), ("b", 1));
    assert_eq!(a2.first_received_at, a.first_received_at);
    // The old connection's receipt settles nothing on the new one.
    src.ack(std::slice::from_ref(&a.receipt)).await.unwrap();
    assert_eq!(src.backlog().await.unwrap().in_flight, 2);
    src.ack(&[a2.receipt.clone(), b2.receipt.clone()])
        .await
        .unwrap();
    let backlog = src.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.in_flight), (0, 0));
    drop(src);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_source_gives_its_messages_back() {
    let q = TestQueue::new(Kind::Classic).await;
    q.publish_id("d-a", "a").await;
    let (src, _) = q.source(10);
    let a = receive_one(&src).await;
    assert_eq!(a.message_id, "d-a");
    drop(src);
    let (other, _) = q.source(10);
    let again = receive_one(&other).await;
    assert_eq!(again.message_id, "d-a");
    // Another source instance has not seen it: the documented guess.
    assert_eq!(again.receive_count, 2);
    other.ack(&[again.receipt]).await.unwrap();
    assert_eq!(q.ready().await, 0);
    drop(other);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_count_comes_from_the_broker_in_a_new_source() {
    let q = TestQueue::new(Kind::Quorum).await;
    q.publish_id("qc-1", "counted").await;
    let (src, _) = q.source(10);
    for expected in 1..=2 {
        let d = receive_one(&src).await;
        assert_eq!(d.receive_count, expected);
        src.release(&[d.receipt], Duration::ZERO, true)
            .await
            .unwrap();
    }
    // Received a third time and held when the source goes (a restart).
    assert_eq!(receive_one(&src).await.receive_count, 3);
    drop(src);
    // A source that never saw it reads x-delivery-count.
    let (fresh, _) = q.source(10);
    let d = receive_one(&fresh).await;
    assert_eq!((d.message_id.as_str(), d.receive_count), ("qc-1", 4));
    fresh.ack(&[d.receipt]).await.unwrap();
    assert_eq!(q.ready().await, 0);
    drop(fresh);
    q.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_or_vhost_are_refused() {
    let q = TestQueue::new(Kind::Classic).await;
    let what = format!("RabbitMQ queue '{}'", q.name);
    let cases = [
        ("amqp://guest:wrong@127.0.0.1:5672/%2f", "ACCESS_REFUSED"),
        (
            "amqp://guest:guest@127.0.0.1:5672/no-such-vhost",
            "NOT_ALLOWED",
        ),
    ];
    for (url, code) in cases {
        let src = RabbitQueue::new(url, &q.name, &unique("hotswap-trigger"), 10);
        match src.receive(1, VIS, Duration::ZERO).await {
            Err(SourceError::Refused(w, why)) => {
                assert_eq!(w, what);
                assert!(why.starts_with(code), "{why}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    q.delete().await;
}
