//! kiln's state directory: everything kiln keeps on disk, and the only code that writes there.
//!
//! Main types:
//! - [`Store`]: opens (and locks) a state directory; owns the metadata database, the
//!   [`ContentStore`] of blobs and the snapshots.
//! - Snapshots: each is one overlayfs layer directory plus a parent; [`Active`] is a snapshot
//!   being written (a RUN or COPY step), [`Store::view`] mounts a committed one read-only.
//! - [`apply_layer`]: a layer tarball applied onto a snapshot (the conversion itself, and the
//!   file operations on snapshots, are `fsops`'s; this crate only adds its crash-test point).
//! - The cache index ([`CacheRecord`]): solver cache keys → results, and the layer index
//!   (chain IDs of pulled layers → snapshots), so a layer is applied once and reused.
//! - [`Store::check`]: verifies that the directory is consistent (`kiln debug check`);
//!   [`fault`]: named points where crash tests kill the process.
//! - [`logs`]: one log file per build, for `kiln logs`.
//! - [`cachemount`]: cache mounts (`RUN --mount=type=cache`), directories kept across builds
//!   and shared by steps as their sharing mode says ([`Store::acquire_cache_mount`]).
//! - [`gc`]: disk accounting and pruning ([`Store::disk_usage`], [`Store::prune`],
//!   [`Store::collect_garbage`]).
//!
//! Layout of the state directory:
//! ```text
//! lock                 exclusive lock held while a process uses the store
//! metadata.redb        metadata database (redb): snapshots, layers, cache index
//! blobs/sha256/<hex>   content store
//! ingest/              blobs being written
//! snapshots/<id>/fs    layer directories; snapshots/<id>/work: overlay work dirs
//! mnt/                 mount points of mounted snapshots and tmpfs, empty directories
//! logs/<id>.jsonl      build logs (the newest 50; counted and pruned by `gc`)
//! cache-mounts/<id>/   cache mounts (records in the database's `cache_mounts` table)
//! session-key          the key of keyed digests ([`Store::keyed_digest`]), mode 0600
//! ```
//!
//! Invariants:
//! - A snapshot directory is in the database only once it is complete; anything else found at
//!   start-up (half-written snapshots, ingest files, mounts) is debris of a crash and removed.
//! - Committed snapshots and blobs are immutable.
//! - Mounts are owned by guards ([`Mounted`]) and undone on drop.
//!
//! This crate does not know about LLB, the solver or registries; what is done to the files of a
//! snapshot is `fsops`'s (the store keeps that crate's file-digest cache in its database and
//! memoizes content digests of committed snapshots). Tests: unit tests here,
//! integration tests (as root, with overlayfs) in `tests/`.

#![forbid(unsafe_code)]

pub mod cachemount;
mod check;
mod content;
mod db;
pub mod fault;
pub mod gc;
mod keyed;
pub mod logs;
mod mount;
mod snapshot;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use cachemount::{Acquired, CacheMount, CacheMountInfo, CacheMountSpec, NewCacheMount, Sharing};
pub use check::{CheckReport, Problem};
pub use content::{ContentStore, Ingest};
pub use db::{CacheRecord, LayerBlob, SnapshotInfo};
pub use gc::{
    DiskUsage, Filter, Hold, OtherContent, ParseError, PruneOptions, PruneReport, RecordId, RecordKind,
    TextMatch, UsageRecord,
};
pub use mount::{EmptyDir, Mounted, mount_points};
pub use snapshot::{Active, SnapshotId};

use fsops::fileop::{self, CopyOptions, HashCache};
use fsops::layer::{ApplyStats, LayerError};
use oci::Digest;

/// Version of the on-disk format. A state directory written by another version is refused
/// (with a clear message) rather than misread.
pub const FORMAT_VERSION: u64 = 1;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metadata database failed. (redb's errors carry their own cause, an OS error
    /// included, in their message.)
    #[error("metadata database error")]
    Database(#[source] redb::Error),
    /// A database record could not be encoded.
    #[error("failed to encode a {what}")]
    Encode {
        /// What kind of record.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A database record does not decode.
    #[error("corrupt state: {what} does not decode")]
    Decode {
        /// Which record.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A blob did not have the expected digest.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the caller expected.
        expected: Digest,
        /// What was written.
        actual: Digest,
    },
    /// Stored data is not what it should be.
    #[error("corrupt state: {what}")]
    Corrupt {
        /// What is wrong.
        what: String,
    },
    /// A build log id is not one [`logs::valid_id`] accepts.
    #[error("invalid build id {0:?}: expected up to 64 characters of a-z, 0-9 and -")]
    InvalidLogId(String),
    /// A snapshot does not exist.
    #[error("snapshot {0} does not exist")]
    NoSnapshot(SnapshotId),
    /// Mounting failed.
    #[error("failed to mount {path}: {message}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The state directory was written by an incompatible version of kiln.
    #[error(
        "state directory {path} has format version {found}, this kiln uses {expected}: use another --root or remove it"
    )]
    FormatVersion {
        /// The directory.
        path: PathBuf,
        /// Its version.
        found: u64,
        /// Ours.
        expected: u64,
    },
    /// Applying or writing a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A file operation (or selecting files to hash) failed.
    #[error(transparent)]
    FileOp(#[from] fileop::FileOpError),
}

/// Applies a layer tar onto `root` (a snapshot being written), as [`fsops::layer::apply_layer`]
/// does, with the crash-test fault point `layer.apply.entry` after each entry.
pub fn apply_layer(tar: impl std::io::Read, root: &Path) -> Result<ApplyStats, LayerError> {
    fsops::layer::apply_layer_with(tar, root, || fault::point("layer.apply.entry"))
}

/// An open state directory. Cheap to share behind an `Arc`; all methods take `&self` but
/// [`Store::prepare_owned`], which takes the `Arc`.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db: std::sync::Arc<db::Db>,
    content: ContentStore,
    hashes: std::sync::OnceLock<HashCache>,
    /// The key of [`Store::keyed_digest`].
    key: keyed::Key,
    /// Snapshots in use, which garbage collection must keep ([`Store::hold`]).
    holds: gc::Holds,
    /// Build logs being written, which garbage collection must keep.
    writing_logs: logs::Writing,
    /// Cache mounts in use or being made ([`cachemount`]).
    cache_mount_uses: cachemount::Uses,
    _lock: File,
}

impl Store {
    /// Opens (creating if needed) the state directory at `root`, waiting for any other process
    /// that holds it. `on_wait` is called once if the directory is busy, before waiting.
    pub fn open(root: &Path, on_wait: impl FnOnce()) -> Result<Store, Error> {
        fs::create_dir_all(root).map_err(|source| Error::Io {
            action: "create state directory",
            path: root.into(),
            source,
        })?;
        let root = fs::canonicalize(root).map_err(|source| Error::Io {
            action: "resolve",
            path: root.into(),
            source,
        })?;
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                action: "open lock file",
                path: lock_path.clone(),
                source,
            })?;
        use rustix::fs::{FlockOperation, flock};
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            on_wait();
            flock(&lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
                action: "lock",
                path: lock_path.clone(),
                source: e.into(),
            })?;
        }
        let db = db::Db::open(&root)?;
        let content = ContentStore::open(&root)?;
        let key = keyed::Key::load(&root)?;
        let store = Store {
            root,
            db: std::sync::Arc::new(db),
            content,
            hashes: std::sync::OnceLock::new(),
            key,
            holds: gc::Holds::default(),
            writing_logs: logs::Writing::default(),
            cache_mount_uses: cachemount::Uses::default(),
            _lock: lock,
        };
        store.recover()?;
        Ok(store)
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A digest of `data` keyed by this state directory's secret key (HMAC-SHA256): equal data
    /// gives equal digests here, but nobody without the key can test a guess against one. For
    /// cache keys that must depend on values that are never stored, such as secrets.
    pub fn keyed_digest(&self, data: &[u8]) -> Digest {
        self.key.digest(data)
    }

    /// The content digest (see [`fileop::content_digest`]) of what `options` select in the
    /// committed snapshot `id`. Snapshots never change, so each answer is computed once and
    /// remembered.
    pub fn snapshot_content_digest(&self, id: SnapshotId, options: &CopyOptions) -> Result<Digest, Error> {
        let selection = format!(
            "{:?}",
            (
                &options.src,
                options.follow_symlink,
                options.allow_wildcard,
                options.allow_empty_wildcard,
                &options.include_patterns,
                &options.exclude_patterns,
                &options.context_excludes,
                &options.required_paths,
                options.source_owner.map(|o| (o.uid, o.gid)),
            )
        );
        let key = format!("content:{id}:{}", Digest::of(selection.as_bytes()));
        if let Some(known) = self.db.memo_get(&key)?
            && let Ok(digest) = known.parse::<Digest>()
        {
            return Ok(digest);
        }
        let view = self.view(id)?;
        let digest = fileop::content_digest(view.path(), options)?;
        drop(view);
        self.db.memo_put(&key, &digest.to_string())?;
        Ok(digest)
    }

    /// Remembered file digests of build contexts. Each file's entry is read from the database
    /// when the file is first hashed in this process (one read transaction per walk over a
    /// context), so a build reads the entries of its own context only, however many files
    /// earlier builds have seen.
    pub fn hash_cache(&self) -> &HashCache {
        self.hashes.get_or_init(|| {
            let db = std::sync::Arc::clone(&self.db);
            // An unreadable table only costs re-hashing.
            HashCache::with_loader(Box::new(move || {
                let reader = db.hash_reader().ok().flatten()?;
                let lookup: fsops::fileop::HashLookup = Box::new(move |key| reader.get(key));
                Some(lookup)
            }))
        })
    }

    /// The step records of the last build in `scope` (the engine's cache-miss explanations
    /// compare a build with them), as the engine saved them.
    pub fn step_records(&self, scope: &str) -> Result<Option<String>, Error> {
        self.db.memo_get(&format!("steps:{scope}"))
    }

    /// Replaces the step records of `scope` (see [`Store::step_records`]).
    pub fn save_step_records(&self, scope: &str, records: &str) -> Result<(), Error> {
        self.db.memo_put(&format!("steps:{scope}"), records)
    }

    /// Persists the file digests remembered since the last call (at most about a million are
    /// kept; beyond that the table starts over).
    pub fn save_hash_cache(&self) -> Result<(), Error> {
        let Some(cache) = self.hashes.get() else {
            return Ok(());
        };
        let entries = cache.take_changes();
        if entries.is_empty() {
            return Ok(());
        }
        self.db.put_hash_entries(&entries, 1_000_000)
    }

    /// The blob store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    fn mnt_dir(&self) -> PathBuf {
        self.root.join("mnt")
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Removes the debris a crash may have left: mounts, incomplete snapshots, work dirs,
    /// unrecorded cache-mount directories.
    /// [`Store::open`] runs it. Run it again only while nothing of this store is in use (no
    /// [`Active`], no [`Mounted`]): after killing processes a crashed kiln left behind that
    /// could still have been writing into a half-made snapshot (stale containers).
    pub fn recover(&self) -> Result<(), Error> {
        let mnt = self.mnt_dir();
        fs::create_dir_all(&mnt).map_err(|source| Error::Io {
            action: "create directory",
            path: mnt.clone(),
            source,
        })?;
        if let Ok(entries) = fs::read_dir(&mnt) {
            let mnt_dev = fs::metadata(&mnt)
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                .ok();
            for entry in entries.flatten() {
                let path = entry.path();
                mount::unmount_and_remove(&path);
                // Still there: not a mount point any more (it is on mnt/'s own filesystem) but
                // not empty, or not a directory. Whatever a dead process left in it is debris;
                // deleting it cannot reach through a mount into a snapshot.
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() && Some(std::os::unix::fs::MetadataExt::dev(&m)) == mnt_dev => {
                        let _ = fs::remove_dir_all(&path);
                    }
                    Ok(m) if !m.is_dir() => {
                        let _ = fs::remove_file(&path);
                    }
                    _ => {}
                }
            }
        }
        let snapshots = self.snapshots_dir();
        fs::create_dir_all(&snapshots).map_err(|source| Error::Io {
            action: "create directory",
            path: snapshots.clone(),
            source,
        })?;
        let known = self.db.snapshot_ids()?;
        if let Ok(entries) = fs::read_dir(&snapshots) {
            for entry in entries.flatten() {
                let path = entry.path();
                let id = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok());
                match id {
                    Some(id) if known.contains(&id) => {
                        let work = path.join("work");
                        if work.exists() {
                            let _ = fs::remove_dir_all(&work);
                        }
                    }
                    _ => {
                        let _ = fs::remove_dir_all(&path);
                    }
                }
            }
        }
        self.recover_cache_mounts()
    }

    /// Information about a committed snapshot.
    pub fn snapshot(&self, id: SnapshotId) -> Result<SnapshotInfo, Error> {
        self.db.snapshot(id)?.ok_or(Error::NoSnapshot(id))
    }

    /// The chain of snapshots ending at `id`, base first.
    pub fn chain(&self, id: SnapshotId) -> Result<Vec<SnapshotInfo>, Error> {
        let mut chain = Vec::new();
        let mut next = Some(id);
        while let Some(id) = next {
            let info = self.snapshot(id)?;
            next = info.parent;
            chain.push(info);
            if chain.len() > 10_000 {
                return Err(Error::Corrupt {
                    what: format!("snapshot chain of {id} loops"),
                });
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// The layer directory of a committed snapshot (its changes only).
    pub fn layer_dir(&self, id: SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.to_string()).join("fs")
    }

    /// Starts a new snapshot on top of `parent` (`None` = empty).
    pub fn prepare(&self, parent: Option<SnapshotId>, description: &str) -> Result<Active<'_>, Error> {
        let id = self.new_snapshot_id(parent)?;
        Active::create(self, id, parent, description)
    }

    /// [`Store::prepare`] for a snapshot that holds its own handle of the store: one that moves
    /// into a blocking task, or stays alive across awaits while other work writes into it.
    pub fn prepare_owned(
        self: &Arc<Self>,
        parent: Option<SnapshotId>,
        description: &str,
    ) -> Result<Active<'static>, Error> {
        let id = self.new_snapshot_id(parent)?;
        Active::create_shared(self.clone(), id, parent, description)
    }

    /// A fresh snapshot id, after checking that `parent` exists.
    fn new_snapshot_id(&self, parent: Option<SnapshotId>) -> Result<SnapshotId, Error> {
        if let Some(p) = parent {
            self.snapshot(p)?;
        }
        self.db.next_snapshot_id()
    }

    /// A fresh tmpfs of at most `size` bytes (mode 0700) under the state directory, unmounted
    /// when the guard drops: for data that must never reach a disk, such as secrets.
    pub fn mount_tmpfs(&self, size: u64) -> Result<Mounted, Error> {
        mount::mount_tmpfs(&self.mnt_dir(), size)
    }

    /// A fresh empty directory (mode 0755) under the state directory, removed when the guard
    /// drops (and by the next [`Store::open`] if the process dies first): for a copy from an
    /// empty input, or a read-only mount of one.
    pub fn empty_dir(&self) -> Result<EmptyDir, Error> {
        mount::empty_dir(&self.mnt_dir())
    }

    /// Mounts a committed snapshot read-only (or hands out its directory when it has no parent).
    pub fn view(&self, id: SnapshotId) -> Result<Mounted, Error> {
        let chain = self.chain(id)?;
        if chain.len() == 1 {
            return Ok(Mounted::plain(self.layer_dir(id)));
        }
        let lowers: Vec<PathBuf> = chain.iter().rev().map(|s| self.layer_dir(s.id)).collect();
        mount::mount_overlay(&self.mnt_dir(), &lowers, None)
    }

    /// The snapshot holding the layer chain `chain_id`, if it was applied before; a hit records
    /// a use of the snapshot ([`gc`]).
    pub fn layer_snapshot(&self, chain_id: &Digest) -> Result<Option<SnapshotId>, Error> {
        let id = self.db.layer(chain_id)?;
        let id = id.filter(|id| self.db.snapshot(*id).ok().flatten().is_some());
        if let Some(id) = id {
            // Usage statistics only steer garbage collection: failing to record them must not
            // fail the lookup.
            let _ = self.db.touch(None, &[id], now_unix());
        }
        Ok(id)
    }

    /// Records that `id` holds the layer chain `chain_id`.
    pub fn set_layer_snapshot(&self, chain_id: &Digest, id: SnapshotId) -> Result<(), Error> {
        self.db.set_layer(chain_id, id)
    }

    /// Records the blob of a snapshot's layer, so exports reuse it instead of recompressing.
    pub fn set_layer_blob(&self, id: SnapshotId, blob: LayerBlob) -> Result<(), Error> {
        self.db.update_snapshot(id, |info| info.blob = Some(blob))
    }

    /// Looks up a cache key; a hit records a use of the record and its snapshots ([`gc`]).
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>, Error> {
        let Some(record) = self.db.cache_get(key)? else {
            return Ok(None);
        };
        // A record whose snapshots are gone is no record.
        for id in record.outputs.iter().flatten() {
            if self.db.snapshot(*id)?.is_none() {
                return Ok(None);
            }
        }
        // Usage statistics only steer garbage collection: failing to record them must not fail
        // the lookup.
        let ids: Vec<SnapshotId> = record.outputs.iter().flatten().copied().collect();
        let _ = self.db.touch(Some(key), &ids, now_unix());
        Ok(Some(record))
    }

    /// Stores a cache record.
    pub fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<(), Error> {
        fault::point("cache.before-put");
        self.db.cache_put(key, record)?;
        fault::point("cache.after-put");
        Ok(())
    }
}

/// The current time in Unix seconds.
pub(crate) fn now_unix() -> i64 {
    unix_seconds(std::time::SystemTime::now())
}

/// `time` in Unix seconds (0 for times before 1970).
pub(crate) fn unix_seconds(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A store in a new temporary directory, for unit tests. Bind both: the store goes first, then
/// the directory.
#[cfg(test)]
pub(crate) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), || {}).unwrap();
    (dir, store)
}
