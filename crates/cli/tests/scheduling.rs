//! Scheduling seen from outside: independent RUN steps overlap by default and not under
//! `--max-parallelism 1`; Ctrl-C stops a build at once, kills its containers and leaves a
//! store the next build (and `kiln debug check`) is happy with.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BASE, Harness, process_with_arg, runc_list};
use serde_json::Value;

/// Three stages that each sleep, and a last stage that needs all three.
const FAN_OUT: &str = "FROM @BASE@ AS a\nRUN sleep 1 && echo a > /a\n\
FROM @BASE@ AS b\nRUN sleep 1 && echo b > /b\n\
FROM @BASE@ AS c\nRUN sleep 1 && echo c > /c\n\
FROM @BASE@\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n";

/// (start, end) times of the `RUN sleep` steps of a rawjson build log, in seconds.
fn sleep_spans(stderr: &str) -> Vec<(f64, f64)> {
    let mut starts: HashMap<String, f64> = HashMap::new();
    let mut spans = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let event: Value = serde_json::from_str(line).unwrap();
        let is_sleep = event["name"].as_str().is_some_and(|n| n.contains("RUN sleep"));
        let vertex = event["vertex"].as_str().unwrap_or_default().to_string();
        let time = event["time"].as_f64().unwrap();
        match event["type"].as_str() {
            Some("started") if is_sleep => {
                starts.insert(vertex, time);
            }
            Some("completed") if is_sleep => spans.push((starts[&vertex], time)),
            _ => {}
        }
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    spans
}

#[test]
fn independent_runs_overlap_unless_max_parallelism_forbids() {
    let Some(h) = Harness::start() else { return };
    let ctx = h.context();
    ctx.dockerfile(FAN_OUT);
    let path = ctx.path().to_str().unwrap();

    let output = h.kiln.run(&["build", "--progress=rawjson", path]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let spans = sleep_spans(&stderr);
    assert_eq!(spans.len(), 3, "{stderr}");
    // On two cores, all three sleeping steps run at once: each starts before any ends.
    let first_end = spans.iter().map(|s| s.1).fold(f64::MAX, f64::min);
    assert!(
        spans.iter().all(|s| s.0 < first_end),
        "the sleeps did not overlap: {spans:?}"
    );

    let output = h.kiln.run(&[
        "build",
        "--progress=rawjson",
        "--no-cache",
        "--max-parallelism",
        "1",
        path,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let spans = sleep_spans(&stderr);
    assert_eq!(spans.len(), 3, "{stderr}");
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two steps ran at once under --max-parallelism 1: {spans:?}"
        );
    }

    let bad = h.kiln.run(&["build", "--max-parallelism", "0", path]);
    assert!(!bad.status.success());
}

#[test]
fn ctrl_c_stops_the_build_and_its_containers() {
    let Some(h) = Harness::start() else { return };
    let ctx = h.context();
    // A sleep no other test uses, so its process can be looked for.
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo started && sleep 41\n"));
    let root = h.kiln.root.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", root)
        .env("KILN_RUNTIME", h.kiln.runtime.path())
        .args(["build", "--progress=plain", ctx.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while runc_list(root).is_empty() || process_with_arg("41").is_none() {
        assert!(Instant::now() < deadline, "the container never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "kiln exited before its container ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(20),
            "kiln did not stop within 20s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        interrupted.elapsed()
    );
    assert_eq!(runc_list(root), Vec::<String>::new(), "containers left");
    assert_eq!(process_with_arg("41"), None, "the container's process is alive");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(root.to_str().unwrap()),
        "mounts left under the state directory"
    );

    // The store is consistent, and the next build works.
    let check = h.kiln.run(&["debug", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo finished > /done\n"));
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("done"), "finished\n");
}
