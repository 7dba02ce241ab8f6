//! Remembered file digests, so hashing an unchanged build context reads no file content.
//!
//! An entry is keyed by the file's identity (device and inode) and is valid while its size,
//! modification time and change time are what they were when it was hashed. The change time
//! cannot be set by users and moves on every write, chmod, chown or xattr change, so a hit
//! means the content and xattrs are the ones hashed before. (BuildKit keeps a similar cache of
//! file hashes keyed by path and stat data for its local sources.)
//!
//! The cache lives in memory; keeping it across processes is its owner's business: the store
//! loads it with [`HashCache::with_entries`] and saves [`HashCache::take_changes`] in its
//! database, through the serde form of [`FileKey`] and [`Entry`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rustix::fs::Stat;

use crate::xattr::Xattr;

/// Identifies a file.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileKey {
    /// The device holding the file.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
}

/// What is remembered about a file: the stat data it was hashed with, its content digest and
/// its xattrs. Opaque except for its serde form.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// sha256 of the content.
    pub(crate) content: [u8; 32],
    /// The file's xattrs.
    pub(crate) xattrs: Vec<Xattr>,
}

/// Remembered digests of regular files, shared by every build of a store.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<HashMap<FileKey, Entry>>,
    changed: Mutex<HashSet<FileKey>>,
}

impl HashCache {
    /// A cache holding `entries` (as its owner saved them from [`HashCache::take_changes`]).
    pub fn with_entries(entries: HashMap<FileKey, Entry>) -> HashCache {
        HashCache {
            entries: Mutex::new(entries),
            changed: Mutex::new(HashSet::new()),
        }
    }

    fn key(st: &Stat) -> FileKey {
        FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    /// The remembered entry of the file `st` describes, if it is still valid.
    pub(crate) fn get(&self, st: &Stat) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&Self::key(st))?;
        let valid = entry.size == st.st_size
            && entry.mtime == (st.st_mtime, st.st_mtime_nsec as i64)
            && entry.ctime == (st.st_ctime, st.st_ctime_nsec as i64);
        valid.then(|| entry.clone())
    }

    /// Remembers the digest and xattrs of the file `st` describes.
    pub(crate) fn put(&self, st: &Stat, content: [u8; 32], xattrs: Vec<Xattr>) {
        let entry = Entry {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            content,
            xattrs,
        };
        let key = Self::key(st);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, entry);
        self.changed.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    }

    /// The entries added or updated since the last call, for the owner to save.
    pub fn take_changes(&self) -> Vec<(FileKey, Entry)> {
        let changed = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        changed
            .into_iter()
            .filter_map(|k| entries.get(&k).map(|v| (k, v.clone())))
            .collect()
    }

    /// How many files are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
