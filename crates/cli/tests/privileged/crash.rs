//! Crash safety through the `kiln` binary: kill a build at many points, then check that the
//! state directory is consistent and the next build works.
//!
//! Each case starts a multi-stage build (a pulled base image, RUNs, COPYs from the context and
//! from another stage, an OCI tarball and a local directory as outputs) and kills it, either at
//! a named fault point (`KILN_FAULT`, which aborts the process there: see `store::fault`), with
//! `SIGKILL` after a delay chosen from how long the build takes, or with `SIGKILL` while a
//! container is running. Then:
//! - the OCI tarball is absent or complete (never half-written under its final name);
//! - `kiln debug check` passes (it opens the store, so recovery runs first);
//! - no runc container is left in the executor's root, no process of the killed container is
//!   alive, and no mount below the state directory is visible;
//! - the same build, run again into the same output directory, succeeds and produces exactly
//!   the expected files and a valid image whose base layer is the pulled blob.
//!
//! Cases run on fresh state directories (one each) and on one shared warm directory, where each
//! case edits the context so that most steps run again. The cases are split over a few tests
//! so that they run in parallel.

use crate::common::{Reaper, kiln_without_core_dumps, process_with_arg, runc_list, text, write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use testkit::{CountingRuntime, Fixture, TempRoot};

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out && echo built > /out/built.txt && seq 1 2000 > /out/numbers.txt
COPY src/ /src/
RUN cat /src/a.txt /src/b.txt > /out/joined.txt

FROM ${BASE}
ARG NAP=0
COPY --from=build /out/ /result/
COPY hello.txt /hello.txt
RUN sleep ${NAP} && ls /result > /listing
"#;

/// How a case kills the build.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// `KILN_FAULT=<spec>`: the process aborts at that point.
    Fault(&'static str),
    /// `SIGKILL` after this fraction of a reference build's duration.
    After(f64),
    /// `SIGKILL` as soon as a container is running (with a RUN that sleeps for a while).
    WhileContainerRuns,
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::Fault(spec) => write!(f, "KILN_FAULT={spec}"),
            Kill::After(fraction) => write!(f, "SIGKILL at {:.0}% of a build", fraction * 100.0),
            Kill::WhileContainerRuns => write!(f, "SIGKILL while a container runs"),
        }
    }
}

/// What one case did: whether the build was killed (a timed kill may come too late) and a line
/// for the summary.
struct Outcome {
    killed: bool,
    line: String,
}

/// Everything the cases of one test share.
struct Harness {
    fixture: Fixture,
    runtime: CountingRuntime,
    context: tempfile::TempDir,
    /// Working directory of kiln processes (so a core dump could never land in the checkout).
    scratch: tempfile::TempDir,
    /// The digest of the busybox fixture's only layer: the exported image must start with it.
    base_layer: String,
    /// Content of `src/a.txt`, changed per warm case so that the steps after it run again.
    generation: u32,
    /// `sleep`'s argument in the case that kills kiln while a container runs: long enough that
    /// only the container's dying with kiln ends it, and unique to this harness, so that its
    /// process can be found by its command line (other tests may run at the same time).
    nap: String,
}

impl Harness {
    fn new() -> Harness {
        let fixture = Fixture::start().unwrap();
        let base_layer = testkit::busybox_image().unwrap().layers[0].0.digest.to_string();
        let context = tempfile::tempdir().unwrap();
        write(context.path(), "Dockerfile", DOCKERFILE);
        write(context.path(), "src/b.txt", "bee\n");
        write(context.path(), "hello.txt", "hello\n");
        let mut harness = Harness {
            fixture,
            runtime: CountingRuntime::new().unwrap(),
            context,
            scratch: tempfile::tempdir().unwrap(),
            base_layer,
            generation: 0,
            nap: {
                static HARNESSES: AtomicU32 = AtomicU32::new(0);
                let n = HARNESSES.fetch_add(1, Ordering::Relaxed);
                format!("4{n}.{}", std::process::id())
            },
        };
        harness.next_generation();
        harness
    }

    /// Edits the context: the COPY of `src/` and everything after it must run again.
    fn next_generation(&mut self) {
        self.generation += 1;
        write(self.context.path(), "src/a.txt", &self.a_text());
    }

    fn a_text(&self) -> String {
        format!("generation {}\n", self.generation)
    }

    /// `kiln <args>` on `root`, with core dumps off (an abort must not leave a core file).
    fn kiln(&self, root: &Path, args: &[&str]) -> Command {
        kiln_without_core_dumps(root, self.runtime.path(), self.scratch.path(), args)
    }

    /// The build every case runs, writing into `out` (`image.tar` and `rootfs/`).
    fn build(&self, root: &Path, out: &Path, nap: Option<&str>) -> Command {
        let base = format!("BASE={}", self.fixture.busybox);
        let oci = format!(
            "type=oci,dest={},name=crash/test:v1",
            out.join("image.tar").display()
        );
        let local = format!("type=local,dest={}", out.join("rootfs").display());
        let nap = format!("NAP={}", nap.unwrap_or("0"));
        let context = self.context.path().to_str().unwrap();
        let args = [
            "build",
            "--progress=plain",
            "--build-arg",
            &base,
            "--build-arg",
            &nap,
            "--output",
            &oci,
            "--output",
            &local,
            context,
        ];
        self.kiln(root, &args)
    }

    /// Runs the build to completion and checks its outputs.
    fn build_ok(&self, root: &Path, out: &Path) -> Result<Duration, String> {
        let start = Instant::now();
        let output = self.build(root, out, None).output().unwrap();
        let took = start.elapsed();
        if !output.status.success() {
            return Err(format!("build failed:\n{}", text(&output.stderr)));
        }
        self.verify_outputs(out)?;
        Ok(took)
    }

    fn verify_outputs(&self, out: &Path) -> Result<(), String> {
        let rootfs = out.join("rootfs");
        let numbers: String = (1..=2000).map(|n| format!("{n}\n")).collect();
        let expected = [
            ("result/built.txt", "built\n".to_string()),
            ("result/numbers.txt", numbers),
            ("result/joined.txt", format!("{}bee\n", self.a_text())),
            ("hello.txt", "hello\n".to_string()),
            ("listing", "built.txt\njoined.txt\nnumbers.txt\n".to_string()),
        ];
        for (path, want) in expected {
            let got = std::fs::read_to_string(rootfs.join(path)).map_err(|e| format!("read {path}: {e}"))?;
            if got != want {
                return Err(format!("{path} holds {got:?}, expected {want:?}"));
            }
        }
        let layers = inspect(&out.join("image.tar"))?;
        if layers.len() != 4 || layers[0] != self.base_layer {
            return Err(format!(
                "image layers {layers:?}: expected 4, the first {}",
                self.base_layer
            ));
        }
        Ok(())
    }

    /// `kiln debug check` must pass; then nothing of the killed build may be left.
    fn check(&self, root: &Path) -> Result<(), String> {
        let output = self.kiln(root, &["debug", "check"]).output().unwrap();
        let stdout = text(&output.stdout);
        if !output.status.success() || !stdout.contains("no problems found") {
            return Err(format!(
                "kiln debug check failed ({}):\n{stdout}{}",
                output.status,
                text(&output.stderr)
            ));
        }
        let containers = runc_list(root);
        if !containers.is_empty() {
            return Err(format!("containers left after recovery: {containers:?}"));
        }
        let bundles = root.join("executor/bundles");
        if std::fs::read_dir(&bundles).map(|d| d.count()).unwrap_or(0) != 0 {
            return Err(format!("bundles left in {}", bundles.display()));
        }
        if let Some(pid) = process_with_arg(&self.nap) {
            return Err(format!(
                "process {pid} of the killed container (sleep {}) is alive",
                self.nap
            ));
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root_text = root.to_str().unwrap();
        if let Some(line) = mountinfo.lines().find(|l| l.contains(root_text)) {
            return Err(format!("mount left below the state directory: {line}"));
        }
        Ok(())
    }

    /// Runs one case: kill, check, rebuild. Returns a line for the summary.
    fn case(&self, root: &Path, kill: &Kill, reference: Duration) -> Result<Outcome, String> {
        let _reaper = Reaper(root.to_path_buf());
        let out = tempfile::tempdir().unwrap();
        let nap = matches!(kill, Kill::WhileContainerRuns).then_some(self.nap.as_str());
        let mut command = self.build(root, out.path(), nap);
        if let Kill::Fault(spec) = kill {
            command.env("KILN_FAULT", spec);
        }
        // Only a fault's stderr is read (for its message); nothing else may fill a pipe.
        let stderr = match kill {
            Kill::Fault(_) => Stdio::piped(),
            _ => Stdio::null(),
        };
        let child = command.stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        let outcome = match kill {
            Kill::Fault(spec) => {
                let output = child.wait_with_output().unwrap();
                let name = spec.split(':').next().unwrap_or_default();
                let stderr = text(&output.stderr);
                if output.status.signal() != Some(6) || !stderr.contains(&format!("fault point {name} hit")) {
                    return Err(format!(
                        "expected an abort at {spec}, got {}:\n{stderr}",
                        output.status
                    ));
                }
                (true, format!("aborted at {spec}"))
            }
            Kill::After(fraction) => {
                let delay = reference.mul_f64(*fraction);
                kill_after(child, delay)
            }
            Kill::WhileContainerRuns => (true, kill_while_container_runs(child, root, &self.nap)?),
        };
        // A killed export leaves its temporary file, never a partial tarball under the name.
        let tar = out.path().join("image.tar");
        if tar.exists() {
            inspect(&tar).map_err(|e| format!("after the kill, {e}"))?;
        }
        self.check(root)?;
        let took = self.build_ok(root, out.path())?;
        Ok(Outcome {
            killed: outcome.0,
            line: format!("{}; rebuilt in {took:?}", outcome.1),
        })
    }
}

/// Kills `child` with SIGKILL after `delay`; says whether it was still running.
fn kill_after(mut child: Child, delay: Duration) -> (bool, String) {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return (false, format!("finished ({status}) before {delay:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    match status.signal() {
        Some(9) => (true, format!("SIGKILL after {delay:?}")),
        _ => (false, format!("finished ({status}) before {delay:?}")),
    }
}

/// How long a container may outlive the kiln that ran it (its watchdog kills it within
/// milliseconds).
const CONTAINER_DEATH: Duration = Duration::from_secs(5);

/// Waits until a container runs, kills kiln with SIGKILL and checks that the container died
/// with it, and that runc then removed it as after any run.
fn kill_while_container_runs(mut child: Child, root: &Path, nap: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if process_with_arg(nap).is_some() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the build ended ({status}) before its container ran"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no container ran within 60s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    if status.signal() != Some(9) {
        return Err(format!("kiln ended with {status} instead of being killed"));
    }
    let killed = Instant::now();
    while let Some(pid) = process_with_arg(nap) {
        if killed.elapsed() > CONTAINER_DEATH {
            return Err(format!(
                "the container's process {pid} outlived kiln by {CONTAINER_DEATH:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let died = killed.elapsed();
    // runc exits once it has removed the container; give it the same time.
    while !runc_list(root).is_empty() {
        if killed.elapsed() > CONTAINER_DEATH {
            return Err(format!(
                "runc did not remove the killed build's container: {:?}",
                runc_list(root)
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(format!(
        "SIGKILL while a container ran; it died {died:?} later, and runc removed it"
    ))
}

/// `skopeo inspect` of an OCI tarball: its layer digests.
fn inspect(tar: &Path) -> Result<Vec<String>, String> {
    let output = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", tar.display()))
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(format!(
            "skopeo inspect {} failed: {}",
            tar.display(),
            text(&output.stderr)
        ));
    }
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(info["Layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect())
}

/// Runs `cases`, each on a fresh state directory or all in turn on one warm directory (edited
/// context per case), and fails listing every case that failed. Returns how many cases killed
/// their build (rather than coming too late).
fn run_cases(harness: &mut Harness, fresh: &[Kill], warm: &[Kill]) -> usize {
    // Complete builds first: the reference duration, and proof the setup works at all. The
    // faster of two, as the very first build of a process is slower than the ones after it.
    let cold = (0..2)
        .map(|_| {
            let root = TempRoot::new().unwrap();
            let out = tempfile::tempdir().unwrap();
            harness
                .build_ok(root.path(), out.path())
                .unwrap_or_else(|e| panic!("reference build: {e}"))
        })
        .min()
        .unwrap_or_default();
    let mut report = vec![format!("reference build (fresh state): {cold:?}")];
    let mut failures = Vec::new();
    let mut killed = 0;
    for kill in fresh {
        let root = TempRoot::new().unwrap();
        match harness.case(root.path(), kill, cold) {
            Ok(outcome) => {
                killed += usize::from(outcome.killed);
                report.push(format!("fresh, {kill}: {}", outcome.line));
            }
            Err(e) => failures.push(format!("fresh, {kill}: {e}")),
        }
    }
    if !warm.is_empty() {
        let root = TempRoot::new().unwrap();
        let out = tempfile::tempdir().unwrap();
        harness.build_ok(root.path(), out.path()).unwrap();
        // A warm build reruns everything from the edited context on; again the faster of two.
        let warm_duration = (0..2)
            .map(|_| {
                harness.next_generation();
                harness.build_ok(root.path(), out.path()).unwrap()
            })
            .min()
            .unwrap_or_default();
        report.push(format!("reference build (warm state): {warm_duration:?}"));
        for kill in warm {
            harness.next_generation();
            match harness.case(root.path(), kill, warm_duration) {
                Ok(outcome) => {
                    killed += usize::from(outcome.killed);
                    report.push(format!("warm, {kill}: {}", outcome.line));
                }
                Err(e) => failures.push(format!("warm, {kill}: {e}")),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    killed
}

#[test]
fn killed_at_pull_and_snapshot_points_the_store_stays_consistent() {
    testkit::require_privileged();
    let mut harness = Harness::new();
    let fresh = [
        // Blobs: the manifest (1st), the config (2nd) and the layer (3rd) of the pull.
        Kill::Fault("ingest.before-rename"),
        Kill::Fault("ingest.before-rename:3"),
        Kill::Fault("ingest.after-rename:2"),
        Kill::Fault("ingest.after-rename:3"),
        // Applying the base layer: half-way through its entries, done but not committed,
        // committed but not recorded, blob recorded but not indexed.
        Kill::Fault("layer.apply.entry:150"),
        Kill::Fault("pull.applied"),
        Kill::Fault("pull.committed"),
        Kill::Fault("pull.blob-recorded"),
        // Snapshots of the steps (the 1st is the base layer, which is never mounted).
        Kill::Fault("snapshot.prepared"),
        Kill::Fault("snapshot.prepared:4"),
        Kill::Fault("snapshot.mounted:2"),
        Kill::Fault("snapshot.written:3"),
        Kill::Fault("snapshot.before-commit:2"),
        Kill::Fault("snapshot.after-commit:5"),
    ];
    assert_eq!(run_cases(&mut harness, &fresh, &[]), fresh.len());
}

#[test]
fn killed_at_run_cache_and_export_points_the_store_stays_consistent() {
    testkit::require_privileged();
    let mut harness = Harness::new();
    let fresh = [
        Kill::Fault("exec.before-run"),
        Kill::Fault("exec.after-run:2"),
        Kill::Fault("cache.before-put:3"),
        Kill::Fault("cache.after-put:2"),
        // Export: the layer blobs computed (one, then all four), the tarball half-written,
        // complete but not renamed; a blob of the export written but not yet renamed.
        Kill::Fault("export.layer:2"),
        Kill::Fault("export.blob:3"),
        Kill::Fault("export.before-rename"),
        Kill::Fault("ingest.before-rename:5"),
    ];
    let warm = [
        Kill::Fault("exec.after-run"),
        Kill::Fault("snapshot.after-commit"),
        Kill::Fault("cache.after-put:3"),
        Kill::Fault("export.layer:4"),
        Kill::Fault("ingest.after-rename:2"),
        Kill::WhileContainerRuns,
    ];
    assert_eq!(run_cases(&mut harness, &fresh, &warm), fresh.len() + warm.len());
}

#[test]
fn killed_with_sigkill_at_any_moment_the_store_stays_consistent() {
    testkit::require_privileged();
    let mut harness = Harness::new();
    // Kill times as fractions of a complete build, so they spread over it on any machine.
    let fresh: Vec<Kill> = (0..17).map(|i| Kill::After(0.02 + 0.06 * f64::from(i))).collect();
    let warm: Vec<Kill> = (0..10).map(|i| Kill::After(0.05 + 0.1 * f64::from(i))).collect();
    // A kill that comes after the build finished proves nothing; most must land.
    let killed = run_cases(&mut harness, &fresh, &warm);
    assert!(
        killed * 2 >= fresh.len() + warm.len(),
        "only {killed} of {} timed kills hit a running build",
        fresh.len() + warm.len()
    );
}

#[test]
fn check_fails_on_a_corrupted_store_and_says_what_to_do() {
    testkit::require_privileged();
    let harness = Harness::new();
    let root = TempRoot::new().unwrap();
    let out = tempfile::tempdir().unwrap();
    harness.build_ok(root.path(), out.path()).unwrap();
    harness.check(root.path()).unwrap();

    let blob = root
        .path()
        .join("blobs/sha256")
        .join(harness.base_layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let output = harness.kiln(root.path(), &["debug", "check"]).output().unwrap();
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("- blob {} is corrupt", harness.base_layer)),
        "{stdout}"
    );
    assert!(stdout.contains("what to do: delete the blob file"), "{stdout}");
    assert!(stdout.contains("1 problem(s) found"), "{stdout}");
}
