//! File system primitives confined to a root directory: what every untrusted tree (an image's
//! filesystem, a layer being applied, a build context) is accessed through.
//!
//! Every path handed to these functions is relative to a root directory fd and is resolved by
//! the kernel with `openat2(RESOLVE_IN_ROOT)`: `..` stops at the root and absolute symlink
//! targets restart there, so no lookup can leave the root whatever the tree contains. Entries
//! are then operated on as `(directory fd, name)` pairs with `*at` calls that never follow a
//! symlink in the last component, except in [`resolve_final`], which follows it explicitly and
//! again only inside the root.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

/// Linux's limit on symlinks followed in one lookup; we follow no more.
const MAX_SYMLINKS: usize = 40;

/// Whether `st` describes a directory.
pub fn is_dir(st: &rfs::Stat) -> bool {
    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory
}

/// Whether `e` is one of the OS errors in `list`.
pub fn errno_is(e: &io::Error, list: &[Errno]) -> bool {
    list.iter().any(|x| e.raw_os_error() == Some(x.raw_os_error()))
}

/// Access and modification times both set to `time`.
pub fn times(time: Timespec) -> Timestamps {
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

/// Splits a path into clean components: empty and `.` components dropped, `..` removing the
/// previous component and clamped at the root (`../../etc/x` is `etc/x`).
pub fn clean(path: &[u8]) -> Vec<&[u8]> {
    let mut comps: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                comps.pop();
            }
            _ => comps.push(comp),
        }
    }
    comps
}

/// Opens `path` (relative; empty means the root itself) beneath `root`, following symlinks
/// only within the root.
pub fn open_in_root(root: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { b"." } else { path };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut attempts = 0;
    loop {
        match rfs::openat2(root, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            // The kernel asks for a retry when a rename raced with the lookup.
            Err(e) if e == Errno::AGAIN && attempts < 16 => attempts += 1,
            other => return Ok(other?),
        }
    }
}

/// Metadata given to directories created on the way to a path.
#[derive(Debug, Clone, Copy)]
pub struct NewDir {
    /// Permission bits, applied exactly (the umask plays no part).
    pub mode: u32,
    /// Owner; `None` keeps the creating process's ids.
    pub owner: Option<(u32, u32)>,
    /// Access and modification time; `None` keeps the current time.
    pub mtime: Option<Timespec>,
}

impl NewDir {
    /// Mode 0755, owned by the caller, current time: what `mkdir -p` does.
    pub const PLAIN: NewDir = NewDir {
        mode: 0o755,
        owner: None,
        mtime: None,
    };
}

/// Creates directory `name` in `dir` with the mode and owner of `new` and returns it opened.
/// Its times are left to the caller: they change as entries are added below it.
pub fn make_dir(dir: BorrowedFd<'_>, name: &[u8], new: &NewDir) -> io::Result<OwnedFd> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::empty())?;
    if let Some((uid, gid)) = new.owner {
        rfs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    rfs::fchmod(&fd, Mode::from_raw_mode(new.mode & 0o7777))?;
    Ok(fd)
}

/// Sets the time of `new` on directories made by [`make_dir`] or [`make_dirs`], once nothing
/// more is created in them.
pub fn finish_dirs(created: &[OwnedFd], new: &NewDir) -> io::Result<()> {
    if let Some(mtime) = new.mtime {
        for fd in created {
            rfs::futimens(fd, &times(mtime))?;
        }
    }
    Ok(())
}

/// Opens directory `path` (relative) as `O_PATH`, following symlinks but never leaving the
/// root. With `create`, missing components are made with that metadata (existing ones are left
/// alone), also where a dangling symlink points, as `mkdir -p` through a symlink would.
pub fn open_dir(root: BorrowedFd<'_>, path: &[u8], create: Option<&NewDir>) -> io::Result<OwnedFd> {
    match create {
        None => open_in_root(root, path, OFlags::PATH | OFlags::DIRECTORY),
        Some(new) => {
            let (fd, created) = make_dirs(root, path, new)?;
            finish_dirs(&created, new)?;
            Ok(fd)
        }
    }
}

/// Like [`open_dir`] with `create`, but returns the directories it made, opened, leaving
/// their times to the caller ([`finish_dirs`]).
pub fn make_dirs(root: BorrowedFd<'_>, path: &[u8], new: &NewDir) -> io::Result<(OwnedFd, Vec<OwnedFd>)> {
    let resolve = |p: &[u8]| open_in_root(root, p, OFlags::PATH | OFlags::DIRECTORY);
    let mut path = path.to_vec();
    let mut created = Vec::new();
    let mut links = 0;
    'restart: loop {
        match resolve(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other.map(|fd| (fd, created)),
        }
        let mut dir = resolve(b"")?;
        let ends: Vec<usize> = (0..path.len())
            .filter(|&i| path[i] == b'/')
            .chain([path.len()])
            .collect();
        let mut start = 0;
        for end in ends {
            dir = match resolve(&path[..end]) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match make_dir(dir.as_fd(), &path[start..end], new) {
                        Ok(fd) => {
                            created.push(fd);
                            resolve(&path[..end])?
                        }
                        // The component exists but does not resolve: a dangling symlink. Carry on
                        // where it points, which the kernel resolves inside the root again.
                        Err(e) if errno_is(&e, &[Errno::EXIST]) && links < MAX_SYMLINKS => {
                            links += 1;
                            let target = rfs::readlinkat(&dir, &path[start..end], Vec::new())?.into_bytes();
                            let rest = &path[end..];
                            path = if target.starts_with(b"/") {
                                [&target[..], rest].concat()
                            } else {
                                [&path[..start], &target[..], rest].concat()
                            };
                            continue 'restart;
                        }
                        Err(e) => return Err(e),
                    }
                }
                other => other?,
            };
            start = end + 1;
        }
        return Ok((dir, created));
    }
}

/// Resolves `path` (relative) to the directory holding its final entry and that entry's name,
/// following symlinks in every component including the last one, all within the root. The
/// returned name exists and is no symlink, or does not exist (its parent does). A path that
/// ends in a directory reached through `.`/`..` comes back as that directory and `.`.
pub fn resolve_final(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut path = path.to_vec();
    for _ in 0..=MAX_SYMLINKS {
        // Paths are relative to the root either way, so outer slashes carry no meaning.
        let start = path.iter().position(|&b| b != b'/').unwrap_or(path.len());
        let end = path.iter().rposition(|&b| b != b'/').map_or(start, |i| i + 1);
        let trimmed = &path[start..end];
        let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        if matches!(name, b"" | b"." | b"..") {
            let fd = open_in_root(root, trimmed, OFlags::PATH | OFlags::DIRECTORY)?;
            return Ok((fd, b".".to_vec()));
        }
        let dir = open_in_root(root, parent, OFlags::PATH | OFlags::DIRECTORY)?;
        match rfs::readlinkat(&dir, name, Vec::new()) {
            Ok(target) => {
                let target = target.into_bytes();
                if target.is_empty() {
                    return Err(Errno::NOENT.into());
                }
                // The kernel resolves the new path against the root, with `..` in the target
                // taken physically from the link's real parent, exactly as a lookup would.
                path = if target.starts_with(b"/") {
                    target
                } else {
                    [parent, b"/", &target].concat()
                };
            }
            // EINVAL: not a symlink. ENOENT: nothing there yet.
            Err(e) if e == Errno::INVAL || e == Errno::NOENT => return Ok((dir, name.to_vec())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::LOOP.into())
}

/// Opens the regular file `name` of `dir` for reading and checks it is still the file `stat`
/// describes, so a file swapped for a fifo or device in between is never opened for reading.
pub fn open_regular(dir: BorrowedFd<'_>, name: &[u8], stat: &rfs::Stat) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::empty())?;
    let now = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(now.st_mode) != rfs::FileType::RegularFile
        || (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino)
    {
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(fd)
}

/// The names in directory `dir` (any fd, `O_PATH` included), without `.` and `..`, sorted by bytes.
pub fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    // `O_PATH` fds cannot be read, so open the directory itself for reading.
    let fd = rfs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rfs::Dir::new(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the entry `name` of `dir`, first emptying it when it is a directory. Symlinks are
/// removed, never followed. Missing entries are fine. Iterative, so deep trees cannot overflow
/// the stack; it holds one fd per level.
pub fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(e) if e == Errno::NOENT => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(st) if !is_dir(&st) => return Ok(rfs::unlinkat(dir, name, AtFlags::empty())?),
        Ok(_) => {}
    }
    /// A directory being emptied: its fd and the subdirectories still to remove.
    struct Frame {
        fd: OwnedFd,
        subdirs: Vec<Vec<u8>>,
    }
    fn open(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Frame> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(dir, name, flags, Mode::empty())?;
        let mut subdirs = Vec::new();
        for child in read_names(fd.as_fd())? {
            match rfs::statat(&fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if is_dir(&st) => subdirs.push(child),
                Ok(_) => rfs::unlinkat(&fd, child.as_slice(), AtFlags::empty())?,
                Err(e) if e == Errno::NOENT => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Frame { fd, subdirs })
    }
    let mut stack = vec![open(dir, name)?];
    while let Some(top) = stack.last() {
        if let Some(sub) = top.subdirs.last() {
            let frame = open(top.fd.as_fd(), sub)?;
            stack.push(frame);
            continue;
        }
        // `top` is empty now: remove it from its parent.
        stack.pop();
        match stack.last_mut() {
            Some(parent) => {
                if let Some(sub) = parent.subdirs.pop() {
                    rfs::unlinkat(&parent.fd, sub.as_slice(), AtFlags::REMOVEDIR)?;
                }
            }
            None => rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?,
        }
    }
    Ok(())
}

/// Prepares the entry `name` of `dir` for a new entry: keeps an existing directory when
/// `keep_dir` (returning true), otherwise removes whatever is there.
pub fn clear(dir: BorrowedFd<'_>, name: &[u8], keep_dir: bool) -> io::Result<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(e) if e == Errno::NOENT => Ok(false),
        Err(e) => Err(e.into()),
        Ok(st) if is_dir(&st) && keep_dir => Ok(true),
        Ok(_) => remove_all(dir, name).map(|()| false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_at_root() {
        let joined = |p: &[u8]| clean(p).join(&b'/');
        assert_eq!(joined(b"../../etc/evil"), b"etc/evil");
        assert_eq!(joined(b"/abs/./path/"), b"abs/path");
        assert_eq!(joined(b"a/b/../../../c"), b"c");
        assert_eq!(joined(b"./"), b"");
        assert_eq!(joined(b"a//b/.."), b"a");
    }

    #[test]
    fn resolve_final_follows_links_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("sub/../../real/file", root.join("real/rel")).unwrap();
        std::os::unix::fs::symlink("/", root.join("top")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let fd = rfs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let ino = |fd: &OwnedFd| rfs::fstat(fd).unwrap().st_ino;
        let real = rfs::stat(root.join("real")).unwrap().st_ino;
        // A symlink to a directory resolves to that directory; `..` in a relative target is
        // taken from the link's parent; a missing final name is returned as is.
        let (dir, name) = resolve_final(fd.as_fd(), b"abs/rel").unwrap();
        assert_eq!((ino(&dir), name.as_slice()), (real, &b"file"[..]));
        let (dir, name) = resolve_final(fd.as_fd(), b"top/../..").unwrap();
        assert_eq!(
            (ino(&dir), name.as_slice()),
            (rfs::stat(root).unwrap().st_ino, &b"."[..])
        );
        let err = resolve_final(fd.as_fd(), b"loop").unwrap_err();
        assert!(errno_is(&err, &[Errno::LOOP]), "{err}");
    }
}
