//! Extracting a layer tar onto a directory tree, confined to that tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::error::LayerError;
use super::names::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::inroot::{self, NewDir, clean, clear, errno_is, read_names, remove_all, times};
use crate::xattr::{Xattr, read_xattrs, xattr_allowed};

/// What [`apply_layer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied, including whiteouts and opaque markers.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Entries ignored: unsupported types (sockets, PAX global headers, ...), the root
    /// directory itself, and aufs metadata names such as `.wh..wh.plnk`.
    pub skipped_entries: u64,
    /// xattrs not applied: `trusted.*` and other names outside the allow list, xattrs on
    /// symlinks and device nodes, and xattrs the file system does not support.
    pub skipped_xattrs: u64,
}

/// Applies an OCI layer (an uncompressed tar stream) onto the directory tree `root`.
///
/// `root` is an empty directory (base layer) or a mounted overlayfs merged view. The stream is
/// untrusted and may be arbitrary bytes: bad input yields an error, never a panic, and nothing
/// is ever created, changed or removed outside `root`.
///
/// Rules, as docker and containerd apply layers:
/// - Paths are cleaned lexically: leading `/`, empty and `.` components dropped, `..` removes
///   the previous component and is clamped at the root. Parent directories are resolved inside
///   `root` (`openat2` with `RESOLVE_IN_ROOT`: absolute symlink targets restart at `root`, `..`
///   stops there); missing parents are created with mode 0755. An entry naming the root itself
///   is skipped.
/// - The last component is never followed. A new entry replaces what is there; an existing
///   directory is kept (and its metadata updated) only when the new entry is a directory.
/// - `.wh.<name>` removes `<name>` recursively unless this layer created it;
///   `.wh..wh..opq` removes all children of its directory that this layer has not created.
///   When the layer has created none there, the directory is removed and recreated with the same
///   metadata, so overlayfs marks it opaque instead of writing one whiteout per child. Other
///   `.wh..wh.*` names (aufs metadata) are skipped; `.wh.`, `.wh..` and `.wh...` are refused.
/// - Regular files, directories, symlinks (target stored as is), hard links (to a regular file
///   inside `root`; anything else is refused), character and block devices and fifos are
///   created; other entry types are skipped and counted.
/// - Mode (with setuid, setgid and sticky), numeric uid/gid (names ignored), mtime (with
///   nanoseconds from a PAX `mtime` record; atime is set to the same value) are applied;
///   directory mtimes are set at the end, after their children are written. PAX
///   `SCHILY.xattr.*` records are applied to files and directories when named `user.*`,
///   `security.capability` or `system.posix_acl_{access,default}`; others are counted as skipped
///   (`trusted.overlay.*` in particular would corrupt overlayfs semantics).
pub fn apply_layer(tar: impl Read, root: &Path) -> Result<ApplyStats, LayerError> {
    apply_layer_with(tar, root, || {})
}

/// [`apply_layer`], calling `after_entry` each time an entry has been applied (the store kills
/// the process there in crash tests, to leave a half-applied layer behind).
pub fn apply_layer_with(
    tar: impl Read,
    root: &Path,
    after_entry: impl FnMut(),
) -> Result<ApplyStats, LayerError> {
    let root_fd = rfs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::OpenDir {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    run(tar, root_fd, Kind::Layer, after_entry)
}

/// Extracts a plain tar stream into the directory `dir` (any fd of it, `O_PATH` included), as
/// docker's `ADD` unpacks an archive (BuildKit's file backend): the same confinement and entry
/// handling as [`apply_layer`], with these differences:
/// - Whiteout and opaque-marker names are ordinary names, extracted as the entries they are.
/// - A path (or hard link target) that `..` would lead out of `dir` is refused with
///   [`LayerError::InvalidEntry`] instead of being clamped (a leading `/` is dropped first, so
///   absolute paths land inside `dir`).
/// - With `owner`, every entry gets that uid and gid instead of the archive's.
/// - Directories implied by an entry's path are created with mode 0755, owned by 0:0.
pub(crate) fn extract_archive(
    tar: impl Read,
    dir: BorrowedFd<'_>,
    owner: Option<(u32, u32)>,
) -> Result<ApplyStats, LayerError> {
    let root_fd = rfs::openat(
        dir,
        c".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::Apply {
        entry: ".".to_owned(),
        action: "open extraction directory",
        source: e.into(),
    })?;
    let owner = owner.map(|(uid, gid)| (Uid::from_raw(uid), Gid::from_raw(gid)));
    run(tar, root_fd, Kind::Extract { owner }, || {})
}

/// What a tar stream is applied as.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An image layer: whiteouts delete, `..` is clamped.
    Layer,
    /// An archive unpacked by `ADD`.
    Extract { owner: Option<(Uid, Gid)> },
}

fn run(
    tar: impl Read,
    root_fd: OwnedFd,
    kind: Kind,
    mut after_entry: impl FnMut(),
) -> Result<ApplyStats, LayerError> {
    let mut applier = Applier {
        root: root_fd,
        kind,
        stats: ApplyStats::default(),
        dir_times: BTreeMap::new(),
        created: BTreeMap::new(),
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|source| LayerError::ReadTar { entries: 0, source })?;
    for entry in entries {
        let seen = applier.stats.entries + applier.stats.skipped_entries;
        let mut entry = entry.map_err(|source| LayerError::ReadTar {
            entries: seen,
            source,
        })?;
        applier.apply_entry(&mut entry)?;
        after_entry();
    }
    applier.set_dir_times()?;
    Ok(applier.stats)
}

/// Ownership, permissions, times and xattrs of one entry.
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    mtime: Timespec,
    xattrs: Vec<Xattr>,
}

struct Applier {
    /// `O_PATH` fd of the root; every path is resolved beneath it.
    root: OwnedFd,
    kind: Kind,
    stats: ApplyStats,
    /// Directories that had an entry in this layer, by cleaned path, with their mtime; set last.
    dir_times: BTreeMap<Vec<u8>, Timespec>,
    /// Names this layer created or wrote under, by cleaned parent path. Whiteouts and opaque
    /// markers only hide what lower layers had, so these names are exempt.
    created: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
}

fn failed<'a, E: Into<io::Error>>(entry: &'a str, action: &'static str) -> impl FnOnce(E) -> LayerError + 'a {
    move |source| LayerError::Apply {
        entry: entry.to_owned(),
        action,
        source: source.into(),
    }
}

/// Splits a cleaned, non-empty path into its parent and last component.
fn split_last(path: &[u8]) -> Option<(&[u8], &[u8])> {
    match path.iter().rposition(|&b| b == b'/') {
        _ if path.is_empty() => None,
        Some(i) => Some((&path[..i], &path[i + 1..])),
        None => Some((&b""[..], path)),
    }
}

fn invalid(entry: &str, reason: &'static str) -> LayerError {
    LayerError::InvalidEntry {
        entry: entry.to_owned(),
        reason,
    }
}

fn perm(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

impl Applier {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), LayerError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let shown = shown.as_str();
        let kind = entry.header().entry_type();
        use EntryType::*;
        if !matches!(
            kind,
            Regular | Continuous | GNUSparse | Directory | Symlink | Link | Char | Block | Fifo
        ) {
            self.stats.skipped_entries += 1;
            return Ok(());
        }
        if raw.contains(&0) {
            return Err(invalid(shown, "path contains a nul byte"));
        }
        if self.extracting() && escapes(&raw) {
            return Err(invalid(shown, "path leads out of the extraction directory"));
        }
        let comps = clean(&raw);
        let Some((&name, parents)) = comps.split_last() else {
            // The root itself: its metadata belongs to whoever owns the root directory.
            self.stats.skipped_entries += 1;
            return Ok(());
        };
        let parent = parents.join(&b'/');

        // Whiteouts mean nothing in an archive: there they are ordinary entries.
        let layer = !self.extracting();
        if layer && name == OPAQUE_MARKER {
            self.opaque(&parent)
                .map_err(failed(shown, "apply opaque whiteout"))?;
            self.stats.entries += 1;
            return Ok(());
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX)
            && layer
        {
            if target.starts_with(WHITEOUT_PREFIX) {
                // aufs metadata such as `.wh..wh.plnk`: meaningless here.
                self.stats.skipped_entries += 1;
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(invalid(shown, "whiteout does not name a file"));
            }
            self.whiteout(&parent, target)
                .map_err(failed(shown, "apply whiteout"))?;
            self.stats.entries += 1;
            return Ok(());
        }

        let meta = self.read_meta(entry, shown)?;
        let dir = self
            .open_dir(&parent, true)
            .map_err(failed(shown, "open parent directory"))?;
        self.note_created(&parent, name);
        self.write_entry(entry, dir.as_fd(), name, &comps, &meta, shown)?;
        self.stats.entries += 1;
        Ok(())
    }

    /// Creates the entry `name` of `dir` (cleaned path `comps`) from a tar entry of a kind that
    /// is applied, replacing what is there.
    fn write_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &[u8],
        comps: &[&[u8]],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), LayerError> {
        use EntryType::*;
        let kind = entry.header().entry_type();
        match kind {
            Directory => {
                let kept = clear(dir, name, true).map_err(failed(shown, "replace existing"))?;
                if !kept {
                    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                        .map_err(failed(shown, "create directory"))?;
                }
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(failed(shown, "open directory"))?;
                self.set_meta(fd.as_fd(), meta)
                    .map_err(failed(shown, "set directory metadata"))?;
                self.dir_times.insert(comps.join(&b'/'), meta.mtime);
            }
            Regular | Continuous | GNUSparse => {
                clear(dir, name, false).map_err(failed(shown, "replace existing"))?;
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(failed(shown, "create file"))?;
                let mut file = File::from(fd);
                let written = copy_sparse(entry, &mut file).map_err(|e| match e {
                    Copy::Read(source) => LayerError::ReadEntry {
                        entry: shown.to_owned(),
                        source,
                    },
                    Copy::Write(source) => failed(shown, "write file content")(source),
                })?;
                self.stats.bytes += written;
                self.set_meta(file.as_fd(), meta)
                    .map_err(failed(shown, "set file metadata"))?;
            }
            Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(shown, "symlink has no target"))?;
                clear(dir, name, false).map_err(failed(shown, "replace existing"))?;
                rfs::symlinkat(&*target, dir, name).map_err(failed(shown, "create symlink"))?;
                self.set_meta_at(dir, name, meta, false)
                    .map_err(failed(shown, "set symlink metadata"))?;
            }
            Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(shown, "hard link has no target"))?;
                self.hard_link(dir, name, comps, &target, shown)?;
            }
            Char | Block | Fifo => {
                let header = entry.header();
                let dev = if kind == Fifo {
                    0
                } else {
                    let (Ok(major), Ok(minor)) = (header.device_major(), header.device_minor()) else {
                        return Err(invalid(shown, "bad device number"));
                    };
                    rfs::makedev(major.unwrap_or(0), minor.unwrap_or(0))
                };
                let file_type = match kind {
                    Char => FileType::CharacterDevice,
                    Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                clear(dir, name, false).map_err(failed(shown, "replace existing"))?;
                rfs::mknodat(dir, name, file_type, perm(meta.mode), dev)
                    .map_err(failed(shown, "create device node"))?;
                self.set_meta_at(dir, name, meta, true)
                    .map_err(failed(shown, "set device node metadata"))?;
            }
            // `apply_entry` passes no other kind.
            _ => {}
        }
        Ok(())
    }

    /// Reads mode, ownership, mtime and xattrs from the header and its PAX records.
    fn read_meta<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, LayerError> {
        let mut mtime = None;
        let mut xattrs = Vec::new();
        let pax = entry
            .pax_extensions()
            .map_err(failed(shown, "read pax records"))?;
        for record in pax.into_iter().flatten() {
            let record = record.map_err(failed(shown, "read pax records"))?;
            let key = record.key_bytes();
            if key == b"mtime" {
                mtime = parse_pax_time(record.value_bytes());
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                if xattr_allowed(name) {
                    xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
                } else {
                    self.stats.skipped_xattrs += 1;
                }
            }
        }
        let header = entry.header();
        let (Ok(mode), Ok(uid), Ok(gid), Ok(secs)) =
            (header.mode(), header.uid(), header.gid(), header.mtime())
        else {
            return Err(invalid(shown, "bad numeric header field"));
        };
        // -1 means "unchanged" to chown, so it is no valid id.
        let id = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
        let (Some(uid), Some(gid)) = (id(uid), id(gid)) else {
            return Err(invalid(shown, "uid or gid out of range"));
        };
        let mtime = mtime.unwrap_or(Timespec {
            tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
            tv_nsec: 0,
        });
        let (uid, gid) = match self.kind {
            Kind::Extract { owner: Some(owner) } => owner,
            _ => (Uid::from_raw(uid), Gid::from_raw(gid)),
        };
        Ok(Meta {
            mode: mode & 0o7777,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// Sets ownership, mode, xattrs and times on an open file or directory. The order matters:
    /// chown clears setuid/setgid and file capabilities, so mode and xattrs come after it.
    fn set_meta(&mut self, fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
        rfs::fchown(fd, Some(meta.uid), Some(meta.gid))?;
        rfs::fchmod(fd, perm(meta.mode))?;
        for (name, value) in &meta.xattrs {
            match rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                Err(e) if e == Errno::NOTSUP => self.stats.skipped_xattrs += 1,
                other => other?,
            }
        }
        rfs::futimens(fd, &times(meta.mtime))?;
        Ok(())
    }

    /// Sets metadata on a symlink or device node, which cannot be opened safely. xattrs are not
    /// applied to them (Linux allows no `user.*` xattrs there).
    fn set_meta_at(&mut self, dir: BorrowedFd<'_>, name: &[u8], meta: &Meta, chmod: bool) -> io::Result<()> {
        rfs::chownat(
            dir,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        if chmod {
            // fchmodat follows a symlink in the last component, but the node was created just
            // now by us, in a tree nobody else writes during the apply.
            rfs::chmodat(dir, name, perm(meta.mode), AtFlags::empty())?;
        }
        self.stats.skipped_xattrs += meta.xattrs.len() as u64;
        rfs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn hard_link(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        comps: &[&[u8]],
        target: &[u8],
        shown: &str,
    ) -> Result<(), LayerError> {
        if target.contains(&0) {
            return Err(invalid(shown, "hard link target contains a nul byte"));
        }
        if self.extracting() && escapes(target) {
            return Err(invalid(
                shown,
                "hard link target leads out of the extraction directory",
            ));
        }
        let target_comps = clean(target);
        let Some((&target_name, target_parents)) = target_comps.split_last() else {
            return Err(invalid(shown, "hard link target is the root"));
        };
        if target_comps == comps {
            // A link to itself leaves the file as it is.
            return Ok(());
        }
        let target_dir = self
            .open_dir(&target_parents.join(&b'/'), false)
            .map_err(failed(shown, "open hard link target directory"))?;
        let st = rfs::statat(&target_dir, target_name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(failed(shown, "find hard link target"))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(invalid(shown, "hard link target is not a regular file"));
        }
        clear(dir, name, false).map_err(failed(shown, "replace existing"))?;
        // Without AT_SYMLINK_FOLLOW, linkat links the named entry itself, never a symlink target.
        rfs::linkat(&target_dir, target_name, dir, name, AtFlags::empty())
            .map_err(failed(shown, "create hard link"))
    }

    /// Opens directory `path` (cleaned, relative to the root) as `O_PATH`, following symlinks
    /// but never leaving the root. With `create`, missing components are made with mode 0755.
    fn open_dir(&self, path: &[u8], create: bool) -> io::Result<OwnedFd> {
        let implied = match self.kind {
            Kind::Layer => NewDir::PLAIN,
            Kind::Extract { .. } => NewDir {
                owner: Some((0, 0)),
                ..NewDir::PLAIN
            },
        };
        inroot::open_dir(self.root.as_fd(), path, create.then_some(&implied))
    }

    fn extracting(&self) -> bool {
        matches!(self.kind, Kind::Extract { .. })
    }

    fn note_created(&mut self, parent: &[u8], name: &[u8]) {
        // Record the name and every ancestor, so an opaque marker arriving later for an
        // ancestor directory keeps what this layer wrote below it.
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
        let (mut dir_end, mut start) = (0, 0);
        for comp in parent.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            pairs.push((&parent[..dir_end], comp));
            dir_end = start + comp.len();
            start = dir_end + 1;
        }
        pairs.push((parent, name));
        for (dir, child) in pairs {
            if !self.created.get(dir).is_some_and(|set| set.contains(child)) {
                let set = self.created.entry(dir.to_vec()).or_default();
                set.insert(child.to_vec());
            }
        }
    }

    fn whiteout(&mut self, parent: &[u8], target: &[u8]) -> io::Result<()> {
        if self.created.get(parent).is_some_and(|set| set.contains(target)) {
            return Ok(());
        }
        match self.open_dir(parent, false) {
            Ok(dir) => remove_all(dir.as_fd(), target),
            // Nothing to hide under a missing or non-directory parent.
            Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn opaque(&mut self, path: &[u8]) -> io::Result<()> {
        let dir = self.open_dir(path, true)?;
        let keep = self.created.get(path);
        let doomed: Vec<Vec<u8>> = read_names(dir.as_fd())?
            .into_iter()
            .filter(|n| !keep.is_some_and(|set| set.contains(n)))
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        if keep.is_none()
            && let Some((parent, name)) = split_last(path)
            && self.recreate_dir(parent, name)?
        {
            return Ok(());
        }
        for name in doomed {
            remove_all(dir.as_fd(), &name)?;
        }
        Ok(())
    }

    /// Replaces directory `parent/name` by an empty one with the same metadata; on overlayfs
    /// that makes it opaque. Returns false when `name` is not a real directory (a symlink).
    fn recreate_dir(&self, parent: &[u8], name: &[u8]) -> io::Result<bool> {
        let parent = self.open_dir(parent, false)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rfs::openat(&parent, name, flags, Mode::empty()) {
            Err(e) if e == Errno::LOOP || e == Errno::NOTDIR => return Ok(false),
            other => other?,
        };
        let st = rfs::fstat(&fd)?;
        let xattrs = read_xattrs(fd.as_fd())?;
        drop(fd);
        remove_all(parent.as_fd(), name)?;
        rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))?;
        let fd = rfs::openat(&parent, name, flags, Mode::empty())?;
        rfs::fchown(
            &fd,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        )?;
        rfs::fchmod(&fd, perm(st.st_mode))?;
        for (name, value) in xattrs.iter().filter(|(n, _)| xattr_allowed(n)) {
            rfs::fsetxattr(&fd, name.as_slice(), value, XattrFlags::empty())?;
        }
        let mtime = Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec.try_into().unwrap_or(0),
        };
        rfs::futimens(&fd, &times(mtime))?;
        Ok(true)
    }

    fn set_dir_times(&self) -> Result<(), LayerError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        for (path, mtime) in &self.dir_times {
            let shown = String::from_utf8_lossy(path);
            let fd = match inroot::open_in_root(self.root.as_fd(), path, flags) {
                Ok(fd) => fd,
                // Removed or replaced by a later entry of the layer.
                Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR, Errno::LOOP]) => continue,
                Err(e) => return Err(failed(&shown, "open directory")(e)),
            };
            rfs::futimens(&fd, &times(*mtime)).map_err(failed(&shown, "set directory times"))?;
        }
        Ok(())
    }
}

/// Whether `path`, with leading slashes dropped, climbs above its start with `..` (`a/../../x`).
fn escapes(path: &[u8]) -> bool {
    let mut depth: usize = 0;
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// Parses a PAX time such as `1700000000.123456789` or `-1.5`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let negative = secs.starts_with('-');
    let mut tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut tv_nsec: i64 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |d| i64::from(d - b'0'));
        tv_nsec = tv_nsec * 10 + digit;
    }
    if negative && tv_nsec > 0 {
        tv_sec = tv_sec.checked_sub(1)?;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec { tv_sec, tv_nsec })
}

/// Which side of a copy failed: reading the tar (corrupt or truncated input) or writing the
/// file (the destination's disk).
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies a file's content, leaving holes where whole blocks are zero: a sparse entry of a
/// small tar (or any run of zeros) cannot fill the disk with what is only a size in a header.
/// Returns the file's length.
fn copy_sparse(reader: &mut impl Read, file: &mut File) -> Result<u64, Copy> {
    const BLOCK: usize = 64 * 1024;
    let mut buf = vec![0u8; BLOCK];
    let mut total: u64 = 0;
    let mut ends_in_hole = false;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        let chunk = &buf[..n];
        if chunk.iter().all(|&b| b == 0) {
            file.seek(SeekFrom::Current(n as i64)).map_err(Copy::Write)?;
            ends_in_hole = true;
        } else {
            file.write_all(chunk).map_err(Copy::Write)?;
            ends_in_hole = false;
        }
        total += n as u64;
    }
    if ends_in_hole {
        // A seek past the end does not extend the file; setting the length does.
        file.set_len(total).map_err(Copy::Write)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths() {
        assert!(escapes(b"../x"));
        assert!(escapes(b"/../x"));
        assert!(escapes(b"a/../../x"));
        assert!(!escapes(b"a/../x"));
        assert!(!escapes(b"/abs/./x"));
        assert!(!escapes(b"a/b/.."));
    }

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000.123456789"), Some((1_700_000_000, 123_456_789)));
        assert_eq!(t("12.5"), Some((12, 500_000_000)));
        assert_eq!(t("12.1234567891"), Some((12, 123_456_789)));
        assert_eq!(t("42"), Some((42, 0)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("1.x"), None);
        assert_eq!(t(""), None);
    }
}
