//! Sandboxes: how a function instance's process is started and contained.
//!
//! A [`Sandbox`] turns a [`LaunchSpec`] (what to run, with which code,
//! layers, environment and limits) into a running [`Instance`] process. The
//! runner does not care how: the plain-process backend runs it as a child of
//! the server (unisolated, for machines without privileges), the namespace
//! backend (bubblewrap + cgroups) isolates it.

use std::path::PathBuf;

mod bwrap;
pub mod cgroup;
pub mod init;
mod process;
pub mod seccomp;

pub use hotswap_network as network;

pub use bwrap::{BwrapSandbox, RUNTIME_API_SOCKET_VAR, SANDBOX_RUNTIME_API};
pub use process::ProcessSandbox;

/// The hidden subcommand of the `hotswap` binary that runs [`init::run`].
pub const INIT_SUBCOMMAND: &str = "__sandbox-init";

/// Errors of the sandbox layer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the instance: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
}

/// What the instance's entry point is.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An interpreter (host path) with arguments, in which `{runtime}` and
    /// `{task}` stand for the bootstrap and code directories as the instance
    /// sees them (e.g. `{runtime}/bootstrap.pyc`).
    Interpreter { program: PathBuf, args: Vec<String> },
    /// An executable inside the code package (the `Provided` runtime's
    /// `bootstrap`).
    TaskExecutable(String),
}

impl Entry {
    /// The program and arguments, with the directories as the instance sees them.
    pub fn command(&self, runtime_dir: &str, task_dir: &str) -> (String, Vec<String>) {
        match self {
            Entry::Interpreter { program, args } => {
                let args = args
                    .iter()
                    .map(|a| {
                        a.replace("{runtime}", runtime_dir)
                            .replace("{task}", task_dir)
                    })
                    .collect();
                (program.display().to_string(), args)
            }
            Entry::TaskExecutable(name) => (format!("{task_dir}/{name}"), Vec::new()),
        }
    }
}

/// How the instance reaches its Runtime API.
#[derive(Debug, Clone)]
pub enum RuntimeEndpoint {
    /// A TCP address the instance can connect to directly (`host:port`).
    Tcp(String),
    /// A Unix socket the sandbox relays its loopback endpoint to.
    Unix(PathBuf),
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Unique per instance; names cgroups and log lines.
    pub instance_id: String,
    pub entry: Entry,
    /// The function's code, unpacked (host path). Seen as `/var/task` in an
    /// isolated sandbox.
    pub code_dir: PathBuf,
    /// The runner's bootstrap scripts (host path). Seen as `/var/runtime`.
    pub runtime_dir: PathBuf,
    /// The function's layers, unpacked in order into one directory (host
    /// path). Seen read-only at `/opt`.
    pub opt_dir: Option<PathBuf>,
    /// Environment without the path-dependent variables, which the sandbox
    /// adds (`LAMBDA_TASK_ROOT`, `LAMBDA_RUNTIME_DIR`,
    /// `AWS_LAMBDA_RUNTIME_API`).
    pub env: Vec<(String, String)>,
    pub endpoint: RuntimeEndpoint,
    /// Memory limit in MB.
    pub memory_mb: u32,
    /// vCPU share (`Function::cpu_allocation`).
    pub cpus: f64,
    /// Most processes/threads the instance may run.
    pub max_pids: u32,
    /// Size of the writable `/tmp`, in MB.
    pub tmp_mb: u32,
    /// The version's VPC policy; `None`: default egress (public addresses
    /// only) in the default subnet. Backends without networking ignore it.
    pub network: Option<std::sync::Arc<network::Policy>>,
}

/// A started instance process.
pub struct Instance {
    pub child: tokio::process::Child,
    /// Backend-specific resources (cgroup, scratch directories) released on
    /// drop, after the process is gone.
    pub guard: Box<dyn InstanceGuard>,
}

/// What a backend keeps per instance.
pub trait InstanceGuard: Send + Sync {
    /// Peak memory use of the whole instance, in bytes, when known.
    fn peak_memory_bytes(&self) -> Option<u64>;
    /// Whether the kernel killed the instance for exceeding its memory limit.
    fn oom_killed(&self) -> bool;
    /// Kills every process of the instance.
    fn kill_all(&self);
    /// The runtime asked for its first event: limits held back during init
    /// (the CPU quota) apply from now.
    fn init_done(&self) {}
}

/// An isolation backend.
pub trait Sandbox: Send + Sync + 'static {
    /// One line for logs and `/v1/runners`, e.g. `"unisolated (plain processes)"`.
    fn summary(&self) -> String;
    /// Whether instances are isolated from each other and the host.
    fn isolated(&self) -> bool;
    /// Whether the runner should serve the Runtime API on a Unix socket
    /// (`RuntimeEndpoint::Unix`) rather than loopback TCP.
    fn wants_unix_endpoint(&self) -> bool {
        false
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Instance, SandboxError>;
    /// Applies `policy`'s current rules to the instances already running
    /// under it (for their new connections). A no-op where network policy
    /// is not enforced.
    fn refresh_network(&self, _policy: &network::Policy) {}
}

/// Reads peak resident memory (`VmHWM`) of a process from `/proc`.
pub fn proc_peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_placeholders() {
        let e = Entry::Interpreter {
            program: "/usr/bin/java".into(),
            args: vec![
                "-cp".into(),
                "{runtime}/java:{task}:{task}/lib/*".into(),
                "Main".into(),
            ],
        };
        let (p, a) = e.command("/var/runtime", "/var/task");
        assert_eq!(p, "/usr/bin/java");
        assert_eq!(
            a,
            ["-cp", "/var/runtime/java:/var/task:/var/task/lib/*", "Main"]
        );
        assert_eq!(
            Entry::TaskExecutable("bootstrap".into()).command("/r", "/t"),
            ("/t/bootstrap".to_owned(), vec![])
        );
    }
}
