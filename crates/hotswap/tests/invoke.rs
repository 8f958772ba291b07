//! Invocations through the real binary: Python, Node and Provided functions,
//! errors, timeouts, warm reuse, versions side by side, aliases, logs, limits.

mod common;

use std::time::Instant;

use common::*;
use serde_json::{json, Value};

fn create(
    s: &Server,
    name: &str,
    runtime: &str,
    handler: &str,
    files: &[(&str, &str)],
    extra: Value,
) -> Value {
    create_function_as(s, ADMIN_TOKEN, name, runtime, handler, files, extra)
}

/// Invokes and returns (status, headers, body text).
fn invoke(s: &Server, path: &str, event: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}{}", s.url, path))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(event.to_owned())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap())
}

fn h<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

const PY_ECHO: &str = r#"
import os
calls = 0
def handler(event, context):
    global calls
    calls += 1
    print("handling", context.aws_request_id)
    return {"event": event, "calls": calls, "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
            "memory": context.memory_limit_in_mb, "stage": os.environ.get("STAGE"), "reply": REPLY}
REPLY = "one"
"#;

#[test]
fn python_echo_cold_then_warm_with_all_result_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    create(
        &s,
        "py-echo",
        "Python311",
        "app.handler",
        &[("app.py", PY_ECHO)],
        json!({ "environment": { "STAGE": "test" }, "memorySize": 512 }),
    );

    let (st, hd, body) = invoke(&s, "/v1/functions/py-echo/invoke", r#"{"hello":"world"}"#);
    assert_eq!(st, 200, "{body}");
    let out: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["event"], json!({ "hello": "world" }));
    assert_eq!(out["calls"], 1);
    assert_eq!(out["version"], "$LATEST");
    assert_eq!(out["memory"], 512);
    assert_eq!(out["stage"], "test");
    assert_eq!(h(&hd, "x-cold-start"), "true");
    assert_eq!(h(&hd, "x-executed-version"), "$LATEST");
    assert_eq!(h(&hd, "x-request-id").len(), 36);
    assert!(h(&hd, "x-log-stream").contains("[$LATEST]"), "{hd:?}");
    let billed: u64 = h(&hd, "x-billed-ms").parse().unwrap();
    let exec: u64 = h(&hd, "x-execution-ms").parse().unwrap();
    assert!(billed >= 1 && billed >= exec, "billed {billed} exec {exec}");
    assert!(h(&hd, "x-memory-used-mb").parse::<u64>().unwrap() > 0);
    assert!(hd.get("x-function-error").is_none());

    // warm: same process (module state kept), flagged warm
    let (st, hd, body) = invoke(
        &s,
        "/v1/functions/py-echo/invoke?result=full&log=tail",
        r#"{"n":2}"#,
    );
    assert_eq!(st, 200);
    let full: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(full["wasColdStart"], false);
    assert_eq!(full["success"], true);
    assert_eq!(full["statusCode"], 200);
    let inner: Value = serde_json::from_str(full["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["calls"], 2, "the warm instance was reused");
    let rid = full["requestId"].as_str().unwrap();
    assert_eq!(h(&hd, "x-request-id"), rid);
    use base64::Engine;
    let tail = base64::engine::general_purpose::STANDARD
        .decode(h(&hd, "x-log-result"))
        .unwrap();
    let tail = String::from_utf8(tail).unwrap();
    let tail: Vec<&str> = tail.lines().collect();
    assert_eq!(tail.len(), 4, "{tail:?}");
    assert_eq!(tail[0], format!("START RequestId: {rid} Version: $LATEST"));
    assert_eq!(tail[1], format!("handling {rid}"));
    assert_eq!(tail[2], format!("END RequestId: {rid}"));
    assert!(
        tail[3].starts_with(&format!("REPORT RequestId: {rid}\tDuration: ")),
        "{tail:?}"
    );

    // the logs API has the line, tagged with its request id
    let (st, logs) = s.admin(
        "GET",
        &format!("/v1/functions/py-echo/logs?requestId={rid}"),
        None,
    );
    assert_eq!(st, 200);
    let items: Vec<&Value> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stream"] != "platform")
        .collect();
    assert_eq!(items.len(), 1, "{logs}");
    assert_eq!(items[0]["message"], format!("handling {rid}"));
    assert_eq!(items[0]["version"], "$LATEST");
}

#[test]
fn function_errors_timeouts_and_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let code = r#"
import time, os
def boom(event, context):
    raise ValueError("bad input: " + str(event.get("x")))
def slow(event, context):
    time.sleep(5)
    return "late"
def crash(event, context):
    os._exit(3)
def ok(event, context):
    return "fine"
"#;
    create(
        &s,
        "err",
        "Python311",
        "app.boom",
        &[("app.py", code)],
        json!({}),
    );
    let (st, hd, body) = invoke(&s, "/v1/functions/err/invoke", r#"{"x":42}"#);
    assert_eq!(st, 200, "a function error is not a platform error");
    assert_eq!(h(&hd, "x-function-error"), "ValueError");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["errorType"], "ValueError");
    assert_eq!(e["errorMessage"], "bad input: 42");
    assert!(
        e["stackTrace"].as_array().is_some_and(|t| !t.is_empty()),
        "{e}"
    );
    let (_, _, body) = invoke(&s, "/v1/functions/err/invoke?result=full", "{}");
    let full: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (full["success"].as_bool(), full["errorType"].as_str()),
        (Some(false), Some("ValueError"))
    );
    assert_eq!(
        full["wasColdStart"], false,
        "an instance survives a handler exception"
    );

    create(
        &s,
        "slow",
        "Python311",
        "app.slow",
        &[("app.py", code)],
        json!({ "timeout": 1 }),
    );
    let started = Instant::now();
    let (st, hd, body) = invoke(&s, "/v1/functions/slow/invoke", "{}");
    assert_eq!(st, 200);
    assert!(
        started.elapsed().as_secs_f64() < 4.0,
        "the timeout kills: {:?}",
        started.elapsed()
    );
    assert_eq!(h(&hd, "x-function-error"), "Sandbox.Timedout");
    assert!(body.contains("Task timed out after 1 seconds"), "{body}");
    // the killed instance is replaced by a cold one
    let (_, hd, _) = invoke(&s, "/v1/functions/slow/invoke", "{}");
    assert_eq!(h(&hd, "x-cold-start"), "true");

    create(
        &s,
        "crash",
        "Python311",
        "app.crash",
        &[("app.py", code)],
        json!({}),
    );
    let (st, hd, body) = invoke(&s, "/v1/functions/crash/invoke", "{}");
    assert_eq!(st, 200);
    assert_eq!(h(&hd, "x-function-error"), "Runtime.ExitError", "{body}");
    assert!(body.contains("exit status 3"), "{body}");

    create(
        &s,
        "nomod",
        "Python311",
        "missing.handler",
        &[("app.py", code)],
        json!({}),
    );
    let (_, hd, body) = invoke(&s, "/v1/functions/nomod/invoke", "{}");
    assert_eq!(
        h(&hd, "x-function-error"),
        "Runtime.ImportModuleError",
        "{body}"
    );

    // Said at create, not only at invoke.
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v1/functions", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({ "name": "dotnet", "runtime": "Dotnet8", "handler": "App::App.Handler::Run",
                       "code": { "zipFile": b64(&zip_of(&[("App.dll", "x")])) } }),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let warning = resp
        .headers()
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        warning.starts_with("299 hotswap \"runtime Dotnet8 is not available on any runner"),
        "{warning}"
    );
    let (st, _, body) = invoke(&s, "/v1/functions/dotnet/invoke", "{}");
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("not available on any runner"), "{body}");
}

#[test]
fn versions_side_by_side_and_alias_routing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    create(
        &s,
        "vv",
        "Python311",
        "app.handler",
        &[("app.py", PY_ECHO)],
        json!({}),
    );
    assert_eq!(s.admin("POST", "/v1/functions/vv/versions", None).0, 201);
    let two = PY_ECHO.replace("REPLY = \"one\"", "REPLY = \"two\"");
    let (st, _) = s.admin(
        "PUT",
        "/v1/functions/vv/code",
        Some(json!({ "zipFile": b64(&zip_of(&[("app.py", &two)])) })),
    );
    assert_eq!(st, 200);
    assert_eq!(s.admin("POST", "/v1/functions/vv/versions", None).0, 201);

    for (q, reply, version) in [
        ("1", "one", "1"),
        ("2", "two", "2"),
        ("$LATEST", "two", "$LATEST"),
        ("1", "one", "1"),
    ] {
        let (st, hd, body) = invoke(
            &s,
            &format!(
                "/v1/functions/vv/invoke?qualifier={}",
                q.replace('$', "%24")
            ),
            "{}",
        );
        assert_eq!(st, 200, "{body}");
        let out: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (out["reply"].as_str(), out["version"].as_str()),
            (Some(reply), Some(version)),
            "qualifier {q}"
        );
        assert_eq!(h(&hd, "x-executed-version"), version);
    }
    // v1 ran twice on its own warm instance, never on v2's
    let (_, _, body) = invoke(&s, "/v1/functions/vv/invoke?qualifier=1", "{}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["calls"], 3);

    assert_eq!(
        s.admin(
            "POST",
            "/v1/functions/vv/aliases",
            Some(
                json!({ "aliasName": "prod", "version": 1, "routingConfig": { "1": 50, "2": 50 } })
            )
        )
        .0,
        201
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (st, hd, _) = invoke(&s, "/v1/functions/vv/invoke?qualifier=prod", "{}");
        assert_eq!(st, 200);
        *seen
            .entry(h(&hd, "x-executed-version").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["1", "2"],
        "both versions get traffic: {seen:?}"
    );
    assert!(seen.values().all(|n| *n >= 5), "roughly 50/50: {seen:?}");
    let (st, _, body) = invoke(&s, "/v1/functions/vv/invoke?qualifier=nope", "{}");
    assert_eq!(st, 404, "{body}");
}

#[test]
fn node_handlers_and_a_provided_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let js = r#"
exports.asyncHandler = async (event, context) => ({ got: event, fn: context.functionName });
exports.syncHandler = (event) => ({ sync: event.n * 2 });
exports.cbHandler = (event, context, callback) => { setTimeout(() => callback(null, { cb: true }), 5); };
exports.failing = async () => { throw new TypeError("nope"); };
"#;
    for (name, handler) in [
        ("n-async", "index.asyncHandler"),
        ("n-sync", "index.syncHandler"),
        ("n-cb", "index.cbHandler"),
        ("n-fail", "index.failing"),
    ] {
        create(&s, name, "Node20", handler, &[("index.js", js)], json!({}));
    }
    let (st, _, body) = invoke(&s, "/v1/functions/n-async/invoke", r#"{"a":1}"#);
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "got": { "a": 1 }, "fn": "n-async" })
    );
    let (_, _, body) = invoke(&s, "/v1/functions/n-sync/invoke", r#"{"n":21}"#);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "sync": 42 })
    );
    let (_, _, body) = invoke(&s, "/v1/functions/n-cb/invoke", "{}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "cb": true })
    );
    let (_, hd, body) = invoke(&s, "/v1/functions/n-fail/invoke", "{}");
    assert_eq!(h(&hd, "x-function-error"), "TypeError", "{body}");

    // Provided: the zip's own executable bootstrap speaks the Runtime API.
    let bootstrap = r#"#!/usr/bin/python3 -S
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    out = json.dumps({"provided": event, "handler": os.environ["_HANDLER"]}).encode()
    urllib.request.urlopen(urllib.request.Request(api + rid + "/response", data=out, method="POST")).read()
"#;
    let zip = zip_with_exec("bootstrap", bootstrap);
    let (st, f) = s.admin("POST", "/v1/functions", Some(json!({ "name": "prov", "runtime": "Provided", "handler": "my.handler", "code": { "zipFile": b64(&zip) } })));
    assert_eq!(st, 201, "{f}");
    let (st, _, body) = invoke(&s, "/v1/functions/prov/invoke", r#"{"x":1}"#);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "provided": { "x": 1 }, "handler": "my.handler" })
    );
}

#[test]
fn max_instances_queues_then_429() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--queue-timeout".into(), "200ms".into()],
            ..Default::default()
        },
    );
    let code = "import time\ndef handler(e, c):\n    time.sleep(e.get('s', 0))\n    return 'ok'\n";
    create(
        &s,
        "one",
        "Python311",
        "app.handler",
        &[("app.py", code)],
        json!({ "scalingConfig": { "maxInstances": 1 } }),
    );
    assert_eq!(invoke(&s, "/v1/functions/one/invoke", "{}").0, 200);
    let url = s.url.clone();
    let busy = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{url}/v1/functions/one/invoke"))
            .bearer_auth(ADMIN_TOKEN)
            .body(r#"{"s":1.5}"#)
            .send()
            .unwrap()
            .status()
            .as_u16()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (st, _, body) = invoke(&s, "/v1/functions/one/invoke", "{}");
    assert_eq!(st, 429, "{body}");
    assert!(
        body.contains("TooManyRequests") && body.contains("MaxInstances"),
        "{body}"
    );
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(
        invoke(&s, "/v1/functions/one/invoke", "{}").0,
        200,
        "free again"
    );
}

#[test]
fn counters_metrics_and_can_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--runner-heartbeat".into(), "200ms".into()],
            ..Default::default()
        },
    );
    let code = "def ok(e, c):\n    return 1\ndef bad(e, c):\n    raise KeyError('k')\n";
    create(
        &s,
        "cnt",
        "Python311",
        "app.ok",
        &[("app.py", code)],
        json!({}),
    );
    assert_eq!(s.admin("POST", "/v1/functions/cnt/versions", None).0, 201);
    for _ in 0..4 {
        assert_eq!(
            invoke(&s, "/v1/functions/cnt/invoke?qualifier=1", "{}").0,
            200
        );
    }
    let (_, _, _) = invoke(&s, "/v1/functions/cnt/invoke", "{}");
    create(
        &s,
        "cnt-bad",
        "Python311",
        "app.bad",
        &[("app.py", code)],
        json!({}),
    );
    for _ in 0..2 {
        invoke(&s, "/v1/functions/cnt-bad/invoke", "{}");
    }

    // the runner's own per-version figures
    let (st, m) = s.admin("GET", "/v1/functions/cnt/metrics", None);
    assert_eq!(st, 200);
    let items = m["items"].as_array().unwrap();
    let v1 = items
        .iter()
        .find(|i| i["version"] == "1")
        .expect("v1 metrics");
    assert_eq!(
        (
            v1["invocations"].as_u64(),
            v1["errors"].as_u64(),
            v1["coldStarts"].as_u64()
        ),
        (Some(4), Some(0), Some(1))
    );
    assert!(v1["p99DurationMs"].as_f64().unwrap() >= v1["p50DurationMs"].as_f64().unwrap());
    let (_, bad) = s.admin("GET", "/v1/functions/cnt-bad/metrics", None);
    assert_eq!(bad["items"][0]["errorRate"], 100.0, "{bad}");

    // Prometheus text (an admin or metrics token: tests/tokens.rs)
    let text = s.prometheus();
    assert!(
        text.contains(
            "hotswap_invocations_total{owner=\"admin\",function=\"cnt\",version=\"1\"} 4"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "hotswap_invocation_errors_total{owner=\"admin\",function=\"cnt-bad\",version=\"$LATEST\"} 2"
        ),
        "{text}"
    );

    // the seed's counters reach the store (flushed every second)
    let mut total = 0;
    for _ in 0..50 {
        let (_, f) = s.admin("GET", "/v1/functions/cnt", None);
        total = f["totalInvocations"].as_u64().unwrap();
        if total == 5 {
            assert!(f["lastInvokedAt"].is_string(), "{f}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(total, 5);
    let (_, v) = s.admin("GET", "/v1/functions/cnt/versions/1", None);
    assert_eq!(v["invocationCount"], 4);

    // CanDelete: an Active version that served invocations must be deprecated first
    let (st, err) = s.admin("DELETE", "/v1/functions/cnt/versions/1", None);
    assert_eq!(st, 409, "{err}");
    assert_eq!(
        s.admin(
            "PATCH",
            "/v1/functions/cnt/versions/1",
            Some(json!({ "status": "Deprecated" }))
        )
        .0,
        200
    );
    assert_eq!(
        s.admin("DELETE", "/v1/functions/cnt/versions/1", None).0,
        204
    );

    // the runner's heartbeat carries the seed's RunnerMetrics into the registry
    // (every 200 ms here): 5 + 2 invocations, 2 of them failed, 3 cold starts
    let mut metrics = Value::Null;
    for _ in 0..50 {
        let (_, local) = s.admin("GET", "/v1/runners/local", None);
        metrics = local["metrics"].clone();
        if metrics["totalInvocations"] == 7 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        (
            metrics["totalInvocations"].as_u64(),
            metrics["failedInvocations"].as_u64(),
            metrics["coldStarts"].as_u64()
        ),
        (Some(7), Some(2), Some(3)),
        "{metrics}"
    );
    assert!(
        metrics["avgInvocationDuration"].as_f64().unwrap() > 0.0,
        "{metrics}"
    );
}
