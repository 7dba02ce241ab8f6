//! The only place in kiln with `unsafe` code: process-wide namespace changes, and the
//! watchdog that takes a container down with kiln.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use rustix::mount::MountPropagationFlags;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions, getpid, kill_process, pidfd_open, waitpid};
use rustix::thread::UnshareFlags;

use crate::{Error, Result};

/// Moves the whole process into a new, private mount namespace (`unshare(CLONE_NEWNS)`, then
/// `/` made recursively private), so that every mount kiln makes afterwards is invisible to the
/// host and disappears when the process dies, even on SIGKILL.
///
/// Must be called before any other thread exists (first thing in `main`, before the tokio
/// runtime starts): `unshare` affects only the calling thread, so with other threads running the
/// process would be split across namespaces. Fails if there are other threads
/// ([`Error::MountNamespaceThreads`]), or with the OS error of the step that failed
/// ([`Error::EnterMountNamespace`]: without `CAP_SYS_ADMIN`, `unshare` fails with `EPERM`).
pub fn enter_private_mount_namespace() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|source| Error::EnterMountNamespace {
            step: "count threads",
            source,
        })?
        .count();
    if threads != 1 {
        return Err(Error::MountNamespaceThreads { threads });
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

/// What `ps` shows for a watchdog (the kernel keeps 15 bytes of a name).
const WATCHDOG_NAME: &std::ffi::CStr = c"kiln-watchdog";

/// The descriptors a watchdog keeps: this process's pidfd and its runc's.
const KILN_FD: RawFd = 3;
const RUNC_FD: RawFd = 4;

/// How long a watchdog waits for runc to exit after each `runc kill` (milliseconds), and how
/// many times it tries before it kills runc itself (10 seconds in all).
const KILL_INTERVAL_MS: libc::c_int = 50;
const KILL_ATTEMPTS: u32 = 200;

/// The `PATH` of the `runc kill` a watchdog starts.
const WATCHDOG_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// This process's pidfd, opened once and kept for the life of the process. It becomes readable
/// when the last thread of this process has exited, however the process died.
fn own_pidfd() -> io::Result<RawFd> {
    static PIDFD: OnceLock<Result<OwnedFd, rustix::io::Errno>> = OnceLock::new();
    let pidfd = PIDFD.get_or_init(|| pidfd_open(getpid(), PidfdFlags::empty()));
    match pidfd {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(errno) => Err(io::Error::from_raw_os_error(errno.raw_os_error())),
    }
}

/// Makes `command`, the `runc run` of container `id` (runc `runtime` with state directory
/// `runc_root`), start a watchdog that kills the container if this process dies while it
/// runs: by `SIGKILL`, an abort or an exit that skipped the run's guard. Without it the
/// container would go on until the next kiln start removes it ([`crate::RuncExecutor::recover`]),
/// still writing into a root filesystem kiln is no longer there to look after.
///
/// The child that is about to become runc opens its own pidfd and starts the watchdog as its
/// sibling (`CLONE_PARENT`), so the watchdog is this process's child: it exists before runc
/// does, watches runc through a pidfd that cannot name another process, and is reaped by
/// [`Watchdog::end`]. It waits for either pidfd:
/// - runc exits first (every run that ends, including cancelled ones, which stop the container
///   themselves): it exits, and the run's guard reaps it;
/// - this process exits first: it runs `runc --root ROOT kill --all ID KILL` (every process in
///   the container's cgroup) every 50 ms until runc, its container ended, has removed the
///   container and exited, as after any run (before runc has created the container, there is
///   nothing to kill yet). If runc has not exited after 10 s, it kills runc and the container
///   once more; the next kiln start deletes the state that runc then leaves.
///
/// Why not `PR_SET_PDEATHSIG`, as BuildKit gives runc: that signal is sent when the *thread*
/// that forked exits, and tokio's threads come and go; it would also kill only runc, which does
/// not take its container with it. The pidfd of a process is readable only once all of it is
/// gone.
///
/// Call [`PendingWatchdog::started`] after spawning `command`, whether the spawn worked or not.
pub(crate) fn stop_container_when_this_process_dies(
    command: &mut tokio::process::Command,
    runtime: &Path,
    runc_root: &Path,
    id: &str,
) -> io::Result<PendingWatchdog> {
    let kiln = own_pidfd()?;
    let arg = |bytes: &[u8]| CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let argv = [
        arg(runtime.as_os_str().as_bytes())?,
        arg(b"--root")?,
        arg(runc_root.as_os_str().as_bytes())?,
        arg(b"kill")?,
        arg(b"--all")?,
        arg(id.as_bytes())?,
        arg(b"KILL")?,
    ];
    let env = arg(WATCHDOG_PATH.as_bytes())?;
    // The watchdog's pid travels back through this pipe (both ends close on exec).
    let (pid_reader, pid_writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let pid_out = pid_writer.as_raw_fd();
    let start_watchdog = move || -> io::Result<()> {
        // This runs in the child that execs runc next, a fork of a multithreaded process: only
        // async-signal-safe calls from here on (see `watchdog`).
        let runc = pidfd_open(getpid(), PidfdFlags::empty())?;
        let pid = clone_sibling()?;
        if pid == 0 {
            watchdog(kiln, runc.as_raw_fd(), &argv, &env);
        }
        let bytes = (pid as i32).to_ne_bytes();
        // SAFETY: writes 4 bytes from a live buffer to a descriptor this process owns.
        if unsafe { libc::write(pid_out, bytes.as_ptr().cast(), bytes.len()) } != 4 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs the closure in the forked child before it execs runc. The closure
    // allocates nothing and takes no lock: it makes system calls only, on values made before
    // the fork (the pidfd number, the pipe, the argument strings).
    unsafe {
        command.pre_exec(start_watchdog);
    }
    Ok(PendingWatchdog {
        pid_reader,
        pid_writer,
    })
}

/// A watchdog being started with a `runc run` (see [`stop_container_when_this_process_dies`]).
pub(crate) struct PendingWatchdog {
    pid_reader: OwnedFd,
    pid_writer: OwnedFd,
}

impl PendingWatchdog {
    /// The watchdog, once the command was spawned (or failed to spawn: a watchdog may exist
    /// anyway, and must be reaped). Blocks only until the watchdog has closed its copy of the
    /// pipe, which it does first thing.
    pub(crate) fn started(self) -> Option<Watchdog> {
        // Without this end, the read sees the end of the pipe once the runc child and the
        // watchdog have closed their copies, if the pid never came.
        drop(self.pid_writer);
        let mut bytes = [0; 4];
        std::fs::File::from(self.pid_reader).read_exact(&mut bytes).ok()?;
        Pid::from_raw(i32::from_ne_bytes(bytes)).map(|pid| Watchdog { pid })
    }
}

/// A run's watchdog: a child of this process until [`Watchdog::end`].
#[derive(Debug)]
pub(crate) struct Watchdog {
    pid: Pid,
}

impl Watchdog {
    /// Kills and reaps the watchdog, once its run is over (the container is gone, or stopping
    /// it was given up on). It is this process's child until reaped, so its pid names nobody
    /// else. Blocking, briefly.
    pub(crate) fn end(self) {
        let _ = kill_process(self.pid, Signal::KILL);
        let _ = waitpid(Some(self.pid), WaitOptions::empty());
    }
}

/// `clone(CLONE_PARENT)`: like `fork`, except that the new process is the calling process's
/// sibling. Returns 0 in the new process and its pid in the caller.
fn clone_sibling() -> io::Result<libc::c_long> {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: without `CLONE_VM` and with a null stack, `clone` copies the process like `fork`:
    // the new process continues here on its own copy of this stack. The caller has a single
    // thread, and the new process only runs `watchdog`, which makes system calls only.
    // (s390 takes the stack first.)
    let pid = unsafe {
        if cfg!(target_arch = "s390x") {
            libc::syscall(libc::SYS_clone, 0 as libc::c_ulong, flags, 0, 0, 0)
        } else {
            libc::syscall(libc::SYS_clone, flags, 0 as libc::c_ulong, 0, 0, 0)
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// The life of a watchdog; never returns.
///
/// It runs in a copy of a fork of a multithreaded process, so it makes only async-signal-safe
/// system calls and touches nothing but its arguments and the stack: no allocation, no lock,
/// nothing that can panic. Every failure ends it with `_exit`.
fn watchdog(kiln: RawFd, runc: RawFd, argv: &[CString; 7], env: &CString) -> ! {
    // SAFETY: plain system calls on values owned here. Blocking every signal keeps the
    // handlers copied from kiln (tokio's, which write into kiln's signal pipe) from ever
    // running; `PR_SET_NAME` takes a NUL-terminated string of at most 16 bytes.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, WATCHDOG_NAME.as_ptr(), 0, 0, 0);
    }
    if !keep_only_pidfds(kiln, runc) {
        exit(1);
    }
    if !wait_for_kiln_to_die() {
        // runc ended: the run is over, the container is gone with it.
        exit(0);
    }
    let argv = [
        argv[0].as_ptr(),
        argv[1].as_ptr(),
        argv[2].as_ptr(),
        argv[3].as_ptr(),
        argv[4].as_ptr(),
        argv[5].as_ptr(),
        argv[6].as_ptr(),
        std::ptr::null(),
    ];
    let envp = [env.as_ptr(), std::ptr::null()];
    // Kiln is gone. Kill the container's processes until runc sees its container end and exits,
    // having removed the container (state and cgroup) as after any run. Until runc has created
    // the container there is nothing to kill yet, hence the repeats.
    for _ in 0..KILL_ATTEMPTS {
        run_to_end(&argv, &envp);
        if readable_within(RUNC_FD, KILL_INTERVAL_MS) {
            exit(0);
        }
    }
    // runc does not end: kill it, so that it cannot start anything any more, and then what it
    // started. Its state is left for the next kiln start.
    // SAFETY: a system call on a descriptor this process owns; a null `info` is allowed.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            RUNC_FD,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
    readable_within(RUNC_FD, -1);
    exec(&argv, &envp)
}

/// Runs `argv` (`runc kill`) in a child and waits for it.
fn run_to_end(argv: &[*const libc::c_char; 8], envp: &[*const libc::c_char; 2]) {
    // SAFETY: `fork` in this single-threaded process; the child only execs (see `exec`), and
    // the parent waits for it with a valid status pointer.
    unsafe {
        match libc::fork() {
            0 => exec(argv, envp),
            -1 => {}
            pid => {
                let mut status = 0;
                while libc::waitpid(pid, &mut status, 0) < 0
                    && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                {}
            }
        }
    }
}

/// Replaces the watchdog (or its child) with `argv`; the pidfds close on exec.
fn exec(argv: &[*const libc::c_char; 8], envp: &[*const libc::c_char; 2]) -> ! {
    // SAFETY: `argv` and `envp` are NUL-terminated arrays of pointers to NUL-terminated strings
    // that live until `execve` replaces the process. Signals are unblocked so that `runc kill`
    // starts as any process does.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
    }
    exit(127)
}

/// Leaves the watchdog with `/dev/null` as stdin, stdout and stderr, `kiln` as [`KILN_FD`],
/// `runc` as [`RUNC_FD`], and nothing else: it must not hold a copy of kiln's descriptors (a
/// pipe another child waits on, the store's lock) while it waits. False if that failed.
fn keep_only_pidfds(kiln: RawFd, runc: RawFd) -> bool {
    // SAFETY: system calls on descriptors this process owns. First everything needed is moved
    // above the descriptors it will end up at, so that no `dup2` closes a source still needed.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        let lift = |fd: RawFd| {
            if fd < 0 {
                -1
            } else {
                libc::fcntl(fd, libc::F_DUPFD, RUNC_FD + 1)
            }
        };
        let (null, kiln, runc) = (lift(null), lift(kiln), lift(runc));
        if null < 0 || kiln < 0 || runc < 0 {
            return false;
        }
        for (from, to) in [(null, 0), (null, 1), (null, 2), (kiln, KILN_FD), (runc, RUNC_FD)] {
            if libc::dup2(from, to) < 0 {
                return false;
            }
        }
        // The `runc kill`s started later need neither pidfd.
        for fd in [KILN_FD, RUNC_FD] {
            if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
                return false;
            }
        }
        let first = (RUNC_FD + 1) as libc::c_uint;
        if libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) != 0 {
            // Kernels before 5.9: one by one, up to the limit on descriptors.
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(1 << 20) as RawFd
            } else {
                1024
            };
            for fd in RUNC_FD + 1..max {
                libc::close(fd);
            }
        }
    }
    true
}

/// Waits until kiln or runc has exited; true if kiln has (whatever runc did).
fn wait_for_kiln_to_die() -> bool {
    let mut fds = [
        libc::pollfd {
            fd: KILN_FD,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: RUNC_FD,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is a valid array of two `pollfd`s for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready > 0 {
            return fds[0].revents != 0;
        }
        if ready < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // Cannot watch: act as if kiln were gone rather than leave a container unwatched.
            return true;
        }
    }
}

/// Waits until the pidfd `fd` is readable (its process has exited), at most `timeout_ms`
/// milliseconds (-1: as long as it takes); says whether it is.
fn readable_within(fd: RawFd, timeout_ms: libc::c_int) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pollfd` is valid for the duration of the call.
        match unsafe { libc::poll(&mut pollfd, 1, timeout_ms) } {
            ready if ready > 0 => return true,
            0 => return false,
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            // Cannot watch: say it ended, so that nothing waits forever.
            _ => return true,
        }
    }
}

/// Ends the watchdog at once, without running anything of Rust's or libc's exit machinery.
fn exit(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and does not return.
    unsafe { libc::_exit(code) }
}
