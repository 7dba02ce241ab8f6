//! The client's side of a context transfer: a directory's entries after its `.dockerignore`
//! patterns, with the metadata the daemon compares with its copy of the directory. Only regular
//! files, directories and symlinks cross the wire (sockets, pipes and devices are left out, as a
//! device node made from a client's description would reach the daemon's host).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fsops::fileop::{MatchInfo, PatternMatcher};

use crate::pb::FileEntry;

/// A directory's listing: the entries in the order they are sent (parents first, depth first,
/// names in byte order), and where each one is on the client.
#[derive(Debug, Default)]
pub struct Listing {
    /// What the daemon sees.
    pub entries: Vec<FileEntry>,
    /// The client's path of each entry (same index).
    pub paths: Vec<PathBuf>,
}

impl Listing {
    /// The bytes the listing takes on the wire (its entries, encoded).
    pub fn wire_size(&self) -> usize {
        self.entries.iter().map(prost::Message::encoded_len).sum()
    }
}

/// A directory that could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// Reading a directory or an entry's metadata failed.
    #[error("failed to read {}", path.display())]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The patterns do not compile.
    #[error("invalid .dockerignore pattern")]
    Pattern(#[source] fsops::fileop::FileOpError),
}

/// A pending entry of the walk: its client path, its relative path, and what the patterns
/// matched for its parent.
struct Pending {
    path: PathBuf,
    rel: Vec<u8>,
    parent: MatchInfo,
}

/// Lists `root` without what `excludes` (`.dockerignore` patterns) leave out. An excluded
/// directory that a `!` pattern may re-include below is still walked; it is listed itself (the
/// daemon applies the patterns again, and hides it if nothing below it is taken).
pub fn list(root: &Path, excludes: &[String]) -> Result<Listing, WalkError> {
    let matcher = PatternMatcher::new(excludes).map_err(WalkError::Pattern)?;
    let matcher = (!matcher.is_empty()).then_some(matcher);
    let mut listing = Listing::default();
    let mut stack = Vec::new();
    push_children(root, b"", &MatchInfo::default(), &mut stack)?;
    while let Some(item) = stack.pop() {
        let meta = std::fs::symlink_metadata(&item.path).map_err(|source| WalkError::Io {
            path: item.path.clone(),
            source,
        })?;
        let kind = meta.file_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue;
        }
        let mut info = MatchInfo::default();
        if let Some(m) = &matcher {
            let (excluded, matched) = m.matches_with_parent(&item.rel, Some(&item.parent));
            info = matched;
            if excluded && (!kind.is_dir() || m.can_skip_dir(&item.rel)) {
                continue;
            }
        }
        let link = if kind.is_symlink() {
            std::fs::read_link(&item.path)
                .map_err(|source| WalkError::Io {
                    path: item.path.clone(),
                    source,
                })?
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        listing.entries.push(FileEntry {
            path: item.rel.clone(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind.is_file() { meta.size() } else { 0 },
            mtime_seconds: meta.mtime(),
            mtime_nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
            link,
        });
        if kind.is_dir() {
            push_children(&item.path, &item.rel, &info, &mut stack)?;
        }
        listing.paths.push(item.path);
    }
    Ok(listing)
}

/// Pushes the entries of directory `dir` (relative path `rel`) so that they pop in byte order.
fn push_children(
    dir: &Path,
    rel: &[u8],
    parent: &MatchInfo,
    stack: &mut Vec<Pending>,
) -> Result<(), WalkError> {
    let failed = |source| WalkError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        names.push(entry.map_err(failed)?.file_name());
    }
    names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    for name in names {
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(name.as_bytes());
        stack.push(Pending {
            path: dir.join(&name),
            rel: child,
            parent: parent.clone(),
        });
    }
    Ok(())
}

/// Whether `mode` is a directory's.
pub fn is_dir(mode: u32) -> bool {
    mode & 0o170000 == 0o040000
}

/// Whether `mode` is a symlink's.
pub fn is_link(mode: u32) -> bool {
    mode & 0o170000 == 0o120000
}

/// Whether `mode` is a regular file's.
pub fn is_file(mode: u32) -> bool {
    mode & 0o170000 == 0o100000
}

/// Checks one entry of a listing received from a client, given the paths listed before it: a
/// valid path ([`components`]) whose parent is a directory listed earlier, a file, directory
/// or symlink, a symlink with a target. The error says what is wrong.
pub fn check_entry(entry: &FileEntry, listed: &std::collections::HashSet<&[u8]>) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&entry.path).into_owned();
    let parts = components(&entry.path).ok_or_else(|| format!("invalid path {:?}", shown()))?;
    if parts.len() > 1 {
        let parent = &entry.path[..entry.path.len() - parts[parts.len() - 1].len() - 1];
        if !listed.contains(parent) {
            return Err(format!(
                "{:?} comes before its parent directory, or its parent is no directory",
                shown()
            ));
        }
    }
    if !(is_dir(entry.mode) || is_file(entry.mode) || is_link(entry.mode)) {
        return Err(format!("{:?} is no file, directory or symlink", shown()));
    }
    if is_link(entry.mode) && (entry.link.is_empty() || entry.link.contains(&0)) {
        return Err(format!("symlink {:?} has no valid target", shown()));
    }
    Ok(())
}

/// Checks a whole listing as the daemon does, entry by entry: only directories can be parents.
pub fn check_listing(entries: &[FileEntry]) -> Result<(), String> {
    let mut listed = std::collections::HashSet::with_capacity(entries.len());
    for entry in entries {
        check_entry(entry, &listed)?;
        if is_dir(entry.mode) {
            listed.insert(entry.path.as_slice());
        }
    }
    Ok(())
}

/// Checks a path received from a client: relative, `/`-separated, no empty, `.` or `..`
/// component, no NUL, at most 4096 bytes. Returns its components.
pub fn components(path: &[u8]) -> Option<Vec<&[u8]>> {
    if path.is_empty() || path.len() > 4096 || path.contains(&0) {
        return None;
    }
    let parts: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && *p != b"." && *p != b"..")
        .then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(listing: &Listing) -> Vec<String> {
        listing
            .entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect()
    }

    #[test]
    fn lists_parents_first_in_byte_order_without_ignored_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(root.join("logs")).unwrap();
        std::fs::write(root.join("a/b/f"), "1").unwrap();
        std::fs::write(root.join("a.txt"), "22").unwrap();
        std::fs::write(root.join("node_modules/x/m.js"), "").unwrap();
        std::fs::write(root.join("logs/a.log"), "").unwrap();
        std::fs::write(root.join("logs/keep.log"), "").unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let excludes = ["node_modules", "logs/*.log", "!logs/keep.log"].map(String::from);
        let listing = list(root, &excludes).unwrap();
        assert_eq!(
            paths(&listing),
            ["a", "a/b", "a/b/f", "a.txt", "link", "logs", "logs/keep.log"]
        );
        let txt = &listing.entries[3];
        assert_eq!(txt.size, 2);
        assert_eq!(listing.entries[4].link, b"a.txt");
        assert_eq!(listing.paths[3], root.join("a.txt"));
    }

    fn entry(path: &str, mode: u32, link: &str) -> FileEntry {
        FileEntry {
            path: path.as_bytes().to_vec(),
            mode,
            link: link.as_bytes().to_vec(),
            ..FileEntry::default()
        }
    }

    #[test]
    fn listings_only_have_directories_as_parents() {
        let dir = 0o040755;
        let file = 0o100644;
        let link = 0o120777;
        assert!(check_listing(&[entry("a", dir, ""), entry("a/b", file, ""), entry("l", link, "a")]).is_ok());
        // Written through a symlink: /etc/passwd.
        let through_link = check_listing(&[entry("a", link, "/etc"), entry("a/passwd", file, "")]);
        assert!(through_link.unwrap_err().contains("parent"));
        assert!(check_listing(&[entry("f", file, ""), entry("f/x", file, "")]).is_err());
        assert!(
            check_listing(&[entry("a/b", file, "")]).is_err(),
            "child before parent"
        );
        assert!(check_listing(&[entry("../x", file, "")]).is_err());
        assert!(check_listing(&[entry("dev", 0o020644, "")]).is_err(), "a device");
        assert!(
            check_listing(&[entry("l", link, "")]).is_err(),
            "a link without target"
        );
    }

    #[test]
    fn client_paths_are_checked() {
        assert!(components(b"a/b").is_some());
        for bad in [
            &b""[..],
            b"/a",
            b"a//b",
            b"a/./b",
            b"../a",
            b"a/..",
            b"a\0b",
            b"a/",
        ] {
            assert!(components(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
