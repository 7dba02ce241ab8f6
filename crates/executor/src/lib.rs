//! Runs one process (a Dockerfile `RUN` step) in a container.
//!
//! This is the only crate that creates namespaces or execs container processes. The caller
//! prepares the root filesystem (usually an overlayfs mount of a snapshot) and hands its path
//! to an [`Executor`] together with an [`ExecSpec`]; the executor returns the process's
//! [`ExitStatus`] and streams its output to an [`OutputSink`] as it arrives.
//!
//! Main types:
//! - [`RuncExecutor`] drives the `runc` binary with an OCI bundle generated per run, the way
//!   BuildKit's OCI worker does. The container gets Docker's default runtime spec for a build
//!   step: its own pid, ipc, uts and mount namespaces, a network namespace with only loopback
//!   (or the host's network, [`NetworkMode`]), and generated `/etc/hosts`,
//!   `/etc/resolv.conf` (the host's) and `/etc/hostname` files bind-mounted read-only.
//!   Its confinement is a [`SecurityMode`]: the sandbox has Docker's default capabilities and
//!   seccomp profile (moby's `default.json`, kept as data and resolved at run time for those
//!   capabilities, the machine's architecture and kernel), masked and read-only
//!   `/proc` paths, read-only `/sys` and a device allow-list; insecure is BuildKit's
//!   privileged mode (every capability kiln has, no seccomp, the host's devices).
//! - [`enter_private_mount_namespace`] moves the whole process into its own mount namespace,
//!   so every mount kiln makes disappears with it.
//!
//! The process, as Docker and BuildKit start it: `USER` is resolved against the image's
//! `/etc/passwd` and `/etc/group` (name or id, with an optional group; the supplementary
//! groups are every group that lists the user, unless a group was given), `HOME` comes from
//! the passwd entry when the environment has none (`/` without an entry), `PATH` defaults to
//! [`DEFAULT_PATH`], the umask is 0022 whatever kiln's own is (runc sets it from the spec),
//! and the open files limit is Docker's.
//!
//! Invariants:
//! - The executor never mounts or unmounts the root filesystem; it belongs to the caller and
//!   whatever the process writes there stays there. Mount-point stubs that the runtime had to
//!   create in it (an empty `/etc/hosts`, a missing `/proc` directory) are removed afterwards,
//!   so they do not leak into the layer the caller commits.
//! - Files are read from and created in the root filesystem only through paths resolved inside
//!   it (`openat2` with `RESOLVE_IN_ROOT`): an image cannot point `/etc/passwd` or the working
//!   directory at the host.
//! - Cancelling a run (dropping its future) stops the container and removes its runtime state
//!   and bundle before the drop returns: `SIGTERM` to all its processes, `SIGKILL` after a
//!   grace period of a second, and every runtime call bounded by a timeout, so the drop always
//!   ends within seconds. A kiln killed outright takes its containers with it (a watchdog
//!   process per run kills them once kiln is gone, and runc removes them); what is left (the
//!   bundles) is removed by [`RuncExecutor::recover`] at the next start.
//! - Blocking file work (the image's `/etc/passwd`, the working directory, the bundle) runs
//!   on tokio's blocking thread pool, never on an async thread; [`RuncExecutor::new`] and
//!   [`RuncExecutor::recover`] are blocking functions for start-up.
//! - All output is delivered, however much and whatever bytes: the executor reads it in
//!   chunks as it comes and holds none of it, so memory stays bounded and the process never
//!   blocks on a full pipe for longer than the sink takes. Clipping what is shown is the
//!   caller's business.
//! - `unsafe` lives only in the private `sys` module: entering the mount namespace and the
//!   watchdog.
//!
//! Deliberately not done here: AppArmor and SELinux labels, user namespaces (rootless), CNI
//! networking, cgroup resource limits, time limits on a run (the caller cancels), interactive
//! terminals and `exec` into a running container.

mod blocking;
mod bundle;
mod host;
mod rootfs;
mod runc;
mod seccomp;
mod spec;
mod sys;
mod user;

use std::future::Future;
use std::path::{Path, PathBuf};

pub use host::RUNTIME_DEVICES;
pub use runc::{RuncConfig, RuncExecutor};
pub use seccomp::SeccompError;
pub use sys::enter_private_mount_namespace;

/// The hostname a container gets when [`ExecSpec::hostname`] is empty, the same as BuildKit's.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// The `PATH` a process gets when [`ExecSpec::env`] has none, the same as Docker's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs processes in containers.
pub trait Executor: Send + Sync {
    /// Runs `spec` with `rootfs` as the container's root filesystem and returns the exit status
    /// of its process; a process that fails is a normal [`ExitStatus`], not an error.
    ///
    /// Output is streamed to `output` as it arrives. Cancel-safe: dropping the returned future
    /// kills the container and removes everything the run created except what the process
    /// wrote into `rootfs`.
    fn run<'a>(
        &'a self,
        rootfs: &'a Path,
        spec: &'a ExecSpec,
        output: &'a dyn OutputSink,
    ) -> impl Future<Output = Result<ExitStatus, Error>> + Send + 'a;
}

/// Receives a container's output as it arrives.
///
/// `write` is called from the task that runs the container, so it must not block for long:
/// a slow sink slows the process down once the pipe buffers are full.
pub trait OutputSink: Send + Sync {
    /// Accepts one chunk of output, which may end in the middle of a line or of a UTF-8
    /// character.
    fn write(&self, stream: Stream, data: &[u8]);
}

/// One of a process's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What to run and how: the process and its container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The program and its arguments; the program is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// Environment entries, `KEY=value`, in order. [`DEFAULT_PATH`] is added when there is no
    /// `PATH`; `HOME` is set by the runtime from the user's passwd entry (or `/`) when absent.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; empty means `/`. A missing directory
    /// is created (mode 0755, owned by the process's user and group, as BuildKit does).
    pub cwd: String,
    /// `""` (root), `name`, `uid`, `name:group`, `uid:gid`, `name:gid` or `uid:group`, resolved
    /// against the root filesystem's `/etc/passwd` and `/etc/group` as Docker does.
    pub user: String,
    /// The container's hostname; empty means [`DEFAULT_HOSTNAME`].
    pub hostname: String,
    /// Extra `/etc/hosts` entries, in order, after the generated ones (`--add-host`).
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// Resource limits replacing the defaults of the same resource (`--ulimit`).
    pub ulimits: Vec<Ulimit>,
    /// Which network the process sees.
    pub network: NetworkMode,
    /// Additional mounts, applied after the default ones; one with the destination of a
    /// default mount (say `/etc/resolv.conf`) replaces it.
    pub mounts: Vec<Mount>,
    /// Mounts the root filesystem read-only.
    pub readonly_rootfs: bool,
    /// How much of the host the process may touch.
    pub security: SecurityMode,
}

/// One resource limit of the process (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// The resource, lower case without `RLIMIT_`: one of [`ULIMIT_NAMES`].
    pub name: String,
    /// The soft limit; `None` is unlimited.
    pub soft: Option<u64>,
    /// The hard limit; `None` is unlimited.
    pub hard: Option<u64>,
}

/// The resources a [`Ulimit`] may name, as Docker's `--ulimit` spells them.
pub const ULIMIT_NAMES: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// How isolated a container is (`RUN --security=…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityMode {
    /// Docker's default confinement: its default capabilities and seccomp profile, masked and
    /// read-only kernel paths, read-only `/sys`, and only the basic devices.
    #[default]
    Sandbox,
    /// A privileged container, as BuildKit's `security.insecure`: every capability kiln has,
    /// no seccomp filter, nothing masked, writable `/sys` and cgroupfs, and the host's devices.
    /// Callers must only ask for it when the build was granted the entitlement.
    Insecure,
}

/// The network a container sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own network namespace with only the loopback interface, which is up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// An additional mount in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What an additional [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A recursive bind mount of a host file or directory.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mounts it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit in bytes; `None` leaves the kernel's default (half of the memory).
        size: Option<u64>,
    },
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code. A process killed by signal `n` is reported by the runtime as `128 + n`,
    /// as shells and Docker report it.
    pub code: i32,
    /// Set when the runtime itself was killed by this signal, so the container's own status
    /// is unknown; `code` is then `128 + signal`.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OCI runtime binary is not on `PATH` (or at the given path).
    #[error("failed to find the oci runtime {name}")]
    FindRuntime {
        /// The configured name or path.
        name: PathBuf,
    },
    /// The executor's state directory could not be created.
    #[error("failed to create state directory {path}")]
    CreateStateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The [`ExecSpec`] cannot be run as given.
    #[error("invalid exec spec: {reason}")]
    InvalidSpec {
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The root filesystem could not be opened.
    #[error("failed to open root filesystem {path}")]
    OpenRootfs {
        /// The root filesystem.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The user or group of the exec has no entry in the image's `/etc/passwd` or
    /// `/etc/group`, or those could not be read.
    #[error(transparent)]
    User(#[from] fsops::user::UserError),
    /// The working directory could not be created inside the root filesystem.
    #[error("failed to create working directory {path}")]
    CreateWorkdir {
        /// The path inside the container.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// What an insecure container takes from the host (kiln's capabilities, the host's device
    /// nodes) could not be read.
    #[error("failed to read the host's capabilities and devices for a privileged container")]
    ReadHostPrivileges {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime spec could not be put together (`oci-spec` refused a part of it).
    #[error("failed to build the container's runtime spec")]
    BuildSpec {
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Docker's default seccomp profile could not be resolved into a filter.
    #[error("failed to resolve Docker's default seccomp profile")]
    Seccomp {
        /// The cause.
        #[source]
        source: SeccompError,
    },
    /// The bundle (the runtime spec and the generated files) could not be written.
    #[error("failed to write container bundle {path}")]
    WriteBundle {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime process could not be started.
    #[error("failed to start {runtime}")]
    SpawnRuntime {
        /// The runtime binary.
        runtime: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading the container's output or waiting for the runtime failed.
    #[error("failed to wait for container {id}")]
    WaitRuntime {
        /// The container id.
        id: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime failed to set up or start the container (for example because the program
    /// does not exist in the image); `message` is the runtime's own error.
    #[error("failed to run container {id}: {message}")]
    Runtime {
        /// The container id.
        id: String,
        /// The runtime's error message, e.g. `exec: "foo": executable file not found in $PATH`.
        message: String,
    },
    /// Stale containers or bundles of an earlier process could not be removed
    /// ([`RuncExecutor::recover`]).
    #[error("failed to remove stale container state {path}")]
    Recover {
        /// The directory or entry.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process could not move into a private mount namespace: a step failed with an OS
    /// error.
    #[error("failed to enter a private mount namespace: {step}")]
    EnterMountNamespace {
        /// The step that failed.
        step: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process could not move into a private mount namespace because other threads run
    /// ([`enter_private_mount_namespace`] must come first in `main`).
    #[error(
        "failed to enter a private mount namespace: the process has {threads} threads, and \
         only a process with no other thread can"
    )]
    MountNamespaceThreads {
        /// How many threads the process has.
        threads: usize,
    },
    /// The watchdog that stops a container when kiln dies could not be set up.
    #[error("failed to set up the watchdog that stops the container if kiln dies")]
    Watchdog {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// File work could not be run on the blocking thread pool (the runtime is shutting down).
    #[error("failed to run file work on the blocking thread pool")]
    BlockingPool {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its causes, as the CLI prints them (joined with ": ").
    fn chain(error: &dyn std::error::Error) -> Vec<String> {
        let mut parts = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            parts.push(cause.to_string());
            source = cause.source();
        }
        parts
    }

    #[test]
    fn every_cause_is_printed_once_down_to_the_os_error() {
        let eperm = || std::io::Error::from_raw_os_error(1);
        let cases = [
            Error::EnterMountNamespace {
                step: "unshare the mount namespace",
                source: eperm(),
            },
            Error::WriteBundle {
                path: "/state/bundles/x/config.json".into(),
                source: eperm(),
            },
            Error::Watchdog { source: eperm() },
            Error::Seccomp {
                source: SeccompError::Parse(serde_json::from_str::<u8>("x").unwrap_err()),
            },
            Error::Seccomp {
                source: SeccompError::KernelRelease {
                    release: "odd".into(),
                },
            },
            Error::BuildSpec {
                source: oci_spec::OciSpecError::Other("bad mount".into()),
            },
        ];
        for error in &cases {
            let parts = chain(error);
            for pair in parts.windows(2) {
                assert!(!pair[0].contains(&pair[1]), "printed twice: {parts:?}");
            }
            assert!(parts.len() >= 2, "no cause kept: {parts:?}");
        }
        assert_eq!(
            chain(&cases[0]).join(": "),
            "failed to enter a private mount namespace: unshare the mount namespace: \
             Operation not permitted (os error 1)"
        );
    }
}
