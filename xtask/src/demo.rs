//! `cargo xtask demo`: a real build end to end, as the README's quick start shows it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{ensure_packages, run, step};

/// Builds `examples/hello` with a freshly built kiln against a loopback registry, checks and
/// runs the image, and rebuilds it from the cache.
pub fn demo(root: &Path) -> Result<()> {
    ensure_packages()?;
    if let Err(unprivileged) = testkit::probe() {
        bail!("the demo runs real containers and needs root, runc and overlayfs: {unprivileged}");
    }
    step("building kiln");
    run(Command::new("cargo").args(["build", "--release", "-p", "cli"]))?;
    // Where cargo put it: CARGO_TARGET_DIR or the build configuration may move `target/`.
    let target = crate::target_dir()?;
    let kiln = target.join("release/kiln");
    let work = target.join("demo");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("failed to clean {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    step("starting a registry on loopback and pushing a busybox base image");
    let fixture = testkit::Fixture::start()?;
    eprintln!("    base image: {}", fixture.busybox);
    let state = work.join("state");
    let oci = work.join("hello.oci.tar");
    let rootfs = work.join("rootfs");
    let build = |what: &str| -> Result<String> {
        step(what);
        let output = Command::new(&kiln)
            .env("KILN_ROOT", &state)
            .args(["build", "--progress=plain", "--build-arg"])
            .arg(format!("BASE={}", fixture.busybox))
            .arg("--output")
            .arg(format!(
                "type=oci,dest={},name=kiln-example/hello:latest",
                oci.display()
            ))
            .arg("--output")
            .arg(format!("type=local,dest={}", rootfs.display()))
            .arg(root.join("examples/hello"))
            .output()?;
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        eprint!("{log}");
        if !output.status.success() {
            bail!("kiln build failed");
        }
        Ok(log)
    };
    build("kiln build examples/hello → OCI tarball + directory")?;
    step("checking the image with skopeo and unpacking it with umoci");
    run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", oci.display())))?;
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout)?;
    run(Command::new("tar").arg("-xf").arg(&oci).arg("-C").arg(&layout))?;
    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle))?;
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    step("running the image with runc");
    let runc = testkit::runc().context("runc not found")?;
    let output = Command::new(&runc)
        .args(["--root"])
        .arg(work.join("runc"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg("kiln-demo")
        .output()?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!("runc run failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    eprintln!("{printed}");
    let log = build("the same build again: every step comes from the cache")?;
    let cached = log.lines().filter(|l| l.ends_with(" CACHED")).count();
    eprintln!(
        "\ndemo: the image printed {:?}; the rebuild reported {cached} cached steps",
        printed.trim()
    );
    if !printed.contains("Hello from a kiln-built image!") {
        bail!("the image did not print the expected greeting");
    }
    Ok(())
}
