//! File work off the async threads, without breaking the promise that a dropped run has
//! cleaned up when its drop returns.

use std::sync::mpsc;

use crate::{Error, Result};

/// Runs `work` on tokio's blocking thread pool and returns what it returned.
///
/// If the returned future is dropped before `work` has ended, the drop waits for it and drops
/// its result there, so whatever `work` creates and its result cleans up on drop (a bundle
/// directory, say) is gone when the caller's drop returns, as if `work` had run inline. The
/// wait is as long as `work`: meant for bounded file work, not for waiting on processes.
pub(crate) async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let mut result = Pending(Some(receiver));
    let task = tokio::task::spawn_blocking(move || {
        // Fails only when the future was dropped and its drop already stopped waiting, which
        // it does not: the drop waits until this sends or the closure is gone.
        let _ = sender.send(work());
    });
    let joined = task.await;
    let received = result.0.take().and_then(|r| r.try_recv().ok());
    match (joined, received) {
        (Ok(()), Some(value)) => Ok(value),
        (Err(e), _) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        (Err(source), _) => Err(Error::BlockingPool {
            source: std::io::Error::other(source),
        }),
        (Ok(()), None) => Err(Error::BlockingPool {
            source: std::io::Error::other("the blocking task ended without a result"),
        }),
    }
}

/// The result of work still running on the blocking pool; dropping this waits for it.
struct Pending<T>(Option<mpsc::Receiver<T>>);

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if let Some(receiver) = self.0.take() {
            // Returns the value when the work is done (dropped right here, with its cleanup),
            // or an error when the work's closure is gone without one (it panicked, or the
            // runtime shut down before running it).
            drop(receiver.recv());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Sets its flag when dropped.
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn returns_the_value() {
        assert_eq!(on_blocking_pool(|| 6 * 7).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_dropped_future_waits_for_the_work_and_drops_its_result() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let future = on_blocking_pool(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag
        });
        // Started, then given up on while the work sleeps.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), future)
                .await
                .is_err()
        );
        assert!(
            dropped.load(Ordering::SeqCst),
            "the result was not dropped before the drop returned"
        );
    }
}
