//! The file-digest cache: the same digests as without it, and changes are always seen.

use std::time::{Duration, SystemTime};

use fsops::fileop::{self, CopyOptions, HashCache};

#[test]
fn cached_digests_equal_fresh_ones_and_follow_every_change() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let sub = dir.path().join(format!("d{}", i % 5));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("content {i}")).unwrap();
    }
    let options = CopyOptions::contents_of("/");
    let cache = HashCache::default();
    let fresh = fileop::content_digest(dir.path(), &options).unwrap();
    assert_eq!(
        fileop::content_digest_cached(dir.path(), &options, &cache).unwrap(),
        fresh
    );
    assert_eq!(cache.len(), 50, "every regular file is remembered");
    // Answered from the cache: the same digest.
    assert_eq!(
        fileop::content_digest_cached(dir.path(), &options, &cache).unwrap(),
        fresh
    );

    // A content change is seen, even with the modification time put back.
    let file = dir.path().join("d3/f13");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "changed").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let changed = fileop::content_digest_cached(dir.path(), &options, &cache).unwrap();
    assert_ne!(changed, fresh);
    assert_eq!(changed, fileop::content_digest(dir.path(), &options).unwrap());

    // Touching a file changes no digest.
    let later = SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("d1/f1"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(
        fileop::content_digest_cached(dir.path(), &options, &cache).unwrap(),
        changed
    );
}

#[test]
fn listings_name_what_changed_and_agree_with_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.rs"), "a").unwrap();
    std::fs::write(dir.path().join("src/b.rs"), "b").unwrap();
    std::fs::write(dir.path().join("README"), "r").unwrap();
    let options = CopyOptions::contents_of("/");
    let cache = HashCache::default();
    let (digest, before) = fileop::content_listing_cached(dir.path(), &options, &cache).unwrap();
    assert_eq!(digest, fileop::content_digest(dir.path(), &options).unwrap());
    let paths: Vec<&str> = before.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, vec!["/", "/README", "/src", "/src/a.rs", "/src/b.rs"]);

    std::fs::write(dir.path().join("src/b.rs"), "changed").unwrap();
    std::fs::write(dir.path().join("src/c.rs"), "new").unwrap();
    std::fs::remove_file(dir.path().join("README")).unwrap();
    let (digest, after) = fileop::content_listing_cached(dir.path(), &options, &cache).unwrap();
    assert_eq!(digest, fileop::content_digest(dir.path(), &options).unwrap());
    let old: std::collections::BTreeMap<_, _> = before.into_iter().collect();
    let new: std::collections::BTreeMap<_, _> = after.into_iter().collect();
    let changed: Vec<&str> = new
        .iter()
        .filter(|(p, f)| old.get(*p).is_some_and(|o| o != *f))
        .map(|(p, _)| p.as_str())
        .collect();
    // The directory's mtime is not in its fingerprint; only the edited file changed.
    assert_eq!(changed, vec!["/src/b.rs"]);
    assert!(new.contains_key("/src/c.rs") && !old.contains_key("/src/c.rs"));
    assert!(old.contains_key("/README") && !new.contains_key("/README"));
}
