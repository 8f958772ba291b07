//! Cgroup limits for instances, on cgroup v1 (one hierarchy per controller,
//! as on this project's CI machines in hybrid mode) and v2 (the unified
//! hierarchy of most production hosts). Memory = `MemorySize`, CPU quota =
//! `GetCpuAllocation()` vCPU, a pids limit; peak memory and OOM kills are
//! read back.
//!
//! The CPU quota is held back during init, as Lambda does: an instance's
//! cgroup starts without one, and [`InstanceCgroup::limit_cpu`] writes it
//! when the runtime first asks for an event (init itself is bounded by the
//! runner's init timeout, 10 s). A 128 MB function then starts as fast as
//! a 1792 MB one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Limits for one instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub max_pids: u32,
}

#[derive(Debug, Clone)]
enum Layout {
    /// Per-controller parent directories for instance cgroups.
    V1 {
        memory: PathBuf,
        cpu: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// One parent with memory, cpu and pids enabled for its children.
    V2 { parent: PathBuf },
}

/// Where instance cgroups are created.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
}

const CFS_PERIOD_US: u64 = 100_000;

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The cgroup path of this process for a v1 controller, or the v2 path
/// (controller `""`), from `/proc/self/cgroup` text.
pub fn own_path(proc_self_cgroup: &str, controller: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_owned())
    })
}

impl Cgroups {
    /// Finds a writable hierarchy under `/sys/fs/cgroup` and prepares the
    /// parent of instance cgroups (`…/hotswap-<pid>`). `None` when cgroups
    /// cannot be managed here (no privileges, no controllers).
    pub fn detect() -> Option<Cgroups> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let root = Path::new("/sys/fs/cgroup");
        let tag = format!("hotswap-{}", std::process::id());
        if root.join("cgroup.controllers").exists() {
            let path = own_path(&own, "")?;
            return Self::setup_v2(&root.join(path.trim_start_matches('/')), &tag).ok();
        }
        let v1 = |ctrl: &str| -> Option<PathBuf> {
            let base = root.join(ctrl);
            let path = own_path(&own, ctrl)?;
            let dir = base.join(path.trim_start_matches('/')).join(&tag);
            std::fs::create_dir_all(&dir).ok()?;
            Some(dir)
        };
        let memory = v1("memory")?;
        Some(Cgroups {
            layout: Layout::V1 {
                memory,
                cpu: v1("cpu"),
                pids: v1("pids"),
            },
        })
    }

    /// v2: processes may only live in leaves, so the server moves itself
    /// into `{own}/server` before enabling controllers for `{own}/{tag}`.
    fn setup_v2(own: &Path, tag: &str) -> io::Result<Cgroups> {
        let wanted = ["memory", "cpu", "pids"];
        let available = std::fs::read_to_string(own.join("cgroup.controllers"))?;
        let enable: Vec<String> = wanted
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.iter().any(|c| c == "+memory") {
            return Err(io::Error::other("the memory controller is not available"));
        }
        let leaf = own.join("server");
        std::fs::create_dir_all(&leaf)?;
        let procs = std::fs::read_to_string(own.join("cgroup.procs"))?;
        for pid in procs.split_whitespace() {
            // Best effort: a process of ours that cannot move keeps the
            // controllers from being enabled, which the next write reports.
            let _ = write(&leaf.join("cgroup.procs"), pid);
        }
        write(&own.join("cgroup.subtree_control"), &enable.join(" "))?;
        let parent = own.join(tag);
        std::fs::create_dir_all(&parent)?;
        write(&parent.join("cgroup.subtree_control"), &enable.join(" "))?;
        Ok(Cgroups {
            layout: Layout::V2 { parent },
        })
    }

    /// A v1 layout rooted at the given directories (tests, custom mounts).
    pub fn v1_at(memory: PathBuf, cpu: Option<PathBuf>, pids: Option<PathBuf>) -> Cgroups {
        Cgroups {
            layout: Layout::V1 { memory, cpu, pids },
        }
    }

    /// A v2 layout whose instance cgroups go under `parent`.
    pub fn v2_at(parent: PathBuf) -> Cgroups {
        Cgroups {
            layout: Layout::V2 { parent },
        }
    }

    pub fn version(&self) -> &'static str {
        match self.layout {
            Layout::V1 { .. } => "cgroup-v1",
            Layout::V2 { .. } => "cgroup-v2",
        }
    }

    /// Creates the instance's cgroup(s) with its limits. On failure, the
    /// directories made so far are removed again.
    pub fn create(&self, id: &str, limits: Limits) -> io::Result<InstanceCgroup> {
        let mut made = InstanceCgroup {
            v2: matches!(self.layout, Layout::V2 { .. }),
            dirs: Vec::new(),
            cpu_limit: None,
            cpu_limited: std::sync::atomic::AtomicBool::new(false),
            peak: OnceLock::new(),
        };
        match self.fill(&mut made, id, limits) {
            Ok(()) => Ok(made),
            Err(e) => {
                // Nothing has joined them yet, so they go at once: by rmdir
                // on cgroupfs, by removing their files first elsewhere.
                for d in made.dirs.iter().rev() {
                    let _ = std::fs::remove_dir(d).or_else(|_| std::fs::remove_dir_all(d));
                }
                Err(e)
            }
        }
    }

    /// Makes the cgroup directories (recording each in `made` as soon as it
    /// exists) and writes the limits.
    fn fill(&self, made: &mut InstanceCgroup, id: &str, limits: Limits) -> io::Result<()> {
        let quota = ((limits.cpus * CFS_PERIOD_US as f64) as u64).max(1_000);
        let mut mkdir = |d: &PathBuf| -> io::Result<()> {
            std::fs::create_dir_all(d)?;
            made.dirs.push(d.clone());
            Ok(())
        };
        match &self.layout {
            Layout::V1 { memory, cpu, pids } => {
                let mem = memory.join(id);
                mkdir(&mem)?;
                write(
                    &mem.join("memory.limit_in_bytes"),
                    &limits.memory_bytes.to_string(),
                )?;
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory_bytes.to_string())?;
                }
                let _ = write(&mem.join("memory.swappiness"), "0");
                if let Some(cpu) = cpu {
                    let d = cpu.join(id);
                    mkdir(&d)?;
                    write(&d.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                    // No quota until init is done (`limit_cpu`).
                    write(&d.join("cpu.cfs_quota_us"), "-1")?;
                    made.cpu_limit = Some((d.join("cpu.cfs_quota_us"), quota.to_string()));
                }
                if let Some(pids) = pids {
                    let d = pids.join(id);
                    mkdir(&d)?;
                    write(&d.join("pids.max"), &limits.max_pids.to_string())?;
                }
                Ok(())
            }
            Layout::V2 { parent } => {
                let d = parent.join(id);
                mkdir(&d)?;
                write(&d.join("memory.max"), &limits.memory_bytes.to_string())?;
                let swap = d.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                if d.join("cpu.max").exists() {
                    // No quota until init is done (`limit_cpu`).
                    write(&d.join("cpu.max"), &format!("max {CFS_PERIOD_US}"))?;
                    made.cpu_limit = Some((d.join("cpu.max"), format!("{quota} {CFS_PERIOD_US}")));
                }
                if d.join("pids.max").exists() {
                    write(&d.join("pids.max"), &limits.max_pids.to_string())?;
                }
                Ok(())
            }
        }
    }
}

/// One instance's cgroup(s); the memory one first.
#[derive(Debug)]
pub struct InstanceCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    /// The CPU quota file and the quota it gets once init is done.
    cpu_limit: Option<(PathBuf, String)>,
    cpu_limited: std::sync::atomic::AtomicBool,
    /// The peak-memory file, opened on first use: read after every
    /// invocation, it is re-read in place (`pread` at offset 0 regenerates
    /// a cgroup file) instead of being looked up and opened each time.
    peak: OnceLock<Option<File>>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.events`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
}

impl InstanceCgroup {
    /// Applies the CPU quota held back during init (once; later calls do
    /// nothing).
    pub fn limit_cpu(&self) -> io::Result<()> {
        let Some((file, quota)) = &self.cpu_limit else {
            return Ok(());
        };
        if self
            .cpu_limited
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        write(file, quota)
    }

    /// The `cgroup.procs` files a process writes `0` into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let file = self.peak.get_or_init(|| {
            let mem = self.dirs.first()?;
            let names: &[&str] = if self.v2 {
                &["memory.peak", "memory.current"]
            } else {
                &["memory.max_usage_in_bytes"]
            };
            names.iter().find_map(|n| File::open(mem.join(n)).ok())
        });
        let mut buf = [0u8; 32];
        let n = file.as_ref()?.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    pub fn oom_killed(&self) -> bool {
        let Some(mem) = self.dirs.first() else {
            return false;
        };
        if self.v2 {
            keyed(&mem.join("memory.events"), "oom_kill ").is_some_and(|n| n > 0)
        } else {
            keyed(&mem.join("memory.oom_control"), "oom_kill ").is_some_and(|n| n > 0)
                || read_u64(&mem.join("memory.failcnt")).is_some_and(|n| n > 0)
                    && keyed(&mem.join("memory.oom_control"), "under_oom ").is_some_and(|n| n > 0)
        }
    }

    /// SIGKILLs every process in the cgroup(s).
    pub fn kill_all(&self) {
        if self.v2 {
            if let Some(d) = self.dirs.first() {
                if write(&d.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        for procs in self.procs_files() {
            if let Ok(text) = std::fs::read_to_string(&procs) {
                for pid in text
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
    }

    /// Removes the cgroup directories once their processes are gone.
    pub fn remove(&self) {
        for d in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/x\n0::/user.slice/s\n";

    #[test]
    fn own_paths() {
        assert_eq!(
            own_path(PROC, "memory").as_deref(),
            Some("/process_api/abc")
        );
        assert_eq!(own_path(PROC, "cpu").as_deref(), Some("/x"));
        assert_eq!(own_path(PROC, "pids").as_deref(), Some("/"));
        assert_eq!(own_path(PROC, "").as_deref(), Some("/user.slice/s"));
        assert_eq!(own_path(PROC, "blkio"), None);
    }

    fn limits() -> Limits {
        Limits {
            memory_bytes: 128 << 20,
            cpus: 128.0 / 1792.0,
            max_pids: 64,
        }
    }

    #[test]
    fn a_failed_create_leaves_no_directory() {
        let t = tempfile::tempdir().unwrap();
        let (m, c) = (t.path().join("m"), t.path().join("c"));
        std::fs::create_dir_all(&m).unwrap();
        // The cpu hierarchy is a file, not a directory: its cgroup cannot be made.
        std::fs::write(&c, "").unwrap();
        let made = Cgroups::v1_at(m.clone(), Some(c), None).create("i3", limits());
        assert!(made.is_err());
        assert!(
            !m.join("i3").exists(),
            "the memory cgroup made first is removed"
        );
    }

    #[test]
    fn v1_files() {
        let t = tempfile::tempdir().unwrap();
        let (m, c, p) = (t.path().join("m"), t.path().join("c"), t.path().join("p"));
        let cg = Cgroups::v1_at(m.clone(), Some(c.clone()), Some(p.clone()))
            .create("i1", limits())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(m.join("i1/memory.limit_in_bytes")).unwrap(),
            "134217728"
        );
        // No CPU quota during init; MemorySize / 1792 vCPU after.
        assert_eq!(
            std::fs::read_to_string(c.join("i1/cpu.cfs_quota_us")).unwrap(),
            "-1"
        );
        cg.limit_cpu().unwrap();
        assert_eq!(
            std::fs::read_to_string(c.join("i1/cpu.cfs_quota_us")).unwrap(),
            "7142"
        );
        assert_eq!(
            std::fs::read_to_string(c.join("i1/cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("i1/pids.max")).unwrap(),
            "64"
        );
        assert_eq!(cg.procs_files().len(), 3);
        std::fs::write(m.join("i1/memory.max_usage_in_bytes"), "1048576\n").unwrap();
        assert_eq!(cg.peak_memory_bytes(), Some(1 << 20));
        std::fs::write(
            m.join("i1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
    }

    #[test]
    fn v2_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("i2");
        std::fs::create_dir_all(&d).unwrap();
        for f in ["cpu.max", "pids.max", "memory.swap.max"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let cg = Cgroups::v2_at(t.path().to_owned())
            .create("i2", limits())
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
            "134217728"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "max 100000"
        );
        cg.limit_cpu().unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            "7142 100000"
        );
        assert_eq!(std::fs::read_to_string(d.join("pids.max")).unwrap(), "64");
        assert_eq!(
            std::fs::read_to_string(d.join("memory.swap.max")).unwrap(),
            "0"
        );
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
        std::fs::write(d.join("memory.peak"), "2097152\n").unwrap();
        assert_eq!(cg.peak_memory_bytes(), Some(2 << 20));
    }
}
