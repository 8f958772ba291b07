//! Test harness: starts the real `hotswap` binary on a free port with a
//! temporary data directory, and talks HTTP to it.

#![allow(dead_code)]

pub mod brokers;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hotswap")
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    /// Lines the server printed on stdout before it listened.
    pub banner: Vec<String>,
    client: Client,
}

pub struct ServerOptions {
    pub admin_token: Option<String>,
    pub database_url: Option<String>,
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            admin_token: Some(ADMIN_TOKEN.into()),
            database_url: None,
            extra_args: Vec::new(),
        }
    }
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, ServerOptions::default())
    }

    pub fn start_with(data_dir: &Path, opts: ServerOptions) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(&opts.extra_args)
            .env_remove("HOTSWAP_ADMIN_TOKEN")
            .env_remove("HOTSWAP_DATABASE_URL")
            // HOTSWAP_TEST_LOG: the servers' log filter when debugging a test.
            .env(
                "HOTSWAP_LOG",
                std::env::var("HOTSWAP_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = &opts.admin_token {
            cmd.env("HOTSWAP_ADMIN_TOKEN", t);
        }
        if let Some(db) = &opts.database_url {
            cmd.args(["--database-url", db]);
        }
        let mut child = cmd.spawn().expect("start hotswap server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let done = line.starts_with("hotswap listening on ");
                banner.push(line);
                if done {
                    let _ = tx.send(banner.clone());
                }
            }
        });
        let banner = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start listening within 60 s");
            }
        };
        let url = banner
            .last()
            .and_then(|l| l.strip_prefix("hotswap listening on "))
            .expect("listening line")
            .to_owned();
        Server {
            child,
            url,
            data_dir: data_dir.to_owned(),
            banner,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// Sends a JSON request; returns the status and the parsed body (`null`
    /// when empty).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", self.url, path),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("request");
        decode(resp)
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{}", self.url, path),
            )
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        decode(req.send().expect("request"))
    }

    /// The Prometheus text of `GET /metrics`, read with the admin token.
    pub fn prometheus(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics");
        resp.text().expect("metrics text")
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(ADMIN_TOKEN), body)
    }

    /// Creates a token for `owner` and returns its secret.
    pub fn token_for(&self, owner: &str) -> String {
        let (s, b) = self.admin("POST", "/v1/tokens", Some(json!({ "ownerId": owner })));
        assert_eq!(s, 201, "{b}");
        b["token"].as_str().unwrap().to_owned()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose instances must be isolated (`--sandbox isolated`): a
/// machine that cannot isolate fails the test instead of skipping it.
pub fn isolated_server(dir: &Path) -> Server {
    Server::start_with(
        dir,
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "isolated".into()],
            ..Default::default()
        },
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Environment variables that could change what the client does if they
/// leaked in from the developer's shell or CI.
pub const LEAKY_ENV: &[&str] = &[
    "HOTSWAP_URL",
    "HOTSWAP_TOKEN",
    "HOTSWAP_ADMIN_TOKEN",
    "HOTSWAP_DATABASE_URL",
    "HOTSWAP_LOG",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// `hotswap ARGS` as a client of `url`, with `token` when given; nothing
/// else from the environment leaks in.
pub fn cli_command(url: &str, token: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for var in LEAKY_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HOTSWAP_URL", url);
    if let Some(t) = token {
        cmd.env("HOTSWAP_TOKEN", t);
    }
    cmd
}

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().expect("exited normally, not by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// The stdout parsed as JSON (for `-o json` runs).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// A zip holding the given files.
pub fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

/// A zip with one executable file.
pub fn zip_with_exec(name: &str, body: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            name,
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )
        .unwrap();
        w.write_all(body.as_bytes()).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn python_code(reply: &str) -> String {
    b64(&zip_of(&[(
        "app.py",
        &format!("def handler(event, context):\n    return {reply:?}\n"),
    )]))
}

/// A create-function body with valid defaults.
pub fn function_body(name: &str) -> Value {
    json!({
        "name": name,
        "runtime": "Python311",
        "handler": "app.handler",
        "code": { "zipFile": python_code("v0") }
    })
}

/// A fresh PostgreSQL database for one test, dropped on `drop`.
pub struct PgDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        let admin_url = std::env::var("HOTSWAP_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("hotswap_it_{}", uuid_like());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        PgDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            psql(
                &self.admin_url,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            )
        });
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect(
        "psql must be installed and PostgreSQL reachable (set HOTSWAP_TEST_DATABASE_URL); .ci/run starts it",
    );
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}_{}", nanos, std::process::id())
}

/// Creates a function with `token` (code from `files`; `extra` fields are
/// merged into the request) and asserts the 201.
pub fn create_function_as(
    s: &Server,
    token: &str,
    name: &str,
    runtime: &str,
    handler: &str,
    files: &[(&str, &str)],
    extra: Value,
) -> Value {
    let mut body = json!({ "name": name, "runtime": runtime, "handler": handler, "code": { "zipFile": b64(&zip_of(files)) } });
    for (k, v) in extra.as_object().expect("extra is a JSON object") {
        body[k] = v.clone();
    }
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "create {name}: {f}");
    f
}

/// Invokes `name` as `token` (`?result=full`) and returns what the handler
/// returned, decoded; the invocation must succeed.
pub fn invoke_ok(s: &Server, token: &str, name: &str, event: Value) -> Value {
    let (st, r) = s.call(
        "POST",
        &format!("/v1/functions/{name}/invoke?result=full"),
        Some(token),
        Some(event),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["success"], true, "{name}: {r}");
    let body = r["body"].as_str().unwrap_or_else(|| panic!("{r}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Reads a server's stdout on a thread; the receiver gets the URL of its
/// `hotswap listening on URL` line.
pub fn listening_url(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("hotswap listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx
}

/// Runs `hotswap ARGS` as a client of `s` with `token`.
pub fn cli_as(s: &Server, token: &str, args: &[&str]) -> Run {
    Run::from_output(
        cli_command(&s.url, Some(token), args)
            .output()
            .expect("run the hotswap binary"),
    )
}

/// `hotswap ARGS -o json` as `token`; it must succeed.
pub fn cli_json(s: &Server, token: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let r = cli_as(s, token, &all);
    assert_eq!(r.code, 0, "hotswap {all:?}: {r:?}");
    r.json()
}

/// Whether `body` is the API's JSON error with `code`.
pub fn is_error(body: &Value, code: &str) -> bool {
    body["code"] == code && body["message"].is_string() && body["errors"].is_array()
}

/// The validation messages of a 400 `ValidationFailed`.
pub fn field_errors(status: u16, body: &Value) -> Vec<String> {
    assert_eq!(status, 400, "{body}");
    assert!(is_error(body, "ValidationFailed"), "{body}");
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

/// `GET /v1/triggers/{id}` as `token`; it must answer 200.
pub fn trigger_view(s: &Server, token: &str, id: &str) -> Value {
    let (st, t) = s.call("GET", &format!("/v1/triggers/{id}"), Some(token), None);
    assert_eq!(st, 200, "{t}");
    t
}

/// Polls `done` every 100 ms until it holds; fails the test after
/// `timeout`, naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `DIR/NAME.out`: where a test's function writes what it saw.
pub fn out_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.out"))
}
