//! Every validation rule and error shape through the API.

mod common;

use common::*;
use serde_json::{json, Value};

fn errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn create(s: &Server, patch: Value) -> (u16, Value) {
    let mut body = function_body("f-valid");
    for (k, v) in patch.as_object().unwrap() {
        body[k] = v.clone();
    }
    s.admin("POST", "/v1/functions", Some(body))
}

#[test]
fn function_rules_at_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    // attached layers must exist
    for name in ["a", "b", "c", "d", "e", "f"] {
        let body = json!({ "layerName": name, "content": { "zipFile": b64(&zip_of(&[("x.txt", name)])) } });
        assert_eq!(s.admin("POST", "/v1/layers", Some(body)).0, 201);
    }
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!({ "name": "a".repeat(64) }), None),
        (
            json!({ "name": "a".repeat(65) }),
            Some("Name must be alphanumeric with dashes, max 64 characters"),
        ),
        (
            json!({ "name": "bad_name" }),
            Some("Name must be alphanumeric with dashes, max 64 characters"),
        ),
        (json!({ "name": "" }), Some("Name is required")),
        (
            json!({ "name": "h1", "handler": " " }),
            Some("Handler is required"),
        ),
        (json!({ "name": "m128", "memorySize": 128 }), None),
        (json!({ "name": "m10240", "memorySize": 10240 }), None),
        (
            json!({ "name": "m-low", "memorySize": 64 }),
            Some("MemorySize must be 128-10240 MB in 64 MB increments"),
        ),
        (
            json!({ "name": "m-high", "memorySize": 10304 }),
            Some("MemorySize must be 128-10240 MB in 64 MB increments"),
        ),
        (
            json!({ "name": "m-step", "memorySize": 200 }),
            Some("MemorySize must be 128-10240 MB in 64 MB increments"),
        ),
        (json!({ "name": "t1", "timeout": 1 }), None),
        (json!({ "name": "t900", "timeout": 900 }), None),
        (
            json!({ "name": "t0", "timeout": 0 }),
            Some("Timeout must be 1-900 seconds"),
        ),
        (
            json!({ "name": "t901", "timeout": 901 }),
            Some("Timeout must be 1-900 seconds"),
        ),
        (
            json!({ "name": "l5", "layers": ["a", "b", "c", "d", "e"] }),
            None,
        ),
        (
            json!({ "name": "l6", "layers": ["a", "b", "c", "d", "e", "f"] }),
            Some("Maximum 5 layers allowed"),
        ),
        (
            json!({ "name": "e4096", "environment": { "K": "v".repeat(4095) } }),
            None,
        ),
        (
            json!({ "name": "e4097", "environment": { "K": "v".repeat(4096) } }),
            Some("Environment variables exceed 4 KB limit"),
        ),
    ];
    for (patch, expected) in cases {
        let (st, body) = create(&s, patch.clone());
        match expected {
            None => assert_eq!(st, 201, "{patch} → {body}"),
            Some(msg) => {
                assert_eq!(st, 400, "{patch} → {body}");
                assert_eq!(body["code"], "ValidationFailed");
                assert_eq!(errors(&body), vec![msg.to_owned()], "{patch}");
            }
        }
    }
    // every error at once
    let (st, body) = create(
        &s,
        json!({ "name": "", "handler": "", "memorySize": 1, "timeout": 0, "layers": ["1","2","3","4","5","6"] }),
    );
    assert_eq!(st, 400);
    assert_eq!(errors(&body).len(), 5, "{body}");
    // the same rules on update
    let (st, body) = s.admin(
        "PATCH",
        "/v1/functions/t1",
        Some(json!({ "memorySize": 100, "timeout": 1000 })),
    );
    assert_eq!(st, 400);
    assert_eq!(errors(&body).len(), 2, "{body}");
    let (_, f) = s.admin("GET", "/v1/functions/t1", None);
    assert_eq!(f["timeout"], 1, "a refused update changes nothing");
}

#[test]
fn malformed_requests_get_clear_400s() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, body) = create(&s, json!({ "colour": "blue" }));
    assert_eq!(st, 400);
    assert_eq!(body["code"], "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );

    let (st, body) = create(&s, json!({ "memorySize": "big" }));
    assert_eq!(st, 400);
    assert!(
        body["message"].as_str().unwrap().contains("memorySize"),
        "{body}"
    );

    let (st, body) = create(&s, json!({ "runtime": "Cobol85" }));
    assert_eq!(st, 400);
    assert!(
        body["message"].as_str().unwrap().contains("Cobol85"),
        "{body}"
    );

    let (st, body) = create(
        &s,
        json!({ "code": { "zipFile": b64(b"this is not a zip") } }),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("InvalidCode")),
        "{body}"
    );

    let (st, body) = create(&s, json!({ "code": { "zipFile": "%%% not base64" } }));
    assert_eq!(st, 400, "{body}");

    let (st, body) = create(&s, json!({ "name": "no-code", "code": null }));
    assert_eq!(st, 400, "{body}");
    assert!(errors(&body)[0].contains("Code is required"));

    let (st, body) = create(
        &s,
        json!({ "name": "prov", "runtime": "Provided", "code": { "zipFile": b64(&zip_of(&[("main", "x")])) } }),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("InvalidCode")),
        "{body}"
    );

    let (st, body) = create(
        &s,
        json!({ "name": "evil", "code": { "zipFile": b64(&zip_of(&[("../../etc/x", "x")])) } }),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("InvalidCode")),
        "{body}"
    );

    let (st, body) = s.raw(
        "POST",
        "/v1/functions",
        Some(ADMIN_TOKEN),
        "application/json",
        b"{not json".to_vec(),
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (400, Some("BadRequest")),
        "{body}"
    );

    let (st, body) = s.raw(
        "POST",
        "/v1/functions",
        Some(ADMIN_TOKEN),
        "text/plain",
        b"hello".to_vec(),
    );
    assert_eq!(st, 415, "{body}");

    let (st, body) = s.admin("GET", "/v1/functions?limit=0", None);
    assert_eq!(st, 400, "{body}");
    let (st, body) = s.admin("GET", "/v1/functions/x/versions/notaversion", None);
    assert_eq!(st, 400, "{body}");
    let (st, body) = s.admin("GET", "/v1/nowhere", None);
    assert_eq!((st, body["code"].as_str()), (404, Some("NotFound")));
    let (st, body) = s.admin("DELETE", "/v1/tokens", None);
    assert_eq!((st, body["code"].as_str()), (405, Some("MethodNotAllowed")));
}

#[test]
fn payload_over_the_limit_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--max-body-bytes".into(), "4096".into()],
            ..Default::default()
        },
    );
    // incompressible content, so that the zip itself is large
    let mut x: u64 = 42;
    let big: String = (0..10_000)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'!' + ((x >> 33) % 90) as u8)
        })
        .collect();
    let (st, body) = create(
        &s,
        json!({ "code": { "zipFile": b64(&zip_of(&[("app.py", &big)])) } }),
    );
    assert_eq!(st, 413, "{body}");
    assert_eq!(body["code"], "PayloadTooLarge");
    let (st, body) = s.raw(
        "PUT",
        "/v1/functions/x/code",
        Some(ADMIN_TOKEN),
        "application/zip",
        vec![0u8; 10_000],
    );
    assert_eq!(
        (st, body["code"].as_str()),
        (413, Some("PayloadTooLarge")),
        "{body}"
    );
    let (st, _) = s.admin("GET", "/healthz", None);
    assert_eq!(st, 200, "the server lives on");
}

#[test]
fn alias_weights_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    assert_eq!(create(&s, json!({ "name": "w" })).0, 201);
    for _ in 0..2 {
        assert_eq!(s.admin("POST", "/v1/functions/w/versions", None).0, 201);
    }
    let alias = |body: Value| s.admin("POST", "/v1/functions/w/aliases", Some(body));
    let (st, b) =
        alias(json!({ "aliasName": "neg", "version": 1, "routingConfig": { "1": 110, "2": -10 } }));
    assert_eq!(st, 400, "{b}");
    assert!(
        errors(&b)
            .iter()
            .any(|e| e.contains("must not be negative")),
        "{b}"
    );
    let (st, b) =
        alias(json!({ "aliasName": "sum", "version": 1, "routingConfig": { "1": 60, "2": 50 } }));
    assert_eq!(st, 400);
    assert_eq!(
        errors(&b),
        vec!["RoutingConfig weights sum to 110, more than 100"]
    );
    let (st, b) =
        alias(json!({ "aliasName": "ghost", "version": 1, "routingConfig": { "9": 10 } }));
    assert_eq!(st, 400);
    assert_eq!(
        errors(&b),
        vec!["RoutingConfig names version 9, which does not exist"]
    );
    let (st, b) = alias(json!({ "aliasName": "missing", "version": 7 }));
    assert_eq!(st, 400);
    assert_eq!(errors(&b), vec!["Version 7 does not exist"]);
    let (st, b) = alias(json!({ "aliasName": "123", "version": 1 }));
    assert_eq!(st, 400, "{b}");
    let (st, b) =
        alias(json!({ "aliasName": "ok", "version": 1, "routingConfig": { "1": 90, "2": 10 } }));
    assert_eq!(st, 201, "{b}");
    let (st, _) = alias(json!({ "aliasName": "ok", "version": 1 }));
    assert_eq!(st, 409);
    let (st, b) = s.admin(
        "PUT",
        "/v1/functions/w/aliases/ok",
        Some(json!({ "routingConfig": { "2": 101 } })),
    );
    assert_eq!(st, 400, "{b}");
    let (_, a) = s.admin("GET", "/v1/functions/w/aliases/ok", None);
    assert_eq!(
        a["routingConfig"],
        json!({ "1": 90.0, "2": 10.0 }),
        "a refused update changes nothing"
    );
}

#[test]
fn trigger_rules_per_type() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    assert_eq!(create(&s, json!({ "name": "tf" })).0, 201);
    let trig = |t: &str, config: Value| {
        s.admin(
            "POST",
            "/v1/triggers",
            Some(json!({ "functionName": "tf", "type": t, "config": config })),
        )
    };
    let expect_err = |(st, b): (u16, Value), msg: &str| {
        assert_eq!(st, 400, "{b}");
        assert!(errors(&b).iter().any(|e| e == msg), "{msg} not in {b}");
    };
    expect_err(
        trig("Http", json!({})),
        "HttpPath is required for HTTP triggers",
    );
    expect_err(
        trig("Scheduled", json!({})),
        "ScheduleExpression is required for Scheduled triggers",
    );
    expect_err(
        trig("Queue", json!({})),
        "QueueName is required for Queue triggers",
    );
    expect_err(
        trig("Stream", json!({})),
        "StreamArn is required for Stream triggers",
    );
    expect_err(
        trig("Queue", json!({ "queueName": "q", "batchSize": 0 })),
        "BatchSize must be 1-10000",
    );
    expect_err(
        trig(
            "Stream",
            json!({ "streamArn": "s", "parallelizationFactor": 11 }),
        ),
        "ParallelizationFactor must be 1-10",
    );
    expect_err(
        trig(
            "Scheduled",
            json!({ "scheduleExpression": "rate(1 day)", "timezone": "Nowhere/City" }),
        ),
        "Timezone 'Nowhere/City' is not an IANA time zone name",
    );
    let (st, b) = trig("Scheduled", json!({ "scheduleExpression": "every day" }));
    assert_eq!(st, 400, "{b}");

    let (st, t) = trig(
        "Scheduled",
        json!({ "scheduleExpression": "cron(0 12 * * ? *)", "timezone": "Europe/Paris" }),
    );
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["isEnabled"], true);
    assert_eq!(t["targetVersion"], "$LATEST");
    let id = t["triggerId"].as_str().unwrap();
    let (st, t) = s.admin(
        "PATCH",
        &format!("/v1/triggers/{id}"),
        Some(json!({ "isEnabled": false })),
    );
    assert_eq!((st, t["isEnabled"].as_bool()), (200, Some(false)));
    assert_eq!(
        trig(
            "Http",
            json!({ "httpPath": "/hook", "httpMethods": ["POST"] })
        )
        .0,
        201
    );
    let (st, b) = trig(
        "Http",
        json!({ "httpPath": "/hook/", "httpMethods": ["post"] }),
    );
    assert_eq!((st, b["code"].as_str()), (409, Some("Conflict")), "{b}");
    let (st, b) = s.admin("POST", "/v1/triggers", Some(json!({ "functionName": "tf", "type": "Queue", "targetVersion": "prod", "config": { "queueName": "q" } })));
    assert_eq!(st, 400, "alias 'prod' does not exist: {b}");
    let (st, b) = s.admin(
        "POST",
        "/v1/triggers",
        Some(json!({ "functionName": "nope", "type": "Queue", "config": { "queueName": "q" } })),
    );
    assert_eq!(st, 404, "{b}");
    // A source this server has no broker for is refused, naming the flag:
    // never stored as an enabled trigger that never fires.
    for (kind, config, flag) in [
        (
            "Queue",
            json!({ "queueName": "q", "source": "rabbitmq" }),
            "--rabbitmq-url",
        ),
        (
            "Stream",
            json!({ "streamArn": "s", "source": "nats", "startingPosition": "LATEST" }),
            "--nats-url",
        ),
        (
            "Stream",
            json!({ "streamArn": "s", "source": "kafka", "startingPosition": "LATEST" }),
            "--kafka-brokers",
        ),
    ] {
        let (st, b) = trig(kind, config);
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("ValidationFailed")),
            "{b}"
        );
        assert!(b["message"].as_str().unwrap().contains(flag), "{b}");
    }
    // The embedded queue needs nothing.
    assert_eq!(trig("Queue", json!({ "queueName": "q" })).0, 201);
    let (_, list) = s.admin("GET", "/v1/triggers?functionName=tf", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

#[test]
fn deployment_records_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    assert_eq!(create(&s, json!({ "name": "d" })).0, 201);
    for _ in 0..2 {
        s.admin("POST", "/v1/functions/d/versions", None);
    }
    assert_eq!(
        s.admin(
            "POST",
            "/v1/functions/d/aliases",
            Some(json!({ "aliasName": "prod", "version": 1 }))
        )
        .0,
        201
    );
    let deploy = |body: Value| s.admin("POST", "/v1/functions/d/deployments", Some(body));
    let (st, b) = deploy(json!({ "aliasName": "prod", "targetVersion": 9, "strategy": "Canary" }));
    assert_eq!(st, 400);
    assert_eq!(errors(&b), vec!["TargetVersion 9 does not exist"]);
    let (st, b) =
        deploy(json!({ "aliasName": "staging", "targetVersion": 2, "strategy": "Canary" }));
    assert_eq!(st, 400, "{b}");
    let (st, b) = deploy(
        json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "AllAtOnce", "config": { "canaryPercentage": 10 } }),
    );
    assert_eq!(
        errors(&b),
        vec!["Canary settings do not apply to the AllAtOnce strategy"],
        "{st}"
    );
    let (st, b) = deploy(
        json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "Canary", "config": { "rollbackOnErrorRate": 150 } }),
    );
    assert_eq!(
        errors(&b),
        vec!["RollbackOnErrorRate must be a percentage 0-100"],
        "{st}"
    );

    let (st, d) = deploy(
        json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "Canary",
        "config": { "canaryPercentage": 10, "canaryDuration": "5m", "rollbackOnErrorRate": 5, "rollbackOnLatencyP99": 300 } }),
    );
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["status"], "Pending");
    assert_eq!(d["sourceVersion"], 1);
    assert_eq!(d["targetVersion"], 2);
    assert_eq!(d["deployedBy"], "admin");
    assert_eq!(d["config"]["canaryDuration"], 300);
    assert_eq!(d["progress"], 0.0);

    let (st, b) =
        deploy(json!({ "aliasName": "prod", "targetVersion": 2, "strategy": "AllAtOnce" }));
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("Conflict")),
        "one active deployment per alias"
    );
    let (st, b) = s.admin(
        "PUT",
        "/v1/functions/d/aliases/prod",
        Some(json!({ "version": 2 })),
    );
    assert_eq!(st, 409, "a deployment owns the alias: {b}");

    let id = d["deploymentId"].as_str().unwrap();
    let (st, c) = s.admin(
        "POST",
        &format!("/v1/functions/d/deployments/{id}/cancel"),
        Some(json!({ "reason": "changed my mind" })),
    );
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["status"], "Cancelled");
    assert!(c["completedAt"].is_string());
    let (st, _) = s.admin(
        "POST",
        &format!("/v1/functions/d/deployments/{id}/cancel"),
        None,
    );
    assert_eq!(st, 409, "a finished deployment cannot be cancelled");
    let (_, list) = s.admin("GET", "/v1/functions/d/deployments", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[test]
fn runners_register_and_go_unhealthy_without_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, r) = s.admin(
        "POST",
        "/v1/runners",
        Some(json!({ "nodeId": "runner-1", "hostname": "10.1.2.3", "runtimes": ["Python311"] })),
    );
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["port"], 8080);
    assert_eq!(r["resources"]["maxContainers"], 100);
    assert_eq!(
        (r["healthy"].as_bool(), r["canAcceptInvocations"].as_bool()),
        (Some(true), Some(true))
    );
    let (st, r) = s.admin(
        "POST",
        "/v1/runners/runner-1/heartbeat",
        Some(json!({ "resources": { "cpuUsage": 85 } })),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["healthy"].as_bool(), r["canAcceptInvocations"].as_bool()),
        (Some(true), Some(false))
    );
    let (st, r) = s.admin(
        "POST",
        "/v1/runners/runner-1/heartbeat",
        Some(json!({ "health": { "isHealthy": false } })),
    );
    assert_eq!((st, r["healthy"].as_bool()), (200, Some(false)));
    let (st, b) = s.admin(
        "POST",
        "/v1/runners",
        Some(json!({ "nodeId": "bad id", "hostname": "", "port": 0 })),
    );
    assert_eq!(st, 400);
    assert_eq!(errors(&b).len(), 3, "{b}");
    let (st, _) = s.admin("POST", "/v1/runners/nobody/heartbeat", None);
    assert_eq!(st, 404);
    let user = s.token_for("bob");
    let (st, _) = s.call(
        "POST",
        "/v1/runners",
        Some(&user),
        Some(json!({ "nodeId": "r2", "hostname": "h" })),
    );
    assert_eq!(st, 403, "only admins register runners");
    let (st, list) = s.call("GET", "/v1/runners", Some(&user), None);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["nodeId"].as_str().unwrap())
        .collect();
    assert_eq!((st, ids), (200, vec!["local", "runner-1"]));
    // the server's own runner registered itself with what it can run and how
    let (_, local) = s.admin("GET", "/v1/runners/local", None);
    assert_eq!(local["healthy"], true);
    let runtimes = local["runtimes"].as_array().unwrap();
    assert!(
        runtimes.contains(&json!("Python311")) && runtimes.contains(&json!("Provided")),
        "{local}"
    );
    let sandbox = local["sandbox"].as_str().unwrap();
    assert!(
        sandbox.starts_with("isolated:") || sandbox.starts_with("unisolated"),
        "{local}"
    );
    let memory = local["resources"]["totalMemoryMB"].as_u64().unwrap();
    assert_ne!(
        memory, 16_384,
        "the machine's real memory, not the seed default"
    );
}

#[test]
fn auth_and_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, b) = s.call("GET", "/v1/functions", None, None);
    assert_eq!((st, b["code"].as_str()), (401, Some("Unauthorized")));
    let (st, _) = s.call("GET", "/v1/functions", Some("wrong"), None);
    assert_eq!(st, 401);
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");
    let (st, _) = s.call(
        "POST",
        "/v1/tokens",
        Some(&alice),
        Some(json!({ "ownerId": "mallory", "admin": true })),
    );
    assert_eq!(st, 403, "only admins issue tokens");
    let (_, me) = s.call("GET", "/v1/whoami", Some(&alice), None);
    assert_eq!(me, json!({ "ownerId": "alice", "admin": false }));

    assert_eq!(
        s.call(
            "POST",
            "/v1/functions",
            Some(&alice),
            Some(function_body("alices"))
        )
        .0,
        201
    );
    assert_eq!(
        s.call(
            "POST",
            "/v1/functions",
            Some(&bob),
            Some(function_body("bobs"))
        )
        .0,
        201
    );
    // Names are per owner: "alices" is not in bob's namespace (404), and
    // alice's is closed to him: unseen (404), unchangeable (403).
    assert_eq!(
        s.call("GET", "/v1/functions/alices", Some(&bob), None).0,
        404
    );
    assert_eq!(
        s.call("GET", "/v1/functions/alices?owner=alice", Some(&bob), None)
            .0,
        404
    );
    assert_eq!(
        s.call("DELETE", "/v1/functions/alices", Some(&bob), None).0,
        404
    );
    assert_eq!(
        s.call("GET", "/v1/functions/alices/versions", Some(&bob), None)
            .0,
        404
    );
    assert_eq!(
        s.call(
            "PATCH",
            "/v1/functions/alices?owner=alice",
            Some(&bob),
            Some(json!({ "timeout": 5 }))
        )
        .0,
        403
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/v1/functions/alices?owner=alice",
            Some(&bob),
            None
        )
        .0,
        403
    );
    assert_eq!(
        s.call(
            "POST",
            "/v1/functions/alices/versions?owner=alice",
            Some(&bob),
            None
        )
        .0,
        403
    );
    let (_, list) = s.call("GET", "/v1/functions", Some(&bob), None);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bobs"]);
    // writes to a foreign function's alias or trigger are forbidden, reads unseen
    assert_eq!(
        s.call("POST", "/v1/functions/alices/versions", Some(&alice), None)
            .0,
        201
    );
    let alias = json!({ "aliasName": "prod", "version": 1 });
    assert_eq!(
        s.call(
            "POST",
            "/v1/functions/alices/aliases",
            Some(&alice),
            Some(alias)
        )
        .0,
        201
    );
    let trig = json!({ "functionName": "alices", "type": "Scheduled", "config": { "scheduleExpression": "rate(7 days)" } });
    let (_, t) = s.call("POST", "/v1/triggers", Some(&alice), Some(trig));
    let tid = t["triggerId"].as_str().unwrap().to_owned();
    let move_alias = json!({ "version": 1 });
    assert_eq!(
        s.call(
            "PUT",
            "/v1/functions/alices/aliases/prod?owner=alice",
            Some(&bob),
            Some(move_alias)
        )
        .0,
        403
    );
    assert_eq!(
        s.call("GET", "/v1/functions/alices/aliases/prod", Some(&bob), None)
            .0,
        404
    );
    let disable = json!({ "isEnabled": false });
    assert_eq!(
        s.call(
            "PATCH",
            &format!("/v1/triggers/{tid}"),
            Some(&bob),
            Some(disable)
        )
        .0,
        403
    );
    assert_eq!(
        s.call("DELETE", &format!("/v1/triggers/{tid}"), Some(&bob), None)
            .0,
        403
    );
    assert_eq!(
        s.call("GET", &format!("/v1/triggers/{tid}"), Some(&bob), None)
            .0,
        404
    );
    let (_, list) = s.call("GET", "/v1/functions?owner=alice", Some(&bob), None);
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // the admin sees all
    let (_, list) = s.admin("GET", "/v1/functions", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // the token is stored hashed: the secret is nowhere in the data directory
    let db = std::fs::read(dir.path().join("hotswap.db")).unwrap();
    assert!(
        !db.windows(alice.len()).any(|w| w == alice.as_bytes()),
        "token secret stored in clear"
    );
}

#[test]
fn paging_through_functions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for i in 0..7 {
        assert_eq!(create(&s, json!({ "name": format!("fn-{i}"), "tags": { "parity": if i % 2 == 0 { "even" } else { "odd" } } })).0, 201);
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(t) => format!("/v1/functions?limit=3&nextToken={t}"),
            None => "/v1/functions?limit=3".into(),
        };
        let (_, page) = s.admin("GET", &path, None);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_owned()),
        );
        match page["nextToken"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("fn-{i}")).collect::<Vec<_>>());
    let (_, even) = s.admin("GET", "/v1/functions?tag=parity=even", None);
    assert_eq!(even["items"].as_array().unwrap().len(), 4);
}

#[test]
fn health_and_openapi_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, body) = s.call("GET", "/healthz", None, None);
    assert_eq!((st, body.as_str()), (200, Some("ok")));
    let (st, doc) = s.admin("GET", "/v1/openapi.json", None);
    assert_eq!(st, 200);
    assert_eq!(doc["info"]["title"], "HotSwap API");
    assert!(
        doc["paths"]["/v1/functions/{name}/aliases/{alias}"]["put"].is_object(),
        "{}",
        doc["paths"]
    );
}
