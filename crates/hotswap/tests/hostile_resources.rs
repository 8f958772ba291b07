//! A function must not be able to exhaust the server: attacks run as real
//! functions (and real API calls) against the real binary, most of them in
//! the isolated sandbox (needs root and bubblewrap, like `isolation.rs`).
//!
//! - output floods: the log store stays within its byte caps and the
//!   server's memory with it; an endless line is cut and marked;
//! - the logs query refuses parameters past their maximum;
//! - every invocation leaves START / END / REPORT lines;
//! - a flood of connections to an instance's own Runtime API is capped per
//!   instance, so the server keeps its file descriptors for everyone else.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
import os, sys, socket, time, resource

def quiet(event, context):
    return {"ok": True}

def noline(event, context):
    chunk = b"x" * (1 << 20)
    for _ in range(event["mb"]):
        sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
    return "done"

def lines(event, context):
    block = b"".join(b"%09d " % i + b"y" * 90 + b"\n" for i in range(10000))
    for _ in range(event["mb"]):
        sys.stdout.buffer.write(block)
    sys.stdout.flush()
    return "done"

def sleepy(event, context):
    time.sleep(event["s"])
    return "slept"

def flood(event, context):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except Exception:
        pass
    def connect():
        if event["via"] == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(os.environ["_HOTSWAP_RUNTIME_API_SOCKET"])
            return s
        host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
        return socket.create_connection((host, int(port)))
    socks, errors = [], {}
    started = time.time()
    while len(socks) < event["n"] and time.time() - started < 60:
        try:
            socks.append(connect())
        except OSError as e:
            name = type(e).__name__ + ":" + str(e.errno)
            errors[name] = errors.get(name, 0) + 1
            if e.errno == 24 or sum(errors.values()) > 1000:
                break
    time.sleep(event.get("hold", 1.0))
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) != b"":
                still_open += 1
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    return {"opened": len(socks), "stillOpen": still_open, "errors": errors,
            "fdLimit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
"#;

/// Caps given to the servers of the log tests.
const LINE_MAX: usize = 65_536;
const PER_FUNCTION: u64 = 4 << 20;
const TOTAL: u64 = 8 << 20;
/// The Runtime API connections one instance may hold open.
const CONN_CAP: u64 = 8;

fn start(dir: &std::path::Path, sandbox: &str) -> Server {
    Server::start_with(
        dir,
        ServerOptions {
            extra_args: vec![
                "--sandbox".into(),
                sandbox.into(),
                "--log-line-max-bytes".into(),
                LINE_MAX.to_string(),
                "--log-retention-per-function-bytes".into(),
                PER_FUNCTION.to_string(),
                "--log-retention-total-bytes".into(),
                TOTAL.to_string(),
                "--runtime-api-max-connections".into(),
                CONN_CAP.to_string(),
            ],
            ..Default::default()
        },
    )
}

fn make(s: &Server, name: &str, handler: &str) {
    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": name, "runtime": "Python311", "handler": handler,
            "memorySize": 128, "timeout": 120,
            "code": { "zipFile": b64(&zip_of(&[("app.py", CODE)])) } }),
        ),
    );
    assert_eq!(st, 201, "{f}");
}

/// `?result=full` invocation; the result and the decoded `X-Log-Result`.
fn invoke(s: &Server, path: &str, event: Value) -> (Value, String) {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(180))
        .build()
        .unwrap()
        .post(format!("{}{path}", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&event)
        .send()
        .expect("invoke");
    assert_eq!(resp.status(), 200, "{path}");
    let tail = resp
        .headers()
        .get("x-log-result")
        .map(|v| {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .unwrap();
            String::from_utf8(raw).unwrap()
        })
        .unwrap_or_default();
    let body: Value = resp.json().unwrap();
    (body, tail)
}

fn full(s: &Server, name: &str, event: Value) -> Value {
    let (r, _) = invoke(
        s,
        &format!("/v1/functions/{name}/invoke?result=full"),
        event,
    );
    r
}

/// The server process: the `hotswap server` whose data directory is ours.
fn server_pid(s: &Server) -> u32 {
    let dir = s.data_dir.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a == bin())
            && args.get(1).is_some_and(|a| a == "server")
            && args.contains(&dir)
        {
            return pid;
        }
    }
    panic!("no server process for {dir}");
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024.0
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn healthy(s: &Server) -> bool {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/healthz", s.url))
        .send()
        .is_ok_and(|r| r.status() == 200)
}

/// `hotswap_log_retained_bytes{function="NAME"}` from `/metrics`.
fn retained_bytes(s: &Server, name: &str) -> u64 {
    let text = s.prometheus();
    // `hotswap_log_retained_bytes{function_id="…",function="NAME"} BYTES`
    let label = format!(",function=\"{name}\"}} ");
    text.lines()
        .filter(|l| l.starts_with("hotswap_log_retained_bytes{"))
        .find_map(|l| l.split_once(&label).map(|(_, v)| v))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

fn logs(s: &Server, name: &str, query: &str) -> Vec<Value> {
    let (st, body) = s.admin("GET", &format!("/v1/functions/{name}/logs?{query}"), None);
    assert_eq!(st, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn messages(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn output_floods_stay_within_the_log_caps_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "isolated");
    make(&s, "benign", "app.quiet");
    make(&s, "noline", "app.noline");
    make(&s, "chatty", "app.lines");
    let pid = server_pid(&s);
    // Warm everything once, so that the baseline has the instances, the
    // code cache and the runtime's first allocations.
    assert_eq!(full(&s, "benign", json!({}))["success"], true);
    assert_eq!(full(&s, "noline", json!({ "mb": 1 }))["success"], true);
    assert_eq!(full(&s, "chatty", json!({ "mb": 1 }))["success"], true);
    let baseline = rss_mib(pid);

    // 100 MB without a newline, then 100 MB of short lines.
    let r = full(&s, "noline", json!({ "mb": 100 }));
    assert_eq!(r["success"], true, "{r}");
    let rid = r["requestId"].as_str().unwrap().to_owned();
    let after_noline = rss_mib(pid);
    let r = full(&s, "chatty", json!({ "mb": 100 }));
    assert_eq!(r["success"], true, "{r}");
    let after_lines = rss_mib(pid);
    eprintln!(
        "RSS MiB: baseline {baseline:.1}, after 100 MB unbroken {after_noline:.1}, after 100 MB of lines {after_lines:.1}"
    );
    // 200 MB went through; what the server kept is bounded by the caps
    // (8 MiB here), whatever the allocator keeps around.
    let growth = after_noline.max(after_lines) - baseline;
    assert!(
        growth < 48.0,
        "the server grew by {growth:.1} MiB (baseline {baseline:.1})"
    );

    // The unbroken output is one line, cut at the cap and marked.
    let items = logs(&s, "noline", &format!("requestId={rid}"));
    let output: Vec<&Value> = items.iter().filter(|l| l["stream"] == "stdout").collect();
    assert_eq!(output.len(), 1, "the rest of the line is discarded");
    let cut = output[0]["message"].as_str().unwrap();
    assert!(
        cut.starts_with(&"x".repeat(LINE_MAX)) && cut.len() < LINE_MAX + 64,
        "cut at {LINE_MAX} bytes: {} bytes",
        cut.len()
    );
    assert_eq!(output[0]["truncated"], true, "the cut line is marked");
    assert!(cut.ends_with("[truncated]"), "{}", &cut[LINE_MAX..]);

    let noline_bytes = retained_bytes(&s, "noline");
    let chatty_bytes = retained_bytes(&s, "chatty");
    let benign_bytes = retained_bytes(&s, "benign");
    assert!(
        chatty_bytes > PER_FUNCTION / 2 && chatty_bytes <= PER_FUNCTION,
        "per-function cap: {chatty_bytes}"
    );
    assert!(noline_bytes <= PER_FUNCTION, "{noline_bytes}");
    assert!(
        noline_bytes + chatty_bytes + benign_bytes <= TOTAL,
        "total cap: {noline_bytes} + {chatty_bytes} + {benign_bytes}"
    );
    // The newest lines are the ones kept, whole.
    let newest = messages(&logs(&s, "chatty", "limit=3"));
    assert_eq!(newest.len(), 3);
    assert!(newest[0].starts_with("000009999 "), "{newest:?}");
    assert!(newest[1].starts_with("END RequestId: "), "{newest:?}");
    assert!(newest[2].starts_with("REPORT RequestId: "), "{newest:?}");

    assert!(healthy(&s));
    let r = full(&s, "benign", json!({}));
    assert_eq!(
        (r["success"].as_bool(), r["wasColdStart"].as_bool()),
        (Some(true), Some(false)),
        "{r}"
    );
}

#[test]
fn log_query_parameters_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), ServerOptions::default());
    let (st, f) = s.admin("POST", "/v1/functions", Some(function_body("f")));
    assert_eq!(st, 201, "{f}");

    let refused = |query: &str| -> Value {
        let (st, body) = s.admin("GET", &format!("/v1/functions/f/logs?{query}"), None);
        assert_eq!(st, 400, "{query}: {body}");
        assert_eq!(body["code"], "ValidationFailed", "{query}: {body}");
        body
    };
    let body = refused("limit=100000");
    assert_eq!(
        body["errors"],
        json!(["limit must be between 1 and 1000 (got 100000)"]),
        "{body}"
    );
    refused("limit=0");
    refused("limit=-1");
    refused("limit=lots");
    refused("since=yesterday");
    refused("version=prod");
    refused("version=0");
    refused(&format!("requestId={}", "a".repeat(200)));
    refused("requestId=has%20space");
    let body = refused("limit=5000&since=soon&version=x&requestId=");
    assert_eq!(body["errors"].as_array().unwrap().len(), 4, "{body}");
    for field in ["limit", "since", "version", "requestId"] {
        assert!(body.to_string().contains(field), "{field}: {body}");
    }

    for ok in [
        "limit=1000",
        "limit=1",
        "since=2024-05-01T12:00:00Z",
        "since=2024-05-01T12:00:00.500%2B02:00",
        "version=%24LATEST",
        "version=3",
        "requestId=1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60",
        "requestId=1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60-dlq",
    ] {
        let (st, body) = s.admin("GET", &format!("/v1/functions/f/logs?{ok}"), None);
        assert_eq!(st, 200, "{ok}: {body}");
    }
}

/// `REPORT RequestId: …\tDuration: …` → its fields by name.
fn report_fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split('\t')
        .filter_map(|f| f.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn every_invocation_leaves_start_end_and_report_lines() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "isolated");
    make(&s, "silent", "app.quiet");
    let (st, v) = s.admin("POST", "/v1/functions/silent/versions", Some(json!({})));
    assert_eq!(st, 201, "{v}");

    for cold in [true, false] {
        let (r, tail) = invoke(
            &s,
            "/v1/functions/silent/invoke?qualifier=1&result=full&log=tail",
            json!({}),
        );
        assert_eq!(r["wasColdStart"], cold, "{r}");
        let rid = r["requestId"].as_str().unwrap();
        let items = logs(&s, "silent", &format!("requestId={rid}"));
        let lines = messages(&items);
        assert_eq!(lines.len(), 3, "a function that prints nothing: {lines:?}");
        assert_eq!(lines[0], format!("START RequestId: {rid} Version: 1"));
        assert_eq!(lines[1], format!("END RequestId: {rid}"));
        let report = &lines[2];
        assert!(
            report.starts_with(&format!("REPORT RequestId: {rid}\tDuration: ")),
            "{report:?}"
        );
        let f = report_fields(report);
        let ms = |k: &str| -> f64 {
            f[k].strip_suffix(" ms")
                .unwrap_or_else(|| panic!("{k} in ms: {report:?}"))
                .parse()
                .unwrap()
        };
        assert!(ms("Duration") >= 0.0, "{report:?}");
        assert_eq!(
            ms("Billed Duration"),
            r["billedDurationMs"].as_f64().unwrap(),
            "{report:?}"
        );
        assert!(
            ms("Billed Duration") >= ms("Duration").floor(),
            "{report:?}"
        );
        assert_eq!(f["Memory Size"], "128 MB", "{report:?}");
        assert_eq!(
            f["Max Memory Used"],
            format!("{} MB", r["memoryUsedMB"]),
            "{report:?}"
        );
        if cold {
            assert!(ms("Init Duration") > 0.0, "{report:?}");
        } else {
            assert!(!f.contains_key("Init Duration"), "warm: {report:?}");
        }
        for item in &items {
            assert_eq!(item["version"], "1");
            assert_eq!(item["requestId"], rid);
        }
        // The invoke tail ends as Lambda's does.
        assert!(
            tail.starts_with(&format!("START RequestId: {rid} Version: 1\n")),
            "{tail:?}"
        );
        assert!(
            tail.ends_with(&format!("END RequestId: {rid}\n{report}\n")),
            "{tail:?}"
        );
    }
}

/// Runs the connection flood in one instance while checking, from outside,
/// that the server keeps its descriptors and keeps serving.
fn connection_flood(sandbox: &str, via: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), sandbox);
    make(&s, "benign", "app.quiet");
    make(&s, "flood", "app.flood");
    let pid = server_pid(&s);
    assert_eq!(full(&s, "benign", json!({}))["success"], true);
    assert_eq!(
        full(&s, "flood", json!({ "via": via, "n": 1, "hold": 0 }))["success"],
        true
    );
    let baseline = fd_count(pid);

    let (attack, most_fds, checks) = std::thread::scope(|scope| {
        let attack =
            scope.spawn(|| full(&s, "flood", json!({ "via": via, "n": 20000, "hold": 2.0 })));
        let mut most = 0;
        let mut checks = 0;
        let began = Instant::now();
        while !attack.is_finished() && began.elapsed() < Duration::from_secs(150) {
            most = most.max(fd_count(pid));
            assert!(healthy(&s), "/healthz during the flood");
            checks += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (attack.join().unwrap(), most, checks)
    });
    assert_eq!(attack["success"], true, "{attack}");
    let out: Value = serde_json::from_str(attack["body"].as_str().unwrap()).unwrap();
    eprintln!("{sandbox}/{via}: {out}; server fds: baseline {baseline}, most {most_fds} over {checks} checks");
    // 20,000, or as many as the function's own descriptor limit allows.
    let most = out["fdLimit"].as_u64().unwrap().min(20000);
    assert!(
        out["opened"].as_u64().unwrap() + 100 >= most,
        "the attack ran: {out}"
    );
    assert!(
        out["stillOpen"].as_u64().unwrap() <= CONN_CAP,
        "at most {CONN_CAP} connections stay open: {out}"
    );
    assert!(
        most_fds <= baseline + 64,
        "server fds: baseline {baseline}, most {most_fds}"
    );
    assert!(healthy(&s), "/healthz after the flood");
    let r = full(&s, "benign", json!({}));
    assert_eq!(
        (r["success"].as_bool(), r["wasColdStart"].as_bool()),
        (Some(true), Some(false)),
        "a second function still runs warm: {r}"
    );
    // The flooding function itself still works afterwards.
    let r = full(&s, "flood", json!({ "via": via, "n": 1, "hold": 0 }));
    assert_eq!(r["success"], true, "{r}");
}

#[test]
fn runtime_api_connection_flood_is_capped_per_instance_isolated() {
    connection_flood("isolated", "unix");
}

#[test]
fn runtime_api_connection_flood_is_capped_per_instance_unisolated() {
    connection_flood("unisolated", "tcp");
}

/// A server started under `prlimit`, with a descriptor limit it cannot
/// raise; killed when dropped.
struct Limited {
    child: std::process::Child,
    url: String,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_limited(dir: &std::path::Path, nofile: u64, extra: &[&str]) -> Limited {
    use std::io::BufRead;
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(bin())
        .args(["server", "--listen", "127.0.0.1:0", "--sandbox", "isolated"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("HOTSWAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOTSWAP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the server");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("hotswap listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server listens");
    Limited { child, url }
}

#[test]
fn the_descriptor_reserve_keeps_the_api_serving_when_instances_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_limited(dir.path(), 256, &["--fd-reserve", "128"]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (st, f) = {
        let r = client
            .post(format!("{}/v1/functions", s.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(
                &json!({ "name": "sleepy", "runtime": "Python311", "handler": "app.sleepy",
                "memorySize": 128, "timeout": 30, "scalingConfig": { "maxInstances": 100 },
                "code": { "zipFile": b64(&zip_of(&[("app.py", CODE)])) } }),
            )
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(st, 201, "{f}");
    let pid = s.child.id();
    let healthy = || {
        client
            .get(format!("{}/healthz", s.url))
            .timeout(Duration::from_secs(5))
            .send()
            .is_ok_and(|r| r.status() == 200)
    };

    // 60 invocations at once, each holding its instance for 3 s: more
    // instances than the descriptors outside the reserve allow.
    let (outcomes, most_fds) = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..60)
            .map(|_| {
                scope.spawn(|| {
                    let r = client
                        .post(format!("{}/v1/functions/sleepy/invoke", s.url))
                        .bearer_auth(ADMIN_TOKEN)
                        .json(&json!({ "s": 3 }))
                        .send()
                        .unwrap();
                    (r.status().as_u16(), r.text().unwrap())
                })
            })
            .collect();
        let mut most = 0;
        while calls.iter().any(|c| !c.is_finished()) {
            most = most.max(fd_count(pid));
            assert!(healthy(), "/healthz while instances pile up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let outcomes: Vec<(u16, String)> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        (outcomes, most)
    });
    let ok = outcomes.iter().filter(|(st, _)| *st == 200).count();
    let refused: Vec<&String> = outcomes
        .iter()
        .filter(|(st, _)| *st == 429)
        .map(|(_, b)| b)
        .collect();
    eprintln!(
        "{ok} ran, {} refused; server fds at most {most_fds} of 256",
        refused.len()
    );
    assert_eq!(ok + refused.len(), 60, "{outcomes:?}");
    assert!(ok >= 3, "instances still start: {outcomes:?}");
    assert!(
        !refused.is_empty(),
        "the reserve refused some: {outcomes:?}"
    );
    assert!(
        refused.iter().all(|b| b.contains("file descriptors")),
        "{refused:?}"
    );
    assert!(most_fds <= 256 - 64, "the reserve stayed free: {most_fds}");
    assert!(healthy());
    // Once they are done, the warm instances serve again.
    let r = client
        .post(format!("{}/v1/functions/sleepy/invoke", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "s": 0 }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}
