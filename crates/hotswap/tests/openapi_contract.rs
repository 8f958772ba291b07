//! The API as its OpenAPI document describes it, against the real binary:
//! every documented operation refuses a request without a valid token,
//! every operation refuses a query parameter it does not declare, and the
//! server bugs the schemathesis run (`scripts/schemathesis`) found stay fixed.

mod common;

use common::*;
use serde_json::{json, Value};

/// Every (method, path) of the served document, with its path parameters
/// filled in and the names of its declared query parameters.
fn operations(s: &Server) -> Vec<(String, String, Vec<String>)> {
    let (status, doc) = s.admin("GET", "/v1/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut concrete = path.clone();
            let mut query = Vec::new();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str() {
                    Some("path") => {
                        // A value every path parameter's schema admits.
                        concrete = concrete.replace(&format!("{{{name}}}"), "1");
                    }
                    Some("query") => query.push(name.to_owned()),
                    _ => {}
                }
            }
            assert!(
                !concrete.contains('{'),
                "{method} {path}: undeclared path parameter"
            );
            ops.push((method.to_uppercase(), concrete, query));
        }
    }
    assert!(ops.len() >= 40, "only {} operations documented", ops.len());
    ops
}

#[test]
fn every_documented_operation_refuses_a_missing_or_unknown_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for (method, path, _) in operations(&s) {
        for token in [None, Some("not-a-token")] {
            let (status, body) = s.call(&method, &path, token, Some(json!({})));
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert!(is_error(&body, "Unauthorized"), "{method} {path}: {body}");
        }
    }
}

#[test]
fn every_operation_refuses_an_unknown_query_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for (method, path, declared) in operations(&s) {
        assert!(!declared.iter().any(|d| d == "colour"));
        let (status, body) = s.admin(&method, &format!("{path}?colour=red"), None);
        assert_eq!(status, 400, "{method} {path}?colour=red: {body}");
        assert!(is_error(&body, "BadRequest"), "{method} {path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("colour"),
            "{method} {path}: {body}"
        );
    }
    // The parameters clients send keep working.
    assert_eq!(
        s.admin("POST", "/v1/functions", Some(function_body("q"))).0,
        201
    );
    for ok in [
        "/v1/functions?limit=1&nextToken=a&tag=team%3Dweb",
        "/v1/functions/q/logs?requestId=x&limit=1000&since=2024-05-01T12%3A00%3A00Z&version=1",
        "/v1/functions/q/versions?limit=1000",
        "/v1/functions/q/invocations?status=Pending&limit=1",
        "/v1/triggers?functionName=q&limit=5",
        "/v1/runners?limit=1&nextToken=1",
        // `owner` on a function's routes, with or without other parameters
        "/v1/functions/q?owner=admin",
        "/v1/functions/q/metrics?owner=admin",
        "/v1/functions/q/versions?owner=admin&limit=5",
        "/v1/functions?owner=admin",
    ] {
        let (status, body) = s.admin("GET", ok, None);
        assert_eq!(status, 200, "GET {ok}: {body}");
    }
    // `owner` means nothing on other routes: refused, never silently ignored.
    for path in [
        "/v1/layers?owner=admin",
        "/v1/runners?owner=admin",
        "/v1/whoami?owner=admin",
    ] {
        let (status, body) = s.admin("GET", path, None);
        assert_eq!(status, 400, "GET {path}: {body}");
    }
    // Declared parameters keep their documented values only.
    for bad in [
        "/v1/functions?limit=0",
        "/v1/functions?limit=1001",
        "/v1/functions/q/invoke?result=partial",
        "/v1/functions/q/invoke?log=all",
    ] {
        let method = if bad.contains("invoke") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = s.admin(method, bad, None);
        assert_eq!(status, 400, "{method} {bad}: {body}");
    }
}

/// JSON has one number type and JSON Schema's `integer` admits `256.0`:
/// schemathesis sent such bodies and the server refused them with 400.
#[test]
fn whole_numbers_written_as_floats_are_integers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let mut body = function_body("floats");
    body["memorySize"] = json!(256.0);
    body["timeout"] = json!(3e0);
    let (status, f) = s.admin("POST", "/v1/functions", Some(body));
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["memorySize"], 256);
    assert_eq!(f["timeout"], 3);
    let (status, v) = s.admin("POST", "/v1/functions/floats/versions", None);
    assert_eq!(status, 201, "{v}");
    let alias = json!({ "aliasName": "live", "version": 1.0 });
    let (status, a) = s.admin("POST", "/v1/functions/floats/aliases", Some(alias));
    assert_eq!(status, 201, "{a}");
    // A fraction is still not an integer; a `null` optional body is no body.
    let (status, e) = s.admin(
        "PATCH",
        "/v1/functions/floats",
        Some(json!({ "timeout": 2.5 })),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("timeout"), "{e}");
    let (status, v) = s.admin("POST", "/v1/functions/floats/versions", Some(Value::Null));
    assert_eq!(status, 201, "{v}");
}
