//! Entitlements (`--allow`) and what they unlock, end to end through the `kiln` binary with
//! real containers: `RUN --network=host` and `RUN --security=insecure` are refused without
//! their entitlement (naming it, how to grant it, and the Dockerfile line) and work with it;
//! the default sandbox has Docker's capabilities and seccomp profile.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use crate::common::{Harness, assert_points_at};

/// Interface names in a `/proc/net/dev` text.
fn interfaces(netdev: &str) -> BTreeSet<String> {
    netdev
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect()
}

/// One field of a `/proc/<pid>/status` text.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status:?}"))
        .trim()
        .to_string()
}

#[test]
fn unknown_entitlement_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--allow", "network.host,bogus", "."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'bogus'"), "{stderr}");
    assert!(
        stderr.contains("valid: network.host, security.insecure"),
        "{stderr}"
    );
    // buildx's other entitlements are known, and not supported yet.
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--allow", "device", "."])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow device is not supported yet"), "{stderr}");
}

#[test]
fn network_host_needs_the_entitlement() {
    let h = Harness::start();
    let ctx = h.context();
    let instruction = "RUN --network=host cat /proc/net/dev > /netdev";
    ctx.dockerfile(&format!(
        "FROM @BASE@\nRUN echo before > /before\n{instruction}\n"
    ));

    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 3, instruction);
    assert!(err.contains("network.host is not allowed"), "{err}");
    assert!(err.contains("--allow network.host"), "{err}");
    assert_eq!(
        h.kiln.runtime.runs(),
        0,
        "entitlements are checked before anything runs"
    );
    // The other entitlement does not grant it.
    let err = h.build_err(&ctx, &["--allow", "security.insecure"]);
    assert!(err.contains("network.host is not allowed"), "{err}");

    let built = h.build(&ctx, &["--allow", "network.host"]);
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(interfaces(&built.read("/netdev")), interfaces(&host));
    // A cached result does not stand in for the entitlement.
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("network.host is not allowed"), "{err}");
}

#[test]
fn build_network_is_the_default_of_run_steps() {
    let h = Harness::start();
    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let loopback = BTreeSet::from(["lo".to_string()]);
    let ctx = h.context();
    ctx.dockerfile(
        "FROM @BASE@\nRUN cat /proc/net/dev > /netdev\nRUN --network=none cat /proc/net/dev > /netdev-none\n",
    );
    // `--network host` on the command line grants the entitlement, as in buildx; a step's own
    // `--network` still wins.
    let built = h.build(&ctx, &["--network", "host"]);
    assert_eq!(interfaces(&built.read("/netdev")), host);
    assert_eq!(interfaces(&built.read("/netdev-none")), loopback);
    // `--network none` wins over a worker that gives steps the host's network.
    let built = h.build(&ctx, &["--network", "none", "--oci-worker-net", "host"]);
    assert_eq!(interfaces(&built.read("/netdev")), loopback);
    let built = h.build(&ctx, &["--oci-worker-net", "host"]);
    assert_eq!(interfaces(&built.read("/netdev")), host);
}

/// A device node of the host that containers do not get by default, and its `major:minor`
/// in hex (as busybox `stat -c %t:%T` prints them).
fn host_device() -> (String, String) {
    let defaults = [
        "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx",
    ];
    let mut names: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !defaults.contains(&n.as_str()))
        .collect();
    // Prefer the usual ones, for a readable failure.
    names.sort_by_key(|n| (!["loop-control", "kmsg", "fuse"].contains(&n.as_str()), n.clone()));
    names
        .into_iter()
        .find_map(|name| {
            let path = format!("/dev/{name}");
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let kind = meta.file_type();
            (kind.is_char_device() || kind.is_block_device()).then(|| {
                let rdev = meta.rdev();
                // glibc's major() and minor().
                let major = ((rdev & 0x0000_0000_000f_ff00) >> 8) | ((rdev & 0xffff_f000_0000_0000) >> 32);
                let minor = (rdev & 0xff) | ((rdev & 0x0000_0fff_fff0_0000) >> 12);
                (path, format!("{major:x}:{minor:x}"))
            })
        })
        .expect("the host has no device node besides the default ones")
}

#[test]
fn security_insecure_needs_the_entitlement() {
    let h = Harness::start();
    let (device, numbers) = host_device();
    let ctx = h.context();
    let instruction = format!(
        "RUN --security=insecure cat /proc/self/status > /insecure && stat -c %t:%T {device} > /device"
    );
    ctx.dockerfile(&format!(
        "FROM @BASE@\n\
         RUN cat /proc/self/status > /sandbox && (unshare -U true 2> /unshare || echo refused >> /unshare) \
         && ([ -e {device} ] && echo present || echo absent) > /sandbox-device\n\
         {instruction}\n"
    ));

    let err = h.build_err(&ctx, &["--allow", "network.host"]);
    assert_points_at(&err, 3, &instruction);
    assert!(err.contains("security.insecure is not allowed"), "{err}");
    assert!(err.contains("--allow security.insecure"), "{err}");
    assert_eq!(
        h.kiln.runtime.runs(),
        0,
        "entitlements are checked before anything runs"
    );

    let built = h.build(&ctx, &["--allow", "security.insecure"]);
    // The sandbox: Docker's default capabilities and a seccomp filter that refuses
    // unshare(CLONE_NEWUSER), which needs no capability.
    let sandbox = built.read("/sandbox");
    assert_eq!(status_field(&sandbox, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&sandbox, "Seccomp"), "2");
    let unshare = built.read("/unshare");
    assert!(
        unshare.contains("Operation not permitted") && unshare.ends_with("refused\n"),
        "{unshare}"
    );
    assert_eq!(built.read("/sandbox-device"), "absent\n");
    // Insecure: every capability kiln has (kiln runs with this test's capabilities), no
    // filter, and the host's devices.
    let insecure = built.read("/insecure");
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status_field(&insecure, "CapEff"), status_field(&ours, "CapEff"));
    assert_eq!(status_field(&insecure, "Seccomp"), "0");
    assert_eq!(built.read("/device"), format!("{numbers}\n"), "{device}");
    // The device node made for the run is not part of the image.
    assert!(!built.exists(&device), "{device} is in the result");
}
