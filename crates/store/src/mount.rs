//! Mounting snapshots: overlayfs for chains, nothing at all for single directories.
//!
//! Every mount is owned by a [`Mounted`] guard that unmounts and removes its mount point when
//! dropped, so no code path can leak a mount. Mount points live under `<root>/mnt`; after a
//! crash, [`crate::Store::open`] unmounts and removes whatever is left there.

use std::fs;
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
