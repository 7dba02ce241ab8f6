//! Snapshots being written.
//!
//! Life of a snapshot: [`crate::Store::prepare`] allocates an id and creates
//! `snapshots/<id>/fs` (the layer directory) and `work` (overlayfs scratch); [`Active::mount`]
//! gives a writable view of parent chain + layer; [`Active::commit`] records it in the database,
//! after which it is immutable. Dropping an uncommitted `Active` deletes its directory.

use std::fmt;
use std::fs;
use std::path::PathBuf;

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
    store: &'a Store,
    id: SnapshotId,
    parent: Option<SnapshotId>,
    description: String,
    dir: PathBuf,
    committed: bool,
}

impl<'a> Active<'a> {
    pub(crate) fn create(
        store: &'a Store,
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
