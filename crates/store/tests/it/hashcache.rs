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
    assert_eq!(store.hash_cache().len(), 2);
    assert_eq!(
        fileop::content_digest_cached(context.path(), &CopyOptions::contents_of("/"), store.hash_cache())
            .unwrap(),
        digest
    );
}
