//! File access inside a container's root filesystem that cannot escape it.
//!
//! An image controls every path inside its root filesystem, including symlinks such as
//! `/etc/passwd -> /etc/shadow` or `/work -> /root`. Each path is therefore resolved with
//! `openat2(RESOLVE_IN_ROOT)` relative to a descriptor of the root, so absolute symlinks and
//! `..` stay inside it, exactly as they would for a process inside the container.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid};
use rustix::io::Errno;

/// Files larger than this are not read as `/etc/passwd` or `/etc/group`.
const MAX_USER_FILE: u64 = 16 << 20;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// An open root filesystem.
pub(crate) struct Rootfs {
    fd: OwnedFd,
}

/// A path that did not exist before a mount was made on it, so the runtime will create it
/// (and any missing parents) as an empty file or directory.
pub(crate) struct Stub {
    components: Vec<String>,
    /// Index of the first component that did not exist.
    first_missing: usize,
}

impl Rootfs {
    /// Opens the directory at `path` (on the host) as a root filesystem.
    pub(crate) fn open(path: &Path) -> io::Result<Rootfs> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Rootfs { fd })
    }

    fn open_in_root(&self, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let path = if path.is_empty() { "." } else { path };
        // openat2 fails with EAGAIN when a concurrent rename might have let it escape; retry.
        let mut attempts = 0;
        loop {
            match rustix::fs::openat2(&self.fd, path, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE) {
                Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
                result => return result.map_err(io::Error::from),
            }
        }
    }

    fn open_dir(&self, components: &[impl AsRef<str>]) -> io::Result<OwnedFd> {
        self.open_in_root(&join(components), OFlags::PATH | OFlags::DIRECTORY)
    }

    /// Reads a regular file inside the root, such as `/etc/passwd`; a missing file reads as
    /// empty, because an image without `/etc/passwd` simply has no entries.
    pub(crate) fn read_user_file(&self, path: &str) -> io::Result<String> {
        // O_NONBLOCK so that a FIFO planted at the path cannot block the open.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = match self.open_in_root(&join(&components(path)), flags) {
            Ok(fd) => fd,
            // ENOTDIR: a parent such as `/etc` is not a directory, so the file is missing too.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(String::new());
            }
            Err(e) => return Err(e),
        };
        let stat = rustix::fs::fstat(&fd)?;
        if !FileType::from_raw_mode(stat.st_mode).is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
        }
        let mut content = Vec::new();
        File::from(fd).take(MAX_USER_FILE).read_to_end(&mut content)?;
        Ok(String::from_utf8_lossy(&content).into_owned())
    }

    /// Creates the directory `path` and its missing parents (mode 0755, owned by `uid`:`gid`).
    pub(crate) fn create_dir_all(&self, path: &str, uid: u32, gid: u32) -> io::Result<()> {
        let components = components(path);
        let mut parent = self.open_dir(&[] as &[&str])?;
        for (i, name) in components.iter().enumerate() {
            let prefix = &components[..=i];
            match self.open_dir(prefix) {
                Ok(fd) => parent = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {
                            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
                            rustix::fs::chownat(
                                &parent,
                                *name,
                                Some(uid),
                                Some(gid),
                                AtFlags::SYMLINK_NOFOLLOW,
                            )?;
                            // mkdirat applied our umask; the mode must not depend on it.
                            rustix::fs::chmodat(
                                &parent,
                                *name,
                                Mode::from_raw_mode(0o755),
                                AtFlags::empty(),
                            )?;
                        }
                        Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    parent = self.open_dir(prefix)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Returns the stub the runtime will create for a mount on `destination`, if any part of
    /// that path is missing now.
    pub(crate) fn find_stub(&self, destination: &str) -> Option<Stub> {
        let components: Vec<String> = components(destination).into_iter().map(str::to_owned).collect();
        let first_missing = (0..components.len()).find(|&i| {
            matches!(self.open_in_root(&join(&components[..=i]), OFlags::PATH), Err(e) if e.kind() == io::ErrorKind::NotFound)
        })?;
        Some(Stub {
            components,
            first_missing,
        })
    }

    /// Removes what remains of `stub`: from the deepest component up, each path that is an
    /// empty directory or an empty regular file. Anything else (the process wrote there) stays.
    pub(crate) fn remove_stub(&self, stub: &Stub) {
        for i in (stub.first_missing..stub.components.len()).rev() {
            let Ok(parent) = self.open_dir(&stub.components[..i]) else {
                return;
            };
            let name = stub.components[i].as_str();
            let stat = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                // Already gone (say a nested mount's stub inside another stub): look higher up.
                Err(Errno::NOENT) => continue,
                Err(_) => return,
            };
            let file_type = FileType::from_raw_mode(stat.st_mode);
            let removed = if file_type.is_dir() {
                // rmdir refuses a directory that is not empty, which is what we want.
                rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)
            } else if file_type.is_file() && stat.st_size == 0 {
                rustix::fs::unlinkat(&parent, name, AtFlags::empty())
            } else {
                return;
            };
            if removed.is_err() {
                return;
            }
        }
    }
}

/// The normal components of an absolute container path: `.` and empty ones dropped, `..`
/// applied lexically (it cannot climb above the root).
fn components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn join(components: &[impl AsRef<str>]) -> String {
    components.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_normalised() {
        assert_eq!(components("/a//b/./c/"), ["a", "b", "c"]);
        assert_eq!(components("/../a/../../b"), ["b"]);
        assert!(components("/").is_empty());
    }

    #[test]
    fn reads_stay_inside_the_root_and_stubs_are_removed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "root:x:0:0::/:/bin/sh\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("etc/passwd")).unwrap();
        let rootfs = Rootfs::open(root.path()).unwrap();
        assert_eq!(rootfs.read_user_file("/etc/passwd").unwrap(), "");
        assert_eq!(rootfs.read_user_file("/nothing/here").unwrap(), "");
        assert!(rootfs.read_user_file("/etc").is_err());

        // A working directory below a symlink is created inside the root, never outside; a
        // symlink dangling inside the root is an error.
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        assert!(rootfs.create_dir_all("/escape/made", 0, 0).is_err());
        let inside = root.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        rootfs.create_dir_all("/escape/made", 0, 0).unwrap();
        assert!(inside.join("made").is_dir());
        assert!(!outside.path().join("made").exists());

        assert!(rootfs.find_stub("/etc").is_none());
        let stub = rootfs.find_stub("/etc/new/deep").unwrap();
        std::fs::create_dir_all(root.path().join("etc/new/deep")).unwrap();
        std::fs::write(root.path().join("etc/new/kept"), "x").unwrap();
        rootfs.remove_stub(&stub);
        assert!(!root.path().join("etc/new/deep").exists());
        assert!(root.path().join("etc/new/kept").exists());
    }
}
