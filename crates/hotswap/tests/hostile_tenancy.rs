//! A function's identity and names per owner, tried the way a hostile
//! tenant would: real functions in the isolated sandbox (needs root and
//! bubblewrap) and real API calls against the binary.
//!
//! - a deleted function's instances, logs and metrics never reach the next
//!   function of the same name;
//! - deleting a function stops its instances, idle ones at once and busy
//!   ones when their call ends;
//! - two owners may each have a function of one name, and neither reaches
//!   the other's (an admin reaches both with `?owner=`);
//! - Prometheus keeps them apart by an `owner` label.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Keeps what it is told in memory, across calls of one instance.
const MEMORY: &str = r#"
import os

STATE = {"secret": None, "calls": 0}

def handler(event, context):
    if "secret" in event:
        STATE["secret"] = event["secret"]
    STATE["calls"] += 1
    print("call from " + str(event.get("who")) + " holding " + str(STATE["secret"]))
    return {"secret": STATE["secret"], "calls": STATE["calls"]}

def slow(event, context):
    import time
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"#;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Invokes and returns (status, X-Cold-Start, body).
fn invoke(s: &Server, token: &str, path: &str, event: Value) -> (u16, Option<bool>, Value) {
    let resp = client()
        .post(format!("{}{path}", s.url))
        .bearer_auth(token)
        .json(&event)
        .send()
        .expect("invoke");
    let status = resp.status().as_u16();
    let cold = resp
        .headers()
        .get("x-cold-start")
        .and_then(|v| v.to_str().ok())
        .map(|v| v == "true");
    let body = resp.json::<Value>().unwrap_or(Value::Null);
    (status, cold, body)
}

fn create(s: &Server, token: &str, body: Value) -> Value {
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "{f}");
    f
}

fn memory_function(name: &str, extra: Value) -> Value {
    let mut body = json!({ "name": name, "runtime": "Python311", "handler": "app.handler",
        "timeout": 5, "code": { "zipFile": b64(&zip_of(&[("app.py", MEMORY)])) } });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// PIDs of the processes whose environment holds `KEY=value` (the
/// function's own variable, so: its instances).
fn processes_with(key: &str, value: &str) -> Vec<u32> {
    let needle = format!("{key}={value}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// A value no other process's environment holds.
fn unique_marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("m{}-{nanos}", std::process::id())
}

/// Waits up to `limit` for `done`.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn total_invocations(metrics: &Value) -> u64 {
    metrics["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["invocations"].as_u64().unwrap())
        .sum()
}

/// The review's attack: Bob's function keeps a secret in memory; he
/// deletes it, Alice creates a function of the same name with the same
/// zip. Her first call must start a new instance that has never seen Bob's
/// data, and her logs and metrics must hold nothing of his.
#[test]
fn a_deleted_functions_instances_logs_and_metrics_never_serve_the_next_owner_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let bob = s.token_for("bob");
    let alice = s.token_for("alice");

    let bobs = create(&s, &bob, memory_function("reuse", json!({})));
    let path = "/v1/functions/reuse/invoke";
    let (st, cold, r) = invoke(
        &s,
        &bob,
        path,
        json!({"secret": "bob-secret-4711", "who": "bob"}),
    );
    assert_eq!((st, cold), (200, Some(true)), "{r}");
    let (st, cold, r) = invoke(&s, &bob, path, json!({"who": "bob"}));
    assert_eq!((st, cold), (200, Some(false)), "{r}");
    assert_eq!(
        r["secret"], "bob-secret-4711",
        "Bob's instance is warm: {r}"
    );

    let (st, b) = s.call("DELETE", "/v1/functions/reuse", Some(&bob), None);
    assert_eq!(st, 204, "{b}");

    let alices = create(&s, &alice, memory_function("reuse", json!({})));
    let (st, cold, r) = invoke(&s, &alice, path, json!({"who": "alice"}));
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        r,
        json!({"secret": null, "calls": 1}),
        "Alice's call ran in a fresh instance"
    );
    assert_eq!(cold, Some(true), "Alice's first call is a cold start");

    let (st, logs) = s.call("GET", "/v1/functions/reuse/logs", Some(&alice), None);
    assert_eq!(st, 200, "{logs}");
    let lines = logs["items"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("call from alice")),
        "{logs}"
    );
    assert!(
        !lines.iter().any(|l| {
            let m = l["message"].as_str().unwrap();
            m.contains("bob")
        }),
        "Alice sees none of Bob's lines: {logs}"
    );
    let (st, metrics) = s.call("GET", "/v1/functions/reuse/metrics", Some(&alice), None);
    assert_eq!(st, 200, "{metrics}");
    assert_eq!(
        total_invocations(&metrics),
        1,
        "Alice's metrics count her call only: {metrics}"
    );
    assert_ne!(
        alices["functionId"], bobs["functionId"],
        "a re-created function has a new id"
    );
    assert!(alices["functionId"].as_str().is_some_and(|i| !i.is_empty()));
}

/// Deleting a function stops its instances: an idle one at once, a busy
/// one when its call ends (within the function's timeout). No process of
/// the function is left behind.
#[test]
fn deleting_a_function_stops_its_instances_idle_at_once_and_busy_when_their_call_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let bob = s.token_for("bob");

    // An idle instance.
    let marker = unique_marker();
    create(
        &s,
        &bob,
        memory_function(
            "idle",
            json!({"handler": "app.slow", "environment": {"TENANCY_MARKER": marker}}),
        ),
    );
    let (st, _, r) = invoke(&s, &bob, "/v1/functions/idle/invoke", json!({}));
    assert_eq!(st, 200, "{r}");
    assert!(
        !processes_with("TENANCY_MARKER", &marker).is_empty(),
        "the warm instance is running"
    );
    let (st, b) = s.call("DELETE", "/v1/functions/idle", Some(&bob), None);
    assert_eq!(st, 204, "{b}");
    assert!(
        eventually(Duration::from_secs(3), || processes_with(
            "TENANCY_MARKER",
            &marker
        )
        .is_empty()),
        "the idle instance of a deleted function is stopped: {:?} remain",
        processes_with("TENANCY_MARKER", &marker)
    );

    // A busy instance: the call in flight ends, then the instance goes.
    let marker = unique_marker();
    create(
        &s,
        &bob,
        memory_function(
            "busy",
            json!({"handler": "app.slow", "environment": {"TENANCY_MARKER": marker}}),
        ),
    );
    let url = s.url.clone();
    let token = bob.clone();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        let resp = client()
            .post(format!("{url}/v1/functions/busy/invoke"))
            .bearer_auth(&token)
            .json(&json!({"sleep": 3}))
            .send()
            .expect("invoke");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    });
    assert!(
        eventually(Duration::from_secs(15), || !processes_with(
            "TENANCY_MARKER",
            &marker
        )
        .is_empty()),
        "the instance started"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (st, b) = s.call("DELETE", "/v1/functions/busy", Some(&bob), None);
    assert_eq!(st, 204, "{b}");
    let (status, body) = call.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5 + 15),
        "the call in flight ended within the function's timeout"
    );
    assert!(status == 200 || status >= 400, "{status} {body}");
    assert!(
        eventually(Duration::from_secs(3), || processes_with(
            "TENANCY_MARKER",
            &marker
        )
        .is_empty()),
        "the busy instance of a deleted function is stopped once its call ended: {:?} remain",
        processes_with("TENANCY_MARKER", &marker)
    );
}

fn orders(reply: &str) -> Value {
    json!({ "name": "orders", "runtime": "Python311", "handler": "app.handler",
        "code": { "zipFile": python_code(reply) } })
}

/// Names are scoped per owner: Alice and Bob each have `orders`, each
/// invokes its own, neither reaches the other's, and an admin reaches both
/// with `?owner=`.
#[test]
fn two_owners_each_have_their_own_function_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");

    let a = create(&s, &alice, orders("alice's orders"));
    let b = create(&s, &bob, orders("bob's orders"));
    assert_ne!(a["functionId"], b["functionId"]);
    assert_eq!(
        (a["ownerId"].as_str(), b["ownerId"].as_str()),
        (Some("alice"), Some("bob"))
    );
    let (st, e) = s.call("POST", "/v1/functions", Some(&alice), Some(orders("again")));
    assert_eq!(st, 409, "a name is unique within its owner: {e}");
    assert_eq!(e["code"], "Conflict");

    let path = "/v1/functions/orders/invoke";
    assert_eq!(invoke(&s, &alice, path, json!({})).2, "alice's orders");
    assert_eq!(invoke(&s, &bob, path, json!({})).2, "bob's orders");

    // The admin addresses each owner's function explicitly.
    let admin = ADMIN_TOKEN;
    let at = |owner: &str| format!("{path}?owner={owner}");
    assert_eq!(
        invoke(&s, admin, &at("alice"), json!({})).2,
        "alice's orders"
    );
    assert_eq!(invoke(&s, admin, &at("bob"), json!({})).2, "bob's orders");
    let (st, f) = s.admin("GET", "/v1/functions/orders?owner=bob", None);
    assert_eq!(
        (st, f["functionId"].clone()),
        (200, b["functionId"].clone()),
        "{f}"
    );
    let (st, e) = s.admin("GET", "/v1/functions/orders", None);
    assert_eq!(
        st, 404,
        "without ?owner= an admin is in its own namespace: {e}"
    );
    let (st, page) = s.admin("GET", "/v1/functions", None);
    assert_eq!(st, 200);
    let owners: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "orders")
        .map(|f| f["ownerId"].as_str().unwrap())
        .collect();
    assert_eq!(
        owners,
        ["alice", "bob"],
        "an admin lists every owner's: {page}"
    );
    let (_, page) = s.admin("GET", "/v1/functions?owner=bob", None);
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");

    // A tenant cannot reach another owner's function with ?owner=.
    let (st, e) = s.call("GET", "/v1/functions/orders?owner=bob", Some(&alice), None);
    assert_eq!(st, 404, "{e}");
    let (st, _, e) = invoke(&s, &alice, &at("bob"), json!({}));
    assert_eq!(st, 404, "{e}");
    let (st, e) = s.call(
        "GET",
        "/v1/functions/orders/logs?owner=bob",
        Some(&alice),
        None,
    );
    assert_eq!(st, 404, "{e}");
    let (st, e) = s.call(
        "DELETE",
        "/v1/functions/orders?owner=bob",
        Some(&alice),
        None,
    );
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["code"], "Forbidden");
    let (st, e) = s.call(
        "POST",
        "/v1/functions/orders/versions?owner=bob",
        Some(&alice),
        Some(json!({})),
    );
    assert_eq!(st, 403, "{e}");
    let (st, e) = s.call(
        "POST",
        "/v1/functions?owner=bob",
        Some(&alice),
        Some(orders("x")),
    );
    assert_eq!(st, 403, "{e}");
    let (_, page) = s.call("GET", "/v1/functions?owner=bob", Some(&alice), None);
    assert_eq!(page["items"], json!([]), "{page}");
    let (_, mine) = s.call("GET", "/v1/functions/orders", Some(&bob), None);
    assert_eq!(mine["functionId"], b["functionId"], "Bob's is untouched");

    // The CLI's --owner does the same.
    let cli = |token: &str, args: &[&str]| {
        let mut cmd = cli_command(&s.url, Some(token), args);
        cmd.env_remove("HOTSWAP_OWNER");
        Run::from_output(cmd.output().unwrap())
    };
    let run = cli(
        admin,
        &["fn", "get", "orders", "--owner", "bob", "-o", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["functionId"], b["functionId"], "{run:?}");
    let run = cli(
        &alice,
        &["fn", "get", "orders", "--owner", "bob", "-o", "json"],
    );
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("not found"), "{run:?}");

    // An admin's asynchronous invocation of Bob's function runs Bob's, and
    // is Bob's to read.
    let resp = client()
        .post(format!("{}{}", s.url, at("bob")))
        .bearer_auth(admin)
        .header("X-Invocation-Type", "Event")
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let request_id = resp.json::<Value>().unwrap()["requestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stored = Value::Null;
    assert!(
        eventually(Duration::from_secs(20), || {
            let (st, r) = s.call(
                "GET",
                &format!("/v1/invocations/{request_id}"),
                Some(&bob),
                None,
            );
            stored = r;
            st == 200
        }),
        "{stored}"
    );
    assert_eq!(stored["body"], "\"bob's orders\"", "{stored}");
    let (st, _) = s.call(
        "GET",
        &format!("/v1/invocations/{request_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 404);

    // Triggers: an admin binds another owner's function with ownerId; a
    // tenant cannot.
    let trigger = |owner: &str| {
        json!({ "functionName": "orders", "ownerId": owner, "type": "Scheduled",
                "config": { "scheduleExpression": "rate(7 days)" } })
    };
    let (st, t) = s.admin("POST", "/v1/triggers", Some(trigger("bob")));
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["functionId"], b["functionId"], "{t}");
    let (st, e) = s.call("POST", "/v1/triggers", Some(&alice), Some(trigger("bob")));
    assert_eq!(st, 403, "{e}");
    let (_, listed) = s.call("GET", "/v1/triggers", Some(&alice), None);
    assert_eq!(listed["items"], json!([]), "{listed}");
    let (_, listed) = s.call("GET", "/v1/triggers", Some(&bob), None);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    // Deleting one owner's leaves the other's.
    let (st, _) = s.call("DELETE", "/v1/functions/orders", Some(&alice), None);
    assert_eq!(st, 204);
    assert_eq!(invoke(&s, &bob, path, json!({})).2, "bob's orders");
    let (st, e) = s.call(
        "POST",
        "/v1/functions/orders/versions",
        Some(&bob),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{e}");
}

/// Prometheus text keeps two owners' functions of one name apart.
#[test]
fn prometheus_labels_carry_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");
    create(&s, &alice, orders("a"));
    create(&s, &bob, orders("b"));
    let path = "/v1/functions/orders/invoke";
    for _ in 0..2 {
        assert_eq!(invoke(&s, &alice, path, json!({})).0, 200);
    }
    assert_eq!(invoke(&s, &bob, path, json!({})).0, 200);
    let text = s.prometheus();
    assert!(
        text.contains(
            "hotswap_invocations_total{owner=\"alice\",function=\"orders\",version=\"$LATEST\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "hotswap_invocations_total{owner=\"bob\",function=\"orders\",version=\"$LATEST\"} 1"
        ),
        "{text}"
    );
}
