//! A function built with the `lambda_runtime` crate (tests/fixtures/rust-lambda)
//! runs unchanged as a `Provided` function: the platform's Runtime API is
//! wire-compatible with the real client's expectations.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn build_fixture() -> Vec<u8> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust-lambda");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rust-lambda");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--locked", "--quiet"])
        .current_dir(&fixture)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building the lambda_runtime fixture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(target.join("debug/bootstrap")).expect("bootstrap binary")
}

fn zip_binary(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            "bootstrap",
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )
        .unwrap();
        w.write_all(bytes).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn a_lambda_runtime_crate_function_runs_unchanged() {
    let zip = zip_binary(&build_fixture());
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": "rusty", "runtime": "Provided", "handler": "bootstrap",
        "memorySize": 192, "code": { "zipFile": b64(&zip) } }),
        ),
    );
    assert_eq!(st, 201, "{f}");

    for _ in 0..2 {
        let (st, r) = s.admin(
            "POST",
            "/v1/functions/rusty/invoke?result=full",
            Some(json!({ "hello": "rust" })),
        );
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["success"], true, "{r}");
        let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(out["echo"], json!({ "hello": "rust" }));
        assert_eq!(
            out["requestId"], r["requestId"],
            "the Lambda-Runtime-Aws-Request-Id reached the handler"
        );
        assert_eq!(
            (out["function"].as_str(), out["memory"].as_str()),
            (Some("rusty"), Some("192"))
        );
    }
    let (_, r) = s.admin(
        "POST",
        "/v1/functions/rusty/invoke?result=full",
        Some(json!({})),
    );
    assert_eq!(r["wasColdStart"], false, "the instance was reused");

    let (st, r) = s.admin(
        "POST",
        "/v1/functions/rusty/invoke?result=full",
        Some(json!({ "fail": true })),
    );
    assert_eq!(st, 200);
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["errorMessage"]
            .as_str()
            .unwrap()
            .contains("asked to fail"),
        "{r}"
    );
}
