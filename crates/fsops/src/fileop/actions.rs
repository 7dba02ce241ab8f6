//! The file actions other than copy: mkdir, mkfile, rm and symlink (LLB's `FileActionMkDir`,
//! `FileActionMkFile`, `FileActionRm` and `FileActionSymlink`), and `--chown` resolution.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

use super::error::{FileOpError, failed};
use super::source::find_sources;
use super::support::{new_dir, open_root, rel_path, shown, split_last, timespec};
use crate::inroot::{self, errno_is, open_dir, resolve_final};
use crate::user::{self, Ownership, UserRef};

/// Resolves `user[:group]` of a `--chown` against `<root>/etc/passwd` and `<root>/etc/group`,
/// read inside `root` (see [`user::resolve_ownership`] for BuildKit's rules).
pub fn resolve_ownership(
    root: &Path,
    user: &UserRef,
    group: Option<&UserRef>,
) -> Result<Ownership, FileOpError> {
    let fd = open_root(root)?;
    Ok(user::resolve_ownership(fd.as_fd(), user, group)?)
}

/// Creates directory `path` (LLB `FileActionMkDir`) with permission bits `mode & 0o777`.
///
/// With `make_parents`, missing parents are created too, all with `mode`, `owner` and
/// `timestamp`, and an existing directory is left unchanged. Without it the parent must exist;
/// an existing directory is accepted unchanged as well (as BuildKit does), an existing
/// non-directory is [`FileOpError::Exists`]. A final symlink is followed within the root.
pub fn mkdir(
    root: &Path,
    path: &str,
    mode: u32,
    make_parents: bool,
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(path)?;
    let new = new_dir(mode & 0o777, owner, timestamp);
    let show = shown(&rel);
    if make_parents {
        open_dir(root.as_fd(), &rel, Some(&new)).map_err(failed("create directory", &show))?;
        return Ok(());
    }
    let (dir, name) = resolve_final(root.as_fd(), &rel).map_err(failed("create directory", &show))?;
    match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if inroot::is_dir(&st) => Ok(()),
        Ok(_) => Err(FileOpError::Exists { path: show }),
        Err(Errno::NOENT) => inroot::make_dir(dir.as_fd(), &name, &new)
            .and_then(|fd| inroot::finish_dirs(&[fd], &new))
            .map_err(failed("create directory", &show)),
        Err(e) => Err(failed("create directory", &show)(e)),
    }
}

/// Writes file `path` (LLB `FileActionMkFile`) with `data` and permission bits `mode & 0o777`,
/// replacing an existing non-directory. A final symlink is followed within the root; the parent
/// must exist. The file is owned by `owner` (else by the caller) and gets `timestamp` as mtime.
pub fn mkfile(
    root: &Path,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(path)?;
    let show = shown(&rel);
    let (dir, name) = resolve_final(root.as_fd(), &rel).map_err(failed("write file", &show))?;
    let is_dir_err = || failed("write file", &show)(Errno::ISDIR);
    match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if inroot::is_dir(&st) => return Err(is_dir_err()),
        Ok(_) => rfs::unlinkat(&dir, name.as_slice(), AtFlags::empty()).map_err(failed("replace", &show))?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(failed("write file", &show)(e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(&dir, name.as_slice(), flags, Mode::from_raw_mode(0o600))
        .map_err(failed("create file", &show))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(failed("write file", &show))?;
    if let Some(o) = owner {
        rfs::fchown(&file, Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid)))
            .map_err(failed("chown", &show))?;
    }
    rfs::fchmod(&file, Mode::from_raw_mode(mode & 0o777)).map_err(failed("chmod", &show))?;
    if let Some(ts) = timestamp {
        rfs::futimens(&file, &inroot::times(timespec(ts))).map_err(failed("set times of", &show))?;
    }
    Ok(())
}

/// Removes `path` recursively (LLB `FileActionRm`); a final symlink is removed, not followed.
///
/// A missing path is [`FileOpError::NotFound`] unless `allow_not_found`. With
/// `allow_wildcard`, every match of the pattern is removed; no match is not an error. The root
/// itself cannot be removed.
pub fn rm(root: &Path, path: &str, allow_not_found: bool, allow_wildcard: bool) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    for rel in find_sources(root.as_fd(), path, allow_wildcard, true)? {
        let show = shown(&rel);
        let (parent, name) = split_last(&rel);
        if name.is_empty() {
            return Err(FileOpError::InvalidPath {
                path: path.to_owned(),
                reason: "cannot remove the root directory",
            });
        }
        let exists = match open_dir(root.as_fd(), parent, None) {
            Ok(dir) => match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Some(dir),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(failed("remove", &show)(e)),
            },
            Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => None,
            Err(e) => return Err(failed("remove", &show)(e)),
        };
        match exists {
            Some(dir) => inroot::remove_all(dir.as_fd(), name).map_err(failed("remove", &show))?,
            None if allow_not_found => {}
            None => return Err(FileOpError::NotFound { path: show }),
        }
    }
    Ok(())
}

/// Creates symlink `newpath` pointing to `oldpath` (stored verbatim) (LLB
/// `FileActionSymlink`). The parent must exist; an existing `newpath` is
/// [`FileOpError::Exists`]. The link is owned by `owner` (else by the caller) and gets
/// `timestamp` as mtime.
pub fn symlink(
    root: &Path,
    oldpath: &str,
    newpath: &str,
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(newpath)?;
    let show = shown(&rel);
    if oldpath.contains('\0') {
        return Err(FileOpError::InvalidPath {
            path: oldpath.to_owned(),
            reason: "symlink target contains a nul byte",
        });
    }
    let (parent, name) = split_last(&rel);
    if name.is_empty() {
        return Err(FileOpError::Exists { path: show });
    }
    let dir = open_dir(root.as_fd(), parent, None).map_err(failed("create symlink", &show))?;
    match rfs::symlinkat(oldpath, &dir, name) {
        Err(Errno::EXIST) => return Err(FileOpError::Exists { path: show }),
        other => other.map_err(failed("create symlink", &show))?,
    }
    if let Some(o) = owner {
        let (uid, gid) = (Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid)));
        rfs::chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(failed("chown", &show))?;
    }
    if let Some(ts) = timestamp {
        rfs::utimensat(
            &dir,
            name,
            &inroot::times(timespec(ts)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(failed("set times of", &show))?;
    }
    Ok(())
}
