//! The metadata database (redb): snapshots, the layer index and the cache index.
//!
//! Every change is one redb write transaction, so the database is always consistent, whatever
//! moment a crash happens at. Values are JSON: readable with generic tools and tolerant of new
//! optional fields.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::Path;

use oci::{Descriptor, Digest};
use redb::{
    AccessGuard, Database, Durability, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, Value, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, FORMAT_VERSION, SnapshotId};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SNAPSHOTS: TableDefinition<u64, &str> = TableDefinition::new("snapshots");
const LAYERS: TableDefinition<&str, u64> = TableDefinition::new("layers");
const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");
/// Results of pure functions of immutable data (e.g. content digests of snapshots), by key.
const MEMO: TableDefinition<&str, &str> = TableDefinition::new("memo");
/// File digests of build contexts: (device, inode) → JSON entry (see `fsops::fileop::HashCache`).
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

fn db_error(e: impl Into<redb::Error>) -> Error {
    Error::Database(e.into())
}

/// A record as the JSON stored in the database.
fn encode(what: &'static str, record: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(record).map_err(|source| Error::Encode { what, source })
}

/// A record decoded from the JSON stored in the database; `what` and `key` name it in the error
/// (`snapshot record 7`).
fn decode<T: DeserializeOwned>(what: &str, key: impl Display, json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|source| Error::Decode {
        what: format!("{what} {key}"),
        source,
    })
}

/// Decodes the record stored under `key`, lets `change` edit it and stores it again.
/// `Ok(false)` when there is no such record.
fn update_record<'k, K: Key + 'static, T: Serialize + DeserializeOwned>(
    table: &mut Table<K, &'static str>,
    key: K::SelfType<'k>,
    what: &'static str,
    label: impl Display,
    change: impl FnOnce(&mut T),
) -> Result<bool, Error> {
    let Some(json) = table.get(&key).map_err(db_error)?.map(|v| v.value().to_string()) else {
        return Ok(false);
    };
    let mut record = decode(what, label, &json)?;
    change(&mut record);
    let json = encode(what, &record)?;
    table.insert(&key, json.as_str()).map_err(db_error)?;
    Ok(true)
}

/// Every entry of `table` in key order, each made into an owned value by `entry`.
fn collect<K: Key + 'static, V: Value + 'static, T>(
    table: &impl ReadableTable<K, V>,
    mut entry: impl FnMut(AccessGuard<'_, K>, AccessGuard<'_, V>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    for item in table.iter().map_err(db_error)? {
        let (k, v) = item.map_err(db_error)?;
        out.push(entry(k, v)?);
    }
    Ok(out)
}

/// Opens a table for reading; `None` when no write has created it yet (tables added after the
/// first release are created on first use, not by [`Db::open`]).
fn open_optional<K: Key + 'static, V: Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, Error> {
    match tx.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(db_error(e)),
    }
}

/// Reads saved file entries (see [`Db::hash_reader`]).
pub(crate) struct HashReader {
    table: ReadOnlyTable<(u64, u64), &'static str>,
}

impl HashReader {
    /// The saved entry of one file. A record that cannot be read or decoded is `None`: it
    /// only costs hashing the file again.
    pub(crate) fn get(&self, key: fsops::fileop::FileKey) -> Option<fsops::fileop::HashEntry> {
        let found = self.table.get((key.dev, key.ino)).ok().flatten()?;
        serde_json::from_str(found.value()).ok()
    }
}

/// The database's file in the state directory.
const DB_FILE: &str = "metadata.redb";

#[derive(Debug)]
pub(crate) struct Db {
    db: Database,
}

impl Db {
    /// Runs `body` in one write transaction and commits it. With `Durability::None` the commit
    /// is persisted by the next durable one (for statistics that may be lost in a crash).
    fn write<T>(
        &self,
        durability: Durability,
        body: impl FnOnce(&WriteTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut tx = self.db.begin_write().map_err(db_error)?;
        tx.set_durability(durability).map_err(db_error)?;
        let out = body(&tx)?;
        tx.commit().map_err(db_error)?;
        Ok(out)
    }

    /// Stores one entry, in a durable transaction of its own.
    fn insert<'k, 'v, K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), Error> {
        self.write(Durability::Immediate, |tx| {
            tx.open_table(table)
                .map_err(db_error)?
                .insert(key, value)
                .map_err(db_error)?;
            Ok(())
        })
    }

    /// Opens (or creates) the database of the state directory `root`.
    ///
    /// A new database is made under another name and renamed into place once its tables are
    /// durable, so a kill while creating it never leaves a `metadata.redb` that cannot be
    /// opened; an empty one (left by a kill before this was so) is made anew.
    pub(crate) fn open(root: &Path) -> Result<Db, Error> {
        let path = root.join(DB_FILE);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { action, path, source }
        };
        let existing = match std::fs::metadata(&path) {
            Ok(meta) => meta.len() > 0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io("inspect", &path)(e)),
        };
        if !existing {
            let fresh = root.join(format!("{DB_FILE}.new"));
            match std::fs::remove_file(&fresh) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &fresh)(e)),
                _ => {}
            }
            Db::create(root, &fresh)?;
            std::fs::rename(&fresh, &path).map_err(io("rename", &fresh))?;
            std::fs::File::open(root)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", root))?;
        }
        Db::create(root, &path)
    }

    /// Opens the database at `path`, creating it and its tables as needed, durably.
    fn create(root: &Path, path: &Path) -> Result<Db, Error> {
        let db = Db {
            db: Database::create(path).map_err(db_error)?,
        };
        db.write(Durability::Immediate, |tx| {
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
            Ok(())
        })?;
        Ok(db)
    }

    pub(crate) fn next_snapshot_id(&self) -> Result<SnapshotId, Error> {
        self.write(Durability::Immediate, |tx| {
            let mut meta = tx.open_table(META).map_err(db_error)?;
            let next = meta
                .get("next_snapshot")
                .map_err(db_error)?
                .map_or(1, |v| v.value());
            meta.insert("next_snapshot", next + 1).map_err(db_error)?;
            Ok(SnapshotId(next))
        })
    }

    pub(crate) fn snapshot_ids(&self) -> Result<BTreeSet<u64>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
        Ok(collect(&table, |k, _| Ok(k.value()))?.into_iter().collect())
    }

    pub(crate) fn snapshot(&self, id: SnapshotId) -> Result<Option<SnapshotInfo>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
        let Some(raw) = table.get(id.0).map_err(db_error)? else {
            return Ok(None);
        };
        decode("snapshot record", id, raw.value()).map(Some)
    }

    pub(crate) fn put_snapshot(&self, info: &SnapshotInfo) -> Result<(), Error> {
        let json = encode("snapshot record", info)?;
        self.insert(SNAPSHOTS, info.id.0, json.as_str())
    }

    pub(crate) fn update_snapshot(
        &self,
        id: SnapshotId,
        change: impl FnOnce(&mut SnapshotInfo),
    ) -> Result<(), Error> {
        self.write(Durability::Immediate, |tx| {
            let mut table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
            match update_record(&mut table, id.0, "snapshot record", id, change)? {
                true => Ok(()),
                false => Err(Error::NoSnapshot(id)),
            }
        })
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
        self.insert(LAYERS, chain_id.to_string().as_str(), id.0)
    }

    pub(crate) fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let table = tx.open_table(CACHE).map_err(db_error)?;
        let Some(raw) = table.get(key.to_string().as_str()).map_err(db_error)? else {
            return Ok(None);
        };
        decode("cache record", key, raw.value()).map(Some)
    }

    pub(crate) fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<(), Error> {
        let json = encode("cache record", record)?;
        self.insert(CACHE, key.to_string().as_str(), json.as_str())
    }
}

impl Db {
    /// Every remembered file digest.
    /// A reader of the saved file entries, on the database as it is now (`None` while no entry
    /// has been saved). It holds a read transaction: keep it for one walk, not longer.
    pub(crate) fn hash_reader(&self) -> Result<Option<HashReader>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        Ok(open_optional(&tx, HASHES)?.map(|table| HashReader { table }))
    }

    /// Records `entries` (replacing older ones of the same files). When the table has grown
    /// past `limit` entries it starts over, since entries of deleted files pile up.
    pub(crate) fn put_hash_entries(
        &self,
        entries: &[(fsops::fileop::FileKey, fsops::fileop::HashEntry)],
        limit: u64,
    ) -> Result<(), Error> {
        self.write(Durability::Immediate, |tx| {
            let full = tx.open_table(HASHES).map_err(db_error)?.len().map_err(db_error)? > limit;
            if full {
                tx.delete_table(HASHES).map_err(db_error)?;
            }
            let mut table = tx.open_table(HASHES).map_err(db_error)?;
            for (key, entry) in entries {
                let json = encode("file digest", entry)?;
                table
                    .insert((key.dev, key.ino), json.as_str())
                    .map_err(db_error)?;
            }
            Ok(())
        })
    }
}

impl Db {
    /// A remembered value.
    pub(crate) fn memo_get(&self, key: &str) -> Result<Option<String>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let Some(table) = open_optional(&tx, MEMO)? else {
            return Ok(None);
        };
        Ok(table.get(key).map_err(db_error)?.map(|v| v.value().to_string()))
    }

    /// Remembers a value.
    pub(crate) fn memo_put(&self, key: &str, value: &str) -> Result<(), Error> {
        self.insert(MEMO, key, value)
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
        Ok(RawTables {
            next_snapshot: tx
                .open_table(META)
                .map_err(db_error)?
                .get("next_snapshot")
                .map_err(db_error)?
                .map(|v| v.value()),
            snapshots: collect(&tx.open_table(SNAPSHOTS).map_err(db_error)?, |k, v| {
                Ok((k.value(), v.value().to_string()))
            })?,
            layers: collect(&tx.open_table(LAYERS).map_err(db_error)?, |k, v| {
                Ok((k.value().to_string(), v.value()))
            })?,
            cache: collect(&tx.open_table(CACHE).map_err(db_error)?, |k, v| {
                Ok((k.value().to_string(), v.value().to_string()))
            })?,
        })
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
        Ok(GcTables {
            snapshots: collect(&tx.open_table(SNAPSHOTS).map_err(db_error)?, |k, v| {
                decode("snapshot record", k.value(), v.value())
            })?,
            layers: collect(&tx.open_table(LAYERS).map_err(db_error)?, |k, v| {
                Ok((k.value().to_string(), SnapshotId(v.value())))
            })?,
            cache: collect(&tx.open_table(CACHE).map_err(db_error)?, |k, v| {
                Ok((
                    k.value().to_string(),
                    decode("cache record", k.value(), v.value())?,
                ))
            })?,
        })
    }

    /// Records that a lookup returned the cache record `key` (when given) and the snapshots
    /// `ids` at `now`: last-used time and usage count. Records that do not exist are skipped.
    ///
    /// The commit is not durable on its own (`Durability::None`): the next durable commit
    /// persists it, and a crash before that loses only usage statistics, never consistency.
    /// This keeps a fully cached build from paying an fsync per step.
    pub(crate) fn touch(&self, key: Option<&Digest>, ids: &[SnapshotId], now: i64) -> Result<(), Error> {
        self.write(Durability::None, |tx| {
            if let Some(key) = key {
                let mut table = tx.open_table(CACHE).map_err(db_error)?;
                let key = key.to_string();
                update_record(
                    &mut table,
                    key.as_str(),
                    "cache record",
                    &key,
                    |record: &mut CacheRecord| {
                        record.last_used = Some(now);
                        record.usage_count += 1;
                    },
                )?;
            }
            let mut table = tx.open_table(SNAPSHOTS).map_err(db_error)?;
            for id in ids {
                update_record(
                    &mut table,
                    id.0,
                    "snapshot record",
                    id,
                    |info: &mut SnapshotInfo| {
                        info.last_used = Some(now);
                        info.usage_count += 1;
                    },
                )?;
            }
            Ok(())
        })
    }

    /// Removes cache records, snapshot records and layer-index entries in one transaction, so
    /// the index never points at a snapshot whose record is gone, whenever a crash happens.
    pub(crate) fn remove_records(
        &self,
        cache_keys: &[String],
        snapshots: &[SnapshotId],
        layers: &[String],
    ) -> Result<(), Error> {
        self.write(Durability::Immediate, |tx| {
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
            Ok(())
        })
    }
}

/// Cache mounts (see [`crate::cachemount`]): record id → JSON [`crate::CacheMountInfo`]
/// (without its id, which is the key).
const CACHE_MOUNTS: TableDefinition<u64, &str> = TableDefinition::new("cache_mounts");

impl Db {
    /// Every cache-mount record as stored (id, JSON), in id order.
    pub(crate) fn cache_mount_records(&self) -> Result<Vec<(u64, String)>, Error> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let Some(table) = open_optional(&tx, CACHE_MOUNTS)? else {
            return Ok(Vec::new());
        };
        collect(&table, |k, v| Ok((k.value(), v.value().to_string())))
    }

    /// Stores a cache-mount record (durably: it is what makes a new instance exist).
    pub(crate) fn put_cache_mount(&self, info: &crate::CacheMountInfo) -> Result<(), Error> {
        let json = encode("cache mount record", info)?;
        self.insert(CACHE_MOUNTS, info.id.0, json.as_str())
    }

    /// Changes cache-mount record `id` (skipped when it does not exist or does not decode).
    /// Not durable on its own, like [`Db::touch`]: only statistics and sizes change this way.
    fn update_cache_mount(
        &self,
        id: SnapshotId,
        change: impl FnOnce(&mut crate::CacheMountInfo),
    ) -> Result<(), Error> {
        self.write(Durability::None, |tx| {
            let mut table = tx.open_table(CACHE_MOUNTS).map_err(db_error)?;
            let raw = table.get(id.0).map_err(db_error)?.map(|v| v.value().to_string());
            if let Some(mut info) = raw.and_then(|raw| crate::cachemount::decode(id.0, &raw).ok()) {
                change(&mut info);
                let json = encode("cache mount record", &info)?;
                table.insert(id.0, json.as_str()).map_err(db_error)?;
            }
            Ok(())
        })
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
        self.write(Durability::Immediate, |tx| {
            let mut table = tx.open_table(CACHE_MOUNTS).map_err(db_error)?;
            for id in ids {
                table.remove(id.0).map_err(db_error)?;
            }
            Ok(())
        })
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

    #[test]
    fn a_database_half_made_by_a_killed_process_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        // A kill while creating: an empty file in place (older kilns), garbage under the new name.
        std::fs::write(dir.path().join(DB_FILE), b"").unwrap();
        std::fs::write(dir.path().join(format!("{DB_FILE}.new")), b"not a database").unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.memo_put("k", "v").unwrap();
        drop(db);
        assert!(!dir.path().join(format!("{DB_FILE}.new")).exists());
        // What was recorded is kept by the next open.
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.memo_get("k").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn a_corrupt_database_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"not a database").unwrap();
        let err = Db::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err:?}");
        assert_eq!(
            std::fs::read(dir.path().join(DB_FILE)).unwrap(),
            b"not a database"
        );
    }
}
