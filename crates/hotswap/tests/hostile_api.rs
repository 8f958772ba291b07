//! Attacks a tenant can make through the API itself (issue 9): oversized
//! events, and what the server does before it serves. Each case runs against
//! the real binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
def size(event, context):
    return {"len": len(event.get("s", ""))}
"#;

fn create(s: &Server, token: &str, name: &str) {
    let body = json!({ "name": name, "runtime": "Python311", "handler": "app.size",
        "code": { "zipFile": b64(&zip_of(&[("app.py", CODE)])) } });
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "{f}");
}

/// One HTTP/1.1 exchange over a raw socket: `head` (without the blank line),
/// then `body` as written, then the status and the JSON body of the answer.
fn exchange(s: &Server, head: &str, body: &[u8]) -> (u16, Value) {
    let addr = s.url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = sock.write_all(body);
    let mut raw = Vec::new();
    let _ = sock.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn event_of(len: usize) -> Vec<u8> {
    let mut e = b"{\"s\":\"".to_vec();
    e.resize(len - 2, b'x');
    e.extend_from_slice(b"\"}");
    e
}

fn assert_too_large(st: u16, body: &Value, what: &str) {
    assert_eq!(st, 413, "{what}: {body}");
    assert_eq!(body["code"], "RequestEntityTooLarge", "{what}: {body}");
}

#[test]
fn invoke_events_are_capped_at_lambdas_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create(&s, &alice, "sizes");
    let path = "/v1/functions/sizes/invoke";
    let auth = format!("Authorization: Bearer {alice}");

    // Just under 6 MiB runs.
    let max = 6 * 1024 * 1024;
    let (st, r) = s.raw(
        "POST",
        path,
        Some(&alice),
        "application/json",
        event_of(max),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["len"], max - 8);

    // One byte more is refused, whether declared or streamed.
    let (st, r) = exchange(
        &s,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {}",
            max + 1
        ),
        &event_of(max + 1),
    );
    assert_too_large(st, &r, "declared 6 MiB + 1");
    let (st, r) = exchange(
        &s,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nTransfer-Encoding: chunked"),
        &chunked(&event_of(max + 64 * 1024)),
    );
    assert_too_large(st, &r, "streamed past 6 MiB");
    // A 70 MiB claim is answered from its headers, without sending the body.
    let (st, r) = exchange(
        &s,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {}",
            70 << 20
        ),
        b"",
    );
    assert_too_large(st, &r, "70 MiB declared");

    // Asynchronous events: 256 KiB, refused before anything is stored.
    let small = 256 * 1024;
    let (st, r) = exchange(
        &s,
        &format!(
            "POST {path}?async=true HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {}",
            small + 1
        ),
        &event_of(small + 1),
    );
    assert_too_large(st, &r, "async 256 KiB + 1");
    let (st, r) = exchange(
        &s,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nX-Invocation-Type: Event\r\nTransfer-Encoding: chunked"),
        &chunked(&event_of(small + 10)),
    );
    assert_too_large(st, &r, "async streamed past 256 KiB");
    let (st, list) = s.call("GET", "/v1/functions/sizes/invocations", Some(&alice), None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"], json!([]), "nothing was stored");
    let (st, r) = exchange(
        &s,
        &format!("POST {path}?async=true HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {small}"),
        &event_of(small),
    );
    assert_eq!(st, 202, "async at the limit is queued: {r}");

    // The server is still well.
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
}

#[test]
fn payload_limits_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec![
                "--max-sync-payload".into(),
                "2KiB".into(),
                "--max-async-payload".into(),
                "1024".into(),
            ],
            ..Default::default()
        },
    );
    create(&s, ADMIN_TOKEN, "small");
    let path = "/v1/functions/small/invoke";
    let (st, r) = s.raw(
        "POST",
        path,
        Some(ADMIN_TOKEN),
        "application/json",
        event_of(2048),
    );
    assert_eq!((st, &r["len"]), (200, &json!(2040)), "{r}");
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let (st, r) = exchange(
        &s,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 2049"),
        &event_of(2049),
    );
    assert_too_large(st, &r, "2 KiB + 1");
    let (st, r) = exchange(
        &s,
        &format!("POST {path}?async=true HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 1025"),
        &event_of(1025),
    );
    assert_too_large(st, &r, "async 1 KiB + 1");
    assert!(r["message"].as_str().unwrap().contains("1024 bytes"), "{r}");
}

#[test]
fn a_server_that_cannot_listen_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-created");
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("HOTSWAP_ADMIN_TOKEN")
        .env_remove("HOTSWAP_DATABASE_URL")
        .env_remove("HOTSWAP_LISTEN")
        .env_remove("HOTSWAP_DATA_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(!data.exists(), "the data directory was created");
    assert!(!stdout.contains("admin token"), "{stdout}");
    // stderr is not a terminal here: plain text, no colour codes
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn the_log_has_no_colour_codes_when_not_on_a_terminal() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HOTSWAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("HOTSWAP_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("storage ready");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    assert!(log.contains("storage ready"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// A zip with files and symlinks (`(path, target)`), as `zip -y` makes them.
fn zip_with_links(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        for (name, body) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        for (name, target) in links {
            w.add_symlink(*name, *target, opts).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn code_packages_are_checked_for_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    let create = |name: &str, zip: Vec<u8>| {
        s.call(
            "POST",
            "/v1/functions",
            Some(&alice),
            Some(
                json!({ "name": name, "runtime": "Python311", "handler": "app.read",
                "code": { "zipFile": b64(&zip) } }),
            ),
        )
    };
    const READ: &str = r#"
import os
def read(event, context):
    p = event["path"]
    return {"link": os.readlink(p) if os.path.islink(p) else None,
            "text": open(p).read() if os.path.isfile(p) else None}
"#;

    // A link inside the package is kept as a link, as Lambda keeps it.
    let (st, f) = create(
        "links",
        zip_with_links(
            &[("app.py", READ), ("conf/v2/settings.txt", "v2 settings")],
            &[("conf/current", "v2")],
        ),
    );
    assert_eq!(st, 201, "{f}");
    let (st, r) = s.call(
        "POST",
        "/v1/functions/links/invoke",
        Some(&alice),
        Some(json!({ "path": "/var/task/conf/current/settings.txt" })),
    );
    assert_eq!((st, &r["text"]), (200, &json!("v2 settings")), "{r}");
    let (_, r) = s.call(
        "POST",
        "/v1/functions/links/invoke",
        Some(&alice),
        Some(json!({ "path": "/var/task/conf/current" })),
    );
    assert_eq!(r["link"], "v2", "{r}");

    // Links out of the package are refused at upload.
    for target in ["/etc/shadow", "../../../etc/shadow"] {
        let (st, e) = create(
            "escape",
            zip_with_links(&[("app.py", READ)], &[("shadow", target)]),
        );
        assert_eq!((st, e["code"].as_str()), (400, Some("InvalidCode")), "{e}");
        assert!(e["message"].as_str().unwrap().contains("symlink"), "{e}");
    }

    // An entry that lies about its size is refused at upload, not at invoke.
    let mut lying = {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("app.py", opts).unwrap();
            w.write_all(READ.as_bytes()).unwrap();
            w.finish().unwrap();
        }
        buf.into_inner()
    };
    for (sig, at) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let i = lying.windows(4).position(|w| w == sig).unwrap();
        lying[i + at..i + at + 4].copy_from_slice(&10u32.to_le_bytes());
    }
    let (st, e) = create("liar", lying);
    assert_eq!((st, e["code"].as_str()), (400, Some("InvalidCode")), "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("declares 10 bytes"),
        "{e}"
    );
    assert_eq!(
        s.call("GET", "/v1/functions/liar", Some(&alice), None).0,
        404
    );
}
