//! The seed's ScalingConfig through the real binary: `minInstances`
//! initialised before any call and kept after idling, scale-down after
//! `scaleDownCooldown` (to zero with `minInstances` 0), keep-warm, the
//! version an alias routes to, and `GET /v1/functions/{name}/instances`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CODE: &str = "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'ok': True}\n";

fn create(s: &Server, token: &str, name: &str, scaling: Value) {
    create_function_as(
        s,
        token,
        name,
        "Python311",
        "app.handler",
        &[("app.py", CODE)],
        json!({ "scalingConfig": scaling }),
    );
}

fn instances(s: &Server, token: &str, name: &str) -> Vec<Value> {
    let (st, b) = s.call(
        "GET",
        &format!("/v1/functions/{name}/instances"),
        Some(token),
        None,
    );
    assert_eq!(st, 200, "{b}");
    b.as_array().unwrap().clone()
}

fn in_state<'a>(items: &'a [Value], state: &str) -> Vec<&'a Value> {
    items.iter().filter(|i| i["state"] == state).collect()
}

/// Invokes `name` with `n` concurrent calls that each take `sleep` s;
/// returns whether each was a cold start.
fn invoke_concurrently(s: &Server, token: &str, name: &str, n: usize, sleep: f64) -> Vec<bool> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    let (st, r) = s.call(
                        "POST",
                        &format!("/v1/functions/{name}/invoke?result=full"),
                        Some(token),
                        Some(json!({ "sleep": sleep })),
                    );
                    assert_eq!(st, 200, "{r}");
                    assert_eq!(r["success"], true, "{r}");
                    r["wasColdStart"].as_bool().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn min_instances_are_initialised_before_any_call_and_kept_after_idling() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(
        &s,
        &alice,
        "kept",
        json!({ "minInstances": 2, "scaleDownCooldown": 2 }),
    );
    wait_for(
        "two initialised instances before any call",
        Duration::from_secs(30),
        || in_state(&instances(&s, &alice, "kept"), "Idle").len() == 2,
    );
    let items = instances(&s, &alice, "kept");
    assert_eq!(items.len(), 2, "{items:?}");
    for i in &items {
        assert_eq!(i["version"], "$LATEST", "{i}");
        assert_eq!(i["provisioned"], true, "{i}");
        assert_eq!(i["inFlight"], 0, "{i}");
        assert_eq!(i["nodeId"], "local", "{i}");
        assert!(i["lastUsedAt"].is_null(), "never called: {i}");
    }
    // Two calls at once find both warm.
    assert_eq!(
        invoke_concurrently(&s, &alice, "kept", 2, 0.5),
        [false, false]
    );
    // Four at once need two more; once idle for the cooldown (and the
    // autoscaler's stable window) only the two kept remain.
    invoke_concurrently(&s, &alice, "kept", 4, 1.0);
    assert!(instances(&s, &alice, "kept").len() >= 4);
    wait_for("back to two", Duration::from_secs(40), || {
        instances(&s, &alice, "kept").len() == 2
    });
    let items = instances(&s, &alice, "kept");
    assert!(items.iter().all(|i| i["provisioned"] == true), "{items:?}");
    assert_eq!(
        invoke_concurrently(&s, &alice, "kept", 2, 0.1),
        [false, false],
        "warm after idling"
    );
}

#[test]
fn without_min_instances_a_version_scales_to_zero_after_its_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    // The runner's own idle timeout is 300 s: only the cooldown can make
    // the instance go this soon.
    create(&s, &alice, "brief", json!({ "scaleDownCooldown": 1 }));
    assert!(
        instances(&s, &alice, "brief").is_empty(),
        "nothing before a call"
    );
    assert_eq!(invoke_concurrently(&s, &alice, "brief", 1, 0.0), [true]);
    let items = instances(&s, &alice, "brief");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["state"], "Idle");
    assert_eq!(items[0]["provisioned"], false, "{items:?}");
    assert!(items[0]["lastUsedAt"].is_string(), "{items:?}");
    wait_for("scale to zero", Duration::from_secs(30), || {
        instances(&s, &alice, "brief").is_empty()
    });
}

#[test]
fn keep_warm_keeps_one_instance_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(
        &s,
        &alice,
        "warm",
        json!({ "keepWarmEnabled": true, "keepWarmInterval": 1, "scaleDownCooldown": 1 }),
    );
    wait_for("one warm instance", Duration::from_secs(30), || {
        in_state(&instances(&s, &alice, "warm"), "Idle").len() == 1
    });
    // It stays past the cooldown, and the first call finds it warm.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(instances(&s, &alice, "warm").len(), 1);
    assert_eq!(invoke_concurrently(&s, &alice, "warm", 1, 0.0), [false]);
}

#[test]
fn min_instances_follow_the_version_an_alias_routes_to() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(
        &s,
        &alice,
        "aliased",
        json!({ "minInstances": 1, "scaleDownCooldown": 1 }),
    );
    let (st, v) = s.call("POST", "/v1/functions/aliased/versions", Some(&alice), None);
    assert_eq!(st, 201, "{v}");
    let (st, a) = s.call(
        "POST",
        "/v1/functions/aliased/aliases",
        Some(&alice),
        Some(json!({ "aliasName": "prod", "version": 1 })),
    );
    assert_eq!(st, 201, "{a}");
    wait_for("an instance of version 1", Duration::from_secs(30), || {
        let items = instances(&s, &alice, "aliased");
        items
            .iter()
            .any(|i| i["version"] == "1" && i["state"] == "Idle")
    });
    // With an alias, $LATEST is not kept: an instance it had before the
    // alias goes after the cooldown.
    wait_for("only version 1", Duration::from_secs(30), || {
        let items = instances(&s, &alice, "aliased");
        !items.is_empty() && items.iter().all(|i| i["version"] == "1")
    });
    // Another tenant sees none of it.
    let bob = s.token_for("bob");
    let (st, _) = s.call("GET", "/v1/functions/aliased/instances", Some(&bob), None);
    assert_eq!(st, 404);
}
