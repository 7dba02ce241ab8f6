//! `kiln du`, `kiln prune` and the automatic garbage collection after builds, through the binary
//! (privileged: real builds with runc over overlayfs and a loopback registry).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use testkit::{CountingRuntime, Fixture, TempRoot};

struct Kiln {
    root: TempRoot,
    runtime: CountingRuntime,
    context: tempfile::TempDir,
    base: String,
}

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
RUN head -c 20000 /dev/zero > /big
ARG FLAVOUR=plain
RUN echo "$FLAVOUR" > /flavour
"#;

/// RUN steps in [`DOCKERFILE`].
const RUNS: usize = 2;

impl Kiln {
    fn new(fixture: &Fixture) -> Kiln {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), DOCKERFILE).unwrap();
        Kiln {
            root: TempRoot::new().unwrap(),
            runtime: CountingRuntime::new().unwrap(),
            context,
            base: format!("BASE={}", fixture.busybox),
        }
    }

    /// Runs `kiln ARGS` with `env`; it must succeed without panicking.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .env("KILN_ROOT", self.root.path())
            .env("KILN_RUNTIME", self.runtime.path())
            .env_remove("KILN_GC_KEEP_STORAGE")
            .args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "kiln panicked:\n{stderr}");
        assert!(output.status.success(), "kiln {args:?} failed:\n{stderr}");
        output
    }

    fn build(&self, env: &[(&str, &str)], flavour: &str) -> Output {
        let flavour = format!("FLAVOUR={flavour}");
        let args = [
            "build",
            "--progress=plain",
            "--build-arg",
            &self.base,
            "--build-arg",
            &flavour,
            self.context.path().to_str().unwrap(),
        ];
        let output = self.run(env, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("WARNING: garbage collection"), "{stderr}");
        output
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(&[], args);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "kiln {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(&[], args).stdout).unwrap()
    }
}

fn records(usage: &Value) -> &Vec<Value> {
    usage["records"].as_array().unwrap()
}

fn u64_of(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a number: {value}"))
}

/// The records of one type.
fn of_type<'a>(usage: &'a Value, kind: &str) -> Vec<&'a Value> {
    records(usage).iter().filter(|r| r["type"] == kind).collect()
}

/// Entries of a directory of the state directory (0 when it does not exist).
fn entries(root: &Path, dir: &str) -> usize {
    std::fs::read_dir(root.join(dir)).map_or(0, |d| d.count())
}

#[test]
fn du_shows_the_cache_and_prune_removes_it() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let kiln = Kiln::new(&fixture);
    // With the default limit (a tenth of the disk), automatic GC leaves a small cache alone.
    kiln.build(&[], "plain");
    kiln.build(&[], "spicy");
    assert_eq!(kiln.runtime.runs(), RUNS + 1);

    let usage = kiln.json(&["du", "--format", "json"]);
    let list = records(&usage);
    // The base image's layer, `/big`, one `/flavour` per build and one log per build.
    assert!(list.len() >= 6, "{usage:#}");
    assert!(list.iter().all(|r| u64_of(&r["size"]) > 0), "{usage:#}");
    let layers = list.iter().filter(|r| r["type"] == "layer").count();
    assert!(layers >= 1, "{usage:#}");
    assert!(
        list.iter()
            .any(|r| r["type"] == "regular" && r["description"].as_str().unwrap().contains("/big"))
    );
    let big = list
        .iter()
        .find(|r| r["description"].as_str().unwrap().contains("/big"))
        .unwrap();
    assert!(u64_of(&big["size"]) >= 20_000);
    assert_eq!(big["shared"], true, "both builds sit on it: {usage:#}");
    let sizes: u64 = list.iter().map(|r| u64_of(&r["size"])).sum();
    let total = u64_of(&usage["total"]);
    assert_eq!(total, sizes + u64_of(&usage["other_content"]["size"]));
    assert!(
        u64_of(&usage["other_content"]["blobs"]) >= 2,
        "manifest and config: {usage:#}"
    );
    // The logs are records named by build id; the newest, which `kiln logs` shows, stays.
    let logs = of_type(&usage, "build.log");
    assert_eq!(logs.len(), 2, "{usage:#}");
    let newest = logs
        .iter()
        .find(|r| r["in_use"] == true)
        .expect("the newest log is in use");
    assert_eq!(newest["reclaimable"], false);
    let newest_id = newest["id"].as_str().unwrap().to_string();
    let newest_size = u64_of(&newest["size"]);
    let file = kiln.root.path().join("logs").join(format!("{newest_id}.jsonl"));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), newest_size);
    kiln.run(&[], &["logs", &newest_id]);
    assert_eq!(u64_of(&usage["reclaimable"]), total - newest_size);

    let table = kiln.text(&["du"]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains("RECLAIMABLE") && table.contains("LAST ACCESSED"),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(" ago")).count(),
        list.len(),
        "{table}"
    );
    assert!(table.contains("\nTotal:"), "{table}");
    let verbose = kiln.text(&["du", "--verbose"]);
    assert_eq!(verbose.matches("Description:").count(), list.len(), "{verbose}");
    let field = |key: &str, value: &str| format!("{key:<15} {value}\n");
    assert_eq!(
        verbose.matches(&field("Type:", "build.log")).count(),
        2,
        "{verbose}"
    );
    assert!(verbose.contains(&field("ID:", &newest_id)), "{verbose}");
    let filtered = kiln.json(&["du", "--format", "json", "--filter", "type=layer"]);
    assert_eq!(records(&filtered).len(), layers);
    let filtered = kiln.json(&["du", "--format", "json", "--filter", &format!("id={newest_id}")]);
    assert_eq!(records(&filtered).len(), 1);

    // Everything was used just now.
    let report = kiln.json(&["prune", "--keep-duration", "1h", "--format", "json"]);
    assert_eq!(report["removed"], Value::Array(Vec::new()), "{report:#}");
    assert_eq!(u64_of(&report["reclaimed"]), 0);
    assert_eq!(records(&kiln.json(&["du", "--format", "json"])).len(), list.len());

    // The default prune removes build results and keeps the base image and the build logs.
    let text = kiln.text(&["prune"]);
    assert!(text.contains("\nTotal:"), "{text}");
    let usage = kiln.json(&["du", "--format", "json"]);
    assert!(!of_type(&usage, "layer").is_empty());
    assert_eq!(of_type(&usage, "build.log").len(), 2, "{usage:#}");
    assert_eq!(
        of_type(&usage, "layer").len() + 2,
        records(&usage).len(),
        "{usage:#}"
    );

    // `--all` takes everything else, logs but the newest included.
    let before = u64_of(&usage["total"]);
    let report = kiln.json(&["prune", "--all", "--format", "json"]);
    assert_eq!(u64_of(&report["reclaimed"]), before - newest_size, "{report:#}");
    let usage = kiln.json(&["du", "--format", "json"]);
    assert_eq!(records(&usage).len(), 1, "{usage:#}");
    assert_eq!(records(&usage)[0]["id"], newest_id.as_str());
    assert_eq!(u64_of(&usage["total"]), newest_size, "{usage:#}");
    assert_eq!(entries(kiln.root.path(), "snapshots"), 0);
    assert_eq!(entries(kiln.root.path(), "blobs/sha256"), 0);
    assert_eq!(entries(kiln.root.path(), "logs"), 1);

    // Nothing is cached any more: every step runs again, and the build works.
    kiln.build(&[], "plain");
    assert_eq!(kiln.runtime.runs(), 2 * RUNS + 1);
    assert!(!records(&kiln.json(&["du", "--format", "json"])).is_empty());
}

#[test]
fn automatic_gc_keeps_the_state_directory_under_its_limit() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let kiln = Kiln::new(&fixture);
    let tiny = [("KILN_GC_KEEP_STORAGE", "1")];
    kiln.build(&tiny, "plain");
    assert_eq!(kiln.runtime.runs(), RUNS);
    // One byte is less than anything: the whole cache went after the build, all but the log
    // of the build itself (still being written then, and the newest).
    assert_eq!(entries(kiln.root.path(), "snapshots"), 0);
    assert_eq!(entries(kiln.root.path(), "blobs/sha256"), 0);
    let usage = kiln.json(&["du", "--format", "json"]);
    assert_eq!(records(&usage).len(), 1, "{usage:#}");
    assert_eq!(of_type(&usage, "build.log").len(), 1, "{usage:#}");
    let first_log = records(&usage)[0]["id"].clone();

    // The next build pulls and runs everything again, and still works; its GC counts the
    // first build's log too, and removes it.
    kiln.build(&tiny, "plain");
    assert_eq!(kiln.runtime.runs(), 2 * RUNS);
    let usage = kiln.json(&["du", "--format", "json"]);
    assert_eq!(records(&usage).len(), 1, "{usage:#}");
    assert_ne!(records(&usage)[0]["id"], first_log);
    assert_eq!(entries(kiln.root.path(), "logs"), 1);

    // `--gc-keep-storage 0` turns collection off; the flag wins over the environment.
    kiln.run(
        &tiny,
        &[
            "--gc-keep-storage",
            "0",
            "build",
            "--progress=plain",
            "--build-arg",
            &kiln.base,
            kiln.context.path().to_str().unwrap(),
        ],
    );
    assert_eq!(kiln.runtime.runs(), 3 * RUNS);
    assert!(entries(kiln.root.path(), "snapshots") > 0);
}

#[test]
fn a_prune_killed_midway_leaves_a_consistent_store() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let kiln = Kiln::new(&fixture);
    kiln.build(&[], "plain");
    for point in ["gc.records-removed", "gc.snapshots-removed"] {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", kiln.root.path())
            .env("KILN_FAULT", point)
            .args(["prune", "--all"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(&format!("fault point {point} hit")),
            "{point}: {stderr}"
        );
        // Opening the store removes the directories whose records are gone; the check agrees.
        let check = kiln.run(&[], &["debug", "check"]);
        assert!(
            String::from_utf8_lossy(&check.stdout).contains("no problems found"),
            "{point}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let usage = kiln.json(&["du", "--format", "json", "--filter", "type!=build.log"]);
        assert_eq!(records(&usage).len(), 0, "{point}: {usage:#}");
        assert_eq!(entries(kiln.root.path(), "snapshots"), 0, "{point}");
        // The blobs left behind are garbage that the next prune removes.
        kiln.run(&[], &["prune", "--all"]);
        assert_eq!(entries(kiln.root.path(), "blobs/sha256"), 0, "{point}");
        kiln.build(&[], "plain");
    }
    assert_eq!(kiln.runtime.runs(), 3 * RUNS);
}
