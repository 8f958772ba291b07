//! HTTP triggers end to end through the real binary: unmodified API Gateway
//! HTTP API (payload 2.0) handlers in Python and Node served at `/fn/…`,
//! routing precedence, result mapping, CORS, `Token` auth, the platform's
//! 502/504/429 answers, a canary deployment behind a trigger, path
//! conflicts, deletion, counters, metrics and the access log.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

/// One HTTP answer, body kept as bytes.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `method base+path` with the given headers (appended, so a name may
/// repeat) and body.
fn send_url(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Resp {
    let mut req = client().request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{base}{path}"),
    );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req
        .send()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().unwrap().to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn send(s: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    send_url(&s.url, method, path, headers, None)
}

fn get(s: &Server, path: &str) -> Resp {
    send(s, "GET", path, &[])
}

/// A Python 3.11 function `name` with `app.py` = `code` (handler
/// `app.handler`), created by the admin.
fn py_fn(s: &Server, name: &str, code: &str, extra: Value) -> Value {
    create_function_as(
        s,
        ADMIN_TOKEN,
        name,
        "Python311",
        "app.handler",
        &[("app.py", code)],
        extra,
    )
}

/// `POST /v1/triggers` (type Http) with `token`.
fn create_trigger_as(
    s: &Server,
    token: &str,
    function: &str,
    target: Option<&str>,
    config: Value,
) -> (u16, Value) {
    let mut body = json!({ "functionName": function, "type": "Http", "config": config });
    if let Some(t) = target {
        body["targetVersion"] = json!(t);
    }
    s.call("POST", "/v1/triggers", Some(token), Some(body))
}

/// An HTTP trigger created by the admin; returns its view.
fn trigger(s: &Server, function: &str, config: Value) -> Value {
    let (st, t) = create_trigger_as(s, ADMIN_TOKEN, function, None, config);
    assert_eq!(st, 201, "{t}");
    t
}

fn id(t: &Value) -> String {
    t["triggerId"].as_str().expect("triggerId").to_owned()
}

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {s}"))
}

/// Asserts a bare platform answer `{"message": …}` with a JSON content type.
fn assert_platform(r: &Resp, status: u16, message: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), json!({ "message": message }), "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
}

// ------------------------------------------------ 1. API Gateway v2 handlers

/// An unmodified payload-2.0 handler: echoes the event (base64 JSON in
/// `x-event`) and answers 201, two cookies and a binary body (fixed bytes
/// followed by the decoded request body).
const PY_APIGW: &str = r#"
import base64, json

def handler(event, context):
    if event.get("isBase64Encoded"):
        got = base64.b64decode(event["body"])
    else:
        got = (event.get("body") or "").encode()
    payload = bytes([0, 1, 2, 127, 128, 254, 255]) + got
    return {
        "statusCode": 201,
        "headers": {
            "content-type": "application/octet-stream",
            "x-runtime": "python",
            "x-event": base64.b64encode(json.dumps(event).encode()).decode(),
        },
        "cookies": ["session=abc123; Path=/; HttpOnly", "theme=dark; Max-Age=3600"],
        "body": base64.b64encode(payload).decode(),
        "isBase64Encoded": True,
    }
"#;

const NODE_APIGW: &str = r#"
exports.handler = async (event, context) => {
  const got = event.isBase64Encoded
    ? Buffer.from(event.body, 'base64')
    : Buffer.from(event.body || '', 'utf8');
  const payload = Buffer.concat([Buffer.from([0, 1, 2, 127, 128, 254, 255]), got]);
  return {
    statusCode: 201,
    headers: {
      'content-type': 'application/octet-stream',
      'x-runtime': 'node',
      'x-event': Buffer.from(JSON.stringify(event)).toString('base64'),
    },
    cookies: ['session=abc123; Path=/; HttpOnly', 'theme=dark; Max-Age=3600'],
    body: payload.toString('base64'),
    isBase64Encoded: true,
  };
};
"#;

/// Sends the same binary POST to `/fn/{prefix}/world/x/y%20z` and checks
/// the response byte for byte and every echoed event field.
fn check_apigw_roundtrip(s: &Server, prefix: &str, runtime: &str, trigger_id: &str) {
    let sent: Vec<u8> = vec![0x00, 0x9f, 0x92, 0x96, 0xff, 0x10, b'h', b'i', 0x80];
    let path = format!("/fn/{prefix}/world/x/y%20z?b=2&a=1&a=3&e=x%20y");
    let before = chrono::Utc::now().timestamp_millis();
    let r = send_url(
        &s.url,
        "POST",
        &path,
        &[
            ("content-type", "application/octet-stream"),
            ("cookie", "c1=v1; c2=v2"),
            ("x-custom-header", "Hello"),
            ("X-Multi", "one"),
            ("x-multi", "two"),
            ("user-agent", "hotswap-it/1.0"),
        ],
        Some(sent.clone()),
    );
    assert_eq!(r.status, 201, "{runtime}: {}", r.text());
    assert_eq!(r.header("x-runtime"), Some(runtime));
    assert_eq!(
        r.header("content-type"),
        Some("application/octet-stream"),
        "{runtime}"
    );
    assert_eq!(
        r.all("set-cookie"),
        [
            "session=abc123; Path=/; HttpOnly",
            "theme=dark; Max-Age=3600"
        ],
        "{runtime}: one Set-Cookie per cookie"
    );
    let mut expected = vec![0u8, 1, 2, 127, 128, 254, 255];
    expected.extend_from_slice(&sent);
    assert_eq!(r.body, expected, "{runtime}: binary body byte for byte");

    let ev: Value = serde_json::from_slice(&b64d(r.header("x-event").unwrap())).unwrap();
    let ctx = &ev["requestContext"];
    assert_eq!(ev["version"], "2.0", "{ev:#}");
    assert_eq!(
        ev["routeKey"],
        format!("POST /{prefix}/{{name}}/{{proxy+}}"),
        "{ev:#}"
    );
    assert_eq!(ev["rawPath"], format!("/{prefix}/world/x/y%20z"), "{ev:#}");
    assert_eq!(ev["rawQueryString"], "b=2&a=1&a=3&e=x%20y");
    assert_eq!(
        ev["queryStringParameters"],
        json!({ "a": "1,3", "b": "2", "e": "x y" }),
        "{runtime}"
    );
    assert_eq!(
        ev["pathParameters"],
        json!({ "name": "world", "proxy": "x/y z" }),
        "{runtime}"
    );
    assert_eq!(ev["cookies"], json!(["c1=v1", "c2=v2"]), "{runtime}");
    let headers = ev["headers"].as_object().unwrap();
    assert_eq!(headers["x-custom-header"], "Hello");
    assert_eq!(headers["x-multi"], "one,two", "repeats joined with ','");
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["user-agent"], "hotswap-it/1.0");
    assert!(
        headers.keys().all(|k| *k == k.to_ascii_lowercase()),
        "{headers:?}"
    );
    assert!(
        !headers.contains_key("cookie"),
        "cookies go to `cookies`: {headers:?}"
    );
    assert_eq!(ctx["http"]["method"], "POST");
    assert_eq!(ctx["http"]["path"], format!("/{prefix}/world/x/y%20z"));
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["userAgent"], "hotswap-it/1.0");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["apiId"], trigger_id);
    assert_eq!(ctx["routeKey"], ev["routeKey"]);
    let host = s.url.trim_start_matches("http://");
    assert_eq!(ctx["domainName"], host);
    assert_eq!(ctx["requestId"].as_str().unwrap().len(), 36, "{ctx}");
    let epoch = ctx["timeEpoch"].as_i64().unwrap();
    assert!(
        epoch >= before - 1000 && epoch <= chrono::Utc::now().timestamp_millis() + 1000,
        "timeEpoch {epoch}"
    );
    assert!(ctx["time"].as_str().unwrap().ends_with(" +0000"), "{ctx}");
    assert_eq!(ev["isBase64Encoded"], true, "octet-stream body is base64");
    assert_eq!(
        b64d(ev["body"].as_str().unwrap()),
        sent,
        "{runtime}: the event's body decodes to what was sent"
    );

    // A text body arrives as text.
    let r = send_url(
        &s.url,
        "POST",
        &format!("/fn/{prefix}/n/p"),
        &[("content-type", "application/json")],
        Some(br#"{"k":"v"}"#.to_vec()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ev: Value = serde_json::from_slice(&b64d(r.header("x-event").unwrap())).unwrap();
    assert_eq!(ev["isBase64Encoded"], false, "{ev:#}");
    assert_eq!(ev["body"], r#"{"k":"v"}"#);
    assert_eq!(ev["pathParameters"], json!({ "name": "n", "proxy": "p" }));
    assert!(
        ev.get("cookies").is_none() || ev["cookies"] == json!([]),
        "{ev:#}"
    );
    assert_eq!(&r.body[7..], br#"{"k":"v"}"#);
}

#[test]
fn unmodified_apigw_v2_handlers_in_python_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(&s, "hello-py", PY_APIGW, json!({}));
    create_function_as(
        &s,
        ADMIN_TOKEN,
        "hello-node",
        "Node20",
        "index.handler",
        &[("index.js", NODE_APIGW)],
        json!({}),
    );
    let tp = trigger(
        &s,
        "hello-py",
        json!({ "httpPath": "/py/{name}/{proxy+}", "httpMethods": ["GET", "POST"] }),
    );
    assert_eq!(tp["url"], format!("{}/fn/py/{{name}}/{{proxy+}}", s.url));
    assert_eq!(tp["state"]["status"], "idle", "{tp:#}");
    let tn = trigger(
        &s,
        "hello-node",
        json!({ "httpPath": "/node/{name}/{proxy+}", "httpMethods": ["GET", "POST"] }),
    );
    check_apigw_roundtrip(&s, "py", "python", &id(&tp));
    check_apigw_roundtrip(&s, "node", "node", &id(&tn));
}

// ------------------------------------------------------------- 2. routing

const PY_ROUTE_ECHO: &str = r#"
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps({
        "fn": context.function_name,
        "routeKey": event["routeKey"],
        "rawPath": event["rawPath"],
        "params": event.get("pathParameters"),
    })}
"#;

#[test]
fn routing_literal_beats_param_beats_proxy_404_405_trailing_slash() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for name in ["r-lit", "r-param", "r-proxy"] {
        py_fn(&s, name, PY_ROUTE_ECHO, json!({}));
    }
    trigger(
        &s,
        "r-proxy",
        json!({ "httpPath": "/items/{proxy+}", "httpMethods": ["GET"] }),
    );
    trigger(
        &s,
        "r-param",
        json!({ "httpPath": "/items/{id}", "httpMethods": ["GET", "PUT"] }),
    );
    trigger(
        &s,
        "r-lit",
        json!({ "httpPath": "/items/special", "httpMethods": ["GET"] }),
    );

    let hit = |method: &str, path: &str| -> Value {
        let r = send(&s, method, path, &[]);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.json()
    };

    let v = hit("GET", "/fn/items/special");
    assert_eq!(
        v,
        json!({ "fn": "r-lit", "routeKey": "GET /items/special", "rawPath": "/items/special", "params": null })
    );
    let v = hit("GET", "/fn/items/special/");
    assert_eq!(
        (v["fn"].as_str(), v["rawPath"].as_str()),
        (Some("r-lit"), Some("/items/special/")),
        "one trailing slash is ignored for matching: {v}"
    );
    let v = hit("GET", "/fn/items/42");
    assert_eq!(
        v,
        json!({ "fn": "r-param", "routeKey": "GET /items/{id}", "rawPath": "/items/42", "params": { "id": "42" } })
    );
    let v = hit("GET", "/fn/items/42/");
    assert_eq!(v["fn"], "r-param", "{v}");
    assert_eq!(v["params"], json!({ "id": "42" }));
    let v = hit("GET", "/fn/items/42/more/x");
    assert_eq!(
        v,
        json!({ "fn": "r-proxy", "routeKey": "GET /items/{proxy+}", "rawPath": "/items/42/more/x", "params": { "proxy": "42/more/x" } })
    );
    // The literal route does not list PUT: the parameter route serves it.
    let v = hit("PUT", "/fn/items/special");
    assert_eq!(
        v,
        json!({ "fn": "r-param", "routeKey": "PUT /items/{id}", "rawPath": "/items/special", "params": { "id": "special" } })
    );

    // HEAD is served by the GET route.
    let r = send(&s, "HEAD", "/fn/items/42", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty());

    // Known path, wrong method: 405 with the methods of the best pattern.
    let r = send(&s, "DELETE", "/fn/items/special", &[]);
    assert_platform(&r, 405, "Method Not Allowed");
    let allow = r.header("allow").expect("Allow header").to_owned();
    let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        allowed.contains(&"GET") && !allowed.contains(&"DELETE"),
        "{allow}"
    );
    let r = send(&s, "POST", "/fn/items/a/b", &[]);
    assert_platform(&r, 405, "Method Not Allowed");
    assert!(
        r.header("allow").unwrap().contains("GET"),
        "{:?}",
        r.headers
    );

    // No route.
    for path in [
        "/fn/nowhere",
        "/fn/items",
        "/fn",
        "/fn/items//x",
        "/fn/Items/42",
    ] {
        let r = get(&s, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json(), json!({ "message": "Not Found" }), "{path}");
    }
}

#[test]
fn a_root_trigger_is_served_at_fn_and_fn_slash() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(&s, "root", PY_ROUTE_ECHO, json!({}));
    let t = trigger(
        &s,
        "root",
        json!({ "httpPath": "/", "httpMethods": ["GET"] }),
    );
    assert_eq!(t["url"], format!("{}/fn/", s.url));
    let r = get(&s, "/fn");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["routeKey"], "GET /");
    assert_eq!(r.json()["rawPath"], "/");
    // The trigger's own `url`.
    let r = get(&s, "/fn/");
    assert_eq!(r.status, 200, "GET /fn/ (the trigger's url): {}", r.text());
    assert_eq!(r.json()["fn"], "root");
}

// ------------------------------------------- 3. result without statusCode

#[test]
fn a_result_without_status_code_is_200_json_of_the_whole_result() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "plain",
        "def handler(event, context):\n    return {'hello': 'world', 'n': [1, 2, 3], 'nested': {'ok': True}, 'body': 'not-a-body'}\n",
        json!({}),
    );
    trigger(&s, "plain", json!({ "httpPath": "/plain" }));
    let r = get(&s, "/fn/plain");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({ "hello": "world", "n": [1, 2, 3], "nested": { "ok": true }, "body": "not-a-body" })
    );
    assert!(r.headers.get("set-cookie").is_none());
}

// ------------------------------------------------------------------ 4. CORS

const PY_COUNT: &str = r#"
CALLS = [0]

def handler(event, context):
    CALLS[0] += 1
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": str(CALLS[0])}
"#;

#[test]
fn cors_preflight_is_answered_without_invoking() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(&s, "cors", PY_COUNT, json!({}));
    let t = trigger(
        &s,
        "cors",
        json!({
            "httpPath": "/cors/{x}", "httpMethods": ["GET", "POST", "PUT"],
            "corsEnabled": true, "corsAllowOrigins": ["https://a.example"],
            "corsAllowMethods": ["GET", "POST"], "corsAllowHeaders": ["Content-Type", "X-Api-Key"],
            "corsMaxAge": 600
        }),
    );
    let good = "https://a.example";
    for _ in 0..2 {
        let r = send(
            &s,
            "OPTIONS",
            "/fn/cors/1",
            &[
                ("origin", good),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
        );
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(r.body.is_empty());
        assert_eq!(r.header("access-control-allow-origin"), Some(good));
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("GET, HEAD, POST")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("content-type, x-api-key")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
    }
    // Disallowed origin, disallowed method: 403, still without invoking.
    let r = send(
        &s,
        "OPTIONS",
        "/fn/cors/1",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_platform(&r, 403, "Forbidden");
    assert!(r.header("access-control-allow-origin").is_none());
    // The route serves PUT but CORS does not allow it: 403.
    let r = send(
        &s,
        "OPTIONS",
        "/fn/cors/1",
        &[("origin", good), ("access-control-request-method", "PUT")],
    );
    assert_platform(&r, 403, "Forbidden");
    // A method the path does not serve at all: refused too (no CORS grant).
    let r = send(
        &s,
        "OPTIONS",
        "/fn/cors/1",
        &[
            ("origin", good),
            ("access-control-request-method", "DELETE"),
        ],
    );
    assert!(
        r.status == 403 || r.status == 405,
        "{} {}",
        r.status,
        r.text()
    );
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");

    // The first real request is the function's first call.
    let r = send_url(
        &s.url,
        "POST",
        "/fn/cors/1",
        &[("origin", good), ("content-type", "text/plain")],
        Some(b"x".to_vec()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "1", "preflights did not invoke the function");
    assert_eq!(r.header("access-control-allow-origin"), Some(good));
    // Real request from an origin not listed: served, but not allowed to read.
    let r = send(
        &s,
        "GET",
        "/fn/cors/1",
        &[("origin", "https://evil.example")],
    );
    assert_eq!((r.status, r.text()), (200, "2".to_owned()));
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    // No Origin: no CORS header.
    let r = get(&s, "/fn/cors/1");
    assert_eq!((r.status, r.text()), (200, "3".to_owned()));
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");

    // The trigger's state: 3 served, 3 preflights refused/answered apart.
    let (st, v) = s.admin("GET", &format!("/v1/triggers/{}", id(&t)), None);
    assert_eq!(st, 200);
    assert_eq!(v["state"]["succeeded"], 3, "{v:#}");
}

// ------------------------------------------------------------ 5. Token auth

const PY_HEADERS: &str = r#"
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps(event["headers"])}
"#;

#[test]
fn token_auth_401_403_and_owner_allowed_without_authorization_in_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");
    create_function_as(
        &s,
        &alice,
        "private",
        "Python311",
        "app.handler",
        &[("app.py", PY_HEADERS)],
        json!({}),
    );
    let (st, t) = create_trigger_as(
        &s,
        &alice,
        "private",
        None,
        json!({ "httpPath": "/private", "authType": "Token" }),
    );
    assert_eq!(st, 201, "{t}");
    // Bob cannot bind Alice's function.
    let (st, b) = create_trigger_as(&s, &bob, "private", None, json!({ "httpPath": "/bobs" }));
    assert!(st == 404 || st == 403, "{st} {b}");

    let r = get(&s, "/fn/private");
    assert_platform(&r, 401, "Unauthorized");
    let r = send(
        &s,
        "GET",
        "/fn/private",
        &[("authorization", "Bearer not-a-real-token")],
    );
    assert_platform(&r, 401, "Unauthorized");
    let bearer_bob = format!("Bearer {bob}");
    let r = send(&s, "GET", "/fn/private", &[("authorization", &bearer_bob)]);
    assert_platform(&r, 403, "Forbidden");

    for token in [&alice, &ADMIN_TOKEN.to_owned()] {
        let bearer = format!("Bearer {token}");
        let r = send(
            &s,
            "GET",
            "/fn/private",
            &[("authorization", &bearer), ("x-seen", "yes")],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let headers = r.json();
        assert_eq!(headers["x-seen"], "yes", "{headers}");
        assert!(
            headers.get("authorization").is_none(),
            "the token must not reach the function: {headers}"
        );
        assert!(!r.text().contains(token.as_str()));
    }

    let (st, v) = s.call(
        "GET",
        &format!("/v1/triggers/{}", id(&t)),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"]["rejected"], 3, "{v:#}");
    assert_eq!(v["state"]["succeeded"], 2, "{v:#}");
}

// ---------------------------------------------------- 6. errors and 429s

#[test]
fn function_error_is_502_without_its_text_and_timeout_is_504() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "boom",
        "def handler(event, context):\n    raise RuntimeError('SECRET-hunter2-db-password')\n",
        json!({}),
    );
    create_function_as(
        &s,
        ADMIN_TOKEN,
        "boom-node",
        "Node20",
        "index.handler",
        &[(
            "index.js",
            "exports.handler = async () => { throw new Error('SECRET-hunter2-node'); };\n",
        )],
        json!({}),
    );
    py_fn(
        &s,
        "bad-resp",
        "def handler(event, context):\n    return {'statusCode': 9999, 'body': 'SECRET-hunter2'}\n",
        json!({}),
    );
    py_fn(
        &s,
        "sleepy",
        "import time\ndef handler(event, context):\n    time.sleep(3)\n    return {'statusCode': 200, 'body': 'late'}\n",
        json!({ "timeout": 1 }),
    );
    for (f, p) in [
        ("boom", "/boom"),
        ("boom-node", "/boom-node"),
        ("bad-resp", "/bad-resp"),
        ("sleepy", "/sleepy"),
    ] {
        trigger(&s, f, json!({ "httpPath": p }));
    }
    for path in ["/fn/boom", "/fn/boom-node", "/fn/bad-resp"] {
        let r = get(&s, path);
        assert_platform(&r, 502, "Internal Server Error");
        let everything = format!("{:?} {}", r.headers, r.text());
        assert!(
            !everything.contains("hunter2")
                && !everything.contains("RuntimeError")
                && !everything.contains("Traceback"),
            "{path} leaked: {everything}"
        );
    }

    let started = Instant::now();
    let r = get(&s, "/fn/sleepy");
    let took = started.elapsed();
    assert_platform(&r, 504, "Endpoint request timed out");
    assert!(
        took < Duration::from_millis(2900),
        "answered at the 1 s timeout, not after the 3 s sleep: {took:?}"
    );
}

#[test]
fn rate_limit_answers_429_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "limited",
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n",
        json!({}),
    );
    // Warm the instance without touching the trigger's bucket.
    let (st, _) = s.admin("POST", "/v1/functions/limited/invoke", Some(json!({})));
    assert_eq!(st, 200);
    let t = trigger(
        &s,
        "limited",
        json!({ "httpPath": "/limited", "rateLimit": 1 }),
    );
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            let r = get(&s, "/fn/limited");
            if r.status == 429 {
                assert_platform(&r, 429, "Too Many Requests");
            }
            r.status
        })
        .collect();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    let rejected = statuses.iter().filter(|&&c| c == 429).count();
    assert!(rejected >= 5, "a burst over 1/s is refused: {statuses:?}");
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 429),
        "{statuses:?}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(&s, "/fn/limited").status, 200, "the bucket refilled");
    let (_, v) = s.admin("GET", &format!("/v1/triggers/{}", id(&t)), None);
    assert_eq!(v["state"]["rejected"], rejected, "{v:#}");
}

#[test]
fn max_instances_throttling_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "single",
        "import time\ndef handler(event, context):\n    q = event.get('queryStringParameters') or {}\n    time.sleep(float(q.get('s', '0')))\n    return {'statusCode': 200, 'body': 'done'}\n",
        json!({ "scalingConfig": { "maxInstances": 1 }, "timeout": 10 }),
    );
    trigger(&s, "single", json!({ "httpPath": "/single" }));
    assert_eq!(get(&s, "/fn/single").status, 200, "warm");

    let n = 3;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (url, barrier) = (s.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                // The first starts a little earlier so it holds the instance.
                std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 200 }));
                let started = Instant::now();
                let r = send_url(&url, "GET", "/fn/single?s=3", &[], None);
                (r.status, r.text(), started.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, String, Duration)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok: Vec<_> = results.iter().filter(|r| r.0 == 200).collect();
    let throttled: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(throttled.len(), n - 1, "{results:?}");
    for (_, body, took) in &throttled {
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({ "message": "Too Many Requests" })
        );
        assert!(
            *took >= Duration::from_millis(700) && *took < Duration::from_millis(2800),
            "refused after the ~1 s queue wait: {results:?}"
        );
    }
    assert_eq!(ok[0].1, "done");
    assert_eq!(get(&s, "/fn/single").status, 200, "free again");
}

// ------------------------------------------- 7. canary behind the trigger

fn version_code(tag: &str) -> String {
    b64(&zip_of(&[(
        "app.py",
        &format!(
            "def handler(event, context):\n    return {{'statusCode': 200, 'headers': {{'content-type': 'text/plain'}}, 'body': '{tag}'}}\n"
        ),
    )]))
}

/// Answers per version, and every non-2xx (status, body) seen.
type Seen = (BTreeMap<String, u64>, Vec<(u16, String)>);

#[test]
fn canary_deployment_behind_an_http_trigger_has_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let name = "canary-http";
    let mut body = function_body(name);
    body["memorySize"] = json!(1024);
    body["code"]["zipFile"] = json!(version_code("v1"));
    let (st, b) = s.admin("POST", "/v1/functions", Some(body));
    assert_eq!(st, 201, "{b}");
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        if i > 0 {
            let (st, b) = s.admin(
                "PUT",
                &format!("/v1/functions/{name}/code"),
                Some(json!({ "zipFile": version_code(tag) })),
            );
            assert_eq!(st, 200, "{b}");
        }
        let (st, b) = s.admin(
            "POST",
            &format!("/v1/functions/{name}/versions"),
            Some(json!({})),
        );
        assert_eq!(st, 201, "{b}");
    }
    let (st, b) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/aliases"),
        Some(json!({ "aliasName": "live", "version": 1 })),
    );
    assert_eq!(st, 201, "{b}");
    let (st, t) = create_trigger_as(
        &s,
        ADMIN_TOKEN,
        name,
        Some("live"),
        json!({ "httpPath": "/canary/{x}", "httpMethods": ["GET"] }),
    );
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["targetVersion"], "live");
    assert_eq!(get(&s, "/fn/canary/a").text(), "v1");
    // A trigger pinned to version 1 is not moved by the deployment.
    let (st, pinned) = create_trigger_as(
        &s,
        ADMIN_TOKEN,
        name,
        Some("1"),
        json!({ "httpPath": "/pinned" }),
    );
    assert_eq!(st, 201, "{pinned}");

    // Traffic through /fn from two threads for the whole deployment.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (stop, seen, url) = (stop.clone(), seen.clone(), s.url.clone());
            std::thread::spawn(move || {
                let client = client();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let r = client
                        .get(format!("{url}/fn/canary/t{i}-{n}"))
                        .send()
                        .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()));
                    let mut seen = seen.lock().unwrap();
                    match r {
                        Ok((200, body)) => *seen.0.entry(body).or_default() += 1,
                        Ok((code, body)) => seen.1.push((code, body)),
                        Err(e) => seen.1.push((0, e.to_string())),
                    }
                    drop(seen);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    let (st, d) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/deployments"),
        Some(json!({
            "aliasName": "live", "targetVersion": 2, "strategy": "Canary",
            "config": { "canaryIncrements": [20, 50], "canaryDuration": 2, "rollbackOnErrorRate": 10, "minInvocations": 5 }
        })),
    );
    assert_eq!(st, 201, "{d}");
    let dep = d["deploymentId"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let d = loop {
        let (st, d) = s.admin(
            "GET",
            &format!("/v1/functions/{name}/deployments/{dep}"),
            None,
        );
        assert_eq!(st, 200, "{d}");
        if matches!(
            d["status"].as_str(),
            Some("Completed" | "RolledBack" | "Failed" | "Cancelled")
        ) {
            break d;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "deployment did not end: {d:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // A little more traffic on the promoted version.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let (by_body, errors) = std::mem::take(&mut *seen.lock().unwrap());

    assert_eq!(d["status"], "Completed", "{d:#}");
    assert!(
        errors.is_empty(),
        "non-2xx during the deployment: {errors:?}"
    );
    assert_eq!(
        by_body.keys().cloned().collect::<Vec<_>>(),
        ["v1", "v2"],
        "{by_body:?}"
    );
    assert!(by_body["v1"] > 0 && by_body["v2"] > 0, "{by_body:?}");
    for _ in 0..5 {
        assert_eq!(get(&s, "/fn/canary/after").text(), "v2");
        assert_eq!(get(&s, "/fn/pinned").text(), "v1");
    }
}

// ------------------------------------------------ 8. conflicts and deletion

#[test]
fn duplicate_path_shape_is_409_and_deleting_the_function_unserves_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "dup",
        "def handler(event, context):\n    return {'statusCode': 200, 'body': event['requestContext']['http']['method']}\n",
        json!({}),
    );
    py_fn(&s, "other", PY_COUNT, json!({}));
    let first = trigger(
        &s,
        "dup",
        json!({ "httpPath": "/dup/{x}", "httpMethods": ["GET"] }),
    );
    for (function, config) in [
        (
            "dup",
            json!({ "httpPath": "/dup/{y}/", "httpMethods": ["get", "POST"] }),
        ),
        (
            "other",
            json!({ "httpPath": "/dup/{z}", "httpMethods": ["GET"] }),
        ),
        ("other", json!({ "httpPath": "/dup/{z}" })),
    ] {
        let (st, b) = create_trigger_as(&s, ADMIN_TOKEN, function, None, config.clone());
        assert_eq!(st, 409, "{config}: {b}");
        assert!(
            b["message"].as_str().unwrap_or("").contains(&id(&first)),
            "{b}"
        );
    }
    // Same shape, disjoint methods: allowed.
    let post = trigger(
        &s,
        "dup",
        json!({ "httpPath": "/dup/{y}", "httpMethods": ["POST"] }),
    );
    let r = get(&s, "/fn/dup/1");
    assert_eq!((r.status, r.text()), (200, "GET".to_owned()));
    let r = send(&s, "POST", "/fn/dup/1", &[]);
    assert_eq!((r.status, r.text()), (200, "POST".to_owned()));
    let (st, list) = s.admin("GET", "/v1/triggers?functionName=dup", None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    // A disabled trigger is not served; enabled again, it is.
    let (st, b) = s.admin(
        "PATCH",
        &format!("/v1/triggers/{}", id(&first)),
        Some(json!({ "isEnabled": false })),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["state"]["status"], "disabled", "{b:#}");
    let r = get(&s, "/fn/dup/1");
    assert_eq!(r.status, 405, "POST is still served there: {}", r.text());
    assert_eq!(r.header("allow"), Some("POST"));
    let (st, b) = s.admin(
        "PATCH",
        &format!("/v1/triggers/{}", id(&first)),
        Some(json!({ "isEnabled": true })),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(get(&s, "/fn/dup/1").text(), "GET");

    let (st, b) = s.admin("DELETE", "/v1/functions/dup", None);
    assert!(st == 204 || st == 200, "{st} {b}");
    assert_platform(&get(&s, "/fn/dup/1"), 404, "Not Found");
    assert_platform(&send(&s, "POST", "/fn/dup/1", &[]), 404, "Not Found");
    for t in [&first, &post] {
        let (st, b) = s.admin("GET", &format!("/v1/triggers/{}", id(t)), None);
        assert_eq!(st, 404, "the function's triggers went with it: {b}");
    }
    // The path is free again.
    trigger(&s, "other", json!({ "httpPath": "/dup/{z}" }));
    let r = get(&s, "/fn/dup/1");
    assert_eq!((r.status, r.text()), (200, "1".to_owned()));
}

// ------------------------------------------------------------ 9. counters

#[test]
fn counters_are_stored_and_exported_per_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    py_fn(
        &s,
        "counted",
        "def handler(event, context):\n    if (event.get('queryStringParameters') or {}).get('fail'):\n        raise ValueError('asked to')\n    return {'statusCode': 200, 'body': 'ok'}\n",
        json!({}),
    );
    let t = trigger(&s, "counted", json!({ "httpPath": "/counted" }));
    let tid = id(&t);
    assert_eq!(t["executionCount"], 0);
    let (n, m) = (4u64, 3u64);
    for _ in 0..n {
        assert_eq!(get(&s, "/fn/counted").status, 200);
    }
    for _ in 0..m {
        assert_eq!(get(&s, "/fn/counted?fail=1").status, 502);
    }
    let started = Instant::now();
    let v = loop {
        let (st, v) = s.admin("GET", &format!("/v1/triggers/{tid}"), None);
        assert_eq!(st, 200, "{v}");
        if v["executionCount"] == n + m && v["failureCount"] == m {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stored counters not updated within 5 s: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(v["lastExecutedAt"].is_string(), "{v:#}");
    let st = &v["state"];
    assert_eq!(
        (
            st["received"].as_u64(),
            st["succeeded"].as_u64(),
            st["failed"].as_u64(),
            st["rejected"].as_u64()
        ),
        (Some(n + m), Some(n), Some(m), Some(0)),
        "{v:#}"
    );
    assert_eq!(st["status"], "active");

    let text = s.prometheus();
    let line = |metric: &str, tail: &str| -> Option<u64> {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("{metric}{{trigger=\"{tid}\","))
                    && l.contains(&format!("function=\"counted\",{tail}}}"))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
    };
    let runs = "hotswap_trigger_runs_total";
    let codes = "hotswap_trigger_http_responses_total";
    assert_eq!(line(runs, "outcome=\"succeeded\""), Some(n), "{text}");
    assert_eq!(line(runs, "outcome=\"failed\""), Some(m), "{text}");
    assert_eq!(line(runs, "outcome=\"rejected\""), Some(0), "{text}");
    assert_eq!(line(codes, "code=\"2xx\""), Some(n), "{text}");
    assert_eq!(line(codes, "code=\"5xx\""), Some(m), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with(runs) && l.contains(&format!("trigger=\"{tid}\",type=\"http\","))
        ),
        "{text}"
    );
}

// ------------------------------------------------------------ access log

/// Removes ANSI colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of ` key=value` in a log line (quotes removed).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = if let Some(q) = rest.strip_prefix('"') {
        &q[..q.find('"')?]
    } else {
        rest.split(' ').next()?
    };
    Some(value.to_owned())
}

#[test]
fn each_request_gets_an_access_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotswap"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("HOTSWAP_DATABASE_URL")
        .env("HOTSWAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOTSWAP_LOG", "warn,hotswap::access=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hotswap");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _child = Kill(child);
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(plain(&line));
            }
        });
    }
    let url = listening_url(stdout)
        .recv_timeout(Duration::from_secs(60))
        .expect("server listening");
    let admin = |method: &str, path: &str, body: Value| -> (u16, Value) {
        let r = client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{url}{path}"),
            )
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().unwrap_or(Value::Null))
    };
    let (st, f) = admin(
        "POST",
        "/v1/functions",
        json!({ "name": "logged", "runtime": "Python311", "handler": "app.handler",
                "code": { "zipFile": b64(&zip_of(&[("app.py", "def handler(e, c):\n    return {'statusCode': 202, 'body': 'ok'}\n")])) } }),
    );
    assert_eq!(st, 201, "{f}");
    let (st, t) = admin(
        "POST",
        "/v1/triggers",
        json!({ "functionName": "logged", "type": "Http", "config": { "httpPath": "/logged/{x}" } }),
    );
    assert_eq!(st, 201, "{t}");
    let tid = id(&t);
    assert_eq!(
        send_url(&url, "GET", "/fn/logged/abc", &[], None).status,
        202
    );
    assert_eq!(send_url(&url, "GET", "/fn/missing", &[], None).status, 404);

    let started = Instant::now();
    loop {
        let got = lines.lock().unwrap().clone();
        let access: Vec<&String> = got
            .iter()
            .filter(|l| l.contains("hotswap::access"))
            .collect();
        let hit = access.iter().find(|l| l.contains("path=/logged/abc"));
        let miss = access.iter().find(|l| l.contains("path=/missing"));
        if let (Some(hit), Some(miss)) = (hit, miss) {
            for (key, value) in [
                ("method", "GET"),
                ("path", "/logged/abc"),
                ("status", "202"),
                ("trigger", tid.as_str()),
                ("function", "logged"),
                ("source_ip", "127.0.0.1"),
                ("version", "$LATEST"),
            ] {
                assert_eq!(field(hit, key).as_deref(), Some(value), "{key} in {hit}");
            }
            let ms: f64 = field(hit, "duration_ms").unwrap().parse().unwrap();
            assert!(ms > 0.0, "{hit}");
            assert_eq!(field(miss, "status").as_deref(), Some("404"), "{miss}");
            assert_eq!(field(miss, "trigger").as_deref(), Some("-"), "{miss}");
            assert_eq!(field(miss, "function").as_deref(), Some("-"), "{miss}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no access log lines: {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Attack: tenant B claims a more specific path inside tenant A's URL space
/// (`/shop/checkout` under A's `/shop/{proxy+}`) to receive A's traffic and
/// its users' Authorization headers. Refused, without naming A's trigger.
#[test]
fn a_tenant_cannot_take_over_part_of_another_tenants_urls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");
    for (token, name) in [(&alice, "shop"), (&bob, "thief")] {
        create_function_as(
            &s,
            token,
            name,
            "Python311",
            "app.handler",
            &[("app.py", PY_ROUTE_ECHO)],
            json!({}),
        );
    }
    let (st, t) = create_trigger_as(
        &s,
        &alice,
        "shop",
        None,
        json!({ "httpPath": "/shop/{proxy+}" }),
    );
    assert_eq!(st, 201, "{t}");
    let alices = id(&t);
    for path in [
        "/shop/checkout",
        "/shop/{item}",
        "/{any+}",
        "/{section}/checkout",
    ] {
        let (st, e) = create_trigger_as(&s, &bob, "thief", None, json!({ "httpPath": path }));
        assert_eq!(st, 409, "{path}: {e}");
        assert!(!e.to_string().contains(&alices), "{e}");
    }
    // Paths that no request can share with Alice's stay free.
    let (st, e) = create_trigger_as(&s, &bob, "thief", None, json!({ "httpPath": "/shop" }));
    assert_eq!(st, 201, "{e}");
    let (st, e) = create_trigger_as(
        &s,
        &bob,
        "thief",
        None,
        json!({ "httpPath": "/bobs/{proxy+}" }),
    );
    assert_eq!(st, 201, "{e}");
    // Alice's URL still reaches Alice's function.
    let r = get(&s, "/fn/shop/checkout");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("shop"), "{}", r.text());
}
