//! A temporary kiln state directory that is safe to delete even when a test left mounts in it.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Passes over the mount table before giving up: mounts can be stacked on one mount point,
/// and each pass removes at least the top of every stack.
const UNMOUNT_PASSES: usize = 8;

/// A temporary directory for kiln's state (`--root`). On drop it first detaches every mount
/// still below it, deepest first, and then removes it, so a failed test never leaves an
/// overlay mounted in `/tmp` or a directory that cannot be deleted.
///
/// Only mounts visible in this process's mount namespace are seen; mounts made inside a
/// container's own namespace vanish with it anyway.
#[derive(Debug)]
pub struct TempRoot {
    dir: Option<tempfile::TempDir>,
    /// The canonical path: mountinfo lists mount points with symlinks resolved.
    path: PathBuf,
}

impl TempRoot {
    /// Creates the directory.
    pub fn new() -> anyhow::Result<TempRoot> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-root-")
            .tempdir()
            .context("create temporary state dir")?;
        let path = dir
            .path()
            .canonicalize()
            .with_context(|| format!("resolve {}", dir.path().display()))?;
        Ok(TempRoot { dir: Some(dir), path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        unmount_below(&self.path);
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            // A drop cannot fail; say what is left behind instead of hiding it.
            eprintln!("testkit: could not remove {}: {e}", self.path.display());
        }
    }
}

/// Detaches every mount at or below `root`, deepest first, until none is left or a pass
/// makes no progress.
fn unmount_below(root: &Path) {
    for _ in 0..UNMOUNT_PASSES {
        let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let mut mounts = mounts_below(&table, root);
        if mounts.is_empty() {
            return;
        }
        // Deepest first, so a parent is never detached while a child still hangs on it.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        let mut progress = false;
        for mount in mounts {
            match rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH) {
                Ok(()) => progress = true,
                Err(e) => eprintln!("testkit: could not unmount {}: {e}", mount.display()),
            }
        }
        if !progress {
            return;
        }
    }
}

/// The mount points in a `/proc/self/mountinfo` text that are `root` or below it.
fn mounts_below(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    store::mount_points(mountinfo)
        .into_iter()
        .filter(|mount| mount.starts_with(root))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_below_root_with_escapes() {
        let table = "\
22 1 8:1 / / rw - ext4 /dev/vda rw
30 22 0:40 / /tmp/r/a rw - overlay overlay rw
31 30 0:41 / /tmp/r/a/b\\040c rw - tmpfs tmpfs rw
32 22 0:42 / /tmp/rx rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounts_below(table, Path::new("/tmp/r")),
            vec![PathBuf::from("/tmp/r/a"), PathBuf::from("/tmp/r/a/b c")]
        );
    }
}
