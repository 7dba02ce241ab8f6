//! Consistency check of a state directory: [`Store::check`], behind `kiln debug check`.
//!
//! kiln's crash-safety promise is that whatever moment a process is killed at, the state
//! directory is consistent once the next [`Store::open`] has removed the crash debris. This
//! module states that promise as checks, so a test (or a worried user) can verify it:
//! - every blob under `blobs/sha256/` hashes to its name;
//! - every snapshot record decodes, its layer directory exists, its parent record exists and
//!   following parents never loops; its id is below the id counter (so no new snapshot can
//!   ever overwrite it); its recorded layer blob (if any) is in the content store with the
//!   recorded size;
//! - every cache record decodes and its snapshots exist; every layer-index entry's snapshot
//!   exists;
//! - every cache-mount record decodes, its directory exists, the snapshot it was seeded from
//!   (if any) exists, and its id is below the id counter;
//! - no snapshot or cache-mount directory without a record, no overlay work directory of a
//!   committed snapshot, no ingest file and nothing under `mnt/` is left, and no mount below the
//!   state directory is visible.
//!
//! The check reads; it never repairs. Each [`Problem`] says what to do about it
//! ([`Problem::remedy`]). Everything in a state directory is a cache, so removing the whole
//! directory is always a safe last resort.
//!
//! It is meaningful only right after [`Store::open`], while nothing else uses the store: open
//! runs the crash recovery first, so the report describes the state *after* recovery, and a
//! build running at the same time has ingest files, mounts and unrecorded snapshot
//! directories that are not debris at all.
//!
//! Not checked: the content of layer directories (there is nothing to compare them with),
//! whether blobs are referenced by anything (unreferenced ones are garbage, not damage), and the
//! executor's directory (`executor/`, which the executor cleans up itself).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci::{Digest, Sha256Writer};

use crate::db::{CacheRecord, SnapshotInfo};
use crate::mount::mount_points;
use crate::{Error, SnapshotId, Store};

/// What [`Store::check`] looked at and what it found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blob files hashed.
    pub blobs: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// Snapshot records checked.
    pub snapshots: u64,
    /// Layer-index entries checked.
    pub layers: u64,
    /// Cache records checked.
    pub cache_records: u64,
    /// Cache-mount records checked.
    pub cache_mounts: u64,
    /// Committed snapshots that no cache record or layer-index entry leads to (directly or as a
    /// parent): left by a build killed between committing a step and recording it. Not a
    /// problem, only space that pruning reclaims.
    pub unreferenced_snapshots: u64,
    /// Everything that is wrong, in the order found (blobs, records, directories, mounts).
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One inconsistency found by [`Store::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A blob's content does not hash to its name.
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// A blob file could not be read.
    UnreadableBlob {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// Something in `blobs/sha256/` that is not a blob: a name that is not a sha256 digest, or
    /// not a regular file.
    StrayBlobEntry {
        /// The entry.
        path: PathBuf,
    },
    /// A database record does not decode.
    UnreadableRecord {
        /// `snapshot`, `cache` or `cache mount`.
        table: &'static str,
        /// Its key.
        key: String,
        /// Why.
        error: String,
    },
    /// A snapshot record is stored under another id than the one it names.
    MismatchedSnapshotId {
        /// The key.
        key: u64,
        /// The id inside the record.
        id: SnapshotId,
    },
    /// A snapshot record exists but its layer directory does not.
    MissingSnapshotDir {
        /// The snapshot.
        id: SnapshotId,
        /// The directory that should exist.
        path: PathBuf,
    },
    /// A snapshot's parent has no record.
    MissingParent {
        /// The snapshot.
        id: SnapshotId,
        /// Its parent.
        parent: SnapshotId,
    },
    /// Following a snapshot's parents leads back to it.
    ParentLoop {
        /// The smallest id on the loop.
        id: SnapshotId,
    },
    /// A snapshot id is not below the id counter, so a new snapshot could overwrite it.
    SnapshotIdAhead {
        /// The snapshot.
        id: SnapshotId,
        /// The counter (`None`: never set).
        next: Option<u64>,
    },
    /// A snapshot records a layer blob that is not in the content store.
    MissingLayerBlob {
        /// The snapshot.
        id: SnapshotId,
        /// The blob.
        digest: Digest,
    },
    /// A snapshot records a layer blob whose size differs from the stored one.
    LayerBlobSize {
        /// The snapshot.
        id: SnapshotId,
        /// The blob.
        digest: Digest,
        /// The size in the record.
        recorded: u64,
        /// The size of the file.
        actual: u64,
    },
    /// A cache record names a snapshot that has no record.
    CacheMissingSnapshot {
        /// The cache key.
        key: String,
        /// The missing snapshot.
        id: SnapshotId,
    },
    /// A layer-index entry names a snapshot that has no record.
    LayerMissingSnapshot {
        /// The chain ID.
        chain_id: String,
        /// The missing snapshot.
        id: SnapshotId,
    },
    /// A directory under `snapshots/` without a snapshot record (a half-made snapshot that
    /// recovery did not remove), or something there that is not a snapshot directory at all.
    OrphanSnapshotDir {
        /// The entry.
        path: PathBuf,
    },
    /// A cache-mount record exists but its directory does not.
    MissingCacheMountDir {
        /// The cache mount's record id.
        id: SnapshotId,
        /// The directory that should exist.
        path: PathBuf,
    },
    /// A cache mount names the snapshot it was seeded from, which has no record.
    CacheMountMissingParent {
        /// The cache mount's record id.
        id: SnapshotId,
        /// The missing snapshot.
        parent: SnapshotId,
    },
    /// A cache-mount id is not below the id counter, so a new snapshot or cache mount could
    /// reuse it.
    CacheMountIdAhead {
        /// The cache mount's record id.
        id: SnapshotId,
        /// The counter (`None`: never set).
        next: Option<u64>,
    },
    /// A directory under `cache-mounts/` without a record (an instance that was being made or
    /// removed when kiln died, which recovery did not remove), or something there that is not
    /// a cache mount at all.
    OrphanCacheMountDir {
        /// The entry.
        path: PathBuf,
    },
    /// An overlay work directory of a committed snapshot.
    LeftoverWorkDir {
        /// The directory.
        path: PathBuf,
    },
    /// A file in `ingest/`: a blob that was being written.
    StrayIngest {
        /// The file.
        path: PathBuf,
    },
    /// An entry in `mnt/`: a mount point (mounted or not) that nothing uses.
    StrayMountPoint {
        /// The entry.
        path: PathBuf,
        /// What it is (a file, an empty or non-empty directory, a mount), for diagnosis.
        what: String,
    },
    /// A mount below the state directory, as this process sees the mount table.
    StrayMount {
        /// The mount point.
        path: PathBuf,
    },
}

impl Problem {
    /// What to do about it, for people.
    pub fn remedy(&self) -> &'static str {
        match self {
            Problem::CorruptBlob { .. } | Problem::UnreadableBlob { .. } => {
                "delete the blob file: kiln fetches or recomputes content it needs; if a snapshot \
                 records it as its layer blob, remove the state directory instead"
            }
            Problem::StrayBlobEntry { .. } | Problem::StrayIngest { .. } => "delete it: kiln never reads it",
            Problem::UnreadableRecord { table: "cache", .. } => {
                "remove the state directory: builds that look up this cache key fail"
            }
            Problem::UnreadableRecord {
                table: "cache mount", ..
            }
            | Problem::CacheMountIdAhead { .. } => {
                "remove the state directory: pruning fails, and new records may collide with this one"
            }
            Problem::MissingCacheMountDir { .. } | Problem::CacheMountMissingParent { .. } => {
                "remove it with kiln prune --filter type=exec.cachemount (builds using this cache \
                 fail until then, or never find it again)"
            }
            Problem::UnreadableRecord { .. }
            | Problem::MismatchedSnapshotId { .. }
            | Problem::MissingSnapshotDir { .. }
            | Problem::MissingParent { .. }
            | Problem::ParentLoop { .. }
            | Problem::SnapshotIdAhead { .. } => {
                "remove the state directory: builds and exports that use this snapshot fail or \
                 see wrong files"
            }
            Problem::MissingLayerBlob { .. } | Problem::LayerBlobSize { .. } => {
                "remove the state directory: exporting an image with this layer fails"
            }
            Problem::CacheMissingSnapshot { .. } | Problem::LayerMissingSnapshot { .. } => {
                "nothing urgent: kiln ignores the entry and builds the step again; removing the \
                 state directory clears it"
            }
            Problem::OrphanSnapshotDir { .. }
            | Problem::OrphanCacheMountDir { .. }
            | Problem::LeftoverWorkDir { .. } => {
                "delete the directory (as root: it may hold files of any owner)"
            }
            Problem::StrayMountPoint { .. } | Problem::StrayMount { .. } => {
                "unmount it (umount -l PATH) and delete the mount point"
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlob { digest, actual } => {
                write!(f, "blob {digest} is corrupt: its content has digest {actual}")
            }
            Problem::UnreadableBlob { path, error } => {
                write!(f, "blob {} cannot be read: {error}", path.display())
            }
            Problem::StrayBlobEntry { path } => {
                write!(f, "{} in the content store is not a blob", path.display())
            }
            Problem::UnreadableRecord { table, key, error } => {
                write!(f, "{table} record {key} does not decode: {error}")
            }
            Problem::MismatchedSnapshotId { key, id } => {
                write!(f, "snapshot record {key} names snapshot {id}")
            }
            Problem::MissingSnapshotDir { id, path } => {
                write!(f, "snapshot {id} has no layer directory {}", path.display())
            }
            Problem::MissingParent { id, parent } => {
                write!(f, "snapshot {id} has parent {parent}, which has no record")
            }
            Problem::ParentLoop { id } => write!(f, "the parents of snapshot {id} loop back to it"),
            Problem::SnapshotIdAhead { id, next } => match next {
                Some(next) => write!(f, "snapshot {id} is not below the id counter {next}"),
                None => write!(f, "snapshot {id} exists but the id counter was never set"),
            },
            Problem::MissingLayerBlob { id, digest } => {
                write!(
                    f,
                    "layer blob {digest} of snapshot {id} is not in the content store"
                )
            }
            Problem::LayerBlobSize {
                id,
                digest,
                recorded,
                actual,
            } => write!(
                f,
                "layer blob {digest} of snapshot {id} has {actual} bytes, the record says {recorded}"
            ),
            Problem::CacheMissingSnapshot { key, id } => {
                write!(f, "cache record {key} names snapshot {id}, which has no record")
            }
            Problem::LayerMissingSnapshot { chain_id, id } => {
                write!(f, "layer {chain_id} names snapshot {id}, which has no record")
            }
            Problem::OrphanSnapshotDir { path } => {
                write!(f, "{} has no snapshot record", path.display())
            }
            Problem::MissingCacheMountDir { id, path } => {
                write!(f, "cache mount {id} has no directory {}", path.display())
            }
            Problem::CacheMountMissingParent { id, parent } => {
                write!(
                    f,
                    "cache mount {id} was seeded from snapshot {parent}, which has no record"
                )
            }
            Problem::CacheMountIdAhead { id, next } => match next {
                Some(next) => write!(f, "cache mount {id} is not below the id counter {next}"),
                None => write!(f, "cache mount {id} exists but the id counter was never set"),
            },
            Problem::OrphanCacheMountDir { path } => {
                write!(f, "{} has no cache mount record", path.display())
            }
            Problem::LeftoverWorkDir { path } => {
                write!(f, "overlay work directory {} was left behind", path.display())
            }
            Problem::StrayIngest { path } => {
                write!(f, "ingest file {} was left behind", path.display())
            }
            Problem::StrayMountPoint { path, what } => {
                write!(f, "mount point {} was left behind ({what})", path.display())
            }
            Problem::StrayMount { path } => write!(f, "{} is mounted", path.display()),
        }
    }
}

impl Store {
    /// Verifies the state directory (see the module docs for what is checked) and reports what
    /// it found. Fails only when the check itself cannot run (the database or a directory of
    /// the store cannot be read); everything wrong with the content is a [`Problem`].
    ///
    /// Call it right after [`Store::open`] with nothing else using the store: the report then
    /// describes the state after crash recovery.
    pub fn check(&self) -> Result<CheckReport, Error> {
        let mut report = CheckReport::default();
        self.check_blobs(&mut report)?;
        let snapshots = self.check_records(&mut report)?;
        self.check_dirs(&snapshots, &mut report)?;
        check_mounts(&self.root, &mut report);
        Ok(report)
    }

    fn check_blobs(&self, report: &mut CheckReport) -> Result<(), Error> {
        let dir = self.root.join("blobs/sha256");
        for path in sorted_entries(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
            let digest = match format!("sha256:{name}").parse::<Digest>() {
                Ok(digest) if is_file => digest,
                _ => {
                    report.problems.push(Problem::StrayBlobEntry { path });
                    continue;
                }
            };
            report.blobs += 1;
            match hash_file(&path) {
                Ok((actual, size)) => {
                    report.blob_bytes += size;
                    if actual != digest {
                        report.problems.push(Problem::CorruptBlob { digest, actual });
                    }
                }
                Err(e) => report.problems.push(Problem::UnreadableBlob {
                    path,
                    error: e.to_string(),
                }),
            }
        }
        Ok(())
    }

    /// Checks the database records; returns the ids of the snapshot records.
    fn check_records(&self, report: &mut CheckReport) -> Result<BTreeSet<u64>, Error> {
        let raw = self.db.raw_tables()?;
        let snapshots = self.check_snapshot_records(&raw, report);
        check_parents(&snapshots, &mut report.problems);
        let mut roots = self.check_index_records(&raw, &snapshots, report);
        roots.extend(self.check_cache_mount_records(&raw, &snapshots, report)?);
        let mut referenced = BTreeSet::new();
        for root in roots {
            let mut next = Some(root);
            // `insert` stops the walk at anything seen before, loops included.
            while let Some(id) = next.filter(|id| referenced.insert(*id)) {
                next = snapshots
                    .get(&id)
                    .and_then(|info| info.as_ref())
                    .and_then(|info| info.parent)
                    .map(|p| p.0);
            }
        }
        report.unreferenced_snapshots = snapshots.keys().filter(|id| !referenced.contains(id)).count() as u64;
        Ok(snapshots.into_keys().collect())
    }

    /// Checks the snapshot records (ids, directories, layer blobs); returns them by id (`None`
    /// for one that cannot be read).
    fn check_snapshot_records(
        &self,
        raw: &crate::db::RawTables,
        report: &mut CheckReport,
    ) -> BTreeMap<u64, Option<SnapshotInfo>> {
        let problems = &mut report.problems;
        let mut snapshots: BTreeMap<u64, Option<SnapshotInfo>> = BTreeMap::new();
        for (key, json) in &raw.snapshots {
            report.snapshots += 1;
            let info = match serde_json::from_str::<SnapshotInfo>(json) {
                Ok(info) => info,
                Err(e) => {
                    problems.push(Problem::UnreadableRecord {
                        table: "snapshot",
                        key: key.to_string(),
                        error: e.to_string(),
                    });
                    snapshots.insert(*key, None);
                    continue;
                }
            };
            if info.id.0 != *key {
                problems.push(Problem::MismatchedSnapshotId {
                    key: *key,
                    id: info.id,
                });
            }
            if raw.next_snapshot.is_none_or(|next| *key >= next) {
                problems.push(Problem::SnapshotIdAhead {
                    id: SnapshotId(*key),
                    next: raw.next_snapshot,
                });
            }
            let fs_dir = self.layer_dir(SnapshotId(*key));
            if !fs_dir.is_dir() {
                problems.push(Problem::MissingSnapshotDir {
                    id: SnapshotId(*key),
                    path: fs_dir,
                });
            }
            if let Some(blob) = &info.blob {
                let digest = &blob.descriptor.digest;
                match fs::metadata(self.content.path(digest)) {
                    Ok(m) if m.is_file() && m.len() == blob.descriptor.size => {}
                    Ok(m) if m.is_file() => problems.push(Problem::LayerBlobSize {
                        id: info.id,
                        digest: digest.clone(),
                        recorded: blob.descriptor.size,
                        actual: m.len(),
                    }),
                    _ => problems.push(Problem::MissingLayerBlob {
                        id: info.id,
                        digest: digest.clone(),
                    }),
                }
            }
            snapshots.insert(*key, Some(info));
        }
        snapshots
    }

    /// Checks the layer index and the cache index; returns the snapshots they lead to, the roots
    /// of what is in use.
    fn check_index_records(
        &self,
        raw: &crate::db::RawTables,
        snapshots: &BTreeMap<u64, Option<SnapshotInfo>>,
        report: &mut CheckReport,
    ) -> Vec<u64> {
        let problems = &mut report.problems;
        let mut roots: Vec<u64> = Vec::new();
        for (chain_id, id) in &raw.layers {
            report.layers += 1;
            if snapshots.contains_key(id) {
                roots.push(*id);
            } else {
                problems.push(Problem::LayerMissingSnapshot {
                    chain_id: chain_id.clone(),
                    id: SnapshotId(*id),
                });
            }
        }
        for (key, json) in &raw.cache {
            report.cache_records += 1;
            let record = match serde_json::from_str::<CacheRecord>(json) {
                Ok(record) => record,
                Err(e) => {
                    problems.push(Problem::UnreadableRecord {
                        table: "cache",
                        key: key.clone(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            for id in record.outputs.iter().flatten() {
                if snapshots.contains_key(&id.0) {
                    roots.push(id.0);
                } else {
                    problems.push(Problem::CacheMissingSnapshot {
                        key: key.clone(),
                        id: *id,
                    });
                }
            }
        }
        roots
    }

    /// Checks the cache-mount records; returns the snapshots they were seeded from, which they
    /// keep as children do.
    fn check_cache_mount_records(
        &self,
        raw: &crate::db::RawTables,
        snapshots: &BTreeMap<u64, Option<SnapshotInfo>>,
        report: &mut CheckReport,
    ) -> Result<Vec<u64>, Error> {
        let problems = &mut report.problems;
        let mut roots = Vec::new();
        for (key, json) in self.db.cache_mount_records()? {
            report.cache_mounts += 1;
            let info = match crate::cachemount::decode(key, &json) {
                Ok(info) => info,
                Err(e) => {
                    problems.push(Problem::UnreadableRecord {
                        table: "cache mount",
                        key: key.to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            if raw.next_snapshot.is_none_or(|next| key >= next) {
                problems.push(Problem::CacheMountIdAhead {
                    id: info.id,
                    next: raw.next_snapshot,
                });
            }
            let dir = self.cache_mount_dir(info.id);
            if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                problems.push(Problem::MissingCacheMountDir {
                    id: info.id,
                    path: dir,
                });
            }
            if let Some(parent) = info.parent {
                if snapshots.contains_key(&parent.0) {
                    roots.push(parent.0);
                } else {
                    problems.push(Problem::CacheMountMissingParent { id: info.id, parent });
                }
            }
        }
        Ok(roots)
    }

    /// Checks what recovery should have left: snapshot and cache-mount directories only with
    /// records, no work directories, no ingest files, nothing in `mnt/`.
    fn check_dirs(&self, snapshots: &BTreeSet<u64>, report: &mut CheckReport) -> Result<(), Error> {
        for path in sorted_entries(&self.snapshots_dir())? {
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok());
            match id {
                Some(id) if snapshots.contains(&id) => {
                    let work = path.join("work");
                    if fs::symlink_metadata(&work).is_ok() {
                        report.problems.push(Problem::LeftoverWorkDir { path: work });
                    }
                }
                _ => report.problems.push(Problem::OrphanSnapshotDir { path }),
            }
        }
        let mounts: BTreeSet<u64> = self
            .db
            .cache_mount_records()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for path in sorted_entries(&self.cache_mounts_dir())? {
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok());
            if !id.is_some_and(|id| mounts.contains(&id)) {
                report.problems.push(Problem::OrphanCacheMountDir { path });
            }
        }
        for path in sorted_entries(&self.root.join("ingest"))? {
            report.problems.push(Problem::StrayIngest { path });
        }
        let mnt = self.mnt_dir();
        let mnt_dev = fs::metadata(&mnt).map(|m| m.dev()).ok();
        for path in sorted_entries(&mnt)? {
            let what = match fs::symlink_metadata(&path) {
                Err(e) => format!("unreadable: {e}"),
                Ok(m) if !m.is_dir() => "not a directory".to_string(),
                Ok(m) if Some(m.dev()) != mnt_dev => "still mounted".to_string(),
                Ok(_) => match fs::read_dir(&path) {
                    Ok(entries) => format!("a directory with {} entries", entries.count()),
                    Err(e) => format!("an unreadable directory: {e}"),
                },
            };
            report.problems.push(Problem::StrayMountPoint { path, what });
        }
        Ok(())
    }
}

/// Reports missing parents and parent loops.
fn check_parents(snapshots: &BTreeMap<u64, Option<SnapshotInfo>>, problems: &mut Vec<Problem>) {
    let parent_of = |id: u64| -> Option<u64> {
        snapshots
            .get(&id)
            .and_then(|info| info.as_ref())
            .and_then(|info| info.parent)
            .map(|p| p.0)
    };
    for id in snapshots.keys() {
        if let Some(parent) = parent_of(*id)
            && !snapshots.contains_key(&parent)
        {
            problems.push(Problem::MissingParent {
                id: SnapshotId(*id),
                parent: SnapshotId(parent),
            });
        }
    }
    // Walks from every snapshot; ids whose chain is known to end are not walked again.
    let mut ends: BTreeSet<u64> = BTreeSet::new();
    for start in snapshots.keys() {
        let mut path: Vec<u64> = Vec::new();
        let mut on_path: BTreeSet<u64> = BTreeSet::new();
        let mut next = Some(*start);
        while let Some(id) = next {
            if ends.contains(&id) || !snapshots.contains_key(&id) {
                break;
            }
            if !on_path.insert(id) {
                // A loop: report it once, by its smallest id, and treat it as ended.
                let position = path.iter().position(|p| *p == id).unwrap_or(0);
                if let Some(smallest) = path[position..].iter().min() {
                    problems.push(Problem::ParentLoop {
                        id: SnapshotId(*smallest),
                    });
                }
                break;
            }
            path.push(id);
            next = parent_of(id);
        }
        ends.extend(path);
    }
}

/// Reports mounts at or below `root/` (the state directory itself may be a mount point).
fn check_mounts(root: &Path, report: &mut CheckReport) {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for path in mount_points(&table) {
        if path != root && path.starts_with(root) {
            report.problems.push(Problem::StrayMount { path });
        }
    }
}

/// The entries of a directory, sorted; a missing directory has none.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Io {
            action: "list",
            path: dir.to_path_buf(),
            source,
        })?;
    paths.sort();
    Ok(paths)
}

/// The digest and size of a file's content.
fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256Writer::new(io::sink());
    io::copy(&mut file, &mut hasher)?;
    let (digest, size, _) = hasher.finish();
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::CacheRecord;

    /// A committed snapshot without a parent (needs no mount) holding one file.
    fn snapshot(store: &Store, parent: Option<SnapshotId>) -> SnapshotId {
        let active = store.prepare(parent, "test").unwrap();
        fs::write(active.layer_dir().join("file"), "x").unwrap();
        active.commit().unwrap().id
    }

    /// Records are built from JSON, so fields added later (all defaulted) need no change here.
    fn record(outputs: Vec<Option<SnapshotId>>) -> CacheRecord {
        serde_json::from_value(serde_json::json!({ "outputs": outputs, "created": 0 })).unwrap()
    }

    #[test]
    fn a_consistent_store_passes() {
        let (_dir, store) = crate::open_temp();
        let report = store.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.snapshots, 0);

        let blob = store.content().write(b"layer bytes").unwrap();
        let base = snapshot(&store, None);
        let layer = crate::LayerBlob {
            diff_id: Digest::of(b"tar"),
            descriptor: oci::Descriptor::new("application/vnd.oci.image.layer.v1.tar", blob, 11),
            empty: false,
        };
        store.set_layer_blob(base, layer).unwrap();
        store.set_layer_snapshot(&Digest::of(b"chain"), base).unwrap();
        let orphan = snapshot(&store, None);
        store.cache_put(&Digest::of(b"key"), &record(vec![None])).unwrap();
        let report = store.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(
            (
                report.blobs,
                report.blob_bytes,
                report.snapshots,
                report.layers,
                report.cache_records
            ),
            (1, 11, 2, 1, 1)
        );
        assert_eq!(
            report.unreferenced_snapshots, 1,
            "snapshot {orphan} is not referenced"
        );
    }

    #[test]
    fn a_flipped_blob_byte_is_reported() {
        let (_dir, store) = crate::open_temp();
        let digest = store.content().write(b"some content").unwrap();
        let path = store.content().path(&digest);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::CorruptBlob {
                digest,
                actual: Digest::of(&bytes)
            }]
        );
        assert!(report.problems[0].to_string().contains("is corrupt"));
    }

    #[test]
    fn a_snapshot_without_its_directory_is_reported() {
        let (_dir, store) = crate::open_temp();
        let base = snapshot(&store, None);
        let child = snapshot(&store, Some(base));
        fs::remove_dir_all(store.layer_dir(base).parent().unwrap()).unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::MissingSnapshotDir {
                id: base,
                path: store.layer_dir(base)
            }]
        );
        assert_ne!(base, child);
    }

    #[test]
    fn a_cache_record_naming_a_missing_snapshot_is_reported() {
        let (_dir, store) = crate::open_temp();
        let present = snapshot(&store, None);
        let key = Digest::of(b"key");
        store
            .cache_put(&key, &record(vec![Some(present), Some(SnapshotId(99))]))
            .unwrap();
        store
            .set_layer_snapshot(&Digest::of(b"chain"), SnapshotId(98))
            .unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![
                Problem::LayerMissingSnapshot {
                    chain_id: Digest::of(b"chain").to_string(),
                    id: SnapshotId(98)
                },
                Problem::CacheMissingSnapshot {
                    key: key.to_string(),
                    id: SnapshotId(99)
                },
            ]
        );
    }

    #[test]
    fn layer_blob_records_must_match_the_content_store() {
        let (_dir, store) = crate::open_temp();
        let blob = store.content().write(b"12345").unwrap();
        let id = snapshot(&store, None);
        let descriptor = |digest: Digest, size| crate::LayerBlob {
            diff_id: Digest::of(b"tar"),
            descriptor: oci::Descriptor::new("application/vnd.oci.image.layer.v1.tar", digest, size),
            empty: false,
        };
        store.set_layer_blob(id, descriptor(blob.clone(), 4)).unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::LayerBlobSize {
                id,
                digest: blob,
                recorded: 4,
                actual: 5
            }]
        );
        let missing = Digest::of(b"never stored");
        store.set_layer_blob(id, descriptor(missing.clone(), 1)).unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::MissingLayerBlob { id, digest: missing }]
        );
    }

    #[test]
    fn debris_is_reported_when_recovery_did_not_run() {
        let (dir, store) = crate::open_temp();
        let id = snapshot(&store, None);
        // Debris appearing after open (recovery has run already) stands for debris recovery
        // failed to remove.
        let root = store.root().to_path_buf();
        fs::create_dir_all(root.join("snapshots/12345/fs")).unwrap();
        fs::create_dir_all(root.join("snapshots").join(id.to_string()).join("work")).unwrap();
        fs::write(root.join("ingest/1-1"), "partial").unwrap();
        fs::create_dir(root.join("mnt/1-1")).unwrap();
        fs::write(root.join("blobs/sha256/not-a-digest"), "").unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![
                Problem::StrayBlobEntry {
                    path: root.join("blobs/sha256/not-a-digest")
                },
                Problem::LeftoverWorkDir {
                    path: root.join("snapshots").join(id.to_string()).join("work")
                },
                Problem::OrphanSnapshotDir {
                    path: root.join("snapshots/12345")
                },
                Problem::StrayIngest {
                    path: root.join("ingest/1-1")
                },
                Problem::StrayMountPoint {
                    path: root.join("mnt/1-1"),
                    what: "a directory with 0 entries".into(),
                },
            ]
        );
        for problem in &report.problems {
            assert!(!problem.remedy().is_empty());
        }
        // Opening again recovers all of it but the stray blob entry, which is not debris.
        drop(store);
        let store = Store::open(dir.path(), || {}).unwrap();
        let report = store.check().unwrap();
        assert_eq!(
            report.problems,
            vec![Problem::StrayBlobEntry {
                path: root.join("blobs/sha256/not-a-digest")
            }]
        );
    }

    #[test]
    fn parent_loops_and_missing_parents_are_found() {
        let info = |id: u64, parent: Option<u64>| {
            let json = serde_json::json!({ "id": id, "parent": parent, "created": 0, "description": "" });
            Some(serde_json::from_value::<SnapshotInfo>(json).unwrap())
        };
        let snapshots: BTreeMap<u64, Option<SnapshotInfo>> = [
            (1, info(1, None)),
            (2, info(2, Some(1))),
            (3, info(3, Some(5))),
            (4, info(4, Some(6))),
            (5, info(5, Some(4))),
            (6, info(6, Some(5))),
            (7, info(7, Some(9))),
            (8, None),
        ]
        .into_iter()
        .collect();
        let mut problems = Vec::new();
        check_parents(&snapshots, &mut problems);
        assert_eq!(
            problems,
            vec![
                Problem::MissingParent {
                    id: SnapshotId(7),
                    parent: SnapshotId(9)
                },
                Problem::ParentLoop { id: SnapshotId(4) },
            ]
        );
    }
}
