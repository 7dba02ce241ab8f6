//! File actions of LLB FileOp on plain directory trees (run as root: they chown).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use crate::common::{Env, meta, opts, perm, read, write};
use fsops::fileop::{self, CopyOptions, FileOpError, Ownership, UserRef};
use fsops::user::UserError;

/// The content digest with the source-side options spelled out.
fn digest_of(
    root: &Path,
    src: &str,
    follow_symlink: bool,
    allow_wildcard: bool,
    allow_empty_wildcard: bool,
    source_owner: Option<Ownership>,
) -> Result<oci::Digest, FileOpError> {
    let options = CopyOptions {
        src: src.into(),
        follow_symlink,
        allow_wildcard,
        allow_empty_wildcard,
        source_owner,
        ..CopyOptions::default()
    };
    fileop::content_digest(root, &options)
}

fn owner(path: &Path) -> (u32, u32) {
    let md = meta(path);
    (md.uid(), md.gid())
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

#[test]
fn files_land_where_docker_puts_them() {
    testkit::require_privileged();
    let env = Env::new();
    write(&env.src.join("a.txt"), "a", 0o640);
    fs::create_dir(env.dst.join("existing")).unwrap();

    env.copy(&opts("/a.txt", "/out/b.txt")).unwrap();
    assert_eq!(read(&env.dst.join("out/b.txt")), "a");
    assert_eq!(perm(&env.dst.join("out/b.txt")), 0o640);
    assert_eq!(
        (perm(&env.dst.join("out")), owner(&env.dst.join("out"))),
        (0o755, (0, 0))
    );

    env.copy(&opts("/a.txt", "/slash/")).unwrap();
    assert_eq!(read(&env.dst.join("slash/a.txt")), "a");
    env.copy(&opts("/a.txt", "/existing")).unwrap();
    assert_eq!(read(&env.dst.join("existing/a.txt")), "a");

    // Replacing a file; a file onto a directory is refused unless asked for.
    write(&env.src.join("a.txt"), "a2", 0o600);
    let stats = env.copy(&opts("/a.txt", "/out/b.txt")).unwrap();
    assert_eq!(
        (read(&env.dst.join("out/b.txt")), stats.files, stats.bytes),
        ("a2".into(), 1, 2)
    );
    fs::create_dir(env.dst.join("existing/x")).unwrap();
    write(&env.src.join("x"), "x", 0o644);
    let err = env.copy(&opts("/x", "/existing/")).unwrap_err();
    assert!(matches!(err, FileOpError::NonDirOverDir { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot copy /x to /existing/x: destination is a directory"
    );
    let mut replace = opts("/x", "/existing/");
    replace.always_replace_existing_dest_paths = true;
    env.copy(&replace).unwrap();
    assert_eq!(read(&env.dst.join("existing/x")), "x");

    // Without create_dest_path the parent must exist.
    let mut strict = opts("/a.txt", "/nope/a.txt");
    strict.create_dest_path = false;
    assert!(env.copy(&strict).unwrap_err().to_string().contains("/nope"));
    env.assert_outside_untouched();
}

#[test]
fn directory_contents_merge_and_keep_existing_metadata() {
    testkit::require_privileged();
    let env = Env::new();
    let dir = env.src.join("dir");
    write(&dir.join("f1"), "1", 0o644);
    write(&dir.join("sub/f2"), "2", 0o600);
    fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    for p in [dir.clone(), dir.join("sub"), dir.join("sub/f2")] {
        chown(&p, 1234, 1234);
    }

    env.copy(&opts("/dir", "/new")).unwrap();
    assert_eq!(read(&env.dst.join("new/sub/f2")), "2");
    // A new destination directory is made like a parent (0755, root), not from the source.
    assert_eq!(
        (perm(&env.dst.join("new")), owner(&env.dst.join("new"))),
        (0o755, (0, 0))
    );
    assert_eq!(
        (perm(&env.dst.join("new/sub")), owner(&env.dst.join("new/sub"))),
        (0o750, (1234, 1234))
    );

    let keep = env.dst.join("keep");
    write(&keep.join("old"), "old", 0o644);
    write(&keep.join("sub/old2"), "old2", 0o644);
    fs::set_permissions(&keep, fs::Permissions::from_mode(0o711)).unwrap();
    chown(&keep, 5, 5);
    env.copy(&opts("/dir", "/keep")).unwrap();
    assert_eq!(read(&keep.join("old")), "old");
    assert_eq!(read(&keep.join("sub/old2")), "old2");
    assert_eq!(read(&keep.join("sub/f2")), "2");
    assert_eq!((perm(&keep), owner(&keep)), (0o711, (5, 5)));
    // Nested directories take the source's metadata.
    assert_eq!(
        (perm(&keep.join("sub")), owner(&keep.join("sub"))),
        (0o750, (1234, 1234))
    );

    // Without dir_copy_contents the directory itself is copied, and it keeps its metadata.
    let mut whole = opts("/dir", "/keep");
    whole.dir_copy_contents = false;
    env.copy(&whole).unwrap();
    assert_eq!(
        (perm(&keep.join("dir")), read(&keep.join("dir/f1"))),
        (0o700, "1".into())
    );

    // A directory over a file.
    write(&env.dst.join("blocker/dir"), "file", 0o644);
    let mut over = whole.clone();
    over.dest = "/blocker".into();
    let err = env.copy(&over).unwrap_err();
    assert!(matches!(err, FileOpError::DirOverNonDir { .. }), "{err}");
    over.always_replace_existing_dest_paths = true;
    env.copy(&over).unwrap();
    assert_eq!(read(&env.dst.join("blocker/dir/sub/f2")), "2");
    env.assert_outside_untouched();
}

#[test]
fn wildcards_match_like_filepath_match() {
    testkit::require_privileged();
    let env = Env::new();
    for (path, data) in [
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        ("d1/x", "1"),
        ("d2/x", "2"),
        ("d3/y", "3"),
    ] {
        write(&env.src.join(path), data, 0o644);
    }
    env.copy(&opts("/*.txt", "/w/")).unwrap();
    assert_eq!(
        (read(&env.dst.join("w/a.txt")), read(&env.dst.join("w/b.txt"))),
        ("a".into(), "b".into())
    );
    assert!(!env.dst.join("w/c.md").exists());
    // Several matches make the destination a directory even without a trailing slash.
    env.copy(&opts("/*.txt", "/w2")).unwrap();
    assert_eq!(read(&env.dst.join("w2/b.txt")), "b");
    // One match to a file name.
    env.copy(&opts("/a*.txt", "/single")).unwrap();
    assert_eq!(read(&env.dst.join("single")), "a");
    // `*` in the middle; matches come in order, so d2/x replaces d1/x.
    env.copy(&opts("/d*/x", "/w3/")).unwrap();
    assert_eq!(read(&env.dst.join("w3/x")), "2");
    assert!(!env.dst.join("w3/y").exists());
    // A matched directory has its contents copied.
    env.copy(&opts("/d[3]", "/w4/")).unwrap();
    assert_eq!(read(&env.dst.join("w4/y")), "3");

    let err = env.copy(&opts("/*.none", "/w5/")).unwrap_err();
    assert_eq!(err.to_string(), "\"/*.none\": not found");
    let mut empty = opts("/*.none", "/w5/");
    empty.allow_empty_wildcard = true;
    assert_eq!(env.copy(&empty).unwrap(), fileop::CopyStats::default());
    assert!(!env.dst.join("w5").exists());
    let err = env.copy(&opts("/missing", "/m")).unwrap_err();
    assert_eq!(err.to_string(), "\"/missing\": not found");
    let err = env.copy(&opts("/d1/missing/x", "/m")).unwrap_err();
    assert_eq!(err.to_string(), "\"/d1/missing/x\": not found");
}

#[test]
fn symlinks_hard_links_and_special_files() {
    testkit::require_privileged();
    let env = Env::new();
    write(&env.src.join("target.txt"), "t", 0o644);
    symlink("target.txt", env.src.join("link")).unwrap();
    write(&env.src.join("dir/a"), "hard", 0o644);
    fs::hard_link(env.src.join("dir/a"), env.src.join("dir/b")).unwrap();
    symlink("../target.txt", env.src.join("dir/inner")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        env.src.join("dir/fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(env.src.join("dir/sock")).unwrap();

    env.copy(&opts("/link", "/followed")).unwrap();
    assert!(meta(&env.dst.join("followed")).is_file());
    assert_eq!(read(&env.dst.join("followed")), "t");
    let mut nofollow = opts("/link", "/kept");
    nofollow.follow_symlink = false;
    env.copy(&nofollow).unwrap();
    assert_eq!(
        fs::read_link(env.dst.join("kept")).unwrap(),
        Path::new("target.txt")
    );

    let stats = env.copy(&opts("/dir", "/d")).unwrap();
    assert_eq!(stats.files, 5);
    assert_eq!(
        fs::read_link(env.dst.join("d/inner")).unwrap(),
        Path::new("../target.txt")
    );
    let (a, b) = (meta(&env.dst.join("d/a")), meta(&env.dst.join("d/b")));
    assert_eq!(
        (a.ino(), a.nlink(), read(&env.dst.join("d/b"))),
        (b.ino(), 2, "hard".into())
    );
    let fifo = meta(&env.dst.join("d/fifo"));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    assert_eq!(fifo.mode() & 0o7777, 0o640);
    assert!(std::os::unix::fs::FileTypeExt::is_socket(
        &meta(&env.dst.join("d/sock")).file_type()
    ));
}

#[test]
fn ownership_mode_and_times() {
    testkit::require_privileged();
    let env = Env::new();
    write(&env.src.join("dir/f"), "f", 0o600);
    write(&env.src.join("dir/sub/g"), "g", 0o644);
    chown(&env.src.join("dir/f"), 1234, 99);
    testkit::set_mtime(&env.src.join("dir/f"), 12_345);
    testkit::set_mtime(&env.src.join("dir/sub"), 23_456);
    let xattr_ok = rustix::fs::setxattr(
        env.src.join("dir/f").as_path(),
        "user.kiln",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();

    env.copy(&opts("/dir", "/plain")).unwrap();
    let f = env.dst.join("plain/f");
    assert_eq!((owner(&f), meta(&f).mtime()), ((1234, 99), 12_345));
    assert_eq!(
        meta(&env.dst.join("plain/sub")).mtime(),
        23_456,
        "directory mtime set after contents"
    );
    // Only file systems without user xattrs (old tmpfs) skip this check.
    if xattr_ok {
        let value = rustix::fs::getxattr(f.as_path(), "user.kiln", &mut [0u8; 8]).unwrap();
        assert_eq!(value, 1);
    }

    let mut chowned = opts("/dir", "/own/deep/");
    chowned.owner = Some(Ownership { uid: 7, gid: 8 });
    env.copy(&chowned).unwrap();
    for p in ["own", "own/deep", "own/deep/f", "own/deep/sub", "own/deep/sub/g"] {
        assert_eq!(owner(&env.dst.join(p)), (7, 8), "{p}");
    }
    let mut context = opts("/dir", "/ctx");
    context.source_owner = Some(Ownership { uid: 0, gid: 0 });
    env.copy(&context).unwrap();
    assert_eq!(owner(&env.dst.join("ctx/f")), (0, 0));

    // --chmod applies to copied entries and to the parents the copy creates, not existing ones.
    fs::create_dir(env.dst.join("p")).unwrap();
    let mut chmod = opts("/dir/f", "/p/q/r/f");
    chmod.mode = Some(0o4741);
    env.copy(&chmod).unwrap();
    assert_eq!(perm(&env.dst.join("p/q/r/f")), 0o4741);
    assert_eq!(
        (perm(&env.dst.join("p/q")), perm(&env.dst.join("p/q/r"))),
        (0o4741, 0o4741)
    );
    assert_eq!(perm(&env.dst.join("p")), 0o755);

    let mut stamped = opts("/dir", "/t/");
    stamped.timestamp = Some(1_000_000);
    env.copy(&stamped).unwrap();
    for p in ["t", "t/f", "t/sub", "t/sub/g"] {
        assert_eq!(meta(&env.dst.join(p)).mtime(), 1_000_000, "{p}");
    }
}

#[test]
fn ownership_resolution() {
    testkit::require_privileged();
    let env = Env::new();
    let root = &env.dst;
    write(
        &root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n",
        0o644,
    );
    write(&root.join("etc/group"), "root:x:0:\nstaff:x:50:app\n", 0o644);
    let name = |n: &str| UserRef::Name(n.into());
    let resolve = |u: &UserRef, g: Option<&UserRef>| fileop::resolve_ownership(root, u, g);
    assert_eq!(
        resolve(&name("app"), None).unwrap(),
        Ownership { uid: 1000, gid: 1001 }
    );
    assert_eq!(
        resolve(&UserRef::Id(1000), None).unwrap(),
        Ownership { uid: 1000, gid: 1000 }
    );
    assert_eq!(
        resolve(&name("app"), Some(&name("staff"))).unwrap(),
        Ownership { uid: 1000, gid: 50 }
    );
    assert_eq!(
        resolve(&UserRef::Id(5), Some(&UserRef::Id(6))).unwrap(),
        Ownership { uid: 5, gid: 6 }
    );
    let err = resolve(&name("ghost"), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user ghost: no matching entries in passwd file"
    );
    let err = resolve(&UserRef::Id(1), Some(&name("ghosts"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find group ghosts: no matching entries in group file"
    );

    // A passwd symlinked to a host file is resolved inside the root: the host file is unseen.
    fs::remove_file(root.join("etc/passwd")).unwrap();
    symlink(env.outside.join("passwd"), root.join("etc/passwd")).unwrap();
    assert!(matches!(
        resolve(&name("hostonly"), None),
        Err(FileOpError::User(UserError::UnknownUser { .. }))
    ));
    fs::remove_file(root.join("etc/passwd")).unwrap();
    symlink("../../../../../../../outside/passwd", root.join("etc/passwd")).unwrap();
    assert!(matches!(
        resolve(&name("hostonly"), None),
        Err(FileOpError::User(UserError::UnknownUser { .. }))
    ));
    env.assert_outside_untouched();
}

#[test]
fn mkdir_mkfile_rm_symlink() {
    testkit::require_privileged();
    let env = Env::new();
    let root = &env.dst;
    let o = Some(Ownership { uid: 3, gid: 4 });
    fileop::mkdir(root, "/a/b/c", 0o750, true, o, Some(5_000)).unwrap();
    for p in ["a", "a/b", "a/b/c"] {
        let p = root.join(p);
        assert_eq!((perm(&p), owner(&p)), (0o750, (3, 4)));
    }
    assert_eq!(meta(&root.join("a/b/c")).mtime(), 5_000);
    // Existing directories are fine and left unchanged, with or without parents.
    fileop::mkdir(root, "/a/b", 0o700, true, None, None).unwrap();
    fileop::mkdir(root, "/a/b", 0o700, false, None, None).unwrap();
    assert_eq!(perm(&root.join("a/b")), 0o750);
    assert!(fileop::mkdir(root, "/x/y", 0o755, false, None, None).is_err());

    fileop::mkfile(root, "/a/file", 0o640, b"data", o, Some(6_000)).unwrap();
    let file = root.join("a/file");
    assert_eq!(
        (read(&file), perm(&file), owner(&file), meta(&file).mtime()),
        ("data".into(), 0o640, (3, 4), 6_000)
    );
    fileop::mkfile(root, "/a/file", 0o600, b"new", None, None).unwrap();
    assert_eq!((read(&file), perm(&file)), ("new".into(), 0o600));
    let err = fileop::mkdir(root, "/a/file", 0o755, false, None, None).unwrap_err();
    assert_eq!(err.to_string(), "/a/file: file exists");
    assert!(fileop::mkfile(root, "/a/b", 0o644, b"", None, None).is_err());

    fileop::symlink(root, "../file", "/a/b/link", o, Some(7_000)).unwrap();
    let link = root.join("a/b/link");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("../file"));
    assert_eq!((owner(&link), meta(&link).mtime()), ((3, 4), 7_000));
    assert!(matches!(
        fileop::symlink(root, "x", "/a/b/link", None, None),
        Err(FileOpError::Exists { .. })
    ));

    fileop::mkfile(root, "/a/b/c/one.log", 0o644, b"", None, None).unwrap();
    fileop::mkfile(root, "/a/b/c/two.log", 0o644, b"", None, None).unwrap();
    fileop::mkfile(root, "/a/b/c/keep.txt", 0o644, b"", None, None).unwrap();
    fileop::rm(root, "/a/b/c/*.log", false, true).unwrap();
    let left: Vec<_> = fs::read_dir(root.join("a/b/c"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["keep.txt"]);
    // rm removes a symlink, not its target, and whole trees.
    fileop::rm(root, "/a/b/link", false, false).unwrap();
    assert!(file.exists() && !link.exists());
    let err = fileop::rm(root, "/a/missing", false, false).unwrap_err();
    assert_eq!(err.to_string(), "\"/a/missing\": not found");
    fileop::rm(root, "/a/missing", true, false).unwrap();
    fileop::rm(root, "/a", false, false).unwrap();
    assert!(!root.join("a").exists());
    assert!(matches!(
        fileop::rm(root, "/", true, false),
        Err(FileOpError::InvalidPath { .. })
    ));
}

#[test]
fn content_digest_tracks_content_not_times() {
    testkit::require_privileged();
    let env = Env::new();
    let src = &env.src;
    write(&src.join("app/main.rs"), "fn main() {}", 0o644);
    write(&src.join("app/lib/util.rs"), "pub fn x() {}", 0o644);
    symlink("main.rs", src.join("app/alias")).unwrap();
    let digest = |s: &str| digest_of(src, s, true, true, false, None).unwrap();
    let base = digest("/app");
    assert_eq!(base, digest("/app"), "deterministic");
    assert_eq!(base, digest("/app/"), "same path");

    testkit::set_mtime(&src.join("app/main.rs"), 1);
    testkit::set_mtime(&src.join("app/lib"), 2);
    assert_eq!(base, digest("/app"), "times are not content");

    write(&src.join("app/main.rs"), "fn main() { }", 0o644);
    let changed = digest("/app");
    assert_ne!(base, changed, "content");
    fs::set_permissions(src.join("app/main.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    let moded = digest("/app");
    assert_ne!(changed, moded, "mode");
    fs::rename(src.join("app/lib/util.rs"), src.join("app/lib/utils.rs")).unwrap();
    let renamed = digest("/app");
    assert_ne!(moded, renamed, "name");
    chown(&src.join("app/main.rs"), 1, 1);
    assert_ne!(renamed, digest("/app"), "owner");
    let as_context = digest_of(src, "/app", true, true, false, Some(Ownership { uid: 0, gid: 0 }));
    chown(&src.join("app/main.rs"), 0, 0);
    assert_eq!(
        as_context.unwrap(),
        digest("/app"),
        "source_owner replaces ownership"
    );

    // Wildcards hash the matched names too, so renaming a match changes the key.
    write(&src.join("file1"), "same", 0o644);
    let wild = digest("/file*");
    fs::rename(src.join("file1"), src.join("file2")).unwrap();
    assert_ne!(wild, digest("/file*"));
    // Following a named symlink hashes its target's content.
    let alias = digest("/app/alias");
    assert_ne!(
        alias,
        digest_of(src, "/app/alias", false, true, false, None).unwrap()
    );
    write(&src.join("app/main.rs"), "changed", 0o644);
    assert_ne!(alias, digest("/app/alias"));
    let err = digest_of(src, "/nope", true, true, false, None).unwrap_err();
    assert_eq!(err.to_string(), "\"/nope\": not found");
    assert!(digest_of(src, "/nope*", true, true, true, None).is_ok());
}

#[test]
fn symlinks_in_either_tree_never_leave_the_roots() {
    testkit::require_privileged();
    let env = Env::new();
    let outside = env.outside.to_str().unwrap().to_owned();
    write(&env.src.join("x"), "payload", 0o644);
    // Destination: `/etc -> /` and an absolute host path.
    symlink("/", env.dst.join("etc")).unwrap();
    symlink(&outside, env.dst.join("abs")).unwrap();
    symlink(format!("{outside}/sentinel"), env.dst.join("hostfile")).unwrap();
    symlink("../../../../../../../../outside", env.dst.join("rel")).unwrap();

    env.copy(&opts("/x", "/etc/evil")).unwrap();
    assert_eq!(read(&env.dst.join("evil")), "payload");
    env.copy(&opts("/x", "/abs/evil")).unwrap();
    assert_eq!(
        read(&env.dst.join(outside.trim_start_matches('/')).join("evil")),
        "payload"
    );
    env.copy(&opts("/x", "/rel/evil")).unwrap();
    assert_eq!(read(&env.dst.join("outside/evil")), "payload");
    // Writing through a symlink to a host file writes to the re-rooted path.
    env.copy(&opts("/x", "/hostfile")).unwrap();
    assert_eq!(
        read(&env.dst.join(outside.trim_start_matches('/')).join("sentinel")),
        "payload"
    );
    assert!(meta(&env.dst.join("hostfile")).file_type().is_symlink());
    env.copy(&opts("/x", "/../../../dotdot")).unwrap();
    assert_eq!(read(&env.dst.join("dotdot")), "payload");
    fileop::mkfile(&env.dst, "/etc/made", 0o644, b"m", None, None).unwrap();
    assert_eq!(read(&env.dst.join("made")), "m");
    fileop::mkdir(&env.dst, "/abs/newdir", 0o755, true, None, None).unwrap();
    fileop::rm(&env.dst, "/abs/sentinel", false, false).unwrap();
    assert!(
        !env.dst
            .join(outside.trim_start_matches('/'))
            .join("sentinel")
            .exists()
    );
    assert!(fileop::rm(&env.dst, "/abs/sentinel", false, false).is_err());
    fileop::rm(&env.dst, "/rel/*", true, true).unwrap();

    // Source: `/link -> /`, a host path, and `..` everywhere.
    write(&env.src.join("etc/passwd"), "inside", 0o644);
    symlink("/", env.src.join("link")).unwrap();
    symlink(format!("{outside}/sentinel"), env.src.join("hostlink")).unwrap();
    symlink(&outside, env.src.join("hostdir")).unwrap();
    env.copy(&opts("/link/etc/passwd", "/copied")).unwrap();
    assert_eq!(read(&env.dst.join("copied")), "inside");
    env.copy(&opts("/link/", "/all/")).unwrap();
    assert_eq!(read(&env.dst.join("all/x")), "payload");
    assert_eq!(
        fs::read_link(env.dst.join("all/hostlink")).unwrap(),
        Path::new(&format!("{outside}/sentinel"))
    );
    assert!(matches!(
        env.copy(&opts("/hostlink", "/h")),
        Err(FileOpError::NotFound { .. })
    ));
    assert!(matches!(
        env.copy(&opts("/hostdir/sentinel", "/h")),
        Err(FileOpError::NotFound { .. })
    ));
    assert!(matches!(
        env.copy(&opts("/hostdir/*", "/h/")),
        Err(FileOpError::NotFound { .. })
    ));
    env.copy(&opts("/../../../x", "/clamped")).unwrap();
    assert_eq!(read(&env.dst.join("clamped")), "payload");
    assert!(digest_of(&env.src, "/hostlink", true, true, false, None).is_err());
    digest_of(&env.src, "/link/", true, true, false, None).unwrap();
    env.assert_outside_untouched();
}
