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
//! - [`privileged`]: the gate for tests that need root, runc and overlayfs; it prints a visible
//!   `SKIPPED (...)` line, or panics when `REQUIRE_PRIVILEGED=1` says the machine must have them.
//! - [`CountingRuntime`]: a runc wrapper that logs every invocation, to count container runs
//!   (cache hits run nothing).
//! - [`TempRoot`]: a temporary state directory that unmounts whatever is left below it before
//!   it is removed.
//! - [`conformance_dir`]: the one place that locates BuildKit's conformance data.
//!
//! Invariants: every fixture cleans up on drop (processes killed and reaped, mounts detached,
//! temporary directories removed), also when the test fails. Fixture images are deterministic:
//! the same busybox binary always yields the same manifest digest.
//!
//! This crate is only ever a dev-dependency (and a dependency of `xtask`), so it reports errors
//! with `anyhow` and panics where a test must fail loudly. It deliberately does not pull
//! anything from the network, fake the registry protocol, or run containers itself.

#![forbid(unsafe_code)]

mod image;
mod runtime;
mod server;
mod temp_root;

use std::path::{Path, PathBuf};

pub use image::{FIXTURE_EPOCH, FixtureImage, LayerBuilder, base_config, busybox_image, busybox_layer};
pub use runtime::CountingRuntime;
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

/// Whether this machine can run privileged tests: running as root, runc present, overlayfs
/// available and `/bin/busybox` present.
///
/// When it cannot and `REQUIRE_PRIVILEGED=1` is set (CI sets it after probing the machine, so a
/// broken check fails loudly), this panics naming what is missing. Otherwise it prints
/// `SKIPPED (<what is missing>)` to stderr and returns false; the caller then returns early.
pub fn privileged() -> bool {
    let missing = missing_privileges();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if std::env::var("REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("privileged test cannot run but REQUIRE_PRIVILEGED=1: {what}");
    }
    eprintln!("SKIPPED ({what})");
    false
}

/// The capabilities privileged tests need that this machine lacks, described for humans.
fn missing_privileges() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("not root");
    }
    if runc().is_none() {
        missing.push("no runc");
    }
    let overlay = std::fs::read_to_string("/proc/filesystems").is_ok_and(|list| {
        list.lines()
            .any(|line| line.split_whitespace().last() == Some("overlay"))
    });
    if !overlay {
        missing.push("no overlayfs");
    }
    if !Path::new(BUSYBOX).is_file() {
        missing.push("no /bin/busybox");
    }
    missing
}
