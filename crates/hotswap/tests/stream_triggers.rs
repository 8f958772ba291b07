//! Stream triggers through the real binary, on every stream backend:
//! records of one partition key in order under `parallelizationFactor` 4;
//! each starting position; the checkpoint survives a SIGKILLed server (its
//! shard's lease taken over); a poison record isolated by bisection and
//! described to the `onFailure` queue while the others succeed; the lag
//! and counters in `GET /v1/triggers/{id}`.
//!
//! The function appends `KEY DATA` per record to a file named by its
//! environment (the server runs `--sandbox unisolated` so it can), only
//! when the batch succeeds; a batch holding a record whose data starts
//! with `poison` fails.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::brokers::{StreamBackend, TestStream};
use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
import base64, os, random, time

def handler(event, context):
    recs = [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"]).decode())
            for r in event["Records"]]
    if any(d.startswith("poison") for _, d in recs):
        raise RuntimeError("poison in the batch")
    time.sleep(random.random() * float(os.environ.get("JITTER", "0")))
    with open(os.environ["OUT"], "a") as f:
        f.write("".join("%s %s\n" % (k, d) for k, d in recs))
    return {}
"#;

macro_rules! on_every_stream_backend {
    ($($name:ident),* $(,)?) => {
        mod redis {
            $( #[test] fn $name() { super::$name(super::StreamBackend::Redis) } )*
        }
        mod nats {
            $( #[test] fn $name() { super::$name(super::StreamBackend::Nats) } )*
        }
        #[cfg(feature = "kafka")]
        mod kafka {
            $( #[test] fn $name() { super::$name(super::StreamBackend::Kafka) } )*
        }
    };
}

on_every_stream_backend!(
    records_of_one_key_stay_in_order_under_parallelization_4,
    each_starting_position,
    the_checkpoint_survives_a_killed_server,
    bisection_isolates_a_poison_record,
    servers_sharing_postgres_take_over_a_dead_servers_shard,
);

fn server(dir: &Path, backend: StreamBackend) -> Server {
    server_with(dir, backend, None, Vec::new())
}

fn server_with(
    dir: &Path,
    backend: StreamBackend,
    database_url: Option<String>,
    more: Vec<String>,
) -> Server {
    let mut extra_args: Vec<String> = vec![
        "--sandbox".into(),
        "unisolated".into(),
        "--stream-lease-ttl".into(),
        "3s".into(),
    ];
    extra_args.extend(backend.server_args());
    extra_args.extend(more);
    Server::start_with(
        dir,
        ServerOptions {
            extra_args,
            database_url,
            ..ServerOptions::default()
        },
    )
}

fn create_fn(s: &Server, token: &str, name: &str, out: &Path, env: Value) {
    let mut environment = json!({ "OUT": out.to_str().unwrap() });
    for (k, v) in env.as_object().unwrap() {
        environment[k] = v.clone();
    }
    create_function_as(
        s,
        token,
        name,
        "Python311",
        "app.handler",
        &[("app.py", CODE)],
        json!({ "timeout": 5, "environment": environment }),
    );
}

fn create_trigger(s: &Server, token: &str, function: &str, st: &TestStream, more: Value) -> String {
    let mut config = json!({ "streamArn": st.name, "source": st.backend.source(),
                             "startingPosition": "TRIM_HORIZON" });
    for (k, v) in more.as_object().unwrap() {
        config[k] = v.clone();
    }
    let (code, t) = s.call(
        "POST",
        "/v1/triggers",
        Some(token),
        Some(json!({ "functionName": function, "type": "Stream", "config": config })),
    );
    assert_eq!(code, 201, "{t}");
    t["triggerId"].as_str().unwrap().to_owned()
}

/// The (key, data) lines the function wrote, in order.
fn seen(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, d) = l.split_once(' ')?;
            Some((k.to_owned(), d.to_owned()))
        })
        .collect()
}

fn records_of(keys: usize, per_key: usize, prefix: &str) -> Vec<(String, String)> {
    // Interleaved: key 0 record 0, key 1 record 0, …
    (0..per_key)
        .flat_map(|i| (0..keys).map(move |k| (format!("k{k}"), format!("{prefix}{i:03}"))))
        .collect()
}

fn records_of_one_key_stay_in_order_under_parallelization_4(backend: StreamBackend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "ordered");
    create_fn(&s, &alice, "ordered", &out, json!({ "JITTER": "0.05" }));
    let st = backend.stream("clicks");
    let records = records_of(8, 25, "r");
    st.put_all(&records);
    let id = create_trigger(
        &s,
        &alice,
        "ordered",
        &st,
        json!({ "batchSize": 5, "parallelizationFactor": 4 }),
    );
    wait_for("200 records", Duration::from_secs(90), || {
        seen(&out).len() >= 200
    });
    std::thread::sleep(Duration::from_secs(1));
    let lines = seen(&out);
    assert_eq!(
        lines.len(),
        200,
        "each record once when every batch succeeds"
    );
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, d) in lines {
        per_key.entry(k).or_default().push(d);
    }
    assert_eq!(per_key.len(), 8);
    for (k, data) in &per_key {
        let mut sorted = data.clone();
        sorted.sort();
        assert_eq!(data, &sorted, "key {k} out of order");
        assert_eq!(data.len(), 25, "key {k}");
    }
    wait_for("the counters", Duration::from_secs(10), || {
        let state = &trigger_view(&s, &alice, &id)["state"];
        state["succeeded"] == 200 && state["lagRecords"] == 0
    });
    let state = trigger_view(&s, &alice, &id)["state"].clone();
    assert_eq!(state["failed"], 0, "{state}");
    assert!(state["batches"].as_u64().unwrap() >= 40, "{state}");
}

fn each_starting_position(backend: StreamBackend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let st = backend.stream("positions");
    st.put("a", "old-0");
    std::thread::sleep(Duration::from_millis(1100));
    let between = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(100));
    st.put("a", "old-1");
    // librdkafka's mock cluster answers no offset-by-time lookup: Kafka's
    // AT_TIMESTAMP is checked at its ends by the source's own tests.
    let at_time = backend.source() != "kafka";
    let mut outs = Vec::new();
    for (name, more) in [
        ("horizon", json!({ "startingPosition": "TRIM_HORIZON" })),
        ("latest", json!({ "startingPosition": "LATEST" })),
        (
            "attime",
            json!({ "startingPosition": "AT_TIMESTAMP",
                    "startingPositionTimestamp": between.to_rfc3339() }),
        ),
    ]
    .into_iter()
    .filter(|(name, _)| at_time || *name != "attime")
    {
        let out = out_file(dir.path(), name);
        create_fn(&s, &alice, name, &out, json!({}));
        let id = create_trigger(&s, &alice, name, &st, more);
        // LATEST is where the stream was when the trigger first ran.
        wait_for("the consumer to start", Duration::from_secs(20), || {
            trigger_view(&s, &alice, &id)["state"]["status"] != "idle"
        });
        // … and to take its shard's lease and store where it starts.
        std::thread::sleep(Duration::from_millis(1500));
        outs.push(out);
    }
    std::thread::sleep(Duration::from_secs(2));
    st.put("a", "new-0");
    for out in &outs {
        wait_for("the new record", Duration::from_secs(30), || {
            seen(out).iter().any(|(_, d)| d == "new-0")
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let data = |out: &PathBuf| -> Vec<String> { seen(out).into_iter().map(|(_, d)| d).collect() };
    assert_eq!(data(&outs[0]), ["old-0", "old-1", "new-0"]);
    assert_eq!(data(&outs[1]), ["new-0"]);
    if at_time {
        assert_eq!(data(&outs[2]), ["old-1", "new-0"]);
    }
}

fn the_checkpoint_survives_a_killed_server(backend: StreamBackend) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let s = server(&data_dir, backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "resume");
    create_fn(&s, &alice, "resume", &out, json!({}));
    let st = backend.stream("resume");
    st.put_all(&records_of(1, 10, "first-"));
    let id = create_trigger(&s, &alice, "resume", &st, json!({ "batchSize": 3 }));
    wait_for("the first records", Duration::from_secs(30), || {
        seen(&out).len() >= 10
    });
    // The checkpoint is written after each batch.
    std::thread::sleep(Duration::from_secs(1));
    drop(s); // SIGKILL: its lease stays until it expires.
    st.put_all(&records_of(1, 5, "second-"));
    let s = server(&data_dir, backend);
    wait_for(
        "the records sent while down",
        Duration::from_secs(60),
        || seen(&out).len() >= 15,
    );
    std::thread::sleep(Duration::from_secs(1));
    let data: Vec<String> = seen(&out).into_iter().map(|(_, d)| d).collect();
    let expected: Vec<String> = (0..10)
        .map(|i| format!("first-{i:03}"))
        .chain((0..5).map(|i| format!("second-{i:03}")))
        .collect();
    assert_eq!(
        data, expected,
        "resumed after the checkpoint: nothing twice"
    );
    let state = trigger_view(&s, &alice, &id)["state"].clone();
    assert_eq!(state["lagRecords"], 0, "{state}");
}

fn bisection_isolates_a_poison_record(backend: StreamBackend) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("data"), backend);
    let alice = s.token_for("alice");
    let out = out_file(dir.path(), "bisect");
    create_fn(&s, &alice, "bisect", &out, json!({}));
    let st = backend.stream("bisect");
    let mut records = records_of(1, 8, "ok-");
    records[5].1 = "poison-5".into();
    st.put_all(&records);
    let id = create_trigger(
        &s,
        &alice,
        "bisect",
        &st,
        json!({ "batchSize": 8, "bisectBatchOnFunctionError": true,
                "maximumRetryAttempts": 1, "onFailure": "queue:failed-records" }),
    );
    wait_for("the on-failure record", Duration::from_secs(60), || {
        let (code, q) = s.call("GET", "/v1/queues/failed-records", Some(&alice), None);
        code == 200 && q["depth"] == 1
    });
    let mut data: Vec<String> = seen(&out).into_iter().map(|(_, d)| d).collect();
    data.sort();
    let mut expected: Vec<String> = records
        .iter()
        .map(|(_, d)| d.clone())
        .filter(|d| !d.starts_with("poison"))
        .collect();
    expected.sort();
    assert_eq!(data, expected, "every other record succeeded once");
    // The on-failure record describes the poison record alone.
    let show_out = out_file(dir.path(), "show");
    let show = "import json, os\ndef handler(event, context):\n    with open(os.environ['OUT'], 'a') as f:\n        for r in event['Records']:\n            f.write(r['body'] + '\\n')\n";
    create_function_as(
        &s,
        &alice,
        "show",
        "Python311",
        "app.handler",
        &[("app.py", show)],
        json!({ "environment": { "OUT": show_out.to_str().unwrap() } }),
    );
    let (code, t) = s.call(
        "POST",
        "/v1/triggers",
        Some(&alice),
        Some(json!({ "functionName": "show", "type": "Queue",
                     "config": { "queueName": "failed-records" } })),
    );
    assert_eq!(code, 201, "{t}");
    wait_for("the record's reader", Duration::from_secs(20), || {
        std::fs::read_to_string(&show_out).is_ok_and(|t| !t.is_empty())
    });
    let record: Value =
        serde_json::from_str(std::fs::read_to_string(&show_out).unwrap().trim()).unwrap();
    let info = &record["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{record}");
    assert_eq!(
        info["startSequenceNumber"], info["endSequenceNumber"],
        "{record}"
    );
    assert_eq!(info["shardId"], "shardId-000000000000", "{record}");
    assert!(
        info["streamArn"].as_str().unwrap().ends_with(&st.name),
        "{record}"
    );
    let state = trigger_view(&s, &alice, &id)["state"].clone();
    assert_eq!(state["deadLettered"], 1, "{state}");
}

/// Two servers on one PostgreSQL database: the shard is read by the one
/// holding its lease; when that one is SIGKILLed the other takes the shard
/// over once the lease expires, from the stored checkpoint: every record
/// reaches the function, each key in order, none lost.
fn servers_sharing_postgres_take_over_a_dead_servers_shard(backend: StreamBackend) {
    let db = PgDb::create();
    let (blobs, dir_a, dir_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let start = |dir: &Path| {
        server_with(
            dir,
            backend,
            Some(db.url.clone()),
            vec![
                "--blob-url".into(),
                format!("file://{}", blobs.path().display()),
            ],
        )
    };
    let a = start(dir_a.path());
    let b = start(dir_b.path());
    let alice = a.token_for("alice");
    let out = out_file(blobs.path(), "shared");
    create_fn(&a, &alice, "shared", &out, json!({ "JITTER": "0.02" }));
    let st = backend.stream("shared");
    st.put_all(&records_of(4, 10, "a"));
    let id = create_trigger(&a, &alice, "shared", &st, json!({ "batchSize": 4 }));
    wait_for("the first records", Duration::from_secs(60), || {
        seen(&out).len() >= 40
    });
    // One server holds the shard: only it has run batches.
    let batches = |s: &Server| {
        trigger_view(s, &alice, &id)["state"]["batches"]
            .as_u64()
            .unwrap_or(0)
    };
    let (on_a, on_b) = (batches(&a), batches(&b));
    assert!(
        (on_a == 0) != (on_b == 0),
        "exactly one server consumed the shard: {on_a} and {on_b} batches"
    );
    let (holder, other) = if on_a > 0 { (a, b) } else { (b, a) };
    drop(holder); // SIGKILL
    st.put_all(&records_of(4, 10, "b"));
    wait_for(
        "the records after the takeover",
        Duration::from_secs(60),
        || seen(&out).len() >= 80,
    );
    std::thread::sleep(Duration::from_secs(1));
    let lines = seen(&out);
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, d) in &lines {
        per_key.entry(k.clone()).or_default().push(d.clone());
    }
    for (k, data) in &per_key {
        // At least once: records after the dead server's last checkpoint
        // may come again; first deliveries are in order, none missing.
        let mut firsts: Vec<String> = Vec::new();
        for d in data {
            if !firsts.contains(d) {
                firsts.push(d.clone());
            }
        }
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted, "key {k} in order");
        assert_eq!(sorted.len(), 20, "key {k}: every record");
    }
    assert!(batches(&other) > 0, "the survivor took the shard over");
}

/// A build without the `kafka` feature refuses `--kafka-brokers` at start
/// rather than accepting Kafka triggers it would never consume.
#[cfg(not(feature = "kafka"))]
#[test]
fn a_build_without_kafka_refuses_kafka_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--kafka-brokers", "127.0.0.1:9092"])
        .env("HOTSWAP_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--features kafka"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created by a server that never ran"
    );
}
