//! The brokers a Queue trigger can consume, as tests drive them: create a
//! queue (or stream), publish to it, delete it. The brokers run on the
//! machine (`.ci/run` starts any that is not running): RabbitMQ at
//! 127.0.0.1:5672, Redis at 127.0.0.1:6379, NATS with JetStream at
//! 127.0.0.1:4222. A broker that is not there fails the test.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use super::Server;

pub const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// A queue backend of Queue triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Rabbitmq,
    Redis,
    Nats,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), n & 0xff_ffff_ffff)
}

/// A queue of one backend, deleted when dropped.
pub struct TestQueue {
    pub backend: Backend,
    /// The trigger's `queueName`.
    pub name: String,
    /// The admin-side owner's token for the embedded queue.
    token: String,
    url: String,
    sent: u64,
}

impl Backend {
    /// The trigger's `source`.
    pub fn source(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Rabbitmq => "rabbitmq",
            Backend::Redis => "redis",
            Backend::Nats => "nats",
        }
    }

    /// The server flags that configure the broker.
    pub fn server_args(self) -> Vec<String> {
        match self {
            Backend::Embedded => Vec::new(),
            Backend::Rabbitmq => vec!["--rabbitmq-url".into(), RABBITMQ_URL.into()],
            Backend::Redis => vec!["--redis-url".into(), REDIS_URL.into()],
            Backend::Nats => vec!["--nats-url".into(), NATS_URL.into()],
        }
    }

    /// Creates a queue named after `name` (made unique on a broker, where
    /// names are shared by every test run).
    pub fn queue(self, s: &Server, token: &str, name: &str) -> TestQueue {
        let name = match self {
            Backend::Embedded => name.to_owned(),
            _ => unique(name),
        };
        match self {
            Backend::Embedded => {}
            Backend::Rabbitmq => runtime().block_on(async {
                let c = rabbit().await;
                let ch = c.create_channel().await.unwrap();
                let mut args = FieldTable::default();
                // Quorum queues count deliveries themselves.
                args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString(LongString::from("quorum")),
                );
                ch.queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .unwrap();
            }),
            Backend::Redis => create_redis_stream(&name),
            Backend::Nats => create_nats_stream(&name),
        }
        TestQueue {
            backend: self,
            name,
            token: token.to_owned(),
            url: s.url.clone(),
            sent: 0,
        }
    }
}

async fn rabbit() -> Connection {
    Connection::connect(RABBITMQ_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must be running at 127.0.0.1:5672 (.ci/run starts it)")
}

/// An empty Redis stream `name`: a stream exists once it has an entry, so
/// one is added and trimmed at once.
fn create_redis_stream(name: &str) {
    let mut c = redis_connection();
    let _: String = redis::cmd("XADD")
        .arg(name)
        .arg("*")
        .arg("init")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("XTRIM")
        .arg(name)
        .arg("MAXLEN")
        .arg(0)
        .query(&mut c)
        .unwrap();
}

fn redis_connection() -> redis::Connection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_connection()
        .expect("Redis must be running at 127.0.0.1:6379 (.ci/run starts it)")
}

impl TestQueue {
    /// Sends messages with the attribute `kind: test`, in order.
    pub fn send_all(&mut self, bodies: &[String]) {
        match self.backend {
            Backend::Embedded => {
                let client = reqwest::blocking::Client::new();
                for b in bodies {
                    let r = client
                        .post(format!("{}/v1/queues/{}/messages", self.url, self.name))
                        .bearer_auth(&self.token)
                        .json(&serde_json::json!({ "body": b, "attributes": { "kind": "test" } }))
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                }
            }
            Backend::Rabbitmq => {
                let name = self.name.clone();
                let first = self.sent;
                runtime().block_on(async move {
                    let c = rabbit().await;
                    let ch = c.create_channel().await.unwrap();
                    ch.confirm_select(ConfirmSelectOptions::default())
                        .await
                        .unwrap();
                    let mut confirms = Vec::new();
                    for (i, b) in bodies.iter().enumerate() {
                        let mut headers = FieldTable::default();
                        headers.insert(
                            "kind".into(),
                            AMQPValue::LongString(LongString::from("test")),
                        );
                        let props = BasicProperties::default()
                            .with_message_id(format!("{name}-{}", first + i as u64).into())
                            .with_headers(headers);
                        confirms.push(
                            ch.basic_publish(
                                "".into(),
                                name.as_str().into(),
                                BasicPublishOptions::default(),
                                b.as_bytes(),
                                props,
                            )
                            .await
                            .unwrap(),
                        );
                    }
                    for c in confirms {
                        assert!(c.await.unwrap().is_ack(), "the broker did not confirm");
                    }
                });
            }
            Backend::Redis => {
                let mut c = redis_connection();
                let mut pipe = redis::pipe();
                for b in bodies {
                    pipe.cmd("XADD")
                        .arg(&self.name)
                        .arg("*")
                        .arg("body")
                        .arg(b)
                        .arg("kind")
                        .arg("test")
                        .ignore();
                }
                let _: () = pipe.query(&mut c).unwrap();
            }
            Backend::Nats => {
                let records: Vec<(Vec<(&str, String)>, String)> = bodies
                    .iter()
                    .map(|b| (vec![("kind", "test".to_owned())], b.clone()))
                    .collect();
                nats_publish(&self.name, &records);
            }
        }
        self.sent += bodies.len() as u64;
    }

    pub fn send(&mut self, body: &str) {
        self.send_all(&[body.to_owned()]);
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let name = self.name.clone();
        match self.backend {
            Backend::Embedded => {}
            Backend::Rabbitmq => runtime().block_on(async move {
                let c = rabbit().await;
                let ch = c.create_channel().await.unwrap();
                let _ = ch
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }),
            Backend::Redis => {
                if let Ok(mut c) = redis::Client::open(REDIS_URL).and_then(|c| c.get_connection()) {
                    let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&name).query(&mut c);
                }
            }
            Backend::Nats => delete_nats_stream(&name),
        }
    }
}

async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(NATS_URL)
        .await
        .expect("NATS with JetStream must be running at 127.0.0.1:4222 (.ci/run starts it)");
    async_nats::jetstream::new(client)
}

/// A JetStream stream `name` on subjects `name.>`.
fn create_nats_stream(name: &str) {
    let name = name.to_owned();
    runtime().block_on(async move {
        jetstream()
            .await
            .create_stream(async_nats::jetstream::stream::Config {
                subjects: vec![format!("{name}.>")],
                name,
                ..Default::default()
            })
            .await
            .expect("create a NATS stream");
    });
}

fn delete_nats_stream(name: &str) {
    let name = name.to_owned();
    runtime().block_on(async move {
        let _ = jetstream().await.delete_stream(&name).await;
    });
}

/// Publishes (headers, body) records to `stream.events`, each acknowledged
/// by the stream, in order.
fn nats_publish(stream: &str, records: &[(Vec<(&str, String)>, String)]) {
    runtime().block_on(async move {
        let js = jetstream().await;
        let mut acks = Vec::new();
        for (headers, body) in records {
            let mut h = async_nats::HeaderMap::new();
            for (k, v) in headers {
                h.insert(*k, v.as_str());
            }
            acks.push(
                js.publish_with_headers(format!("{stream}.events"), h, body.clone().into())
                    .await
                    .expect("publish"),
            );
        }
        for a in acks {
            a.await.expect("publish acknowledged");
        }
    });
}

/// A stream backend of Stream triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamBackend {
    Redis,
    Nats,
    /// librdkafka's mock cluster, run by this test process (one partition
    /// per topic); only in a build with the `kafka` feature.
    #[cfg(feature = "kafka")]
    Kafka,
}

/// A stream of one backend, deleted when dropped.
pub struct TestStream {
    pub backend: StreamBackend,
    /// The trigger's `streamArn`.
    pub name: String,
}

impl StreamBackend {
    pub fn source(self) -> &'static str {
        match self {
            StreamBackend::Redis => "redis",
            StreamBackend::Nats => "nats",
            #[cfg(feature = "kafka")]
            StreamBackend::Kafka => "kafka",
        }
    }

    pub fn server_args(self) -> Vec<String> {
        match self {
            StreamBackend::Redis => vec!["--redis-url".into(), REDIS_URL.into()],
            StreamBackend::Nats => vec!["--nats-url".into(), NATS_URL.into()],
            #[cfg(feature = "kafka")]
            StreamBackend::Kafka => vec![
                "--kafka-brokers".into(),
                kafka_mock::get().bootstrap.clone(),
            ],
        }
    }

    /// Creates an empty stream.
    pub fn stream(self, name: &str) -> TestStream {
        let name = unique(name);
        match self {
            StreamBackend::Redis => create_redis_stream(&name),
            StreamBackend::Nats => create_nats_stream(&name),
            #[cfg(feature = "kafka")]
            StreamBackend::Kafka => kafka_mock::create_topic(&name),
        }
        TestStream {
            backend: self,
            name,
        }
    }
}

impl TestStream {
    /// Appends records (partition key, data), in order.
    pub fn put_all(&self, records: &[(String, String)]) {
        match self.backend {
            StreamBackend::Redis => {
                let mut c = redis_connection();
                let mut pipe = redis::pipe();
                for (key, data) in records {
                    pipe.cmd("XADD")
                        .arg(&self.name)
                        .arg("*")
                        .arg("partitionKey")
                        .arg(key)
                        .arg("data")
                        .arg(data)
                        .ignore();
                }
                let _: () = pipe.query(&mut c).unwrap();
            }
            StreamBackend::Nats => {
                let records: Vec<(Vec<(&str, String)>, String)> = records
                    .iter()
                    .map(|(k, d)| (vec![("Hotswap-Partition-Key", k.clone())], d.clone()))
                    .collect();
                nats_publish(&self.name, &records);
            }
            #[cfg(feature = "kafka")]
            StreamBackend::Kafka => kafka_mock::produce(&self.name, records),
        }
    }

    pub fn put(&self, key: &str, data: &str) {
        self.put_all(&[(key.to_owned(), data.to_owned())]);
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        match self.backend {
            StreamBackend::Redis => {
                if let Ok(mut c) = redis::Client::open(REDIS_URL).and_then(|c| c.get_connection()) {
                    let _: redis::RedisResult<i64> =
                        redis::cmd("DEL").arg(&self.name).query(&mut c);
                }
            }
            StreamBackend::Nats => delete_nats_stream(&self.name),
            // The mock cluster's topics go with the test process.
            #[cfg(feature = "kafka")]
            StreamBackend::Kafka => {}
        }
    }
}

/// librdkafka's in-memory Kafka cluster, started once per test process by
/// a thread that owns it for the rest of the process; the servers under
/// test connect to its bootstrap address like to any broker.
#[cfg(feature = "kafka")]
mod kafka_mock {
    use std::sync::mpsc;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use hotswap_sources::kafka::rdkafka::config::ClientConfig;
    use hotswap_sources::kafka::rdkafka::mocking::MockCluster;
    use hotswap_sources::kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    pub struct Mock {
        pub bootstrap: String,
        topics: Mutex<mpsc::Sender<(String, mpsc::Sender<()>)>>,
    }

    pub fn get() -> &'static Mock {
        static MOCK: OnceLock<Mock> = OnceLock::new();
        MOCK.get_or_init(|| {
            let (topics, asked) = mpsc::channel::<(String, mpsc::Sender<()>)>();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mock = MockCluster::new(1).expect("librdkafka's mock cluster");
                tx.send(mock.bootstrap_servers()).unwrap();
                for (topic, done) in asked {
                    mock.create_topic(&topic, 1, 1).expect("a mock topic");
                    let _ = done.send(());
                }
            });
            Mock {
                bootstrap: rx.recv().expect("the mock cluster's address"),
                topics: Mutex::new(topics),
            }
        })
    }

    /// A topic of one partition.
    pub fn create_topic(name: &str) {
        let (done, created) = mpsc::channel();
        get()
            .topics
            .lock()
            .unwrap()
            .send((name.to_owned(), done))
            .unwrap();
        created.recv().expect("topic created");
    }

    /// Appends records (key, value), in order, acknowledged.
    pub fn produce(topic: &str, records: &[(String, String)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &get().bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .expect("a producer");
        for (key, value) in records {
            producer
                .send(BaseRecord::to(topic).key(key).payload(value))
                .map_err(|(e, _)| e)
                .expect("queued");
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("every record acknowledged");
    }
}
