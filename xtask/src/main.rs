//! kiln's automation, one entry point: `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks (installs what it needs first): formatting, clippy, tidy, the
//!   whole test suite (privileged tier included when the machine allows it), doc tests and docs.
//! - `demo`: installs what is needed, builds kiln, and runs a real build end to end: a base image
//!   served from a loopback registry, `examples/hello` built into an OCI tarball and a directory,
//!   and the result run with runc.
//! - `tidy`: the architecture checks alone (dependency directions, unsafe, crate docs).
//! - `deps`: only install the Debian packages kiln's tests and demo need.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Debian packages the tests and the demo use.
const PACKAGES: [&str; 6] = [
    "runc",
    "busybox-static",
    "docker-registry",
    "skopeo",
    "umoci",
    "openssh-client",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = std::env::set_current_dir(&root)
        .map_err(anyhow::Error::from)
        .and_then(|()| match args.first().map(String::as_str) {
            Some("ci") => ci(),
            Some("demo") => demo(&root),
            Some("tidy") => tidy(),
            Some("deps") => ensure_packages(),
            _ => {
                eprintln!("usage: cargo xtask <ci|demo|tidy|deps>");
                std::process::exit(2);
            }
        });
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

/// Whether this machine can run the privileged tier (real containers over overlayfs).
fn privileged_probe() -> Result<(), String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    if testkit::runc().is_none() {
        return Err("runc not found".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.contains("overlay") {
        return Err("overlayfs not available".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Err("/bin/busybox not found".into());
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ci() -> Result<()> {
    let started = Instant::now();
    ensure_packages()?;
    step("formatting");
    run(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
    step("clippy");
    run(Command::new("cargo").args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    step("tidy");
    tidy()?;
    let mut tests = if has_nextest() {
        let mut c = Command::new("cargo");
        c.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        c
    } else {
        let mut c = Command::new("cargo");
        c.args(["test", "--workspace", "--no-fail-fast"]);
        c
    };
    match privileged_probe() {
        Ok(()) => {
            step("tests (privileged tier included: REQUIRE_PRIVILEGED=1)");
            tests.env("REQUIRE_PRIVILEGED", "1");
        }
        Err(reason) => step(&format!("tests (privileged tier SKIPPED: {reason})")),
    }
    run(&mut tests)?;
    step("doc tests");
    run(Command::new("cargo").args(["test", "--workspace", "--doc"]))?;
    step("rustdoc");
    run(Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    eprintln!(
        "\nci: all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Internal dependency edges each crate may have (normal dependencies). Adding an edge is a
/// design change: update ARCHITECTURE.md in the same commit.
const ALLOWED: &[(&str, &[&str])] = &[
    ("oci", &[]),
    ("llb", &["oci"]),
    ("dockerfile", &["llb", "oci"]),
    ("solver", &["oci"]),
    ("store", &["oci"]),
    ("executor", &["oci"]),
    ("registry", &["oci"]),
    ("exporter", &["oci", "store"]),
    (
        "engine",
        &[
            "dockerfile",
            "executor",
            "exporter",
            "llb",
            "oci",
            "registry",
            "solver",
            "store",
        ],
    ),
    ("cli", &["dockerfile", "engine", "llb", "oci"]),
    ("testkit", &["oci", "registry"]),
    ("xtask", &["testkit"]),
];

fn tidy() -> Result<()> {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    if !output.status.success() {
        bail!("cargo metadata failed");
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .context("no packages in cargo metadata")?;
    let internal: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            problems.push(format!(
                "crate {name} is not in xtask's dependency table (ALLOWED)"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !internal.iter().any(|i| i == dep_name) {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            if dev && dep_name == "testkit" {
                continue;
            }
            if dep_name == "testkit" && name != "xtask" {
                problems.push(format!("{name} depends on testkit outside dev-dependencies"));
            } else if !dev && !allowed.contains(&dep_name) {
                problems.push(format!(
                    "{name} must not depend on {dep_name} (see ARCHITECTURE.md)"
                ));
            }
        }
    }
    // unsafe lives only in executor's sys module; every crate documents itself.
    for entry in std::fs::read_dir("crates")? {
        let dir = entry?.path();
        let lib = dir.join("src/lib.rs");
        let main = dir.join("src/main.rs");
        let root_file = if lib.exists() { lib } else { main };
        let text = std::fs::read_to_string(&root_file).unwrap_or_default();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{} does not open with a //! crate doc",
                root_file.display()
            ));
        }
        for file in rust_files(&dir.join("src"))? {
            let text = std::fs::read_to_string(&file)?;
            let allowed = file.ends_with("executor/src/sys.rs");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if !allowed
                    && (code.contains("unsafe {")
                        || code.contains("unsafe fn")
                        || code.contains("unsafe impl"))
                {
                    problems.push(format!(
                        "{}:{}: unsafe outside executor::sys",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("tidy found {} problem(s)", problems.len());
    }
    eprintln!("tidy: dependency directions, unsafe and crate docs are in order");
    Ok(())
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

fn demo(root: &Path) -> Result<()> {
    ensure_packages()?;
    if let Err(reason) = privileged_probe() {
        bail!("the demo runs real containers and needs root, runc and overlayfs: {reason}");
    }
    step("building kiln");
    run(Command::new("cargo").args(["build", "--release", "-p", "cli"]))?;
    let kiln = root.join("target/release/kiln");
    let work = root.join("target/demo");
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
