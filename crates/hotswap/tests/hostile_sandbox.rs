//! Attacks a hostile tenant tried against the isolated sandbox (issue 9,
//! findings 5, 6 and 12), each run for real by a Python function inside a
//! real instance through `ctypes` and the raw system calls, with the server
//! started as `--sandbox isolated` (root and bubblewrap needed, as for
//! `isolation.rs`). Each test asserts on what the function saw, then that
//! the server is still healthy and a benign function still runs.

mod common;

use common::*;
use serde_json::{json, Value};

/// The probes. Every attack runs in a forked child (so that an attack that
/// works on a weaker sandbox cannot wreck the instance that reports it) and
/// reports `{"ret": r, "errno": e}` per system call.
const HOSTILE: &str = r#"
import ctypes, errno, json, os, platform, subprocess

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR = {
    "x86_64": dict(clone=56, ptrace=101, pivot_root=155, mount=165, umount2=166,
                   reboot=169, init_module=175, kexec_load=246, add_key=248,
                   request_key=249, keyctl=250, unshare=272, perf_event_open=298,
                   setns=308, finit_module=313, bpf=321, userfaultfd=323,
                   io_uring_setup=425, open_tree=428, move_mount=429, fsopen=430,
                   clone3=435),
    "aarch64": dict(clone=220, ptrace=117, pivot_root=41, mount=40, umount2=39,
                    reboot=142, init_module=105, kexec_load=104, add_key=217,
                    request_key=218, keyctl=219, unshare=97, perf_event_open=241,
                    setns=268, finit_module=273, bpf=280, userfaultfd=282,
                    io_uring_setup=425, open_tree=428, move_mount=429, fsopen=430,
                    clone3=435),
}[platform.machine()]

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
SIGCHLD = 17
KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING = -4, -3
KEYCTL_GET_KEYRING_ID, KEYCTL_SETPERM, KEYCTL_SEARCH, KEYCTL_READ = 0, 5, 10, 11

def arg(a):
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    return ctypes.c_long(a)

def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(NR[name]), *[arg(a) for a in args])
    return {"ret": r, "errno": errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if r < 0 else None}

def in_child(fn):
    """Runs fn() in a forked child; returns what it returned (JSON)."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = fn()
        except BaseException as e:
            out = {"exception": repr(e)}
        os.write(wr, json.dumps(out).encode())
        os._exit(0)
    os.close(wr)
    data = b""
    while True:
        chunk = os.read(rd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(rd)
    os.waitpid(pid, 0)
    return json.loads(data)

def namespaces(event, context):
    def become_root():
        # the review's attack: a new user namespace makes us uid 0 with every
        # capability in it, then mount and a new network namespace
        out = {"unshare_user": call("unshare", CLONE_NEWUSER | CLONE_NEWNS)}
        out["uid_after"] = os.getuid()
        out["mount_tmpfs"] = call("mount", b"none", b"/tmp", b"tmpfs", 0, 0)
        out["unshare_net"] = call("unshare", CLONE_NEWNET)
        return out
    def clone_user():
        r = call("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
        if r["ret"] == 0:
            libc._exit(0)
        if r["ret"] > 0:
            os.waitpid(r["ret"], 0)
        return r
    out = {"become_root": in_child(become_root), "clone_newuser": in_child(clone_user)}
    for name, flag in [("user", CLONE_NEWUSER), ("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS),
                       ("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
                       ("cgroup", CLONE_NEWCGROUP)]:
        out["unshare_" + name] = in_child(lambda flag=flag: call("unshare", flag))
    # clone3 must look absent, so that libc falls back to clone (whose flags are checked)
    out["clone3"] = in_child(lambda: call("clone3", 0, 0))
    out["setns"] = in_child(lambda: call("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0))
    out["mount"] = in_child(lambda: call("mount", b"none", b"/tmp", b"tmpfs", 0, 0))
    out["umount2"] = in_child(lambda: call("umount2", b"/var/task", 2))
    out["pivot_root"] = in_child(lambda: call("pivot_root", b"/tmp", b"/tmp"))
    out["open_tree"] = in_child(lambda: call("open_tree", -100, b"/var/task", 1))
    out["fsopen"] = in_child(lambda: call("fsopen", b"tmpfs", 0))
    # a plain fork and a thread still work (clone without namespace flags)
    out["fork"] = in_child(fork_ok)
    return out

def fork_ok():
    import threading
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    return {"child_exit": os.waitstatus_to_exitcode(status), "thread": True}

def kernel(event, context):
    def traceme():
        return call("ptrace", 0, 0, 0, 0)  # PTRACE_TRACEME
    out = {
        "ptrace_traceme": in_child(traceme),
        "ptrace_attach_init": in_child(lambda: call("ptrace", 16, 1, 0, 0)),
        "bpf": in_child(lambda: call("bpf", 0, 0, 0)),
        "perf_event_open": in_child(lambda: call("perf_event_open", 0, 0, -1, -1, 0)),
        "userfaultfd": in_child(lambda: call("userfaultfd", 1)),  # UFFD_USER_MODE_ONLY
        "kexec_load": in_child(lambda: call("kexec_load", 0, 0, 0, 0)),
        "init_module": in_child(lambda: call("init_module", 0, 0, b"")),
        "finit_module": in_child(lambda: call("finit_module", 0, b"", 0)),
        "reboot": in_child(lambda: call("reboot", 0, 0, 0, 0)),
        "io_uring_setup": in_child(lambda: call("io_uring_setup", 1, 0)),
        "keyctl": in_child(lambda: call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)),
    }
    return out

def status(event, context):
    def fields(text):
        keep = ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
        return {k: v.strip() for k, v in (l.split(":", 1) for l in text.splitlines() if ":" in l) if k in keep}
    own = fields(open("/proc/self/status").read())
    # a program the function starts inherits all of it
    child = fields(subprocess.run(["/usr/bin/cat", "/proc/self/status"], capture_output=True, text=True).stdout)
    import resource
    nofile = list(resource.getrlimit(resource.RLIMIT_NOFILE))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile[1] * 4, nofile[1] * 4))
        raised = "allowed"
    except (ValueError, OSError) as e:
        raised = "denied: " + type(e).__name__
    return {"self": own, "child": child, "nofile": nofile, "raise_nofile": raised}

def add_key(event, context):
    secret = event["secret"].encode()
    r = call("add_key", b"user", event["description"].encode(), secret, len(secret), KEY_SPEC_USER_KEYRING)
    out = {"add_key": r}
    if r["ret"] > 0:
        # readable by anyone who finds it, as a careless tenant might set it
        out["setperm"] = call("keyctl", KEYCTL_SETPERM, r["ret"], 0x3f3f3f3f)
    out["keyctl_user_keyring"] = call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)
    return out

def steal_key(event, context):
    desc = event["description"].encode()
    found = call("keyctl", KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, b"user", desc, 0)
    req = call("request_key", b"user", desc, 0, 0)
    out = {"search": found, "request_key": req, "stolen": None}
    serial = found["ret"] if found["ret"] > 0 else req["ret"]
    if serial > 0:
        buf = ctypes.create_string_buffer(256)
        n = libc.syscall(ctypes.c_long(NR["keyctl"]), ctypes.c_long(KEYCTL_READ), ctypes.c_long(serial), buf, ctypes.c_long(256))
        if n > 0:
            out["stolen"] = buf.raw[:n].decode(errors="replace")
    return out

def proc_scan(event, context):
    """Every /proc/*/cmdline and /proc/*/environ (processes and threads) the
    function can read, and which of them mention a host path."""
    needles = event["needles"]
    readable, leaks = 0, []
    paths = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        paths += ["/proc/%s/cmdline" % pid, "/proc/%s/environ" % pid]
        try:
            for tid in os.listdir("/proc/%s/task" % pid):
                paths += ["/proc/%s/task/%s/cmdline" % (pid, tid), "/proc/%s/task/%s/environ" % (pid, tid)]
        except OSError:
            pass
    for p in paths:
        try:
            data = open(p, "rb").read().decode(errors="replace")
        except OSError:
            continue
        readable += 1
        for n in needles:
            if n in data:
                leaks.append({"file": p, "needle": n, "text": data.replace("\0", " ")[:300]})
    return {"readable": readable, "leaks": leaks, "init_cmdline": open("/proc/1/cmdline", "rb").read().decode(errors="replace").replace("\0", " ")}

def benign(event, context):
    return {"ok": True, "echo": event.get("x")}
"#;

fn make_as(s: &Server, token: &str, name: &str, handler: &str) {
    let body = json!({ "name": name, "runtime": "Python311", "handler": handler, "timeout": 30,
        "code": { "zipFile": b64(&zip_of(&[("app.py", HOSTILE)])) } });
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "{f}");
}

/// Invokes and returns what the handler returned (it must succeed).
fn run_as(s: &Server, token: &str, name: &str, event: Value) -> Value {
    invoke_ok(s, token, name, event)
}

fn run(s: &Server, name: &str, handler: &str, event: Value) -> Value {
    make_as(s, ADMIN_TOKEN, name, handler);
    run_as(s, ADMIN_TOKEN, name, event)
}

fn errno_of(out: &Value, key: &str) -> String {
    assert_eq!(out[key]["ret"], -1, "{key} was not refused: {out}");
    out[key]["errno"].as_str().unwrap_or("?").to_owned()
}

/// After an attack the server answers and a new, benign instance still works.
fn assert_still_healthy(s: &Server) {
    let (st, _) = s.admin("GET", "/healthz", None);
    assert_eq!(st, 200, "the server is healthy");
    let out = run(s, "benign-after", "app.benign", json!({ "x": 42 }));
    assert_eq!(out, json!({ "ok": true, "echo": 42 }));
}

/// Finding 5: no user namespace (nor any other namespace, nor a mount) can
/// be made from inside an instance.
#[test]
fn a_function_cannot_create_namespaces_or_mount() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let out = run(&s, "ns", "app.namespaces", json!({}));

    let root = &out["become_root"];
    assert_eq!(errno_of(root, "unshare_user"), "EPERM", "{out}");
    assert_eq!(root["uid_after"], 65534, "{out}");
    assert_eq!(errno_of(root, "mount_tmpfs"), "EPERM", "{out}");
    assert_eq!(errno_of(root, "unshare_net"), "EPERM", "{out}");
    assert_eq!(
        out["clone_newuser"]["ret"], -1,
        "clone(CLONE_NEWUSER) made a child: {out}"
    );
    assert_eq!(out["clone_newuser"]["errno"], "EPERM", "{out}");
    for ns in ["user", "net", "mnt", "pid", "ipc", "uts", "cgroup"] {
        let r = &out[format!("unshare_{ns}")];
        assert_eq!(
            (r["ret"].as_i64(), r["errno"].as_str()),
            (Some(-1), Some("EPERM")),
            "unshare({ns}): {out}"
        );
    }
    let clone3 = &out["clone3"];
    assert_eq!(
        (clone3["ret"].as_i64(), clone3["errno"].as_str()),
        (Some(-1), Some("ENOSYS")),
        "clone3 looks absent so libc falls back to clone: {out}"
    );
    for call in [
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "open_tree",
        "fsopen",
    ] {
        let r = &out[call];
        assert_eq!(
            (r["ret"].as_i64(), r["errno"].as_str()),
            (Some(-1), Some("EPERM")),
            "{call}: {out}"
        );
    }
    assert_eq!(
        out["fork"],
        json!({ "child_exit": 7, "thread": true }),
        "plain fork and threads still work: {out}"
    );
    assert_still_healthy(&s);
}

/// Finding 5: the kernel interfaces Docker's default profile refuses are
/// refused with EPERM.
#[test]
fn dangerous_kernel_interfaces_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let out = run(&s, "kernel", "app.kernel", json!({}));
    for call in [
        "ptrace_traceme",
        "ptrace_attach_init",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "init_module",
        "finit_module",
        "reboot",
        "io_uring_setup",
        "keyctl",
    ] {
        let r = &out[call];
        assert_eq!(
            (r["ret"].as_i64(), r["errno"].as_str()),
            (Some(-1), Some("EPERM")),
            "{call}: {out}"
        );
    }
    assert_still_healthy(&s);
}

/// Finding 5: the function runs under the seccomp filter with no_new_privs
/// and every capability set empty, and so does any program it starts.
#[test]
fn instances_run_filtered_with_no_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let out = run(&s, "status", "app.status", json!({}));
    for who in ["self", "child"] {
        let st = &out[who];
        assert_eq!(st["Seccomp"], "2", "{who}: {out}");
        assert_eq!(st["NoNewPrivs"], "1", "{who}: {out}");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(st[set], "0000000000000000", "{who} {set}: {out}");
        }
        assert!(
            st["Uid"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .all(|u| u == "65534"),
            "{who}: {out}"
        );
    }
    // Lambda's descriptor limit, not the server's raised one, and no way up
    assert_eq!(out["nofile"], json!([1024, 1024]), "{out}");
    assert!(
        out["raise_nofile"].as_str().unwrap().starts_with("denied"),
        "{out}"
    );
    assert_still_healthy(&s);
}

/// Finding 6: every instance runs as the same uid, so the kernel's per-user
/// keyring would be shared between tenants: Alice cannot store a key and
/// Bob cannot find one.
#[test]
fn kernel_keyrings_are_not_shared_between_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let alice = s.token_for("alice");
    let bob = s.token_for("bob");
    make_as(&s, &alice, "alice-keeper", "app.add_key");
    make_as(&s, &bob, "bob-thief", "app.steal_key");
    let description = format!("hotswap-test-{}", std::process::id());
    let secret = "alice-private-value";

    let stored = run_as(
        &s,
        &alice,
        "alice-keeper",
        json!({ "description": description, "secret": secret }),
    );
    assert_eq!(errno_of(&stored, "add_key"), "EPERM", "{stored}");
    assert_eq!(
        errno_of(&stored, "keyctl_user_keyring"),
        "EPERM",
        "{stored}"
    );

    let stolen = run_as(&s, &bob, "bob-thief", json!({ "description": description }));
    assert_eq!(
        stolen["stolen"],
        Value::Null,
        "Bob read Alice's key: {stolen}"
    );
    assert_eq!(errno_of(&stolen, "search"), "EPERM", "{stolen}");
    assert_eq!(errno_of(&stolen, "request_key"), "EPERM", "{stolen}");
    assert_still_healthy(&s);
}

/// Finding 12 (part): nothing host-specific is visible in any process's
/// command line or environment inside an instance.
#[test]
fn no_host_path_shows_in_proc() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated_server(dir.path());
    let data_dir = std::fs::canonicalize(dir.path()).unwrap();
    let mut needles = vec![
        dir.path().display().to_string(),
        data_dir.display().to_string(),
        data_dir.join("runner").display().to_string(),
        // the instance's cgroup directories (no /sys inside the sandbox)
        "/sys/fs/cgroup".to_owned(),
    ];
    if let Ok(exe) = std::fs::canonicalize(bin()) {
        needles.push(exe.display().to_string());
    }
    needles.sort();
    needles.dedup();
    let out = run(&s, "scan", "app.proc_scan", json!({ "needles": needles }));
    assert!(
        out["readable"].as_u64().unwrap() >= 2,
        "the function reads its own /proc files: {out}"
    );
    assert_eq!(out["leaks"], json!([]), "host paths visible: {out}");
    assert_still_healthy(&s);
}
