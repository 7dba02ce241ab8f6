//! Applying an untrusted layer tar: nothing may panic and nothing may be written outside the
//! root it is applied to.
//!
//! Each input gets a fresh parent directory (under `$KILN_FUZZ_LAYER_DIR`, default the tmpfs
//! `/dev/shm`) holding the empty root and a sentinel file; after the apply the parent must hold
//! exactly those two, with the sentinel's content and the parent's and sentinel's metadata
//! unchanged. The parent is removed before the next input.
#![no_main]

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

/// Largest expanded size of a GNU sparse entry the harness lets through. A sparse entry costs a
/// few bytes of input per gigabyte of zeros written, which would fill the tmpfs (and RAM) rather
/// than find bugs; see README.md.
const SPARSE_LIMIT: u64 = 1 << 20;

const SENTINEL: &[u8] = b"kiln fuzz sentinel\n";

fn scratch_base() -> PathBuf {
    std::env::var_os("KILN_FUZZ_LAYER_DIR").map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

/// True when the tar declares a sparse entry larger than [`SPARSE_LIMIT`].
fn has_huge_sparse_entry(data: &[u8]) -> bool {
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        return false;
    };
    for entry in entries {
        let Ok(mut entry) = entry else {
            return false;
        };
        if entry.header().entry_type() == tar::EntryType::GNUSparse && entry.size() > SPARSE_LIMIT {
            return true;
        }
        // Drain the entry so the next header is read where apply_layer would read it.
        if std::io::copy(&mut (&mut entry).take(SPARSE_LIMIT + 1), &mut std::io::sink()).is_err() {
            return false;
        }
    }
    false
}

/// One entry's identity and metadata: name, inode, link count, mode, uid, gid, size, mtime.
type Described = (String, u64, u64, u32, u32, u32, u64, i64, i64);

/// What must not change in the parent: every entry (the root only by name: its own metadata
/// is the layer's to set, through an entry named `.`) plus the parent itself. Inode and link
/// count catch a hard link made to the sentinel from inside the root.
fn snapshot(parent: &Path) -> Vec<Described> {
    let describe = |name: String, md: fs::Metadata| {
        (
            name,
            md.ino(),
            md.nlink(),
            md.mode(),
            md.uid(),
            md.gid(),
            md.size(),
            md.mtime(),
            md.mtime_nsec(),
        )
    };
    let mut out = vec![describe(
        ".".into(),
        fs::symlink_metadata(parent).expect("stat parent"),
    )];
    let mut names: Vec<String> = fs::read_dir(parent)
        .expect("read parent")
        .map(|e| {
            e.expect("read parent entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    for name in names {
        let md = fs::symlink_metadata(parent.join(&name)).expect("stat parent entry");
        if name == "root" {
            out.push((name, md.ino(), 0, 0, 0, 0, 0, 0, 0));
        } else {
            out.push(describe(name, md));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if has_huge_sparse_entry(data) {
        return;
    }
    let parent = tempfile::Builder::new()
        .prefix("kiln-fuzz-layer-")
        .tempdir_in(scratch_base())
        .expect("create scratch parent");
    let root = parent.path().join("root");
    fs::create_dir(&root).expect("create root");
    fs::write(parent.path().join("sentinel"), SENTINEL).expect("write sentinel");
    let before = snapshot(parent.path());

    let _ = fsops::layer::apply_layer(data, &root);

    let after = snapshot(parent.path());
    assert_eq!(before, after, "apply_layer changed something outside its root");
    assert_eq!(
        fs::read(parent.path().join("sentinel")).expect("read sentinel"),
        SENTINEL,
        "apply_layer wrote through to the sentinel"
    );
    parent.close().expect("remove scratch parent");
});
