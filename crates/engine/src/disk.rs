//! Disk management: automatic garbage collection after builds, and [`StateDir`], a state
//! directory opened only for `kiln du` and `kiln prune`.
//!
//! The accounting and pruning themselves live in [`store::gc`]; this module decides *when*
//! they may run. The rule: garbage collection never runs while a build of this engine runs,
//! because a running build uses snapshots the store cannot see as used (the parent of a snapshot
//! being written, the chain under a mount, results held in the solver's memory). Builds hold
//! a shared lock, collection takes it exclusively, and the build that finishes last collects
//! (an earlier one skips). Other processes are kept out by the store's directory lock.
//!
//! The store's types for this are re-exported here, so callers need not depend on `store`.

use std::path::Path;

pub use store::gc::{default_gc_limit, parse_duration, parse_size};
pub use store::{
    DiskUsage, Filter, OtherContent, ParseError, PruneOptions, PruneReport, RecordId, RecordKind, SnapshotId,
    TextMatch, UsageRecord,
};

use store::Store;

use crate::{Engine, SetupError};

/// What automatic garbage collection did after a build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GcOutcome {
    /// It did not run: disabled, or another build of this engine was still running.
    #[default]
    Skipped,
    /// It ran (removing nothing when the state directory was under the limit).
    Collected(PruneReport),
    /// It failed; the build itself succeeded and the store is consistent.
    Failed(String),
}

impl Engine {
    /// Automatic garbage collection: when the state directory holds more than the configured
    /// limit ([`crate::EngineConfig::gc_keep_storage`]), removes least recently used records
    /// down to it ([`Store::collect_garbage`]). [`Engine::build`] calls it after each successful
    /// build; it is skipped while another build of this engine runs.
    pub async fn collect_garbage(&self) -> GcOutcome {
        if self.gc_limit == 0 {
            return GcOutcome::Skipped;
        }
        // Never wait: a build still running collects when it finishes.
        let Ok(_exclusive) = self.builds.try_write() else {
            return GcOutcome::Skipped;
        };
        let store = self.inner.store.clone();
        let limit = self.gc_limit;
        match tokio::task::spawn_blocking(move || store.collect_garbage(limit)).await {
            Ok(Ok(report)) => GcOutcome::Collected(report),
            Ok(Err(e)) => GcOutcome::Failed(oci::error_chain(&e)),
            Err(e) => GcOutcome::Failed(format!("garbage collection task failed: {e}")),
        }
    }

    /// The automatic garbage collection limit in bytes (0 = off).
    pub fn gc_limit(&self) -> u64 {
        self.gc_limit
    }
}

/// A state directory opened for disk management only (`kiln du`, `kiln prune`): no container
/// runtime, registry client or solver is set up. It holds the directory's lock like an engine,
/// so no build of another process runs meanwhile.
#[derive(Debug)]
pub struct StateDir {
    store: Store,
}

impl StateDir {
    /// Opens (creating if needed) the state directory at `root`; `on_wait` is called once if
    /// another process holds it, before waiting.
    pub fn open(root: &Path, on_wait: impl FnOnce()) -> Result<StateDir, SetupError> {
        Ok(StateDir {
            store: Store::open(root, on_wait)?,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        self.store.root()
    }

    /// What the directory holds ([`Store::disk_usage`]).
    pub fn disk_usage(&self, filters: &[Filter]) -> Result<DiskUsage, store::Error> {
        self.store.disk_usage(filters)
    }

    /// Removes what `options` select ([`Store::prune`]).
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, store::Error> {
        self.store.prune(options)
    }
}

/// Why disk management through an engine failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The blocking task did not finish.
    #[error("the disk task did not finish")]
    Join(#[source] tokio::task::JoinError),
}

impl Engine {
    /// What the state directory holds ([`Store::disk_usage`]), while builds may run.
    pub async fn disk_usage(&self, filters: Vec<Filter>) -> Result<DiskUsage, DiskError> {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.disk_usage(&filters))
            .await
            .map_err(DiskError::Join)??)
    }

    /// Removes what `options` select ([`Store::prune`]), once no build of this engine runs
    /// (builds started meanwhile wait for it).
    pub async fn prune(&self, options: PruneOptions) -> Result<PruneReport, DiskError> {
        let _exclusive = self.builds.write().await;
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.prune(&options))
            .await
            .map_err(DiskError::Join)??)
    }
}
