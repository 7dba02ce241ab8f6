//! The only place in kiln with `unsafe` code: process-wide namespace changes.
#![allow(unsafe_code)]

use rustix::mount::MountPropagationFlags;
use rustix::thread::UnshareFlags;

use crate::{Error, Result};

/// Moves the whole process into a new, private mount namespace (`unshare(CLONE_NEWNS)`, then
/// `/` made recursively private), so that every mount kiln makes afterwards is invisible to the
/// host and disappears when the process dies, even on SIGKILL.
///
/// Must be called before any other thread exists (first thing in `main`, before the tokio
/// runtime starts): `unshare` affects only the calling thread, so with other threads running the
/// process would be split across namespaces. Fails if there are other threads, or if the
/// process lacks `CAP_SYS_ADMIN`; the caller may then continue in the host's namespace.
pub fn enter_private_mount_namespace() -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|source| Error::EnterMountNamespace {
            step: "count threads",
            source,
        })?
        .count();
    if threads != 1 {
        let source = std::io::Error::other(format!("the process has {threads} threads, not 1"));
        return Err(Error::EnterMountNamespace {
            step: "check that no other thread runs",
            source,
        });
    }
    // SAFETY: `unshare_unsafe` is unsafe because `CLONE_FILES` could leave other threads with
    // file descriptors from a table they no longer share. Only `CLONE_NEWNS` is passed, which
    // does not touch the descriptor table, and the process has a single thread (checked above).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.map_err(|e| {
        Error::EnterMountNamespace {
            step: "unshare the mount namespace",
            source: e.into(),
        }
    })?;
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC).map_err(
        |e| Error::EnterMountNamespace {
            step: "make / recursively private",
            source: e.into(),
        },
    )
}
