//! The metadata database (redb): snapshots, the layer index and the cache index.
//!
//! Every change is one redb write transaction, so the database is always consistent, whatever
//! moment a crash happens at. Values are JSON: readable with generic tools and tolerant of new
//! optional fields.

use std::collections::BTreeSet;
use std::path::Path;

use oci::{Descriptor, Digest};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, FORMAT_VERSION, SnapshotId};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SNAPSHOTS: TableDefinition<u64, &str> = TableDefinition::new("snapshots");
const LAYERS: TableDefinition<&str, u64> = TableDefinition::new("layers");
const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");

/// What the store knows about a committed snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: SnapshotId,
    /// The snapshot it sits on.
    pub parent: Option<SnapshotId>,
    /// When it was committed (Unix seconds).
    pub created: i64,
    /// What made it, for people.
    pub description: String,
    /// Its layer as a blob, once known.
    #[serde(default)]
    pub blob: Option<LayerBlob>,
}

/// A snapshot's layer as stored in the content store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// Digest of the uncompressed layer tar.
    pub diff_id: Digest,
    /// The (compressed) blob.
    pub descriptor: Descriptor,
    /// Whether the layer has no entries at all.
    #[serde(default)]
    pub empty: bool,
}

/// A cached result of a solver vertex: one snapshot per output (`None` = empty filesystem).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The outputs.
    pub outputs: Vec<Option<SnapshotId>>,
    /// When it was recorded (Unix seconds).
    pub created: i64,
}

fn db_error(e: impl std::fmt::Display) -> Error {
    Error::Database(e.to_string())
}

#[derive(Debug)]
pub(crate) struct Db {
    db: Database,
}

impl Db {
    pub(crate) fn open(root: &Path) -> Result<Db, Error> {
        let path = root.join("metadata.redb");
        let db = Database::create(&path).map_err(db_error)?;
        let tx = db.begin_write().map_err(db_error)?;
        {
            let mut meta = tx.open_table(META).map_err(db_error)?;
            let version = meta.get("format_version").map_err(db_error)?.map(|v| v.value());
            match version {
                None => {
                    meta.insert("format_version", FORMAT_VERSION).map_err(db_error)?;
                }
                Some(v) if v != FORMAT_VERSION => {
                    return Err(Error::FormatVersion {
                        path: root.into(),
                        found: v,
                        expected: FORMAT_VERSION,
                    });
                }
                Some(_) => {}
            }
            tx.open_table(SNAPSHOTS).map_err(db_error)?;
            tx.open_table(LAYERS).map_err(db_error)?;
            tx.open_table(CACHE).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        Ok(Db { db })
    }

    pub(crate) fn next_snapshot_id(&self) -> Result<SnapshotId, Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        let id = {
            let mut meta = tx.open_table(META).map_err(db_error)?;
            let next = meta
                .get("next_snapshot")
                .map_err(db_error)?
                .map_or(1, |v| v.value());
            meta.insert("next_snapshot", next + 1).map_err(db_error)?;
            next
        };
        tx.commit().map_err(db_error)?;
        Ok(SnapshotId(id))
    }

    pub(crate) fn snapshot_ids(&self) -> Result<BTreeSet<u64>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
        let mut ids = BTreeSet::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, _) = entry.map_err(db_error)?;
            ids.insert(k.value());
        }
        Ok(ids)
    }

    pub(crate) fn snapshot(&self, id: SnapshotId) -> Result<Option<SnapshotInfo>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
        let Some(raw) = table.get(id.0).map_err(db_error)? else {
            return Ok(None);
        };
        serde_json::from_str(raw.value())
            .map(Some)
            .map_err(|e| Error::Corrupt {
                what: format!("snapshot record {id}: {e}"),
            })
    }

    pub(crate) fn put_snapshot(&self, info: &SnapshotInfo) -> Result<(), Error> {
        let json = serde_json::to_string(info).map_err(db_error)?;
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(SNAPSHOTS)
            .map_err(db_error)?
            .insert(info.id.0, json.as_str())
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    pub(crate) fn update_snapshot(
        &self,
        id: SnapshotId,
        change: impl FnOnce(&mut SnapshotInfo),
    ) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
            let raw = table
                .get(id.0)
                .map_err(db_error)?
                .map(|v| v.value().to_string())
                .ok_or(Error::NoSnapshot(id))?;
            let mut info: SnapshotInfo = serde_json::from_str(&raw).map_err(|e| Error::Corrupt {
                what: format!("snapshot record {id}: {e}"),
            })?;
            change(&mut info);
            let json = serde_json::to_string(&info).map_err(db_error)?;
            table.insert(id.0, json.as_str()).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }

    pub(crate) fn layer(&self, chain_id: &Digest) -> Result<Option<SnapshotId>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(LAYERS).map_err(db_error)?;
        Ok(table
            .get(chain_id.to_string().as_str())
            .map_err(db_error)?
            .map(|v| SnapshotId(v.value())))
    }

    pub(crate) fn set_layer(&self, chain_id: &Digest, id: SnapshotId) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(LAYERS)
            .map_err(db_error)?
            .insert(chain_id.to_string().as_str(), id.0)
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    pub(crate) fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(CACHE).map_err(db_error)?;
        let Some(raw) = table.get(key.to_string().as_str()).map_err(db_error)? else {
            return Ok(None);
        };
        serde_json::from_str(raw.value())
            .map(Some)
            .map_err(|e| Error::Corrupt {
                what: format!("cache record {key}: {e}"),
            })
    }

    pub(crate) fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<(), Error> {
        let json = serde_json::to_string(record).map_err(db_error)?;
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(CACHE)
            .map_err(db_error)?
            .insert(key.to_string().as_str(), json.as_str())
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }
}
