//! Test fixtures for kiln: everything a test needs to run real builds with no internet.
//!
//! No image can be pulled from a public registry where kiln's tests run, so the tests build
//! their own base images and serve them from a real registry (Debian's `docker-registry`, the
//! CNCF distribution server) started on a free loopback port.
//!
//! Main items:
//! - [`Registry`]: a `docker-registry` process with temporary storage, killed on drop.
//! - [`LayerBuilder`], [`FixtureImage`], [`busybox_image`]: deterministic OCI images built in
//!   memory; the busybox one has a shell and the usual applets from Debian's busybox-static.
//! - [`push_image`] and [`Fixture`]: put images into a registry (async, or blocking for plain
//!   `#[test]` functions).
//! - [`probe`] and [`require_privileged`]: the one check of whether this machine can run the
//!   privileged tier (root, runc, overlayfs, busybox), and the gate privileged tests call: it
//!   fails the test with the probe's reason, never skips it. Skipping the tier is the runner's
//!   choice: it leaves out the `privileged` test binaries (CONTRIBUTING.md, "Tests").
//! - [`CountingRuntime`]: a runc wrapper that logs every invocation, to count container runs
//!   (cache hits run nothing).
//! - [`TempRoot`]: a temporary state directory that unmounts whatever is left below it before
//!   it is removed.
//! - [`conformance_dir`]: the one place that locates BuildKit's conformance data, and
//!   [`conformance_cases`], the case directories of one of its sets.
//! - [`set_mtime`]: file times for tests of what keeps or ignores them.
//! - [`block_on`]: runs a future that never waits (the offline Dockerfile compiler) without a
//!   runtime.
//!
//! Invariants: every fixture cleans up on drop (processes killed and reaped, mounts detached,
//! temporary directories removed), also when the test fails. Fixture images are deterministic:
//! the same busybox binary always yields the same manifest digest.
//!
//! This crate is only ever a dev-dependency (and a dependency of `xtask`), so it reports errors
//! with `anyhow` and panics where a test must fail loudly. It deliberately does not pull
//! anything from the network, fake the registry protocol, or run containers itself.

#![forbid(unsafe_code)]

mod git;
mod image;
mod privileges;
mod runtime;
mod s3;
mod server;
mod temp_root;

use std::path::{Path, PathBuf};

pub use git::git;
pub use image::{FIXTURE_EPOCH, FixtureImage, LayerBuilder, base_config, busybox_image, busybox_layer};
pub use privileges::{Unprivileged, probe, require_privileged};
pub use runtime::CountingRuntime;
pub use s3::{SeaweedFs, weed_binary};
pub use server::{Fixture, Registry, push_image};
pub use temp_root::TempRoot;

/// Where the busybox-static binary the fixture images are built from lives.
pub const BUSYBOX: &str = "/bin/busybox";

/// Locates BuildKit's conformance data (`shared/conformance` beside the checkout).
///
/// Honours `KILN_CONFORMANCE_DIR` when set; otherwise it is `<workspace root>/../shared/conformance`.
/// Panics with a clear message when the directory is missing, because conformance tests must
/// fail rather than skip when their data is gone.
pub fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("KILN_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        // This crate lives at <workspace root>/crates/testkit.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    };
    assert!(
        dir.is_dir(),
        "conformance data not found at {} (set KILN_CONFORMANCE_DIR to its location)",
        dir.display()
    );
    dir
}

/// The case directories of the conformance data set `set` (a path below [`conformance_dir`]:
/// `buildkit-parser/testfiles`, `real-dockerfiles`, …), sorted. Panics when it cannot be read.
pub fn conformance_cases(set: &str) -> Vec<PathBuf> {
    let dir = conformance_dir().join(set);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut cases: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Sets the modification and access times of `path` to `secs` (Unix seconds) without following
/// a symlink, for tests of what copies, digests and layers do with times. Panics on failure.
pub fn set_mtime(path: &Path, secs: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("set the times of {}: {e}", path.display()));
}

/// Runs a future that never waits for anything (the Dockerfile compiler with a resolver that
/// answers at once) to completion on the calling thread, without an async runtime: for plain
/// `#[test]`s and benchmarks. Such a future is done the first time it is polled, or soon after.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// The real runc: `/usr/sbin/runc` when present, else the first `runc` on `PATH`.
pub fn runc() -> Option<PathBuf> {
    let preferred = PathBuf::from("/usr/sbin/runc");
    if preferred.is_file() {
        return Some(preferred);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("runc"))
        .find(|candidate| candidate.is_file())
}

/// A loopback port nothing listens on (bound, then released), for connections that must be
/// refused.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a loopback port")
        .port()
}
