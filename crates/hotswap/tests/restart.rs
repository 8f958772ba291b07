//! Durability: stop the server, start it again on the same data directory,
//! and everything is still there. Also the first-start admin bootstrap.

mod common;

use common::*;
use serde_json::json;

#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let a = Some(alice.as_str());
    assert_eq!(
        s.call("POST", "/v1/functions", a, Some(function_body("keep")))
            .0,
        201
    );
    let (_, v1) = s.call(
        "POST",
        "/v1/functions/keep/versions",
        a,
        Some(json!({ "description": "v1" })),
    );
    assert_eq!(
        s.call(
            "POST",
            "/v1/functions/keep/aliases",
            a,
            Some(json!({ "aliasName": "prod", "version": 1 }))
        )
        .0,
        201
    );
    let (_, trig) = s.call("POST", "/v1/triggers", a, Some(json!({ "functionName": "keep", "type": "Scheduled", "config": { "scheduleExpression": "rate(7 days)", "timezone": "Europe/Paris" } })));
    assert_eq!(
        s.admin(
            "POST",
            "/v1/runners",
            Some(json!({ "nodeId": "r1", "hostname": "h" }))
        )
        .0,
        201
    );
    let (_, before) = s.call("GET", "/v1/functions/keep", a, None);
    s.stop();

    let s = Server::start(dir.path());
    let (st, after) = s.call("GET", "/v1/functions/keep", a, None);
    assert_eq!(st, 200, "alice's token survives the restart: {after}");
    assert_eq!(after, before);
    let (_, v) = s.call("GET", "/v1/functions/keep/versions/1", a, None);
    assert_eq!(v, v1);
    let (_, alias) = s.call("GET", "/v1/functions/keep/aliases/prod", a, None);
    assert_eq!(alias["version"], 1);
    let (st, t) = s.call(
        "GET",
        &format!("/v1/triggers/{}", trig["triggerId"].as_str().unwrap()),
        a,
        None,
    );
    assert_eq!(
        (st, t["config"]["timezone"].as_str()),
        (200, Some("Europe/Paris"))
    );
    let (st, r) = s.admin("GET", "/v1/runners/r1", None);
    assert_eq!((st, r["hostname"].as_str()), (200, Some("h")));
    // the code reads back intact: publishing copies and verifies it
    let (st, v2) = s.call("POST", "/v1/functions/keep/versions", a, None);
    assert_eq!((st, v2["version"].as_u64()), (201, Some(2)));
    assert_eq!(v2["codeSha256"], v1["codeSha256"]);
}

#[test]
fn admin_token_is_generated_once_and_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || ServerOptions {
        admin_token: None,
        ..Default::default()
    };
    let s = Server::start_with(dir.path(), opts());
    let line = s
        .banner
        .iter()
        .find(|l| l.starts_with("admin token"))
        .expect("admin token printed at first start");
    let token = line.rsplit(' ').next().unwrap().to_owned();
    let (st, me) = s.call("GET", "/v1/whoami", Some(&token), None);
    assert_eq!((st, me["admin"].as_bool()), (200, Some(true)));
    s.stop();
    let s = Server::start_with(dir.path(), opts());
    assert!(
        !s.banner.iter().any(|l| l.starts_with("admin token")),
        "not printed again: {:?}",
        s.banner
    );
    assert_eq!(s.call("GET", "/v1/whoami", Some(&token), None).0, 200);
}
