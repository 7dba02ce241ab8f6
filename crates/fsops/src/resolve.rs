//! Resolving a path inside a directory tree as a process whose root it is would: the host path
//! a bind mount of that tree's `path` must use.
//!
//! Symlinks are followed, but absolute targets restart at the tree's root and `..` stops there,
//! so a tree (an image, a build context) can never point a caller at the host.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path before giving up, as Linux's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

/// One step still to resolve.
enum Step {
    Parent,
    Name(OsString),
}

/// Pushes the components of `path` onto `pending` so that they pop in order.
fn push_components(pending: &mut Vec<Step>, path: &Path) {
    let steps: Vec<Step> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Step::Name(n.to_os_string())),
            Component::ParentDir => Some(Step::Parent),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(steps.into_iter().rev());
}

/// Resolves `path` inside the directory tree `root` as a process whose root directory is `root`
/// would: every symlink is followed, absolute targets restart at `root` and `..` stops there.
/// Returns a host path below `root` without symlinks after `root`, which must exist.
///
/// The trees this serves are immutable while it runs (committed snapshots, fresh scratch
/// snapshots, the build context), so checking each component and then using the joined path
/// is not racy in practice; nothing here writes.
pub fn resolve_path(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut pending = Vec::new();
    push_components(&mut pending, Path::new(path));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut symlinks = 0;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Parent => {
                resolved.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&name);
        let meta = std::fs::symlink_metadata(&candidate)?;
        if meta.file_type().is_symlink() {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = std::fs::read_link(&candidate)?;
            if target.has_root() {
                resolved.clear();
            }
            push_components(&mut pending, &target);
        } else {
            if !pending.is_empty() && !meta.is_dir() {
                return Err(io::Error::other("not a directory"));
            }
            resolved.push(name);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn selectors_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("secret")).unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/file"), "x").unwrap();
        symlink("/a", r.join("abs")).unwrap();
        symlink("../../../../a/b", r.join("a/up")).unwrap();
        symlink(outside.path(), r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();

        assert_eq!(resolve_path(r, "").unwrap(), r);
        assert_eq!(resolve_path(r, "/").unwrap(), r);
        assert_eq!(resolve_path(r, "/a/b/").unwrap(), r.join("a/b"));
        assert_eq!(resolve_path(r, "/../../a").unwrap(), r.join("a"));
        assert_eq!(resolve_path(r, "/abs/b/file").unwrap(), r.join("a/b/file"));
        assert_eq!(resolve_path(r, "/a/up").unwrap(), r.join("a/b"));
        // An absolute symlink to a host directory lands at the same path inside the root.
        let escaped = resolve_path(r, "/escape/secret");
        assert_eq!(escaped.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            resolve_path(r, "/missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(resolve_path(r, "/loop").is_err());
        assert!(resolve_path(r, "/a/b/file/x").is_err());
    }
}
