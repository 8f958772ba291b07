mod common;

// API tokens and `/metrics` against the real binary: tokens can be listed
// (never their secrets), revoked and given an expiry; roles keep a metrics
// scraper out of `/v1` and tenants out of `/metrics`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Issues a token as the admin; returns the whole 201 body.
fn issue(s: &Server, body: Value) -> Value {
    let (status, b) = s.admin("POST", "/v1/tokens", Some(body));
    assert_eq!(status, 201, "{b}");
    b
}

fn secret(issued: &Value) -> String {
    issued["token"].as_str().expect("token").to_owned()
}

fn id(issued: &Value) -> String {
    issued["tokenId"].as_str().expect("tokenId").to_owned()
}

/// Every string anywhere in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// Asserts that no string in `v` equals or contains any of the secrets or
/// their SHA-256 (whole, or its first 16 hex digits).
fn assert_no_secret(v: &Value, secrets: &[String]) {
    let mut all = Vec::new();
    strings(v, &mut all);
    for secret in secrets {
        let hash = hotswap_control::hash_token(secret);
        for s in &all {
            for needle in [secret.as_str(), hash.as_str(), &hash[..16]] {
                assert!(
                    !s.contains(needle),
                    "a listing shows a secret or its hash: {s:?} in {v}"
                );
            }
        }
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {list}"))
        .iter()
        .map(|t| t["tokenId"].as_str().expect("tokenId").to_owned())
        .collect()
}

#[test]
fn listing_tokens_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = issue(
        &s,
        json!({ "ownerId": "alice", "name": "laptop", "expiresIn": "30d" }),
    );
    let bob = issue(&s, json!({ "ownerId": "bob" }));
    let metrics = issue(&s, json!({ "role": "metrics", "name": "prometheus" }));
    let admin2 = issue(&s, json!({ "ownerId": "ops", "admin": true }));
    let secrets: Vec<String> = [&alice, &bob, &metrics, &admin2]
        .iter()
        .map(|t| secret(t))
        .chain([ADMIN_TOKEN.to_owned()])
        .collect();

    // What creation answers, besides the secret itself.
    assert_eq!(alice["ownerId"], "alice");
    assert_eq!(alice["role"], "tenant");
    assert_eq!(alice["admin"], false);
    assert_eq!(alice["name"], "laptop");
    assert!(alice["createdAt"].is_string(), "{alice}");
    let expires: chrono::DateTime<chrono::Utc> =
        alice["expiresAt"].as_str().unwrap().parse().unwrap();
    let in_30d = chrono::Utc::now() + chrono::Duration::days(30);
    assert!(
        (expires - in_30d).num_seconds().abs() < 120,
        "expiresIn 30d gives {expires}"
    );
    assert_eq!(metrics["role"], "metrics");
    assert_eq!(admin2["role"], "admin");
    assert_eq!(admin2["admin"], true);
    let mut without_secret = alice.clone();
    without_secret.as_object_mut().unwrap().remove("token");
    assert_no_secret(&without_secret, &secrets);

    // The admin sees every token, the bootstrap one included.
    let (status, all) = s.admin("GET", "/v1/tokens", None);
    assert_eq!(status, 200, "{all}");
    assert_no_secret(&all, &secrets);
    let listed = ids(&all);
    for t in [&alice, &bob, &metrics, &admin2] {
        assert!(listed.contains(&id(t)), "{} missing from {all}", id(t));
    }
    assert_eq!(
        listed.len(),
        5,
        "four issued and the bootstrap admin: {all}"
    );
    let laptop = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tokenId"] == alice["tokenId"])
        .unwrap();
    assert_eq!(laptop["name"], "laptop");
    assert_eq!(laptop["ownerId"], "alice");
    assert_eq!(laptop["expiresAt"], alice["expiresAt"]);

    // Filtered by owner, one token, and a tenant's own view.
    let (status, only_bob) = s.admin("GET", "/v1/tokens?ownerId=bob", None);
    assert_eq!(status, 200, "{only_bob}");
    assert_eq!(ids(&only_bob), [id(&bob)]);
    let (status, one) = s.admin("GET", &format!("/v1/tokens/{}", id(&alice)), None);
    assert_eq!(status, 200, "{one}");
    assert_no_secret(&one, &secrets);
    assert_eq!(one["name"], "laptop");
    let (status, mine) = s.call("GET", "/v1/tokens", Some(&secret(&alice)), None);
    assert_eq!(status, 200, "{mine}");
    assert_no_secret(&mine, &secrets);
    assert_eq!(ids(&mine), [id(&alice)]);
    // Using a token shows when it was last used.
    assert!(mine["items"][0]["lastUsedAt"].is_string(), "{mine}");
}

#[test]
fn a_revoked_token_is_refused_on_its_next_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = issue(&s, json!({ "ownerId": "alice" }));
    // Used once, so that the server's token cache holds it.
    let (status, b) = s.call("GET", "/v1/functions", Some(&secret(&alice)), None);
    assert_eq!(status, 200, "{b}");

    let (status, b) = s.admin("DELETE", &format!("/v1/tokens/{}", id(&alice)), None);
    assert_eq!(status, 204, "{b}");
    let (status, b) = s.call("GET", "/v1/functions", Some(&secret(&alice)), None);
    assert_eq!(status, 401, "a revoked token still works: {b}");
    assert_eq!(b["code"], "Unauthorized");

    // Gone from the listing; revoking again finds nothing.
    let (_, all) = s.admin("GET", "/v1/tokens", None);
    assert!(!ids(&all).contains(&id(&alice)), "{all}");
    let (status, _) = s.admin("GET", &format!("/v1/tokens/{}", id(&alice)), None);
    assert_eq!(status, 404);
    let (status, b) = s.admin("DELETE", &format!("/v1/tokens/{}", id(&alice)), None);
    assert_eq!(status, 404, "{b}");
    assert_eq!(b["code"], "NotFound");

    // A tenant may revoke its own token.
    let second = issue(&s, json!({ "ownerId": "alice" }));
    let path = format!("/v1/tokens/{}", id(&second));
    let (status, b) = s.call("DELETE", &path, Some(&secret(&second)), None);
    assert_eq!(status, 204, "{b}");
    let (status, _) = s.call("GET", "/v1/whoami", Some(&secret(&second)), None);
    assert_eq!(status, 401);
}

#[test]
fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let short = issue(&s, json!({ "ownerId": "alice", "expiresIn": 2 }));
    // Valid now, and cached by this use.
    let (status, b) = s.call("GET", "/v1/whoami", Some(&secret(&short)), None);
    assert_eq!(status, 200, "{b}");
    // The cache keeps an entry 30 s: expiry must be checked on hits too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, b) = s.call("GET", "/v1/whoami", Some(&secret(&short)), None);
        if status == 401 {
            assert_eq!(b["code"], "Unauthorized", "{b}");
            assert!(b["message"].as_str().unwrap().contains("expired"), "{b}");
            break;
        }
        assert_eq!(status, 200, "{b}");
        assert!(
            Instant::now() < deadline,
            "a token that expired 2 s after issue still works"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // An absolute expiry in the future works; in the past it is refused, as
    // are unreadable durations and both forms at once.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let t = issue(&s, json!({ "ownerId": "alice", "expiresAt": later }));
    assert!(t["expiresAt"].is_string(), "{t}");
    for (body, says) in [
        (
            json!({ "ownerId": "alice", "expiresAt": "2001-01-01T00:00:00Z" }),
            "past",
        ),
        (
            json!({ "ownerId": "alice", "expiresIn": "soon" }),
            "expiresIn",
        ),
        (json!({ "ownerId": "alice", "expiresIn": 0 }), "expiresIn"),
        (
            json!({ "ownerId": "alice", "expiresIn": 60, "expiresAt": later }),
            "expiresAt",
        ),
        (
            json!({ "ownerId": "alice", "expiresAt": "tomorrow" }),
            "expiresAt",
        ),
        (json!({ "ownerId": "alice", "name": "" }), "name"),
        (
            json!({ "ownerId": "alice", "name": "x".repeat(65) }),
            "name",
        ),
        (json!({ "ownerId": "alice", "name": "tab\there" }), "name"),
    ] {
        let (status, b) = s.admin("POST", "/v1/tokens", Some(body.clone()));
        assert_eq!(status, 400, "{body} → {b}");
        let text = b.to_string();
        assert!(text.contains(says), "{body} → {b}");
    }
}

#[test]
fn a_tenant_cannot_see_or_revoke_another_owners_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = secret(&issue(&s, json!({ "ownerId": "alice" })));
    let bob = issue(&s, json!({ "ownerId": "bob" }));
    let bob_path = format!("/v1/tokens/{}", id(&bob));

    let (status, b) = s.call("GET", "/v1/tokens?ownerId=bob", Some(&alice), None);
    assert_eq!(status, 404, "{b}");
    let (status, b) = s.call("GET", &bob_path, Some(&alice), None);
    assert_eq!(status, 404, "{b}");
    let (status, b) = s.call("DELETE", &bob_path, Some(&alice), None);
    assert_eq!(status, 404, "{b}");
    assert_eq!(b["code"], "NotFound");
    let (status, b) = s.call("GET", "/v1/whoami", Some(&secret(&bob)), None);
    assert_eq!(status, 200, "bob's token survives alice's attempt: {b}");
    let (status, mine) = s.call("GET", "/v1/tokens", Some(&alice), None);
    assert_eq!(status, 200);
    assert!(!ids(&mine).contains(&id(&bob)), "{mine}");

    // Only admins issue tokens.
    let (status, b) = s.call(
        "POST",
        "/v1/tokens",
        Some(&alice),
        Some(json!({ "ownerId": "alice" })),
    );
    assert_eq!(status, 403, "{b}");
}

#[test]
fn roles_keep_metrics_and_the_api_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = secret(&issue(&s, json!({ "ownerId": "alice" })));
    let (status, b) = s.call(
        "POST",
        "/v1/functions",
        Some(&alice),
        Some(function_body("alices-secret-project")),
    );
    assert_eq!(status, 201, "{b}");
    let (status, b) = s.call(
        "POST",
        "/v1/functions/alices-secret-project/invoke",
        Some(&alice),
        Some(json!({})),
    );
    assert_eq!(status, 200, "{b}");
    let metrics = issue(&s, json!({ "role": "metrics" }));
    assert_eq!(metrics["role"], "metrics");
    let scraper = secret(&metrics);

    // /metrics: the metrics token and admins read it …
    for token in [scraper.as_str(), ADMIN_TOKEN] {
        let (status, body) = s.call("GET", "/metrics", Some(token), None);
        assert_eq!(status, 200, "{body}");
        assert!(
            body.as_str().unwrap().contains("alices-secret-project"),
            "{body}"
        );
    }
    // … a tenant is forbidden, no token or an unknown one is unauthorized.
    let (status, b) = s.call("GET", "/metrics", Some(&alice), None);
    assert_eq!(status, 403, "a tenant reads every tenant's metrics: {b}");
    assert_eq!(b["code"], "Forbidden");
    let (status, b) = s.call("GET", "/metrics", None, None);
    assert_eq!(status, 401, "/metrics is open: {b}");
    assert_eq!(b["code"], "Unauthorized");
    let (status, b) = s.call("GET", "/metrics", Some("hs_not-a-token"), None);
    assert_eq!(status, 401, "{b}");
    // /healthz stays open.
    let (status, _) = s.call("GET", "/healthz", None, None);
    assert_eq!(status, 200);

    // The metrics token can do nothing else.
    for (method, path, body) in [
        ("GET", "/v1/functions", None),
        ("POST", "/v1/functions", Some(function_body("scraped"))),
        ("GET", "/v1/functions/alices-secret-project", None),
        (
            "POST",
            "/v1/functions/alices-secret-project/invoke",
            Some(json!({})),
        ),
        ("GET", "/v1/whoami", None),
        ("GET", "/v1/tokens", None),
        ("GET", &format!("/v1/tokens/{}", id(&metrics)), None),
        ("DELETE", &format!("/v1/tokens/{}", id(&metrics)), None),
        ("POST", "/v1/tokens", Some(json!({ "ownerId": "mallory" }))),
        ("GET", "/v1/runners", None),
        ("GET", "/v1/triggers", None),
        ("GET", "/v1/layers", None),
    ] {
        let (status, b) = s.call(method, path, Some(&scraper), body);
        assert_eq!(status, 403, "metrics token on {method} {path}: {b}");
        assert_eq!(b["code"], "Forbidden", "{b}");
    }

    // Runner tokens wait for runners to exist.
    let (status, b) = s.admin(
        "POST",
        "/v1/tokens",
        Some(json!({ "ownerId": "node-1", "role": "runner" })),
    );
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["code"], "ValidationFailed");
    assert!(b["message"].as_str().unwrap().contains("runner"), "{b}");
    let (status, b) = s.admin(
        "POST",
        "/v1/tokens",
        Some(json!({ "ownerId": "x", "role": "root" })),
    );
    assert_eq!(status, 400, "{b}");
    let (status, b) = s.admin(
        "POST",
        "/v1/tokens",
        Some(json!({ "ownerId": "x", "role": "tenant", "admin": true })),
    );
    assert_eq!(status, 400, "{b}");
}

#[test]
fn metrics_public_opens_metrics_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--metrics-public".into()],
            ..ServerOptions::default()
        },
    );
    let (status, body) = s.call("GET", "/metrics", None, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.as_str().unwrap().contains("hotswap_"), "{body}");
    // /v1 is unchanged.
    let (status, _) = s.call("GET", "/v1/functions", None, None);
    assert_eq!(status, 401);
}

#[test]
fn a_revoked_bootstrap_token_does_not_come_back_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let other = secret(&issue(&s, json!({ "ownerId": "ops", "admin": true })));
    let (status, all) = s.admin("GET", "/v1/tokens", None);
    assert_eq!(status, 200);
    let bootstrap = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ownerId"] == "admin")
        .unwrap_or_else(|| panic!("the bootstrap token is listed: {all}"))
        .clone();
    assert_eq!(bootstrap["role"], "admin");
    let path = format!("/v1/tokens/{}", bootstrap["tokenId"].as_str().unwrap());
    let (status, b) = s.call("DELETE", &path, Some(&other), None);
    assert_eq!(status, 204, "{b}");
    let (status, _) = s.admin("GET", "/v1/tokens", None);
    assert_eq!(status, 401);
    s.stop();

    // Started again with the same HOTSWAP_ADMIN_TOKEN: refused, not revived.
    let out = Command::new(bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HOTSWAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("HOTSWAP_DATABASE_URL")
        .env("HOTSWAP_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run the server");
    assert!(!out.status.success(), "the server started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("revoked"), "{stderr}");
}

#[test]
fn the_cli_lists_and_revokes_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let run = |token: &str, args: &[&str]| {
        let r = Run::from_output(cli_command(&s.url, Some(token), args).output().unwrap());
        assert_eq!(r.code, 0, "hotswap {args:?}: {r:?}");
        r
    };

    let created = run(
        ADMIN_TOKEN,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "ci",
            "--expires-in",
            "30d",
            "-o",
            "json",
        ],
    )
    .json();
    let alice = secret(&created);
    assert_eq!(created["name"], "ci");
    assert!(created["expiresAt"].is_string(), "{created}");
    let metrics = run(
        ADMIN_TOKEN,
        &["token", "create", "--role", "metrics", "-o", "json"],
    )
    .json();
    assert_eq!(metrics["role"], "metrics");

    let listed = run(ADMIN_TOKEN, &["token", "list", "-o", "json"]).json();
    assert_no_secret(&listed, &[alice.clone(), secret(&metrics)]);
    assert!(ids(&listed).contains(&id(&created)), "{listed}");
    let by_owner = run(
        ADMIN_TOKEN,
        &["token", "list", "--owner", "alice", "-o", "json"],
    )
    .json();
    assert_eq!(ids(&by_owner), [id(&created)]);

    let table = run(ADMIN_TOKEN, &["token", "list"]).stdout;
    assert!(table.contains(&id(&created)), "{table}");
    assert!(table.contains("ci"), "{table}");
    assert!(table.contains("metrics"), "{table}");
    assert!(!table.contains(&alice), "{table}");
    assert!(!table.contains(&hotswap_control::hash_token(&alice)[..16]));

    // A tenant lists its own and revokes itself.
    let mine = run(&alice, &["token", "list", "-o", "json"]).json();
    assert_eq!(ids(&mine), [id(&created)]);
    run(&alice, &["token", "revoke", &id(&created)]);
    let r = Run::from_output(
        cli_command(&s.url, Some(&alice), &["whoami"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "a revoked token still works: {r:?}");

    // Revoking an unknown id fails with the server's message.
    let r = Run::from_output(
        cli_command(&s.url, Some(ADMIN_TOKEN), &["token", "revoke", "tok_nope"])
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn servers_sharing_a_database_refuse_a_revoked_token_within_the_cache_lifetime() {
    let db = PgDb::create();
    let start = |dir: &std::path::Path| {
        Server::start_with(
            dir,
            ServerOptions {
                database_url: Some(db.url.clone()),
                ..ServerOptions::default()
            },
        )
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path());
    let b = start(dir_b.path());
    let alice = issue(&a, json!({ "ownerId": "alice" }));
    // Server B knows it at once (unknown tokens are not cached), and caches it.
    let (status, body) = b.call("GET", "/v1/whoami", Some(&secret(&alice)), None);
    assert_eq!(status, 200, "{body}");

    let (status, body) = a.admin("DELETE", &format!("/v1/tokens/{}", id(&alice)), None);
    assert_eq!(status, 204, "{body}");
    let (status, _) = a.call("GET", "/v1/whoami", Some(&secret(&alice)), None);
    assert_eq!(status, 401, "refused at once where it was revoked");
    // B may accept it until its cache entry ends (30 s), never after.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (status, body) = b.call("GET", "/v1/whoami", Some(&secret(&alice)), None);
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "another server still accepts a token revoked 45 s ago"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
