//! What the isolated sandbox guarantees, checked from inside real function
//! instances (needs root and bubblewrap; `.ci/run` installs it). The server
//! runs with `--sandbox isolated`, so a machine that cannot isolate fails
//! these tests instead of skipping them.

mod common;

use common::*;
use serde_json::{json, Value};

const PROBE: &str = r#"
import os, socket, json, time

def burn(seconds):
    """Wall time taken to use `seconds` of CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    while time.process_time() - cpu < seconds:
        pass
    return time.perf_counter() - wall

INIT_WALL = burn(float(os.environ["INIT_WORK"])) if os.environ.get("INIT_WORK") else None

def cpu(event, context):
    return {"init": INIT_WALL, "handler": burn(float(os.environ["INIT_WORK"]))}

def probe(event, context):
    out = {"uid": os.getuid(), "gid": os.getgid()}
    def attempt(name, fn):
        try:
            out[name] = "allowed: " + str(fn())[:80]
        except Exception as e:
            out[name] = "denied: " + type(e).__name__
    attempt("shadow", lambda: open("/etc/shadow").read())
    attempt("other_code", lambda: open(event["other"]).read())
    attempt("write_task", lambda: open("/var/task/new.txt", "w").write("x"))
    def tmp():
        with open("/tmp/scratch.bin", "wb") as f:
            f.write(b"x" * (5 << 20))
        return os.path.getsize("/tmp/scratch.bin")
    attempt("write_tmp", tmp)
    attempt("host_server", lambda: socket.create_connection(("127.0.0.1", event["port"]), timeout=1))
    attempt("internet", lambda: socket.create_connection(("10.0.0.1", 80), timeout=1))
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["root"] = sorted(os.listdir("/"))
    out["hostname"] = socket.gethostname()
    return out

def hog(event, context):
    chunks = []
    for _ in range(event["mb"]):
        chunks.append(bytearray(1 << 20))
    return len(chunks)

def forkbomb(event, context):
    import time
    n = 0
    try:
        while n < 5000:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError as e:
        return {"forked": n, "stopped_by": type(e).__name__}
    return {"forked": n, "stopped_by": None}
"#;

fn make(s: &Server, name: &str, handler: &str, extra: Value) -> Value {
    let mut body = json!({ "name": name, "runtime": "Python311", "handler": handler,
        "code": { "zipFile": b64(&zip_of(&[("app.py", PROBE)])) } });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, f) = s.admin("POST", "/v1/functions", Some(body));
    assert_eq!(st, 201, "{f}");
    f
}

fn invoke(s: &Server, name: &str, event: Value) -> Value {
    let (st, r) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/invoke?result=full"),
        Some(event),
    );
    assert_eq!(st, 200, "{r}");
    r
}

#[test]
fn instances_are_isolated_from_the_host_and_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let (_, local) = s.admin("GET", "/v1/runners/local", None);
    assert!(
        local["sandbox"].as_str().unwrap().starts_with("isolated"),
        "{local}"
    );

    make(&s, "victim", "app.probe", json!({}));
    let (_, latest) = s.admin("GET", "/v1/functions/victim/versions/$LATEST", None);
    let victim_code = dir
        .path()
        .join("runner/code")
        .join(latest["codeSha256"].as_str().unwrap())
        .join("app.py");
    // the victim has run once, so its code is unpacked on the host
    invoke(&s, "victim", json!({ "other": "/nonexistent", "port": 1 }));
    assert!(victim_code.exists(), "{}", victim_code.display());

    make(&s, "attacker", "app.probe", json!({}));
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let r = invoke(
        &s,
        "attacker",
        json!({ "other": victim_code.display().to_string(), "port": port }),
    );
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (out["uid"].as_u64(), out["gid"].as_u64()),
        (Some(65534), Some(65534)),
        "unprivileged user: {out}"
    );
    for denied in [
        "shadow",
        "other_code",
        "write_task",
        "host_server",
        "internet",
    ] {
        assert!(
            out[denied].as_str().unwrap().starts_with("denied"),
            "{denied}: {out}"
        );
    }
    assert_eq!(out["write_tmp"], "allowed: 5242880", "{out}");
    let pids = out["pids"].as_array().unwrap();
    assert!(
        pids.len() <= 4 && pids.contains(&json!(1)),
        "own pid namespace: {out}"
    );
    assert_eq!(out["hostname"], "sandbox");
    let root: Vec<&str> = out["root"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !root.contains(&"root") && !root.contains(&"home") && !root.contains(&"work"),
        "{root:?}"
    );
}

#[test]
fn memory_limit_kills_with_out_of_memory_and_forks_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    make(&s, "hog", "app.hog", json!({ "memorySize": 128 }));
    let small = invoke(&s, "hog", json!({ "mb": 10 }));
    assert_eq!(small["success"], true, "{small}");
    let used = small["memoryUsedMB"].as_u64().unwrap();
    assert!(
        (10..=128).contains(&used),
        "peak memory from the cgroup: {used} MB"
    );

    let big = invoke(&s, "hog", json!({ "mb": 400 }));
    assert_eq!(big["success"], false, "{big}");
    assert_eq!(big["errorType"], "Runtime.OutOfMemory", "{big}");
    // the next call gets a fresh instance and works
    let again = invoke(&s, "hog", json!({ "mb": 1 }));
    assert_eq!(
        (again["success"].as_bool(), again["wasColdStart"].as_bool()),
        (Some(true), Some(true)),
        "{again}"
    );

    make(&s, "bomb", "app.forkbomb", json!({ "timeout": 20 }));
    let r = invoke(&s, "bomb", json!({}));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert!(
        out["forked"].as_u64().unwrap() < 300,
        "the pids limit stops the fork bomb: {out}"
    );
    assert_eq!(out["stopped_by"], "BlockingIOError", "{out}");
    let (st, _) = s.admin("GET", "/healthz", None);
    assert_eq!(st, 200, "the host is unaffected");
}

/// The CPU quota (`MemorySize` / 1792 vCPU) is held back during init, as
/// on Lambda, and applies from the first event: the same CPU work takes
/// far longer in the handler of a 128 MB function than in its init.
#[test]
fn the_cpu_quota_applies_after_init_not_during_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    make(
        &s,
        "cpu",
        "app.cpu",
        json!({ "memorySize": 128, "timeout": 30, "environment": { "INIT_WORK": "0.2" } }),
    );
    let r = invoke(&s, "cpu", json!({}));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    let (init, handler) = (
        out["init"].as_f64().unwrap(),
        out["handler"].as_f64().unwrap(),
    );
    // 0.2 s of CPU at 128/1792 vCPU is about 2.8 s of wall time; in init
    // it is about 0.2 s on a free core.
    assert!(handler > 1.4, "throttled in the handler: {out}");
    assert!(handler > 3.0 * init, "not throttled in init: {out}");
}

/// A function's own environment (here `LD_PRELOAD`) reaches only its
/// unprivileged runtime process, never bwrap or the sandbox's root init.
#[test]
fn function_environment_never_reaches_privileged_processes() {
    let build = tempfile::tempdir().unwrap();
    let src = build.path().join("probe.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void probe(void) { fprintf(stderr, \"PRELOADED euid=%d\\n\", (int)geteuid()); }\n",
    )
    .unwrap();
    let so = build.path().join("probe.so");
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = std::fs::read(&so).unwrap();

    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file("app.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"def handler(e, c):\n    return 'ok'\n")
            .unwrap();
        w.start_file(
            "probe.so",
            zip::write::SimpleFileOptions::default().unix_permissions(0o755),
        )
        .unwrap();
        w.write_all(&lib).unwrap();
        w.finish().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let (st, f) = s.admin("POST", "/v1/functions", Some(json!({ "name": "preload", "runtime": "Python311", "handler": "app.handler",
        "environment": { "LD_PRELOAD": "/var/task/probe.so" }, "code": { "zipFile": b64(&buf.into_inner()) } })));
    assert_eq!(st, 201, "{f}");
    let r = invoke(&s, "preload", json!({}));
    assert_eq!(r["success"], true, "{r}");
    let (_, logs) = s.admin("GET", "/v1/functions/preload/logs", None);
    let loads: Vec<&str> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("PRELOADED"))
        .collect();
    assert!(
        !loads.is_empty(),
        "the function's own process honours its LD_PRELOAD: {logs}"
    );
    assert!(
        loads.iter().all(|l| *l == "PRELOADED euid=65534"),
        "a privileged process loaded the function's library: {loads:?}"
    );
}
