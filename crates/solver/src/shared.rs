//! Work shared by many waiters, counted: [`Shared`].
//!
//! A `Shared<T>` is one piece of work (computing a cache map, a cache key, running an op) that
//! any number of waiters may ask for. The first waiter polls it once itself, and work that is not
//! ready at once goes on as a task of its own; later waiters wait for it; everyone gets a clone of
//! its value. The task belongs to no waiter: a
//! waiter that goes away (its future dropped, say because its build was cancelled) only leaves
//! the count, and the task is aborted only when the last waiter has left. The next waiter after
//! that starts it again.
//!
//! States of a slot:
//!
//! ```text
//!   Idle ──first waiter──► Running{generation, waiters} ──task ends──► Done(value)
//!    ▲                           │
//!    └──last waiter leaves───────┘ (the task is aborted)
//! ```
//!
//! A task that panics leaves the slot `Idle` and its waiters get [`Panicked`]. A task of an
//! aborted generation that still manages to finish stores its value only if no newer generation
//! has started meanwhile, so a value is never lost and never overwrites running work.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use tokio::sync::watch;

use crate::BoxFuture;

/// The shared task ended without a value: it panicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Panicked;

/// One piece of work shared by counted waiters.
pub(crate) struct Shared<T> {
    slot: Mutex<Slot<T>>,
}

enum Slot<T> {
    Idle,
    Running(Running<T>),
    Done(T),
}

struct Running<T> {
    generation: u64,
    waiters: usize,
    done: watch::Receiver<Option<T>>,
    /// `None` while the starting waiter polls the work itself.
    abort: Option<tokio::task::AbortHandle>,
}

/// Distinguishes the tasks one slot has had, so a waiter of an aborted task never touches the
/// count of its successor.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// How deeply first polls of shared work are nested on this thread (see `Shared::first_poll`).
    static INLINE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Beyond this depth new work starts as a task at once.
const MAX_INLINE_DEPTH: usize = 16;

impl<T: Clone + Send + Sync + 'static> Shared<T> {
    pub(crate) fn new() -> Shared<T> {
        Shared {
            slot: Mutex::new(Slot::Idle),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the value, starting the work with `start` if nobody is doing it. `start` is
    /// called at most once, and only when this waiter starts the task.
    pub(crate) async fn get<F>(self: &Arc<Self>, start: F) -> Result<T, Panicked>
    where
        F: FnOnce() -> BoxFuture<'static, T>,
    {
        let (done, generation, sender) = {
            let mut slot = self.lock();
            let claimed = match &mut *slot {
                Slot::Done(value) => return Ok(value.clone()),
                Slot::Running(running) => {
                    running.waiters += 1;
                    (running.done.clone(), running.generation, None)
                }
                Slot::Idle => {
                    let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
                    let (sender, done) = watch::channel(None);
                    (done, generation, Some(sender))
                }
            };
            if let (done, generation, Some(_)) = &claimed {
                *slot = Slot::Running(Running {
                    generation: *generation,
                    waiters: 1,
                    done: done.clone(),
                    abort: None,
                });
            }
            claimed
        };
        let _waiter = Waiter {
            shared: self,
            generation,
        };
        if let Some(sender) = sender
            && let Some(outcome) = self.clone().first_poll(generation, start(), sender)
        {
            return outcome;
        }
        Self::value(done).await
    }

    async fn value(mut done: watch::Receiver<Option<T>>) -> Result<T, Panicked> {
        let value = done.wait_for(Option::is_some).await.ok().and_then(|v| v.clone());
        value.ok_or(Panicked)
    }

    /// Polls new work once in the starting waiter: work that is ready at once (a key already
    /// known, a cache hit) is done without a task of its own, which would cost a wake-up on
    /// another thread. Otherwise the work moves to its task (`None`). Nested inline polls are
    /// bounded, so a long chain of work cannot grow the stack.
    fn first_poll(
        self: Arc<Self>,
        generation: u64,
        mut future: BoxFuture<'static, T>,
        sender: watch::Sender<Option<T>>,
    ) -> Option<Result<T, Panicked>> {
        let depth = INLINE_DEPTH.get();
        if depth < MAX_INLINE_DEPTH {
            INLINE_DEPTH.set(depth + 1);
            let first = AssertUnwindSafe(future.as_mut()).catch_unwind().now_or_never();
            INLINE_DEPTH.set(depth);
            if let Some(outcome) = first {
                let value = outcome.as_ref().ok().cloned();
                self.finish(generation, outcome.map_err(|_| Panicked), sender);
                return Some(value.ok_or(Panicked));
            }
        }
        let task = tokio::spawn(self.clone().work(generation, future, sender));
        let mut slot = self.lock();
        match &mut *slot {
            Slot::Running(running) if running.generation == generation => {
                running.abort = Some(task.abort_handle());
            }
            // Every waiter left meanwhile: nobody wants the work any more.
            _ => task.abort(),
        }
        None
    }

    /// The task: runs the work, stores its value, wakes the waiters.
    async fn work(
        self: Arc<Self>,
        generation: u64,
        future: BoxFuture<'static, T>,
        sender: watch::Sender<Option<T>>,
    ) {
        let outcome = AssertUnwindSafe(future).catch_unwind().await;
        self.finish(generation, outcome.map_err(|_| Panicked), sender);
    }

    /// Stores the work's value (or forgets a panicked run) and wakes the waiters.
    fn finish(&self, generation: u64, outcome: Result<T, Panicked>, sender: watch::Sender<Option<T>>) {
        let mut slot = self.lock();
        let ours = matches!(&*slot, Slot::Running(r) if r.generation == generation);
        match outcome {
            Ok(value) => {
                if ours || matches!(&*slot, Slot::Idle) {
                    *slot = Slot::Done(value.clone());
                }
                drop(slot);
                // Nobody may be listening any more; that is fine.
                let _ = sender.send(Some(value));
            }
            Err(_) => {
                if ours {
                    *slot = Slot::Idle;
                }
                // Dropping the sender without a value tells the waiters.
            }
        }
    }
}

/// One waiter's place in the count; leaving it (drop) may abort the task.
struct Waiter<'a, T: Clone + Send + Sync + 'static> {
    shared: &'a Arc<Shared<T>>,
    generation: u64,
}

impl<T: Clone + Send + Sync + 'static> Drop for Waiter<'_, T> {
    fn drop(&mut self) {
        let abort = {
            let mut slot = self.shared.lock();
            let last = match &mut *slot {
                Slot::Running(running) if running.generation == self.generation => {
                    running.waiters -= 1;
                    running.waiters == 0
                }
                _ => false,
            };
            if !last {
                return;
            }
            match std::mem::replace(&mut *slot, Slot::Idle) {
                Slot::Running(running) => running.abort,
                _ => None,
            }
        };
        // Outside the lock: aborting may drop the task's future, which may wait on other
        // shared work.
        if let Some(abort) = abort {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn slow(starts: &Arc<AtomicUsize>, drops: &Arc<AtomicUsize>, value: u32) -> BoxFuture<'static, u32> {
        starts.fetch_add(1, Ordering::SeqCst);
        let guard = Counted(drops.clone());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::mem::forget(guard);
            value
        })
    }

    #[tokio::test]
    async fn many_waiters_share_one_task() {
        let shared = Arc::new(Shared::new());
        let (starts, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let waiters = (0..5).map(|i| {
            let shared = shared.clone();
            let (starts, drops) = (starts.clone(), drops.clone());
            async move { shared.get(|| slow(&starts, &drops, i)).await }
        });
        let values = futures_util::future::join_all(waiters).await;
        assert_eq!(values, vec![Ok(0); 5], "everyone gets the first waiter's value");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn leaving_waiter_does_not_stop_the_work_of_others() {
        let shared = Arc::new(Shared::new());
        let (starts, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let leaving = {
            let shared = shared.clone();
            let (starts, drops) = (starts.clone(), drops.clone());
            tokio::spawn(async move { shared.get(|| slow(&starts, &drops, 1)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let staying = {
            let shared = shared.clone();
            let (starts, drops) = (starts.clone(), drops.clone());
            tokio::spawn(async move { shared.get(|| slow(&starts, &drops, 2)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leaving.abort();
        assert_eq!(
            staying.await.unwrap(),
            Ok(1),
            "the work went on for the other waiter"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 1, "and was never restarted");
        assert_eq!(drops.load(Ordering::SeqCst), 0, "nor cancelled");
    }

    #[tokio::test]
    async fn the_last_waiter_leaving_aborts_and_the_next_one_restarts() {
        let shared = Arc::new(Shared::new());
        let (starts, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let first = {
            let shared = shared.clone();
            let (starts, drops) = (starts.clone(), drops.clone());
            tokio::spawn(async move { shared.get(|| slow(&starts, &drops, 1)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let _ = first.await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the work was cancelled");
        let value = shared.get(|| slow(&starts, &drops, 2)).await;
        assert_eq!(value, Ok(2));
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_task_fails_its_waiters_and_can_be_retried() {
        let shared: Arc<Shared<u32>> = Arc::new(Shared::new());
        let value = shared.get(|| Box::pin(async { panic!("boom") })).await;
        assert_eq!(value, Err(Panicked));
        assert_eq!(shared.get(|| Box::pin(async { 7 })).await, Ok(7));
    }
}
