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

/// What the daemon remembers of a copy, while nothing else has written into it: the listing it
/// last made the copy match, as a digest (the same listing again needs no work) and as a hash
/// of each entry by its path's hash (only the entries whose hash changed are looked at on disk).
type Applied = Option<Remembered>;

/// See [`Applied`].
#[derive(Debug)]
struct Remembered {
    digest: [u8; 32],
    /// (path hash, entry hash), sorted; empty for listings over [`REMEMBER_ENTRIES`].
    entries: Vec<(u64, u64)>,
}

/// Listings with more entries are remembered by their digest alone (16 bytes an entry).
const REMEMBER_ENTRIES: usize = 1 << 20;

/// The copies of client directories, under `<state>/contexts/`.
#[derive(Debug, Default)]
pub struct Mirrors {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Applied>>>>,
}

/// A copy held by one build.
pub struct Held {
    /// Where the copy is (`…/fs`).
    pub dir: PathBuf,
    /// Scratch space for files being received (`…/part`).
    part: PathBuf,
    applied: tokio::sync::OwnedMutexGuard<Applied>,
}

impl Held {
    /// Forgets which listing the copy matches: something else is about to write into it (a
    /// cache export), so the next transfer compares every entry again.
    pub fn forget(&mut self) {
        *self.applied = None;
    }
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
            applied: guard,
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
            let Ok(mut held) = lock.try_lock() else {
                continue;
            };
            *held = None;
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

/// A listing's digest and its entries' (path hash, entry hash), in listing order.
fn hashes(entries: &[pb::FileEntry]) -> ([u8; 32], Vec<(u64, u64)>) {
    let first = |bytes: &[u8]| {
        let hash = Sha256::digest(bytes);
        u64::from_le_bytes(hash[..8].try_into().unwrap_or_default())
    };
    let mut hasher = Sha256::new();
    let mut each = Vec::with_capacity(entries.len());
    for entry in entries {
        let bytes = prost::Message::encode_to_vec(entry);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
        each.push((first(&entry.path), first(&bytes)));
    }
    (hasher.finalize().into(), each)
}

/// Receives directory `local` into `held` (blocking: run it off the async workers). `want`
/// sends the daemon's request for content to the client. What the copy is remembered to match
/// already is not looked at on disk: nothing at all for the same listing again.
pub fn receive(
    held: &mut Held,
    local: &str,
    incoming: &mut tokio::sync::mpsc::Receiver<Incoming>,
    want: &dyn Fn(pb::FileWant) -> bool,
) -> Result<Stats, SyncError> {
    let entries = receive_listing(local, incoming)?;
    let (digest, each) = hashes(&entries);
    // Until this transfer has finished, the copy matches no listing.
    let remembered = held.applied.take();
    if remembered.as_ref().is_some_and(|r| r.digest == digest) {
        *held.applied = remembered;
        let nothing = pb::FileWant {
            local: local.to_string(),
            indexes: Vec::new(),
        };
        if !want(nothing) {
            return Err(SyncError::Gone);
        }
        return Ok(Stats {
            entries: entries.len() as u64,
            ..Stats::default()
        });
    }
    let known = remembered.map(|r| r.entries).filter(|e| !e.is_empty());
    let plan = apply_listing(&held.dir, &entries, &each, known.as_deref())?;
    let mut stats = Stats {
        entries: entries.len() as u64,
        ..Stats::default()
    };
    if !want(pb::FileWant {
        local: local.to_string(),
        indexes: plan.wanted.clone(),
    }) {
        return Err(SyncError::Gone);
    }
    for index in plan.wanted {
        let entry = &entries[index as usize];
        stats.bytes += receive_file(held, local, index, entry, incoming)?;
        stats.files += 1;
    }
    // Directory times last: writing their entries changed them.
    for entry in entries.iter().rev().filter(|e| is_dir(e.mode)) {
        if plan.all_dirs || plan.touched.contains(entry.path.as_slice()) {
            set_times(&held.dir.join(OsStr::from_bytes(&entry.path)), entry, false)?;
        }
    }
    let mut remembered = Vec::new();
    if each.len() <= REMEMBER_ENTRIES {
        remembered = each;
        remembered.sort_unstable();
    }
    *held.applied = Some(Remembered {
        digest,
        entries: remembered,
    });
    Ok(stats)
}

/// What applying a listing's metadata and structure to a copy left to do.
struct Plan {
    /// Entries whose content must be sent.
    wanted: Vec<u64>,
    /// Directories whose times may have changed (entries made, changed or removed in them).
    touched: HashSet<Vec<u8>>,
    /// Unknown which: set every directory's times.
    all_dirs: bool,
}

/// Checks the listing and makes the copy match it as far as metadata and structure can. With
/// `known` (the hashes of the listing the copy matched last), entries whose hash is unchanged
/// are not looked at, and the copy is searched for unlisted entries only if some known path is
/// no longer listed.
fn apply_listing(
    root: &Path,
    entries: &[pb::FileEntry],
    each: &[(u64, u64)],
    known: Option<&[(u64, u64)]>,
) -> Result<Plan, SyncError> {
    // Everything listed (what stays in the copy), and the directories alone (the only entries
    // that can be parents: a child of a symlink would be written through it).
    let mut listed: HashSet<&[u8]> = HashSet::with_capacity(entries.len());
    let mut dirs: HashSet<&[u8]> = HashSet::new();
    let mut plan = Plan {
        wanted: Vec::new(),
        touched: HashSet::new(),
        all_dirs: known.is_none(),
    };
    let mut still_listed = 0usize;
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
        let (path_hash, entry_hash) = each[index];
        let before = known.and_then(|k| {
            let at = k.binary_search_by_key(&path_hash, |&(p, _)| p).ok()?;
            Some(k[at].1)
        });
        if before.is_some() {
            still_listed += 1;
        }
        if before == Some(entry_hash) {
            continue;
        }
        if !plan.all_dirs {
            let parent = match entry.path.iter().rposition(|&b| b == b'/') {
                Some(slash) => &entry.path[..slash],
                None => &[][..],
            };
            plan.touched.insert(parent.to_vec());
            plan.touched.insert(entry.path.clone());
        }
        if !apply_entry(root, entry)? {
            plan.wanted.push(index as u64);
        }
    }
    // Every known path still listed: nothing was removed, nothing unlisted can be in the copy.
    if known.is_none_or(|k| still_listed < k.len()) {
        remove_unlisted(root, &listed)?;
        plan.all_dirs = true;
    }
    Ok(plan)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, mode: u32, size: u64) -> pb::FileEntry {
        pb::FileEntry {
            path: path.as_bytes().to_vec(),
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime_seconds: 1_700_000_000,
            mtime_nanos: 5,
            link: Vec::new(),
        }
    }

    /// Receives `entries` with the content `body` for every file asked for; the indexes asked.
    fn transfer(held: &mut Held, entries: &[pb::FileEntry], body: &[u8]) -> Vec<u64> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        tx.blocking_send(Incoming::List(pb::FileList {
            local: "context".into(),
            entries: entries.to_vec(),
            last: true,
        }))
        .unwrap();
        let asked = std::sync::Mutex::new(Vec::new());
        let want = |w: pb::FileWant| {
            for &index in &w.indexes {
                tx.blocking_send(Incoming::Data(pb::FileData {
                    local: "context".into(),
                    index,
                    data: body.to_vec(),
                    last: true,
                }))
                .unwrap();
            }
            asked.lock().unwrap().extend(w.indexes);
            true
        };
        receive(held, "context", &mut rx, &want).unwrap();
        asked.into_inner().unwrap()
    }

    #[test]
    fn a_listing_the_copy_already_matches_touches_nothing_until_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mirrors = Mirrors::default();
        let listing = [entry("d", 0o040755, 0), entry("d/f", 0o100644, 2)];
        let mut held = runtime
            .block_on(mirrors.hold(root.path(), "client", "context", "/ctx"))
            .unwrap();
        assert_eq!(transfer(&mut held, &listing, b"hi"), vec![1]);
        assert_eq!(std::fs::read(held.dir.join("d/f")).unwrap(), b"hi");

        // The same listing again: not even the missing file is noticed, nothing is asked.
        std::fs::remove_file(held.dir.join("d/f")).unwrap();
        assert!(transfer(&mut held, &listing, b"hi").is_empty());
        assert!(!held.dir.join("d/f").exists());

        // Forgotten (something wrote into the copy): every entry is compared again.
        held.forget();
        assert_eq!(transfer(&mut held, &listing, b"hi"), vec![1]);
        assert_eq!(std::fs::read(held.dir.join("d/f")).unwrap(), b"hi");

        // A changed listing is compared too; the memory survives the copy being held again.
        drop(held);
        let mut held = runtime
            .block_on(mirrors.hold(root.path(), "client", "context", "/ctx"))
            .unwrap();
        assert!(transfer(&mut held, &listing, b"hi").is_empty());
        let mut changed = listing.clone();
        changed[1].size = 3;
        assert_eq!(transfer(&mut held, &changed, b"hey"), vec![1]);

        // Only changed entries are looked at: a new file is asked for, while a file that went
        // missing behind the daemon's back (unchanged in the listing) is not noticed.
        let mut grown = changed.to_vec();
        grown.push(entry("d/g", 0o100644, 3));
        std::fs::remove_file(held.dir.join("d/f")).unwrap();
        assert_eq!(transfer(&mut held, &grown, b"new"), vec![2]);
        assert!(!held.dir.join("d/f").exists());
        assert_eq!(std::fs::read(held.dir.join("d/g")).unwrap(), b"new");
        // An entry no longer listed is removed from the copy.
        std::fs::write(held.dir.join("d/f"), b"hey").unwrap();
        assert!(transfer(&mut held, &changed, b"").is_empty());
        assert!(!held.dir.join("d/g").exists());

        // Pruned copies are forgotten with their files.
        drop(held);
        assert_eq!(mirrors.prune(root.path()).0, 1);
        let mut held = runtime
            .block_on(mirrors.hold(root.path(), "client", "context", "/ctx"))
            .unwrap();
        assert_eq!(transfer(&mut held, &changed, b"hey"), vec![1]);
    }
}
