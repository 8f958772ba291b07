//! Go functions: a compiled program that speaks the Runtime API itself (what
//! aws-lambda-go does), built here with the standard library only and run as
//! `/var/task/{handler}` in the isolated sandbox. The runner needs no Go
//! toolchain; this test needs `go` to build the function.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const MAIN_GO: &str = r#"package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

type lambdaError struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	StackTrace   []string `json:"stackTrace"`
}

func post(url string, value any, errorType string) {
	body, _ := json.Marshal(value)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if errorType != "" {
		req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "post:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"
	calls := 0
	for {
		resp, err := http.Get(api + "/invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		deadline, _ := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
		base := api + "/invocation/" + id
		calls++
		var event map[string]any
		if err := json.Unmarshal(body, &event); err != nil {
			post(base+"/error", lambdaError{err.Error(), "InvalidEvent", []string{}}, "InvalidEvent")
			continue
		}
		if why, ok := event["fail"].(string); ok {
			post(base+"/error", lambdaError{"asked to fail: " + why, "HelloError", []string{"main.go: main"}}, "HelloError")
			continue
		}
		fmt.Printf("go handling %s\n", id)
		post(base+"/response", map[string]any{
			"event":         event,
			"calls":         calls,
			"function":      os.Getenv("AWS_LAMBDA_FUNCTION_NAME"),
			"memory":        os.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
			"requestId":     id,
			"deadlineAhead": deadline > time.Now().UnixMilli(),
			"exe":           os.Args[0],
			"uid":           os.Getuid(),
		}, "")
	}
}
"#;

/// Builds the program with `go` (no network, no modules), or None when the
/// machine has no Go toolchain.
fn build() -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.go"), MAIN_GO).unwrap();
    std::fs::write(dir.path().join("go.mod"), "module hello\n\ngo 1.19\n").unwrap();
    let out = Command::new("go")
        .args(["build", "-ldflags=-s -w", "-o", "hello", "."])
        .current_dir(dir.path())
        .env("GOCACHE", dir.path().join("cache"))
        .env("GOPATH", dir.path().join("gopath"))
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("go build: {e}"),
    };
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(std::fs::read(dir.path().join("hello")).unwrap())
}

/// A zip holding `exe` as an executable named `name`.
fn zip_exe(name: &str, exe: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )
        .unwrap();
        w.write_all(exe).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn create(s: &Server, name: &str, handler: &str, zip: &[u8]) {
    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": name, "runtime": "Go121", "handler": handler,
            "memorySize": 128, "code": { "zipFile": b64(zip) } }),
        ),
    );
    assert_eq!(st, 201, "{f}");
}

fn invoke_full(s: &Server, name: &str, event: Value) -> Value {
    let (st, r) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/invoke?result=full"),
        Some(event),
    );
    assert_eq!(st, 200, "{r}");
    r
}

#[test]
fn a_go_executable_runs_warm_and_reports_its_errors() {
    let Some(exe) = build() else {
        eprintln!("SKIPPED: `go` is not installed (apt-get install golang-go; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "isolated".into()],
            ..Default::default()
        },
    );
    create(&s, "go-hello", "hello", &zip_exe("hello", &exe));
    for calls in 1..=2 {
        let r = invoke_full(&s, "go-hello", json!({ "n": calls }));
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["wasColdStart"], calls == 1, "{r}");
        let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({ "event": { "n": calls }, "calls": calls, "function": "go-hello",
                "memory": "128", "requestId": r["requestId"], "deadlineAhead": true,
                "exe": "/var/task/hello", "uid": 65534 })
        );
    }
    let (st, e) = s.admin(
        "POST",
        "/v1/functions/go-hello/invoke",
        Some(json!({ "fail": "please" })),
    );
    assert_eq!(st, 200, "{e}");
    assert_eq!(
        e,
        json!({ "errorType": "HelloError", "errorMessage": "asked to fail: please",
            "stackTrace": ["main.go: main"] })
    );
    let r = invoke_full(&s, "go-hello", json!({ "fail": "again" }));
    assert_eq!(
        (
            r["success"].as_bool(),
            r["errorType"].as_str(),
            r["wasColdStart"].as_bool()
        ),
        (Some(false), Some("HelloError"), Some(false)),
        "{r}"
    );

    // Built the provided.al2 way: an executable named bootstrap.
    create(&s, "go-bootstrap", "main", &zip_exe("bootstrap", &exe));
    let r = invoke_full(&s, "go-bootstrap", json!({ "n": 0 }));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(out["exe"], "/var/task/bootstrap", "{out}");

    // A handler naming no file of the package fails the invocation.
    create(&s, "go-nope", "nope", &zip_exe("hello", &exe));
    let r = invoke_full(&s, "go-nope", json!({}));
    assert_eq!(
        (r["success"].as_bool(), r["errorType"].as_str()),
        (Some(false), Some("Runtime.ExitError")),
        "{r}"
    );
    let (_, logs) = s.admin("GET", "/v1/functions/go-nope/logs", None);
    assert!(
        logs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"]
                .as_str()
                .unwrap()
                .contains("cannot start /var/task/nope")),
        "{logs}"
    );
}
