//! The metadata database (redb): snapshots, the layer index and the cache index.
//!
//! Every change is one redb write transaction, so the database is always consistent, whatever
//! moment a crash happens at. Values are JSON: readable with generic tools and tolerant of new
//! optional fields.

use std::collections::BTreeSet;
use std::path::Path;

use oci::{Descriptor, Digest};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, FORMAT_VERSION, SnapshotId};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SNAPSHOTS: TableDefinition<u64, &str> = TableDefinition::new("snapshots");
const LAYERS: TableDefinition<&str, u64> = TableDefinition::new("layers");
const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");
/// Results of pure functions of immutable data (e.g. content digests of snapshots), by key.
const MEMO: TableDefinition<&str, &str> = TableDefinition::new("memo");
/// File digests of build contexts: (device, inode) → JSON entry (see `fileop::HashCache`).
const HASHES: TableDefinition<(u64, u64), &str> = TableDefinition::new("hashes");

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
    /// Apparent size in bytes of its layer directory (see [`crate::gc`]), recorded at commit;
    /// `None` for snapshots committed by older versions until disk usage is first computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// When a cache lookup or a layer lookup last returned it (Unix seconds); `None` = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
    /// How many cache or layer lookups returned it.
    #[serde(default)]
    pub usage_count: u64,
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
    /// When a lookup last returned it (Unix seconds); `None` = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
    /// How many lookups returned it.
    #[serde(default)]
    pub usage_count: u64,
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

impl Db {
    /// Every remembered file digest.
    pub(crate) fn hash_entries(
        &self,
    ) -> Result<std::collections::HashMap<crate::fileop::FileKey, crate::fileop::HashEntry>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let mut out = std::collections::HashMap::new();
        let table = match tx.open_table(HASHES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(db_error(e)),
        };
        for entry in table.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let (dev, ino) = k.value();
            // A record this version cannot read is simply forgotten.
            if let Ok(value) = serde_json::from_str(v.value()) {
                out.insert(crate::fileop::FileKey { dev, ino }, value);
            }
        }
        Ok(out)
    }

    /// Records `entries` (replacing older ones of the same files). When the table has grown
    /// past `limit` entries it starts over, since entries of deleted files pile up.
    pub(crate) fn put_hash_entries(
        &self,
        entries: &[(crate::fileop::FileKey, crate::fileop::HashEntry)],
        limit: u64,
    ) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let full = match tx.open_table(HASHES) {
                Ok(table) => table.len().map_err(db_error)? > limit,
                Err(e) => return Err(db_error(e)),
            };
            if full {
                tx.delete_table(HASHES).map_err(db_error)?;
            }
            let mut table = tx.open_table(HASHES).map_err(db_error)?;
            for (key, entry) in entries {
                let json = serde_json::to_string(entry).map_err(db_error)?;
                table
                    .insert((key.dev, key.ino), json.as_str())
                    .map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }
}

impl Db {
    /// A remembered value.
    pub(crate) fn memo_get(&self, key: &str) -> Result<Option<String>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = match tx.open_table(MEMO) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_error(e)),
        };
        Ok(table.get(key).map_err(db_error)?.map(|v| v.value().to_string()))
    }

    /// Remembers a value.
    pub(crate) fn memo_put(&self, key: &str, value: &str) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(MEMO)
            .map_err(db_error)?
            .insert(key, value)
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }
}

/// The whole database as stored (values undecoded), read in one transaction: what
/// [`crate::Store::check`] verifies, so a record that does not decode is a finding, not an error.
#[derive(Debug, Default)]
pub(crate) struct RawTables {
    /// The snapshot id counter (`None` before the first snapshot).
    pub(crate) next_snapshot: Option<u64>,
    /// Snapshot records by id, as JSON.
    pub(crate) snapshots: Vec<(u64, String)>,
    /// The layer index: chain ID text → snapshot id.
    pub(crate) layers: Vec<(String, u64)>,
    /// The cache index: cache key text → record, as JSON.
    pub(crate) cache: Vec<(String, String)>,
}

impl Db {
    /// Reads every snapshot, layer and cache record in one read transaction, in key order.
    pub(crate) fn raw_tables(&self) -> Result<RawTables, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let mut raw = RawTables {
            next_snapshot: tx
                .open_table(META)
                .map_err(db_error)?
                .get("next_snapshot")
                .map_err(db_error)?
                .map(|v| v.value()),
            ..RawTables::default()
        };
        for entry in tx
            .open_table(SNAPSHOTS)
            .map_err(db_error)?
            .iter()
            .map_err(db_error)?
        {
            let (k, v) = entry.map_err(db_error)?;
            raw.snapshots.push((k.value(), v.value().to_string()));
        }
        for entry in tx
            .open_table(LAYERS)
            .map_err(db_error)?
            .iter()
            .map_err(db_error)?
        {
            let (k, v) = entry.map_err(db_error)?;
            raw.layers.push((k.value().to_string(), v.value()));
        }
        for entry in tx.open_table(CACHE).map_err(db_error)?.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            raw.cache.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(raw)
    }
}

/// The records garbage collection plans with, decoded, read in one transaction.
#[derive(Debug, Default)]
pub(crate) struct GcTables {
    /// Every snapshot record, by id.
    pub(crate) snapshots: Vec<SnapshotInfo>,
    /// The layer index: chain ID text → snapshot.
    pub(crate) layers: Vec<(String, SnapshotId)>,
    /// The cache index: cache key text → record.
    pub(crate) cache: Vec<(String, CacheRecord)>,
}

impl Db {
    /// Reads and decodes every snapshot, layer-index and cache record in one read transaction.
    pub(crate) fn gc_tables(&self) -> Result<GcTables, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let mut tables = GcTables::default();
        for entry in tx
            .open_table(SNAPSHOTS)
            .map_err(db_error)?
            .iter()
            .map_err(db_error)?
        {
            let (k, v) = entry.map_err(db_error)?;
            let info: SnapshotInfo = serde_json::from_str(v.value()).map_err(|e| Error::Corrupt {
                what: format!("snapshot record {}: {e}", k.value()),
            })?;
            tables.snapshots.push(info);
        }
        for entry in tx
            .open_table(LAYERS)
            .map_err(db_error)?
            .iter()
            .map_err(db_error)?
        {
            let (k, v) = entry.map_err(db_error)?;
            tables.layers.push((k.value().to_string(), SnapshotId(v.value())));
        }
        for entry in tx.open_table(CACHE).map_err(db_error)?.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let record: CacheRecord = serde_json::from_str(v.value()).map_err(|e| Error::Corrupt {
                what: format!("cache record {}: {e}", k.value()),
            })?;
            tables.cache.push((k.value().to_string(), record));
        }
        Ok(tables)
    }

    /// Records that a lookup returned the cache record `key` (when given) and the snapshots
    /// `ids` at `now`: last-used time and usage count. Records that do not exist are skipped.
    ///
    /// The commit is not durable on its own (`Durability::None`): the next durable commit
    /// persists it, and a crash before that loses only usage statistics, never consistency.
    /// This keeps a fully cached build from paying an fsync per step.
    pub(crate) fn touch(&self, key: Option<&Digest>, ids: &[SnapshotId], now: i64) -> Result<(), Error> {
        let mut tx = self.db.begin_write().map_err(db_error)?;
        tx.set_durability(redb::Durability::None).map_err(db_error)?;
        {
            if let Some(key) = key {
                let mut table = tx.open_table(CACHE).map_err(db_error)?;
                let key = key.to_string();
                let raw = table
                    .get(key.as_str())
                    .map_err(db_error)?
                    .map(|v| v.value().to_string());
                if let Some(raw) = raw {
                    let mut record: CacheRecord = serde_json::from_str(&raw).map_err(|e| Error::Corrupt {
                        what: format!("cache record {key}: {e}"),
                    })?;
                    record.last_used = Some(now);
                    record.usage_count += 1;
                    let json = serde_json::to_string(&record).map_err(db_error)?;
                    table.insert(key.as_str(), json.as_str()).map_err(db_error)?;
                }
            }
            let mut table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
            for id in ids {
                let raw = table.get(id.0).map_err(db_error)?.map(|v| v.value().to_string());
                let Some(raw) = raw else { continue };
                let mut info: SnapshotInfo = serde_json::from_str(&raw).map_err(|e| Error::Corrupt {
                    what: format!("snapshot record {id}: {e}"),
                })?;
                info.last_used = Some(now);
                info.usage_count += 1;
                let json = serde_json::to_string(&info).map_err(db_error)?;
                table.insert(id.0, json.as_str()).map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    /// Removes cache records, snapshot records and layer-index entries in one transaction, so
    /// the index never points at a snapshot whose record is gone, whenever a crash happens.
    pub(crate) fn remove_records(
        &self,
        cache_keys: &[String],
        snapshots: &[SnapshotId],
        layers: &[String],
    ) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut cache = tx.open_table(CACHE).map_err(db_error)?;
            for key in cache_keys {
                cache.remove(key.as_str()).map_err(db_error)?;
            }
            let mut table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
            for id in snapshots {
                table.remove(id.0).map_err(db_error)?;
            }
            let mut table = tx.open_table(LAYERS).map_err(db_error)?;
            for chain in layers {
                table.remove(chain.as_str()).map_err(db_error)?;
            }
            // Memoized digests of a removed snapshot's content ("content:{id}:{selection}";
            // ';' sorts right after ':', so the range holds exactly that snapshot's keys).
            let mut memo = tx.open_table(MEMO).map_err(db_error)?;
            for id in snapshots {
                let (start, end) = (format!("content:{}:", id.0), format!("content:{};", id.0));
                let keys = memo
                    .range(start.as_str()..end.as_str())
                    .map_err(db_error)?
                    .map(|entry| entry.map(|(key, _)| key.value().to_string()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(db_error)?;
                for key in keys {
                    memo.remove(key.as_str()).map_err(db_error)?;
                }
            }
        }
        tx.commit().map_err(db_error)
    }
}

/// Cache mounts (see [`crate::cachemount`]): record id → JSON [`crate::CacheMountInfo`]
/// (without its id, which is the key).
const CACHE_MOUNTS: TableDefinition<u64, &str> = TableDefinition::new("cache_mounts");

impl Db {
    /// Every cache-mount record as stored (id, JSON), in id order.
    pub(crate) fn cache_mount_records(&self) -> Result<Vec<(u64, String)>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = match tx.open_table(CACHE_MOUNTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_error(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            out.push((k.value(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Stores a cache-mount record (durably: it is what makes a new instance exist).
    pub(crate) fn put_cache_mount(&self, info: &crate::CacheMountInfo) -> Result<(), Error> {
        let json = serde_json::to_string(info).map_err(db_error)?;
        let tx = self.db.begin_write().map_err(db_error)?;
        tx.open_table(CACHE_MOUNTS)
            .map_err(db_error)?
            .insert(info.id.0, json.as_str())
            .map_err(db_error)?;
        tx.commit().map_err(db_error)
    }

    /// Changes cache-mount record `id` (skipped when it does not exist or does not decode).
    /// Not durable on its own, like [`Db::touch`]: only statistics and sizes change this way.
    fn update_cache_mount(
        &self,
        id: SnapshotId,
        change: impl FnOnce(&mut crate::CacheMountInfo),
    ) -> Result<(), Error> {
        let mut tx = self.db.begin_write().map_err(db_error)?;
        tx.set_durability(redb::Durability::None).map_err(db_error)?;
        {
            let mut table = tx.open_table(CACHE_MOUNTS).map_err(db_error)?;
            let raw = table.get(id.0).map_err(db_error)?.map(|v| v.value().to_string());
            if let Some(mut info) = raw.and_then(|raw| crate::cachemount::decode(id.0, &raw).ok()) {
                change(&mut info);
                let json = serde_json::to_string(&info).map_err(db_error)?;
                table.insert(id.0, json.as_str()).map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    /// Records that a step took cache mount `id` at `now`; its size is unknown from then on.
    pub(crate) fn touch_cache_mount(&self, id: SnapshotId, now: i64) -> Result<(), Error> {
        self.update_cache_mount(id, |info| {
            info.last_used = Some(now);
            info.usage_count += 1;
            info.size = None;
        })
    }

    /// Records the measured size of cache mount `id`.
    pub(crate) fn set_cache_mount_size(&self, id: SnapshotId, size: u64) -> Result<(), Error> {
        self.update_cache_mount(id, |info| info.size = Some(size))
    }

    /// Sets when cache mount `id` was last used.
    pub(crate) fn set_cache_mount_last_used(&self, id: SnapshotId, when: i64) -> Result<(), Error> {
        self.update_cache_mount(id, |info| info.last_used = Some(when))
    }

    /// Removes cache-mount records in one (durable) transaction.
    pub(crate) fn remove_cache_mounts(&self, ids: &[SnapshotId]) -> Result<(), Error> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = tx.open_table(CACHE_MOUNTS).map_err(db_error)?;
            for id in ids {
                table.remove(id.0).map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_snapshot_forgets_its_memoized_digests_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.memo_put("content:1:aaa", "d1").unwrap();
        db.memo_put("content:1:bbb", "d2").unwrap();
        db.memo_put("content:10:aaa", "d3").unwrap();
        db.memo_put("content:2:aaa", "d4").unwrap();
        db.remove_records(&[], &[SnapshotId(1)], &[]).unwrap();
        assert_eq!(db.memo_get("content:1:aaa").unwrap(), None);
        assert_eq!(db.memo_get("content:1:bbb").unwrap(), None);
        assert_eq!(db.memo_get("content:10:aaa").unwrap().as_deref(), Some("d3"));
        assert_eq!(db.memo_get("content:2:aaa").unwrap().as_deref(), Some("d4"));
    }
}
