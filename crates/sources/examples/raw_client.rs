//! A plain broker client for `bench/queues.sh`: creates and deletes the
//! broker objects, publishes, and measures the broker's own consume rate
//! with lapin / async-nats / redis directly, HotSwap not involved.
//!
//! ```text
//! raw_client create  BACKEND NAME          # rabbitmq: a durable quorum queue; nats: stream NAME on NAME.>; redis: an empty stream
//! raw_client delete  BACKEND NAME
//! raw_client publish BACKEND NAME N [queue|stream]   # N bodies m0..; stream: records with a partition key
//! raw_client rate    BACKEND NAME RATE SECS [queue|stream]   # bodies are the wall-clock time in ns at sending
//! raw_client consume BACKEND NAME N        # batches of 10, each acknowledged; prints seconds and msgs/s
//! raw_client read    BACKEND NAME N        # a stream read in order (redis XRANGE, nats ordered consumer)
//! ```
//!
//! `BACKEND` is `rabbitmq`, `nats` or `redis` (the brokers of the test
//! suite: 127.0.0.1:5672, :4222, :6379).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use redis::streams::{StreamRangeReply, StreamReadReply};

const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const REDIS_URL: &str = "redis://127.0.0.1:6379/";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// The batch of the plain consumer (the triggers' `batchSize`).
const BATCH: usize = 10;
/// RabbitMQ prefetch: what HotSwap sets for batchSize 10 × concurrency 4.
const PREFETCH: u16 = 80;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

#[tokio::main]
async fn main() -> Result {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: see the top of crates/sources/examples/raw_client.rs");
            std::process::exit(2)
        })
    };
    let (cmd, backend, name) = (arg(0), arg(1), arg(2).to_owned());
    let stream_format = args.iter().any(|a| a == "stream");
    match cmd {
        "create" => create(backend, &name).await,
        "delete" => delete(backend, &name).await,
        "publish" => {
            let n: usize = arg(3).parse()?;
            let bodies: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let t = Instant::now();
            publish(backend, &name, &bodies, stream_format).await?;
            let s = t.elapsed().as_secs_f64();
            println!("published {n} in {s:.3} s ({:.0} msgs/s)", n as f64 / s);
            Ok(())
        }
        "rate" => {
            let rate: f64 = arg(3).parse()?;
            let secs: f64 = arg(4).parse()?;
            let n = (rate * secs).round() as usize;
            let start = Instant::now();
            let mut publisher = Publisher::new(backend, &name, stream_format).await?;
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                publisher.send(&now_ns().to_string()).await?;
            }
            println!("published {n} at {rate}/s");
            Ok(())
        }
        "consume" => {
            let n: usize = arg(3).parse()?;
            let (got, s) = consume(backend, &name, n).await?;
            println!("consumed {got} in {s:.3} s ({:.0} msgs/s)", got as f64 / s);
            Ok(())
        }
        "read" => {
            let n: usize = arg(3).parse()?;
            let (got, s) = read(backend, &name, n).await?;
            println!("read {got} in {s:.3} s ({:.0} msgs/s)", got as f64 / s);
            Ok(())
        }
        other => Err(format!("unknown command {other}").into()),
    }
}

async fn rabbit() -> Result<Connection> {
    Ok(Connection::connect(RABBITMQ_URL, ConnectionProperties::default()).await?)
}

async fn redis_conn() -> Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(REDIS_URL)?
        .get_multiplexed_async_connection()
        .await?)
}

async fn jetstream() -> Result<async_nats::jetstream::Context> {
    Ok(async_nats::jetstream::new(
        async_nats::connect(NATS_URL).await?,
    ))
}

async fn create(backend: &str, name: &str) -> Result {
    match backend {
        "rabbitmq" => {
            let c = rabbit().await?;
            let ch = c.create_channel().await?;
            let mut args = FieldTable::default();
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
            ch.queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        }
        "nats" => {
            jetstream()
                .await?
                .create_stream(async_nats::jetstream::stream::Config {
                    subjects: vec![format!("{name}.>")],
                    name: name.to_owned(),
                    ..Default::default()
                })
                .await?;
        }
        "redis" => {
            let mut c = redis_conn().await?;
            let _: String = redis::cmd("XADD")
                .arg(name)
                .arg("*")
                .arg("init")
                .arg("1")
                .query_async(&mut c)
                .await?;
            let _: i64 = redis::cmd("XTRIM")
                .arg(name)
                .arg("MAXLEN")
                .arg(0)
                .query_async(&mut c)
                .await?;
        }
        other => return Err(format!("unknown backend {other}").into()),
    }
    Ok(())
}

async fn delete(backend: &str, name: &str) -> Result {
    match backend {
        "rabbitmq" => {
            let c = rabbit().await?;
            let ch = c.create_channel().await?;
            ch.queue_delete(name.into(), QueueDeleteOptions::default())
                .await?;
        }
        "nats" => {
            jetstream().await?.delete_stream(name).await?;
        }
        "redis" => {
            let mut c = redis_conn().await?;
            let _: i64 = redis::cmd("DEL").arg(name).query_async(&mut c).await?;
        }
        other => return Err(format!("unknown backend {other}").into()),
    }
    Ok(())
}

/// Publishes `bodies` in order, every one confirmed by the broker,
/// pipelined.
async fn publish(backend: &str, name: &str, bodies: &[String], stream: bool) -> Result {
    match backend {
        "rabbitmq" => {
            let c = rabbit().await?;
            let ch = c.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            for chunk in bodies.chunks(1000) {
                let mut confirms = Vec::with_capacity(chunk.len());
                for b in chunk {
                    confirms.push(
                        ch.basic_publish(
                            "".into(),
                            name.into(),
                            BasicPublishOptions::default(),
                            b.as_bytes(),
                            BasicProperties::default()
                                .with_message_id(format!("{name}-{b}").into()),
                        )
                        .await?,
                    );
                }
                for c in confirms {
                    if !c.await?.is_ack() {
                        return Err("the broker did not confirm".into());
                    }
                }
            }
        }
        "nats" => {
            let js = jetstream().await?;
            for (n, chunk) in bodies.chunks(1000).enumerate() {
                let mut acks = Vec::with_capacity(chunk.len());
                for (i, b) in chunk.iter().enumerate() {
                    let mut h = async_nats::HeaderMap::new();
                    if stream {
                        h.insert(
                            "Hotswap-Partition-Key",
                            format!("k{}", (n * 1000 + i) % 8).as_str(),
                        );
                    }
                    acks.push(
                        js.publish_with_headers(format!("{name}.events"), h, b.clone().into())
                            .await?,
                    );
                }
                for a in acks {
                    a.await?;
                }
            }
        }
        "redis" => {
            let mut c = redis_conn().await?;
            for (n, chunk) in bodies.chunks(1000).enumerate() {
                let mut pipe = redis::pipe();
                for (i, b) in chunk.iter().enumerate() {
                    let cmd = pipe.cmd("XADD").arg(name).arg("*");
                    if stream {
                        cmd.arg("partitionKey")
                            .arg(format!("k{}", (n * 1000 + i) % 8))
                            .arg("data")
                            .arg(b)
                            .ignore();
                    } else {
                        cmd.arg("body").arg(b).ignore();
                    }
                }
                let _: () = pipe.query_async(&mut c).await?;
            }
        }
        other => return Err(format!("unknown backend {other}").into()),
    }
    Ok(())
}

/// One message at a time, each confirmed before the next.
enum Publisher {
    /// The connection is only held open.
    Rabbit(#[allow(dead_code)] Connection, lapin::Channel, String, u64),
    Nats(async_nats::jetstream::Context, String, bool),
    Redis(redis::aio::MultiplexedConnection, String, bool),
}

impl Publisher {
    async fn new(backend: &str, name: &str, stream: bool) -> Result<Self> {
        Ok(match backend {
            "rabbitmq" => {
                let c = rabbit().await?;
                let ch = c.create_channel().await?;
                ch.confirm_select(ConfirmSelectOptions::default()).await?;
                Publisher::Rabbit(c, ch, name.to_owned(), 0)
            }
            "nats" => Publisher::Nats(jetstream().await?, name.to_owned(), stream),
            "redis" => Publisher::Redis(redis_conn().await?, name.to_owned(), stream),
            other => return Err(format!("unknown backend {other}").into()),
        })
    }

    async fn send(&mut self, body: &str) -> Result {
        match self {
            Publisher::Rabbit(_, ch, name, n) => {
                *n += 1;
                let confirm = ch
                    .basic_publish(
                        "".into(),
                        name.as_str().into(),
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default().with_message_id(format!("{name}-r{n}").into()),
                    )
                    .await?;
                if !confirm.await?.is_ack() {
                    return Err("the broker did not confirm".into());
                }
            }
            Publisher::Nats(js, name, stream) => {
                let mut h = async_nats::HeaderMap::new();
                if *stream {
                    h.insert("Hotswap-Partition-Key", "k0");
                }
                js.publish_with_headers(format!("{name}.events"), h, body.to_owned().into())
                    .await?
                    .await?;
            }
            Publisher::Redis(c, name, stream) => {
                let field = if *stream { "data" } else { "body" };
                let _: String = redis::cmd("XADD")
                    .arg(name.as_str())
                    .arg("*")
                    .arg(field)
                    .arg(body)
                    .query_async(c)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Receives `n` messages in batches of [`BATCH`], acknowledging each batch
/// before taking the next; returns (messages, seconds).
async fn consume(backend: &str, name: &str, n: usize) -> Result<(usize, f64)> {
    let mut got = 0;
    match backend {
        "rabbitmq" => {
            // One consumer with HotSwap's prefetch; each 10th delivery acks
            // the ten with `multiple`.
            let c = rabbit().await?;
            let ch = c.create_channel().await?;
            ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
            let t = Instant::now();
            let mut consumer = ch
                .basic_consume(
                    name.into(),
                    "raw-client".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut in_batch = 0;
            while got < n {
                let d = consumer.next().await.ok_or("the consumer ended")??;
                got += 1;
                in_batch += 1;
                if in_batch == BATCH || got == n {
                    d.acker.ack(BasicAckOptions { multiple: true }).await?;
                    in_batch = 0;
                }
            }
            Ok((got, t.elapsed().as_secs_f64()))
        }
        "nats" => {
            // A durable pull consumer (explicit acks), as HotSwap's; each
            // batch is one pull of 10 and its acks are confirmed by the
            // server (double ack) before the next pull.
            use async_nats::jetstream::consumer::{pull, AckPolicy};
            let js = jetstream().await?;
            let stream = js.get_stream(name).await?;
            let consumer = stream
                .create_consumer(pull::Config {
                    durable_name: Some("raw-client".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                })
                .await?;
            let t = Instant::now();
            while got < n {
                let mut batch = consumer
                    .batch()
                    .max_messages(BATCH.min(n - got))
                    .expires(Duration::from_secs(5))
                    .messages()
                    .await?;
                let mut msgs = Vec::with_capacity(BATCH);
                while let Some(m) = batch.next().await {
                    msgs.push(m?);
                }
                if msgs.is_empty() {
                    return Err(format!("nothing more after {got}").into());
                }
                got += msgs.len();
                futures::future::try_join_all(msgs.iter().map(|m| m.double_ack()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let s = t.elapsed().as_secs_f64();
            stream.delete_consumer("raw-client").await?;
            Ok((got, s))
        }
        "redis" => {
            // A consumer group from the stream's start, XREADGROUP COUNT 10
            // then XACK of those ids.
            let mut c = redis_conn().await?;
            let _: () = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(name)
                .arg("raw-client")
                .arg("0")
                .query_async(&mut c)
                .await?;
            let t = Instant::now();
            while got < n {
                let reply: StreamReadReply = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("raw-client")
                    .arg("c1")
                    .arg("COUNT")
                    .arg(BATCH)
                    .arg("BLOCK")
                    .arg(5000)
                    .arg("STREAMS")
                    .arg(name)
                    .arg(">")
                    .query_async(&mut c)
                    .await?;
                let ids: Vec<String> = reply
                    .keys
                    .into_iter()
                    .flat_map(|k| k.ids.into_iter().map(|e| e.id))
                    .collect();
                if ids.is_empty() {
                    return Err(format!("nothing more after {got}").into());
                }
                got += ids.len();
                let _: i64 = redis::cmd("XACK")
                    .arg(name)
                    .arg("raw-client")
                    .arg(&ids)
                    .query_async(&mut c)
                    .await?;
            }
            let s = t.elapsed().as_secs_f64();
            let _: i64 = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(name)
                .arg("raw-client")
                .query_async(&mut c)
                .await?;
            Ok((got, s))
        }
        other => Err(format!("unknown backend {other}").into()),
    }
}

/// Reads `n` records of a stream in order, as a Stream trigger does
/// (redis: XRANGE … COUNT 100 from the last id; nats: an ordered
/// consumer); returns (records, seconds).
async fn read(backend: &str, name: &str, n: usize) -> Result<(usize, f64)> {
    let mut got = 0;
    let t = Instant::now();
    match backend {
        "redis" => {
            let mut c = redis_conn().await?;
            let mut after = "-".to_owned();
            while got < n {
                let reply: StreamRangeReply = redis::cmd("XRANGE")
                    .arg(name)
                    .arg(&after)
                    .arg("+")
                    .arg("COUNT")
                    .arg(100)
                    .query_async(&mut c)
                    .await?;
                let Some(last) = reply.ids.last() else {
                    return Err(format!("nothing more after {got}").into());
                };
                after = format!("({}", last.id);
                got += reply.ids.len();
            }
        }
        "nats" => {
            use async_nats::jetstream::consumer::pull;
            let js = jetstream().await?;
            let stream = js.get_stream(name).await?;
            let consumer = stream
                .create_consumer(pull::OrderedConfig::default())
                .await?;
            let mut messages = consumer.messages().await?;
            while got < n {
                let m = tokio::time::timeout(Duration::from_secs(5), messages.next())
                    .await
                    .map_err(|_| format!("nothing more after {got}"))?
                    .ok_or("the consumer ended")??;
                std::hint::black_box(&m.payload);
                got += 1;
            }
        }
        other => return Err(format!("no stream read for {other}").into()),
    }
    Ok((got, t.elapsed().as_secs_f64()))
}
