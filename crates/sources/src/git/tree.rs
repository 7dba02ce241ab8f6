//! The filesystem side of a checkout, all of it blocking (callers run it on the blocking
//! pool): snapshots that are removed off the async workers when dropped unfinished, finishing
//! a checked-out tree, and copying a subdirectory out of it.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fsops::fileop::{self, CopyOptions, FileOpError};
use store::{Active, SnapshotInfo};

/// Why finishing a checkout failed.
#[derive(Debug)]
pub(super) enum TreeError {
    /// A filesystem operation on the checked-out tree.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Copying the subdirectory (boxed: file operation errors are large).
    Copy(Box<FileOpError>),
    /// Committing the snapshot.
    Commit(store::Error),
}

/// A snapshot being written. Dropped before [`Unfinished::commit`] (a failed checkout, a
/// cancelled build), it is removed on the blocking pool when there is a runtime: removing a
/// checkout is a directory walk, which must not hold an async worker.
pub(super) struct Unfinished {
    active: Option<Active<'static>>,
    layer_dir: PathBuf,
}

impl Unfinished {
    pub(super) fn new(active: Active<'static>) -> Unfinished {
        Unfinished {
            layer_dir: active.layer_dir(),
            active: Some(active),
        }
    }

    /// The snapshot's layer directory, where the checkout goes.
    pub(super) fn layer_dir(&self) -> &Path {
        &self.layer_dir
    }

    /// Makes the snapshot permanent. Blocking.
    pub(super) fn commit(mut self) -> Result<SnapshotInfo, store::Error> {
        match self.active.take() {
            Some(active) => active.commit(),
            None => Err(store::Error::Corrupt {
                what: "snapshot committed twice".into(),
            }),
        }
    }

    /// Removes the snapshot now, in this thread. Blocking.
    pub(super) fn discard(mut self) {
        drop(self.active.take());
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // A runtime that is shutting down drops the closure, and with it the snapshot.
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(active))),
            Err(_) => drop(active),
        }
    }
}

/// Removes `.git` when asked and normalises permission bits below `root`: directories 0755,
/// files 0755 when git made them executable and 0644 otherwise; symlinks are left alone.
pub(super) fn finish(root: &Path, remove_git_dir: bool) -> Result<(), TreeError> {
    let failed = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Io { action, path, source }
    };
    if remove_git_dir {
        let git_dir = root.join(".git");
        // remove_dir_all never follows symlinks, and `.git` is git's own directory anyway.
        fs::remove_dir_all(&git_dir).map_err(failed("remove", &git_dir))?;
    }
    let set = |path: &Path, mode: u32| {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(failed("chmod", path))
    };
    set(root, 0o755)?;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(failed("read", &dir))?;
        for entry in entries {
            let entry = entry.map_err(failed("read", &dir))?;
            let path = entry.path();
            // `file_type` does not follow symlinks, so `set_permissions` below never does either:
            // nothing else writes in this tree meanwhile.
            let file_type = entry.file_type().map_err(failed("stat", &path))?;
            if file_type.is_dir() {
                set(&path, 0o755)?;
                dirs.push(path);
            } else if file_type.is_file() {
                let mode = entry
                    .metadata()
                    .map_err(failed("stat", &path))?
                    .permissions()
                    .mode();
                set(&path, if mode & 0o111 != 0 { 0o755 } else { 0o644 })?;
            }
        }
    }
    Ok(())
}

/// Copies the contents of `subdir` (relative, clean) of the checkout at `from` into `to`,
/// resolved inside the checkout: a symlink never leads out of it.
pub(super) fn copy_subdir(from: &Path, to: &Path, subdir: &str) -> Result<(), TreeError> {
    let options = CopyOptions {
        src: format!("/{subdir}"),
        dest: "/".into(),
        follow_symlink: true,
        dir_copy_contents: true,
        create_dest_path: true,
        ..CopyOptions::default()
    };
    fileop::copy(from, to, &options)
        .map(drop)
        .map_err(|e| TreeError::Copy(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::Arc;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn finishing_normalises_modes_and_removes_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/tool"), "#!/bin/sh").unwrap();
        fs::set_permissions(root.join("sub/tool"), Permissions::from_mode(0o700)).unwrap();
        fs::write(root.join("README"), "hi").unwrap();
        fs::set_permissions(root.join("README"), Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(root.join("sub"), Permissions::from_mode(0o700)).unwrap();
        symlink("README", root.join("link")).unwrap();

        finish(root, true).unwrap();
        assert!(!root.join(".git").exists());
        assert_eq!(mode(root), 0o755);
        assert_eq!(mode(&root.join("sub")), 0o755);
        assert_eq!(mode(&root.join("sub/tool")), 0o755);
        assert_eq!(mode(&root.join("README")), 0o644);
        assert!(fs::symlink_metadata(root.join("link")).unwrap().is_symlink());

        // Without a `.git` to remove, removing it fails, naming the path and the OS error.
        match finish(root, true) {
            Err(TreeError::Io { action, path, source }) => {
                assert_eq!((action, path), ("remove", root.join(".git")));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected a failed removal, got {other:?}"),
        }
    }

    #[test]
    fn a_subdirectory_is_copied_without_escaping_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        fs::create_dir_all(from.join("sub/inner")).unwrap();
        fs::create_dir(&to).unwrap();
        fs::write(from.join("sub/inner/file"), "inside").unwrap();
        fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink("../../secret", from.join("escape")).unwrap();

        copy_subdir(&from, &to, "sub").unwrap();
        assert_eq!(fs::read_to_string(to.join("inner/file")).unwrap(), "inside");
        assert!(matches!(
            copy_subdir(&from, &to, "missing"),
            Err(TreeError::Copy(_))
        ));
        // The link resolves inside the checkout, where there is no such file.
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        assert!(copy_subdir(&from, &other, "escape").is_err());
        assert!(fs::read_dir(&other).unwrap().next().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_dropped_snapshot_is_removed_off_the_async_workers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store::Store::open(&dir.path().join("state"), || {}).unwrap());
        let unfinished = Unfinished::new(store.prepare_owned(None, "dropped").unwrap());
        let layer = unfinished.layer_dir().to_path_buf();
        fs::write(layer.join("file"), "x").unwrap();
        drop(unfinished);
        for _ in 0..200 {
            if !layer.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!layer.exists(), "the snapshot is removed");

        let kept = Unfinished::new(store.prepare_owned(None, "kept").unwrap());
        let info = tokio::task::spawn_blocking(move || kept.commit())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.snapshot(info.id).unwrap().description, "kept");
    }
}
