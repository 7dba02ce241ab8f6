//! The daemon's side of a context transfer (BuildKit's fsutil does the same job): the daemon
//! keeps a copy of each directory a client sends (per client and directory path, under
//! `contexts/` in the state directory), compares the client's listing with it, fixes what only
//! needs metadata or structure, asks for the content of files whose type, size or modification
//! time changed, and removes what the client no longer has. A one-file change of a large
//! context sends one file.
//!
//! Untrusted input: every path is checked ([`api::walk::components`]), a path's parent must be
//! a directory listed before it (so nothing is ever written through a symlink: a parent on
//! disk is made a real directory before its children are looked at), only files, directories
//! and symlinks are made, and a file's content must have exactly the size its entry announced.
//! A copy is used by one build at a time ([`Mirrors::hold`]); a transfer that fails leaves a
//! copy that the next transfer compares and repairs like any other.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use api::pb;
use sha2::{Digest, Sha256};

/// Most entries one directory's listing may have.
pub const MAX_ENTRIES: usize = 4_000_000;

/// The copies of client directories, under `<state>/contexts/`.
#[derive(Debug, Default)]
pub struct Mirrors {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A copy held by one build.
pub struct Held {
    /// Where the copy is (`…/fs`).
    pub dir: PathBuf,
    /// Scratch space for files being received (`…/part`).
    part: PathBuf,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The client sent something invalid.
    #[error("invalid context transfer: {0}")]
    Invalid(String),
    /// The client went away.
    #[error("the client stopped sending its files")]
    Gone,
    /// Writing the copy failed.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SyncError {
    let path = path.to_path_buf();
    move |source| SyncError::Io { action, path, source }
}

/// The name of a copy's directory under `contexts/`.
fn key(client: &str, name: &str, path: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hex::encode(&hasher.finalize()[..16])
}

/// Where the copy of directory `path` of client `client`, sent as `name`, is (what
/// [`Mirrors::hold`] gives, known before it is held).
pub fn copy_dir(root: &Path, client: &str, name: &str, path: &str) -> PathBuf {
    root.join("contexts").join(key(client, name, path)).join("fs")
}

impl Mirrors {
    /// Takes the copy of directory `path` of client `client`, sent as local directory `name`,
    /// under `root` (waiting while another build of the same client, name and directory uses
    /// it). The name is part of the key: one build may send a directory under two names (the
    /// context and a named context, a cache directory), each with its own copy.
    pub async fn hold(&self, root: &Path, client: &str, name: &str, path: &str) -> Result<Held, SyncError> {
        let key = key(client, name, path);
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .map_err(|_| SyncError::Invalid("poisoned".into()))?;
            locks.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        let dir = copy_dir(root, client, name, path);
        let part = dir.with_file_name("part");
        for d in [&dir, &part] {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        Ok(Held {
            dir,
            part,
            _lock: guard,
        })
    }
}

impl Mirrors {
    /// Removes the copies no build holds (`kiln prune --all` through the daemon); returns how
    /// many went and their bytes. A build that wants one meanwhile waits, then starts afresh.
    pub fn prune(&self, root: &Path) -> (u64, u64) {
        let base = root.join("contexts");
        let Ok(entries) = std::fs::read_dir(&base) else {
            return (0, 0);
        };
        let (mut count, mut bytes) = (0, 0);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "ssh" {
                continue;
            }
            let lock = match self.locks.lock() {
                Ok(mut locks) => locks.entry(name).or_default().clone(),
                Err(_) => return (count, bytes),
            };
            let Ok(_held) = lock.try_lock() else {
                continue;
            };
            let size = tree_size(&entry.path());
            if std::fs::remove_dir_all(entry.path()).is_ok() {
                count += 1;
                bytes += size;
            }
        }
        (count, bytes)
    }
}

/// The apparent size of the files under `dir`.
fn tree_size(dir: &Path) -> u64 {
    let mut size = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => size += m.len(),
                Err(_) => {}
            }
        }
    }
    size
}

/// What a client sends during a transfer, routed to it by the session.
#[derive(Debug)]
pub enum Incoming {
    /// A chunk of the listing.
    List(pb::FileList),
    /// A chunk of a file.
    Data(pb::FileData),
}

/// What a transfer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries in the listing.
    pub entries: u64,
    /// Files whose content was sent.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Receives directory `local` into `held` (blocking: run it off the async workers). `want`
/// sends the daemon's request for content to the client.
pub fn receive(
    held: &Held,
    local: &str,
    incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
    want: &dyn Fn(pb::FileWant) -> bool,
) -> Result<Stats, SyncError> {
    let entries = receive_listing(local, incoming)?;
    // Everything listed (what stays in the copy), and the directories alone (the only entries
    // that can be parents: a child of a symlink would be written through it).
    let mut listed: HashSet<&[u8]> = HashSet::with_capacity(entries.len());
    let mut dirs: HashSet<&[u8]> = HashSet::new();
    let mut wanted = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        api::walk::check_entry(entry, &dirs).map_err(SyncError::Invalid)?;
        if !listed.insert(&entry.path) {
            return Err(SyncError::Invalid(format!(
                "{:?} is listed twice",
                String::from_utf8_lossy(&entry.path)
            )));
        }
        if is_dir(entry.mode) {
            dirs.insert(&entry.path);
        }
        if !apply_entry(&held.dir, entry)? {
            wanted.push(index as u64);
        }
    }
    remove_unlisted(&held.dir, &listed)?;
    let mut stats = Stats {
        entries: entries.len() as u64,
        ..Stats::default()
    };
    if !want(pb::FileWant {
        local: local.to_string(),
        indexes: wanted.clone(),
    }) {
        return Err(SyncError::Gone);
    }
    for index in wanted {
        let entry = &entries[index as usize];
        stats.bytes += receive_file(held, local, index, entry, incoming)?;
        stats.files += 1;
    }
    // Directory times last: writing their entries changed them.
    for entry in entries.iter().rev().filter(|e| is_dir(e.mode)) {
        set_times(&held.dir.join(OsStr::from_bytes(&entry.path)), entry, false)?;
    }
    Ok(stats)
}

use api::walk::{is_dir, is_file, is_link};

const fn libc_s_ifmt() -> u32 {
    0o170000
}

fn receive_listing(
    local: &str,
    incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
) -> Result<Vec<pb::FileEntry>, SyncError> {
    let mut entries = Vec::new();
    loop {
        match incoming.blocking_recv() {
            Some(Incoming::List(list)) if list.local == local => {
                if entries.len() + list.entries.len() > MAX_ENTRIES {
                    return Err(SyncError::Invalid(format!(
                        "directory {local} has more than {MAX_ENTRIES} entries"
                    )));
                }
                entries.extend(list.entries);
                if list.last {
                    return Ok(entries);
                }
            }
            Some(other) => {
                return Err(SyncError::Invalid(format!(
                    "expected the listing of {local}, got {}",
                    describe(&other)
                )));
            }
            None => return Err(SyncError::Gone),
        }
    }
}

fn describe(message: &Incoming) -> String {
    match message {
        Incoming::List(l) => format!("the listing of {}", l.local),
        Incoming::Data(d) => format!("content of {} #{}", d.local, d.index),
    }
}

/// Makes the copy's entry match `entry` as far as metadata can; `false` when the file's content
/// must be sent. The entry's parent is a real directory already.
fn apply_entry(root: &Path, entry: &pb::FileEntry) -> Result<bool, SyncError> {
    let path = root.join(OsStr::from_bytes(&entry.path));
    let existing = std::fs::symlink_metadata(&path).ok();
    let same_type = existing
        .as_ref()
        .is_some_and(|m| m.mode() & libc_s_ifmt() == entry.mode & libc_s_ifmt());
    if is_file(entry.mode) {
        let current = existing.as_ref().filter(|m| {
            same_type
                && m.size() == entry.size
                && m.mtime() == entry.mtime_seconds
                && m.mtime_nsec() == i64::from(entry.mtime_nanos)
        });
        let Some(meta) = current else {
            if existing.is_some_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
            }
            return Ok(false);
        };
        fix_owner_and_mode(&path, meta, entry)?;
        return Ok(true);
    }
    if is_link(entry.mode) {
        let current = same_type
            && std::fs::read_link(&path).is_ok_and(|t| t.as_os_str().as_bytes() == entry.link.as_slice());
        if !current {
            remove(&path, existing.as_ref())?;
            std::os::unix::fs::symlink(OsStr::from_bytes(&entry.link), &path).map_err(io("create", &path))?;
        }
        std::os::unix::fs::lchown(&path, Some(entry.uid), Some(entry.gid))
            .map_err(io("set the owner of", &path))?;
        set_times(&path, entry, true)?;
        return Ok(true);
    }
    match existing {
        Some(meta) if same_type => fix_owner_and_mode(&path, &meta, entry)?,
        other => {
            remove(&path, other.as_ref())?;
            std::fs::create_dir(&path).map_err(io("create", &path))?;
            let meta = std::fs::symlink_metadata(&path).map_err(io("read", &path))?;
            fix_owner_and_mode(&path, &meta, entry)?;
        }
    }
    Ok(true)
}

fn remove(path: &Path, existing: Option<&std::fs::Metadata>) -> Result<(), SyncError> {
    match existing {
        None => Ok(()),
        Some(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(io("remove", path)),
        Some(_) => std::fs::remove_file(path).map_err(io("remove", path)),
    }
}

fn fix_owner_and_mode(path: &Path, meta: &std::fs::Metadata, entry: &pb::FileEntry) -> Result<(), SyncError> {
    if meta.uid() != entry.uid || meta.gid() != entry.gid {
        std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid))
            .map_err(io("set the owner of", path))?;
    }
    // After chown, which clears set-id bits.
    let mode = entry.mode & 0o7777;
    if meta.mode() & 0o7777 != mode || meta.uid() != entry.uid || meta.gid() != entry.gid {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io("set the mode of", path))?;
    }
    Ok(())
}

fn set_times(path: &Path, entry: &pb::FileEntry, nofollow: bool) -> Result<(), SyncError> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let time = Timespec {
        tv_sec: entry.mtime_seconds,
        tv_nsec: i64::from(entry.mtime_nanos.min(999_999_999)) as _,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    let flags = if nofollow {
        AtFlags::SYMLINK_NOFOLLOW
    } else {
        AtFlags::empty()
    };
    utimensat(CWD, path, &times, flags).map_err(|e| SyncError::Io {
        action: "set the times of",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Removes every entry of the copy that the listing does not have.
fn remove_unlisted(root: &Path, listed: &HashSet<&[u8]>) -> Result<(), SyncError> {
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        for item in std::fs::read_dir(&dir).map_err(io("read", &dir))? {
            let item = item.map_err(io("read", &dir))?;
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(item.file_name().as_bytes());
            let path = item.path();
            let kind = item.file_type().map_err(io("read", &path))?;
            if !listed.contains(child.as_slice()) {
                if kind.is_dir() {
                    std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
                } else {
                    std::fs::remove_file(&path).map_err(io("remove", &path))?;
                }
            } else if kind.is_dir() {
                stack.push((path, child));
            }
        }
    }
    Ok(())
}

/// Receives the content of entry `index` into a scratch file, gives it the entry's metadata and
/// renames it into place. Returns its size.
fn receive_file(
    held: &Held,
    local: &str,
    index: u64,
    entry: &pb::FileEntry,
    incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
) -> Result<u64, SyncError> {
    let scratch = held.part.join(index.to_string());
    let mut file = std::fs::File::create(&scratch).map_err(io("create", &scratch))?;
    let mut size = 0u64;
    loop {
        let data = match incoming.blocking_recv() {
            Some(Incoming::Data(d)) if d.local == local && d.index == index => d,
            Some(other) => {
                return Err(SyncError::Invalid(format!(
                    "expected content of {local} #{index}, got {}",
                    describe(&other)
                )));
            }
            None => return Err(SyncError::Gone),
        };
        size += data.data.len() as u64;
        if size > entry.size {
            break;
        }
        file.write_all(&data.data).map_err(io("write", &scratch))?;
        if data.last {
            break;
        }
    }
    let target = held.dir.join(OsStr::from_bytes(&entry.path));
    if size != entry.size {
        let _ = std::fs::remove_file(&scratch);
        return Err(SyncError::Invalid(format!(
            "{} changed while it was sent ({} bytes listed, {size} sent): build again",
            String::from_utf8_lossy(&entry.path),
            entry.size
        )));
    }
    std::os::unix::fs::fchown(&file, Some(entry.uid), Some(entry.gid))
        .map_err(io("set the owner of", &scratch))?;
    file.set_permissions(std::fs::Permissions::from_mode(entry.mode & 0o7777))
        .map_err(io("set the mode of", &scratch))?;
    drop(file);
    set_times(&scratch, entry, false)?;
    std::fs::rename(&scratch, &target).map_err(io("rename into place", &target))?;
    Ok(size)
}
