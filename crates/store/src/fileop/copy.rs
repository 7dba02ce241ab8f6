//! Copying between two trees (LLB `FileActionCopy`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::inroot::{
    self, NewDir, Xattr, is_dir, open_dir, read_names, read_xattrs, remove_all, resolve_final, xattr_allowed,
};
use super::{
    CopyOptions, CopyStats, FileOpError, Source, failed, find_sources, join_shown, new_dir, open_regular,
    open_root, open_source, rel_path, shown, split_last,
};

/// Copies `options.src` from the tree `src_root` to `options.dest` in the tree `dest_root`,
/// as BuildKit's file backend does with fsutil's `copy`.
///
/// - Sources: with `allow_wildcard` every match of the pattern, in sorted order (none is
///   [`FileOpError::NotFound`] unless `allow_empty_wildcard`); otherwise the literal path. A
///   missing source is [`FileOpError::NotFound`] (`"/src/missing": not found`). With
///   `follow_symlink`, a matched path that is a symlink is replaced by what it points to,
///   resolved within the source root; it keeps the match's name.
/// - Destination: missing parents are created when `create_dest_path` (else the parent must
///   exist); a `dest` ending in `/` (or `/.`), or a copy with several matches, makes `dest`
///   itself a directory. Created directories get mode 0755 (or `mode`), `owner` (else the
///   caller's ids) and `timestamp`. A symlink at `dest` is followed within the destination root.
/// - Where it lands: a non-directory source goes to `dest/<name>` when `dest` is an existing
///   directory, else to `dest` itself. A source directory with `dir_copy_contents` is merged
///   into `dest` (created as above when missing); without it, it is copied as `dest/<name>`
///   when `dest` exists, else as `dest`.
/// - Merging: directories merge recursively; a directory already at the top-level target
///   keeps its metadata, nested ones take the source's. Other entries replace what is there,
///   except that a directory over a non-directory (or the reverse) is an error unless
///   `always_replace_existing_dest_paths`.
/// - Preserved: content, permission bits (with setuid/setgid/sticky), ownership, access and
///   modification times (directories' set after their contents), symlinks as symlinks (targets
///   untouched), hard links among the files of one match, xattrs named `user.*`,
///   `security.capability` and POSIX ACLs, device nodes, fifos and sockets (recreated with
///   `mknod`). `owner` or else `source_owner` replaces ownership, `mode` the permission bits of
///   everything but symlinks, `timestamp` the times.
pub fn copy(src_root: &Path, dest_root: &Path, options: &CopyOptions) -> Result<CopyStats, FileOpError> {
    if !options.include_patterns.is_empty() || !options.exclude_patterns.is_empty() {
        return Err(FileOpError::NotSupported {
            what: "include and exclude patterns of copy",
        });
    }
    let src_root = open_root(src_root)?;
    let dest_root = open_root(dest_root)?;
    let dest = rel_path(&options.dest)?;
    let dest_shown = shown(&dest);
    let (dest_parent, _) = split_last(&dest);
    if !options.create_dest_path {
        open_dir(dest_root.as_fd(), dest_parent, None)
            .map_err(failed("find directory", &shown(dest_parent)))?;
    }
    let matches = find_sources(
        src_root.as_fd(),
        &options.src,
        options.allow_wildcard,
        options.allow_empty_wildcard,
    )?;
    if matches.is_empty() {
        return Ok(CopyStats::default());
    }
    let raw = options.dest.as_str();
    let dest_is_dir = raw.ends_with('/') || raw.ends_with("/.") || raw == "." || matches.len() > 1;
    let ensure = if dest_is_dir { &dest[..] } else { dest_parent };
    let new = new_dir(options.mode.unwrap_or(0o755), options.owner, options.timestamp);
    let (_, created) = inroot::make_dirs(dest_root.as_fd(), ensure, &new)
        .map_err(failed("create directory", &shown(ensure)))?;

    let mut copier = Copier {
        options,
        new,
        created,
        stats: CopyStats::default(),
        links: HashMap::new(),
        top: None,
    };
    for rel in &matches {
        copier.copy_match(src_root.as_fd(), dest_root.as_fd(), rel, &dest, &dest_shown)?;
    }
    // Created directories get `timestamp` only now: the copy changed their times.
    inroot::finish_dirs(&copier.created, &new).map_err(failed("set times of", &shown(ensure)))?;
    Ok(copier.stats)
}

/// A source directory being copied: both fds, the names still to visit (reversed, so `pop`
/// gives the smallest), its path relative to the match, and the metadata to give the
/// destination once its contents are written (`None`: leave it as it is).
struct Frame {
    src: OwnedFd,
    dst: OwnedFd,
    names: Vec<Vec<u8>>,
    rel: Vec<u8>,
    meta: Option<(rfs::Stat, Vec<Xattr>)>,
}

struct Copier<'a> {
    options: &'a CopyOptions,
    /// Metadata of directories created as parents.
    new: NewDir,
    /// The directories created as parents (or as the directory to copy contents into).
    created: Vec<OwnedFd>,
    stats: CopyStats,
    /// Path (relative to the match) of the first copy of each multiply-linked source file, by
    /// (device, inode). Reset for each match.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// The destination directory of the current match (`O_PATH`) and its (device, inode).
    top: Option<(OwnedFd, (u64, u64))>,
}

fn stat_opt(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Copier<'_> {
    fn copy_match(
        &mut self,
        src_root: BorrowedFd<'_>,
        dest_root: BorrowedFd<'_>,
        rel: &[u8],
        dest: &[u8],
        dest_shown: &str,
    ) -> Result<(), FileOpError> {
        let o = self.options;
        let source = open_source(src_root, rel, o.follow_symlink)?;
        let src_is_dir = is_dir(&source.stat);
        let (dir, name) = resolve_final(dest_root, dest).map_err(failed("resolve", dest_shown))?;
        let existing = stat_opt(dir.as_fd(), &name).map_err(failed("stat", dest_shown))?;
        let into = match &existing {
            Some(_) if src_is_dir => !o.dir_copy_contents,
            Some(st) => is_dir(st),
            None => false,
        };
        let (_, base) = split_last(rel);
        let (dir, name, target_shown) = if into && !base.is_empty() {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rfs::openat(&dir, name.as_slice(), flags, Mode::empty())
                .map_err(failed("open directory", dest_shown))?;
            (fd, base.to_vec(), join_shown(dest_shown, base))
        } else {
            if src_is_dir && o.dir_copy_contents && existing.is_none() {
                let fd = inroot::make_dir(dir.as_fd(), &name, &self.new)
                    .map_err(failed("create directory", dest_shown))?;
                self.created.push(fd);
            }
            (dir, name, dest_shown.to_owned())
        };
        self.links.clear();
        self.top = None;
        self.copy_tree(source, dir.as_fd(), &name, &shown(rel), &target_shown)
    }

    /// Copies one matched source entry, and everything below it, to `name` in `dir`.
    fn copy_tree(
        &mut self,
        source: Source,
        dir: BorrowedFd<'_>,
        name: &[u8],
        src_shown: &str,
        dst_shown: &str,
    ) -> Result<(), FileOpError> {
        let top = self.copy_entry(
            source.dir.as_fd(),
            &source.name,
            &source.stat,
            dir,
            name,
            b"",
            src_shown,
            dst_shown,
        )?;
        let Some(top) = top else { return Ok(()) };
        let st = rfs::fstat(&top.dst).map_err(failed("stat", dst_shown))?;
        let fd = rfs::openat(dir, name, OFlags::PATH | DIR_FLAGS, Mode::empty())
            .map_err(failed("open", dst_shown))?;
        self.top = Some((fd, (st.st_dev, st.st_ino)));
        let mut stack = vec![top];
        while let Some(frame) = stack.last_mut() {
            let Some(name) = frame.names.pop() else {
                if let Some(done) = stack.pop()
                    && let Some((st, xattrs)) = &done.meta
                {
                    let shown = join_shown(dst_shown, &done.rel);
                    self.set_meta(done.dst.as_fd(), st, xattrs)
                        .map_err(failed("set metadata of", &shown))?;
                }
                continue;
            };
            let rel = join_rel(&frame.rel, &name);
            let (src, dst) = (join_shown(src_shown, &rel), join_shown(dst_shown, &rel));
            let Some(st) = stat_opt(frame.src.as_fd(), &name).map_err(failed("stat", &src))? else {
                continue;
            };
            // Copying a tree into itself (source and destination in one tree) must not recurse.
            if is_dir(&st)
                && self
                    .top
                    .as_ref()
                    .is_some_and(|(_, id)| *id == (st.st_dev, st.st_ino))
            {
                continue;
            }
            let child = self.copy_entry(
                frame.src.as_fd(),
                &name,
                &st,
                frame.dst.as_fd(),
                &name,
                &rel,
                &src,
                &dst,
            )?;
            stack.extend(child);
        }
        Ok(())
    }

    /// Copies the source entry `sname` of `sdir` (described by `st`) to `dname` in `ddir`.
    /// `rel` is its path relative to the match (empty for the match itself). Returns the frame
    /// to walk for a directory.
    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        sdir: BorrowedFd<'_>,
        sname: &[u8],
        st: &rfs::Stat,
        ddir: BorrowedFd<'_>,
        dname: &[u8],
        rel: &[u8],
        src: &str,
        dst: &str,
    ) -> Result<Option<Frame>, FileOpError> {
        let replace = self.options.always_replace_existing_dest_paths;
        let existing = stat_opt(ddir, dname).map_err(failed("stat", dst))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Directory {
            let created = match existing {
                Some(e) if is_dir(&e) => false,
                Some(_) if !replace => {
                    return Err(FileOpError::DirOverNonDir {
                        src: src.to_owned(),
                        dest: dst.to_owned(),
                    });
                }
                other => {
                    if other.is_some() {
                        remove_all(ddir, dname).map_err(failed("replace", dst))?;
                    }
                    rfs::mkdirat(ddir, dname, Mode::from_raw_mode(0o700))
                        .map_err(failed("create directory", dst))?;
                    true
                }
            };
            let src_fd = rfs::openat(sdir, sname, DIR_FLAGS, Mode::empty()).map_err(failed("open", src))?;
            let dst_fd = rfs::openat(ddir, dname, DIR_FLAGS, Mode::empty()).map_err(failed("open", dst))?;
            let mut names = read_names(src_fd.as_fd()).map_err(failed("list", src))?;
            names.reverse();
            // The top-level target keeps its metadata when it was there already (fsutil's rule).
            let meta = if created || !rel.is_empty() {
                Some((
                    *st,
                    read_xattrs(src_fd.as_fd()).map_err(failed("read xattrs of", src))?,
                ))
            } else {
                None
            };
            return Ok(Some(Frame {
                src: src_fd,
                dst: dst_fd,
                names,
                rel: rel.to_vec(),
                meta,
            }));
        }
        match existing {
            Some(e) if is_dir(&e) && !replace => {
                return Err(FileOpError::NonDirOverDir {
                    src: src.to_owned(),
                    dest: dst.to_owned(),
                });
            }
            Some(_) => remove_all(ddir, dname).map_err(failed("replace", dst))?,
            None => {}
        }
        match kind {
            FileType::RegularFile => {
                if !rel.is_empty() && st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        self.hard_link(first, ddir, dname)
                            .map_err(failed("create hard link", dst))?;
                        self.stats.files += 1;
                        return Ok(None);
                    }
                    self.links.insert(key, rel.to_vec());
                }
                let input = open_regular(sdir, sname, st).map_err(failed("open", src))?;
                let xattrs = read_xattrs(input.as_fd()).map_err(failed("read xattrs of", src))?;
                let flags =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let output = rfs::openat(ddir, dname, flags, Mode::from_raw_mode(0o600))
                    .map_err(failed("create file", dst))?;
                let mut output = File::from(output);
                let copied = io::copy(&mut File::from(input), &mut output).map_err(failed("write", dst))?;
                self.stats.bytes += copied;
                self.set_meta(output.as_fd(), st, &xattrs)
                    .map_err(failed("set metadata of", dst))?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(sdir, sname, Vec::new()).map_err(failed("read symlink", src))?;
                rfs::symlinkat(target.as_c_str(), ddir, dname).map_err(failed("create symlink", dst))?;
                self.set_meta_at(ddir, dname, st, false)
                    .map_err(failed("set metadata of", dst))?;
            }
            _ => {
                let perm = Mode::from_raw_mode(st.st_mode & 0o7777);
                rfs::mknodat(ddir, dname, kind, perm, st.st_rdev).map_err(failed("create node", dst))?;
                self.set_meta_at(ddir, dname, st, true)
                    .map_err(failed("set metadata of", dst))?;
            }
        }
        self.stats.files += 1;
        Ok(None)
    }

    /// Links `first` (relative to the match's destination) as `name` in `dir`. The first path
    /// is resolved beneath the destination directory without following any symlink.
    fn hard_link(&self, first: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        let Some((top, _)) = &self.top else {
            return Err(Errno::NOENT.into());
        };
        let (parent, first_name) = split_last(first);
        let parent = if parent.is_empty() { &b"."[..] } else { parent };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let first_dir = rfs::openat2(top, parent, flags, Mode::empty(), resolve)?;
        // Without AT_SYMLINK_FOLLOW, linkat links the named entry itself.
        Ok(rfs::linkat(&first_dir, first_name, dir, name, AtFlags::empty())?)
    }

    fn ownership(&self, st: &rfs::Stat) -> (Uid, Gid) {
        let o = self.options;
        let (uid, gid) = o
            .owner
            .or(o.source_owner)
            .map_or((st.st_uid, st.st_gid), |o| (o.uid, o.gid));
        (Uid::from_raw(uid), Gid::from_raw(gid))
    }

    fn mode(&self, st: &rfs::Stat) -> Mode {
        Mode::from_raw_mode(self.options.mode.unwrap_or(st.st_mode) & 0o7777)
    }

    fn times(&self, st: &rfs::Stat) -> Timestamps {
        if let Some(ts) = self.options.timestamp {
            return inroot::times(Timespec {
                tv_sec: ts,
                tv_nsec: 0,
            });
        }
        Timestamps {
            last_access: Timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec.try_into().unwrap_or(0),
            },
            last_modification: Timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec.try_into().unwrap_or(0),
            },
        }
    }

    /// Sets ownership, mode, xattrs and times on an open file or directory. chown clears
    /// setuid/setgid and file capabilities, so mode and xattrs come after it.
    fn set_meta(&self, fd: BorrowedFd<'_>, st: &rfs::Stat, xattrs: &[Xattr]) -> io::Result<()> {
        let (uid, gid) = self.ownership(st);
        rfs::fchown(fd, Some(uid), Some(gid))?;
        rfs::fchmod(fd, self.mode(st))?;
        for (name, value) in xattrs.iter().filter(|(n, _)| xattr_allowed(n)) {
            match rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
                // The destination file system cannot store it; BuildKit ignores this too.
                Err(e) if e == Errno::NOTSUP => {}
                other => other?,
            }
        }
        rfs::futimens(fd, &self.times(st))?;
        Ok(())
    }

    /// Sets metadata on a symlink or node we just created, which cannot be opened safely.
    fn set_meta_at(&self, dir: BorrowedFd<'_>, name: &[u8], st: &rfs::Stat, chmod: bool) -> io::Result<()> {
        let (uid, gid) = self.ownership(st);
        rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
        if chmod {
            // fchmodat follows a final symlink, but this node was created by us just now.
            rfs::chmodat(dir, name, self.mode(st), AtFlags::empty())?;
        }
        rfs::utimensat(dir, name, &self.times(st), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}
