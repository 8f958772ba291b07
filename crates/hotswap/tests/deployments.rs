//! Deployments end to end: each strategy driven by the controller under
//! generated traffic, automatic rollback on error rate and p99, manual
//! promote/rollback/cancel, a controller restart mid-canary, and the CLI's
//! live follow.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Python code for one version: `body` is the handler's body.
fn version_code(body: &str) -> String {
    b64(&zip_of(&[(
        "app.py",
        &format!("import time\nCOUNT = [0]\n\ndef handler(event, context):\n{body}\n"),
    )]))
}

const GOOD_V1: &str = "    return 'v1'";
const GOOD_V2: &str = "    return 'v2'";
/// Fails 3 calls in 10 on each instance.
const FLAKY: &str =
    "    COUNT[0] += 1\n    if COUNT[0] % 10 < 3:\n        raise RuntimeError('flaky')\n    return 'flaky'";
const SLOW: &str = "    time.sleep(0.3)\n    return 'slow'";
const BROKEN_INIT: &str = "    return 'never'\nraise ImportError('missing dependency')";

/// Creates `name` with one published version per body, and alias `prod` on
/// version 1.
fn function_with_versions(s: &Server, name: &str, bodies: &[&str]) {
    let mut body = function_body(name);
    body["memorySize"] = json!(1024);
    body["code"]["zipFile"] = json!(version_code(bodies[0]));
    let (st, b) = s.admin("POST", "/v1/functions", Some(body));
    assert_eq!(st, 201, "{b}");
    for (i, code) in bodies.iter().enumerate() {
        if i > 0 {
            let (st, b) = s.admin(
                "PUT",
                &format!("/v1/functions/{name}/code"),
                Some(json!({ "zipFile": version_code(code) })),
            );
            assert_eq!(st, 200, "{b}");
        }
        let (st, b) = s.admin(
            "POST",
            &format!("/v1/functions/{name}/versions"),
            Some(json!({})),
        );
        assert_eq!(st, 201, "{b}");
        assert_eq!(b["version"], json!(i + 1));
    }
    let (st, b) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/aliases"),
        Some(json!({ "aliasName": "prod", "version": 1 })),
    );
    assert_eq!(st, 201, "{b}");
}

/// A server on a fresh data directory with `name`'s versions and alias
/// `prod` on version 1 (see [`function_with_versions`]).
fn started(name: &str, bodies: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    function_with_versions(&s, name, bodies);
    (dir, s)
}

fn deploy(s: &Server, name: &str, version: u32, strategy: &str, config: Value) -> Value {
    let (st, b) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/deployments"),
        Some(json!({ "aliasName": "prod", "targetVersion": version, "strategy": strategy, "config": config })),
    );
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["status"], "Pending");
    b
}

fn get_deployment(s: &Server, name: &str, id: &str) -> Value {
    let (st, b) = s.admin(
        "GET",
        &format!("/v1/functions/{name}/deployments/{id}"),
        None,
    );
    assert_eq!(st, 200, "{b}");
    b
}

/// Polls until `done(deployment)` or panics after `limit`.
fn wait_for(
    s: &Server,
    name: &str,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let d = get_deployment(s, name, id);
        if done(&d) {
            return d;
        }
        assert!(
            start.elapsed() < limit,
            "deployment did not get there in {limit:?}: {d:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST …/deployments/{id}/{verb}` as admin.
fn action(s: &Server, name: &str, id: &str, verb: &str, body: Option<Value>) -> (u16, Value) {
    s.admin(
        "POST",
        &format!("/v1/functions/{name}/deployments/{id}/{verb}"),
        body,
    )
}

fn ended(d: &Value) -> bool {
    matches!(
        d["status"].as_str(),
        Some("Completed" | "RolledBack" | "Failed" | "Cancelled")
    )
}

fn alias(s: &Server, name: &str) -> Value {
    let (st, b) = s.admin("GET", &format!("/v1/functions/{name}/aliases/prod"), None);
    assert_eq!(st, 200, "{b}");
    b
}

/// What the generated traffic saw.
#[derive(Default, Debug)]
struct Seen {
    requests: u64,
    /// Non-2xx answers of the platform (function errors are 200s).
    platform_errors: Vec<(u16, String)>,
    function_errors: u64,
    by_version: BTreeMap<String, u64>,
}

/// Invokes `name:prod` from `threads` threads until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(s: &Server, name: &str, threads: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let url = format!("{}/v1/functions/{name}/invoke?qualifier=prod", s.url);
        let handles = (0..threads)
            .map(|_| {
                let (stop, seen, url) = (stop.clone(), seen.clone(), url.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        let r = client.post(&url).bearer_auth(ADMIN_TOKEN).body("{}").send();
                        let mut seen = seen.lock().unwrap();
                        seen.requests += 1;
                        match r {
                            Ok(resp) => {
                                let status = resp.status().as_u16();
                                let version = resp
                                    .headers()
                                    .get("x-executed-version")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("?")
                                    .to_owned();
                                let failed = resp.headers().contains_key("x-function-error");
                                let body = resp.text().unwrap_or_default();
                                if status >= 300 {
                                    seen.platform_errors.push((status, body));
                                } else {
                                    *seen.by_version.entry(version).or_default() += 1;
                                    seen.function_errors += u64::from(failed);
                                }
                            }
                            Err(e) => seen.platform_errors.push((0, e.to_string())),
                        }
                        drop(seen);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            seen,
            handles,
        }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn phases(d: &Value) -> Vec<String> {
    d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_owned())
        .collect()
}

fn splits(d: &Value) -> Vec<Value> {
    d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["traffic"].clone())
        .collect()
}

#[test]
fn canary_promotes_a_good_version_through_every_step() {
    let (_dir, s) = started("canary-good", &[GOOD_V1, GOOD_V2]);
    let traffic = Traffic::start(&s, "canary-good", 2);
    let d = deploy(
        &s,
        "canary-good",
        2,
        "Canary",
        json!({ "canaryIncrements": [20, 50], "canaryDuration": 2, "rollbackOnErrorRate": 10, "minInvocations": 5 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "canary-good", id, Duration::from_secs(90), ended);
    let seen = traffic.finish();

    assert_eq!(d["status"], "Completed", "{d:#}");
    assert_eq!(d["progress"], 100.0);
    assert_eq!(
        phases(&d),
        [
            "Canary 20%",
            "Canary 50%",
            "Promoted: all traffic on the target",
            "Completed"
        ]
    );
    assert_eq!(
        splits(&d),
        [
            json!({"1": 80.0, "2": 20.0}),
            json!({"1": 50.0, "2": 50.0}),
            json!({"2": 100.0}),
            json!({"2": 100.0})
        ]
    );
    let first = &d["timeline"][0];
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("warmed and healthy"),
        "{first}"
    );
    let second = d["timeline"][1]["message"].as_str().unwrap();
    assert!(
        second.starts_with("step 2/3") && second.contains("healthy:"),
        "{second}"
    );
    // The last analysis: the target had traffic and no errors.
    assert!(
        d["metrics"]["invocationCount"].as_u64().unwrap() >= 5,
        "{d:#}"
    );
    assert_eq!(d["metrics"]["errorCount"], 0);
    let a = alias(&s, "canary-good");
    assert_eq!(a["version"], 2);
    assert_eq!(a["routingConfig"], json!({}));

    assert!(
        seen.platform_errors.is_empty(),
        "swap caused errors: {seen:?}"
    );
    assert_eq!(seen.function_errors, 0);
    assert!(
        seen.by_version["1"] > 0 && seen.by_version["2"] > 0,
        "{seen:?}"
    );
}

#[test]
fn a_version_failing_30_percent_is_rolled_back_during_its_canary() {
    let (_dir, s) = started("canary-bad", &[GOOD_V1, FLAKY]);
    let traffic = Traffic::start(&s, "canary-bad", 2);
    let d = deploy(
        &s,
        "canary-bad",
        2,
        "Canary",
        json!({ "canaryPercentage": 30, "canaryDuration": "5m", "rollbackOnErrorRate": 10, "minInvocations": 10 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "canary-bad", id, Duration::from_secs(90), ended);
    let seen = traffic.finish();

    assert_eq!(d["status"], "RolledBack", "{d:#}");
    let reason = d["rollbackReason"].as_str().unwrap();
    assert!(
        reason.contains("exceeded RollbackOnErrorRate 10%")
            && reason.contains("at step 1/2 (Canary 30%)"),
        "{reason}"
    );
    let m = &d["metrics"];
    assert!(m["invocationCount"].as_u64().unwrap() >= 10, "{m}");
    assert!(m["errorRate"].as_f64().unwrap() > 10.0, "{m}");
    assert!(
        d["versionMetrics"]["2"]["errorCount"].as_u64().unwrap() > 0,
        "{d:#}"
    );
    assert!(
        d["versionMetrics"]["1"]["invocationCount"]
            .as_u64()
            .unwrap()
            > 0,
        "{d:#}"
    );
    assert_eq!(phases(&d).last().unwrap(), "RolledBack");
    assert_eq!(splits(&d).last().unwrap(), &json!({"1": 100.0}));
    let a = alias(&s, "canary-bad");
    assert_eq!(
        (a["version"].clone(), a["routingConfig"].clone()),
        (json!(1), json!({}))
    );
    assert!(seen.platform_errors.is_empty(), "{seen:?}");
    assert!(seen.function_errors > 0);

    // The alias is free again: a second deployment may start.
    let (st, b) = s.admin(
        "POST",
        "/v1/functions/canary-bad/deployments",
        Some(json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "AllAtOnce" })),
    );
    assert_eq!(st, 201, "{b}");
}

#[test]
fn a_version_over_the_p99_threshold_is_rolled_back() {
    let (_dir, s) = started("slow", &[GOOD_V1, SLOW]);
    let traffic = Traffic::start(&s, "slow", 2);
    let d = deploy(
        &s,
        "slow",
        2,
        "AllAtOnce",
        json!({ "rollbackOnLatencyP99": 150, "bakeDuration": "2m", "minInvocations": 5 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "slow", id, Duration::from_secs(60), ended);
    let seen = traffic.finish();
    assert_eq!(d["status"], "RolledBack", "{d:#}");
    let reason = d["rollbackReason"].as_str().unwrap();
    assert!(
        reason.starts_with("p99 duration ")
            && reason.contains("exceeded RollbackOnLatencyP99 150 ms"),
        "{reason}"
    );
    assert!(
        d["metrics"]["p99Duration"].as_f64().unwrap() >= 300.0,
        "{d:#}"
    );
    assert_eq!(alias(&s, "slow")["version"], 1);
    assert!(seen.platform_errors.is_empty(), "{seen:?}");
}

#[test]
fn ab_testing_waits_for_a_person_then_promotes() {
    let (_dir, s) = started("ab", &[GOOD_V1, GOOD_V2]);
    let traffic = Traffic::start(&s, "ab", 2);
    let d = deploy(&s, "ab", 2, "ABTesting", json!({ "canaryPercentage": 40 }));
    let id = d["deploymentId"].as_str().unwrap();
    // Both versions take traffic and are measured side by side, and nothing
    // moves on its own.
    let d = wait_for(&s, "ab", id, Duration::from_secs(30), |d| {
        d["versionMetrics"]["1"]["invocationCount"]
            .as_u64()
            .unwrap_or(0)
            > 5
            && d["versionMetrics"]["2"]["invocationCount"]
                .as_u64()
                .unwrap_or(0)
                > 5
    });
    assert_eq!(d["status"], "InProgress");
    assert_eq!(splits(&d), [json!({"1": 60.0, "2": 40.0})]);
    assert!(
        d["currentPhase"]
            .as_str()
            .unwrap()
            .contains("waiting for promote"),
        "{d}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let d = get_deployment(&s, "ab", id);
    assert_eq!(
        (d["status"].clone(), d["step"].clone()),
        (json!("InProgress"), json!(0))
    );

    let (st, d) = action(&s, "ab", id, "promote", None);
    assert_eq!(st, 200, "{d}");
    let d = wait_for(&s, "ab", id, Duration::from_secs(30), ended);
    let seen = traffic.finish();
    assert_eq!(d["status"], "Completed", "{d:#}");
    let promoted = d["timeline"][1]["message"].as_str().unwrap();
    assert!(promoted.contains("promoted by admin"), "{promoted}");
    assert_eq!(alias(&s, "ab")["version"], 2);
    assert!(seen.platform_errors.is_empty(), "{seen:?}");
    // Promoting an ended deployment is a conflict.
    let (st, b) = action(&s, "ab", id, "promote", None);
    assert_eq!((st, b["code"].as_str()), (409, Some("Conflict")), "{b}");
}

#[test]
fn a_controller_restart_mid_canary_resumes_it() {
    let (dir, s) = started("resume", &[GOOD_V1, GOOD_V2]);
    // Thresholds and no traffic yet: the canary cannot pass its step before
    // the restart, whatever the machine's load.
    let d = deploy(
        &s,
        "resume",
        2,
        "Canary",
        json!({ "canaryPercentage": 25, "canaryDuration": 2, "rollbackOnErrorRate": 10, "minInvocations": 5 }),
    );
    let id = d["deploymentId"].as_str().unwrap().to_owned();
    wait_for(&s, "resume", &id, Duration::from_secs(30), |d| {
        d["status"] == "InProgress"
    });
    s.stop(); // SIGKILL: no goodbye.
    let s = Server::start(dir.path());
    assert_eq!(
        alias(&s, "resume")["routingConfig"],
        json!({"1": 75.0, "2": 25.0}),
        "the alias stays where the deployment left it"
    );
    let traffic = Traffic::start(&s, "resume", 2);
    let d = wait_for(&s, "resume", &id, Duration::from_secs(60), ended);
    let seen = traffic.finish();
    assert_eq!(d["status"], "Completed", "{d:#}");
    assert!(seen.platform_errors.is_empty(), "{seen:?}");
    let messages: Vec<&str> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("resumed by the controller on local at step 1/2")),
        "{messages:?}"
    );
    assert_eq!(alias(&s, "resume")["version"], 2);
}

#[test]
fn a_step_deadline_missed_while_down_rolls_back() {
    let (dir, s) = started("late", &[GOOD_V1, GOOD_V2]);
    let d = deploy(
        &s,
        "late",
        2,
        "Canary",
        json!({ "canaryPercentage": 10, "canaryDuration": 1, "rollbackOnErrorRate": 10 }),
    );
    let id = d["deploymentId"].as_str().unwrap().to_owned();
    wait_for(&s, "late", &id, Duration::from_secs(30), |d| {
        d["status"] == "InProgress"
    });
    s.stop();
    // 1 s step + 30 s of grace for a verdict, all while nobody watched.
    std::thread::sleep(Duration::from_secs(32));
    let s = Server::start(dir.path());
    let d = wait_for(&s, "late", &id, Duration::from_secs(30), ended);
    assert_eq!(d["status"], "RolledBack", "{d:#}");
    assert!(
        d["rollbackReason"]
            .as_str()
            .unwrap()
            .starts_with("the controller was not running at the deadline of step 1/2"),
        "{d:#}"
    );
    assert_eq!(alias(&s, "late")["routingConfig"], json!({}));
    assert_eq!(alias(&s, "late")["version"], 1);
}

#[test]
fn blue_green_tests_green_apart_then_switches_and_rolls_back_to_warm_blue() {
    let dir = tempfile::tempdir().unwrap();
    // Idle instances go after 2 s: only provisioned ones stay warm longer.
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--instance-idle-timeout".into(), "2s".into()],
            ..ServerOptions::default()
        },
    );
    function_with_versions(&s, "bg", &[GOOD_V1, GOOD_V2]);
    let d = deploy(
        &s,
        "bg",
        2,
        "BlueGreen",
        json!({ "testDuration": "10m", "keepBlue": true }),
    );
    let id = d["deploymentId"].as_str().unwrap().to_owned();
    let d = wait_for(&s, "bg", &id, Duration::from_secs(30), |d| {
        d["status"] == "InProgress"
    });
    assert!(
        d["currentPhase"]
            .as_str()
            .unwrap()
            .starts_with("Testing green"),
        "{d}"
    );
    // Live traffic stays on blue; test traffic reaches green by its version,
    // on an instance warmed before the test began.
    for _ in 0..3 {
        let (st, b) = s.admin(
            "POST",
            "/v1/functions/bg/invoke?qualifier=prod",
            Some(json!({})),
        );
        assert_eq!((st, b), (200, json!("v1")));
    }
    let (st, b) = s.admin(
        "POST",
        "/v1/functions/bg/invoke?qualifier=2&result=full",
        Some(json!({})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["body"], "\"v2\"");
    assert_eq!(
        b["wasColdStart"], false,
        "green was warmed before its test: {b}"
    );

    // Green passed its test: switch now rather than wait ten minutes.
    std::thread::sleep(Duration::from_secs(3));
    let (st, b) = s.admin(
        "POST",
        "/v1/functions/bg/invoke?qualifier=2&result=full",
        Some(json!({})),
    );
    assert_eq!(
        (st, b["wasColdStart"].as_bool()),
        (200, Some(false)),
        "green stays provisioned: {b}"
    );
    let (st, b) = action(&s, "bg", &id, "promote", None);
    assert_eq!(st, 200, "{b}");
    let d = wait_for(&s, "bg", &id, Duration::from_secs(30), ended);
    assert_eq!(d["status"], "Completed", "{d:#}");
    let done = d["timeline"][2]["message"].as_str().unwrap();
    assert!(done.contains("blue (version 1) kept warm"), "{done}");
    assert_eq!(
        phases(&d),
        [
            "Testing green (test traffic only)",
            "Switched to green",
            "Completed"
        ]
    );
    assert_eq!(splits(&d)[0], json!({"1": 100.0}));
    assert_eq!(alias(&s, "bg")["version"], 2);

    // Instant rollback of the completed deployment, onto still-warm blue:
    // well past the idle timeout, blue's instance is still there.
    std::thread::sleep(Duration::from_secs(4));
    let (st, d) = action(
        &s,
        "bg",
        &id,
        "rollback",
        Some(json!({ "reason": "customer reports" })),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        (d["status"].as_str(), d["rollbackReason"].as_str()),
        (Some("RolledBack"), Some("customer reports"))
    );
    assert_eq!(alias(&s, "bg")["version"], 1);
    let (st, b) = s.admin(
        "POST",
        "/v1/functions/bg/invoke?qualifier=prod&result=full",
        Some(json!({})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["body"].as_str(), b["wasColdStart"].as_bool()),
        (Some("\"v1\""), Some(false)),
        "{b}"
    );
}

#[test]
fn rolling_on_one_runner_is_one_batch_and_says_so() {
    let (_dir, s) = started("roll", &[GOOD_V1, GOOD_V2]);
    let d = deploy(
        &s,
        "roll",
        2,
        "Rolling",
        json!({ "batchSize": 0.5, "batchDuration": 1 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "roll", id, Duration::from_secs(30), ended);
    assert_eq!(d["status"], "Completed", "{d:#}");
    assert_eq!(d["rollingNodes"], json!(["local"]));
    assert_eq!(
        phases(&d)[0],
        "Rolling batch 1/1: 1 of 1 runner node (one runner: one batch)"
    );
    assert_eq!(alias(&s, "roll")["version"], 2);
}

#[test]
fn a_target_that_cannot_initialise_fails_its_health_check_before_any_traffic() {
    let (_dir, s) = started("broken", &[GOOD_V1, BROKEN_INIT]);
    let d = deploy(&s, "broken", 2, "Canary", json!({ "canaryPercentage": 10 }));
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "broken", id, Duration::from_secs(30), ended);
    assert_eq!(d["status"], "Failed", "{d:#}");
    let error = d["errorMessage"].as_str().unwrap();
    assert!(
        error.contains("failed its health check") && error.contains("missing dependency"),
        "{error}"
    );
    let a = alias(&s, "broken");
    assert_eq!(
        (a["version"].clone(), a["routingConfig"].clone()),
        (json!(1), json!({}))
    );
}

#[test]
fn people_can_roll_back_or_cancel_and_one_deployment_owns_an_alias() {
    let (_dir, s) = started("manual", &[GOOD_V1, GOOD_V2]);
    let d = deploy(
        &s,
        "manual",
        2,
        "Canary",
        json!({ "canaryPercentage": 10, "canaryDuration": "10m" }),
    );
    let id = d["deploymentId"].as_str().unwrap().to_owned();
    wait_for(&s, "manual", &id, Duration::from_secs(30), |d| {
        d["status"] == "InProgress"
    });
    assert_eq!(
        alias(&s, "manual")["routingConfig"],
        json!({"1": 90.0, "2": 10.0})
    );

    // One active deployment per alias; manual alias moves are refused too.
    let (st, b) = s.admin(
        "POST",
        "/v1/functions/manual/deployments",
        Some(json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "AllAtOnce" })),
    );
    assert_eq!((st, b["code"].as_str()), (409, Some("Conflict")), "{b}");
    let (st, _) = s.admin(
        "PUT",
        "/v1/functions/manual/aliases/prod",
        Some(json!({ "version": 2 })),
    );
    assert_eq!(st, 409);

    // A tenant cannot touch it: its own namespace has no "manual", and
    // the admin's is closed to it.
    let bob = s.token_for("bob");
    let (st, _) = s.call(
        "POST",
        &format!("/v1/functions/manual/deployments/{id}/rollback"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 404);
    let (st, _) = s.call(
        "POST",
        &format!("/v1/functions/manual/deployments/{id}/rollback?owner=admin"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 403);

    let (st, d) = action(
        &s,
        "manual",
        &id,
        "rollback",
        Some(json!({ "reason": "saw errors in the dashboard" })),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "RolledBack");
    assert_eq!(d["rollbackReason"], "saw errors in the dashboard");
    assert_eq!(alias(&s, "manual")["routingConfig"], json!({}));
    assert_eq!(alias(&s, "manual")["version"], 1);

    // Cancel also puts the traffic back.
    let d = deploy(
        &s,
        "manual",
        2,
        "Canary",
        json!({ "canaryPercentage": 50, "canaryDuration": "10m" }),
    );
    let id = d["deploymentId"].as_str().unwrap().to_owned();
    wait_for(&s, "manual", &id, Duration::from_secs(30), |d| {
        d["status"] == "InProgress"
    });
    let (st, d) = action(&s, "manual", &id, "cancel", None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "Cancelled");
    assert_eq!(alias(&s, "manual")["routingConfig"], json!({}));
    assert_eq!(alias(&s, "manual")["version"], 1);
    let (st, b) = action(&s, "manual", &id, "rollback", None);
    assert_eq!((st, b["code"].as_str()), (409, Some("Conflict")), "{b}");
}

#[test]
fn the_cli_follows_a_deployment_and_exits_4_when_it_is_rolled_back() {
    let (_dir, s) = started("cli-dep", &[GOOD_V1, GOOD_V2, FLAKY]);
    let run = Run::from_output(
        cli_command(
            &s.url,
            Some(ADMIN_TOKEN),
            &[
                "deploy",
                "cli-dep",
                "--alias",
                "prod",
                "--version",
                "2",
                "--strategy",
                "canary",
                "--canary-percent",
                "50",
                "--canary-duration",
                "1s",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("Canary 50% | 50% v1 · 50% v2"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("Completed"), "{}", run.stdout);
    assert!(run.stdout.contains("timeline:"), "{}", run.stdout);

    let traffic = Traffic::start(&s, "cli-dep", 2);
    let run = Run::from_output(
        cli_command(
            &s.url,
            Some(ADMIN_TOKEN),
            &[
                "deploy",
                "cli-dep",
                "--alias",
                "prod",
                "--version",
                "3",
                "--strategy",
                "canary",
                "--canary-percent",
                "50",
                "--canary-duration",
                "5m",
                "--rollback-error-rate",
                "10",
                "--min-invocations",
                "10",
            ],
        )
        .output()
        .unwrap(),
    );
    traffic.finish();
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr
            .contains("error: deployment RolledBack: error rate"),
        "{}",
        run.stderr
    );
    assert_eq!(alias(&s, "cli-dep")["version"], 2);
}

/// The same rollback on PostgreSQL: the controller's moves and a person's
/// rollback go through the same revision-checked transactions there.
#[test]
fn on_postgres_a_bad_canary_is_rolled_back_and_a_good_one_promoted() {
    let db = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            database_url: Some(db.url.clone()),
            ..ServerOptions::default()
        },
    );
    function_with_versions(&s, "pg-dep", &[GOOD_V1, FLAKY, GOOD_V2]);
    let traffic = Traffic::start(&s, "pg-dep", 2);
    let d = deploy(
        &s,
        "pg-dep",
        2,
        "Canary",
        json!({ "canaryPercentage": 50, "canaryDuration": "5m", "rollbackOnErrorRate": 10, "minInvocations": 10 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "pg-dep", id, Duration::from_secs(90), ended);
    assert_eq!(d["status"], "RolledBack", "{d:#}");
    assert!(
        d["rollbackReason"]
            .as_str()
            .unwrap()
            .contains("RollbackOnErrorRate"),
        "{d:#}"
    );
    let d = deploy(
        &s,
        "pg-dep",
        3,
        "Canary",
        json!({ "canaryPercentage": 50, "canaryDuration": 1, "rollbackOnErrorRate": 10, "minInvocations": 5 }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "pg-dep", id, Duration::from_secs(90), ended);
    let seen = traffic.finish();
    assert_eq!(d["status"], "Completed", "{d:#}");
    assert_eq!(alias(&s, "pg-dep")["version"], 3);
    assert!(seen.platform_errors.is_empty(), "{seen:?}");
}

/// While green is tested, its provisioned instances are its health check: a
/// green whose instance dies and whose replacement cannot initialise is
/// rolled back before any live traffic reached it.
#[test]
fn blue_green_rolls_back_when_green_fails_its_health_check_during_the_test() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 15;
    // Initialises until `deadline`; each instance exits a second after it.
    let green = format!(
        "    return 'green'\nimport os, threading\nif time.time() > {deadline}:\n    raise ImportError('green broke')\nthreading.Timer({deadline} - time.time() + 1, lambda: os._exit(3)).start()"
    );
    function_with_versions(&s, "bg-sick", &[GOOD_V1, &green]);
    let d = deploy(
        &s,
        "bg-sick",
        2,
        "BlueGreen",
        json!({ "testDuration": "10m" }),
    );
    let id = d["deploymentId"].as_str().unwrap();
    let d = wait_for(&s, "bg-sick", id, Duration::from_secs(60), ended);
    assert_eq!(d["status"], "RolledBack", "{d:#}");
    let reason = d["rollbackReason"].as_str().unwrap();
    assert!(
        reason.starts_with("green failed its health check during the test")
            && reason.contains("green broke"),
        "{reason}"
    );
    // Live traffic never left blue.
    assert!(
        splits(&d).iter().all(|t| t == &json!({"1": 100.0})),
        "{d:#}"
    );
    assert_eq!(alias(&s, "bg-sick")["version"], 1);
}
