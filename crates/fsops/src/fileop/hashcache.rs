//! Remembered file digests, so hashing an unchanged build context reads no file content.
//!
//! An entry is keyed by the file's identity (device and inode) and is valid while its size,
//! modification time and change time are what they were when it was hashed. The change time
//! cannot be set by users and moves on every write, chmod, chown or xattr change, so a hit
//! means the content and xattrs are the ones hashed before. (BuildKit keeps a similar cache of
//! file hashes keyed by path and stat data for its local sources.)
//!
//! The cache lives in memory; keeping it across processes is its owner's business: the store
//! gives [`HashCache::with_loader`] a function that opens a reader of its database for a walk,
//! and saves [`HashCache::take_changes`] there, through the serde form of [`FileKey`] and
//! [`Entry`]. Entries are loaded one file at a time, when a file is hashed, so what a build
//! pays does not grow with the number of files every earlier build has seen.

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

/// Reads the entries an earlier process saved, file by file (`None` when there is none, or
/// when it cannot be read: a lost entry only costs hashing the file again).
pub type Lookup = Box<dyn FnMut(FileKey) -> Option<Entry> + Send>;

/// Opens a [`Lookup`] for one walk over a tree (`None` when nothing can be read): a database
/// reads every file of the walk from one snapshot, and lets it go when the walk ends.
pub type Loader = Box<dyn Fn() -> Option<Lookup> + Send + Sync>;

/// Remembered digests of regular files, shared by every build of a store.
#[derive(Default)]
pub struct HashCache {
    /// Files looked up so far: `None` when neither memory nor the loader knew them.
    entries: Mutex<HashMap<FileKey, Option<Entry>>>,
    changed: Mutex<HashSet<FileKey>>,
    loader: Option<Loader>,
}

impl std::fmt::Debug for HashCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashCache")
            .field("remembered", &self.len())
            .field("loader", &self.loader.is_some())
            .finish()
    }
}

/// One walk's access to a [`HashCache`]: what memory does not know is read through one
/// [`Lookup`], opened at the first such file.
pub(crate) struct Reader<'a> {
    cache: &'a HashCache,
    lookup: Option<Option<Lookup>>,
}

impl Reader<'_> {
    /// The remembered entry of the file `st` describes, if it is still valid.
    pub(crate) fn get(&mut self, st: &Stat) -> Option<Entry> {
        let key = HashCache::key(st);
        let known = self
            .cache
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let entry = match known {
            Some(known) => known,
            None => {
                let loader = self.cache.loader.as_ref();
                let lookup = self.lookup.get_or_insert_with(|| loader.and_then(|open| open()));
                let loaded = lookup.as_mut().and_then(|lookup| lookup(key));
                // A `put` since the miss wins over what was loaded.
                let mut entries = self.cache.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries.entry(key).or_insert(loaded).clone()
            }
        }?;
        let valid = entry.size == st.st_size
            && entry.mtime == (st.st_mtime, st.st_mtime_nsec as i64)
            && entry.ctime == (st.st_ctime, st.st_ctime_nsec as i64);
        valid.then_some(entry)
    }

    /// Remembers the digest and xattrs of the file `st` describes.
    pub(crate) fn put(&self, st: &Stat, content: [u8; 32], xattrs: Vec<Xattr>) {
        self.cache.put(st, content, xattrs);
    }
}

impl HashCache {
    /// A cache that opens a [`Lookup`] through `loader` for each walk that meets files it
    /// has not seen in this process.
    pub fn with_loader(loader: Loader) -> HashCache {
        HashCache {
            loader: Some(loader),
            ..HashCache::default()
        }
    }

    fn key(st: &Stat) -> FileKey {
        FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    /// Access for one walk over a tree.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            cache: self,
            lookup: None,
        }
    }

    fn put(&self, st: &Stat, content: [u8; 32], xattrs: Vec<Xattr>) {
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
            .insert(key, Some(entry));
        self.changed.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    }

    /// The entries added or updated since the last call, for the owner to save.
    pub fn take_changes(&self) -> Vec<(FileKey, Entry)> {
        let changed = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        changed
            .into_iter()
            .filter_map(|k| entries.get(&k).cloned().flatten().map(|v| (k, v)))
            .collect()
    }

    /// How many files are remembered in memory (looked up and found, or hashed, in this
    /// process).
    pub fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.values().filter(|e| e.is_some()).count()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
