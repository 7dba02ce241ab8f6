//! Cache mounts (`RUN --mount=type=cache`): directories that persist across builds, shared by
//! the steps that mount them, never part of any result.
//!
//! Main types:
//! - [`CacheMountSpec`]: what identifies a cache (its id plus, when it is seeded from a base,
//!   that base) and what a new one is made from.
//! - [`Store::acquire_cache_mount`]: takes an instance of a cache for one step, in one of the
//!   three [`Sharing`] modes, without ever waiting: it answers [`Acquired::Ready`] (an existing
//!   instance, now held), [`Acquired::New`] (no instance can be used: a new one is reserved; the
//!   caller fills its directory and commits it) or [`Acquired::Busy`] (the caller must wait for
//!   a release and ask again). Waiting is the caller's business, so this crate needs no async
//!   runtime; the engine waits on a notification its guards send when they drop.
//! - [`CacheMount`]: a held instance; dropping it releases it. [`NewCacheMount`]: a reserved
//!   instance being made; dropping it without [`NewCacheMount::commit`] removes it.
//! - [`CacheMountInfo`]: the database record of an instance (`cache_mounts` table).
//!
//! Sharing, as BuildKit's cache mounts (`solver/llbsolver/mounts/mount.go`):
//! - `shared`: every step that asks while an instance is held in shared mode joins it, so
//!   concurrent steps write into the same directory at the same time. With none held, a free
//!   instance is taken (or, while one is still being made for a shared user, the caller waits
//!   to join it), else a new one is made.
//! - `private`: a free instance is taken exclusively; when every instance is busy (held in any
//!   mode), a new instance of the same cache is made, which later steps may reuse as well.
//! - `locked`: a free instance is taken exclusively; when all are busy the caller waits, so
//!   steps using the cache never overlap. Only when the cache has no instance at all is one
//!   made.
//!
//!   Among free instances the most recently used is taken (then the lowest id).
//!
//! Who holds what is kept in memory ([`Store`] is the only user of a state directory, thanks to
//! its lock): busy instances show as in use in `kiln du` and are never pruned.
//!
//! On disk: `cache-mounts/<id>/` is the directory that is mounted (its root carries the cache's
//! mode and owner). Ids come from the snapshot id counter, so they never collide with snapshot
//! ids and `kiln du`/`prune` filters (`id=N`) address either kind of record.
//!
//! Crash safety: a new instance's id is allocated first, then its directory is created (and
//! seeded by the caller), then its record is written (fault points `cachemount.created` and
//! `cachemount.recorded`). A crash before the record leaves a directory without a record,
//! which [`Store::open`] removes; a record never names a directory that was not complete.
//! Removal (pruning) goes the other way: records first, then directories. An instance's
//! `parent` (the snapshot it was seeded from, which is part of its identity) is a child link
//! for garbage collection, so that snapshot is never pruned before the cache mount.
//!
//! Not done here: seeding (copying from a base) and mounting, which are the engine's; exporting
//! or importing cache-mount contents (BuildKit does not either).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Error, SnapshotId, Store, fault, now_unix};

/// The directory of cache mounts in a state directory.
pub(crate) const DIR: &str = "cache-mounts";

/// How steps using the same cache at the same time share it (`sharing=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Sharing {
    /// Concurrent users share one directory (the default).
    #[default]
    Shared,
    /// A user finding the cache busy gets another instance of it.
    Private,
    /// A user finding the cache busy waits until an instance is free.
    Locked,
}

/// What identifies a cache and what a new instance of it is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMountSpec {
    /// The cache's id (`id=`, by default the mount's target).
    pub id: String,
    /// What a new instance is seeded from, as text (`None`: it starts empty). Part of the
    /// identity: the same id on another base is another cache, as in BuildKit.
    pub base: Option<String>,
    /// The snapshot the base belongs to, if any: garbage collection keeps it while the cache
    /// exists.
    pub parent: Option<SnapshotId>,
    /// For people (`kiln du`): what made the cache.
    pub description: String,
}

/// The record of one instance of a cache mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMountInfo {
    /// Its record id (the database key, not stored in the value).
    #[serde(skip, default = "unset_id")]
    pub id: SnapshotId,
    /// The cache it is an instance of ([`CacheMountSpec::id`]).
    pub cache_id: String,
    /// [`CacheMountSpec::base`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// [`CacheMountSpec::parent`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// [`CacheMountSpec::description`].
    pub description: String,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When a step last took it (Unix seconds); `None` = only when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
    /// How many times a step took it (its first use included).
    #[serde(default)]
    pub usage_count: u64,
    /// Apparent size in bytes of its directory when last measured; `None` once a step took it
    /// (its content may have changed), measured again by disk accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl CacheMountInfo {
    /// Whether this instance belongs to the cache `spec` names.
    fn is_of(&self, spec: &CacheMountSpec) -> bool {
        self.cache_id == spec.id && self.base == spec.base
    }
}

/// The id of a record being decoded, before [`decode`] sets it from the database key.
fn unset_id() -> SnapshotId {
    SnapshotId(0)
}

/// The answer of [`Store::acquire_cache_mount`].
#[derive(Debug)]
pub enum Acquired<'a> {
    /// An existing instance, now held by the caller.
    Ready(CacheMount<'a>),
    /// No instance could be used: this one was reserved for the caller, who fills its
    /// directory and commits it.
    New(NewCacheMount<'a>),
    /// Every instance is busy (or, in shared mode, the shared one is still being made): wait
    /// until a [`CacheMount`] or [`NewCacheMount`] of the store drops or commits, then ask again.
    Busy,
}

/// How an instance is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// By this many shared users.
    Shared(usize),
    /// By one private or locked user.
    Exclusive,
}

/// An instance that is held or being made.
#[derive(Debug)]
struct Busy {
    cache_id: String,
    base: Option<String>,
    hold: Hold,
    /// `false` while it is being made ([`NewCacheMount`]).
    ready: bool,
}

/// Instances in use, by record id: the in-memory half of the bookkeeping. Its lock is held
/// while a decision is made and recorded, so two callers never take the same exclusive
/// instance or make two instances for shared users.
#[derive(Debug, Default)]
pub(crate) struct Uses(Mutex<BTreeMap<u64, Busy>>);

impl Uses {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Busy>> {
        // The map stays consistent even if a holder panicked: every change is one insert or
        // remove.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ids of every instance in use (or being made).
    pub(crate) fn ids(&self) -> Vec<SnapshotId> {
        self.lock().keys().map(|id| SnapshotId(*id)).collect()
    }

    fn release(&self, id: SnapshotId) {
        let mut busy = self.lock();
        if let Some(entry) = busy.get_mut(&id.0) {
            match entry.hold {
                Hold::Shared(n) if n > 1 => entry.hold = Hold::Shared(n - 1),
                _ => {
                    busy.remove(&id.0);
                }
            }
        }
    }
}

/// A held instance of a cache mount; dropping it releases it.
#[derive(Debug)]
pub struct CacheMount<'a> {
    store: &'a Store,
    id: SnapshotId,
    path: PathBuf,
}

impl CacheMount<'_> {
    /// The instance's record id.
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// Its directory, to mount.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CacheMount<'_> {
    fn drop(&mut self) {
        self.store.cache_mount_uses.release(self.id);
    }
}

/// A reserved new instance of a cache mount. Its directory does not exist yet: the caller may
/// create it at [`NewCacheMount::path`] (say, as a copy of the base), or leave that to
/// [`NewCacheMount::commit`], which makes an empty one. Dropping it uncommitted removes the
/// directory and the reservation.
#[derive(Debug)]
pub struct NewCacheMount<'a> {
    store: &'a Store,
    id: SnapshotId,
    spec: CacheMountSpec,
    path: PathBuf,
    committed: bool,
}

impl<'a> NewCacheMount<'a> {
    /// The instance's record id.
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    /// Where its directory goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the instance permanent: creates its directory if the caller did not (empty, mode
    /// 0755, owned by kiln's user), records it, and hands it over held.
    pub fn commit(mut self) -> Result<CacheMount<'a>, Error> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::Corrupt {
                    what: format!("cache mount {} is not a directory", self.path.display()),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_root(&self.path)?;
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "stat cache mount",
                    path: self.path.clone(),
                    source,
                });
            }
        }
        fault::point("cachemount.created");
        let now = now_unix();
        let info = CacheMountInfo {
            id: self.id,
            cache_id: self.spec.id.clone(),
            base: self.spec.base.clone(),
            parent: self.spec.parent,
            description: self.spec.description.clone(),
            created: now,
            last_used: Some(now),
            usage_count: 1,
            size: None,
        };
        {
            // Recorded and marked ready at once, so that an acquirer sees either a pending
            // instance without a record or a ready one with its record.
            let mut busy = self.store.cache_mount_uses.lock();
            self.store.db.put_cache_mount(&info)?;
            if let Some(entry) = busy.get_mut(&self.id.0) {
                entry.ready = true;
            }
        }
        self.committed = true;
        fault::point("cachemount.recorded");
        Ok(CacheMount {
            store: self.store,
            id: self.id,
            path: std::mem::take(&mut self.path),
        })
    }
}

impl Drop for NewCacheMount<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
            self.store.cache_mount_uses.lock().remove(&self.id.0);
        }
    }
}

/// Creates an empty cache root with mode 0755 (whatever the umask).
fn create_root(path: &Path) -> Result<(), Error> {
    let io_error = |action| {
        move |source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    fs::create_dir(path).map_err(io_error("create cache mount"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io_error("set mode of"))
}

impl Store {
    /// The directory holding every cache mount.
    pub(crate) fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join(DIR)
    }

    /// The directory of cache mount `id`.
    pub fn cache_mount_dir(&self, id: SnapshotId) -> PathBuf {
        self.cache_mounts_dir().join(id.to_string())
    }

    /// Every cache-mount record, by id. Records that do not decode are left out (`kiln debug
    /// check` reports them).
    pub fn cache_mounts(&self) -> Result<Vec<CacheMountInfo>, Error> {
        Ok(self
            .db
            .cache_mount_records()?
            .into_iter()
            .filter_map(|(id, json)| decode(id, &json).ok())
            .collect())
    }

    /// Takes an instance of the cache `spec` names for one user in `sharing` mode, never
    /// waiting (see the [module docs](crate::cachemount) for the rules). Taking an existing
    /// instance records a use of it.
    pub fn acquire_cache_mount(
        &self,
        spec: &CacheMountSpec,
        sharing: Sharing,
    ) -> Result<Acquired<'_>, Error> {
        let mut busy = self.cache_mount_uses.lock();
        let records: Vec<CacheMountInfo> = self
            .cache_mounts()?
            .into_iter()
            .filter(|info| info.is_of(spec))
            .collect();
        let mine = |entry: &Busy| entry.cache_id == spec.id && entry.base == spec.base;
        if sharing == Sharing::Shared {
            let joined = busy
                .iter_mut()
                .find(|(_, entry)| mine(entry) && entry.ready && matches!(entry.hold, Hold::Shared(_)));
            if let Some((id, entry)) = joined {
                if let Hold::Shared(n) = entry.hold {
                    entry.hold = Hold::Shared(n + 1);
                }
                let id = SnapshotId(*id);
                return Ok(Acquired::Ready(self.take(id)));
            }
        }
        // The most recently used free instance, then the lowest id.
        let free = records
            .iter()
            .filter(|info| !busy.contains_key(&info.id.0))
            .max_by_key(|info| (info.last_used.unwrap_or(info.created), std::cmp::Reverse(info.id)));
        if let Some(info) = free {
            let hold = match sharing {
                Sharing::Shared => Hold::Shared(1),
                Sharing::Private | Sharing::Locked => Hold::Exclusive,
            };
            busy.insert(
                info.id.0,
                Busy {
                    cache_id: spec.id.clone(),
                    base: spec.base.clone(),
                    hold,
                    ready: true,
                },
            );
            return Ok(Acquired::Ready(self.take(info.id)));
        }
        let wait = match sharing {
            Sharing::Shared => busy
                .values()
                .any(|entry| mine(entry) && !entry.ready && matches!(entry.hold, Hold::Shared(_))),
            Sharing::Private => false,
            Sharing::Locked => busy.values().any(mine),
        };
        if wait {
            return Ok(Acquired::Busy);
        }
        let id = self.db.next_snapshot_id()?;
        busy.insert(
            id.0,
            Busy {
                cache_id: spec.id.clone(),
                base: spec.base.clone(),
                hold: match sharing {
                    Sharing::Shared => Hold::Shared(1),
                    Sharing::Private | Sharing::Locked => Hold::Exclusive,
                },
                ready: false,
            },
        );
        drop(busy);
        let dir = self.cache_mounts_dir();
        if let Err(source) = fs::create_dir_all(&dir) {
            self.cache_mount_uses.lock().remove(&id.0);
            return Err(Error::Io {
                action: "create directory",
                path: dir,
                source,
            });
        }
        Ok(Acquired::New(NewCacheMount {
            store: self,
            id,
            spec: spec.clone(),
            path: self.cache_mount_dir(id),
            committed: false,
        }))
    }

    /// Hands out instance `id`, already marked as held, and records the use. The use is
    /// statistics only, so failing to record it does not fail the step.
    fn take(&self, id: SnapshotId) -> CacheMount<'_> {
        let _ = self.db.touch_cache_mount(id, now_unix());
        CacheMount {
            store: self,
            id,
            path: self.cache_mount_dir(id),
        }
    }

    /// Removes cache-mount directories without a record (instances a crash interrupted while
    /// they were being made or removed). Part of [`Store::recover`].
    pub(crate) fn recover_cache_mounts(&self) -> Result<(), Error> {
        let dir = self.cache_mounts_dir();
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "create directory",
            path: dir.clone(),
            source,
        })?;
        let known: Vec<u64> = self
            .db
            .cache_mount_records()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let busy = self.cache_mount_uses.lock();
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok());
                match id {
                    Some(id) if known.contains(&id) || busy.contains_key(&id) => {}
                    _ => {
                        let path = entry.path();
                        if path.is_dir() {
                            let _ = fs::remove_dir_all(&path);
                        } else {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Decodes a stored record.
pub(crate) fn decode(id: u64, json: &str) -> Result<CacheMountInfo, serde_json::Error> {
    let mut info: CacheMountInfo = serde_json::from_str(json)?;
    info.id = SnapshotId(id);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> CacheMountSpec {
        CacheMountSpec {
            id: id.into(),
            base: None,
            parent: None,
            description: format!("cached mount {id}"),
        }
    }

    fn ready(acquired: Acquired<'_>) -> CacheMount<'_> {
        match acquired {
            Acquired::Ready(mount) => mount,
            other => panic!("expected a ready instance, got {other:?}"),
        }
    }

    fn new(acquired: Acquired<'_>) -> NewCacheMount<'_> {
        match acquired {
            Acquired::New(new) => new,
            other => panic!("expected a new instance, got {other:?}"),
        }
    }

    #[test]
    fn records_round_trip_without_their_id() {
        let info = CacheMountInfo {
            id: SnapshotId(7),
            cache_id: "/root/.cache".into(),
            base: Some("snapshot 3 /cache".into()),
            parent: Some(SnapshotId(3)),
            description: "cached mount /root/.cache from exec make".into(),
            created: 10,
            last_used: None,
            usage_count: 2,
            size: Some(4096),
        };
        let json = serde_json::to_string(&info).unwrap();
        assert!(!json.contains("\"id\""), "{json}");
        assert_eq!(decode(7, &json).unwrap(), info);
        // Fields added later default.
        let old = decode(9, r#"{"cache_id":"x","description":"d","created":1}"#).unwrap();
        assert_eq!(
            (old.id, old.base, old.size, old.usage_count),
            (SnapshotId(9), None, None, 0)
        );
    }

    #[test]
    fn a_new_cache_is_made_once_and_found_again() {
        let (_dir, store) = crate::open_temp();
        let made = new(store.acquire_cache_mount(&spec("a"), Sharing::Shared).unwrap());
        assert!(!made.path().exists());
        let id = made.id();
        let mount = made.commit().unwrap();
        assert_eq!(mount.path(), store.cache_mount_dir(id));
        let meta = fs::metadata(mount.path()).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        fs::write(mount.path().join("kept"), "x").unwrap();
        drop(mount);
        let again = ready(store.acquire_cache_mount(&spec("a"), Sharing::Locked).unwrap());
        assert_eq!(again.id(), id);
        assert!(again.path().join("kept").exists());
        drop(again);
        let records = store.cache_mounts().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].usage_count, 2);
        assert_eq!(records[0].size, None);
        // Another id, or the same id on a base, is another cache.
        let other = new(store.acquire_cache_mount(&spec("b"), Sharing::Shared).unwrap());
        assert_ne!(other.id(), id);
        let based = CacheMountSpec {
            base: Some("snapshot 1 /".into()),
            ..spec("a")
        };
        let based = new(store.acquire_cache_mount(&based, Sharing::Shared).unwrap());
        assert_ne!(based.id(), id);
    }

    #[test]
    fn shared_users_join_one_instance() {
        let (_dir, store) = crate::open_temp();
        let first = new(store.acquire_cache_mount(&spec("s"), Sharing::Shared).unwrap());
        // While the first user still makes it, another shared user waits to join.
        assert!(matches!(
            store.acquire_cache_mount(&spec("s"), Sharing::Shared).unwrap(),
            Acquired::Busy
        ));
        let first = first.commit().unwrap();
        let second = ready(store.acquire_cache_mount(&spec("s"), Sharing::Shared).unwrap());
        assert_eq!(first.id(), second.id());
        // Exclusive users cannot take it while it is shared.
        assert!(matches!(
            store.acquire_cache_mount(&spec("s"), Sharing::Locked).unwrap(),
            Acquired::Busy
        ));
        drop(first);
        assert!(matches!(
            store.acquire_cache_mount(&spec("s"), Sharing::Locked).unwrap(),
            Acquired::Busy
        ));
        drop(second);
        let locked = ready(store.acquire_cache_mount(&spec("s"), Sharing::Locked).unwrap());
        assert_eq!(store.cache_mount_uses.ids(), vec![locked.id()]);
        drop(locked);
        assert!(store.cache_mount_uses.ids().is_empty());
    }

    #[test]
    fn locked_users_take_turns() {
        let (_dir, store) = crate::open_temp();
        let first = new(store.acquire_cache_mount(&spec("l"), Sharing::Locked).unwrap());
        // Being made counts as busy.
        assert!(matches!(
            store.acquire_cache_mount(&spec("l"), Sharing::Locked).unwrap(),
            Acquired::Busy
        ));
        let first = first.commit().unwrap();
        assert!(matches!(
            store.acquire_cache_mount(&spec("l"), Sharing::Locked).unwrap(),
            Acquired::Busy
        ));
        let id = first.id();
        drop(first);
        let second = ready(store.acquire_cache_mount(&spec("l"), Sharing::Locked).unwrap());
        assert_eq!(second.id(), id);
        assert_eq!(store.cache_mounts().unwrap().len(), 1);
    }

    #[test]
    fn private_users_get_another_instance_when_busy_and_later_users_reuse_either() {
        let (_dir, store) = crate::open_temp();
        let first = new(store.acquire_cache_mount(&spec("p"), Sharing::Private).unwrap())
            .commit()
            .unwrap();
        let second = new(store.acquire_cache_mount(&spec("p"), Sharing::Private).unwrap())
            .commit()
            .unwrap();
        assert_ne!(first.id(), second.id());
        // A shared user finds both held exclusively and makes a third.
        let third = new(store.acquire_cache_mount(&spec("p"), Sharing::Shared).unwrap());
        drop(third);
        let (a, b) = (first.id(), second.id());
        drop(first);
        let reused = ready(store.acquire_cache_mount(&spec("p"), Sharing::Private).unwrap());
        assert_eq!(reused.id(), a);
        drop(second);
        let other = ready(store.acquire_cache_mount(&spec("p"), Sharing::Locked).unwrap());
        assert_eq!(other.id(), b);
        // The abandoned third instance left nothing behind.
        let ids: Vec<SnapshotId> = store.cache_mounts().unwrap().iter().map(|i| i.id).collect();
        assert_eq!(ids, vec![a, b]);
        let dirs = fs::read_dir(store.cache_mounts_dir()).unwrap().count();
        assert_eq!(dirs, 2);
    }

    #[test]
    fn an_abandoned_new_instance_lets_waiters_make_their_own() {
        let (_dir, store) = crate::open_temp();
        let made = new(store.acquire_cache_mount(&spec("x"), Sharing::Shared).unwrap());
        fs::create_dir(made.path()).unwrap();
        fs::write(made.path().join("half"), "x").unwrap();
        let path = made.path().to_path_buf();
        drop(made);
        assert!(!path.exists());
        assert!(store.cache_mounts().unwrap().is_empty());
        let again = new(store.acquire_cache_mount(&spec("x"), Sharing::Shared).unwrap());
        assert!(!again.path().exists());
    }

    #[test]
    fn the_caller_may_seed_the_directory_with_its_own_metadata() {
        let (_dir, store) = crate::open_temp();
        let made = new(store.acquire_cache_mount(&spec("m"), Sharing::Shared).unwrap());
        fs::create_dir(made.path()).unwrap();
        fs::set_permissions(made.path(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(made.path().join("seed"), "s").unwrap();
        let mount = made.commit().unwrap();
        let meta = fs::metadata(mount.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
        assert_eq!(fs::read_to_string(mount.path().join("seed")).unwrap(), "s");
    }

    #[test]
    fn recovery_removes_unrecorded_directories_only() {
        let (dir, store) = crate::open_temp();
        let kept = new(store.acquire_cache_mount(&spec("k"), Sharing::Shared).unwrap())
            .commit()
            .unwrap();
        let kept_path = kept.path().to_path_buf();
        drop(kept);
        // A crash between making a directory and recording it leaves this.
        let debris = store.cache_mounts_dir().join("999");
        fs::create_dir_all(debris.join("sub")).unwrap();
        fs::write(store.cache_mounts_dir().join("junk"), "").unwrap();
        drop(store);
        let store = Store::open(dir.path(), || {}).unwrap();
        assert!(kept_path.is_dir());
        assert!(!debris.exists());
        assert_eq!(fs::read_dir(store.cache_mounts_dir()).unwrap().count(), 1);
    }
}
