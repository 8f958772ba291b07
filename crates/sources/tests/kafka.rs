//! The Kafka stream source against librdkafka's mock cluster, started by
//! each test (no broker needed). The mock answers no offset-by-time
//! lookup, so `AT_TIMESTAMP` is only checked at its ends here.
#![cfg(feature = "kafka")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use hotswap_domain::trigger::source::StartingPosition;
use hotswap_sources::kafka::KafkaStream;
use hotswap_sources::{SourceError, StreamRecord, StreamSource};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

const LONG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(300);

struct Cluster {
    mock: MockCluster<'static, DefaultProducerContext>,
    producer: FutureProducer,
}

impl Cluster {
    fn new(topic: &str, partitions: i32) -> Cluster {
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic(topic, partitions, 1).unwrap();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .create()
            .unwrap();
        Cluster { mock, producer }
    }

    fn stream(&self, topic: &str) -> KafkaStream {
        KafkaStream::new(&self.mock.bootstrap_servers(), topic, "test").unwrap()
    }

    async fn send(&self, topic: &str, partition: i32, key: Option<&str>, data: &str) {
        let mut r = FutureRecord::to(topic).partition(partition).payload(data);
        if let Some(k) = key {
            r = r.key(k);
        }
        self.producer.send(r, LONG).await.unwrap();
    }
}

fn seqs(records: &[StreamRecord]) -> Vec<&str> {
    records.iter().map(|r| r.sequence_number.as_str()).collect()
}

fn datas(records: &[StreamRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.data.clone()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_order_from_trim_horizon_and_replays() {
    let c = Cluster::new("orders", 1);
    for i in 0..5 {
        c.send("orders", 0, Some(&format!("k{i}")), &format!("d{i}"))
            .await;
    }
    let s = c.stream("orders");
    assert_eq!(s.shards().await.unwrap(), vec![0]);
    let start = s.start(0, StartingPosition::TrimHorizon).await.unwrap();
    assert_eq!(start, "");
    let r = s.read(0, &start, 3, LONG).await.unwrap();
    assert_eq!(seqs(&r), ["0", "1", "2"]);
    assert_eq!(datas(&r), ["d0", "d1", "d2"]);
    assert_eq!(r[1].partition_key, "k1");
    assert!(r[0].arrival_timestamp_ms > 1_600_000_000_000);
    // Continues where it ended (the same consumer).
    let r = s.read(0, "2", 10, LONG).await.unwrap();
    assert_eq!(seqs(&r), ["3", "4"]);
    // Nothing more: waits, then returns empty.
    let t = std::time::Instant::now();
    assert!(s.read(0, "4", 10, SHORT).await.unwrap().is_empty());
    assert!(t.elapsed() >= SHORT);
    // Replay from an earlier position.
    let r = s.read(0, "0", 2, LONG).await.unwrap();
    assert_eq!(seqs(&r), ["1", "2"]);
    let r = s.read(0, "", 10, LONG).await.unwrap();
    assert_eq!(seqs(&r), ["0", "1", "2", "3", "4"]);
    // A record produced while a read waits is returned by it.
    let (r, ()) = tokio::join!(s.read(0, "4", 10, LONG), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.send("orders", 0, None, "late").await;
    });
    let r = r.unwrap();
    assert_eq!(seqs(&r), ["5"]);
    // No key: the offset is the partition key.
    assert_eq!(r[0].partition_key, "5");
    assert_eq!(datas(&r), ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_sees_only_later_records() {
    let c = Cluster::new("events", 1);
    let s = c.stream("events");
    assert_eq!(s.start(0, StartingPosition::Latest).await.unwrap(), "");
    for i in 0..3 {
        c.send("events", 0, None, &format!("old{i}")).await;
    }
    let start = s.start(0, StartingPosition::Latest).await.unwrap();
    assert_eq!(start, "2");
    assert!(s.read(0, &start, 10, SHORT).await.unwrap().is_empty());
    c.send("events", 0, None, "new0").await;
    c.send("events", 0, None, "new1").await;
    let r = s.read(0, &start, 10, LONG).await.unwrap();
    assert_eq!(datas(&r), ["new0", "new1"]);
    assert_eq!(seqs(&r), ["3", "4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_timestamp_ends() {
    let c = Cluster::new("timed", 1);
    for i in 0..3 {
        c.send("timed", 0, None, &format!("d{i}")).await;
    }
    let s = c.stream("timed");
    let epoch = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    let at = s
        .start(0, StartingPosition::AtTimestamp(epoch))
        .await
        .unwrap();
    assert_eq!(at, "");
    let future = Utc::now() + chrono::Duration::days(1);
    let at = s
        .start(0, StartingPosition::AtTimestamp(future))
        .await
        .unwrap();
    assert_eq!(at, "2");
    c.send("timed", 0, None, "after").await;
    let r = s.read(0, &at, 10, LONG).await.unwrap();
    assert_eq!(datas(&r), ["after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_shards() {
    let c = Cluster::new("split", 2);
    c.send("split", 0, Some("a"), "p0-a").await;
    c.send("split", 1, Some("c"), "p1-c").await;
    c.send("split", 0, Some("b"), "p0-b").await;
    let s = c.stream("split");
    assert_eq!(s.shards().await.unwrap(), vec![0, 1]);
    let r0 = s.read(0, "", 10, LONG).await.unwrap();
    let r1 = s.read(1, "", 10, LONG).await.unwrap();
    assert_eq!(datas(&r0), ["p0-a", "p0-b"]);
    assert_eq!(seqs(&r0), ["0", "1"]);
    assert_eq!(datas(&r1), ["p1-c"]);
    assert_eq!(r1[0].partition_key, "c");
    assert_eq!(s.lag(0, "").await.unwrap(), 2);
    assert_eq!(s.lag(1, "0").await.unwrap(), 0);
    assert!(matches!(
        s.read(2, "", 10, SHORT).await,
        Err(SourceError::Refused(..))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_records_after_the_position() {
    let c = Cluster::new("lagging", 1);
    let s = c.stream("lagging");
    assert_eq!(s.lag(0, "").await.unwrap(), 0);
    for i in 0..5 {
        c.send("lagging", 0, None, &format!("d{i}")).await;
    }
    assert_eq!(s.lag(0, "").await.unwrap(), 5);
    assert_eq!(s.lag(0, "1").await.unwrap(), 3);
    assert_eq!(s.lag(0, "4").await.unwrap(), 0);
    assert_eq!(s.lag(0, "40").await.unwrap(), 0);
    assert!(matches!(s.lag(0, "x").await, Err(SourceError::Refused(..))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_refused() {
    let c = Cluster::new("present", 1);
    let s = c.stream("absent");
    assert!(matches!(s.shards().await, Err(SourceError::Refused(..))));
    assert!(matches!(
        s.start(0, StartingPosition::TrimHorizon).await,
        Err(SourceError::Refused(..))
    ));
    assert!(s.describe().contains("absent"));
}
