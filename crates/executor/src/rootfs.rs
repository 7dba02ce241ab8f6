//! File access inside a container's root filesystem that cannot escape it.
//!
//! An image controls every path inside its root filesystem, including symlinks such as
//! `/etc/passwd -> /etc/shadow` or `/work -> /root`. Each path is therefore resolved with
//! `openat2(RESOLVE_IN_ROOT)` relative to a descriptor of the root, so absolute symlinks and
//! `..` stay inside it, exactly as they would for a process inside the container.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

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

    /// The root directory (`O_PATH`), for lookups confined to it such as `fsops::user`'s.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn open_in_root(&self, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
        fsops::inroot::open_in_root(self.fd.as_fd(), path.as_bytes(), flags)
    }

    fn open_dir(&self, components: &[impl AsRef<str>]) -> io::Result<OwnedFd> {
        self.open_in_root(&join(components), OFlags::PATH | OFlags::DIRECTORY)
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
        let user = fsops::user::resolve_exec_user(rootfs.fd(), "root");
        assert!(
            matches!(user, Err(fsops::user::UserError::UnknownUser { .. })),
            "the host's passwd was read: {user:?}"
        );

        // A working directory below a symlink is created inside the root, never outside; a
        // symlink dangling inside the root is an error.
        // Owned by whoever runs the test, so that it needs no root.
        let (uid, gid) = (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        );
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        assert!(rootfs.create_dir_all("/escape/made", uid, gid).is_err());
        let inside = root.path().join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        rootfs.create_dir_all("/escape/made", uid, gid).unwrap();
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
