//! Helpers every file action shares: user paths cleaned into relative ones and shown back as
//! the build sees them, roots opened, and the metadata of directories created on the way.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, Timespec};

use super::error::FileOpError;
use crate::inroot::{self, NewDir};
use crate::user::Ownership;

/// Opens a root directory as `O_PATH`.
pub(super) fn open_root(path: &Path) -> Result<OwnedFd, FileOpError> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileOpError::OpenRoot {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Cleans a user path into its relative form (`/a/../b/` → `b`; the root is empty).
pub(super) fn rel_path(path: &str) -> Result<Vec<u8>, FileOpError> {
    if path.contains('\0') {
        return Err(FileOpError::InvalidPath {
            path: path.to_owned(),
            reason: "path contains a nul byte",
        });
    }
    Ok(inroot::clean(path.as_bytes()).join(&b'/'))
}

/// How a relative path is shown in errors: absolute, as in the build.
pub(super) fn shown(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}

/// Joins a shown path and a relative one.
pub(super) fn join_shown(base: &str, rel: &[u8]) -> String {
    match (base.trim_end_matches('/'), rel.is_empty()) {
        (base, true) if !base.is_empty() => base.to_owned(),
        (base, _) => format!("{base}/{}", String::from_utf8_lossy(rel)),
    }
}

/// Splits a relative path into parent and last component (empty for the root).
pub(super) fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b""[..], rel),
    }
}

/// Whole Unix seconds as a timespec.
pub(super) fn timespec(secs: i64) -> Timespec {
    Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }
}

/// The metadata given to directories created on the way to a path.
pub(super) fn new_dir(mode: u32, owner: Option<Ownership>, timestamp: Option<i64>) -> NewDir {
    NewDir {
        mode,
        owner: owner.map(|o| (o.uid, o.gid)),
        mtime: timestamp.map(timespec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_shown_absolute() {
        assert_eq!(rel_path("/a/../../b/./c/").unwrap(), b"b/c");
        assert_eq!(rel_path("/").unwrap(), b"");
        assert!(matches!(rel_path("a\0b"), Err(FileOpError::InvalidPath { .. })));
        assert_eq!(shown(b"b/c"), "/b/c");
        assert_eq!(join_shown("/", b"x"), "/x");
        assert_eq!(join_shown("/d", b""), "/d");
        assert_eq!(join_shown("/d", b"x/y"), "/d/x/y");
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }
}
