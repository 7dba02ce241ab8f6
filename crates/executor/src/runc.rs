//! [`RuncExecutor`]: runs each process with `runc run` on a generated bundle.
//!
//! Layout of the state directory, which the executor owns:
//! - `runc/`: runc's `--root` (its container state);
//! - `bundles/<id>/`: one bundle per run with `config.json`, the generated `hosts`,
//!   `resolv.conf` and `hostname` files and runc's JSON log `runc.log`.
//!
//! A run's files (the user lookup in the image, the working directory, the bundle) are made
//! on the blocking thread pool before runc starts, and removed there after it exits
//! ([`crate::blocking`]); only a cancelled run cleans up on the thread that drops it.
//!
//! A kiln process killed outright (`SIGKILL`, an abort) takes its containers with it: each
//! `runc run` comes with a watchdog process that, once kiln is gone, kills every process in
//! the container's cgroup (`crate::sys`) within milliseconds; runc then removes the container
//! as after any run. What is left are the bundles (and, if runc itself hung, its state), which
//! [`RuncExecutor::recover`] removes when the next kiln opens the state directory.
//!
//! A run is `runc run` in the foreground (no `--detach`): runc hands its stdout and stderr to the
//! container process and exits with the process's exit code, which keeps the executor simple
//! and leaves no container behind when the process ends. runc's own failures (a missing program,
//! a bad mount) also end in a non-zero exit; they are told apart by the error lines runc writes
//! to its log file.
//!
//! Cancelling: kiln's own signals never reach a container (runc runs in its own process
//! group); a cancelled run stops its container from the guard's drop instead, `SIGTERM` to
//! every process of it (`runc kill --all`), then `SIGKILL` after [`STOP_GRACE`]. BuildKit
//! sends `SIGKILL` at once; the grace period is for cache mounts, which outlive the step and
//! are better left by a process that could clean up. Every runc call made while cleaning up
//! is bounded by a timeout, so a wedged runtime cannot hang kiln.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::blocking::on_blocking_pool;
use crate::bundle::{self, Prepared};
use crate::{Error, ExecSpec, Executor, ExitStatus, OutputSink, Result, Stream, sys};

/// runc's JSON log in the bundle directory, where its own errors go.
const RUNC_LOG: &str = "runc.log";

/// Size of one read from the container's stdout or stderr.
const READ_CHUNK: usize = 32 * 1024;

/// How long a cancelled container's processes have between `SIGTERM` and `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How long to wait for the runtime to exit after its container was sent `SIGKILL`, and for
/// each `runc kill` or `runc delete`, before giving up on it (and killing that runc).
const RUNC_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a stopping container is checked.
const POLL: Duration = Duration::from_millis(10);

/// Where the binary is looked for when it is not on `PATH` (sbin is often missing there).
const FALLBACK_DIRS: [&str; 4] = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"];

/// Configuration of a [`RuncExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncConfig {
    /// The runtime binary: a path, or a name looked up in `PATH` (then in the usual sbin and
    /// bin directories). Default `runc`.
    pub runtime: PathBuf,
    /// Directory for bundles and runc's state; the executor owns it and creates it if needed.
    pub state_dir: PathBuf,
    /// Cgroup under which each container gets its own cgroup, `<cgroup_parent>/<id>`. Relative
    /// (the default, `kiln`) means below the cgroup of the kiln process in each hierarchy, so
    /// containers stay inside any limit kiln runs under; an absolute path starts at the root.
    pub cgroup_parent: String,
}

impl RuncConfig {
    /// The default configuration for a state directory.
    pub fn new(state_dir: impl Into<PathBuf>) -> RuncConfig {
        RuncConfig {
            runtime: PathBuf::from("runc"),
            state_dir: state_dir.into(),
            cgroup_parent: "kiln".into(),
        }
    }
}

/// Runs processes in containers with the `runc` binary.
#[derive(Debug)]
pub struct RuncExecutor {
    runc: Arc<Runc>,
    bundles: PathBuf,
    cgroup_parent: String,
    next_run: AtomicU64,
    /// Random per executor, so that ids never collide with those of an earlier kiln process
    /// with the same pid whose state was left behind.
    nonce: u32,
}

/// How runc is called: its binary and its state directory (`--root`).
#[derive(Debug)]
struct Runc {
    binary: PathBuf,
    root: PathBuf,
}

impl RuncExecutor {
    /// Finds the runtime binary and creates the state directory. Blocking (file work): call it
    /// at start-up or on the blocking pool.
    pub fn new(config: RuncConfig) -> Result<RuncExecutor> {
        let binary = find_runtime(&config.runtime).ok_or(Error::FindRuntime {
            name: config.runtime.clone(),
        })?;
        let state_dir = std::path::absolute(&config.state_dir).map_err(|source| Error::CreateStateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let runc_root = state_dir.join("runc");
        let bundles = state_dir.join("bundles");
        for dir in [&runc_root, &bundles] {
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
                .map_err(|source| Error::CreateStateDir {
                    path: dir.clone(),
                    source,
                })?;
        }
        let nonce = RandomState::new().build_hasher().finish() as u32;
        Ok(RuncExecutor {
            runc: Arc::new(Runc {
                binary,
                root: runc_root,
            }),
            bundles,
            cgroup_parent: config.cgroup_parent,
            next_run: AtomicU64::new(1),
            nonce,
        })
    }

    /// Kills and deletes every container in this executor's runc state and removes every
    /// bundle; returns the ids of the containers it removed.
    ///
    /// For start-up only, while no run of this executor is in progress and no other process
    /// uses the state directory (kiln holds the store's exclusive lock, under which this
    /// directory lives): then every container there was left by a kiln process that was
    /// killed outright, whose guards never ran. Such a container may still be running and
    /// writing into a snapshot that the store is about to discard, so it must go first.
    ///
    /// Best effort per container: runc's `delete --force` kills whatever is left of it and
    /// removes its cgroup; if runc cannot (its state is unreadable), the state directory is
    /// removed anyway so that it is not retried forever. Blocking: call it at start-up or on
    /// the blocking pool.
    pub fn recover(&self) -> Result<Vec<String>> {
        let recover_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Recover { path, source }
        };
        let mut removed = Vec::new();
        let runc_root = &self.runc.root;
        for entry in sorted_entries(runc_root).map_err(recover_error(runc_root))? {
            let state = runc_root.join(&entry);
            if !state.is_dir() {
                continue;
            }
            let Some(id) = entry.to_str() else { continue };
            self.runc.quietly(&["kill", "--all", id, "KILL"]);
            self.runc.quietly(&["delete", "--force", id]);
            if state.exists() {
                std::fs::remove_dir_all(&state).map_err(recover_error(&state))?;
            }
            removed.push(id.to_owned());
        }
        for entry in sorted_entries(&self.bundles).map_err(recover_error(&self.bundles))? {
            let bundle = self.bundles.join(entry);
            let removed = if bundle.is_dir() {
                std::fs::remove_dir_all(&bundle)
            } else {
                std::fs::remove_file(&bundle)
            };
            removed.map_err(recover_error(&bundle))?;
        }
        Ok(removed)
    }

    /// Runs one container: prepares its files on the blocking pool, runs `runc run` and
    /// streams its output, then cleans up on the blocking pool.
    async fn run_container(
        &self,
        rootfs: &Path,
        spec: &ExecSpec,
        output: &dyn OutputSink,
    ) -> Result<ExitStatus> {
        validate(spec)?;
        let id = format!(
            "kiln-{}-{}-{:08x}",
            std::process::id(),
            self.next_run.fetch_add(1, Ordering::Relaxed),
            self.nonce
        );
        let cgroups_path = format!("{}/{}", self.cgroup_parent.trim_end_matches('/'), id);
        let prepared = {
            let (spec, rootfs, bundle) = (spec.clone(), rootfs.to_owned(), self.bundles.join(&id));
            on_blocking_pool(move || bundle::prepare(&spec, &rootfs, bundle, &cgroups_path)).await??
        };
        let mut guard = RunGuard {
            runc: self.runc.clone(),
            id,
            prepared,
            child: None,
            watchdog: None,
            finished: false,
        };
        let waited = self.start_and_wait(&mut guard, output).await;
        let id = guard.id.clone();
        let read_log = !matches!(waited, Ok(status) if status.success());
        let errors = on_blocking_pool(move || guard.finish(read_log)).await?;
        let status = waited?;
        if !errors.is_empty() {
            return Err(Error::Runtime {
                id,
                message: errors.join("; "),
            });
        }
        Ok(status)
    }

    /// Starts `runc run` for the prepared bundle of `guard` and streams the container's output
    /// to `output` until runc exits.
    async fn start_and_wait(&self, guard: &mut RunGuard, output: &dyn OutputSink) -> Result<ExitStatus> {
        let bundle = guard.prepared.bundle.path();
        let mut command = Command::new(&self.runc.binary);
        command
            .arg("--root")
            .arg(&self.runc.root)
            .arg("--log")
            .arg(bundle.join(RUNC_LOG))
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(bundle)
            .arg(&guard.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a Ctrl-C meant for kiln does not reach the build step;
            // the guard stops the container instead (see `RunGuard::stop`).
            .process_group(0)
            // A last resort only: the guard waits for runc itself whenever it can.
            .kill_on_drop(true);
        // If kiln dies outright, nothing of the run may keep running: see `sys`.
        let watchdog = sys::stop_container_when_this_process_dies(
            &mut command,
            &self.runc.binary,
            &self.runc.root,
            &guard.id,
        )
        .map_err(|source| Error::Watchdog { source })?;
        let spawned = command.spawn();
        // Whether or not the spawn worked: a watchdog may exist, and the guard reaps it.
        guard.watchdog = watchdog.started();
        let mut child = spawned.map_err(|source| Error::SpawnRuntime {
            runtime: self.runc.binary.clone(),
            source,
        })?;
        let pipes = (child.stdout.take(), child.stderr.take());
        let child = guard.child.insert(child);

        let wait_error = |source| Error::WaitRuntime {
            id: guard.id.clone(),
            source,
        };
        let (Some(stdout), Some(stderr)) = pipes else {
            return Err(wait_error(io::Error::other("stdio pipes were not created")));
        };
        let (out, err, status) = tokio::join!(
            pump(stdout, Stream::Stdout, output),
            pump(stderr, Stream::Stderr, output),
            child.wait()
        );
        let status = status.map_err(wait_error)?;
        out.and(err).map_err(wait_error)?;
        guard.finished = true;
        match (status.code(), status.signal()) {
            (Some(code), _) => Ok(ExitStatus { code, signal: None }),
            (None, Some(signal)) => Ok(ExitStatus {
                code: 128 + signal,
                signal: Some(signal),
            }),
            (None, None) => Err(wait_error(io::Error::other(format!(
                "unexpected wait status {status}"
            )))),
        }
    }
}

impl Executor for RuncExecutor {
    fn run<'a>(
        &'a self,
        rootfs: &'a Path,
        spec: &'a ExecSpec,
        output: &'a dyn OutputSink,
    ) -> impl Future<Output = Result<ExitStatus>> + Send + 'a {
        self.run_container(rootfs, spec, output)
    }
}

/// Owns everything one run creates and removes it on drop, whether the run finished, failed
/// or was cancelled.
struct RunGuard {
    runc: Arc<Runc>,
    id: String,
    /// The root filesystem, the stubs to remove from it and the bundle (removed when this is
    /// dropped, after the container).
    prepared: Prepared,
    /// `runc run`, once started: a container may exist.
    child: Option<tokio::process::Child>,
    /// The watchdog that kills the container if kiln dies, once started; ended last.
    watchdog: Option<sys::Watchdog>,
    /// runc exited by itself; it removes the container when it does.
    finished: bool,
}

impl RunGuard {
    /// Ends the run (see `drop`) and returns the errors runc logged, if `read_log`. Blocking:
    /// for the blocking pool.
    fn finish(self, read_log: bool) -> Vec<String> {
        let errors = if read_log {
            runtime_errors(&self.prepared.bundle.path().join(RUNC_LOG))
        } else {
            Vec::new()
        };
        drop(self);
        errors
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        // Synchronous on purpose: the container must be gone when the drop returns (the caller
        // unmounts its root filesystem next), and a drop cannot await. Bounded: see `stop`. A
        // run that ends normally drops its guard on the blocking pool (`finish`); only a
        // cancelled one does this work on the thread that drops it.
        if let Some(mut child) = self.child.take() {
            if !self.finished {
                self.stop(&mut child);
            }
            if self.runc.root.join(&self.id).exists() {
                self.runc.quietly(&["delete", "--force", &self.id]);
            }
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.end();
        }
        for stub in self.prepared.stubs.iter().rev() {
            self.prepared.root.remove_stub(stub);
        }
    }
}

impl RunGuard {
    /// Stops a container whose run was cancelled: `SIGTERM` to all its processes, so that
    /// those that clean up on it (say a package manager releasing its lock in a cache mount)
    /// can; `SIGKILL` to all after [`STOP_GRACE`]; and if runc has still not exited after
    /// [`RUNC_TIMEOUT`], runc itself is killed and `runc delete --force` (in `drop`) removes
    /// what is left. So a cancel takes at most `STOP_GRACE + 5 * RUNC_TIMEOUT` (26 s, with a
    /// runtime that hangs at every step), and usually milliseconds: most processes end on
    /// `SIGTERM`.
    ///
    /// BuildKit sends `SIGKILL` straight away. kiln gives the grace period because cache
    /// mounts outlive a cancelled step; a process that ignores `SIGTERM` (as a container's
    /// init does without a handler) only delays the cancel by the grace period.
    fn stop(&self, child: &mut tokio::process::Child) {
        let exited = |child: &mut tokio::process::Child, within: Duration| {
            let deadline = Instant::now() + within;
            loop {
                match child.try_wait() {
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                    Ok(None) => return false,
                    // An error means there is no child left to wait for.
                    Ok(Some(_)) | Err(_) => return true,
                }
            }
        };
        let id = self.id.as_str();
        self.runc.quietly(&["kill", "--all", id, "TERM"]);
        if exited(child, STOP_GRACE) {
            return;
        }
        self.runc.quietly(&["kill", "--all", id, "KILL"]);
        if exited(child, RUNC_TIMEOUT) {
            return;
        }
        let _ = child.start_kill();
        exited(child, RUNC_TIMEOUT);
    }
}

impl Runc {
    /// Runs `runc --root <root> ARGS` for its effect only, waiting at most [`RUNC_TIMEOUT`]: a
    /// runc that hangs (on a frozen cgroup, say) is killed rather than waited for, so that
    /// cleaning up always ends. Failures are ignored; callers check the outcome themselves.
    /// Blocking.
    fn quietly(&self, args: &[&str]) {
        let child = std::process::Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let deadline = Instant::now() + RUNC_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

fn validate(spec: &ExecSpec) -> Result<()> {
    let invalid = |reason: String| Err(Error::InvalidSpec { reason });
    if spec.args.is_empty() {
        return invalid("args is empty".into());
    }
    if !spec.cwd.is_empty() && !spec.cwd.starts_with('/') {
        return invalid(format!("cwd {:?} is not absolute", spec.cwd));
    }
    if let Some(m) = spec.mounts.iter().find(|m| !m.destination.starts_with('/')) {
        return invalid(format!("mount destination {:?} is not absolute", m.destination));
    }
    for limit in &spec.ulimits {
        if !crate::ULIMIT_NAMES.contains(&limit.name.as_str()) {
            return invalid(format!(
                "unknown ulimit {:?} (known: {})",
                limit.name,
                crate::ULIMIT_NAMES.join(", ")
            ));
        }
        if limit.soft.unwrap_or(u64::MAX) > limit.hard.unwrap_or(u64::MAX) {
            return invalid(format!(
                "ulimit {}: the soft limit is above the hard limit",
                limit.name
            ));
        }
    }
    Ok(())
}

/// The names in a directory, sorted.
fn sorted_entries(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// Copies one output stream to the sink until it ends.
async fn pump(mut reader: impl AsyncRead + Unpin, stream: Stream, sink: &dyn OutputSink) -> io::Result<()> {
    let mut buf = vec![0; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(()),
            n => sink.write(stream, &buf[..n]),
        }
    }
}

/// The error messages runc wrote to its JSON log, without runc's `runc run failed: ` prefix.
fn runtime_errors(log: &Path) -> Vec<String> {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    let content = std::fs::read_to_string(log).unwrap_or_default();
    content
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter(|l| l.level == "error" || l.level == "fatal")
        .map(|l| {
            l.msg
                .strip_prefix("runc run failed: ")
                .unwrap_or(&l.msg)
                .to_owned()
        })
        .collect()
}

fn find_runtime(runtime: &Path) -> Option<PathBuf> {
    if runtime.components().count() > 1 {
        return runtime.is_file().then(|| runtime.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(runtime))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_come_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runc.log");
        std::fs::write(
            &log,
            concat!(
                r#"{"level":"warning","msg":"ignored","time":"t"}"#,
                "\n",
                r#"{"level":"error","msg":"runc run failed: unable to start container process: exec: \"foo\": executable file not found in $PATH","time":"t"}"#,
                "\nnot json\n"
            ),
        )
        .unwrap();
        assert_eq!(
            runtime_errors(&log),
            [r#"unable to start container process: exec: "foo": executable file not found in $PATH"#]
        );
        assert!(runtime_errors(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let ok = ExecSpec {
            args: vec!["true".into()],
            ..ExecSpec::default()
        };
        assert!(validate(&ok).is_ok());
        assert!(validate(&ExecSpec::default()).is_err());
        assert!(
            validate(&ExecSpec {
                cwd: "work".into(),
                ..ok.clone()
            })
            .is_err()
        );
        let mount = crate::Mount {
            destination: "tmp".into(),
            kind: crate::MountKind::Tmpfs { size: None },
        };
        assert!(
            validate(&ExecSpec {
                mounts: vec![mount],
                ..ok
            })
            .is_err()
        );
    }

    #[test]
    fn recover_removes_stale_state_and_bundles() {
        let dir = tempfile::tempdir().unwrap();
        // A runtime that does nothing: the state left behind must be removed anyway.
        let config = RuncConfig {
            runtime: PathBuf::from("/bin/true"),
            ..RuncConfig::new(dir.path())
        };
        let executor = RuncExecutor::new(config).unwrap();
        for id in ["kiln-1-1-0000000a", "kiln-2-7-0000000b"] {
            std::fs::create_dir_all(dir.path().join("runc").join(id)).unwrap();
            std::fs::write(dir.path().join("runc").join(id).join("state.json"), "{").unwrap();
            std::fs::create_dir_all(dir.path().join("bundles").join(id)).unwrap();
        }
        std::fs::write(dir.path().join("bundles/stray"), "").unwrap();
        assert_eq!(
            executor.recover().unwrap(),
            ["kiln-1-1-0000000a", "kiln-2-7-0000000b"]
        );
        assert_eq!(std::fs::read_dir(dir.path().join("runc")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("bundles")).unwrap().count(), 0);
        assert!(executor.recover().unwrap().is_empty());
    }

    #[test]
    fn runtime_is_found_on_path_or_by_path() {
        assert!(find_runtime(Path::new("sh")).is_some());
        assert_eq!(find_runtime(Path::new("/bin/sh")), Some(PathBuf::from("/bin/sh")));
        assert!(find_runtime(Path::new("no-such-runtime-kiln")).is_none());
    }
}
