//! What the file-operation tests share: a source root, a destination root and a sentinel
//! directory beside them in a temporary directory, and small file helpers. Each test binary uses
//! part of it.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fsops::fileop::{self, CopyOptions, FileOpError};

/// A source root, a destination root and, next to them, a directory with a sentinel file that
/// no operation may read, copy or change. Removed on drop.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub dst: PathBuf,
    pub outside: PathBuf,
}

pub const SENTINEL: &str = "SENTINEL-outside-both-roots";

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            tmp.path().join("src"),
            tmp.path().join("dst"),
            tmp.path().join("outside"),
        );
        for d in [&src, &dst, &outside] {
            fs::create_dir(d).unwrap();
        }
        fs::write(outside.join("sentinel"), SENTINEL).unwrap();
        fs::write(outside.join("passwd"), "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
        Env {
            tmp,
            src,
            dst,
            outside,
        }
    }

    /// Checks that the outside directory is untouched and its content was copied nowhere.
    pub fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["passwd", "sentinel"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("sentinel")).unwrap(),
            SENTINEL
        );
        assert_eq!(fs::metadata(self.outside.join("sentinel")).unwrap().nlink(), 1);
        let siblings = fs::read_dir(self.tmp.path()).unwrap().count();
        assert_eq!(siblings, 3, "something was written next to the roots");
        for root in [&self.src, &self.dst] {
            for file in walk(root) {
                if let Ok(data) = fs::read(&file) {
                    assert!(
                        !String::from_utf8_lossy(&data).contains(SENTINEL),
                        "{file:?} has the sentinel"
                    );
                }
            }
        }
    }

    pub fn copy(&self, options: &CopyOptions) -> Result<fileop::CopyStats, FileOpError> {
        fileop::copy(&self.src, &self.dst, options)
    }

    /// Every path below the destination root, relative, sorted (directories too).
    pub fn dest_tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        list(&self.dst, &self.dst, &mut out);
        out.sort();
        out
    }
}

fn list(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            list(root, &path, out);
        }
    }
}

/// Every regular file below `root`, without following symlinks.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let md = fs::symlink_metadata(&path).unwrap();
        if md.is_dir() {
            out.extend(walk(&path));
        } else if md.is_file() {
            out.push(path);
        }
    }
    out
}

/// Dockerfile COPY defaults.
pub fn opts(src: &str, dest: &str) -> CopyOptions {
    CopyOptions {
        src: src.into(),
        dest: dest.into(),
        follow_symlink: true,
        dir_copy_contents: true,
        create_dest_path: true,
        allow_wildcard: true,
        ..CopyOptions::default()
    }
}

pub fn write(path: &Path, data: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

pub fn meta(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

pub fn perm(path: &Path) -> u32 {
    meta(path).mode() & 0o7777
}

pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
