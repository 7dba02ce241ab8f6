//! Layer apply/write tests. They run as root (ownership, device nodes, overlayfs mounts).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use fsops::layer::{LayerError, apply_layer, write_layer};
use oci::error_chain;
use rustix::fs::{self as rfs, CWD, FileType, Mode, XattrFlags};
use tar::{EntryType, Header};

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rfs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// One line per entry below `root`: kind, mode, owner, mtime and content or link target.
fn describe(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            let kind = FileType::from_raw_mode(md.mode());
            let body = match kind {
                FileType::RegularFile => format!("{:?}", fs::read(&path).unwrap()),
                FileType::Symlink => fs::read_link(&path).unwrap().display().to_string(),
                FileType::CharacterDevice | FileType::BlockDevice => format!("rdev={}", md.rdev()),
                _ => String::new(),
            };
            let line = format!(
                "{kind:?} {:o} {}:{} {} {body} user.foo={:?}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid(),
                md.mtime(),
                get_xattr(&path, "user.foo"),
            );
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, line);
            if kind == FileType::Directory {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn entry_names(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

const LONG: &str =
    "a-directory-name-long-enough-that-the-path-does-not-fit-the-hundred-bytes-of-a-ustar-header-name-field";

/// A tree exercising every entry kind and metadata field.
fn build_tree(root: &Path) {
    let p = |s: &str| root.join(s);
    for d in ["etc", "bin", "home/user", "run", "dev", LONG] {
        fs::create_dir_all(p(d)).unwrap();
    }
    fs::write(p("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(p("bin/tool"), vec![7u8; 5000]).unwrap();
    rfs::chmod(p("bin/tool"), Mode::from_raw_mode(0o4755)).unwrap();
    fs::hard_link(p("bin/tool"), p("bin/tool-link")).unwrap();
    symlink("tool", p("bin/sh")).unwrap();
    symlink(format!("/{LONG}/{LONG}/target"), p("long-link")).unwrap();
    fs::write(p("home/user/notes"), "mine").unwrap();
    rfs::chown(p("home/user/notes"), Some(uid(1000)), Some(gid(1000))).unwrap();
    rfs::chown(p("home/user"), Some(uid(1000)), Some(gid(1000))).unwrap();
    rfs::chmod(p("home/user/notes"), Mode::from_raw_mode(0o600)).unwrap();
    rfs::chmod(p("run"), Mode::from_raw_mode(0o1777)).unwrap();
    rfs::setxattr(p("etc/passwd"), "user.foo", b"bar", XattrFlags::empty()).unwrap();
    rfs::setxattr(p("etc"), "user.foo", b"dir", XattrFlags::empty()).unwrap();
    rfs::mknodat(CWD, p("run/fifo"), FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
    let null = rfs::makedev(1, 3);
    rfs::mknodat(
        CWD,
        p("dev/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        null,
    )
    .unwrap();
    fs::write(p(&format!("{LONG}/file")), "deep").unwrap();
    // Times last, children before their directories.
    let mut paths: Vec<PathBuf> = describe(root).keys().map(|k| root.join(k)).collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        testkit::set_mtime(path, 1_600_000_000 + i as i64 * 1000);
    }
}

fn uid(n: u32) -> rfs::Uid {
    rfs::Uid::from_raw(n)
}

fn gid(n: u32) -> rfs::Gid {
    rfs::Gid::from_raw(n)
}

#[test]
fn round_trip_preserves_everything() {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&dst).unwrap();
    build_tree(&src);

    let mut tar = Vec::new();
    let written = write_layer(&src, &mut tar).unwrap();
    assert_eq!(written.bytes, tar.len() as u64);
    assert!(!written.is_empty);
    let applied = apply_layer(&tar[..], &dst).unwrap();
    assert_eq!(applied.entries, written.entries);
    assert_eq!(applied.skipped_entries, 0);
    assert_eq!(applied.bytes, 5000 + 26 + 4 + 4);

    let (before, after) = (describe(&src), describe(&dst));
    assert_eq!(before, after);
    assert!(after["bin/tool"].contains(" 4755 "), "{}", after["bin/tool"]);
    assert!(after["home/user/notes"].contains(" 1000:1000 "));
    assert!(after["etc/passwd"].contains("user.foo=Some([98, 97, 114])"));
    assert!(after["etc"].contains("user.foo=Some([100, 105, 114])"));
    let ino = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("bin/tool"), ino("bin/tool-link"));
}

#[test]
fn output_is_deterministic_and_sorted() {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    build_tree(tmp.path());
    fs::create_dir(tmp.path().join("a")).unwrap();
    fs::write(tmp.path().join("a/x"), "").unwrap();
    fs::write(tmp.path().join("a-b"), "").unwrap();
    let (mut one, mut two) = (Vec::new(), Vec::new());
    write_layer(tmp.path(), &mut one).unwrap();
    write_layer(tmp.path(), &mut two).unwrap();
    assert_eq!(one, two);
    let names = entry_names(&one);
    let expected = [
        "a/",
        "a/x",
        "a-b",
        "bin/",
        "bin/sh",
        "bin/tool",
        "bin/tool-link",
        "dev/",
        "dev/null",
        "etc/",
        "etc/passwd",
        "home/",
        "home/user/",
        "home/user/notes",
        "long-link",
        "run/",
        "run/fifo",
    ];
    let long_dir = format!("{LONG}/");
    let long_file = format!("{LONG}/file");
    let mut expected: Vec<&str> = expected.to_vec();
    // Siblings sort by name bytes: "a" < "a-b" < "a-directory..." ("b" < "d").
    expected.insert(3, &long_file);
    expected.insert(3, &long_dir);
    assert_eq!(names, expected);

    let mut archive = tar::Archive::new(&one[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        if entry.path_bytes().as_ref() == b"bin/tool-link" {
            assert_eq!(header.entry_type(), EntryType::Link);
            assert_eq!(entry.link_name_bytes().unwrap().as_ref(), b"bin/tool");
        }
    }

    let empty = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let stats = write_layer(empty.path(), &mut out).unwrap();
    assert!(stats.is_empty);
    assert_eq!((stats.entries, stats.bytes), (0, 1024));
}

/// Unmounts (lazily) on drop, so a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn header() -> Header {
    let mut header = Header::new_ustar();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_234_567_890);
    header.set_size(0);
    header
}

fn add_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = header();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data).unwrap();
}

fn add_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut header = header();
    header.set_entry_type(EntryType::Directory);
    header.set_mode(0o755);
    builder.append_data(&mut header, path, &[][..]).unwrap();
}

#[test]
fn whiteouts_through_overlayfs() {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    };
    let (lower, upper, work, merged) = (dir("l"), dir("u"), dir("w"), dir("m"));
    fs::write(lower.join("gone"), "old").unwrap();
    fs::write(lower.join("stays"), "old").unwrap();
    for d in ["dir", "dir2"] {
        fs::create_dir_all(lower.join(d).join("sub")).unwrap();
        fs::write(lower.join(d).join("old"), "old").unwrap();
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = CString::new(data).unwrap();
    let flags = rustix::mount::MountFlags::empty();
    rustix::mount::mount("overlay", &merged, "overlay", flags, data.as_c_str()).unwrap();
    let guard = Mount(merged.clone());

    let mut builder = tar::Builder::new(Vec::new());
    add_file(&mut builder, ".wh.gone", b"");
    add_dir(&mut builder, "dir");
    add_file(&mut builder, "dir/.wh..wh..opq", b"");
    add_file(&mut builder, "dir/new", b"new");
    // Opaque marker after a sibling from the same layer: the sibling must survive.
    add_file(&mut builder, "dir2/new", b"new");
    add_file(&mut builder, "dir2/.wh..wh..opq", b"");
    let layer = builder.into_inner().unwrap();
    let stats = apply_layer(&layer[..], &merged).unwrap();
    assert_eq!(stats.entries, 6);

    assert!(!merged.join("gone").exists());
    assert!(merged.join("stays").exists());
    for d in ["dir", "dir2"] {
        assert_eq!(fs::read(merged.join(d).join("new")).unwrap(), b"new");
        assert!(!merged.join(d).join("old").exists());
        assert!(!merged.join(d).join("sub").exists());
    }
    let dir_mtime = fs::metadata(merged.join("dir")).unwrap().mtime();
    assert_eq!(dir_mtime, 1_234_567_890);
    drop(guard);

    let gone = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert_eq!(FileType::from_raw_mode(gone.mode()), FileType::CharacterDevice);
    assert_eq!(gone.rdev(), 0);
    assert_eq!(
        get_xattr(&upper.join("dir"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );

    let mut out = Vec::new();
    write_layer(&upper, &mut out).unwrap();
    let names = entry_names(&out);
    for expected in [".wh.gone", "dir/", "dir/.wh..wh..opq", "dir/new", "dir2/new"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing in {names:?}"
        );
    }
    let opq = names.iter().position(|n| n == "dir/.wh..wh..opq").unwrap();
    assert_eq!(names[opq - 1], "dir/");
    assert!(!names.iter().any(|n| n.contains("trusted")));
}

/// Appends an entry with raw header bytes, bypassing the tar crate's path checks.
fn raw(builder: &mut tar::Builder<Vec<u8>>, kind: EntryType, path: &str, link: &str) {
    let mut header = header();
    header.set_entry_type(kind);
    header.set_mode(0o755);
    header.set_size(if kind == EntryType::Regular { 4 } else { 0 });
    let fields = header.as_old_mut();
    fields.name[..path.len()].copy_from_slice(path.as_bytes());
    fields.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_cksum();
    let data: &[u8] = if kind == EntryType::Regular { b"evil" } else { b"" };
    builder.append(&header, data).unwrap();
}

/// Entries of a malicious tar, and where the file must land when the tar is accepted.
type Case = (
    &'static [(EntryType, &'static str, &'static str)],
    Option<&'static str>,
);

#[test]
fn malicious_tars_stay_inside_root() {
    testkit::require_privileged();
    use EntryType::{Directory as D, Link as L, Regular as R, Symlink as S};
    let cases: [Case; 19] = [
        (&[(R, "../../etc/evil", "")], Some("etc/evil")),
        (&[(R, "/abs/path", "")], Some("abs/path")),
        (&[(R, "../outside/evil", "")], Some("outside/evil")),
        (&[(S, "link", "/"), (R, "link/etc/evil", "")], Some("etc/evil")),
        (&[(S, "a", "../../.."), (R, "a/x", "")], Some("x")),
        (&[(S, "o", "../outside"), (R, "o/evil", "")], None),
        (&[(S, "o", "OUTSIDE"), (R, "o/evil", "")], None),
        (&[(S, "o", "OUTSIDE"), (D, "o/", "")], None),
        (&[(L, "h", "../outside/secret")], None),
        (&[(L, "h", "OUTSIDE/secret")], None),
        (&[(S, "o", "OUTSIDE"), (L, "h", "o/secret")], None),
        (&[(S, "s", "OUTSIDE/secret"), (L, "h", "s")], None),
        (&[(R, "../.wh.outside", "")], None),
        (&[(S, "o", "OUTSIDE"), (R, "o/.wh.secret", "")], None),
        (&[(S, "o", "OUTSIDE"), (R, "o/.wh..wh..opq", "")], None),
        (&[(R, ".wh..", "")], None),
        (&[(R, ".wh...", "")], None),
        (&[(R, "x/.wh...", "")], None),
        (&[(S, "o", "OUTSIDE"), (R, "o", "")], Some("o")),
    ];
    for (i, (entries, lands_at)) in cases.iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), "secret").unwrap();
        let outside_abs = outside.to_str().unwrap();

        let mut builder = tar::Builder::new(Vec::new());
        for &(kind, path, link) in entries.iter() {
            raw(&mut builder, kind, path, &link.replace("OUTSIDE", outside_abs));
        }
        let layer = builder.into_inner().unwrap();
        let result = apply_layer(&layer[..], &root);

        let listing: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(listing, ["secret"], "case {i}: outside changed");
        let secret = fs::metadata(outside.join("secret")).unwrap();
        assert_eq!(secret.nlink(), 1, "case {i}: secret got linked");
        assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret", "case {i}");
        let siblings: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(siblings.len(), 2, "case {i}: wrote next to root: {siblings:?}");
        if let Some(target) = lands_at {
            assert!(result.is_ok(), "case {i}: {result:?}");
            let md = fs::symlink_metadata(root.join(target)).unwrap();
            assert!(md.is_file(), "case {i}: {target} is not a file");
        }
    }
}

#[test]
fn refusals_name_the_entry() {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    raw(&mut builder, EntryType::Regular, ".wh...", "");
    let layer = builder.into_inner().unwrap();
    match apply_layer(&layer[..], tmp.path()) {
        Err(LayerError::InvalidEntry { entry, .. }) => assert_eq!(entry, ".wh..."),
        other => panic!("unexpected {other:?}"),
    }
    let mut builder = tar::Builder::new(Vec::new());
    raw(&mut builder, EntryType::Fifo, "fifo", "");
    raw(&mut builder, EntryType::Link, "h", "fifo");
    let layer = builder.into_inner().unwrap();
    let err = apply_layer(&layer[..], tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "refused layer entry h: hard link target is not a regular file"
    );
}

/// A small deterministic generator, so failures reproduce.
fn lcg(seed: &mut u64) -> u8 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*seed >> 33) as u8
}

#[test]
fn garbage_and_truncated_input_is_an_error() {
    testkit::require_privileged();
    let mut seed = 42;
    for len in [1, 100, 511, 512, 1024, 4096] {
        let bytes: Vec<u8> = (0..len).map(|_| lcg(&mut seed)).collect();
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            apply_layer(&bytes[..], tmp.path()).is_err(),
            "random {len} bytes accepted"
        );
    }

    let src = tempfile::tempdir().unwrap();
    build_tree(src.path());
    let mut tar = Vec::new();
    write_layer(src.path(), &mut tar).unwrap();
    // Mid-header and mid-content cuts must fail; cuts at entry boundaries may pass as a
    // shorter archive, but must not panic.
    for cut in [100, 700, 1500, tar.len() / 2, tar.len() - 1100] {
        let tmp = tempfile::tempdir().unwrap();
        let _ = apply_layer(&tar[..cut], tmp.path());
    }
    for cut in [100, 1000] {
        let tmp = tempfile::tempdir().unwrap();
        assert!(
            apply_layer(&tar[..cut], tmp.path()).is_err(),
            "cut at {cut} accepted"
        );
    }
    // Random byte flips of a valid layer: never a panic, never a write next to the root.
    for _ in 0..300 {
        let mut bytes = tar.clone();
        for _ in 0..4 {
            let at = (usize::from(lcg(&mut seed)) << 8 | usize::from(lcg(&mut seed))) % bytes.len();
            bytes[at] = lcg(&mut seed);
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let _ = apply_layer(&bytes[..], &root);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}

#[test]
fn sparse_entries_and_zero_runs_take_no_disk_space() {
    testkit::require_privileged();
    let mut builder = tar::Builder::new(Vec::new());
    // A GNU sparse entry: 512 bytes of data at 1 MiB in a 64 MiB file.
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::GNUSparse);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_234_567_890);
    header.set_size(512);
    {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(1 << 20);
        gnu.sparse[0].set_length(512);
        // The map ends with an empty chunk at the real size (GNU tar's trailing hole).
        gnu.sparse[1].set_offset(64 << 20);
        gnu.sparse[1].set_length(0);
        gnu.set_real_size(64 << 20);
    }
    let data = [b'x'; 512];
    builder.append_data(&mut header, "sparse.bin", &data[..]).unwrap();
    // A plain entry that is mostly zeros.
    let mut zeros = vec![0u8; 8 << 20];
    zeros[..5].copy_from_slice(b"start");
    add_file(&mut builder, "zeros.bin", &zeros);
    let tar = builder.into_inner().unwrap();
    assert!(tar.len() < (9 << 20));

    let dir = tempfile::tempdir().unwrap();
    apply_layer(&tar[..], dir.path()).unwrap();
    let sparse = dir.path().join("sparse.bin");
    let md = fs::metadata(&sparse).unwrap();
    assert_eq!(md.len(), 64 << 20);
    assert!(
        md.blocks() * 512 <= 1 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    let content = fs::read(&sparse).unwrap();
    assert_eq!(&content[1 << 20..(1 << 20) + 512], &data[..]);
    assert!(content[..1 << 20].iter().all(|&b| b == 0));
    let md = fs::metadata(dir.path().join("zeros.bin")).unwrap();
    assert_eq!(md.len(), 8 << 20);
    assert!(
        md.blocks() * 512 <= 1 << 20,
        "{} bytes allocated",
        md.blocks() * 512
    );
    assert_eq!(fs::read(dir.path().join("zeros.bin")).unwrap(), zeros);
}

/// A layer holding one file `big` of `len` incompressible bytes.
fn layer_with_big_file(len: usize) -> Vec<u8> {
    let mut seed = 7;
    let data: Vec<u8> = (0..len).map(|_| lcg(&mut seed)).collect();
    let mut builder = tar::Builder::new(Vec::new());
    add_file(&mut builder, "big", &data);
    builder.into_inner().unwrap()
}

#[test]
fn a_truncated_gzip_layer_is_corrupt_input_not_a_disk_error() {
    testkit::require_privileged();
    let tar = layer_with_big_file(256 << 10);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let blob = gz.finish().unwrap();
    let truncated = &blob[..blob.len() * 3 / 5];
    let tmp = tempfile::tempdir().unwrap();
    let err = apply_layer(flate2::read::MultiGzDecoder::new(truncated), tmp.path()).unwrap_err();
    assert!(err.is_input_error(), "{}", error_chain(&err));
    let LayerError::ReadEntry { entry, source } = &err else {
        panic!("not a read error of the entry: {err:?}");
    };
    assert_eq!(entry, "big");
    // The decompressor's own words, not a disk error.
    assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof, "{source:?}");
    assert_eq!(
        error_chain(&err),
        "failed to read the content of layer entry big: incomplete deflate stream"
    );
}

#[test]
fn a_full_disk_keeps_its_os_error() {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small");
    fs::create_dir(&small).unwrap();
    let data = CString::new("size=64k").unwrap();
    rustix::mount::mount(
        "tmpfs",
        &small,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .unwrap();
    let result = apply_layer(&layer_with_big_file(1 << 20)[..], &small);
    rustix::mount::unmount(&small, rustix::mount::UnmountFlags::DETACH).unwrap();
    let err = result.unwrap_err();
    assert!(!err.is_input_error(), "{}", error_chain(&err));
    assert_eq!(
        error_chain(&err),
        "failed to write file content for layer entry big: No space left on device (os error 28)"
    );
}
