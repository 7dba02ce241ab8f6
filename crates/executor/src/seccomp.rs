//! The seccomp profile of a sandboxed build step: Docker's default profile in effect, kept as
//! kiln's own table.
//!
//! The approach is Docker's: **deny by default** (`EPERM`) with an allow-list, not an
//! allow-list's inverse. A deny-list would let through every system call added to the kernel
//! after it was written, which is exactly where new attack surface appears; an allow-list
//! fails closed. It costs little here: runc answers `ENOSYS` (not `EPERM`) for system calls
//! newer than any the filter names, so libcs fall back from new calls as they would on an
//! old kernel, and names the installed libseccomp does not know are skipped by runc.
//!
//! Docker's profile has rules conditional on capabilities (a container with `CAP_SYS_ADMIN`
//! may `mount`, one with `CAP_SYS_BOOT` may `reboot`, …) and on the kernel version. The table
//! below is that profile resolved for what a sandboxed kiln step has: Docker's default
//! capability set (see [`crate::spec`]) and a kernel of at least 5.6 (kiln needs `openat2`),
//! so it allows `chroot` (`CAP_SYS_CHROOT`), `ptrace` and `process_vm_*` (kernel 4.8+), allows
//! `clone` only without namespace flags and makes `clone3` fail with `ENOSYS` (no
//! `CAP_SYS_ADMIN`, so glibc falls back to `clone`, whose flags the filter can inspect).
//! Insecure steps get no seccomp filter at all, as privileged containers in Docker and
//! BuildKit, so no other capability set ever meets this profile; a unit test checks that the
//! capability set the table was resolved for is the one [`crate::spec`] grants.
//!
//! In effect this denies, among others: namespaces (`unshare`, `setns`, `clone` with
//! `CLONE_NEW*`), mounting (`mount`, `umount2`, `fsopen`, `open_tree`, …), the kernel keyring
//! (`add_key`, `keyctl`, `request_key`), loading kernels and modules (`kexec_load`,
//! `init_module`, …), `bpf`, `perf_event_open`, `userfaultfd`, `reboot`, swap, clock setting,
//! `personality` except the harmless values, and `socket(AF_VSOCK)`.
//!
//! The output is deterministic: rules in table order, names as written (sorted).

use serde_json::{Value, json};

/// `errno` for denied calls: `EPERM`, as Docker.
const EPERM: u32 = 1;
/// `errno` for `clone3`, so that callers fall back to `clone`.
const ENOSYS: u32 = 38;

/// What a rule does to a matching call.
#[derive(Debug, Clone, Copy)]
enum Action {
    Allow,
    Errno(u32),
}

/// A condition on one argument of the call.
#[derive(Debug, Clone, Copy)]
struct Arg {
    index: u32,
    op: &'static str,
    value: u64,
    /// Only for `SCMP_CMP_MASKED_EQ`: the call matches when `arg & value == value_two`.
    value_two: u64,
}

/// One rule: the calls it names, what happens to them, conditions on their arguments (all
/// must hold) and the architectures it applies to (Rust `target_arch` names; empty: all).
#[derive(Debug, Clone, Copy)]
struct Rule {
    names: &'static [&'static str],
    action: Action,
    args: &'static [Arg],
    arches: &'static [&'static str],
}

const fn eq(index: u32, value: u64) -> Arg {
    Arg {
        index,
        op: "SCMP_CMP_EQ",
        value,
        value_two: 0,
    }
}

/// The `CLONE_NEW*` flags: `NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: sockets to the hypervisor stay closed.
const AF_VSOCK: u64 = 40;

/// Calls every sandboxed process may make, whatever the arguments.
const ALLOWED: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "chroot",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// The rules after [`ALLOWED`], in order.
const RULES: &[Rule] = &[
    // Any socket but vsock.
    Rule {
        names: &["socket"],
        action: Action::Allow,
        args: &[Arg {
            index: 0,
            op: "SCMP_CMP_NE",
            value: AF_VSOCK,
            value_two: 0,
        }],
        arches: &[],
    },
    // personality: the default (PER_LINUX), PER_LINUX32 (`linux32`), UNAME26 and both, and
    // 0xffffffff, which only queries. Everything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
    // …) weakens the process's protections.
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: &[eq(0, 0x0)],
        arches: &[],
    },
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: &[eq(0, 0x8)],
        arches: &[],
    },
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: &[eq(0, 0x2_0000)],
        arches: &[],
    },
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: &[eq(0, 0x2_0008)],
        arches: &[],
    },
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: &[eq(0, 0xffff_ffff)],
        arches: &[],
    },
    // Architecture-specific calls the C libraries need.
    Rule {
        names: &["arch_prctl"],
        action: Action::Allow,
        args: &[],
        arches: &["x86_64"],
    },
    Rule {
        names: &["modify_ldt"],
        action: Action::Allow,
        args: &[],
        arches: &["x86_64", "x86"],
    },
    Rule {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "breakpoint",
            "cacheflush",
            "set_tls",
            "sync_file_range2",
        ],
        action: Action::Allow,
        args: &[],
        arches: &["aarch64", "arm"],
    },
    Rule {
        names: &["swapcontext", "sync_file_range2"],
        action: Action::Allow,
        args: &[],
        arches: &["powerpc64"],
    },
    Rule {
        names: &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
        action: Action::Allow,
        args: &[],
        arches: &["s390x"],
    },
    Rule {
        names: &["riscv_flush_icache"],
        action: Action::Allow,
        args: &[],
        arches: &["riscv64"],
    },
    // clone without any CLONE_NEW* flag: threads and processes, never namespaces. The flags
    // are the first argument, except on s390x where they are the second.
    Rule {
        names: &["clone"],
        action: Action::Allow,
        args: &[Arg {
            index: 0,
            op: "SCMP_CMP_MASKED_EQ",
            value: CLONE_NAMESPACE_FLAGS,
            value_two: 0,
        }],
        arches: &[
            "x86_64",
            "x86",
            "aarch64",
            "arm",
            "powerpc64",
            "riscv64",
            "mips",
            "mips64",
            "loongarch64",
        ],
    },
    Rule {
        names: &["clone"],
        action: Action::Allow,
        args: &[Arg {
            index: 1,
            op: "SCMP_CMP_MASKED_EQ",
            value: CLONE_NAMESPACE_FLAGS,
            value_two: 0,
        }],
        arches: &["s390x"],
    },
    // clone3 passes its flags in memory, which seccomp cannot read: pretend it does not exist.
    Rule {
        names: &["clone3"],
        action: Action::Errno(ENOSYS),
        args: &[],
        arches: &[],
    },
];

/// The capability set the conditional rules of Docker's profile were resolved for: Docker's
/// default set. `chroot` is allowed because it has `CAP_SYS_CHROOT`; nothing of `CAP_SYS_ADMIN`,
/// `CAP_SYS_BOOT`, `CAP_SYS_MODULE`, `CAP_SYS_PTRACE`, … is.
#[cfg(test)]
pub(crate) const RESOLVED_FOR: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The libseccomp architectures a filter for `arch` covers: the native one and those whose
/// binaries the kernel also runs there (32-bit x86 and x32 on x86_64, 32-bit ARM on arm64), so
/// that a 32-bit binary cannot bypass the filter with the other system call table.
///
/// x32 is named only when the kernel runs x32 system calls (`x32`): most kernels leave the ABI
/// out, and naming it makes runc's filter compilation several milliseconds slower per step.
/// Without it, an x32 call meets the filter's bad-architecture action instead of the kernel's
/// `ENOSYS`; only x32 binaries make such calls, and such a kernel cannot run them at all.
fn architectures(arch: &str, x32: bool) -> &'static [&'static str] {
    match arch {
        "x86_64" if x32 => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "x86" => &["SCMP_ARCH_X86"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => &["SCMP_ARCH_ARM"],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "riscv64" => &["SCMP_ARCH_RISCV64"],
        "powerpc64" if cfg!(target_endian = "little") => &["SCMP_ARCH_PPC64LE"],
        "powerpc64" => &["SCMP_ARCH_PPC64"],
        // Unknown: the runtime's native architecture only.
        _ => &[],
    }
}

/// The profile for processes on this machine's architecture, as the `linux.seccomp` object of
/// an OCI runtime spec.
pub(crate) fn profile() -> Value {
    profile_for(std::env::consts::ARCH, crate::sys::x32_syscalls_work())
}

/// The profile for `arch` (a Rust `target_arch` name), with x32 when `x32`.
fn profile_for(arch: &str, x32: bool) -> Value {
    let mut syscalls = vec![json!({"names": ALLOWED, "action": "SCMP_ACT_ALLOW"})];
    for rule in RULES
        .iter()
        .filter(|r| r.arches.is_empty() || r.arches.contains(&arch))
    {
        let mut entry = json!({"names": rule.names});
        match rule.action {
            Action::Allow => entry["action"] = json!("SCMP_ACT_ALLOW"),
            Action::Errno(errno) => {
                entry["action"] = json!("SCMP_ACT_ERRNO");
                entry["errnoRet"] = json!(errno);
            }
        }
        if !rule.args.is_empty() {
            let args: Vec<Value> = rule
                .args
                .iter()
                .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                .collect();
            entry["args"] = json!(args);
        }
        syscalls.push(entry);
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": architectures(arch, x32),
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the profile lets through on `arch`, with or without conditions.
    fn allowed_names(profile: &Value) -> Vec<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn allow_list_is_sorted_and_unique() {
        let mut sorted = ALLOWED.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, ALLOWED);
    }

    #[test]
    fn dangerous_calls_are_denied_by_default() {
        let profile = profile_for("x86_64", true);
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["defaultErrnoRet"], 1);
        let allowed = allowed_names(&profile);
        for name in [
            "add_key",
            "bpf",
            "delete_module",
            "finit_module",
            "fsconfig",
            "fsmount",
            "fsopen",
            "init_module",
            "iopl",
            "kexec_file_load",
            "kexec_load",
            "keyctl",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_by_handle_at",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "reboot",
            "request_key",
            "setns",
            "settimeofday",
            "swapon",
            "syslog",
            "umount2",
            "unshare",
            "userfaultfd",
        ] {
            assert!(!allowed.iter().any(|a| a == name), "{name} is allowed");
        }
        // Conditional ones are allowed only with their conditions.
        for name in ["clone", "personality", "socket"] {
            assert!(!ALLOWED.contains(&name), "{name} is allowed unconditionally");
            assert!(allowed.iter().any(|a| a == name), "{name} is never allowed");
        }
    }

    #[test]
    fn profile_depends_on_the_architecture() {
        let x86 = profile_for("x86_64", true);
        assert_eq!(
            x86["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(
            profile_for("x86_64", false)["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]),
            "x32 only where the kernel runs it"
        );
        let names = allowed_names(&x86);
        assert!(names.iter().any(|n| n == "arch_prctl"));
        assert!(!names.iter().any(|n| n == "set_tls"));
        let clone = x86["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(
            clone["args"],
            json!([{"index": 0, "value": 2_114_060_288_u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let clone3 = x86["syscalls"].as_array().unwrap().last().unwrap();
        assert_eq!(
            clone3,
            &json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
        );

        let arm = profile_for("aarch64", false);
        assert!(allowed_names(&arm).iter().any(|n| n == "set_tls"));
        assert!(!allowed_names(&arm).iter().any(|n| n == "arch_prctl"));
        let s390 = profile_for("s390x", false);
        let clone = s390["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["index"], 1);
        // The same input gives the same bytes.
        assert_eq!(profile().to_string(), profile().to_string());
    }

    #[test]
    fn personality_allows_only_docker_values() {
        let profile = profile_for("x86_64", true);
        let values: Vec<u64> = profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"] == json!(["personality"]))
            .map(|r| r["args"][0]["value"].as_u64().unwrap())
            .collect();
        assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }
}

#[cfg(test)]
mod probe_tests {
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_x32_probe_agrees_with_the_kernels_symbols() {
        // A kernel built with the x32 ABI has x32 entry points in its symbol table; the probe
        // must find the ABI working exactly when they exist and it is not disabled at boot.
        let Ok(symbols) = std::fs::read_to_string("/proc/kallsyms") else {
            return;
        };
        let built_in = symbols.lines().any(|l| l.contains(" __x32_"));
        let disabled = std::fs::read_to_string("/proc/cmdline").is_ok_and(|c| c.contains("syscall.x32=n"));
        assert_eq!(crate::sys::x32_syscalls_work(), built_in && !disabled);
    }
}
