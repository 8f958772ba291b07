//! The isolated backend: bubblewrap namespaces (mount, pid, ipc, uts, net)
//! plus cgroup limits. Inside, the instance sees only `/usr` (read-only),
//! its code at `/var/task` and the bootstraps at `/var/runtime` (both
//! read-only), its layers at `/opt`, a size-limited `/tmp`, a minimal
//! `/etc`, and its own loopback on which `__sandbox-init` serves the Runtime
//! API. It runs as `nobody` (65534) with every capability set empty,
//! `no_new_privs` and the seccomp filter of [`crate::seccomp`] (installed by
//! the init). bwrap's own options name host paths, so they go to bwrap
//! through an inherited pipe (`--args`), never on its command line, which
//! every process inside can read as `/proc/1/cmdline`.
//!
//! No user namespace (`--unshare-user`, and so no `--disable-userns`): run
//! as root, bwrap maps the single sandbox uid to its own uid 0, so either
//! the init could not drop to 65534 (unmapped: `setresuid` fails with
//! `EINVAL`) or, with `--uid 65534`, the function would be host uid 0
//! without capabilities. The seccomp filter refuses every way to make a
//! namespace instead (`unshare`, `setns`, `clone` with `CLONE_NEW*`,
//! `clone3`).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::cgroup::{Cgroups, InstanceCgroup, Limits};
use crate::init::InitArgs;
use crate::network::{Attachment, Network};
use crate::{Instance, InstanceGuard, LaunchSpec, RuntimeEndpoint, Sandbox, SandboxError};

/// The address the Runtime API has inside every sandbox.
pub const SANDBOX_RUNTIME_API: &str = "127.0.0.1:9001";
/// Names the Runtime API's Unix socket inside the sandbox: a bootstrap that
/// connects to it directly saves the relay's hop on every request.
pub const RUNTIME_API_SOCKET_VAR: &str = "_HOTSWAP_RUNTIME_API_SOCKET";
const NOBODY: u32 = 65534;

/// bubblewrap + cgroups.
#[derive(Debug)]
pub struct BwrapSandbox {
    bwrap: PathBuf,
    /// This binary, run inside as `__sandbox-init`.
    init_exe: PathBuf,
    cgroups: Option<Cgroups>,
    /// Holds `passwd` and `group` for the sandbox's `/etc`.
    etc_dir: PathBuf,
    /// Instance networking; `None`: instances have only their loopback.
    network: Option<Arc<Network>>,
    /// Why there is no network, for the summary.
    no_network: String,
}

impl BwrapSandbox {
    /// Checks that bubblewrap is installed and can create the namespaces
    /// here, and prepares cgroups. `Err` says why not.
    pub fn detect(init_exe: PathBuf, scratch: &Path) -> Result<BwrapSandbox, String> {
        let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("bubblewrap (bwrap) is not installed")?;
        let probe = std::process::Command::new(&bwrap)
            .args([
                "--unshare-pid",
                "--unshare-net",
                "--unshare-ipc",
                "--unshare-uts",
                "--die-with-parent",
            ])
            .args(base_mounts())
            .args(["--", "/usr/bin/true"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run bwrap: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "bwrap cannot create namespaces here: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ));
        }
        let cgroups = Cgroups::detect();
        let etc_dir = scratch.join("etc");
        std::fs::create_dir_all(&etc_dir).map_err(|e| e.to_string())?;
        std::fs::write(etc_dir.join("passwd"), "root:x:0:0:root:/root:/usr/sbin/nologin\nsbx_user1051:x:65534:65534:function:/tmp:/usr/sbin/nologin\n")
            .map_err(|e| e.to_string())?;
        std::fs::write(etc_dir.join("group"), "root:x:0:\nsbx_user1051:x:65534:\n")
            .map_err(|e| e.to_string())?;
        // The hosts file first (it names `host.hotswap.internal`), then DNS.
        std::fs::write(etc_dir.join("nsswitch.conf"), "hosts: files dns\n")
            .map_err(|e| e.to_string())?;
        Ok(BwrapSandbox {
            bwrap,
            init_exe,
            cgroups,
            etc_dir,
            network: None,
            no_network: "no network: loopback only".into(),
        })
    }

    /// Gives instances their own network (egress by policy) through `network`.
    pub fn with_network(mut self, network: Arc<Network>) -> BwrapSandbox {
        self.network = Some(network);
        self
    }

    /// Instances get only their loopback, and the summary says why.
    pub fn without_network(mut self, why: &str) -> BwrapSandbox {
        self.network = None;
        self.no_network = format!("no network ({why}): loopback only");
        self
    }

    pub fn has_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }
}

/// `/usr` read-only and the merged-`/usr` links, mirroring the host.
fn base_mounts() -> Vec<String> {
    let mut v: Vec<String> = vec!["--ro-bind".into(), "/usr".into(), "/usr".into()];
    for dir in ["bin", "lib", "lib64", "sbin", "lib32"] {
        let host = Path::new("/").join(dir);
        match std::fs::read_link(&host) {
            Ok(target) => v.extend([
                "--symlink".into(),
                target.display().to_string(),
                host.display().to_string(),
            ]),
            Err(_) if host.is_dir() => v.extend([
                "--ro-bind".into(),
                host.display().to_string(),
                host.display().to_string(),
            ]),
            Err(_) => {}
        }
    }
    v.extend([
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
    ]);
    v
}

/// The descriptor bwrap reads its options from (`--args`).
const ARGS_FD: i32 = 3;

/// A pipe holding `args` NUL-separated, for bwrap's `--args`; returns its
/// read end (the write end is closed, so bwrap reads to the end).
fn args_pipe(args: &[String]) -> Result<OwnedFd, SandboxError> {
    let mut data = Vec::new();
    for a in args {
        if a.contains('\0') {
            return Err(SandboxError::Setup(format!(
                "bwrap option with a NUL byte: {a:?}"
            )));
        }
        data.extend_from_slice(a.as_bytes());
        data.push(0);
    }
    // The options are a few kilobytes; a pipe holds at least 64 KiB, so
    // writing them all before bwrap starts never blocks. Bigger, and the
    // write would wait forever: refuse instead.
    if data.len() > 60 << 10 {
        return Err(SandboxError::Setup(format!(
            "bwrap options too long ({} bytes)",
            data.len()
        )));
    }
    // Close-on-exec, so no other process the server starts concurrently
    // inherits this instance's options; the copy at ARGS_FD is inheritable.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::Setup(format!("bwrap options: {e}")))?;
    std::fs::File::from(write)
        .write_all(&data)
        .map_err(|e| SandboxError::Setup(format!("bwrap options: {e}")))?;
    Ok(read)
}

struct BwrapGuard {
    pid: AtomicU32,
    cgroup: Option<InstanceCgroup>,
    socket_dir: Option<PathBuf>,
    /// The instance's network namespace, deleted after the processes.
    network: Option<Attachment>,
}

impl InstanceGuard for BwrapGuard {
    fn peak_memory_bytes(&self) -> Option<u64> {
        self.cgroup
            .as_ref()
            .and_then(InstanceCgroup::peak_memory_bytes)
    }

    fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(InstanceCgroup::oom_killed)
    }

    fn init_done(&self) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.limit_cpu() {
                // The instance keeps running without a quota: said loudly.
                tracing::warn!(error = %e, "cannot apply an instance's CPU quota after its init");
            }
        }
    }

    fn kill_all(&self) {
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        let pid = self.pid.load(Ordering::Relaxed);
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for BwrapGuard {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(cg) = self.cgroup.take() {
            // Removal waits for the killed processes to leave the cgroup
            // (sleeping between tries): never on an async worker thread.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(move || cg.remove());
                }
                Err(_) => cg.remove(),
            }
        }
        if let Some(d) = &self.socket_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        drop(self.network.take());
    }
}

impl Sandbox for BwrapSandbox {
    fn summary(&self) -> String {
        let net = match &self.network {
            Some(n) => n.summary(),
            None => self.no_network.clone(),
        };
        match &self.cgroups {
            Some(c) => format!("isolated: bubblewrap namespaces (mount, pid, ipc, uts, net) + seccomp + {} limits (memory, cpu, pids); {net}", c.version()),
            None => format!("isolated: bubblewrap namespaces (mount, pid, ipc, uts, net) + seccomp; NO cgroup limits (cgroups not writable); {net}"),
        }
    }

    fn refresh_network(&self, policy: &crate::network::Policy) {
        if let Some(n) = &self.network {
            if let Err(e) = n.refresh(policy) {
                tracing::warn!(policy = %policy.key, error = %e, "cannot update a network policy");
            }
        }
    }

    fn isolated(&self) -> bool {
        true
    }

    fn wants_unix_endpoint(&self) -> bool {
        true
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Instance, SandboxError> {
        let RuntimeEndpoint::Unix(socket) = &spec.endpoint else {
            return Err(SandboxError::Setup(
                "the isolated sandbox needs a Unix socket endpoint".into(),
            ));
        };
        let socket_dir = socket
            .parent()
            .ok_or_else(|| SandboxError::Setup("socket has no directory".into()))?
            .to_owned();
        let socket_name = socket
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("rt.sock")
            .to_owned();
        let cgroup = match &self.cgroups {
            Some(c) => Some(
                c.create(
                    &spec.instance_id,
                    Limits {
                        memory_bytes: u64::from(spec.memory_mb) << 20,
                        cpus: spec.cpus,
                        max_pids: spec.max_pids,
                    },
                )
                .map_err(|e| SandboxError::Setup(format!("cgroup: {e}")))?,
            ),
            None => None,
        };
        let network = match &self.network {
            Some(n) => Some(
                n.attach(spec.network.as_deref())
                    .map_err(|e| SandboxError::Setup(format!("network: {e}")))?,
            ),
            None => None,
        };
        let guard = BwrapGuard {
            pid: AtomicU32::new(0),
            cgroup,
            socket_dir: Some(socket_dir.clone()),
            network,
        };

        let mut args: Vec<String> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            // No cgroup namespace: the init joins the instance's cgroup
            // after bwrap has set up the namespaces, and on cgroup v2 with
            // `nsdelegate` a move out of a cgroup namespace is refused.
            "--hostname",
            "sandbox",
            // The init needs only to change user and to empty the bounding
            // set before it does (init::harden); it keeps no other capability.
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if guard.network.is_none() {
            // No network of its own: a new, empty namespace (loopback only).
            args.push("--unshare-net".into());
        }
        args.extend(base_mounts());
        // Parents bwrap would create implicitly are 0700: make them readable
        // by the unprivileged function user.
        for dir in ["/etc", "/var", "/run"] {
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), dir.into()]);
        }
        let bind = |v: &mut Vec<String>, how: &str, src: &Path, dst: &str| {
            v.extend([how.to_owned(), src.display().to_string(), dst.to_owned()]);
        };
        for etc in [
            "/etc/ld.so.cache",
            "/etc/ssl",
            "/etc/ca-certificates",
            "/etc/alternatives",
            "/etc/localtime",
        ] {
            bind(&mut args, "--ro-bind-try", Path::new(etc), etc);
        }
        // JDK configuration (Debian keeps it in /etc/java-NN-openjdk).
        if let Ok(entries) = std::fs::read_dir("/etc") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("java-") {
                    let path = format!("/etc/{name}");
                    bind(&mut args, "--ro-bind-try", Path::new(&path), &path);
                }
            }
        }
        bind(
            &mut args,
            "--ro-bind",
            &self.etc_dir.join("passwd"),
            "/etc/passwd",
        );
        bind(
            &mut args,
            "--ro-bind",
            &self.etc_dir.join("group"),
            "/etc/group",
        );
        if let Some(net) = &guard.network {
            bind(&mut args, "--ro-bind", &net.resolv_conf, "/etc/resolv.conf");
            bind(&mut args, "--ro-bind", &net.hosts, "/etc/hosts");
            bind(
                &mut args,
                "--ro-bind",
                &self.etc_dir.join("nsswitch.conf"),
                "/etc/nsswitch.conf",
            );
        }
        args.extend([
            "--perms".into(),
            "1777".into(),
            "--size".into(),
            (u64::from(spec.tmp_mb) << 20).to_string(),
        ]);
        args.extend(["--tmpfs".into(), "/tmp".into()]);
        bind(&mut args, "--ro-bind", &spec.code_dir, "/var/task");
        bind(&mut args, "--ro-bind", &spec.runtime_dir, "/var/runtime");
        if let Some(opt) = &spec.opt_dir {
            bind(&mut args, "--ro-bind", opt, "/opt");
        }
        bind(&mut args, "--bind", &socket_dir, "/run/hotswap");
        bind(&mut args, "--ro-bind", &self.init_exe, "/run/hotswap-init");
        let mut procs = Vec::new();
        if let Some(cg) = &guard.cgroup {
            for (i, f) in cg.procs_files().iter().enumerate() {
                let inside = format!("/run/cgroup/{i}");
                bind(&mut args, "--bind", f, &inside);
                procs.push(PathBuf::from(inside));
            }
        }
        args.extend(["--chdir".into(), "/var/task".into()]);
        let (program, prog_args) = spec.entry.command("/var/runtime", "/var/task");
        // The function's environment goes to the init in a root-only file
        // (never into bwrap's or the init's own environment), and from there
        // to the unprivileged runtime process only.
        let mut env = spec.env.clone();
        env.push(("LAMBDA_TASK_ROOT".into(), "/var/task".into()));
        env.push(("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()));
        env.push(("AWS_LAMBDA_RUNTIME_API".into(), SANDBOX_RUNTIME_API.into()));
        // The same endpoint without the relay, for the built-in bootstraps.
        env.push((
            RUNTIME_API_SOCKET_VAR.into(),
            format!("/run/hotswap/{socket_name}"),
        ));
        let env_path = socket_dir.join("env");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&env_path)
                .map_err(|e| SandboxError::Setup(format!("environment file: {e}")))?;
            f.write_all(&crate::init::encode_env(&env))
                .map_err(|e| SandboxError::Setup(format!("environment file: {e}")))?;
        }
        let init = InitArgs {
            listen: SANDBOX_RUNTIME_API.into(),
            socket: PathBuf::from("/run/hotswap").join(&socket_name),
            uid: NOBODY,
            gid: NOBODY,
            cgroup_procs: procs,
            env_file: Some(PathBuf::from("/run/hotswap/env")),
            program,
            args: prog_args,
        };
        // bwrap stays the sandbox's pid 1, whose command line every process
        // inside can read: its options, which name host paths, reach it
        // through an inherited pipe (`--args`), and only in-sandbox paths
        // are left on the command line.
        let options = args_pipe(&args)?;
        let mut command_line: Vec<String> = vec![
            "--args".into(),
            ARGS_FD.to_string(),
            "--".into(),
            "/run/hotswap-init".into(),
            crate::INIT_SUBCOMMAND.into(),
        ];
        command_line.extend(init.to_args());

        let mut cmd = tokio::process::Command::new(&self.bwrap);
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: options,
            child_fd: ARGS_FD,
        }])
        .map_err(|e| SandboxError::Setup(format!("bwrap options: {e}")))?;
        cmd.args(&command_line)
            // bwrap runs as root on the host: it gets a fixed environment.
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // In its own network namespace: bwrap is forked by this thread
        // while the thread is in it.
        let child = match &guard.network {
            Some(net) => net
                .within(|| cmd.spawn())
                .map_err(|e| SandboxError::Setup(format!("network: {e}")))?,
            None => cmd.spawn(),
        }
        .map_err(SandboxError::Spawn)?;
        guard.pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        Ok(Instance {
            child,
            guard: Box::new(guard),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn options_go_through_a_pipe_nul_separated() {
        let args = vec!["--ro-bind".to_owned(), "/a b".into(), "/var/task".into()];
        let mut out = Vec::new();
        std::fs::File::from(args_pipe(&args).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"--ro-bind\0/a b\0/var/task\0");
        assert!(args_pipe(&["a\0b".to_owned()]).is_err());
        assert!(args_pipe(&["x".repeat(61 << 10)]).is_err());
    }
}
