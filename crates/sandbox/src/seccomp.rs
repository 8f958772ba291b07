//! The seccomp filter every isolated instance runs under, installed by the
//! in-sandbox init on the thread that starts the runtime, so the runtime and
//! everything it spawns inherit it (with `no_new_privs`).
//!
//! In the spirit of Docker's default profile for a process without
//! capabilities: everything is allowed except the system calls that reach
//! kernel interfaces a function has no use for and that have a history of
//! privilege escalation. Those fail with `EPERM`:
//!
//! - namespaces and mounts: `unshare`, `setns`, `clone` with any
//!   `CLONE_NEW*` flag (a plain `fork` or thread is still fine), `mount`,
//!   `umount2`, `pivot_root`, `chroot` and the new mount API;
//! - kernel keyrings (`add_key`, `request_key`, `keyctl`): every instance is
//!   uid 65534, so the per-user keyring would be shared between tenants;
//! - `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`, `ptrace`,
//!   `process_vm_*`, `kcmp`, `open_by_handle_at`;
//! - kexec, kernel modules, `reboot`, swap, accounting, quotas, clocks,
//!   `syslog` and the x86 I/O port calls.
//!
//! `clone3` fails with `ENOSYS` instead: its flags live in memory a filter
//! cannot read, and on `ENOSYS` the C libraries fall back to `clone`, whose
//! flags the filter does check.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("no seccomp filter for this architecture ({0})")]
    Architecture(String),
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("cannot install the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
}

/// Every namespace `clone` can create.
pub const CLONE_NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

/// System calls refused whatever their arguments (`c_long` is `i64` on
/// every architecture seccompiler supports).
const REFUSED: &[libc::c_long] = &[
    // namespaces and mounts
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    // kernel keyrings
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    // kernel interfaces with a history of escalations
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fanotify_init,
    libc::SYS_open_by_handle_at,
    // other processes' memory
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    // the machine itself
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_lookup_dcookie,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
];

/// The compiled filters, in the order they are installed: the `EPERM`
/// rules, then `clone3` → `ENOSYS` (one action per seccompiler filter).
#[derive(Debug, Clone)]
pub struct Filters {
    programs: Vec<BpfProgram>,
}

impl Filters {
    /// Compiles the filters for the architecture this binary was built for.
    pub fn for_this_machine() -> Result<Filters, SeccompError> {
        let arch = TargetArch::try_from(std::env::consts::ARCH)
            .map_err(|_| SeccompError::Architecture(std::env::consts::ARCH.into()))?;
        let mut refused: BTreeMap<i64, Vec<SeccompRule>> =
            REFUSED.iter().map(|nr| (*nr, vec![])).collect();
        // clone(flags, …): refused when any namespace flag is set (one rule
        // per flag; rules of a system call are alternatives).
        let clone_rules = CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|flag| {
                let flag = *flag as u64;
                SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )?])
            })
            .collect::<Result<Vec<_>, _>>()?;
        refused.insert(libc::SYS_clone, clone_rules);
        let mut absent: BTreeMap<i64, Vec<SeccompRule>> =
            [(libc::SYS_clone3, vec![])].into_iter().collect();
        if arch == TargetArch::x86_64 {
            with_x32_numbers(&mut refused);
            with_x32_numbers(&mut absent);
        }
        let eperm = SeccompFilter::new(
            refused,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch,
        )?;
        let enosys = SeccompFilter::new(
            absent,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            arch,
        )?;
        Ok(Filters {
            programs: vec![eperm.try_into()?, enosys.try_into()?],
        })
    }

    /// Sets `no_new_privs` and installs the filters on the calling thread;
    /// the processes it starts from now on inherit them.
    pub fn install(&self) -> Result<(), SeccompError> {
        for p in &self.programs {
            seccompiler::apply_filter(p)?;
        }
        Ok(())
    }
}

/// Marks the x32 ABI's system call numbers on x86_64.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// On a kernel built with the x32 ABI, the same calls can be made under
/// their x32 numbers (the x86_64 number with bit 30 set, or an x32-only
/// number for the calls that take pointers to differently laid out
/// structures): refuse those too.
fn with_x32_numbers(rules: &mut BTreeMap<i64, Vec<SeccompRule>>) {
    const X32_ONLY: [(i64, i64); 4] = [
        (101, 521), // ptrace
        (246, 528), // kexec_load
        (310, 539), // process_vm_readv
        (311, 540), // process_vm_writev
    ];
    let x32: Vec<(i64, Vec<SeccompRule>)> = rules
        .iter()
        .flat_map(|(nr, r)| {
            let own = X32_ONLY.iter().find(|(n, _)| n == nr).map(|(_, x)| *x);
            [Some(*nr), own]
                .into_iter()
                .flatten()
                .map(move |n| (n | X32_SYSCALL_BIT, r.clone()))
        })
        .collect();
    rules.extend(x32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x32_numbers_are_refused_as_well() {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            [(101, vec![]), (272, vec![])].into_iter().collect();
        with_x32_numbers(&mut rules);
        let numbers: Vec<i64> = rules.keys().copied().collect();
        assert_eq!(
            numbers,
            [
                101,
                272,
                272 | X32_SYSCALL_BIT,
                101 | X32_SYSCALL_BIT,
                521 | X32_SYSCALL_BIT
            ]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn compiles_for_this_machine() {
        let f = Filters::for_this_machine().unwrap();
        assert_eq!(f.programs.len(), 2);
        assert!(f.programs.iter().all(|p| !p.is_empty()));
    }

    /// Installed in a throwaway child process (the test harness's threads
    /// must not be filtered): refused calls fail with the chosen errno, and
    /// ordinary ones still work.
    #[test]
    fn refuses_namespaces_in_a_child() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "seccomp::tests::filtered_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HOTSWAP_SECCOMP_FILTERED_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("FILTERED-CHILD-OK"), "{text}");
    }

    #[test]
    fn filtered_child() {
        if std::env::var_os("HOTSWAP_SECCOMP_FILTERED_CHILD").is_none() {
            return;
        }
        let unshare = |args: &[&str]| {
            std::process::Command::new("/usr/bin/unshare")
                .args(args)
                .arg("/usr/bin/true")
                .output()
                .unwrap()
        };
        // works before (this test runs as root)…
        assert!(unshare(&["--user"]).status.success());
        Filters::for_this_machine().unwrap().install().unwrap();
        // …and not after, in a child that inherited the filter
        for ns in ["--user", "--net", "--mount"] {
            let out = unshare(&[ns]);
            assert!(!out.status.success(), "unshare {ns} was allowed");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("Operation not permitted"), "{ns}: {err}");
        }
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert!(status.contains("Seccomp:\t2"), "{status}");
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        // plain child processes still work
        assert!(std::process::Command::new("/usr/bin/true")
            .status()
            .unwrap()
            .success());
        println!("FILTERED-CHILD-OK");
    }
}
