//! Which entries a copy takes and how their modes change: path patterns (moby semantics),
//! `COPY --exclude`, `.dockerignore` context excludes, `COPY --parents` include patterns,
//! required paths, and symbolic `--chmod` (run as root: copies chown).

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use crate::common::{Env, mkdir, opts, perm, write};
use fsops::fileop::{self, CopyOptions, FileOpError, PatternMatcher};

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Patterns

#[test]
fn pattern_table() {
    // (patterns, path, in the set)
    let table: &[(&[&str], &str, bool)] = &[
        // Anchored at the root, unlike gitignore; a matched directory covers what is below.
        (&["foo"], "foo", true),
        (&["foo"], "foo/bar/baz", true),
        (&["foo"], "a/foo", false),
        (&["foo"], "foobar", false),
        (&["*.go"], "main.go", true),
        (&["*.go"], "cmd/main.go", false),
        (&["*/x"], "a/x", true),
        (&["*/x"], "a/b/x", false),
        (&["?.txt"], "a.txt", true),
        (&["a?b"], "a/b", false),
        // `**`: any number of segments, zero included.
        (&["**/foo"], "foo", true),
        (&["**/foo"], "a/b/foo", true),
        (&["**/foo"], "a/foo/inside", true),
        (&["**/foo"], "a/xfoo", false),
        (&["a/**/b"], "a/b", true),
        (&["a/**/b"], "a/x/y/b", true),
        (&["foo/**"], "foo/x/y", true),
        (&["foo/**"], "foo", false),
        (&["**/*.log"], "x.log", true),
        (&["**/*.log"], "deep/er/x.log", true),
        (&["**"], "any/thing", true),
        // Classes and escapes.
        (&["[a-c].txt"], "b.txt", true),
        (&["[a-c].txt"], "d.txt", false),
        (&["[^a-c].txt"], "d.txt", true),
        (&["\\*"], "*", true),
        (&["\\*"], "x", false),
        (&["a\\?b"], "a?b", true),
        (&["a\\?b"], "axb", false),
        (&["file.(txt)"], "file.(txt)", true),
        // Cleaning: trimmed, `./`, `..`, trailing and leading slashes.
        (&["  ./a/../b/  "], "b", true),
        (&["/abs"], "abs", true),
        (&["dir/"], "dir/x", true),
        // Exclusions re-include; the last matching pattern wins.
        (&["docs", "!docs/keep.md"], "docs/a.md", true),
        (&["docs", "!docs/keep.md"], "docs/keep.md", false),
        (&["docs", "!docs/keep.md"], "docs", true),
        (&["*.md", "!README.md", "README.md"], "README.md", true),
        (&["*.md", "!README.md"], "README.md", false),
        (&["!a", "a"], "a", true),
        (&["a", "!a"], "a/b", false),
        (&["a", "!a/b", "a/b/c"], "a/b/c/d", true),
        (&["a", "!a/b", "a/b/c"], "a/b/x", false),
        (&["!x"], "x", false),
        (&[], "anything", false),
    ];
    for (patterns, path, want) in table {
        let matcher = PatternMatcher::new(*patterns).unwrap();
        assert_eq!(matcher.matches(path), *want, "{patterns:?} on {path}");
    }
    // The root itself is never matched.
    assert!(!PatternMatcher::new(["**"]).unwrap().matches(""));
}

#[test]
fn walking_with_parent_results_agrees_with_full_evaluation() {
    let patterns = ["a", "!a/b", "a/b/c", "**/*.tmp", "!keep/**/*.tmp", "x/*/y"];
    let matcher = PatternMatcher::new(patterns).unwrap();
    let paths = [
        "a",
        "a/b",
        "a/b/c",
        "a/b/c/d",
        "a/b/x",
        "keep",
        "keep/q",
        "keep/q/z.tmp",
        "z.tmp",
        "x",
        "x/1",
        "x/1/y",
        "x/1/y/deep",
    ];
    let mut infos = std::collections::HashMap::new();
    for path in paths {
        let parent = path.rsplit_once('/').map(|(p, _)| p);
        let parent_info = parent.map(|p| infos.get(p).cloned().unwrap());
        let (walked, info) = matcher.matches_with_parent(path.as_bytes(), parent_info.as_ref());
        let top_level = parent.is_none();
        let (full, _) = matcher.matches_with_parent(path.as_bytes(), None);
        assert_eq!(walked, full, "{path}");
        assert_eq!(walked, matcher.matches(path), "{path}");
        if top_level {
            // A top-level path with an empty parent record is evaluated alone.
            let (alone, _) = matcher.matches_with_parent(path.as_bytes(), Some(&Default::default()));
            assert_eq!(alone, full, "{path}");
        }
        infos.insert(path, info);
    }
}

#[test]
fn skipping_whole_directories() {
    let can_skip = |patterns: &[&str], dir: &str| {
        PatternMatcher::new(patterns)
            .unwrap()
            .can_skip_dir(dir.as_bytes())
    };
    assert!(can_skip(&["node_modules"], "node_modules"));
    assert!(can_skip(&["node_modules"], "node_modules/sub"));
    assert!(!can_skip(&["node_modules", "!node_modules/keep"], "node_modules"));
    assert!(can_skip(
        &["node_modules", "!node_modules/keep"],
        "node_modules/other"
    ));
    // An exclusion with a wildcard ahead of any literal part could match anywhere.
    assert!(!can_skip(&["a", "!*/x"], "a"));
    assert!(!can_skip(&["a", "!**/x"], "a"));
    // Exclusions elsewhere, or before the pattern that wins, do not matter.
    assert!(can_skip(&["a", "!b/x"], "a"));
    assert!(can_skip(&["!a/x", "a"], "a"));
    // Not in the set: nothing to skip.
    assert!(!can_skip(&["a"], "b"));
    assert!(!can_skip(&["a/**"], "a"));

    let below = |patterns: &[&str], dir: &str| {
        PatternMatcher::new(patterns)
            .unwrap()
            .may_match_below(dir.as_bytes())
    };
    assert!(below(&["a/b/c"], "a"));
    assert!(below(&["a/b/c"], "a/b"));
    assert!(!below(&["a/b/c"], "a/b/c"));
    assert!(!below(&["a/b/c"], "x"));
    assert!(below(&["**/*.txt"], "anything"));
    assert!(below(&["a/*/c"], "a/zz"));
    assert!(!below(&["!a/b"], "a"));
}

#[test]
fn invalid_patterns_are_named() {
    for bad in ["!", " ! ", "[", "[]", "a[", "[z-a]", "a\\", "[a-]"] {
        match PatternMatcher::new(["ok", bad]) {
            Err(FileOpError::InvalidPattern { pattern, .. }) => assert_eq!(pattern, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let err = fileop::copy(
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &CopyOptions {
            exclude_patterns: strings(&["[oops"]),
            ..opts("/x", "/y")
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("[oops"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// COPY --exclude

/// `proj/{a.txt, b.log, sub/{c.log, d.txt}, logs/e.log}`.
fn project(src: &Path) {
    write(&src.join("proj/a.txt"), "a", 0o644);
    write(&src.join("proj/b.log"), "b", 0o644);
    write(&src.join("proj/sub/c.log"), "c", 0o644);
    write(&src.join("proj/sub/d.txt"), "d", 0o644);
    write(&src.join("proj/logs/e.log"), "e", 0o644);
}

#[test]
fn exclude_patterns_are_relative_to_the_matched_source() {
    let env = Env::new();
    project(&env.src);
    let copy = |dest: &str, exclude: &[&str]| {
        env.copy(&CopyOptions {
            exclude_patterns: strings(exclude),
            ..opts("/proj", dest)
        })
        .unwrap()
    };
    copy("/one/", &["*.log"]);
    let tree = env.dest_tree();
    assert!(tree.contains(&"one/sub/c.log".to_string()), "{tree:?}");
    assert!(!tree.contains(&"one/b.log".to_string()), "{tree:?}");
    assert!(tree.contains(&"one/logs".to_string()), "{tree:?}");

    copy("/two/", &["**/*.log"]);
    let two: Vec<String> = env
        .dest_tree()
        .into_iter()
        .filter(|p| p.starts_with("two"))
        .collect();
    // `logs` only held a log: a directory is not excluded by what it holds.
    assert_eq!(two, ["two", "two/a.txt", "two/logs", "two/sub", "two/sub/d.txt"]);

    // The pattern is not matched against the path from the source root.
    copy("/three/", &["proj/b.log"]);
    assert!(env.dst.join("three/b.log").exists());

    // A directory pattern drops the whole directory.
    copy("/four/", &["sub"]);
    assert!(!env.dst.join("four/sub").exists());
    assert!(env.dst.join("four/logs/e.log").exists());
}

#[test]
fn exclude_never_drops_the_matched_source_itself() {
    let env = Env::new();
    project(&env.src);
    // A file source is always copied: there is nothing below it to test.
    env.copy(&CopyOptions {
        exclude_patterns: strings(&["*.log"]),
        ..opts("/proj/b.log", "/f/")
    })
    .unwrap();
    assert!(env.dst.join("f/b.log").exists());

    // With a wildcard, each match is a source of its own: files matched by the wildcard are
    // copied, the patterns apply inside matched directories (fsutil's rule).
    env.copy(&CopyOptions {
        exclude_patterns: strings(&["*.log"]),
        ..opts("/proj/*", "/w/")
    })
    .unwrap();
    let tree: Vec<String> = env
        .dest_tree()
        .into_iter()
        .filter(|p| p.starts_with("w/"))
        .collect();
    assert_eq!(tree, ["w/a.txt", "w/b.log", "w/d.txt"]);
}

#[test]
fn exclusions_reinclude_inside_an_excluded_directory() {
    let env = Env::new();
    project(&env.src);
    mkdir(&env.src.join("proj/sub"), 0o750);
    testkit::set_mtime(&env.src.join("proj/sub"), 1_000_000);
    env.copy(&CopyOptions {
        exclude_patterns: strings(&["sub", "!sub/d.txt"]),
        ..opts("/proj", "/out/")
    })
    .unwrap();
    assert!(env.dst.join("out/sub/d.txt").exists());
    assert!(!env.dst.join("out/sub/c.log").exists());
    // The directory created on the way has the source's metadata.
    let sub = fs::metadata(env.dst.join("out/sub")).unwrap();
    assert_eq!((sub.mode() & 0o7777, sub.mtime()), (0o750, 1_000_000));
}

// ---------------------------------------------------------------------------------------------
// .dockerignore (context excludes)

fn context(src: &Path) -> Vec<String> {
    write(&src.join(".git/config"), "git", 0o644);
    write(&src.join("node_modules/x/y.js"), "y", 0o644);
    write(&src.join("node_modules/keep/k.js"), "k", 0o644);
    write(&src.join("src/main.rs"), "fn main() {}", 0o644);
    write(&src.join("secret.env"), "TOKEN", 0o600);
    write(&src.join("docs/a.md"), "a", 0o644);
    write(&src.join("docs/b.md"), "b", 0o644);
    strings(&[
        ".git",
        "node_modules",
        "!node_modules/keep",
        "*.env",
        "docs",
        "!docs/b.md",
    ])
}

#[test]
fn context_excludes_hide_paths_from_the_whole_copy() {
    let env = Env::new();
    let ignore = context(&env.src);
    let with = |options: CopyOptions| CopyOptions {
        context_excludes: ignore.clone(),
        ..options
    };
    env.copy(&with(opts("/", "/app/"))).unwrap();
    assert_eq!(
        env.dest_tree(),
        [
            "app",
            "app/docs",
            "app/docs/b.md",
            "app/node_modules",
            "app/node_modules/keep",
            "app/node_modules/keep/k.js",
            "app/src",
            "app/src/main.rs",
        ]
    );

    // Hidden sources do not exist.
    for src in ["/secret.env", "/.git", "/.git/config", "/node_modules/x"] {
        match env.copy(&with(opts(src, "/h/"))) {
            Err(FileOpError::NotFound { path }) => assert_eq!(path, src),
            other => panic!("{src}: {other:?}"),
        }
    }
    // Wildcards see only what is visible.
    assert!(matches!(
        env.copy(&with(opts("/*.env", "/h/"))),
        Err(FileOpError::NotFound { .. })
    ));
    env.copy(&with(CopyOptions {
        allow_empty_wildcard: true,
        ..opts("/*.env", "/h/")
    }))
    .unwrap();
    assert!(!env.dst.join("h").exists());
    // Allowing empty wildcards does not make a hidden literal source optional.
    assert!(matches!(
        env.copy(&with(CopyOptions {
            allow_empty_wildcard: true,
            ..opts("/secret.env", "/h/")
        })),
        Err(FileOpError::NotFound { .. })
    ));

    // Relative to the source root even when copying a subdirectory.
    env.copy(&with(opts("/docs", "/d/"))).unwrap();
    assert!(env.dst.join("d/b.md").exists());
    assert!(!env.dst.join("d/a.md").exists());
    // COPY --exclude patterns stay relative to the match and combine with them.
    env.copy(&with(CopyOptions {
        exclude_patterns: strings(&["keep/k.js"]),
        ..opts("/node_modules", "/n/")
    }))
    .unwrap();
    assert!(env.dst.join("n/keep").is_dir());
    assert!(!env.dst.join("n/keep/k.js").exists());
}

// ---------------------------------------------------------------------------------------------
// Content digests

#[test]
fn content_digest_ignores_what_is_not_copied() {
    let env = Env::new();
    project(&env.src);
    let digest = |root: &Path, options: &CopyOptions| fileop::content_digest(root, options).unwrap();
    let excluding = CopyOptions {
        exclude_patterns: strings(&["*.log", "logs"]),
        ..opts("/proj", "/ignored-dest")
    };
    let base = digest(&env.src, &excluding);
    write(&env.src.join("proj/b.log"), "edited", 0o644);
    write(&env.src.join("proj/logs/new.log"), "new", 0o644);
    assert_eq!(
        base,
        digest(&env.src, &excluding),
        "excluded files are not hashed"
    );
    write(&env.src.join("proj/sub/c.log"), "edited", 0o644);
    assert_ne!(base, digest(&env.src, &excluding), "sub/c.log is not excluded");
    let base = digest(&env.src, &excluding);
    write(&env.src.join("proj/a.txt"), "edited", 0o644);
    assert_ne!(base, digest(&env.src, &excluding));

    // The same as hashing a tree that never had the excluded files.
    let other = tempfile::tempdir().unwrap();
    write(&other.path().join("proj/a.txt"), "edited", 0o644);
    write(&other.path().join("proj/sub/c.log"), "edited", 0o644);
    write(&other.path().join("proj/sub/d.txt"), "d", 0o644);
    assert_eq!(
        digest(&env.src, &excluding),
        digest(other.path(), &opts("/proj", "/d"))
    );

    // Context excludes too.
    let ignore = context(&env.src);
    let ctx = CopyOptions {
        context_excludes: ignore,
        ..opts("/", "/app/")
    };
    let base = digest(&env.src, &ctx);
    write(&env.src.join("secret.env"), "ROTATED", 0o600);
    write(&env.src.join("docs/a.md"), "edited", 0o644);
    write(&env.src.join(".git/HEAD"), "ref", 0o644);
    assert_eq!(base, digest(&env.src, &ctx));
    write(&env.src.join("docs/b.md"), "edited", 0o644);
    assert_ne!(base, digest(&env.src, &ctx));
    assert!(matches!(
        fileop::content_digest(
            &env.src,
            &CopyOptions {
                context_excludes: strings(&["*.env"]),
                ..opts("/secret.env", "/d")
            }
        ),
        Err(FileOpError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// COPY --parents (include patterns) and required paths

#[test]
fn include_patterns_keep_parent_paths() {
    let env = Env::new();
    write(&env.src.join("a/b/c/file"), "f", 0o640);
    write(&env.src.join("a/b/other"), "o", 0o644);
    write(&env.src.join("a/x"), "x", 0o644);
    write(&env.src.join("top.txt"), "t", 0o644);
    mkdir(&env.src.join("a"), 0o700);
    mkdir(&env.src.join("a/b"), 0o750);
    testkit::set_mtime(&env.src.join("a/b"), 2_000_000);
    // COPY --parents a/b/c /dst/
    let parents = CopyOptions {
        include_patterns: strings(&["a/b/c"]),
        required_paths: strings(&["/a/b/c"]),
        ..opts("/", "/dst/")
    };
    env.copy(&parents).unwrap();
    assert_eq!(
        env.dest_tree(),
        ["dst", "dst/a", "dst/a/b", "dst/a/b/c", "dst/a/b/c/file"]
    );
    assert_eq!(perm(&env.dst.join("dst/a")), 0o700);
    assert_eq!(perm(&env.dst.join("dst/a/b")), 0o750);
    assert_eq!(fs::metadata(env.dst.join("dst/a/b")).unwrap().mtime(), 2_000_000);
    assert_eq!(perm(&env.dst.join("dst/a/b/c/file")), 0o640);

    // The digest follows the same selection.
    let before = fileop::content_digest(&env.src, &parents).unwrap();
    write(&env.src.join("a/x"), "changed", 0o644);
    assert_eq!(before, fileop::content_digest(&env.src, &parents).unwrap());
    write(&env.src.join("a/b/c/file"), "changed", 0o640);
    assert_ne!(before, fileop::content_digest(&env.src, &parents).unwrap());

    // COPY --parents /x/./y/z /pivot/: the path is kept from the pivot on.
    write(&env.src.join("x/y/z/f"), "z", 0o644);
    write(&env.src.join("x/y/other"), "o", 0o644);
    env.copy(&CopyOptions {
        include_patterns: strings(&["y/z"]),
        ..opts("/x", "/pivot/")
    })
    .unwrap();
    let pivot: Vec<String> = env
        .dest_tree()
        .into_iter()
        .filter(|p| p.starts_with("pivot"))
        .collect();
    assert_eq!(pivot, ["pivot", "pivot/y", "pivot/y/z", "pivot/y/z/f"]);
}

#[test]
fn include_patterns_with_wildcards() {
    let env = Env::new();
    write(&env.src.join("one.txt"), "1", 0o644);
    write(&env.src.join("d/two.txt"), "2", 0o644);
    write(&env.src.join("d/e/three.txt"), "3", 0o644);
    write(&env.src.join("d/skip.md"), "s", 0o644);
    write(&env.src.join("empty/nothing.md"), "n", 0o644);
    symlink("one.txt", env.src.join("d/link.txt")).unwrap();
    env.copy(&CopyOptions {
        include_patterns: strings(&["**/*.txt"]),
        ..opts("/", "/t/")
    })
    .unwrap();
    assert_eq!(
        env.dest_tree(),
        [
            "t",
            "t/d",
            "t/d/e",
            "t/d/e/three.txt",
            "t/d/link.txt",
            "t/d/two.txt",
            "t/one.txt",
        ]
    );
    assert!(
        fs::symlink_metadata(env.dst.join("t/d/link.txt"))
            .unwrap()
            .is_symlink()
    );
    // Include and exclude together: excludes win.
    env.copy(&CopyOptions {
        include_patterns: strings(&["d"]),
        exclude_patterns: strings(&["d/e"]),
        ..opts("/", "/u/")
    })
    .unwrap();
    let u: Vec<String> = env
        .dest_tree()
        .into_iter()
        .filter(|p| p.starts_with("u"))
        .collect();
    assert_eq!(u, ["u", "u/d", "u/d/link.txt", "u/d/skip.md", "u/d/two.txt"]);
}

#[test]
fn required_paths_must_exist() {
    let env = Env::new();
    write(&env.src.join("a/file"), "f", 0o644);
    let with = |required: &[&str], ignore: &[&str]| CopyOptions {
        required_paths: strings(required),
        context_excludes: strings(ignore),
        include_patterns: strings(&["a/file", "missing/*"]),
        ..opts("/", "/dst/")
    };
    env.copy(&with(&["/a/file"], &[])).unwrap();
    match env.copy(&with(&["/a/file", "/missing/x"], &[])) {
        Err(FileOpError::NotFound { path }) => assert_eq!(path, "/missing/x"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fileop::content_digest(&env.src, &with(&["missing"], &[])),
        Err(FileOpError::NotFound { .. })
    ));
    // Hidden by .dockerignore counts as missing.
    assert!(matches!(
        env.copy(&with(&["a/file"], &["a"])),
        Err(FileOpError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Symbolic --chmod

#[test]
fn symbolic_modes_apply_to_each_entry() {
    let env = Env::new();
    write(&env.src.join("m/f"), "f", 0o644);
    write(&env.src.join("m/e"), "e", 0o755);
    write(&env.src.join("m/rw"), "w", 0o666);
    mkdir(&env.src.join("m/d"), 0o700);
    symlink("f", env.src.join("m/l")).unwrap();
    let table: &[(&str, [u32; 4])] = &[
        // mode string: f, e, rw, d
        ("u+x", [0o744, 0o755, 0o766, 0o700]),
        ("go-w", [0o644, 0o755, 0o644, 0o700]),
        ("a+X", [0o644, 0o755, 0o666, 0o711]),
        ("u=rw,g=r,o=r", [0o644, 0o644, 0o644, 0o644]),
        ("g=u", [0o664, 0o775, 0o666, 0o770]),
        ("+t", [0o1644, 0o1755, 0o1666, 0o1700]),
        // dchapes/mode (what BuildKit uses) honours `X` with `+` only: `=rwX` is `=rw`.
        ("u=rwX,go=rX", [0o644, 0o644, 0o644, 0o644]),
        ("u=rw,go=r,a+X", [0o644, 0o755, 0o644, 0o755]),
        ("0640", [0o640, 0o640, 0o640, 0o640]),
    ];
    for (i, (mode_str, want)) in table.iter().enumerate() {
        let dest = format!("/out{i}/");
        env.copy(&CopyOptions {
            mode_str: Some(mode_str.to_string()),
            // The mode string wins over a numeric mode.
            mode: Some(0o600),
            ..opts("/m", &dest)
        })
        .unwrap();
        let out = env.dst.join(format!("out{i}"));
        let got = ["f", "e", "rw", "d"].map(|n| perm(&out.join(n)));
        assert_eq!(got, *want, "{mode_str}");
        assert!(fs::symlink_metadata(out.join("l")).unwrap().is_symlink());
        // The directory the copy created gets 0755: no numeric mode is used.
        assert_eq!(perm(&out), 0o755, "{mode_str}");
    }
    for bad in ["u+q", "", "u", "8"] {
        let err = env
            .copy(&CopyOptions {
                mode_str: Some(bad.into()),
                ..opts("/m", "/bad/")
            })
            .unwrap_err();
        assert!(matches!(err, FileOpError::InvalidMode(_)), "{bad:?}: {err}");
    }
    assert!(
        !env.dst.join("bad").exists(),
        "nothing copied with an invalid mode"
    );
    assert!(gocompat::chmod::parse("u=rwX,go=rX").is_ok());
}
