//! The only place in kiln with `unsafe` code: process-wide namespace changes.
#![allow(unsafe_code)]

use rustix::mount::MountPropagationFlags;
use rustix::thread::UnshareFlags;

use crate::{Error, Result};

/// Moves the whole process into a new, private mount namespace (`unshare(CLONE_NEWNS)`, then
/// `/` made recursively private), so that every mount kiln makes afterwards is invisible to the
/// host and disappears when the process dies, even on SIGKILL.
///
/// Must be called before any other thread exists (first thing in `main`, before the tokio
/// runtime starts): `unshare` affects only the calling thread, so with other threads running the
/// process would be split across namespaces. Fails if there are other threads, or if the
/// process lacks `CAP_SYS_ADMIN`; the caller may then continue in the host's namespace.
pub fn enter_private_mount_namespace() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|source| Error::EnterMountNamespace {
            step: "count threads",
            source,
        })?
        .count();
    if threads != 1 {
        let source = std::io::Error::other(format!("the process has {threads} threads, not 1"));
        return Err(Error::EnterMountNamespace {
            step: "check that no other thread runs",
            source,
        });
    }
    // SAFETY: `unshare_unsafe` is unsafe because `CLONE_FILES` could leave other threads with
    // file descriptors from a table they no longer share. Only `CLONE_NEWNS` is passed, which
    // does not touch the descriptor table, and the process has a single thread (checked above).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.map_err(|e| {
        Error::EnterMountNamespace {
            step: "unshare the mount namespace",
            source: e.into(),
        }
    })?;
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC).map_err(
        |e| Error::EnterMountNamespace {
            step: "make / recursively private",
            source: e.into(),
        },
    )
}

/// Whether this kernel runs x32 system calls (the ILP32 ABI of x86_64, which most kernels
/// leave out or disable). Probed once per process, in a forked child: it makes one x32 system
/// call (`getpid`, with the x32 bit) and exits with 0 when the kernel answered, 1 when it
/// said `ENOSYS`. A child killed instead (a seccomp filter of our own that rejects x32 calls)
/// counts as no: whatever kiln starts inherits that filter. Always `false` off x86_64.
pub(crate) fn x32_syscalls_work() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(probe_x32)
}

#[cfg(target_arch = "x86_64")]
fn probe_x32() -> bool {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("/bin/true");
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure runs in the forked child, where only async-signal-safe work is
    // allowed: it makes two raw system calls (no allocation, no locks, no libc state) and the
    // second one, `exit_group`, never returns, so the child never reaches `exec`.
    unsafe {
        command.pre_exec(|| {
            const X32_SYSCALL_BIT: isize = 0x4000_0000;
            const SYS_GETPID: isize = 39;
            const SYS_EXIT_GROUP: isize = 231;
            let result: isize;
            // SAFETY (inner): `getpid` takes no arguments and changes nothing; `syscall`
            // clobbers rcx and r11, which are declared, and leaves the stack alone.
            core::arch::asm!(
                "syscall",
                inlateout("rax") X32_SYSCALL_BIT | SYS_GETPID => result,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
            let code: isize = if result >= 0 { 0 } else { 1 };
            // SAFETY (inner): `exit_group` ends the child here; it does not return.
            core::arch::asm!(
                "syscall",
                in("rax") SYS_EXIT_GROUP,
                in("rdi") code,
                options(noreturn, nostack),
            );
        });
    }
    match command.status() {
        Ok(status) => status.code() == Some(0),
        Err(_) => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe_x32() -> bool {
    false
}
