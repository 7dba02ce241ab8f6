//! The local and tar exporters: the result filesystem as a directory tree or as one tar stream.
//!
//! Both read the merged read-only view of the result ([`store::Store::view`]): the whole
//! filesystem, with no overlayfs whiteouts or opaque markers left in it.
//!
//! [`write_local`] copies that view into a directory that belongs to the user and may already
//! hold files. It works on directory file descriptors throughout and opens every name with
//! `O_NOFOLLOW`, so it never writes through a symlink that exists in the destination: such a
//! symlink, or any other entry of a different type than the result's, is removed and replaced.
//! Existing directories are merged into. The destination directory itself keeps its own owner,
//! mode and times.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use fsops::inroot::{clear, read_names};
use fsops::xattr::{read_xattrs, xattr_allowed};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::{Error, Source};

/// Writes the result filesystem to `out` as one tar stream.
///
/// The tar is the deterministic layer format of [`fsops::layer::write_layer`] applied to the merged
/// view: entries sorted, parents first, numeric owners, whole-second mtimes, xattrs as PAX
/// records, hard links kept. Since the merged view has no whiteouts, the tar holds no `.wh.`
/// markers, just the full filesystem. An empty result gives an empty archive (two zero blocks).
pub fn write_tar(source: &Source<'_>, mut out: impl io::Write) -> Result<(), Error> {
    let Some(id) = source.result else {
        let out = tar::Builder::new(out)
            .into_inner()
            .map_err(|source| Error::Output {
                entry: "the end of the archive".into(),
                source,
            })?;
        return flush(out);
    };
    let view = source
        .store
        .view(id)
        .map_err(|source| Error::Mount { id, source })?;
    fsops::layer::write_layer(view.path(), &mut out).map_err(|source| Error::WriteTar { id, source })?;
    flush(out)
}

fn flush(mut out: impl io::Write) -> Result<(), Error> {
    out.flush().map_err(|source| Error::Output {
        entry: "the end of the archive".into(),
        source,
    })
}

/// Copies the result filesystem into `dest`, which is created if missing.
///
/// Everything is kept: file type, mode (setuid, setgid and sticky included), numeric owner
/// (the exporter runs as root), access and modification times with nanoseconds (directories
/// after their children), symlinks (copied, never followed), hard links within the tree,
/// device nodes and fifos, and the xattrs `user.*`, `security.capability` and POSIX ACLs.
/// Sockets are skipped. xattrs the destination file system does not support are skipped.
///
/// Files already in `dest` are replaced (unlinked first, so other hard links to them are not
/// written through); directories are merged, as BuildKit's local exporter does by default.
pub fn write_local(source: &Source<'_>, dest: &Path) -> Result<(), Error> {
    fs::create_dir_all(dest).map_err(|e| local("create directory", dest, e))?;
    let Some(id) = source.result else { return Ok(()) };
    let view = source
        .store
        .view(id)
        .map_err(|source| Error::Mount { id, source })?;
    let src_root = rfs::open(
        view.path(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| local("open", view.path(), e))?;
    // The destination itself may be a symlink the user chose to give; everything below is not.
    let dst_root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| local("open", dest, e))?;
    // The root frame needs its own fd; the copier keeps one to create hard links from.
    let dst_frame = rustix::io::dup(&dst_root).map_err(|e| local("open", dest, e))?;
    let mut copier = Copier {
        dest,
        dst_root,
        links: BTreeMap::new(),
    };
    let names = read_names(src_root.as_fd()).map_err(|e| copier.read_err("list", Path::new(""), e))?;
    let mut stack = vec![Frame::new(src_root, dst_frame, PathBuf::new(), names, None)];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.pop() else {
            if let Some(frame) = stack.pop()
                && let Some(st) = &frame.meta
            {
                copier.set_meta(frame.src.as_fd(), frame.dst.as_fd(), st, &frame.rel)?;
            }
            continue;
        };
        if let Some(child) = copier.copy_entry(top, &name)? {
            stack.push(child);
        }
    }
    Ok(())
}

fn local(action: &'static str, path: &Path, source: impl Into<io::Error>) -> Error {
    Error::Local {
        action,
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// A directory being copied.
struct Frame {
    src: OwnedFd,
    dst: OwnedFd,
    /// Path relative to the roots.
    rel: PathBuf,
    /// Names not copied yet, in reverse order so `pop` yields the smallest.
    names: Vec<Vec<u8>>,
    /// The source directory's metadata, applied once its children are done (`None` for the
    /// roots: the destination directory keeps its own).
    meta: Option<Stat>,
}

impl Frame {
    fn new(src: OwnedFd, dst: OwnedFd, rel: PathBuf, mut names: Vec<Vec<u8>>, meta: Option<Stat>) -> Frame {
        names.reverse();
        Frame {
            src,
            dst,
            rel,
            names,
            meta,
        }
    }
}

struct Copier<'a> {
    dest: &'a Path,
    /// The destination directory.
    dst_root: OwnedFd,
    /// Destination path (relative) of the first copy of each multiply-linked file, by source
    /// (device, inode).
    links: BTreeMap<(u64, u64), PathBuf>,
}

impl Copier<'_> {
    fn read_err(&self, action: &'static str, rel: &Path, e: impl Into<io::Error>) -> Error {
        // Paths in the result are shown as absolute paths of the result filesystem.
        local(action, &Path::new("/").join(rel), e)
    }

    fn write_err(&self, action: &'static str, rel: &Path, e: impl Into<io::Error>) -> Error {
        local(action, &self.dest.join(rel), e)
    }

    /// Copies entry `name` of the directory `frame`; returns the frame to descend into when it
    /// is a directory.
    fn copy_entry(&mut self, frame: &Frame, name: &[u8]) -> Result<Option<Frame>, Error> {
        let (src_dir, dst_dir) = (frame.src.as_fd(), frame.dst.as_fd());
        let rel = frame.rel.join(OsStr::from_bytes(name));
        let st = rfs::statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.read_err("stat", &rel, e))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let perm = Mode::from_raw_mode(st.st_mode & 0o7777);
        let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match kind {
            FileType::Directory => {
                let kept = clear(dst_dir, name, true).map_err(|e| self.write_err("remove", &rel, e))?;
                if !kept {
                    // Private until its real mode is set, after its children are written.
                    rfs::mkdirat(dst_dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.write_err("create directory", &rel, e))?;
                }
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | nofollow;
                let src = rfs::openat(src_dir, name, flags, Mode::empty())
                    .map_err(|e| self.read_err("open", &rel, e))?;
                let dst = rfs::openat(dst_dir, name, flags, Mode::empty())
                    .map_err(|e| self.write_err("open", &rel, e))?;
                let names = read_names(src.as_fd()).map_err(|e| self.read_err("list", &rel, e))?;
                return Ok(Some(Frame::new(src, dst, rel, names, Some(st))));
            }
            FileType::RegularFile => {
                clear(dst_dir, name, false).map_err(|e| self.write_err("remove", &rel, e))?;
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1
                    && let Some(first) = self.links.get(&key)
                {
                    rfs::linkat(&self.dst_root, first.as_path(), dst_dir, name, AtFlags::empty())
                        .map_err(|e| self.write_err("create hard link", &rel, e))?;
                    return Ok(None);
                }
                let src = rfs::openat(src_dir, name, OFlags::RDONLY | nofollow, Mode::empty())
                    .map_err(|e| self.read_err("open", &rel, e))?;
                let dst = rfs::openat(
                    dst_dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | nofollow,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.write_err("create", &rel, e))?;
                let (src, dst) = (File::from(src), File::from(dst));
                io::copy(&mut &src, &mut &dst).map_err(|e| self.write_err("write", &rel, e))?;
                self.set_meta(src.as_fd(), dst.as_fd(), &st, &rel)?;
                if st.st_nlink > 1 {
                    self.links.insert(key, rel);
                }
            }
            FileType::Symlink => {
                clear(dst_dir, name, false).map_err(|e| self.write_err("remove", &rel, e))?;
                let target = rfs::readlinkat(src_dir, name, Vec::new())
                    .map_err(|e| self.read_err("read link", &rel, e))?;
                rfs::symlinkat(target.as_c_str(), dst_dir, name)
                    .map_err(|e| self.write_err("create symlink", &rel, e))?;
                self.set_meta_at(dst_dir, name, &st, None, &rel)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                clear(dst_dir, name, false).map_err(|e| self.write_err("remove", &rel, e))?;
                rfs::mknodat(dst_dir, name, kind, perm, st.st_rdev)
                    .map_err(|e| self.write_err("create node", &rel, e))?;
                // mknod applies the umask, so the mode is set again.
                self.set_meta_at(dst_dir, name, &st, Some(perm), &rel)?;
            }
            // Sockets belong to a running process; there is nothing to copy.
            _ => {}
        }
        Ok(None)
    }

    /// Sets owner, mode, xattrs and times of an open destination file or directory from its
    /// source. The order matters: chown clears setuid, setgid and file capabilities.
    fn set_meta(&self, src: BorrowedFd<'_>, dst: BorrowedFd<'_>, st: &Stat, rel: &Path) -> Result<(), Error> {
        let err = |action| move |e| self.write_err(action, rel, e);
        rfs::fchown(
            dst,
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        )
        .map_err(err("chown"))?;
        rfs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(err("chmod"))?;
        for (name, value) in read_xattrs(src).map_err(|e| self.read_err("read xattrs of", rel, e))? {
            if !xattr_allowed(&name) {
                continue;
            }
            match rfs::fsetxattr(dst, name.as_slice(), &value, XattrFlags::empty()) {
                Err(e) if e == Errno::NOTSUP => {}
                other => other.map_err(err("set xattrs of"))?,
            }
        }
        rfs::futimens(dst, &times(st)).map_err(err("set times of"))
    }

    /// Sets owner, mode (when given) and times of a symlink or node that cannot be opened.
    fn set_meta_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &Stat,
        mode: Option<Mode>,
        rel: &Path,
    ) -> Result<(), Error> {
        let err = |action| move |e| self.write_err(action, rel, e);
        let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
        rfs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(err("chown"))?;
        if let Some(mode) = mode {
            // Not a symlink (it was just created as a node), so following is harmless.
            rfs::chmodat(dir, name, mode, AtFlags::empty()).map_err(err("chmod"))?;
        }
        rfs::utimensat(dir, name, &times(st), AtFlags::SYMLINK_NOFOLLOW).map_err(err("set times of"))
    }
}

fn times(st: &Stat) -> Timestamps {
    let spec = |sec, nsec| Timespec {
        tv_sec: sec,
        tv_nsec: i64::try_from(nsec).unwrap_or(0),
    };
    Timestamps {
        last_access: spec(st.st_atime, st.st_atime_nsec),
        last_modification: spec(st.st_mtime, st.st_mtime_nsec),
    }
}
