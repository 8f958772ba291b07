//! Hot-path costs of HTTP triggers: route matching, event building,
//! response mapping.

use std::hint::black_box;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use hotswap_triggers::http::{build_event, reply_from_payload, RequestInfo, RouteTable};
use http::{HeaderMap, HeaderValue};

/// ~50 routes of a few services: literals, params, proxies.
fn table() -> RouteTable<usize> {
    let mut t = RouteTable::new();
    let mut n = 0;
    let mut add = |p: &str, m: Option<&[&str]>| {
        let m: Option<Vec<String>> = m.map(|l| l.iter().map(|s| s.to_string()).collect());
        t.insert(p, m.as_deref(), n).unwrap();
        n += 1;
    };
    for svc in [
        "orders", "users", "carts", "items", "payments", "invoices", "reports", "search",
    ] {
        add(&format!("/{svc}"), Some(&["GET", "POST"]));
        add(&format!("/{svc}/{{id}}"), Some(&["GET", "PUT", "DELETE"]));
        add(&format!("/{svc}/{{id}}/history"), Some(&["GET"]));
        add(&format!("/{svc}/{{id}}/lines/{{line}}"), None);
        add(&format!("/{svc}/admin/stats"), Some(&["GET"]));
        add(&format!("/{svc}/files/{{proxy+}}"), None);
    }
    add("/health", Some(&["GET"]));
    add("/static/{proxy+}", Some(&["GET"]));
    t
}

fn routes(c: &mut Criterion) {
    let t = table();
    assert!(t.len() >= 50);
    c.bench_function("route hit, 2 params", |b| {
        b.iter(|| {
            t.lookup(black_box("/payments/8f3a9c/lines/17"), black_box("GET"))
                .unwrap()
        })
    });
    c.bench_function("route hit, literal", |b| {
        b.iter(|| {
            t.lookup(black_box("/reports/admin/stats"), black_box("GET"))
                .unwrap()
        })
    });
    c.bench_function("route 404", |b| {
        b.iter(|| {
            t.lookup(black_box("/nothing/here/at/all"), black_box("GET"))
                .unwrap_err()
        })
    });
    c.bench_function("route 405", |b| {
        b.iter(|| {
            t.lookup(black_box("/orders/42"), black_box("PATCH"))
                .unwrap_err()
        })
    });
}

fn event(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("host", "abc123.lambda-url.local"),
        ("content-type", "application/json"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        ),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-forwarded-for", "203.0.113.7"),
        ("cookie", "session=abc123; theme=dark"),
        ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    let body = br#"{"customerId":"c-42","items":[{"sku":"A1","qty":2},{"sku":"B7","qty":1}],"note":"leave at door"}"#;
    let params = [("id".to_string(), "42".to_string())].into_iter().collect();
    let req = RequestInfo {
        method: "POST",
        raw_path: "/orders/42",
        raw_query: "expand=lines&dry_run=false",
        headers: &headers,
        body,
        source_ip: "203.0.113.7",
        protocol: "HTTP/1.1",
        request_id: "6f1c2d3e-0000-4000-8000-000000000001",
        time: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        path_parameters: Some(&params),
        route_key: "POST /orders/{id}",
        domain_name: "abc123.lambda-url.local",
        api_id: "abc123",
        account_id: "000000000000",
        strip_authorization: true,
    };
    c.bench_function("event build + serialise, small JSON POST", |b| {
        b.iter(|| build_event(black_box(&req)).to_json())
    });
}

fn response(c: &mut Criterion) {
    let payload = Bytes::from_static(
        br#"{"statusCode":201,"headers":{"content-type":"application/json","x-request-id":"r-1"},"body":"{\"orderId\":\"o-42\",\"status\":\"created\"}"}"#,
    );
    c.bench_function("response map, structured", |b| {
        b.iter(|| reply_from_payload(black_box(payload.clone())).unwrap())
    });
    let plain = Bytes::from_static(br#"{"orderId":"o-42","status":"created"}"#);
    c.bench_function("response map, plain JSON", |b| {
        b.iter(|| reply_from_payload(black_box(plain.clone())).unwrap())
    });
}

criterion_group!(benches, routes, event, response);
criterion_main!(benches);
