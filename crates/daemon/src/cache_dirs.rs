//! `type=local` caches through a daemon. The client's cache directory arrives like any other of
//! its directories (`cache-N`, see [`crate::sync`]); the engine imports from and exports into the
//! daemon's copy of it; what the export added or changed there goes back to the client as a tar
//! ([`api::pb::CacheFiles`]), which the client unpacks into its directory. The returned files'
//! modification times are cut to whole seconds in the copy and in the tar, so the client's next
//! listing matches the copy and nothing travels twice.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// A file's size and modification time.
type Stamp = (u64, i64, u32);

/// A copy's regular files before the build, to compare with after it.
pub(crate) struct Before {
    /// The local directory's name (`cache-N`).
    pub(crate) local: String,
    dir: PathBuf,
    files: BTreeMap<Vec<u8>, Stamp>,
}

fn files(dir: &Path) -> io::Result<BTreeMap<Vec<u8>, Stamp>> {
    let listing = api::walk::list(dir, &[]).map_err(io::Error::other)?;
    Ok(listing
        .entries
        .into_iter()
        .filter(|e| e.mode & 0o170000 == 0o100000)
        .map(|e| (e.path, (e.size, e.mtime_seconds, e.mtime_nanos)))
        .collect())
}

/// Records the regular files of the copy `dir` of local directory `local`.
pub(crate) fn before(local: &str, dir: &Path) -> io::Result<Before> {
    Ok(Before {
        local: local.to_string(),
        dir: dir.to_path_buf(),
        files: files(dir)?,
    })
}

/// The files of the copy that are new or changed since `before`, in path order.
pub(crate) fn changed(before: &Before) -> io::Result<Vec<Vec<u8>>> {
    Ok(files(&before.dir)?
        .into_iter()
        .filter(|(path, stamp)| before.files.get(path) != Some(stamp))
        .map(|(path, _)| path)
        .collect())
}

/// Writes a tar of `paths` (files of the copy, with their parent directories first) to `out`.
/// Each file's modification time is cut to whole seconds first, in the copy too.
pub(crate) fn write_tar(before: &Before, paths: &[Vec<u8>], out: impl Write) -> io::Result<()> {
    let mut entries: BTreeMap<&[u8], bool> = BTreeMap::new();
    for path in paths {
        for (i, byte) in path.iter().enumerate() {
            if *byte == b'/' {
                entries.entry(&path[..i]).or_insert(true);
            }
        }
        entries.insert(path, false);
    }
    let mut tar = tar::Builder::new(out);
    for (relative, is_dir) in entries {
        let path = before.dir.join(OsStr::from_bytes(relative));
        let mut header = tar::Header::new_ustar();
        let meta = std::fs::symlink_metadata(&path)?;
        let seconds = u64::try_from(meta.mtime()).unwrap_or(0);
        header.set_mtime(seconds);
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_uid(0);
        header.set_gid(0);
        if is_dir {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, Path::new(OsStr::from_bytes(relative)), io::empty())?;
        } else {
            let file = std::fs::File::options().write(true).read(true).open(&path)?;
            file.set_modified(UNIX_EPOCH + Duration::from_secs(seconds))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            tar.append_data(&mut header, Path::new(OsStr::from_bytes(relative)), &file)?;
        }
    }
    tar.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, u64, bool)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let header = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    header.mtime().unwrap(),
                    header.entry_type().is_dir(),
                )
            })
            .collect()
    }

    #[test]
    fn only_new_and_changed_files_go_back_with_their_parents_and_whole_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("old"), "old").unwrap();
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        let before = before("cache-0", dir.path()).unwrap();
        assert!(changed(&before).unwrap().is_empty());

        std::fs::write(blobs.join("new"), "new blob").unwrap();
        std::fs::write(dir.path().join("index.json"), r#"{"manifests":[]}"#).unwrap();
        let paths = changed(&before).unwrap();
        assert_eq!(paths, vec![b"blobs/sha256/new".to_vec(), b"index.json".to_vec()]);

        let mut tar = Vec::new();
        write_tar(&before, &paths, &mut tar).unwrap();
        let listed = entries(&tar);
        let names: Vec<&str> = listed.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["blobs", "blobs/sha256", "blobs/sha256/new", "index.json"]);
        assert!(listed[0].2 && listed[1].2 && !listed[2].2);
        // The copy's file now has the whole-second time the tar carries.
        let meta = std::fs::metadata(blobs.join("new")).unwrap();
        assert_eq!(meta.mtime_nsec(), 0);
        assert_eq!(meta.mtime() as u64, listed[2].1);
    }
}
