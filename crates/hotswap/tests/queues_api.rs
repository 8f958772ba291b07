//! The embedded queue through the API and the CLI, against the real binary:
//! send / list / get / purge, names per owner (another tenant can neither
//! see nor purge a queue of the same name), the validation messages (each
//! naming its field), the size limit, and the CLI round trip. Receiving is
//! the queue trigger's; its store operations are covered by the store suite.

mod common;

use common::*;
use serde_json::{json, Value};

fn send(s: &Server, token: &str, queue: &str, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/queues/{queue}/messages"),
        Some(token),
        Some(body),
    )
}

fn sent_id(s: &Server, token: &str, queue: &str, body: Value) -> String {
    let (st, b) = send(s, token, queue, body);
    assert_eq!(st, 201, "{b}");
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["messageId"], "{b}");
    let id = b["messageId"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    id
}

#[test]
fn send_list_get_purge_round_trip_per_owner() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");

    // Nothing yet: an empty list and 404s.
    let (st, list) = s.call("GET", "/v1/queues", Some(&alice), None);
    assert_eq!((st, &list["items"]), (200, &json!([])), "{list}");
    let (st, b) = s.call("GET", "/v1/queues/orders", Some(&alice), None);
    assert_eq!(st, 404, "{b}");
    assert!(is_error(&b, "NotFound"), "{b}");
    let (st, b) = s.call("DELETE", "/v1/queues/orders/messages", Some(&alice), None);
    assert_eq!(st, 404, "{b}");

    let a = sent_id(&s, &alice, "orders", json!({ "body": "one" }));
    let b2 = sent_id(
        &s,
        &alice,
        "orders",
        json!({ "body": "{\"n\": 2}", "attributes": { "source": "web", "trace.id": "t-1" } }),
    );
    assert_ne!(a, b2);
    sent_id(&s, &alice, "audit", json!({ "body": "x" }));
    // Bob's queue of the same name is another queue.
    sent_id(&s, &bob, "orders", json!({ "body": "bob's" }));

    let (st, q) = s.call("GET", "/v1/queues/orders", Some(&alice), None);
    assert_eq!(st, 200, "{q}");
    assert_eq!(q["queueName"], "orders");
    assert_eq!(q["ownerId"], "alice");
    assert_eq!(
        (q["depth"].as_u64(), q["inFlight"].as_u64()),
        (Some(2), Some(0)),
        "{q}"
    );
    assert!(q["oldestAgeSeconds"].as_u64().is_some(), "{q}");
    assert!(q["createdAt"].is_string(), "{q}");

    let (st, list) = s.call("GET", "/v1/queues", Some(&alice), None);
    assert_eq!(st, 200, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queueName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "orders"], "{list}");
    let (_, page) = s.call("GET", "/v1/queues?limit=1", Some(&alice), None);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["nextToken"], "1");

    // Bob sees only his own "orders", and cannot reach Alice's.
    let (_, bobs) = s.call("GET", "/v1/queues", Some(&bob), None);
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1, "{bobs}");
    assert_eq!(bobs["items"][0]["ownerId"], "bob");
    assert_eq!(bobs["items"][0]["depth"], 1);
    let (_, none) = s.call("GET", "/v1/queues?owner=alice", Some(&bob), None);
    assert_eq!(none["items"], json!([]), "{none}");
    let (st, b) = s.call("GET", "/v1/queues/audit", Some(&bob), None);
    assert_eq!(st, 404, "{b}");
    let (st, b) = s.call("GET", "/v1/queues/orders?owner=alice", Some(&bob), None);
    assert_eq!(st, 404, "{b}");
    let (st, b) = s.call(
        "DELETE",
        "/v1/queues/orders/messages?owner=alice",
        Some(&bob),
        None,
    );
    assert_eq!(st, 403, "{b}");
    assert!(is_error(&b, "Forbidden"), "{b}");
    let (st, b) = s.call(
        "POST",
        "/v1/queues/orders/messages?owner=alice",
        Some(&bob),
        Some(json!({ "body": "x" })),
    );
    assert_eq!(st, 403, "{b}");
    // Bob purges his own "orders": Alice's keeps its messages.
    let (st, b) = s.call("DELETE", "/v1/queues/orders/messages", Some(&bob), None);
    assert_eq!((st, &b), (200, &json!({ "purged": 1 })));
    let (_, q) = s.call("GET", "/v1/queues/orders", Some(&alice), None);
    assert_eq!(q["depth"], 2, "{q}");

    // An admin reaches any owner's queue with ?owner=.
    let (st, b) = s.admin(
        "POST",
        "/v1/queues/orders/messages?owner=alice",
        Some(json!({ "body": "from admin" })),
    );
    assert_eq!(st, 201, "{b}");
    let (_, q) = s.admin("GET", "/v1/queues/orders?owner=alice", None);
    assert_eq!(q["depth"], 3, "{q}");
    let (_, all) = s.admin("GET", "/v1/queues", None);
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");

    // Purging empties the queue and keeps it, with depth 0.
    let (st, b) = s.call("DELETE", "/v1/queues/orders/messages", Some(&alice), None);
    assert_eq!((st, &b), (200, &json!({ "purged": 3 })));
    let (st, q) = s.call("GET", "/v1/queues/orders", Some(&alice), None);
    assert_eq!(
        (st, &q["depth"], &q["oldestAgeSeconds"]),
        (200, &json!(0), &json!(0))
    );
    let (_, b) = s.call("DELETE", "/v1/queues/orders/messages", Some(&alice), None);
    assert_eq!(b, json!({ "purged": 0 }));

    // Queues survive a restart.
    s.stop();
    let s = Server::start(dir.path());
    let (st, q) = s.call("GET", "/v1/queues/audit", Some(&alice), None);
    assert_eq!((st, &q["depth"]), (200, &json!(1)), "{q}");
}

#[test]
fn bad_input_is_refused_with_field_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");

    let (st, b) = send(&s, &alice, "bad.name", json!({ "body": "x" }));
    let e = field_errors(st, &b);
    assert_eq!(
        e,
        ["queueName: must be 1-80 letters, digits, '-' or '_' (got 'bad.name')"]
    );
    let long = "q".repeat(81);
    let (st, b) = send(&s, &alice, &long, json!({ "body": "x" }));
    assert!(field_errors(st, &b)[0].starts_with("queueName: "), "{b}");

    let (st, b) = send(
        &s,
        &alice,
        "orders",
        json!({ "body": "", "attributes": { "AWS.trace": "v", "empty": "", "ctl": "\u{1}", "ok": "v" } }),
    );
    assert_eq!(
        field_errors(st, &b),
        [
            "body: must not be empty",
            "attributes.AWS.trace: name must not start with 'AWS.' or 'Amazon.' (reserved)",
            "attributes.ctl: the value must not contain the character U+0001",
            "attributes.empty: the value must not be empty",
        ]
    );
    let (st, b) = send(&s, &alice, "orders", json!({ "body": "nul \u{0} inside" }));
    assert_eq!(
        field_errors(st, &b),
        ["body: must not contain the character U+0000"]
    );
    let many: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("a{i}"), json!("v"))).collect();
    let (st, b) = send(
        &s,
        &alice,
        "orders",
        json!({ "body": "x", "attributes": many }),
    );
    assert_eq!(
        field_errors(st, &b),
        ["attributes: at most 10 attributes (got 11)"]
    );
    // Shape errors: missing body, unknown field, non-string attribute.
    for body in [
        json!({}),
        json!({ "body": "x", "delaySeconds": 5 }),
        json!({ "body": "x", "attributes": { "n": 1 } }),
        json!({ "body": 42 }),
    ] {
        let (st, b) = send(&s, &alice, "orders", body.clone());
        assert_eq!(st, 400, "{body}: {b}");
        assert!(is_error(&b, "BadRequest"), "{b}");
    }
    // Over 256 KiB (body plus attribute names and values): 413.
    let big = "x".repeat(256 * 1024 - 2);
    let (st, b) = send(
        &s,
        &alice,
        "orders",
        json!({ "body": big, "attributes": { "k": "vv" } }),
    );
    assert_eq!(st, 413, "{b}");
    assert!(is_error(&b, "PayloadTooLarge"), "{b}");
    assert!(b["message"].as_str().unwrap().contains("262144"), "{b}");
    let (st, b) = send(
        &s,
        &alice,
        "orders",
        json!({ "body": big, "attributes": { "k": "v" } }),
    );
    assert_eq!(st, 201, "exactly the limit: {b}");
    // Nothing refused was stored.
    let (_, q) = s.call("GET", "/v1/queues/orders", Some(&alice), None);
    assert_eq!(q["depth"], 1, "{q}");

    // Unknown query parameters are refused like elsewhere.
    for path in ["/v1/queues?x=1", "/v1/queues/orders?x=1"] {
        let (st, b) = s.call("GET", path, Some(&alice), None);
        assert_eq!(st, 400, "{path}: {b}");
    }
    let (st, b) = s.call(
        "DELETE",
        "/v1/queues/orders/messages?force=1",
        Some(&alice),
        None,
    );
    assert_eq!(st, 400, "{b}");
    let (st, b) = s.call(
        "POST",
        "/v1/queues/orders/messages?delay=1",
        Some(&alice),
        Some(json!({ "body": "x" })),
    );
    assert_eq!(st, 400, "{b}");
    let (st, b) = s.call("GET", "/v1/queues/bad.name", Some(&alice), None);
    assert!(!field_errors(st, &b).is_empty());
    let (st, _) = s.call("GET", "/v1/queues", None, None);
    assert_eq!(st, 401);
    let (st, b) = s.call("GET", "/v1/queues?owner=not%20valid", Some(&alice), None);
    assert_eq!(st, 400, "{b}");
}

#[test]
fn cli_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");

    let r = cli_as(&s, &alice, &["queue", "list"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "No queues found.\n"),
        "{r:?}"
    );

    let r = cli_as(
        &s,
        &alice,
        &[
            "queue",
            "send",
            "orders",
            "{\"id\": 1}",
            "--attribute",
            "source=cli",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("Sent message ") && r.stdout.ends_with(" to queue orders.\n"),
        "{r:?}"
    );
    let file = dir.path().join("body.txt");
    std::fs::write(&file, "from a file").unwrap();
    let sent = cli_json(
        &s,
        &alice,
        &["queue", "send", "orders", "--file", file.to_str().unwrap()],
    );
    assert!(sent["messageId"].is_string(), "{sent}");

    let r = cli_as(&s, &alice, &["queue", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("NAME"), "{r:?}");
    assert!(
        r.stdout.contains("orders") && r.stdout.contains("alice"),
        "{r:?}"
    );
    let list = cli_json(&s, &alice, &["queue", "list"]);
    assert_eq!(list["items"][0]["depth"], 2, "{list}");

    let q = cli_json(&s, &alice, &["queue", "get", "orders"]);
    assert_eq!(
        (q["queueName"].as_str(), q["depth"].as_u64()),
        (Some("orders"), Some(2))
    );
    let r = cli_as(&s, &alice, &["queue", "get", "orders"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("depth") || r.stdout.contains("Depth"),
        "{r:?}"
    );

    // An admin addresses Alice's queues with --owner.
    let admin_q = cli_json(
        &s,
        ADMIN_TOKEN,
        &["queue", "get", "orders", "--owner", "alice"],
    );
    assert_eq!(admin_q["depth"], 2);

    // Errors exit non-zero with the server's message.
    let r = cli_as(&s, &alice, &["queue", "get", "nope"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("queue 'nope' not found"), "{r:?}");
    let r = cli_as(&s, &alice, &["queue", "send", "bad.name", "x"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("queueName"), "{r:?}");
    let r = cli_as(&s, &alice, &["queue", "send", "orders"]);
    assert_eq!(r.code, 2, "no body: {r:?}");

    let r = cli_as(&s, &alice, &["queue", "purge", "orders"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Purged 2 messages from queue orders.\n"),
        "{r:?}"
    );
    let purged = cli_json(&s, &alice, &["queue", "purge", "orders"]);
    assert_eq!(purged, json!({ "purged": 0 }));
}
