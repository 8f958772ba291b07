//! Asynchronous invocations through the real binary: 202 then a stored
//! result, retries on failure, tenancy, and no loss across a server kill.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
import time
def echo(event, context):
    return {"got": event}
def boom(event, context):
    raise RuntimeError("always fails")
def slow(event, context):
    time.sleep(1.5)
    return {"slow": event}
def nap(event, context):
    time.sleep(0.3)
    return {"napped": event}
def flaky(event, context):
    # The instance stays warm after a function error, so /tmp keeps the ids
    # every attempt ran under; the first attempt fails.
    with open("/tmp/ids", "a") as f:
        f.write(context.aws_request_id + "\n")
    ids = open("/tmp/ids").read().split()
    print("attempt", len(ids), "ran as", context.aws_request_id)
    if len(ids) < 2:
        raise RuntimeError("the first attempt fails")
    return {"ids": ids}
"#;

fn create(s: &Server, token: &str, name: &str, handler: &str, timeout: u32) {
    create_with(s, token, name, handler, timeout, json!({}));
}

/// Creates a function with `extra` fields merged into the request.
fn create_with(s: &Server, token: &str, name: &str, handler: &str, timeout: u32, extra: Value) {
    let mut body = json!({ "name": name, "runtime": "Python311", "handler": handler, "timeout": timeout,
        "code": { "zipFile": b64(&zip_of(&[("app.py", CODE)])) } });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "{f}");
}

fn queue(s: &Server, token: &str, path: &str, event: &str) -> (u16, Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}{}", s.url, path))
        .bearer_auth(token)
        .header("X-Invocation-Type", "Event")
        .header("content-type", "application/json")
        .body(event.to_owned())
        .send()
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().unwrap_or(Value::Null))
}

/// Polls until the result exists; returns it with the status and attempts headers.
fn wait_result(s: &Server, token: &str, id: &str, within: Duration) -> (Value, String, String) {
    let deadline = Instant::now() + within;
    loop {
        let resp = reqwest::blocking::Client::new()
            .get(format!("{}/v1/invocations/{id}", s.url))
            .bearer_auth(token)
            .send()
            .unwrap();
        let st = resp.status().as_u16();
        let hd = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (status, attempts) = (hd("x-invocation-status"), hd("x-attempts"));
        let body: Value = resp.json().unwrap_or(Value::Null);
        if st == 200 {
            return (body, status, attempts);
        }
        assert_eq!(st, 404, "{body}");
        assert!(
            Instant::now() < deadline,
            "no result for {id} within {within:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn queued_then_stored_with_retries_and_tenancy() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(&s, &alice, "a-echo", "app.echo", 30);
    create(&s, &alice, "a-boom", "app.boom", 30);

    let (st, q) = queue(&s, &alice, "/v1/functions/a-echo/invoke", r#"{"n":1}"#);
    assert_eq!(st, 202, "{q}");
    let id = q["requestId"].as_str().unwrap().to_owned();
    let (result, status, attempts) = wait_result(&s, &alice, &id, Duration::from_secs(20));
    assert_eq!((status.as_str(), attempts.as_str()), ("Succeeded", "1"));
    assert_eq!(result["success"], true);
    assert_eq!(
        serde_json::from_str::<Value>(result["body"].as_str().unwrap()).unwrap(),
        json!({ "got": { "n": 1 } })
    );

    // ?async=true is the same; other tenants cannot see it
    let (st, q2) = s.call(
        "POST",
        "/v1/functions/a-echo/invoke?async=true",
        Some(&alice),
        Some(json!({ "n": 2 })),
    );
    assert_eq!(st, 202, "{q2}");
    let bob = s.token_for("bob");
    assert_eq!(
        s.call("GET", &format!("/v1/invocations/{id}"), Some(&bob), None)
            .0,
        404
    );
    assert_eq!(
        queue(&s, &bob, "/v1/functions/a-echo/invoke", "{}").0,
        404,
        "bob cannot queue alice's function"
    );
    assert_eq!(queue(&s, &alice, "/v1/functions/nope/invoke", "{}").0, 404);

    // a failing function: first attempt plus two retries with backoff, then Failed
    let started = Instant::now();
    let (_, q) = queue(&s, &alice, "/v1/functions/a-boom/invoke", "{}");
    let id = q["requestId"].as_str().unwrap().to_owned();
    let (result, status, attempts) = wait_result(&s, &alice, &id, Duration::from_secs(30));
    assert_eq!((status.as_str(), attempts.as_str()), ("Failed", "3"));
    assert_eq!(result["errorType"], "RuntimeError");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "backoff of 1 s then 2 s: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_server_kill_loses_no_async_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || ServerOptions {
        extra_args: vec!["--async-lease-grace".into(), "1s".into()],
        ..Default::default()
    };
    let s = Server::start_with(dir.path(), opts());
    create(&s, ADMIN_TOKEN, "slow", "app.slow", 3);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (st, q) = queue(
            &s,
            ADMIN_TOKEN,
            "/v1/functions/slow/invoke",
            &format!("{{\"i\":{i}}}"),
        );
        assert_eq!(st, 202);
        ids.push(q["requestId"].as_str().unwrap().to_owned());
    }
    std::thread::sleep(Duration::from_millis(300));
    s.stop(); // SIGKILL mid-attempt: nothing finished

    let s = Server::start_with(dir.path(), opts());
    for (i, id) in ids.iter().enumerate() {
        let (result, status, attempts) = wait_result(&s, ADMIN_TOKEN, id, Duration::from_secs(30));
        assert_eq!(status, "Succeeded", "{result}");
        assert!(attempts.parse::<u32>().unwrap() >= 1);
        assert_eq!(
            serde_json::from_str::<Value>(result["body"].as_str().unwrap()).unwrap(),
            json!({ "slow": { "i": i } })
        );
    }
}

#[test]
fn exhausted_invocations_are_dead_lettered_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(&s, &alice, "on-failure", "app.echo", 30);
    create_with(
        &s,
        &alice,
        "fails",
        "app.boom",
        30,
        json!({ "deadLetterTarget": "on-failure:$LATEST" }),
    );
    let (_, f) = s.call("GET", "/v1/functions/fails", Some(&alice), None);
    assert_eq!(f["deadLetterTarget"], "on-failure:$LATEST");

    // The target is checked: it must exist, be alice's, and not be itself.
    let bob = s.token_for("bob");
    create(&s, &bob, "bobs", "app.echo", 30);
    for (target, message) in [
        (
            "fails",
            "DeadLetterTarget must name another function, not this one",
        ),
        ("nope", "DeadLetterTarget function 'nope' does not exist"),
        ("bobs", "DeadLetterTarget function 'bobs' does not exist"),
    ] {
        let (st, b) = s.call(
            "PATCH",
            "/v1/functions/fails",
            Some(&alice),
            Some(json!({ "deadLetterTarget": target })),
        );
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("ValidationFailed")),
            "{b}"
        );
        assert_eq!(b["errors"], json!([message]), "{b}");
    }

    let (st, q) = queue(&s, &alice, "/v1/functions/fails/invoke", r#"{"order":7}"#);
    assert_eq!(st, 202, "{q}");
    let id = q["requestId"].as_str().unwrap().to_owned();
    let (result, status, attempts) = wait_result(&s, &alice, &id, Duration::from_secs(30));
    assert_eq!((status.as_str(), attempts.as_str()), ("Failed", "3"));
    assert_eq!(result["errorType"], "RuntimeError");
    let letter = result["deadLetterRequestId"]
        .as_str()
        .unwrap_or_else(|| panic!("no dead letter recorded: {result}"))
        .to_owned();

    // The dead letter ran on the target with the event and the error.
    let (got, status, _) = wait_result(&s, &alice, &letter, Duration::from_secs(20));
    assert_eq!(status, "Succeeded", "{got}");
    let record = &serde_json::from_str::<Value>(got["body"].as_str().unwrap()).unwrap()["got"];
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["functionName"], "fails");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["requestPayload"], json!({ "order": 7 }));
    assert_eq!(record["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(record["responseContext"]["functionError"], "RuntimeError");
    assert_eq!(record["responsePayload"]["errorType"], "RuntimeError");
    assert_eq!(record["responsePayload"]["errorMessage"], "always fails");

    // Failed invocations are listed per function, for its owner only.
    let (st, page) = s.call(
        "GET",
        "/v1/functions/fails/invocations?status=Failed",
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["requestId"], id.as_str());
    assert_eq!(items[0]["status"], "Failed");
    assert_eq!(items[0]["deadLetterRequestId"], letter.as_str());
    assert!(items[0].get("leaseToken").is_none(), "{page}");
    assert_eq!(page["nextToken"], Value::Null);
    let (_, none) = s.call(
        "GET",
        "/v1/functions/fails/invocations?status=Pending",
        Some(&alice),
        None,
    );
    assert_eq!(none["items"], json!([]));
    let (_, letters) = s.call(
        "GET",
        "/v1/functions/on-failure/invocations",
        Some(&alice),
        None,
    );
    assert_eq!(
        letters["items"][0]["deadLetterOf"],
        id.as_str(),
        "{letters}"
    );
    assert_eq!(
        s.call("GET", "/v1/functions/fails/invocations", Some(&bob), None)
            .0,
        404
    );
    let (st, b) = s.call(
        "GET",
        "/v1/functions/fails/invocations?status=Done",
        Some(&alice),
        None,
    );
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ValidationFailed")),
        "{b}"
    );
    let (st, b) = s.call(
        "GET",
        "/v1/functions/fails/invocations?nextToken=garbage",
        Some(&alice),
        None,
    );
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ValidationFailed")),
        "{b}"
    );

    // The CLI shows the same.
    let run = Run::from_output(
        cli_command(
            &s.url,
            Some(&alice),
            &[
                "fn",
                "invocations",
                "fails",
                "--status",
                "failed",
                "-o",
                "json",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["items"][0]["requestId"], id.as_str(), "{run:?}");
    let run = Run::from_output(
        cli_command(&s.url, Some(&alice), &["fn", "invocations", "fails"])
            .output()
            .unwrap(),
    );
    assert!(run.stdout.contains(&letter), "{run:?}");
}

#[test]
fn a_burst_at_max_instances_is_throttled_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--queue-timeout".into(), "100ms".into()],
            ..Default::default()
        },
    );
    create_with(
        &s,
        ADMIN_TOKEN,
        "one-at-a-time",
        "app.nap",
        10,
        json!({ "scalingConfig": { "maxInstances": 1, "targetConcurrency": 1 } }),
    );
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let (st, q) = queue(
                &s,
                ADMIN_TOKEN,
                "/v1/functions/one-at-a-time/invoke",
                &format!("{{\"i\":{i}}}"),
            );
            assert_eq!(st, 202, "{q}");
            q["requestId"].as_str().unwrap().to_owned()
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let (result, status, attempts) = wait_result(&s, ADMIN_TOKEN, id, Duration::from_secs(60));
        assert_eq!(
            (status.as_str(), attempts.as_str()),
            ("Succeeded", "1"),
            "waiting for the one instance is not a failed attempt: {result}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(result["body"].as_str().unwrap()).unwrap(),
            json!({ "napped": { "i": i } })
        );
    }
}

#[test]
fn an_attempt_longer_than_the_grace_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--async-lease-grace".into(), "1s".into()],
            ..Default::default()
        },
    );
    create(&s, ADMIN_TOKEN, "slow", "app.slow", 5);
    let (st, q) = queue(&s, ADMIN_TOKEN, "/v1/functions/slow/invoke", "{}");
    assert_eq!(st, 202, "{q}");
    let id = q["requestId"].as_str().unwrap();
    // A cold start plus 1.5 s outlasts the 1 s claim lease: the worker
    // extends and renews it, so no second claim runs it again.
    let (result, status, attempts) = wait_result(&s, ADMIN_TOKEN, id, Duration::from_secs(20));
    assert_eq!(
        (status.as_str(), attempts.as_str()),
        ("Succeeded", "1"),
        "{result}"
    );
}

#[test]
fn one_request_id_follows_an_async_invocation_through_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(&s, &alice, "flaky", "app.flaky", 30);
    let (st, q) = queue(&s, &alice, "/v1/functions/flaky/invoke", "{}");
    assert_eq!(st, 202, "{q}");
    let id = q["requestId"].as_str().unwrap().to_owned();
    let (result, status, attempts) = wait_result(&s, &alice, &id, Duration::from_secs(20));
    assert_eq!((status.as_str(), attempts.as_str()), ("Succeeded", "2"));
    assert_eq!(result["requestId"], id.as_str(), "stored result: {result}");
    // both attempts ran under the 202's id (the function's context saw it)
    let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["ids"], json!([id, id]));
    // and both attempts' log lines are found under it
    let (st, logs) = s.call(
        "GET",
        &format!("/v1/functions/flaky/logs?requestId={id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{logs}");
    let text: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    for n in ["attempt 1 ran as", "attempt 2 ran as"] {
        assert!(
            text.iter().any(|m| m.contains(n) && m.contains(&id)),
            "{n} under {id}: {text:?}"
        );
    }
    // the platform numbers the attempts on their START lines
    for n in 1..=2 {
        let start = format!("START RequestId: {id} Version: $LATEST Attempt: {n}");
        assert!(text.contains(&start.as_str()), "{start}: {text:?}");
    }
}
