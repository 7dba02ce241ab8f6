//! Hashing a build context of 20 000 small files: cold (every file read) and warm (every file
//! answered by the file-digest cache, as in a no-op rebuild). Run with `cargo bench -p store`.

use std::path::Path;

use fsops::fileop::{self, CopyOptions, HashCache};

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..100 {
        let sub = dir.path().join(format!("dir{d:03}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..200 {
            std::fs::write(sub.join(format!("file{f:03}.txt")), format!("{d} {f}\n")).unwrap();
        }
    }
    dir
}

fn hash(path: &Path, cache: Option<&HashCache>) {
    let digest = match cache {
        Some(c) => fileop::content_digest_cached(path, &CopyOptions::contents_of("/"), c),
        None => fileop::content_digest(path, &CopyOptions::contents_of("/")),
    };
    divan::black_box(digest.unwrap());
}

#[divan::bench(sample_count = 10)]
fn cold_20k_files(bencher: divan::Bencher) {
    let dir = context();
    bencher.bench(|| hash(dir.path(), None));
}

#[divan::bench(sample_count = 10)]
fn warm_20k_files(bencher: divan::Bencher) {
    let dir = context();
    let cache = HashCache::default();
    hash(dir.path(), Some(&cache));
    bencher.bench(|| hash(dir.path(), Some(&cache)));
}

fn main() {
    divan::main();
}
