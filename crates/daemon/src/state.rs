//! The daemon's state: the engine, the defaults of every build, the copies of clients'
//! directories, and the register of running builds that a shutdown cancels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{CacheBackend, CacheExport, Engine};
use tonic::Status;

use crate::Config;

/// How long a shutdown waits for cancelled builds to release what they hold.
const UNWIND_LIMIT: Duration = Duration::from_secs(15);

/// The daemon's state: the engine, the defaults of every build, and the builds running.
pub struct Daemon {
    pub(crate) engine: Arc<Engine>,
    pub(crate) cache_from: Vec<CacheBackend>,
    pub(crate) cache_to: Vec<CacheExport>,
    /// The copies of clients' directories.
    pub(crate) mirrors: crate::sync::Mirrors,
    /// Outputs waiting for their clients' file descriptors.
    pub(crate) fds: Arc<crate::fds::Slots>,
    pub(crate) started: Instant,
    next_build: AtomicU64,
    running: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    /// Counts running builds; a shutdown waits for it to reach 0.
    count: tokio::sync::watch::Sender<usize>,
    /// Set by a shutdown: no build starts after it.
    closing: std::sync::atomic::AtomicBool,
}

/// Unregisters a build when its task ends, however it ends.
pub(crate) struct Running {
    daemon: Arc<Daemon>,
    id: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.daemon.running.lock() {
            running.remove(&self.id);
        }
        self.daemon.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Daemon {
    /// A daemon serving `engine` with `config`'s build defaults.
    pub fn new(engine: Arc<Engine>, config: &Config) -> Daemon {
        Daemon {
            engine,
            cache_from: config.cache_from.clone(),
            cache_to: config.cache_to.clone(),
            mirrors: crate::sync::Mirrors::default(),
            fds: Arc::default(),
            started: Instant::now(),
            next_build: AtomicU64::new(0),
            running: Mutex::new(HashMap::new()),
            count: tokio::sync::watch::channel(0).0,
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs `build` as a task of its own, registered so that a shutdown cancels it.
    pub(crate) fn spawn_build(
        self: &Arc<Daemon>,
        build: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Status> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| Status::internal("the register of builds is poisoned"))?;
        // Checked under the register's lock, so `close_if_idle` never misses a build.
        if self.closing.load(Ordering::SeqCst) {
            return Err(Status::unavailable("the daemon is shutting down"));
        }
        let id = self.next_build.fetch_add(1, Ordering::Relaxed);
        self.count.send_modify(|n| *n += 1);
        let guard = Running {
            daemon: self.clone(),
            id,
        };
        let task = tokio::spawn(async move {
            let _guard = guard;
            build.await;
        });
        running.insert(id, task.abort_handle());
        Ok(())
    }

    /// Stops taking builds if none runs; `false` (and nothing changes) while one does.
    pub(crate) fn close_if_idle(&self) -> bool {
        let Ok(_running) = self.running.lock() else {
            return false;
        };
        if *self.count.borrow() > 0 {
            return false;
        }
        self.closing.store(true, Ordering::SeqCst);
        true
    }

    /// Cancels every running build and waits (at most `UNWIND_LIMIT`, 15 s) until they have
    /// released their containers, mounts and snapshots.
    pub async fn cancel_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Ok(running) = self.running.lock() {
            for task in running.values() {
                task.abort();
            }
        }
        let mut count = self.count.subscribe();
        let _ = tokio::time::timeout(UNWIND_LIMIT, count.wait_for(|n| *n == 0)).await;
    }

    pub(crate) fn running_builds(&self) -> usize {
        *self.count.borrow()
    }

    /// Resolves once no build runs.
    pub(crate) async fn idle(&self) {
        let mut count = self.count.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }
}
