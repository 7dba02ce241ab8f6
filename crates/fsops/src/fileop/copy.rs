//! Copying between two trees (LLB `FileActionCopy`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use gocompat::chmod::{self, ModeSet};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::archive;
use super::error::{FileOpError, failed};
use super::filter::{self, Filters, State, Verdict};
use super::options::{CopyOptions, CopyStats};
use super::source::{Source, check_required, copy_sources, open_source};
use super::support::{join_shown, new_dir, open_root, rel_path, shown, split_last};
use crate::inroot::{self, NewDir, is_dir, open_dir, open_regular, read_names, remove_all, resolve_final};
use crate::layer::extract_archive;
use crate::xattr::{Xattr, read_xattrs, xattr_allowed};

/// Copies `options.src` from the tree `src_root` to `options.dest` in the tree `dest_root`,
/// as BuildKit's file backend does with fsutil's `copy`.
///
/// - Sources: with `allow_wildcard` every match of the pattern, in sorted order (none is
///   [`FileOpError::NotFound`] unless `allow_empty_wildcard`); otherwise the literal path. A
///   missing source is [`FileOpError::NotFound`] (`"/src/missing": not found`). With
///   `follow_symlink`, a matched path that is a symlink is replaced by what it points to,
///   resolved within the source root; it keeps the match's name. Paths hidden by
///   `context_excludes` do not exist; every `required_paths` entry must.
/// - Destination: missing parents are created when `create_dest_path` (else the parent must
///   exist); a `dest` ending in `/` (or `/.`), or a copy with several matches, makes `dest`
///   itself a directory. Created directories get mode 0755 (or `mode`), `owner` (else the
///   caller's ids) and `timestamp`. A symlink at `dest` is followed within the destination root.
/// - Where it lands: a non-directory source goes to `dest/<name>` when `dest` is an existing
///   directory, else to `dest` itself. A source directory with `dir_copy_contents` is merged
///   into `dest` (created as above when missing); without it, it is copied as `dest/<name>`
///   when `dest` exists, else as `dest`. With `attempt_unpack`, a matched archive is extracted
///   into `dest` instead (see [`CopyOptions::attempt_unpack`]).
/// - Selection inside a matched directory: `include_patterns`, `exclude_patterns` (relative to
///   the match) and `context_excludes` (relative to the source root) pick the entries copied.
///   A directory that is not picked itself but holds picked entries is created on the way to
///   them, with its source metadata.
/// - Merging: directories merge recursively; a directory already at the top-level target
///   keeps its metadata, nested ones take the source's. Other entries replace what is there,
///   except that a directory over a non-directory (or the reverse) is an error unless
///   `always_replace_existing_dest_paths`.
/// - Preserved: content, permission bits (with setuid/setgid/sticky), ownership, access and
///   modification times (directories' set after their contents), symlinks as symlinks (targets
///   untouched), hard links among the files of one match, xattrs named `user.*`,
///   `security.capability` and POSIX ACLs, device nodes, fifos and sockets (recreated with
///   `mknod`). `owner` or else `source_owner` replaces ownership, `mode_str` or else `mode` the
///   permission bits of everything but symlinks, `timestamp` the times.
///
/// Stats count extracted archive entries (directories included) as files.
pub fn copy(src_root: &Path, dest_root: &Path, options: &CopyOptions) -> Result<CopyStats, FileOpError> {
    let filters = Filters::new(options)?;
    let mode_set = options.mode_str.as_deref().map(chmod::parse).transpose()?;
    let src_root = open_root(src_root)?;
    let dest_root = open_root(dest_root)?;
    let dest = rel_path(&options.dest)?;
    let dest_shown = shown(&dest);
    let (dest_parent, _) = split_last(&dest);
    if !options.create_dest_path {
        open_dir(dest_root.as_fd(), dest_parent, None)
            .map_err(failed("find directory", &shown(dest_parent)))?;
    }
    check_required(src_root.as_fd(), options, &filters)?;
    let matches = copy_sources(src_root.as_fd(), options, &filters)?;
    if matches.is_empty() {
        return Ok(CopyStats::default());
    }
    let raw = options.dest.as_str();
    let dest_is_dir = raw.ends_with('/') || raw.ends_with("/.") || raw == "." || matches.len() > 1;
    let ensure = if dest_is_dir { &dest[..] } else { dest_parent };
    // A mode string means BuildKit passes no numeric mode: created parents get 0755.
    let dir_mode = match mode_set {
        Some(_) => 0o755,
        None => options.mode.unwrap_or(0o755),
    };
    let new = new_dir(dir_mode, options.owner, options.timestamp);
    let (_, created) = inroot::make_dirs(dest_root.as_fd(), ensure, &new)
        .map_err(failed("create directory", &shown(ensure)))?;

    let mut copier = Copier {
        options,
        filters,
        mode_set,
        new,
        created,
        stats: CopyStats::default(),
        links: HashMap::new(),
        top: None,
    };
    for rel in &matches {
        if options.attempt_unpack && copier.unpack(src_root.as_fd(), dest_root.as_fd(), rel, &dest)? {
            continue;
        }
        copier.copy_match(src_root.as_fd(), dest_root.as_fd(), rel, &dest, &dest_shown)?;
    }
    // Created directories get `timestamp` only now: the copy changed their times.
    inroot::finish_dirs(&copier.created, &new).map_err(failed("set times of", &shown(ensure)))?;
    Ok(copier.stats)
}

/// A source directory being copied: its fd, the destination directory (`None` while it is only
/// walked, see [`Verdict::Walk`]), its name there and its source stat (to create it late), the
/// names still to visit (reversed, so `pop` gives the smallest), its path relative to the
/// match, the metadata to give the destination once its contents are written (`None`: leave it
/// as it is), and what the filters matched for it.
struct Frame {
    src: OwnedFd,
    dst: Option<OwnedFd>,
    name: Vec<u8>,
    stat: rfs::Stat,
    names: Vec<Vec<u8>>,
    rel: Vec<u8>,
    meta: Option<(rfs::Stat, Vec<Xattr>)>,
    state: State,
}

struct Copier<'a> {
    options: &'a CopyOptions,
    filters: Filters,
    mode_set: Option<ModeSet>,
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
        self.copy_tree(source, rel, dir.as_fd(), &name, &target_shown)
    }

    /// With `attempt_unpack`: extracts the match `rel` into `dest` when it is an archive, and
    /// says whether it was one.
    fn unpack(
        &mut self,
        src_root: BorrowedFd<'_>,
        dest_root: BorrowedFd<'_>,
        rel: &[u8],
        dest: &[u8],
    ) -> Result<bool, FileOpError> {
        let src_shown = shown(rel);
        // Like BuildKit, the source is followed to the end, symlinks included.
        let (dir, name) = match resolve_final(src_root, rel) {
            Ok(found) => found,
            // Missing: the copy reports it.
            Err(_) => return Ok(false),
        };
        let st = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => st,
            _ => return Ok(false),
        };
        let mut file = File::from(open_regular(dir.as_fd(), &name, &st).map_err(failed("open", &src_shown))?);
        if !archive::is_tar(&mut file) {
            return Ok(false);
        }
        let dest_shown = shown(dest);
        let new = new_dir(0o755, self.options.owner, self.options.timestamp);
        let (target, created) =
            inroot::make_dirs(dest_root, dest, &new).map_err(failed("create directory", &dest_shown))?;
        // Their times are set with the other created directories, once everything is written.
        self.created.extend(created);
        let stream = archive::open(&mut file).map_err(failed("read", &src_shown))?;
        let owner = self.options.owner.map(|o| (o.uid, o.gid));
        let stats =
            extract_archive(stream, target.as_fd(), owner).map_err(|source| FileOpError::Extract {
                path: src_shown.clone(),
                source,
            })?;
        self.stats.files += stats.entries;
        self.stats.bytes += stats.bytes;
        Ok(true)
    }

    /// Copies one matched source entry (at `match_rel` in the source root), and what the filters
    /// pick below it, to `name` in `dir`.
    fn copy_tree(
        &mut self,
        source: Source,
        match_rel: &[u8],
        dir: BorrowedFd<'_>,
        name: &[u8],
        dst_shown: &str,
    ) -> Result<(), FileOpError> {
        let src_shown = shown(match_rel);
        let top = self.copy_entry(
            source.dir.as_fd(),
            &source.name,
            &source.stat,
            dir,
            name,
            b"",
            &src_shown,
            dst_shown,
        )?;
        let Some(mut top) = top else { return Ok(()) };
        top.state = self.filters.top(match_rel).1;
        let st = match &top.dst {
            Some(dst) => rfs::fstat(dst).map_err(failed("stat", dst_shown))?,
            None => return Ok(()),
        };
        let fd = rfs::openat(dir, name, OFlags::PATH | DIR_FLAGS, Mode::empty())
            .map_err(failed("open", dst_shown))?;
        self.top = Some((fd, (st.st_dev, st.st_ino)));
        let filtering = self.filters.is_active();
        let mut stack = vec![top];
        while let Some(frame) = stack.last_mut() {
            let Some(name) = frame.names.pop() else {
                if let Some(done) = stack.pop()
                    && let (Some(dst), Some((st, xattrs))) = (&done.dst, &done.meta)
                {
                    let shown = join_shown(dst_shown, &done.rel);
                    self.set_meta(dst.as_fd(), st, xattrs)
                        .map_err(failed("set metadata of", &shown))?;
                }
                continue;
            };
            let rel = filter::join(&frame.rel, &name);
            let (src, dst) = (join_shown(&src_shown, &rel), join_shown(dst_shown, &rel));
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
            let (verdict, state) = if filtering {
                let root_rel = filter::join(match_rel, &rel);
                self.filters.check(&rel, &root_rel, is_dir(&st), &frame.state)
            } else {
                (Verdict::Take, State::default())
            };
            match verdict {
                Verdict::Skip => continue,
                Verdict::Walk => {
                    let src_fd = rfs::openat(&frame.src, name.as_slice(), DIR_FLAGS, Mode::empty())
                        .map_err(failed("open", &src))?;
                    let mut names = read_names(src_fd.as_fd()).map_err(failed("list", &src))?;
                    names.reverse();
                    stack.push(Frame {
                        src: src_fd,
                        dst: None,
                        name,
                        stat: st,
                        names,
                        rel,
                        meta: None,
                        state,
                    });
                }
                Verdict::Take => {
                    self.materialize(&mut stack, &src_shown, dst_shown)?;
                    let Some(frame) = stack.last() else { break };
                    // `materialize` just created every missing destination on the stack.
                    let Some(parent) = &frame.dst else { continue };
                    let child = self.copy_entry(
                        frame.src.as_fd(),
                        &name,
                        &st,
                        parent.as_fd(),
                        &name,
                        &rel,
                        &src,
                        &dst,
                    )?;
                    stack.extend(child.map(|mut c| {
                        c.state = state;
                        c
                    }));
                }
            }
        }
        Ok(())
    }

    /// Creates the destinations of the walked-only directories on the stack, outermost first,
    /// because something below them is being copied. They take their source's metadata.
    fn materialize(&self, stack: &mut [Frame], src_shown: &str, dst_shown: &str) -> Result<(), FileOpError> {
        let Some(first) = stack.iter().position(|f| f.dst.is_none()) else {
            return Ok(());
        };
        for i in first.max(1)..stack.len() {
            let (done, rest) = stack.split_at_mut(i);
            let (Some(parent), Some(frame)) = (done.last(), rest.first_mut()) else {
                break;
            };
            let Some(parent_dst) = &parent.dst else { break };
            let src = join_shown(src_shown, &frame.rel);
            let dst = join_shown(dst_shown, &frame.rel);
            let (fd, _) = self.prepare_dir(parent_dst.as_fd(), &frame.name, &src, &dst)?;
            let xattrs = read_xattrs(frame.src.as_fd()).map_err(failed("read xattrs of", &src))?;
            frame.meta = Some((frame.stat, xattrs));
            frame.dst = Some(fd);
        }
        Ok(())
    }

    /// Makes `dname` in `ddir` a directory for a source directory: keeps an existing directory,
    /// replaces another entry when allowed, else creates it. Returns it opened, and whether it
    /// was created.
    fn prepare_dir(
        &self,
        ddir: BorrowedFd<'_>,
        dname: &[u8],
        src: &str,
        dst: &str,
    ) -> Result<(OwnedFd, bool), FileOpError> {
        let existing = stat_opt(ddir, dname).map_err(failed("stat", dst))?;
        let created = match existing {
            Some(e) if is_dir(&e) => false,
            Some(_) if !self.options.always_replace_existing_dest_paths => {
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
        let fd = rfs::openat(ddir, dname, DIR_FLAGS, Mode::empty()).map_err(failed("open", dst))?;
        Ok((fd, created))
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
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Directory {
            let (dst_fd, created) = self.prepare_dir(ddir, dname, src, dst)?;
            let src_fd = rfs::openat(sdir, sname, DIR_FLAGS, Mode::empty()).map_err(failed("open", src))?;
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
                dst: Some(dst_fd),
                name: dname.to_vec(),
                stat: *st,
                names,
                rel: rel.to_vec(),
                meta,
                state: State::default(),
            }));
        }
        match stat_opt(ddir, dname).map_err(failed("stat", dst))? {
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
        let bits = match (&self.mode_set, self.options.mode) {
            (Some(set), _) => set.apply(st.st_mode, is_dir(st)),
            (None, Some(mode)) => mode,
            (None, None) => st.st_mode,
        };
        Mode::from_raw_mode(bits & 0o7777)
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
