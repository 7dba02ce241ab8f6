//! `ADD` archive extraction (`attempt_unpack`): detection by content, every compression,
//! ownership, merging, and hostile archives (run as root: extraction chowns).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use crate::common::{Env, opts};
use fsops::fileop::{self, CopyOptions, FileOpError, Ownership};
use tar::{EntryType, Header};

/// Dockerfile ADD defaults: COPY's, and archives are unpacked.
fn add(src: &str, dest: &str) -> CopyOptions {
    CopyOptions {
        attempt_unpack: true,
        ..opts(src, dest)
    }
}

/// A tar entry with a raw (unchecked) path, so hostile names can be written.
fn entry(tar: &mut Vec<u8>, kind: EntryType, name: &str, link: Option<&str>, mode: u32, data: &[u8]) {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_mode(mode);
    header.set_uid(1000);
    header.set_gid(1001);
    header.set_mtime(1_000_000);
    header.set_size(data.len() as u64);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

fn finish(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0; 1024]);
    tar
}

/// `pkg/` (0750), `pkg/a.txt` (0640, "alpha"), `pkg/link -> a.txt`, `pkg/hard` (hard link).
fn sample() -> Vec<u8> {
    let mut tar = Vec::new();
    entry(&mut tar, EntryType::Directory, "pkg/", None, 0o750, b"");
    entry(&mut tar, EntryType::Regular, "pkg/a.txt", None, 0o640, b"alpha");
    entry(
        &mut tar,
        EntryType::Symlink,
        "pkg/link",
        Some("a.txt"),
        0o777,
        b"",
    );
    entry(
        &mut tar,
        EntryType::Link,
        "pkg/hard",
        Some("pkg/a.txt"),
        0o640,
        b"",
    );
    finish(tar)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn check_sample(root: &Path) {
    check_files(root);
    let dir = fs::metadata(root.join("pkg")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.mtime()), (0o750, 1_000_000));
}

/// The sample's files (its directory's mtime changes when more is extracted into it).
fn check_files(root: &Path) {
    let pkg = root.join("pkg");
    assert_eq!(fs::read_to_string(pkg.join("a.txt")).unwrap(), "alpha");
    let md = fs::metadata(pkg.join("a.txt")).unwrap();
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o640, 1000, 1001, 1_000_000)
    );
    assert_eq!(md.nlink(), 2, "hard link kept");
    assert_eq!(fs::read_link(pkg.join("link")).unwrap(), Path::new("a.txt"));
}

#[test]
fn every_compression_is_detected_by_content() {
    testkit::require_privileged();
    let env = Env::new();
    let plain = sample();
    // Names say nothing: only the bytes count.
    let archives = [
        ("plain.bin", plain.clone()),
        ("gz.data", gzip(&plain)),
        ("bz.txt", bzip2(&plain)),
        ("xz", xz(&plain)),
        ("zst.tar.gz", zstd(&plain)),
    ];
    for (name, data) in &archives {
        fs::write(env.src.join(name), data).unwrap();
        let dest = format!("/out-{name}");
        env.copy(&add(&format!("/{name}"), &dest)).unwrap();
        let out = env.dst.join(format!("out-{name}"));
        check_sample(&out);
        // The destination directory is created with 0755.
        assert_eq!(fs::metadata(&out).unwrap().mode() & 0o7777, 0o755, "{name}");
    }
    // Concatenated gzip members are one stream, as with `cat a.gz b.gz`.
    let mut second = Vec::new();
    entry(&mut second, EntryType::Regular, "second.txt", None, 0o644, b"2");
    let mut first = sample();
    first.truncate(first.len() - 1024);
    let mut joined = gzip(&first);
    joined.extend(gzip(&finish(second)));
    fs::write(env.src.join("multi.gz"), joined).unwrap();
    env.copy(&add("/multi.gz", "/multi")).unwrap();
    check_sample(&env.dst.join("multi"));
    assert_eq!(fs::read_to_string(env.dst.join("multi/second.txt")).unwrap(), "2");
    env.assert_outside_untouched();
}

#[test]
fn non_archives_are_copied() {
    testkit::require_privileged();
    let env = Env::new();
    fs::write(env.src.join("fake.tar.gz"), "just text").unwrap();
    fs::write(env.src.join("notar.gz"), gzip(b"compressed, but no tar inside")).unwrap();
    // A corrupted header checksum is not a tar either.
    let mut broken = sample();
    broken[148] ^= 1;
    fs::write(env.src.join("broken.tar"), &broken).unwrap();
    fs::write(env.src.join("empty.tar"), [0u8; 1024]).unwrap();
    for name in ["fake.tar.gz", "notar.gz", "broken.tar", "empty.tar"] {
        env.copy(&add(&format!("/{name}"), "/out/")).unwrap();
        assert_eq!(
            fs::read(env.dst.join("out").join(name)).unwrap(),
            fs::read(env.src.join(name)).unwrap(),
            "{name}"
        );
    }
    // Without attempt_unpack an archive is a file like any other.
    fs::write(env.src.join("real.tar"), sample()).unwrap();
    fileop::copy(
        &env.src,
        &env.dst,
        &CopyOptions {
            attempt_unpack: false,
            ..add("/real.tar", "/plain/")
        },
    )
    .unwrap();
    assert!(env.dst.join("plain/real.tar").is_file());
    // Archives inside a copied directory are copied, not extracted.
    fs::create_dir(env.src.join("dir")).unwrap();
    fs::write(env.src.join("dir/inner.tar"), sample()).unwrap();
    env.copy(&add("/dir", "/fromdir/")).unwrap();
    assert!(env.dst.join("fromdir/inner.tar").is_file());
}

#[test]
fn extraction_merges_and_follows_sources() {
    testkit::require_privileged();
    let env = Env::new();
    fs::write(env.src.join("a.tar"), sample()).unwrap();
    let mut other = Vec::new();
    entry(&mut other, EntryType::Regular, "pkg/b.txt", None, 0o600, b"beta");
    fs::write(env.src.join("b.tar.xz"), xz(&finish(other))).unwrap();
    symlink("a.tar", env.src.join("alias.tgz")).unwrap();
    fs::create_dir_all(env.dst.join("out/pkg")).unwrap();
    fs::write(env.dst.join("out/existing"), "kept").unwrap();
    fs::write(env.dst.join("out/pkg/a.txt"), "replaced").unwrap();
    // A wildcard matching two archives extracts both into the same directory.
    env.copy(&add("/*.ta*", "/out")).unwrap();
    check_files(&env.dst.join("out"));
    assert_eq!(fs::read_to_string(env.dst.join("out/pkg/b.txt")).unwrap(), "beta");
    assert_eq!(fs::read_to_string(env.dst.join("out/existing")).unwrap(), "kept");
    // A symlinked source is followed to the archive.
    env.copy(&add("/alias.tgz", "/via-link/")).unwrap();
    check_sample(&env.dst.join("via-link"));
}

#[test]
fn owner_overrides_archive_ownership() {
    testkit::require_privileged();
    let env = Env::new();
    fs::write(env.src.join("a.tar"), sample()).unwrap();
    let owner = Ownership { uid: 5, gid: 6 };
    fileop::copy(
        &env.src,
        &env.dst,
        &CopyOptions {
            owner: Some(owner),
            timestamp: Some(42),
            ..add("/a.tar", "/owned/sub")
        },
    )
    .unwrap();
    let root = env.dst.join("owned/sub");
    for path in [
        root.clone(),
        root.join("pkg"),
        root.join("pkg/a.txt"),
        root.join("pkg/link"),
    ] {
        let md = fs::symlink_metadata(&path).unwrap();
        assert_eq!((md.uid(), md.gid()), (5, 6), "{path:?}");
    }
    // Archive times are kept; the created directories get the copy's timestamp.
    assert_eq!(fs::metadata(root.join("pkg/a.txt")).unwrap().mtime(), 1_000_000);
    assert_eq!(fs::metadata(&root).unwrap().mtime(), 42);
    assert_eq!(fs::metadata(env.dst.join("owned")).unwrap().mtime(), 42);
    // Without an owner (even from the build context, whose files become 0:0) the archive's.
    fileop::copy(
        &env.src,
        &env.dst,
        &CopyOptions {
            source_owner: Some(Ownership { uid: 0, gid: 0 }),
            ..add("/a.tar", "/kept")
        },
    )
    .unwrap();
    check_sample(&env.dst.join("kept"));
}

#[test]
fn whiteouts_are_plain_names_in_archives() {
    testkit::require_privileged();
    let env = Env::new();
    fs::create_dir_all(env.dst.join("out")).unwrap();
    fs::write(env.dst.join("out/victim"), "still here").unwrap();
    let mut tar = Vec::new();
    entry(&mut tar, EntryType::Regular, ".wh.victim", None, 0o644, b"w");
    entry(&mut tar, EntryType::Regular, ".wh..wh..opq", None, 0o644, b"o");
    fs::write(env.src.join("wh.tar"), gzip(&finish(tar))).unwrap();
    env.copy(&add("/wh.tar", "/out/")).unwrap();
    assert_eq!(
        fs::read_to_string(env.dst.join("out/victim")).unwrap(),
        "still here"
    );
    assert_eq!(fs::read_to_string(env.dst.join("out/.wh.victim")).unwrap(), "w");
    assert_eq!(fs::read_to_string(env.dst.join("out/.wh..wh..opq")).unwrap(), "o");
}

#[test]
fn hostile_archives_stay_inside_the_destination() {
    testkit::require_privileged();
    let env = Env::new();
    fs::create_dir(env.dst.join("etc")).unwrap();
    fs::write(env.dst.join("etc/passwd"), "root").unwrap();

    // Absolute paths land inside the destination directory.
    let mut tar = Vec::new();
    entry(&mut tar, EntryType::Regular, "/abs/file", None, 0o644, b"abs");
    // Symlinks pointing out (absolute, relative) are followed only inside it.
    entry(&mut tar, EntryType::Symlink, "root", Some("/"), 0o777, b"");
    entry(
        &mut tar,
        EntryType::Regular,
        "root/etc/passwd",
        None,
        0o644,
        b"pwned",
    );
    entry(
        &mut tar,
        EntryType::Symlink,
        "up",
        Some("../../../.."),
        0o777,
        b"",
    );
    entry(
        &mut tar,
        EntryType::Regular,
        "up/outside/sentinel",
        None,
        0o644,
        b"pwned",
    );
    entry(
        &mut tar,
        EntryType::Symlink,
        "host",
        Some("/proc/self/root/tmp"),
        0o777,
        b"",
    );
    entry(&mut tar, EntryType::Regular, "host/x", None, 0o644, b"pwned");
    fs::write(env.src.join("evil.tgz"), gzip(&finish(tar))).unwrap();
    env.copy(&add("/evil.tgz", "/app/")).unwrap();
    let app = env.dst.join("app");
    assert_eq!(fs::read_to_string(app.join("abs/file")).unwrap(), "abs");
    assert_eq!(fs::read_to_string(app.join("etc/passwd")).unwrap(), "pwned");
    assert_eq!(fs::read_to_string(app.join("outside/sentinel")).unwrap(), "pwned");
    // The rest of the destination tree is untouched.
    assert_eq!(fs::read_to_string(env.dst.join("etc/passwd")).unwrap(), "root");
    let mut top: Vec<_> = fs::read_dir(&env.dst)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["app", "etc"]);

    // Paths and hard links that climb out with `..` are refused, as docker refuses them.
    let climbing: [(&str, EntryType, &str, Option<&str>); 3] = [
        ("dotdot.tar", EntryType::Regular, "../../outside/new", None),
        ("deep.tar", EntryType::Regular, "a/../../x", None),
        ("hard.tar", EntryType::Link, "h", Some("../../outside/sentinel")),
    ];
    for (name, kind, path, link) in climbing {
        let mut tar = Vec::new();
        entry(&mut tar, kind, path, link, 0o644, b"");
        fs::write(env.src.join(name), finish(tar)).unwrap();
        match env.copy(&add(&format!("/{name}"), "/refused/")) {
            Err(FileOpError::Extract { path, source }) => {
                assert_eq!(path, format!("/{name}"));
                assert!(source.to_string().contains("leads out"), "{source}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    env.assert_outside_untouched();
    // Nothing was written next to the roots or in the source either.
    assert_eq!(fs::metadata(env.outside.join("sentinel")).unwrap().nlink(), 1);
    assert_eq!(
        fs::metadata(env.src.join("evil.tgz"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
}
