//! Queue triggers through the real binary, on every backend (HotSwap's
//! embedded queue, RabbitMQ, Redis Streams): 1,000 messages each processed
//! exactly once; a failing message retried
//! `maxReceiveCount` times, then dead-lettered with its source; partial
//! batch failures retry only the listed items; a server SIGKILLed in the
//! middle of a batch loses nothing; disabling stops consumption; the
//! function never runs past its `maxInstances`; the trigger's counters and
//! backlog in `GET /v1/triggers/{id}`, `/metrics` and the CLI.
//!
//! The function appends what it saw to a file named by its environment
//! (the server runs `--sandbox unisolated` so it can), one line per
//! message: `BODY RECEIVE-COUNT`.

mod common;

use std::collections::BTreeMap;

use common::brokers::{Backend, TestQueue};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
import json, os, time

def handler(event, context):
    out = os.environ["OUT"]
    failed = []
    lines = []
    poison = False
    for r in event["Records"]:
        body = r["body"]
        count = int(r["attributes"]["ApproximateReceiveCount"])
        lines.append("%s %d\n" % (body, count))
        if body.startswith("poison"):
            poison = True
        # "bad" items fail on their first receive only.
        if body.startswith("bad") and count == 1:
            failed.append({"itemIdentifier": r["messageId"]})
        if body.startswith("slow"):
            time.sleep(float(os.environ.get("SLOW", "2")))
    with open(out + ".start", "a") as f:
        f.write("%f %f\n" % (time.time(), 0))
    if os.environ.get("HOLD"):
        time.sleep(float(os.environ["HOLD"]))
    with open(out, "a") as f:
        f.write("".join(lines))
    if poison:
        raise RuntimeError("poison in the batch")
    return {"batchItemFailures": failed}

def sink(event, context):
    with open(os.environ["OUT"], "a") as f:
        for r in event["Records"]:
            f.write("dead %s %s\n" % (r["body"], r["eventSourceARN"]))
    return None
"#;

fn server(dir: &Path, backend: Backend) -> Server {
    let mut extra_args = vec!["--sandbox".into(), "unisolated".into()];
    extra_args.extend(backend.server_args());
    Server::start_with(
        dir,
        ServerOptions {
            extra_args,
            ..ServerOptions::default()
        },
    )
}

/// A trigger's config for queue `q`, with `more` fields.
fn config(q: &TestQueue, more: Value) -> Value {
    let mut c = json!({ "queueName": q.name, "source": q.backend.source() });
    for (k, v) in more.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Messages waiting and in flight, as the trigger's source reports them.
fn backlog(s: &Server, token: &str, id: &str) -> (u64, u64) {
    let st = &trigger_view(s, token, id)["state"];
    (
        st["backlog"].as_u64().unwrap_or_else(|| panic!("{st}")),
        st["inFlight"].as_u64().unwrap_or_else(|| panic!("{st}")),
    )
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Backend::Embedded) } )*
        }
        mod rabbitmq {
            $( #[test] fn $name() { super::$name(super::Backend::Rabbitmq) } )*
        }
        mod redis {
            $( #[test] fn $name() { super::$name(super::Backend::Redis) } )*
        }
        mod nats {
            $( #[test] fn $name() { super::$name(super::Backend::Nats) } )*
        }
    };
}

on_every_backend!(
    a_thousand_messages_are_each_processed_exactly_once,
    a_failing_message_is_retried_then_dead_lettered_with_its_source,
    partial_batch_failures_retry_only_the_listed_items,
    a_server_killed_mid_batch_loses_nothing,
);

fn create_fn(s: &Server, token: &str, name: &str, handler: &str, out: &Path, extra: Value) {
    let mut env = json!({ "OUT": out.to_str().unwrap() });
    if let Some(more) = extra.get("environment") {
        for (k, v) in more.as_object().unwrap() {
            env[k] = v.clone();
        }
    }
    let mut extra = extra.clone();
    extra["environment"] = env;
    if extra.get("timeout").is_none() {
        extra["timeout"] = json!(5);
    }
    create_function_as(
        s,
        token,
        name,
        "Python311",
        &format!("app.{handler}"),
        &[("app.py", CODE)],
        extra,
    );
}

fn create_trigger(s: &Server, token: &str, function: &str, config: Value) -> Value {
    let (st, t) = s.call(
        "POST",
        "/v1/triggers",
        Some(token),
        Some(json!({ "functionName": function, "type": "Queue", "config": config })),
    );
    assert_eq!(st, 201, "{t}");
    t
}

fn send(s: &Server, token: &str, queue: &str, body: &str) {
    let (st, b) = s.call(
        "POST",
        &format!("/v1/queues/{queue}/messages"),
        Some(token),
        Some(json!({ "body": body, "attributes": { "kind": "test" } })),
    );
    assert_eq!(st, 201, "{b}");
}

fn depth(s: &Server, token: &str, queue: &str) -> (u64, u64) {
    let (st, q) = s.call("GET", &format!("/v1/queues/{queue}"), Some(token), None);
    if st == 404 {
        return (0, 0);
    }
    assert_eq!(st, 200, "{q}");
    (
        q["depth"].as_u64().unwrap_or_else(|| panic!("{q}")),
        q["inFlight"].as_u64().unwrap_or_else(|| panic!("{q}")),
    )
}

/// The (body, receive count) lines the function wrote.
fn seen(out: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (body, n) = l.rsplit_once(' ')?;
            Some((body.to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn a_thousand_messages_are_each_processed_exactly_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "orders");
    create_fn(&s, &alice, "consume", "handler", &out, json!({}));
    let mut q = backend.queue(&s, &alice, "orders");
    let bodies: Vec<String> = (0..1000).map(|i| format!("m{i:04}")).collect();
    q.send_all(&bodies);
    let t = create_trigger(
        &s,
        &alice,
        "consume",
        config(&q, json!({ "batchSize": 10, "maximumConcurrency": 4 })),
    );
    let id = t["triggerId"].as_str().unwrap();
    wait_for("1,000 messages", Duration::from_secs(120), || {
        seen(&out).len() >= 1000
    });
    // Nothing more arrives: each message once.
    std::thread::sleep(Duration::from_secs(2));
    let lines = seen(&out);
    assert_eq!(lines.len(), 1000);
    let seen_bodies: BTreeMap<String, u32> = lines.into_iter().collect();
    assert_eq!(seen_bodies.len(), 1000, "no message twice");
    assert!(seen_bodies.values().all(|n| *n == 1), "each received once");
    assert_eq!(seen_bodies.keys().cloned().collect::<Vec<_>>(), bodies);
    wait_for("the counters", Duration::from_secs(5), || {
        trigger_view(&s, &alice, id)["state"]["succeeded"] == 1000
    });
    let st = trigger_view(&s, &alice, id)["state"].clone();
    assert_eq!(
        (st["received"].as_u64(), st["failed"].as_u64()),
        (Some(1000), Some(0)),
        "{st}"
    );
    assert_eq!(st["lastError"], Value::Null, "{st}");
    let batches = st["batches"].as_u64().unwrap();
    assert!((100..=1000).contains(&batches), "{batches} batches");
    wait_for("an empty backlog", Duration::from_secs(10), || {
        backlog(&s, &alice, id) == (0, 0)
    });
    if backend == Backend::Embedded {
        assert_eq!(depth(&s, &alice, "orders"), (0, 0));
    }
    let metrics = s.prometheus();
    assert!(
        metrics.contains(&format!(
            "hotswap_trigger_messages_total{{trigger=\"{id}\",type=\"queue\",owner=\"alice\",function=\"consume\",outcome=\"succeeded\"}} 1000"
        )),
        "{metrics}"
    );
    // The stored run counters count invocations (batches).
    wait_for("stored counters", Duration::from_secs(5), || {
        trigger_view(&s, &alice, id)["executionCount"].as_u64() == Some(batches)
    });
}

fn a_failing_message_is_retried_then_dead_lettered_with_its_source(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "jobs");
    create_fn(&s, &alice, "work", "handler", &out, json!({ "timeout": 2 }));
    let mut q = backend.queue(&s, &alice, "jobs");
    q.send("poison-1");
    q.send("fine-1");
    let t = create_trigger(
        &s,
        &alice,
        "work",
        config(
            &q,
            json!({ "batchSize": 1, "visibilityTimeout": 2, "maxReceiveCount": 3,
                    "deadLetterTarget": "queue:jobs-dlq" }),
        ),
    );
    let id = t["triggerId"].as_str().unwrap();
    wait_for("the dead letter", Duration::from_secs(30), || {
        depth(&s, &alice, "jobs-dlq").0 == 1
    });
    let lines = seen(&out);
    let poison: Vec<u32> = lines
        .iter()
        .filter(|(b, _)| b == "poison-1")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(poison, [1, 2, 3], "received maxReceiveCount times, counted");
    assert_eq!(
        lines.iter().filter(|(b, _)| b == "fine-1").count(),
        1,
        "{lines:?}"
    );
    wait_for("an empty backlog", Duration::from_secs(10), || {
        backlog(&s, &alice, id) == (0, 0)
    });
    let st = trigger_view(&s, &alice, id)["state"].clone();
    assert_eq!(
        (st["deadLettered"].as_u64(), st["retried"].as_u64()),
        (Some(1), Some(2)),
        "{st}"
    );
    assert_eq!(st["failed"], 3, "{st}");
    // The dead letter keeps its body and attributes and names its source:
    // a trigger on the dead-letter queue sees it.
    let dlq_out = out_file(dir.path(), "dlq");
    let show = "import json, os\ndef handler(event, context):\n    with open(os.environ['OUT'], 'a') as f:\n        for r in event['Records']:\n            f.write(json.dumps([r['body'], r['messageAttributes']]) + '\\n')\n";
    create_function_as(
        &s,
        &alice,
        "show",
        "Python311",
        "app.handler",
        &[("app.py", show)],
        json!({ "environment": { "OUT": dlq_out.to_str().unwrap() } }),
    );
    create_trigger(&s, &alice, "show", json!({ "queueName": "jobs-dlq" }));
    wait_for(
        "the dead letter's consumer",
        Duration::from_secs(20),
        || std::fs::read_to_string(&dlq_out).is_ok_and(|t| !t.is_empty()),
    );
    let shown: Value =
        serde_json::from_str(std::fs::read_to_string(&dlq_out).unwrap().trim()).unwrap();
    assert_eq!(shown[0], "poison-1");
    assert_eq!(shown[1]["kind"]["stringValue"], "test", "{shown}");
    assert_eq!(
        shown[1]["DeadLetterSourceQueue"]["stringValue"], q.name,
        "{shown}"
    );
}

fn partial_batch_failures_retry_only_the_listed_items(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "mixed");
    create_fn(
        &s,
        &alice,
        "mixed",
        "handler",
        &out,
        json!({ "timeout": 2 }),
    );
    let mut q = backend.queue(&s, &alice, "mixed");
    let bodies: Vec<String> = ["ok-a", "bad-b", "ok-c", "bad-d", "ok-e"]
        .iter()
        .map(|b| b.to_string())
        .collect();
    q.send_all(&bodies);
    let t = create_trigger(
        &s,
        &alice,
        "mixed",
        config(
            &q,
            json!({ "batchSize": 10, "maximumBatchingWindow": 1,
                    "visibilityTimeout": 2, "reportBatchItemFailures": true }),
        ),
    );
    let id = t["triggerId"].as_str().unwrap();
    wait_for("the retries", Duration::from_secs(30), || {
        seen(&out).len() >= 7
    });
    std::thread::sleep(Duration::from_millis(2500));
    let mut lines = seen(&out);
    lines.sort();
    assert_eq!(
        lines,
        [
            ("bad-b".to_owned(), 1),
            ("bad-b".to_owned(), 2),
            ("bad-d".to_owned(), 1),
            ("bad-d".to_owned(), 2),
            ("ok-a".to_owned(), 1),
            ("ok-c".to_owned(), 1),
            ("ok-e".to_owned(), 1),
        ]
    );
    wait_for("an empty backlog", Duration::from_secs(10), || {
        backlog(&s, &alice, id) == (0, 0)
    });
    let st = trigger_view(&s, &alice, id)["state"].clone();
    assert_eq!(
        (st["succeeded"].as_u64(), st["retried"].as_u64()),
        (Some(5), Some(2)),
        "{st}"
    );
}

fn a_server_killed_mid_batch_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = server(&data, backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "durable");
    // Each batch takes 3 s before it reports anything.
    create_fn(
        &s,
        &alice,
        "durable",
        "handler",
        &out,
        json!({ "timeout": 5, "environment": { "HOLD": "3" } }),
    );
    let mut q = backend.queue(&s, &alice, "durable");
    let bodies: Vec<String> = (0..20).map(|i| format!("d{i:02}")).collect();
    q.send_all(&bodies);
    let t = create_trigger(
        &s,
        &alice,
        "durable",
        config(
            &q,
            json!({ "batchSize": 5, "maximumConcurrency": 2, "visibilityTimeout": 5 }),
        ),
    );
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let started = PathBuf::from(format!("{}.start", out.display()));
    wait_for("a batch to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&started).is_ok_and(|t| !t.is_empty())
    });
    // Messages wait meanwhile: the oldest is seconds old (RabbitMQ cannot
    // tell the age of messages it has not delivered yet).
    if backend != Backend::Rabbitmq {
        wait_for(
            "the age of the oldest message",
            Duration::from_secs(5),
            || {
                trigger_view(&s, &alice, &id)["state"]["oldestAgeSeconds"]
                    .as_f64()
                    .is_some_and(|age| age >= 1.0)
            },
        );
    }
    // SIGKILL while batches are in the function.
    drop(s);
    assert!(seen(&out).len() < 20, "killed before the end");
    let s = server(&data, backend);
    wait_for(
        "every message after the restart",
        Duration::from_secs(90),
        || {
            let seen_bodies: std::collections::BTreeSet<String> =
                seen(&out).into_iter().map(|(b, _)| b).collect();
            seen_bodies.len() == 20
        },
    );
    wait_for("an empty backlog", Duration::from_secs(20), || {
        backlog(&s, &alice, &id) == (0, 0)
    });
    // Messages of the killed batches came back with a higher count.
    assert!(seen(&out).iter().all(|(_, n)| *n <= 2), "{:?}", seen(&out));
}

#[test]
fn a_dead_letter_function_and_a_malformed_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), Backend::Embedded);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "work");
    // A dead-letter function gets the message as an SQS event from its
    // queue.
    let sink_out = out_file(dir.path(), "sink");
    create_fn(&s, &alice, "sink", "sink", &sink_out, json!({}));
    create_fn(
        &s,
        &alice,
        "work2",
        "handler",
        &out,
        json!({ "timeout": 2 }),
    );
    send(&s, &alice, "jobs2", "poison-2");
    create_trigger(
        &s,
        &alice,
        "work2",
        json!({ "queueName": "jobs2", "batchSize": 1, "visibilityTimeout": 2,
                "maxReceiveCount": 2, "deadLetterTarget": "fn:sink" }),
    );
    wait_for("the dead-letter function", Duration::from_secs(30), || {
        std::fs::read_to_string(&sink_out).is_ok_and(|t| !t.is_empty())
    });
    let text = std::fs::read_to_string(&sink_out).unwrap();
    assert_eq!(
        text.trim(),
        "dead poison-2 arn:aws:sqs:local:000000000000:jobs2",
        "{text}"
    );
    assert_eq!(depth(&s, &alice, "jobs2"), (0, 0));

    // A malformed answer (an identifier not in the batch) fails the whole
    // batch: every message comes back.
    let out2 = out_file(dir.path(), "liar");
    let liar = "def handler(event, context):\n    import os\n    with open(os.environ['OUT'], 'a') as f:\n        for r in event['Records']:\n            f.write('%s %s\\n' % (r['body'], r['attributes']['ApproximateReceiveCount']))\n    n = int(event['Records'][0]['attributes']['ApproximateReceiveCount'])\n    return {'batchItemFailures': [{'itemIdentifier': 'not-in-batch'}]} if n == 1 else {}\n";
    create_function_as(
        &s,
        &alice,
        "liar",
        "Python311",
        "app.handler",
        &[("app.py", liar)],
        json!({ "timeout": 2, "environment": { "OUT": out2.to_str().unwrap() } }),
    );
    send(&s, &alice, "liar", "x");
    send(&s, &alice, "liar", "y");
    create_trigger(
        &s,
        &alice,
        "liar",
        json!({ "queueName": "liar", "batchSize": 10, "maximumBatchingWindow": 1,
                "visibilityTimeout": 2, "reportBatchItemFailures": true }),
    );
    wait_for("the whole batch again", Duration::from_secs(30), || {
        seen(&out2).len() >= 4
    });
    let mut lines = seen(&out2);
    lines.sort();
    assert_eq!(
        lines,
        [
            ("x".to_owned(), 1),
            ("x".to_owned(), 2),
            ("y".to_owned(), 1),
            ("y".to_owned(), 2)
        ]
    );
}

#[test]
fn disabling_stops_consumption_and_max_instances_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), Backend::Embedded);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "bounded");
    // One instance at most, and each batch takes 300 ms.
    create_fn(
        &s,
        &alice,
        "bounded",
        "handler",
        &out,
        json!({ "environment": { "HOLD": "0.3" }, "scalingConfig": { "maxInstances": 1 } }),
    );
    for i in 0..12 {
        send(&s, &alice, "bounded", &format!("b{i:02}"));
    }
    // Through the CLI.
    let t = cli_json(
        &s,
        &alice,
        &[
            "trigger",
            "create",
            "bounded",
            "--type",
            "queue",
            "--queue",
            "bounded",
            "--batch-size",
            "2",
            "--maximum-concurrency",
            "5",
        ],
    );
    assert_eq!(t["config"]["maximumConcurrency"], 5, "{t}");
    let id = t["triggerId"].as_str().unwrap();
    wait_for("all messages", Duration::from_secs(60), || {
        seen(&out).len() >= 12
    });
    let mut bodies: Vec<String> = seen(&out)
        .into_iter()
        .map(|(b, n)| format!("{b}/{n}"))
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        12,
        "throttled batches come back uncounted: {bodies:?}"
    );
    assert!(bodies.iter().all(|b| b.ends_with("/1")), "{bodies:?}");

    // Disabled: messages wait.
    let (st, _) = s.call(
        "PATCH",
        &format!("/v1/triggers/{id}"),
        Some(&alice),
        Some(json!({ "isEnabled": false })),
    );
    assert_eq!(st, 200);
    std::thread::sleep(Duration::from_secs(2));
    send(&s, &alice, "bounded", "later");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seen(&out).len(), 12, "nothing consumed while disabled");
    assert_eq!(depth(&s, &alice, "bounded").0, 1);
    assert_eq!(trigger_view(&s, &alice, id)["state"]["status"], "disabled");
    let (st, _) = s.call(
        "PATCH",
        &format!("/v1/triggers/{id}"),
        Some(&alice),
        Some(json!({ "isEnabled": true })),
    );
    assert_eq!(st, 200);
    wait_for(
        "the message sent while disabled",
        Duration::from_secs(20),
        || seen(&out).iter().any(|(b, _)| b == "later"),
    );
    // The CLI shows the counters.
    let shown = cli_as(&s, &alice, &["trigger", "get", id]);
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.contains("received") && l.trim_end().ends_with(" 13")),
        "{}",
        shown.stdout
    );
}

/// A private Redis on its own port, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let r = PrivateRedis { child, port };
        wait_for("the private Redis", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        r
    }

    fn cmd(&self, args: &[&str]) {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker that goes away shows in the trigger's `lastError`; when it is
/// back, the consumer reconnects by itself and the error clears.
#[test]
fn a_broker_that_goes_away_is_reported_and_reconnected() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    redis.cmd(&["XADD", "jobs", "*", "body", "before"]);
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            extra_args: vec![
                "--sandbox".into(),
                "unisolated".into(),
                "--redis-url".into(),
                format!("redis://127.0.0.1:{port}/"),
            ],
            ..ServerOptions::default()
        },
    );
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "jobs");
    create_fn(&s, &alice, "work", "handler", &out, json!({}));
    let t = create_trigger(
        &s,
        &alice,
        "work",
        json!({ "queueName": "jobs", "source": "redis" }),
    );
    let id = t["triggerId"].as_str().unwrap();
    wait_for("the first message", Duration::from_secs(20), || {
        seen(&out).iter().any(|(b, _)| b == "before")
    });
    drop(redis);
    wait_for(
        "the error in the trigger's state",
        Duration::from_secs(20),
        || {
            trigger_view(&s, &alice, id)["state"]["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("unreachable"))
        },
    );
    assert_eq!(trigger_view(&s, &alice, id)["state"]["status"], "error");
    // Back (empty: it keeps nothing on disk), the stream made again.
    let redis = PrivateRedis::start(port);
    redis.cmd(&["XADD", "jobs", "*", "body", "after"]);
    wait_for(
        "the message sent after the outage",
        Duration::from_secs(60),
        || seen(&out).iter().any(|(b, _)| b == "after"),
    );
    wait_for("the error to clear", Duration::from_secs(10), || {
        trigger_view(&s, &alice, id)["state"]["lastError"].is_null()
    });
}

/// Two servers on one PostgreSQL database consume one embedded queue
/// together (visibility timeouts share it; no lease): each message is
/// processed exactly once, by one of them, and a SIGKILLed server's
/// messages come back to the other.
#[test]
fn servers_sharing_postgres_share_a_queue() {
    let db = PgDb::create();
    let (blobs, dir_a, dir_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let start = |dir: &Path| {
        Server::start_with(
            dir,
            ServerOptions {
                database_url: Some(db.url.clone()),
                extra_args: vec![
                    "--sandbox".into(),
                    "unisolated".into(),
                    "--blob-url".into(),
                    format!("file://{}", blobs.path().display()),
                ],
                ..ServerOptions::default()
            },
        )
    };
    let a = start(dir_a.path());
    let b = start(dir_b.path());
    let alice = a.token_for("alice");
    let out = out_file(blobs.path(), "shared");
    create_fn(
        &a,
        &alice,
        "shared",
        "handler",
        &out,
        json!({ "timeout": 2, "environment": { "HOLD": "0.2" } }),
    );
    for i in 0..300 {
        send(&a, &alice, "shared", &format!("s{i:03}"));
    }
    let t = create_trigger(
        &a,
        &alice,
        "shared",
        json!({ "queueName": "shared", "batchSize": 5, "maximumConcurrency": 2,
                "visibilityTimeout": 2 }),
    );
    let id = t["triggerId"].as_str().unwrap();
    let done_on = |s: &Server| {
        trigger_view(s, &alice, id)["state"]["succeeded"]
            .as_u64()
            .unwrap_or(0)
    };
    wait_for("both servers to consume", Duration::from_secs(60), || {
        done_on(&a) > 0 && done_on(&b) > 0
    });
    drop(a); // SIGKILL, with batches in flight
    wait_for("every message", Duration::from_secs(90), || {
        let bodies: std::collections::BTreeSet<String> =
            seen(&out).into_iter().map(|(b, _)| b).collect();
        bodies.len() == 300
    });
    wait_for("an empty queue", Duration::from_secs(20), || {
        depth(&b, &alice, "shared") == (0, 0)
    });
    // Once each, but for the batches the killed server had in flight.
    let lines = seen(&out);
    let again: Vec<&(String, u32)> = lines.iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        lines.len() - 300 <= 10,
        "{} extra: {again:?}",
        lines.len() - 300
    );
    assert!(again.len() <= 10, "{again:?}");
}

/// HotSwap creates no broker object: a trigger on a queue or stream that
/// does not exist is not silently idle, its state says what is missing.
#[test]
fn a_missing_broker_queue_is_reported_in_the_trigger_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra_args = vec!["--sandbox".to_owned(), "unisolated".to_owned()];
    for b in [Backend::Rabbitmq, Backend::Nats, Backend::Redis] {
        extra_args.extend(b.server_args());
    }
    let s = Server::start_with(
        &dir.path().join("data"),
        ServerOptions {
            extra_args,
            ..ServerOptions::default()
        },
    );
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "missing");
    create_fn(&s, &alice, "missing", "handler", &out, json!({}));
    for (source, kind) in [
        ("rabbitmq", "Queue"),
        ("nats", "Queue"),
        ("redis", "Queue"),
        ("nats", "Stream"),
        ("redis", "Stream"),
    ] {
        let name = format!("no-such-{source}-{}", std::process::id());
        let config = if kind == "Queue" {
            json!({ "queueName": name, "source": source })
        } else {
            json!({ "streamArn": name, "source": source, "startingPosition": "LATEST" })
        };
        let (st, t) = s.call(
            "POST",
            "/v1/triggers",
            Some(&alice),
            Some(json!({ "functionName": "missing", "type": kind, "config": config })),
        );
        assert_eq!(st, 201, "{t}");
        let id = t["triggerId"].as_str().unwrap();
        wait_for(
            &format!("the {source} {kind} error"),
            Duration::from_secs(20),
            || {
                let state = &trigger_view(&s, &alice, id)["state"];
                state["status"] == "error"
                    && state["lastError"]
                        .as_str()
                        .is_some_and(|e| e.contains(&name))
            },
        );
    }
}
