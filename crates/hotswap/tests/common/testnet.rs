//! Helpers for the instance-networking tests (`network.rs`,
//! `network_vpc.rs`): a "public" test host in its own network namespace
//! serving HTTP, a probe function that tries what its event says and
//! reports the outcomes, and ways to look at the host's interfaces and
//! nftables tables. Needs root, `ip`, `nft` and bubblewrap.
//!
//! Test hosts take a /30 of 203.0.113.0/24 (TEST-NET-3) that no interface
//! on this machine has yet; instance networks are /24s of 10.213-10.216
//! chosen the same way, so tests running in parallel (and other servers
//! on the machine) do not collide.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// Serialises choosing addresses and names among the tests of one binary.
static ALLOC: Mutex<()> = Mutex::new(());
/// Third octets handed out by [`instance_octet`] in this process.
static OCTETS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring how it ends.
fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Every IPv4 address on the host with its interface: `(ifname, addr/len)`.
pub fn host_addrs() -> Vec<(String, String)> {
    sh(&["ip", "-4", "-o", "addr", "show"])
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _idx = f.next()?;
            let name = f.next()?.to_owned();
            let _inet = f.next()?;
            Some((name, f.next()?.to_owned()))
        })
        .collect()
}

/// The host's own address on its uplink (not loopback, not an instance's
/// or a test host's interface).
pub fn host_public_addr() -> Ipv4Addr {
    host_addrs()
        .into_iter()
        .find(|(n, _)| n != "lo" && !n.starts_with("hs") && !n.starts_with("tn"))
        .map(|(_, a)| a.split('/').next().unwrap().parse().unwrap())
        .expect("the host has a non-loopback IPv4 address")
}

/// Names and indexes of the host's interfaces whose name starts with
/// `prefix` (`ip` prints `name@peer` for veths: the peer is cut off).
pub fn links_with_prefix(prefix: &str) -> Vec<(String, u32)> {
    sh(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| {
            let mut f = l.split(": ");
            let idx: u32 = f.next()?.trim().parse().ok()?;
            let name = f.next()?.split('@').next()?.to_owned();
            name.starts_with(prefix).then_some((name, idx))
        })
        .collect()
}

/// The `inet` tables of nftables with their handles.
pub fn nft_tables() -> Vec<(String, u64)> {
    let v: Value = serde_json::from_str(&sh(&["nft", "-j", "list", "tables"])).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| {
            let t = o.get("table")?;
            (t["family"] == "inet").then(|| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["handle"].as_u64().unwrap(),
                )
            })
        })
        .collect()
}

/// A third octet `n` such that no interface on this host has an address in
/// 10.213-10.216.n.0/24 and no other test of this process took it.
pub fn instance_octet() -> u8 {
    let _g = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
    let taken: Vec<String> = host_addrs().into_iter().map(|(_, a)| a).collect();
    let mut mine = OCTETS.lock().unwrap();
    let start = (std::process::id() % 200) as u8;
    for i in 0..200u8 {
        let n = 20 + (start.wrapping_add(i)) % 200;
        let used = mine.contains(&n)
            || taken
                .iter()
                .any(|a| (213..=216).any(|b| a.starts_with(&format!("10.{b}.{n}."))));
        if !used {
            mine.push(n);
            return n;
        }
    }
    panic!("no free 10.21x.n.0/24 for an instance network");
}

/// Arguments for a networked isolated server whose default instance
/// network is 10.215.`n`.0/24 and whose instances' resolver answers from
/// `hosts`.
pub fn net_args(n: u8, hosts: &Path) -> Vec<String> {
    vec![
        "--sandbox".into(),
        "isolated".into(),
        "--instance-network".into(),
        format!("10.215.{n}.0/24"),
        "--instance-hosts-file".into(),
        hosts.display().to_string(),
        "--network-pool".into(),
        "2".into(),
    ]
}

pub fn net_server(dir: &Path, n: u8, hosts: &Path) -> Server {
    Server::start_with(
        dir,
        ServerOptions {
            extra_args: net_args(n, hosts),
            ..Default::default()
        },
    )
}

/// The gateway of 10.215.`n`.0/24 (the host, as instances see it).
pub fn gateway(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 215, n, 1)
}

const HTTP_SERVER: &str = r#"
import socket, sys, threading

BODY = sys.argv[2].encode()

def handle(c):
    try:
        f = c.makefile("rb")
        line = f.readline().decode("latin-1")
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
        parts = line.split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        if path.startswith("/big?mb="):
            n = int(path.split("=", 1)[1]) << 20
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n)
            chunk = b"x" * 65536
            sent = 0
            while sent < n:
                c.sendall(chunk[: min(65536, n - sent)])
                sent += 65536
        elif path == "/":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
        else:
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    finally:
        c.close()

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// A "public" machine: a network namespace behind a veth from the host,
/// addressed from 203.0.113.0/24, serving HTTP on port 80 (`GET /` answers
/// [`TestHost::body`], `GET /big?mb=N` streams N MiB). Removed on drop.
pub struct TestHost {
    pub ns: String,
    pub host_if: String,
    /// The host's end (the test host's default gateway).
    pub host_side: Ipv4Addr,
    /// The test host's address.
    pub ip: Ipv4Addr,
    pub body: String,
    server: Option<Child>,
    _dir: tempfile::TempDir,
}

impl TestHost {
    pub fn start() -> TestHost {
        let guard = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
        let taken: HashSet<String> = host_addrs()
            .into_iter()
            .map(|(_, a)| a.split('/').next().unwrap().to_owned())
            .collect();
        let links: HashSet<String> = links_with_prefix("tn").into_iter().map(|l| l.0).collect();
        let netns = sh(&["ip", "netns", "list"]);
        let pid = std::process::id();
        let start = pid % 64;
        let mut chosen = None;
        for i in 0..64 {
            let block = (start + i) % 64;
            let host_side = Ipv4Addr::new(203, 0, 113, (block * 4 + 1) as u8);
            let ns = format!("tn{:04}{block:02}", pid % 10000);
            let host_if = format!("{ns}h");
            if !taken.contains(&host_side.to_string())
                && !links.contains(&host_if)
                && !netns
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
            {
                chosen = Some((block, ns, host_if));
                break;
            }
        }
        let (block, ns, host_if) = chosen.expect("a free /30 in 203.0.113.0/24");
        let host_side = Ipv4Addr::new(203, 0, 113, (block * 4 + 1) as u8);
        let ip = Ipv4Addr::new(203, 0, 113, (block * 4 + 2) as u8);
        let dir = tempfile::tempdir().unwrap();
        let body = format!("hello from the test host {ip}");
        let mut th = TestHost {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_side,
            ip,
            body: body.clone(),
            server: None,
            _dir: dir,
        };
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_side}/30"),
            "dev",
            &host_if,
        ]);
        sh(&["ip", "link", "set", &host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["ip", "netns", "exec", &ns];
            a.extend_from_slice(args);
            sh(&a);
        };
        inside(&["ip", "link", "set", "lo", "up"]);
        inside(&["ip", "addr", "add", &format!("{ip}/30"), "dev", "eth0"]);
        inside(&["ip", "link", "set", "eth0", "up"]);
        inside(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &host_side.to_string(),
        ]);
        drop(guard);

        let script = th._dir.path().join("http_server.py");
        std::fs::write(&script, HTTP_SERVER).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/bin/python3"])
            .arg(&script)
            .args(["80", &body])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test host's HTTP server");
        let stdout = child.stdout.take().unwrap();
        th.server = Some(child);
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "the test host's HTTP server");
        // It answers from the host, through the veth.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&(ip, 80).into(), Duration::from_millis(500)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "test host {ip}:80 never accepted"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        th
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        sh_quiet(&["ip", "netns", "del", &self.ns]);
        sh_quiet(&["ip", "link", "del", &self.host_if]);
    }
}

/// A hosts file naming `host` `name`.
pub fn hosts_file(dir: &Path, name: &str, host: Ipv4Addr) -> PathBuf {
    let p = dir.join("instance-hosts");
    std::fs::write(&p, format!("127.0.0.1\tlocalhost\n{host}\t{name}\n")).unwrap();
    p
}

/// A TCP listener on the host (all addresses) that accepts and closes;
/// stops when dropped.
pub struct HostListener {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HostListener {
    pub fn start() -> HostListener {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostListener { port, stop }
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An upstream resolver on 127.0.0.1 (UDP) answering every A query with
/// one address and remembering the names asked; stops when dropped.
pub struct FakeDns {
    pub port: u16,
    names: std::sync::Arc<Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeDns {
    pub fn start(answer: Ipv4Addr) -> FakeDns {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let names = std::sync::Arc::new(Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, st) = (names.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let q = &buf[..len];
                if q.len() < 17 {
                    continue;
                }
                // The question: labels up to the root, then type and class.
                let mut i = 12;
                let mut labels = Vec::new();
                while i < q.len() && q[i] != 0 {
                    let l = q[i] as usize;
                    labels.push(
                        String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(q.len())]).into_owned(),
                    );
                    i += 1 + l;
                }
                let end = i + 5;
                if end > q.len() {
                    continue;
                }
                let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
                n.lock().unwrap().push(labels.join(".").to_lowercase());
                let mut r = Vec::with_capacity(end + 16);
                r.extend_from_slice(&q[..2]);
                r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(qtype == 1), 0, 0, 0, 0]);
                r.extend_from_slice(&q[12..end]);
                if qtype == 1 {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    r.extend_from_slice(&answer.octets());
                }
                let _ = sock.send_to(&r, from);
            }
        });
        FakeDns { port, names, stop }
    }

    /// Whether `name` was asked (case-insensitive, no trailing dot).
    pub fn asked(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_lowercase();
        self.names.lock().unwrap().contains(&name)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The probe function: every key of the event is a kind of attempt, and
/// the result maps each attempt's label to "ok: …" or
/// "denied: <ExceptionName> <errno>", with `<label>_secs` how long it took.
///
/// - `fetch`: `{label: url}` (GET; "ok: <bytes> <first 60 bytes>")
/// - `connect`: `{label: [host, port]}` (TCP, 2 s timeout)
/// - `resolve`: `{label: name}` (socket.gethostbyname)
/// - `pg`: `{label: [host, port, sql]}` (PostgreSQL simple query, first
///   value of the first row)
/// - `listen`: port: a listener thread in this instance (once per
///   instance) that greets and closes each connection
/// - `self_to`: host: this instance's own address, as `self`
pub const PROBE: &str = r#"
import json, socket, struct, threading, time, urllib.error, urllib.request

_listening = {}

def _denied(e):
    if isinstance(e, urllib.error.URLError) and isinstance(getattr(e, "reason", None), Exception):
        return _denied(e.reason)
    return "denied: %s %s" % (type(e).__name__, getattr(e, "errno", None))

def _fetch(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as r:
        n = 0
        head = b""
        while True:
            b = r.read(1 << 16)
            if not b:
                break
            if len(head) < 60:
                head += b[: 60 - len(head)]
            n += len(b)
    return "%d %s" % (n, head.decode("latin-1"))

def _connect(host, port):
    s = socket.create_connection((host, port), timeout=2)
    try:
        s.settimeout(0.5)
        try:
            got = s.recv(64).decode("latin-1").strip()
        except OSError:
            got = ""
        return "connected " + got
    finally:
        s.close()

def _pg(host, port, sql):
    s = socket.create_connection((host, port), timeout=3)
    def recvn(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed by the server")
            b += c
        return b
    def msg():
        h = recvn(5)
        return h[:1], recvn(struct.unpack("!I", h[1:])[0] - 4)
    try:
        body = struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0\0"
        s.sendall(struct.pack("!I", len(body) + 4) + body)
        t, b = msg()
        if t != b"R" or struct.unpack("!I", b[:4])[0] != 0:
            raise RuntimeError("not AuthenticationOk: %r %r" % (t, b[:60]))
        while True:
            t, b = msg()
            if t == b"E":
                raise RuntimeError("error: %r" % b[:120])
            if t == b"Z":
                break
        q = sql.encode() + b"\0"
        s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
        value = None
        while True:
            t, b = msg()
            if t == b"D" and value is None:
                n = struct.unpack("!i", b[2:6])[0]
                value = b[6:6 + n].decode()
            elif t == b"E":
                raise RuntimeError("error: %r" % b[:120])
            elif t == b"Z":
                break
        s.sendall(b"X\0\0\0\4")
        return value
    finally:
        s.close()

def _serve(ls, port):
    while True:
        c, _ = ls.accept()
        try:
            c.sendall(b"hello from %d\n" % port)
        except OSError:
            pass
        c.close()

def _listen(port):
    if port not in _listening:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(16)
        threading.Thread(target=_serve, args=(ls, port), daemon=True).start()
        _listening[port] = ls
    return "listening %d" % port

def _self(host):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.connect((host, 9))
    a = u.getsockname()[0]
    u.close()
    return a

def probe(event, context):
    out = {}
    def attempt(label, fn, *args):
        t = time.monotonic()
        try:
            out[label] = "ok: " + str(fn(*args))
        except Exception as e:
            out[label] = _denied(e)
        out[label + "_secs"] = round(time.monotonic() - t, 3)
    if "listen" in event:
        attempt("listen", _listen, event["listen"])
    if "self_to" in event:
        out["self"] = _self(event["self_to"])
    for k, url in event.get("fetch", {}).items():
        attempt(k, _fetch, url)
    for k, (h, p) in event.get("connect", {}).items():
        attempt(k, _connect, h, p)
    for k, name in event.get("resolve", {}).items():
        attempt(k, socket.gethostbyname, name)
    for k, (h, p, sql) in event.get("pg", {}).items():
        attempt(k, _pg, h, p, sql)
    return out
"#;

/// Creates the probe function `name` as `token` (`extra` merged in).
pub fn create_probe(s: &Server, token: &str, name: &str, extra: Value) -> Value {
    let mut extra = extra;
    if extra.get("timeout").is_none() {
        extra["timeout"] = json!(10);
    }
    create_function_as(
        s,
        token,
        name,
        "Python311",
        "app.probe",
        &[("app.py", PROBE)],
        extra,
    )
}

/// Invokes the probe `name` as `token`; the decoded result map.
pub fn probe(s: &Server, token: &str, name: &str, event: Value) -> Value {
    invoke_ok(s, token, name, event)
}

/// Asserts `out[label]` starts with "ok: ".
pub fn assert_ok(out: &Value, label: &str) -> String {
    let v = out[label]
        .as_str()
        .unwrap_or_else(|| panic!("{label}: {out}"));
    assert!(v.starts_with("ok: "), "{label} should succeed: {out}");
    v["ok: ".len()..].to_owned()
}

/// Asserts `out[label]` was refused by the network policy, not timed out:
/// a TCP connection gets a reset (ECONNREFUSED, 111; the listener exists,
/// so only the policy answers that), anything else ICMP admin-prohibited
/// (EHOSTUNREACH, 113). A timeout has no errno.
pub fn assert_refused(out: &Value, label: &str) {
    let v = out[label]
        .as_str()
        .unwrap_or_else(|| panic!("{label}: {out}"));
    assert!(
        v.starts_with("denied: ") && (v.ends_with(" 111") || v.ends_with(" 113")),
        "{label} should be refused (ECONNREFUSED or EHOSTUNREACH): {out}"
    );
}

/// Asserts `out[label]` failed (any error).
pub fn assert_failed(out: &Value, label: &str) {
    let v = out[label]
        .as_str()
        .unwrap_or_else(|| panic!("{label}: {out}"));
    assert!(v.starts_with("denied: "), "{label} should fail: {out}");
}

/// The `sandbox` line of this server's runner.
pub fn sandbox_summary(s: &Server) -> String {
    let (st, local) = s.admin("GET", "/v1/runners/local", None);
    assert_eq!(st, 200, "{local}");
    local["sandbox"]
        .as_str()
        .unwrap_or_else(|| panic!("{local}"))
        .to_owned()
}

/// The five-hex-digit network id of this server, from the table its
/// sandbox summary names (`… nftables table inet hotswap_<id> …`).
pub fn network_id(s: &Server) -> String {
    let summary = sandbox_summary(s);
    let i = summary
        .find("hotswap_")
        .unwrap_or_else(|| panic!("no table in {summary}"));
    let id: String = summary[i + "hotswap_".len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(id.len(), 5, "{summary}");
    id
}

/// The pid of the server process serving `data_dir`.
pub fn server_pid(data_dir: &Path) -> u32 {
    let want = data_dir.as_os_str().as_encoded_bytes().to_vec();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.first() == Some(&bin().as_bytes())
            && args.get(1) == Some(&&b"server"[..])
            && args.contains(&want.as_slice())
        {
            return pid;
        }
    }
    panic!("no server process for {}", data_dir.display());
}

/// Stops `server` with SIGTERM (it removes its table and interfaces) and
/// waits for it to exit; returns whether it did within `secs`.
pub fn stop_gracefully(server: Server, secs: u64) -> bool {
    let pid = server_pid(&server.data_dir);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let done = wait_until(secs, || exited(pid));
    drop(server);
    done
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Polls `f` every 100 ms until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
