//! What the store's integration tests share: a store in a temporary directory. Each test binary
//! adds the helpers it needs in its own `impl Env` and uses only part of this.
#![allow(dead_code)]

use std::path::PathBuf;

use store::{SnapshotId, Store, UsageRecord};

/// A store in a temporary directory. The store is dropped before the directory.
pub struct Env {
    pub store: Option<Store>,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state"), || {}).unwrap();
        Env {
            store: Some(store),
            dir,
        }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// The usage record (`kiln du`) of snapshot or cache mount `id`.
    pub fn record(&self, id: SnapshotId) -> UsageRecord {
        self.store()
            .disk_usage(&[])
            .unwrap()
            .records
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no usage record for {id}"))
    }

    /// The state directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Closes the store and opens it again (running recovery).
    pub fn reopen(&mut self) {
        self.store = None;
        self.store = Some(Store::open(&self.root(), || {}).unwrap());
    }

    /// Closes the store, runs `f` on the raw database, and opens the store again.
    pub fn with_closed_db<T>(&mut self, f: impl FnOnce(&redb::Database) -> T) -> T {
        self.store = None;
        let value = {
            let db = redb::Database::open(self.root().join("metadata.redb")).unwrap();
            f(&db)
        };
        self.store = Some(Store::open(&self.root(), || {}).unwrap());
        value
    }
}
