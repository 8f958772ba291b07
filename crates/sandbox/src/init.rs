//! The first process inside an isolated sandbox (`hotswap __sandbox-init`):
//! it joins the instance's cgroups, serves the Runtime API on the sandbox's
//! own loopback by relaying to the runner's Unix socket (the sandbox has no
//! other network), then empties its capability sets, installs the seccomp
//! filter ([`harden`]) and starts the runtime as an unprivileged user, and
//! exits with its status. Its arguments name only in-sandbox paths: every
//! process inside can read them in `/proc`. Plain threads, no async runtime: it must start in
//! well under a millisecond.

use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

/// Arguments of `__sandbox-init`.
#[derive(Debug, PartialEq)]
pub struct InitArgs {
    pub listen: String,
    pub socket: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_procs: Vec<PathBuf>,
    /// The child's whole environment: `KEY=VALUE` entries separated by NUL,
    /// readable by root only. The init itself runs with bwrap's minimal
    /// environment, so nothing a function sets (`LD_PRELOAD`…) ever reaches
    /// a privileged process.
    pub env_file: Option<PathBuf>,
    pub program: String,
    pub args: Vec<String>,
}

impl InitArgs {
    /// Renders the arguments after the subcommand name.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--listen".to_owned(),
            self.listen.clone(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--uid".into(),
            self.uid.to_string(),
            "--gid".into(),
            self.gid.to_string(),
        ];
        for p in &self.cgroup_procs {
            v.push("--cgroup-procs".into());
            v.push(p.display().to_string());
        }
        if let Some(f) = &self.env_file {
            v.push("--env-file".into());
            v.push(f.display().to_string());
        }
        v.push("--".into());
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    pub fn parse(args: &[String]) -> Result<InitArgs, String> {
        let mut it = args.iter();
        let (mut listen, mut socket, mut uid, mut gid, mut procs, mut env_file) =
            (None, None, None, None, Vec::new(), None);
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--listen" => listen = Some(value()?),
                "--socket" => socket = Some(PathBuf::from(value()?)),
                "--uid" => uid = Some(value()?.parse().map_err(|_| "bad --uid")?),
                "--gid" => gid = Some(value()?.parse().map_err(|_| "bad --gid")?),
                "--cgroup-procs" => procs.push(PathBuf::from(value()?)),
                "--env-file" => env_file = Some(PathBuf::from(value()?)),
                "--" => break,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let program = it.next().cloned().ok_or("missing program after --")?;
        Ok(InitArgs {
            listen: listen.ok_or("missing --listen")?,
            socket: socket.ok_or("missing --socket")?,
            uid: uid.ok_or("missing --uid")?,
            gid: gid.ok_or("missing --gid")?,
            cgroup_procs: procs,
            env_file,
            program,
            args: it.cloned().collect(),
        })
    }
}

fn relay(tcp: TcpStream, socket: &PathBuf) -> io::Result<()> {
    let unix = UnixStream::connect(socket)?;
    let _ = tcp.set_nodelay(true);
    let (mut tcp_r, mut unix_w) = (tcp.try_clone()?, unix.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(Shutdown::Write);
    });
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let _ = io::copy(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// Runs the init; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let a = match InitArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hotswap sandbox init: {e}");
            return 125;
        }
    };
    for procs in &a.cgroup_procs {
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .open(procs)
            .and_then(|mut f| f.write_all(b"0"))
        {
            eprintln!(
                "hotswap sandbox init: cannot join cgroup {}: {e}",
                procs.display()
            );
            return 125;
        }
    }
    let listener = match TcpListener::bind(&a.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hotswap sandbox init: cannot listen on {}: {e}", a.listen);
            return 125;
        }
    };
    let socket = a.socket.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || {
                if let Err(e) = relay(conn, &socket) {
                    eprintln!("hotswap sandbox init: runtime API relay: {e}");
                }
            });
        }
    });
    let mut cmd = Command::new(&a.program);
    cmd.args(&a.args).uid(a.uid).gid(a.gid);
    if let Some(f) = &a.env_file {
        match std::fs::read(f) {
            Ok(bytes) => {
                cmd.env_clear().envs(parse_env(&bytes));
                let _ = std::fs::remove_file(f);
            }
            Err(e) => {
                eprintln!("hotswap sandbox init: cannot read the environment: {e}");
                return 125;
            }
        }
    }
    // Last, on this thread, which starts the runtime: the runtime inherits
    // empty bounding, inheritable and ambient capability sets, no_new_privs
    // and the seccomp filter. Dropping to an unprivileged user then empties
    // the permitted and effective sets; supplementary groups are cleared by
    // the standard library. The relay threads, started earlier, only copy
    // bytes between two sockets.
    if let Err(e) = harden() {
        eprintln!("hotswap sandbox init: {e}");
        return 125;
    }
    let status = cmd.status();
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("hotswap sandbox init: cannot start {}: {e}", a.program);
            127
        }
    }
}

/// Why the init could not lock itself down before starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error("cannot clear the {set} capability set: {reason}")]
    Capabilities { set: &'static str, reason: String },
    #[error("cannot set the descriptor limit: {0}")]
    Limit(nix::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Open files an instance may hold, as on Lambda: the server raises its own
/// limit at start, and instances must not inherit that.
pub const INSTANCE_NOFILE: u64 = 1024;

/// Sets the instance's descriptor limit ([`INSTANCE_NOFILE`], soft and
/// hard: without capabilities it cannot be raised again), empties the
/// calling thread's ambient, bounding and inheritable capability sets (the
/// bounding set needs `CAP_SETPCAP`, which bwrap grants the init for this),
/// then installs the seccomp filter.
pub fn harden() -> Result<(), HardenError> {
    use caps::CapSet;
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        INSTANCE_NOFILE,
        INSTANCE_NOFILE,
    )
    .map_err(HardenError::Limit)?;
    for (set, name) in [
        (CapSet::Ambient, "ambient"),
        (CapSet::Bounding, "bounding"),
        (CapSet::Inheritable, "inheritable"),
    ] {
        caps::clear(None, set).map_err(|e| HardenError::Capabilities {
            set: name,
            reason: e.to_string(),
        })?;
    }
    crate::seccomp::Filters::for_this_machine()?.install()?;
    Ok(())
}

/// Encodes an environment for `--env-file`.
pub fn encode_env(env: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn parse_env(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let text = String::from_utf8_lossy(e);
            text.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = InitArgs {
            listen: "127.0.0.1:9001".into(),
            socket: "/run/hotswap/rt.sock".into(),
            uid: 65534,
            gid: 65534,
            cgroup_procs: vec!["/run/cg/0".into(), "/run/cg/1".into()],
            env_file: Some("/run/hotswap/env".into()),
            program: "/usr/bin/python3".into(),
            args: vec!["-S".into(), "--".into(), "x".into()],
        };
        assert_eq!(InitArgs::parse(&a.to_args()).unwrap(), a);
        assert!(InitArgs::parse(&["--listen".into()]).is_err());
        assert!(InitArgs::parse(&["--bogus".into()]).is_err());
    }

    #[test]
    fn env_file_round_trip() {
        let env = vec![
            ("A".to_owned(), "1".to_owned()),
            ("MULTI".to_owned(), "x\ny=z".to_owned()),
        ];
        assert_eq!(parse_env(&encode_env(&env)), env);
    }

    #[test]
    fn relays_tcp_to_the_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let server = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut buf = [0u8; 5];
            io::Read::read_exact(&mut c, &mut buf).unwrap();
            c.write_all(&buf.iter().rev().copied().collect::<Vec<_>>())
                .unwrap();
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let s2 = sock.clone();
        std::thread::spawn(move || relay(listener.accept().unwrap().0, &s2).unwrap());
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"hello").unwrap();
        let mut out = [0u8; 5];
        io::Read::read_exact(&mut c, &mut out).unwrap();
        assert_eq!(&out, b"olleh");
    }
}
