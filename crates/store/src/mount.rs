//! Mounting snapshots: overlayfs for chains, nothing at all for single directories; and the
//! other short-lived directories under `<root>/mnt`: tmpfs mounts and empty directories.
//!
//! Every mount is owned by a [`Mounted`] guard that unmounts and removes its mount point when
//! dropped, so no code path can leak a mount; an [`EmptyDir`] likewise removes its directory.
//! Mount points and empty directories live under `<root>/mnt`; after a crash,
//! [`crate::Store::open`] unmounts and removes whatever is left there.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount,
};

use crate::Error;

static MOUNT_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory tree that is ready to use: either a plain directory or a mount that is undone on
/// drop.
#[derive(Debug)]
pub struct Mounted {
    path: PathBuf,
    owned_mount: bool,
}

impl Mounted {
    /// A plain directory that needs no mount.
    pub(crate) fn plain(path: PathBuf) -> Mounted {
        Mounted {
            path,
            owned_mount: false,
        }
    }

    /// Where the tree is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.owned_mount {
            unmount_and_remove(&self.path);
        }
    }
}

/// An empty directory under the state directory, removed when dropped: the source of a copy
/// from nothing, or of a read-only mount of an empty input ([`crate::Store::empty_dir`]).
#[derive(Debug)]
pub struct EmptyDir {
    path: PathBuf,
}

impl EmptyDir {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EmptyDir {
    fn drop(&mut self) {
        // Only an empty directory goes: if a user of the guard put something in it, that stays
        // for `Store::open` to clear away, rather than being deleted from under its writer.
        let _ = fs::remove_dir(&self.path);
    }
}

/// Creates a fresh empty directory, mode 0755, under `mnt_dir`.
pub(crate) fn empty_dir(mnt_dir: &Path) -> Result<EmptyDir, Error> {
    let n = MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = mnt_dir.join(format!("{}-{n}-empty", std::process::id()));
    let io_error = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { action, path, source }
    };
    fs::create_dir(&path).map_err(io_error("create empty directory", &path))?;
    let dir = EmptyDir { path };
    // Whatever the process's umask: the mode shows where the directory is mounted.
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755))
        .map_err(io_error("set mode of", &dir.path))?;
    Ok(dir)
}

/// Unmounts `path` (lazily if it is busy) and removes the mount point.
pub(crate) fn unmount_and_remove(path: &Path) {
    if rustix::mount::unmount(path, UnmountFlags::empty()).is_err() {
        let _ = rustix::mount::unmount(path, UnmountFlags::DETACH);
    }
    let _ = fs::remove_dir(path);
}

/// Mounts an overlay of `lowers` (top first) with an optional writable `upper`/`work` pair at a
/// fresh mount point under `mnt_dir`.
pub(crate) fn mount_overlay(
    mnt_dir: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
) -> Result<Mounted, Error> {
    let n = MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let target = mnt_dir.join(format!("{}-{n}", std::process::id()));
    fs::create_dir_all(&target).map_err(|source| Error::Io {
        action: "create mount point",
        path: target.clone(),
        source,
    })?;
    let result = mount_new_api(&target, lowers, upper).or_else(|new_api_error| {
        mount_classic(&target, lowers, upper).map_err(|classic| (new_api_error, classic))
    });
    match result {
        Ok(()) => Ok(Mounted {
            path: target,
            owned_mount: true,
        }),
        Err((new_api, classic)) => {
            let _ = fs::remove_dir(&target);
            Err(Error::Mount {
                path: target,
                message: format!("overlay mount failed: {classic} (with the new mount API: {new_api})"),
            })
        }
    }
}

/// Mounts a fresh tmpfs of at most `size` bytes, mode 0700, at a fresh mount point under
/// `mnt_dir`: a place for data that must never reach a disk (secrets, agent sockets). Mounted
/// `nosuid,nodev,noexec`. Like every mount here it is undone when the guard drops, and with the
/// process's private mount namespace it disappears even if the process is killed.
pub(crate) fn mount_tmpfs(mnt_dir: &Path, size: u64) -> Result<Mounted, Error> {
    let n = MOUNT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let target = mnt_dir.join(format!("{}-{n}-tmpfs", std::process::id()));
    fs::create_dir_all(&target).map_err(|source| Error::Io {
        action: "create mount point",
        path: target.clone(),
        source,
    })?;
    let data = std::ffi::CString::new(format!("mode=0700,size={size}")).map_err(|_| Error::Mount {
        path: target.clone(),
        message: "invalid tmpfs options".into(),
    })?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    match rustix::mount::mount("tmpfs", &target, "tmpfs", flags, data.as_c_str()) {
        Ok(()) => Ok(Mounted {
            path: target,
            owned_mount: true,
        }),
        Err(e) => {
            let _ = fs::remove_dir(&target);
            Err(Error::Mount {
                path: target,
                message: format!("tmpfs mount failed: {e}"),
            })
        }
    }
}

/// Overlay options kiln always uses: no inode index, no redirects, no metacopy, so upper
/// directories stay in the plain format the layer writer understands.
const FIXED_OPTIONS: [(&str, &str); 3] = [("index", "off"), ("redirect_dir", "off"), ("metacopy", "off")];

/// The new mount API appends lower layers one at a time (`lowerdir+`), so chains are not limited
/// by the one-page option string of `mount(2)`.
fn mount_new_api(target: &Path, lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> rustix::io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower.as_path())?;
    }
    if let Some((upper, work)) = upper {
        fsconfig_set_string(&fs, "upperdir", upper)?;
        fsconfig_set_string(&fs, "workdir", work)?;
    }
    for (k, v) in FIXED_OPTIONS {
        fsconfig_set_string(&fs, k, v)?;
    }
    fsconfig_create(&fs)?;
    let attrs = if upper.is_none() {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

fn mount_classic(target: &Path, lowers: &[PathBuf], upper: Option<(&Path, &Path)>) -> Result<(), String> {
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut data = format!("lowerdir={lower}");
    if let Some((upper, work)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            upper.display(),
            work.display()
        ));
    }
    for (k, v) in FIXED_OPTIONS {
        data.push_str(&format!(",{k}={v}"));
    }
    if data.len() >= 4096 {
        return Err(format!(
            "too many layers ({}) for the mount(2) option string",
            lowers.len()
        ));
    }
    let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
    let flags = if upper.is_none() {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str()).map_err(|e| e.to_string())
}

/// The mount points of a `/proc/self/mountinfo` text (field 5), with the kernel's octal escapes
/// (`\040` for a space, …) decoded: what [`crate::Store::check`] looks for stray mounts in, and
/// what test fixtures unmount before removing a state directory.
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| {
            use std::os::unix::ffi::OsStringExt;
            let bytes = field.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let octal = bytes
                    .get(i + 1..i + 4)
                    .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
                    .map(|d| d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')));
                match (bytes[i], octal.and_then(|v| u8::try_from(v).ok())) {
                    (b'\\', Some(byte)) => {
                        out.push(byte);
                        i += 4;
                    }
                    (byte, _) => {
                        out.push(byte);
                        i += 1;
                    }
                }
            }
            PathBuf::from(std::ffi::OsString::from_vec(out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    use super::mount_points;
    use crate::Store;

    #[test]
    fn mount_points_are_unescaped() {
        let table = "22 1 8:1 / / rw - ext4 /dev/vda rw\n30 22 0:40 / /tmp/a\\040b rw - overlay o rw\n";
        assert_eq!(
            mount_points(table),
            vec![PathBuf::from("/"), PathBuf::from("/tmp/a b")]
        );
    }

    #[test]
    fn mount_points_keep_backslashes_that_escape_nothing() {
        let table = r"22 1 8:1 / /a\134b\x rw - ext4 /dev/vda rw";
        assert_eq!(mount_points(table), vec![PathBuf::from(r"/a\b\x")]);
    }

    #[test]
    fn empty_dirs_are_removed_on_drop_and_after_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let store = Store::open(&root, || {}).unwrap();
        let first = store.empty_dir().unwrap();
        let second = store.empty_dir().unwrap();
        assert_ne!(first.path(), second.path());
        for dir in [&first, &second] {
            assert!(dir.path().starts_with(store.root().join("mnt")));
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            assert_eq!(std::fs::metadata(dir.path()).unwrap().mode() & 0o7777, 0o755);
        }
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists());

        // A process killed while holding some leaves them behind, even written into; the next
        // open removes them and the check finds nothing wrong.
        let left = second.path().to_path_buf();
        std::mem::forget(second);
        std::fs::write(left.join("stray"), "x").unwrap();
        drop(store);
        let store = Store::open(&root, || {}).unwrap();
        assert!(!left.exists());
        let report = store.check().unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
    }
}
