//! Snapshots being written.
//!
//! Life of a snapshot: [`crate::Store::prepare`] allocates an id and creates
//! `snapshots/<id>/fs` (the layer directory) and `work` (overlayfs scratch); [`Active::mount`]
//! gives a writable view of parent chain + layer; [`Active::commit`] records it in the database,
//! after which it is immutable. Dropping an uncommitted `Active` deletes its directory.
//!
//! An `Active` borrows its store ([`crate::Store::prepare`]) or shares it
//! ([`crate::Store::prepare_owned`]: an `Active<'static>`, which can move into blocking tasks
//! and live across awaits of work that writes into it).

use std::fmt;
use std::fs;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::db::SnapshotInfo;
use crate::mount::{self, Mounted};
use crate::{Error, Store, now_unix};

/// Identifies a snapshot in a state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(pub u64);

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A snapshot being written. Dropping it without [`Active::commit`] discards it.
#[derive(Debug)]
pub struct Active<'a> {
    store: StoreHandle<'a>,
    id: SnapshotId,
    parent: Option<SnapshotId>,
    description: String,
    dir: PathBuf,
    committed: bool,
}

impl Active<'static> {
    /// A new snapshot `id` holding a handle of its store.
    pub(crate) fn create_shared(
        store: Arc<Store>,
        id: SnapshotId,
        parent: Option<SnapshotId>,
        description: &str,
    ) -> Result<Active<'static>, Error> {
        Active::with_handle(StoreHandle::Shared(store), id, parent, description)
    }
}

/// The store of an [`Active`]: borrowed, or shared so that the `Active` is `'static`.
#[derive(Debug)]
enum StoreHandle<'a> {
    Borrowed(&'a Store),
    Shared(Arc<Store>),
}

impl Deref for StoreHandle<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        match self {
            StoreHandle::Borrowed(store) => store,
            StoreHandle::Shared(store) => store,
        }
    }
}

impl<'a> Active<'a> {
    /// A new snapshot `id` of a borrowed store.
    pub(crate) fn create(
        store: &'a Store,
        id: SnapshotId,
        parent: Option<SnapshotId>,
        description: &str,
    ) -> Result<Active<'a>, Error> {
        Active::with_handle(StoreHandle::Borrowed(store), id, parent, description)
    }

    fn with_handle(
        store: StoreHandle<'a>,
        id: SnapshotId,
        parent: Option<SnapshotId>,
        description: &str,
    ) -> Result<Active<'a>, Error> {
        let dir = store.snapshots_dir().join(id.to_string());
        for sub in ["fs", "work"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|source| Error::Io {
                action: "create snapshot directory",
                path,
                source,
            })?;
        }
        crate::fault::point("snapshot.prepared");
        Ok(Active {
            store,
            id,
            parent,
            description: description.to_string(),
            dir,
            committed: false,
        })
    }

    /// The snapshot's id (valid once committed).
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// The layer directory: the snapshot's own changes.
    pub fn layer_dir(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// A writable view of the whole filesystem (parent chain plus this layer).
    pub fn mount(&self) -> Result<Mounted, Error> {
        let Some(parent) = self.parent else {
            return Ok(Mounted::plain(self.layer_dir()));
        };
        let chain = self.store.chain(parent)?;
        let lowers: Vec<PathBuf> = chain.iter().rev().map(|s| self.store.layer_dir(s.id)).collect();
        let upper = self.layer_dir();
        let work = self.dir.join("work");
        let mounted = mount::mount_overlay(&self.store.mnt_dir(), &lowers, Some((&upper, &work)))?;
        crate::fault::point("snapshot.mounted");
        Ok(mounted)
    }

    /// Makes the snapshot permanent. Every mount of it must have been dropped before.
    pub fn commit(mut self) -> Result<SnapshotInfo, Error> {
        crate::fault::point("snapshot.written");
        let work = self.dir.join("work");
        let _ = fs::remove_dir_all(&work);
        let info = SnapshotInfo {
            id: self.id,
            parent: self.parent,
            created: now_unix(),
            description: std::mem::take(&mut self.description),
            blob: None,
            // Disk accounting (`gc`); a size that cannot be measured now is measured later.
            size: crate::gc::dir_size(&self.layer_dir()).ok(),
            last_used: None,
            usage_count: 0,
        };
        crate::fault::point("snapshot.before-commit");
        self.store.db.put_snapshot(&info)?;
        self.committed = true;
        crate::fault::point("snapshot.after-commit");
        Ok(info)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::Store;

    #[test]
    fn an_owned_active_moves_to_another_thread_and_is_discarded_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state"), || {}).unwrap());

        let active = store.prepare_owned(None, "owned").unwrap();
        let layer = active.layer_dir();
        let info = std::thread::spawn(move || {
            std::fs::write(active.layer_dir().join("file"), "content").unwrap();
            active.commit().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(store.snapshot(info.id).unwrap().description, "owned");
        assert_eq!(std::fs::read_to_string(layer.join("file")).unwrap(), "content");

        let abandoned = store.prepare_owned(Some(info.id), "abandoned").unwrap();
        let (id, layer) = (abandoned.id(), abandoned.layer_dir());
        assert!(layer.is_dir());
        std::thread::spawn(move || drop(abandoned)).join().unwrap();
        assert!(!layer.exists(), "an uncommitted snapshot is removed when dropped");
        assert!(store.snapshot(id).is_err());
        assert!(store.prepare_owned(Some(crate::SnapshotId(9999)), "x").is_err());
    }
}
