//! Scheduling seen from outside: independent RUN steps overlap by default and not under
//! `--max-parallelism 1`; Ctrl-C stops a build at once, kills its containers and leaves a
//! store the next build (and `kiln debug check`) is happy with.

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{BASE, Harness, process_with_arg, runc_list};
use serde_json::Value;

/// Three stages that each sleep, and a last stage that needs all three.
const FAN_OUT: &str = "FROM @BASE@ AS a\nRUN sleep 1 && echo a > /a\n\
FROM @BASE@ AS b\nRUN sleep 1 && echo b > /b\n\
FROM @BASE@ AS c\nRUN sleep 1 && echo c > /c\n\
FROM @BASE@\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n";

/// (start, end) times of the `RUN sleep` steps of a `--progress=json` build log, in seconds.
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
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(FAN_OUT);
    let path = ctx.path().to_str().unwrap();

    let output = h.kiln.run(&["build", "--progress=json", path]);
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
        "--progress=json",
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
    let h = Harness::start();
    let ctx = h.context();
    // A sleep no other test uses, so its process can be looked for.
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo started && sleep 41\n"));
    let root = h.kiln.root.path();
    let mut child = spawn_build(&h.kiln, ctx.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while runc_list(root).is_empty() || process_with_arg("41").is_none() {
        assert!(Instant::now() < deadline, "the container never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "kiln exited before its container ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, stderr, took) = interrupt(&mut child, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
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

/// A loopback TCP listener that accepts connections and never answers; `connected` turns true
/// at the first connection.
fn silent_registry() -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            flag.store(true, Ordering::SeqCst);
            // Kept open, unanswered, until the test process ends.
            held.push(stream);
        }
    });
    (host, connected)
}

/// Starts `kiln build` of `context` in the state directory of `kiln`.
fn spawn_build(kiln: &crate::common::Kiln, context: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", kiln.root.path())
        .env("KILN_RUNTIME", kiln.runtime.path())
        .args(["build", "--progress=plain", context.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `kiln build` of a Dockerfile whose base image is on a registry that never answers
/// (`FROM <host>/stuck:latest`, then `rest`) and returns once kiln has connected to it: from
/// then on the build waits (holding the state directory) for an answer that never comes.
fn spawn_build_stuck_on_registry(
    kiln: &crate::common::Kiln,
    context: &std::path::Path,
    rest: &str,
) -> std::process::Child {
    let (host, connected) = silent_registry();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {host}/stuck:latest\n{rest}"),
    )
    .unwrap();
    let mut child = spawn_build(kiln, context);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !connected.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "kiln never asked the registry");
        assert!(child.try_wait().unwrap().is_none(), "kiln exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Sends `signal` (`-INT`, `-TERM`) to `child`; returns its exit code, standard error and how
/// long it took to exit.
fn interrupt(child: &mut std::process::Child, signal: &str) -> (Option<i32>, String, Duration) {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kiln did not stop within 20s of kill {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr, sent.elapsed())
}

#[test]
fn signals_stop_a_build_waiting_for_the_state_directory() {
    testkit::require_privileged();
    let kiln = crate::common::Kiln::new();
    let context = tempfile::tempdir().unwrap();
    // `kiln debug llb` holds the state directory while it waits for the registry, and hosts no
    // other build (a `kiln build` would: see `daemon::a_second_build_joins_…`).
    let (host, connected) = silent_registry();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {host}/stuck:latest\n"),
    )
    .unwrap();
    let mut holder = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", kiln.root.path())
        .env("KILN_RUNTIME", kiln.runtime.path())
        .args(["debug", "llb", context.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !connected.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "kiln never asked the registry");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The build waits for the lock (synchronously, in the kernel) until interrupted.
    let mut waiter = spawn_build(&kiln, context.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(waiter.try_wait().unwrap().is_none(), "the build did not wait");
    let (code, stderr, took) = interrupt(&mut waiter, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("waiting for another kiln process"), "{stderr}");
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    let (code, stderr, _) = interrupt(&mut holder, "-INT");
    assert_eq!(code, Some(130), "{stderr}");

    // A build that joined another one is interrupted like any build.
    let mut holder = spawn_build_stuck_on_registry(&kiln, context.path(), "");
    let mut guest = spawn_build(&kiln, context.path());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        guest.try_wait().unwrap().is_none(),
        "the guest did not wait for the registry"
    );
    let (code, stderr, took) = interrupt(&mut guest, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("joining the build that holds"), "{stderr}");
    assert!(took < Duration::from_secs(3), "stopping took {took:?}");
    let (code, stderr, _) = interrupt(&mut holder, "-INT");
    assert_eq!(code, Some(130), "{stderr}");
}

#[test]
fn signals_stop_a_build_stuck_resolving_metadata() {
    testkit::require_privileged();
    let kiln = crate::common::Kiln::new();
    let context = tempfile::tempdir().unwrap();
    for signal in ["-INT", "-TERM"] {
        let mut child = spawn_build_stuck_on_registry(&kiln, context.path(), "RUN true\n");
        // Resolving metadata now waits for an answer that never comes.
        std::thread::sleep(Duration::from_millis(200));
        let (code, stderr, took) = interrupt(&mut child, signal);
        assert_eq!(code, Some(130), "kill {signal}: {stderr}");
        assert!(stderr.contains("load metadata for"), "{stderr}");
        assert!(
            took < Duration::from_secs(3),
            "kill {signal}: stopping took {took:?}"
        );
    }
}
