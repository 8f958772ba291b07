mod common;

// `hotswap fn invoke` and `hotswap fn logs` end to end: the real binary, run
// as a process, against a real server running real Python handlers.
// Exit codes: 0 success, 1 refused by the platform, 2 bad usage (a payload
// that is not JSON), 3 the function itself failed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Prints one line naming who called, and returns the event.
const HANDLERS: &str = r#"
def handler(event, context):
    print("hello from", event.get("who", "nobody"))
    return event

def boom(event, context):
    print("about to fail")
    raise ValueError("bad input: " + str(event.get("x")))
"#;

fn create(s: &Server, name: &str, handler: &str) {
    let (st, body) = s.admin(
        "POST",
        "/v1/functions",
        Some(json!({
            "name": name,
            "runtime": "Python311",
            "handler": handler,
            "code": { "zipFile": b64(&zip_of(&[("app.py", HANDLERS)])) },
        })),
    );
    assert_eq!(st, 201, "{body}");
}

/// `hotswap ARGS` against the server with the admin token.
fn hotswap(s: &Server, args: &[&str]) -> Command {
    cli_command(&s.url, Some(ADMIN_TOKEN), args)
}

/// Runs `hotswap ARGS` with `stdin` as its standard input.
fn run_with_stdin(s: &Server, args: &[&str], stdin: &str) -> Run {
    let mut child = hotswap(s, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the hotswap binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Run::from_output(child.wait_with_output().unwrap())
}

/// Runs `hotswap ARGS` with an empty (closed) stdin.
fn run(s: &Server, args: &[&str]) -> Run {
    Run::from_output(hotswap(s, args).output().expect("run the hotswap binary"))
}

#[test]
fn invoke_prints_the_payload_a_summary_and_fails_with_3_on_function_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    create(&s, "echo", "app.handler");

    // Cold, then warm; the payload is the event, pretty-printed.
    let event = json!({ "who": "alice", "n": [1, 2, 3], "nested": { "ok": true } });
    let r = run(
        &s,
        &["fn", "invoke", "echo", "--payload", &event.to_string()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), event);
    assert!(r.stdout.contains("\n  \"who\": \"alice\""), "pretty: {r:?}");
    let summary = r.stderr.lines().next().unwrap_or_default();
    assert!(summary.starts_with("$LATEST · cold · "), "{r:?}");
    assert!(
        summary.contains(" ms (billed ") && summary.contains(" MB · request "),
        "{r:?}"
    );

    // Warm now. With --log-tail the invocation's log follows the summary.
    // (The server reads the tail as soon as the function has answered, which
    // can be before it has captured the function's last output line; so a
    // few tries are allowed for the line to make it into the tail.)
    let mut tail_seen = false;
    for attempt in 0..10 {
        let who = format!("bob{attempt}");
        let payload = json!({ "who": who }).to_string();
        let r = run(
            &s,
            &["fn", "invoke", "echo", "--payload", &payload, "--log-tail"],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json(), json!({ "who": who }));
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(lines[0].starts_with("$LATEST · warm · "), "{r:?}");
        // The tail is framed by the invocation's START and END / REPORT.
        assert!(lines[1].starts_with("START RequestId: "), "{r:?}");
        assert!(
            lines[lines.len() - 2].starts_with("END RequestId: "),
            "{r:?}"
        );
        assert!(
            lines[lines.len() - 1].starts_with("REPORT RequestId: "),
            "{r:?}"
        );
        let output = &lines[2..lines.len() - 2];
        if !output.is_empty() {
            assert_eq!(output, [format!("hello from {who}")], "the log tail: {r:?}");
            tail_seen = true;
            break;
        }
    }
    assert!(tail_seen, "no invocation showed its log tail");

    // The whole result as JSON.
    let r = run(
        &s,
        &[
            "fn",
            "invoke",
            "echo",
            "--payload",
            r#"{"who":"carol"}"#,
            "--full",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let full = r.json();
    assert_eq!(full["wasColdStart"], false, "{full}");
    assert_eq!(full["success"], true, "{full}");
    assert_eq!(full["requestId"].as_str().unwrap().len(), 36, "{full}");
    let body: Value = serde_json::from_str(full["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({ "who": "carol" }));

    // The event from stdin, and `{}` when stdin is empty.
    let r = run_with_stdin(&s, &["fn", "invoke", "echo"], r#"{"who":"dave"}"#);
    assert_eq!((r.code, r.json()), (0, json!({ "who": "dave" })), "{r:?}");
    let r = run(&s, &["fn", "invoke", "echo"]);
    assert_eq!((r.code, r.json()), (0, json!({})), "{r:?}");

    // A handler that raises: exit 3, the error type and message on stderr.
    create(&s, "boom", "app.boom");
    let r = run(&s, &["fn", "invoke", "boom", "--payload", r#"{"x":42}"#]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("error: function error ValueError: bad input: 42"),
        "{r:?}"
    );
    assert_eq!(
        r.json()["errorType"],
        "ValueError",
        "the error payload: {r:?}"
    );
    let r = run(&s, &["fn", "invoke", "boom", "-o", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["success"], false);
    assert_eq!(r.json()["errorType"], "ValueError");
    assert!(r.stderr.contains("ValueError"), "{r:?}");

    // A published version, by qualifier: `v1` in the summary.
    let (st, v) = s.admin("POST", "/v1/functions/echo/versions", Some(json!({})));
    assert_eq!(st, 201, "{v}");
    let r = run(
        &s,
        &[
            "fn",
            "invoke",
            "echo",
            "--qualifier",
            "1",
            "--payload",
            r#"{"v":1}"#,
        ],
    );
    assert_eq!((r.code, r.json()), (0, json!({"v": 1})), "{r:?}");
    assert!(r.stderr.starts_with("v1 · cold · "), "{r:?}");

    // Not JSON: exit 2 before any request. An unknown function: exit 1.
    let r = run(&s, &["fn", "invoke", "echo", "--payload", "{who: alice}"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is not JSON"), "{r:?}");
    assert_eq!(r.stdout, "");
    let r = run(&s, &["fn", "invoke", "nope", "--payload", "{}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("error: NotFound: "), "{r:?}");
}

/// The lines of `fn logs` output that the function printed (not the
/// platform's START / END / REPORT).
fn output_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| !l.contains(" platform: "))
        .collect()
}

/// Runs `hotswap fn logs …` until it prints at least `lines` lines (the
/// server captures a function's output asynchronously), for up to 10 s.
fn logs_until(s: &Server, args: &[&str], lines: usize) -> Run {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = run(s, args);
        if r.code != 0 || r.stdout.lines().count() >= lines || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `hotswap fn logs --follow` in the background, with its stdout lines
/// arriving on a channel; killed when dropped if still running.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(s: &Server, name: &str) -> Follower {
        let mut child = hotswap(s, &["fn", "logs", name, "--follow"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hotswap fn logs --follow");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// The lines printed until one contains `needle` (panics after 30 s).
    fn wait_for(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within 30 s; got {seen:?}"),
            }
        }
    }

    /// The lines printed within `d`.
    fn lines_within(&self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(line);
        }
        seen
    }

    /// Sends SIGINT (as Ctrl-C does) and waits up to 10 s for the exit.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "fn logs --follow did not stop within 10 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn logs_show_lines_by_request_and_follow_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    create(&s, "chatty", "app.handler");

    let r = run(
        &s,
        &["fn", "invoke", "chatty", "--payload", r#"{"who":"first"}"#],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(
        &s,
        &[
            "fn",
            "invoke",
            "chatty",
            "--payload",
            r#"{"who":"second"}"#,
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let rid = r.json()["requestId"].as_str().unwrap().to_owned();

    // All lines, oldest first: `TIME [VERSION] REQUEST stream: message`;
    // each invocation has its START, END and REPORT lines.
    let r = logs_until(&s, &["fn", "logs", "chatty"], 8);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 8, "{r:?}");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.contains(" platform: REPORT RequestId: "))
            .count(),
        2,
        "{r:?}"
    );
    let lines = output_lines(&r.stdout);
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(lines[0].ends_with(" stdout: hello from first"), "{r:?}");
    assert!(lines[1].ends_with(" stdout: hello from second"), "{r:?}");
    let second = format!("[$LATEST] {} stdout: hello from second", &rid[..8]);
    assert!(lines[1].contains(&second), "{r:?}");

    // Exactly that invocation's line.
    let r = run(&s, &["fn", "logs", "chatty", "--request-id", &rid]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 4, "{r:?}");
    let output = output_lines(&r.stdout);
    assert_eq!(output.len(), 1, "{r:?}");
    assert!(output[0].ends_with(&second), "{r:?}");
    let r = run(
        &s,
        &["fn", "logs", "chatty", "--request-id", &rid, "-o", "json"],
    );
    let items: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|i: &Value| i["stream"] != "platform")
        .collect();
    assert_eq!(items.len(), 1, "{r:?}");
    let item = &items[0];
    assert_eq!(item["requestId"], rid.as_str());
    assert_eq!(item["message"], "hello from second");
    let r = run(
        &s,
        &["fn", "logs", "chatty", "--since", "1h", "--limit", "3"],
    );
    assert_eq!(r.stdout.lines().count(), 3, "{r:?}");
    assert!(
        r.stdout
            .lines()
            .next()
            .unwrap()
            .contains("hello from second"),
        "{r:?}"
    );

    // --follow prints what is there, then lines of later invocations, once.
    let mut follower = Follower::start(&s, "chatty");
    let backlog = follower.wait_for("hello from second");
    assert_eq!(output_lines(&backlog.join("\n")).len(), 2, "{backlog:?}");
    let r = run(
        &s,
        &["fn", "invoke", "chatty", "--payload", r#"{"who":"later"}"#],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let new = follower.wait_for("hello from later");
    assert_eq!(
        output_lines(&new.join("\n")).len(),
        1,
        "only the new line: {new:?}"
    );
    // Two more polls bring nothing again (but the END and REPORT lines of
    // the later invocation, if they were not there yet).
    let again = follower.lines_within(Duration::from_millis(2500));
    assert!(
        output_lines(&again.join("\n")).is_empty(),
        "printed twice: {again:?}"
    );
    let all: Vec<&String> = backlog.iter().chain(&new).chain(&again).collect();
    let distinct: std::collections::HashSet<&String> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "printed twice: {all:?}");
    assert_eq!(all.len(), 12, "three invocations of four lines: {all:?}");
    // Ctrl-C ends it cleanly.
    let status = follower.interrupt();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
