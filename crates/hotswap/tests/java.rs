//! A Java function on the runner's JDK: compiled here with javac, zipped as
//! classes, invoked through the built-in Java bootstrap.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

const SOURCE: &str = r#"
package com.example;

import java.util.Map;

public class Hello {
    private int calls = 0;

    public String handle(String event, Map<String, Object> context) {
        calls++;
        if (event.contains("\"fail\"")) {
            throw new IllegalStateException("asked to fail");
        }
        System.out.println("java handling " + context.get("awsRequestId"));
        return "{\"event\":" + event + ",\"calls\":" + calls + ",\"function\":\"" + context.get("functionName") + "\"}";
    }
}
"#;

fn compiled_zip() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("Hello.java");
    std::fs::write(&src, SOURCE).unwrap();
    let out = Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(dir.path().join("classes"))
        .arg(&src)
        .output()
        .expect("javac");
    assert!(
        out.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(dir.path().join("classes/com/example/Hello.class")).unwrap();
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            "com/example/Hello.class",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(&bytes).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn a_java_handler_runs_warm_and_reports_exceptions() {
    let zip = compiled_zip();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, f) = s.admin("POST", "/v1/functions", Some(json!({ "name": "java-hello", "runtime": "Java17",
        "handler": "com.example.Hello::handle", "memorySize": 512, "timeout": 30, "code": { "zipFile": b64(&zip) } })));
    assert_eq!(st, 201, "{f}");
    for calls in 1..=2 {
        let (st, r) = s.admin(
            "POST",
            "/v1/functions/java-hello/invoke?result=full&log=tail",
            Some(json!({ "n": calls })),
        );
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["success"], true, "{r}");
        let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({ "event": { "n": calls }, "calls": calls, "function": "java-hello" })
        );
        assert_eq!(r["wasColdStart"], calls == 1);
    }
    let (_, r) = s.admin(
        "POST",
        "/v1/functions/java-hello/invoke?result=full",
        Some(json!({ "fail": true })),
    );
    assert_eq!(
        (r["success"].as_bool(), r["errorType"].as_str()),
        (Some(false), Some("IllegalStateException")),
        "{r}"
    );
    assert_eq!(r["errorMessage"], "asked to fail");

    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(json!({ "name": "java-missing", "runtime": "Java17",
        "handler": "com.example.Nope::handle", "code": { "zipFile": b64(&zip) } })),
    );
    assert_eq!(st, 201, "{f}");
    let (_, r) = s.admin(
        "POST",
        "/v1/functions/java-missing/invoke?result=full",
        Some(json!({})),
    );
    assert_eq!(r["errorType"], "Runtime.ImportModuleError", "{r}");
    let (_, local) = s.admin("GET", "/v1/runners/local", None);
    assert!(
        local["runtimes"]
            .as_array()
            .unwrap()
            .contains(&json!("Java17")),
        "{local}"
    );
}
