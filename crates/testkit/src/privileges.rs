//! The privileged tier: the one probe that says whether this machine can run real containers
//! over overlayfs, and the gate privileged tests call.
//!
//! Tests that need root live in each crate's `privileged` test binary (`tests/privileged/`), or
//! in a test binary whose name starts with `privileged`. They call [`require_privileged`] first,
//! which fails the test with the probe's reason when the machine cannot run it: a privileged
//! test never passes without running. Skipping the tier is a decision of whoever runs the
//! tests, made by not running those binaries (`cargo nextest run --profile unprivileged`,
//! `KILN_SKIP_PRIVILEGED=1 cargo xtask ci`), so the runner counts them as skipped.

use std::fmt;
use std::path::Path;

use crate::BUSYBOX;

/// `CAP_SYS_ADMIN`'s bit in the capability masks of `/proc/self/status`: mounts and namespaces.
const CAP_SYS_ADMIN: u32 = 21;

/// How to skip the privileged tier, appended to every refusal.
const HOW_TO_SKIP: &str = "run the tests as root on a machine with runc, overlayfs and \
     busybox-static (`cargo xtask deps` installs the packages), or skip the privileged tier \
     explicitly: `KILN_SKIP_PRIVILEGED=1 cargo xtask ci` (or `cargo xtask ci --skip-privileged`), \
     `cargo nextest run --profile unprivileged`, or with cargo test only the unprivileged \
     binaries (`cargo test --workspace --lib --bins --test it`)";

/// What this machine lacks to run the privileged tier; see [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprivileged {
    /// Each missing capability, described for humans ("not root", "no runc", ...).
    pub missing: Vec<&'static str>,
}

impl fmt::Display for Unprivileged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.missing.join(", "))
    }
}

impl std::error::Error for Unprivileged {}

/// Whether this machine can run the privileged tier: running as root with `CAP_SYS_ADMIN`
/// (mounts, namespaces), runc installed (see [`crate::runc`]), overlayfs in the kernel and
/// `/bin/busybox` (the fixture images are built from it).
///
/// `xtask` asks this same probe to decide whether `cargo xtask ci` can run the whole suite.
pub fn probe() -> Result<(), Unprivileged> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let missing = missing(&Machine {
        root: rustix::process::geteuid().is_root(),
        status: &status,
        runc: crate::runc().is_some(),
        filesystems: &filesystems,
        busybox: Path::new(BUSYBOX).is_file(),
    });
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Unprivileged { missing })
    }
}

/// The gate of a privileged test: returns when [`probe`] passes, and otherwise panics with
/// what this machine lacks and how to skip the privileged tier instead.
///
/// Call it first in every test of a privileged binary (or in the fixture every such test
/// starts with), so a machine that cannot run the test fails it with a reason rather than
/// with whatever `EPERM` comes first.
///
/// It also fails a test that calls it from a test binary outside the privileged tier (one whose
/// name does not start with `privileged`), on every machine: such a test would fail instead of
/// being skipped where the tier is skipped.
#[track_caller]
pub fn require_privileged() {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if !binary.starts_with("privileged") {
        panic!(
            "a privileged test in the test binary {binary:?}: privileged tests belong in a \
             binary of the privileged tier, `tests/privileged/` (see CONTRIBUTING.md, \"Tests\")"
        );
    }
    if let Err(unprivileged) = probe() {
        let ignored = if std::env::var_os("KILN_SKIP_PRIVILEGED").is_some() {
            " (KILN_SKIP_PRIVILEGED is read by `cargo xtask ci` only; a test runner has to \
             leave out the privileged binaries itself)"
        } else {
            ""
        };
        panic!(
            "this test needs a privileged machine, which this one is not ({unprivileged}){ignored}; \
             {HOW_TO_SKIP}"
        );
    }
}

/// What the probe looks at, gathered first so that the decision can be tested.
struct Machine<'a> {
    root: bool,
    /// The text of `/proc/self/status`.
    status: &'a str,
    runc: bool,
    /// The text of `/proc/filesystems`.
    filesystems: &'a str,
    busybox: bool,
}

/// The capabilities privileged tests need that `machine` lacks, described for humans.
fn missing(machine: &Machine<'_>) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !machine.root {
        missing.push("not root");
    }
    let effective = machine
        .status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    if effective & (1 << CAP_SYS_ADMIN) == 0 {
        missing.push("no CAP_SYS_ADMIN");
    }
    if !machine.runc {
        missing.push("no runc");
    }
    let overlay = machine
        .filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some("overlay"));
    if !overlay {
        missing.push("no overlayfs");
    }
    if !machine.busybox {
        missing.push("no /bin/busybox");
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILESYSTEMS: &str = "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n";
    const ROOT_STATUS: &str = "Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    fn able() -> Machine<'static> {
        Machine {
            root: true,
            status: ROOT_STATUS,
            runc: true,
            filesystems: FILESYSTEMS,
            busybox: true,
        }
    }

    #[test]
    fn a_capable_machine_lacks_nothing() {
        assert_eq!(missing(&able()), Vec::<&str>::new());
    }

    #[test]
    fn each_missing_piece_is_named() {
        let nobody = Machine {
            root: false,
            status: "CapEff:\t0000000000000000\n",
            runc: false,
            filesystems: "nodev\ttmpfs\n\text4\n",
            busybox: false,
        };
        assert_eq!(
            missing(&nobody),
            [
                "not root",
                "no CAP_SYS_ADMIN",
                "no runc",
                "no overlayfs",
                "no /bin/busybox"
            ]
        );
        // Root in a container without CAP_SYS_ADMIN cannot mount: Docker's default set.
        let docker_root = Machine {
            status: "CapEff:\t00000000a80425fb\n",
            ..able()
        };
        assert_eq!(missing(&docker_root), ["no CAP_SYS_ADMIN"]);
        // "overlay" must be a whole filesystem name, not part of one.
        let lookalike = Machine {
            filesystems: "nodev\toverlayx\n",
            ..able()
        };
        assert_eq!(missing(&lookalike), ["no overlayfs"]);
    }

    #[test]
    fn the_refusal_lists_what_is_missing() {
        let unprivileged = Unprivileged {
            missing: vec!["not root", "no runc"],
        };
        assert_eq!(unprivileged.to_string(), "not root, no runc");
    }

    #[test]
    #[should_panic(expected = "privileged tests belong in a binary of the privileged tier")]
    fn the_gate_refuses_binaries_outside_the_privileged_tier() {
        // This is testkit's unit-test binary, whatever the machine can do.
        require_privileged();
    }
}
