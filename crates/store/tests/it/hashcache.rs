//! The store keeps the file-digest cache (`fsops::fileop::HashCache`) across processes.

use fsops::fileop::{self, CopyOptions};

#[test]
fn the_cache_survives_reopening_the_store() {
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("a"), "a").unwrap();
    std::fs::write(context.path().join("b"), "b").unwrap();
    let digest = {
        let store = store::Store::open(root.path(), || {}).unwrap();
        let d =
            fileop::content_digest_cached(context.path(), &CopyOptions::contents_of("/"), store.hash_cache())
                .unwrap();
        store.save_hash_cache().unwrap();
        d
    };
    let store = store::Store::open(root.path(), || {}).unwrap();
    assert_eq!(
        store.hash_cache().len(),
        0,
        "entries are read when a file is hashed"
    );
    assert_eq!(
        fileop::content_digest_cached(context.path(), &CopyOptions::contents_of("/"), store.hash_cache())
            .unwrap(),
        digest
    );
    assert_eq!(store.hash_cache().len(), 2);
    assert!(
        store.hash_cache().take_changes().is_empty(),
        "both files were answered from the database, none hashed again"
    );
}

#[test]
fn a_changed_file_is_hashed_again_after_reopening() {
    let root = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("a"), "a").unwrap();
    std::fs::write(context.path().join("b"), "b").unwrap();
    let options = CopyOptions::contents_of("/");
    {
        let store = store::Store::open(root.path(), || {}).unwrap();
        fileop::content_digest_cached(context.path(), &options, store.hash_cache()).unwrap();
        store.save_hash_cache().unwrap();
    }
    std::fs::write(context.path().join("b"), "changed").unwrap();
    let store = store::Store::open(root.path(), || {}).unwrap();
    let cached = fileop::content_digest_cached(context.path(), &options, store.hash_cache()).unwrap();
    assert_eq!(cached, fileop::content_digest(context.path(), &options).unwrap());
    let changes = store.hash_cache().take_changes();
    assert_eq!(
        changes.len(),
        1,
        "only the changed file is hashed again: {changes:?}"
    );
}
