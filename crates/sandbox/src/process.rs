//! The unisolated backend: the instance is a plain child process in its own
//! process group. It enforces what a process can without privileges — a
//! clean environment, its own working directory, an address-space limit is
//! not applied (it breaks runtimes that reserve large virtual ranges) — and
//! is reported loudly as unisolated.

use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::{
    proc_peak_rss_bytes, Instance, InstanceGuard, LaunchSpec, RuntimeEndpoint, Sandbox,
    SandboxError,
};

/// Plain processes: no isolation between instances or from the host.
#[derive(Debug, Default)]
pub struct ProcessSandbox;

struct ProcessGuard {
    pid: AtomicU32,
}

impl InstanceGuard for ProcessGuard {
    fn peak_memory_bytes(&self) -> Option<u64> {
        proc_peak_rss_bytes(self.pid.load(Ordering::Relaxed))
    }

    fn oom_killed(&self) -> bool {
        false
    }

    fn kill_all(&self) {
        let pid = self.pid.load(Ordering::Relaxed);
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill_all();
    }
}

impl Sandbox for ProcessSandbox {
    fn summary(&self) -> String {
        "unisolated (plain processes: no namespaces, no cgroup limits; network policy NOT enforced: instances share the host's network)".into()
    }

    fn isolated(&self) -> bool {
        false
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Instance, SandboxError> {
        let (program, args) = spec.entry.command(
            &spec.runtime_dir.display().to_string(),
            &spec.code_dir.display().to_string(),
        );
        let RuntimeEndpoint::Tcp(addr) = &spec.endpoint else {
            return Err(SandboxError::Setup(
                "the process sandbox needs a TCP endpoint".into(),
            ));
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("LAMBDA_TASK_ROOT", &spec.code_dir)
            .env("LAMBDA_RUNTIME_DIR", &spec.runtime_dir)
            .env("AWS_LAMBDA_RUNTIME_API", addr)
            .current_dir(&spec.code_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // Without a mount namespace there is no /opt: point the runtimes'
        // search paths at the unpacked layers instead.
        if let Some(opt) = &spec.opt_dir {
            cmd.env("PYTHONPATH", opt.join("python"))
                .env("NODE_PATH", opt.join("nodejs/node_modules"))
                .env("RUBYLIB", opt.join("ruby/lib"));
        }
        let child = cmd.spawn().map_err(SandboxError::Spawn)?;
        let pid = child.id().unwrap_or(0);
        Ok(Instance {
            child,
            guard: Box::new(ProcessGuard {
                pid: AtomicU32::new(pid),
            }),
        })
    }
}
