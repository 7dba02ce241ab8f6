//! Cancelling a run: the container's processes get `SIGTERM`, and `SIGKILL` after a grace
//! period if they ignore it; either way the container is gone when the drop returns.

use std::time::{Duration, Instant};

use executor::Executor;

use super::{Capture, Fixture, sh};

/// The grace period between `SIGTERM` and `SIGKILL` (`runc::STOP_GRACE`, which is private).
const GRACE: Duration = Duration::from_secs(1);

/// Starts `script`, waits until it printed `started`, then drops the run; returns how long the
/// drop took and what the script printed.
async fn cancel(fx: &Fixture, script: &str) -> (Duration, String) {
    let spec = sh(script);
    let sink = Capture::default();
    let mut run = Box::pin(fx.executor.run(&fx.rootfs, &spec, &sink));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let polled = tokio::time::timeout(Duration::from_millis(20), &mut run).await;
        assert!(polled.is_err(), "the run ended by itself: {polled:?}");
        if sink.stdout.lock().unwrap().starts_with(b"started\n") {
            break;
        }
        assert!(Instant::now() < deadline, "the script never started");
    }
    let start = Instant::now();
    drop(run);
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&sink.take().0).into_owned();
    (took, stdout)
}

fn running(pattern: &str) -> String {
    let out = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cancel_sends_sigterm_first() {
    let fx = Fixture::new();
    // The shell is the container's init: it gets SIGTERM only because it handles it.
    let (took, _) = cancel(
        &fx,
        "trap 'echo stopping > /stopped; exit 0' TERM; echo started; while :; do sleep 1; done",
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(fx.rootfs.join("stopped")).unwrap(),
        "stopping\n",
        "the TERM handler did not run"
    );
    assert!(took < GRACE, "stopping took {took:?}");
}

#[tokio::test]
async fn cancel_kills_what_ignores_sigterm_after_the_grace_period() {
    let fx = Fixture::new();
    let (took, _) = cancel(&fx, "trap '' TERM; echo started; sleep 3019; echo survived").await;
    assert!(took >= GRACE, "SIGKILL came before the grace period: {took:?}");
    assert!(took < GRACE + Duration::from_secs(4), "stopping took {took:?}");
    assert_eq!(running("^sleep 3019$"), "", "the container's process survived");
}
