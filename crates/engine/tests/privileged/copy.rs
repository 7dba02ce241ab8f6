//! Copies from the build context with the newer `FileActionCopy` options wired through: patterns,
//! symbolic modes, required paths, archive unpacking and the context's `.dockerignore`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use llb::{FileChain, OpOptions, Output, pb};

use crate::support::{TestEngine, source};

fn copy(src: &str, dest: &str) -> pb::FileActionCopy {
    pb::FileActionCopy {
        src: src.into(),
        dest: dest.into(),
        mode: -1,
        timestamp: -1,
        create_dest_path: true,
        dir_copy_contents: true,
        allow_wildcard: true,
        ..pb::FileActionCopy::default()
    }
}

fn copied(from: &Output, action: pb::FileActionCopy) -> Output {
    FileChain::new(None)
        .copy(Some(from), action)
        .finish(OpOptions::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_options_reach_the_file_op() {
    testkit::require_privileged();
    let t = TestEngine::new();
    let context = tempfile::tempdir().unwrap();
    let c = context.path();
    std::fs::create_dir_all(c.join("a/inner")).unwrap();
    std::fs::write(c.join("a/keep.txt"), "keep").unwrap();
    std::fs::write(c.join("a/skip.log"), "skip").unwrap();
    std::fs::write(c.join("a/inner/deep.txt"), "deep").unwrap();
    std::fs::write(c.join("ignored.txt"), "v1").unwrap();
    std::fs::create_dir(c.join("archived")).unwrap();
    std::fs::write(c.join("archived/inside.txt"), "inside").unwrap();
    let status = std::process::Command::new("tar")
        .current_dir(c)
        .args(["-czf", "archive.tar.gz", "archived"])
        .status()
        .unwrap();
    assert!(status.success());
    let locals = BTreeMap::from([("context".to_string(), c.to_path_buf())]);
    let local = source(
        "local://context",
        &[("local.excludepatterns", r#"["ignored.txt"]"#)],
    );

    // Exclude patterns and a symbolic mode.
    let op = copied(
        &local,
        pb::FileActionCopy {
            exclude_patterns: vec!["*.log".into()],
            mode_str: "u=rwx,go=".into(),
            ..copy("/a", "/out/")
        },
    );
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(t.read(id, "out/keep.txt").as_deref(), Some("keep"));
    assert!(!t.exists(id, "out/skip.log"));
    let mode = t.inspect(id, |root| {
        std::fs::metadata(root.join("out/keep.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    });
    assert_eq!(mode, 0o700);
    // The context's excludes hide a file from the key too: editing it is a cache hit.
    std::fs::write(c.join("ignored.txt"), "v2").unwrap();
    assert_eq!(t.solve_with(&op, &locals).await.unwrap(), Some(id));

    // Include patterns select below the source.
    let op = copied(
        &local,
        pb::FileActionCopy {
            include_patterns: vec!["inner/deep.txt".into()],
            ..copy("/a", "/sel/")
        },
    );
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(t.read(id, "sel/inner/deep.txt").as_deref(), Some("deep"));
    assert!(!t.exists(id, "sel/keep.txt"));

    // An excluded file is not in the context at all; a missing required path fails.
    let error = t
        .solve_with(&copied(&local, copy("/ignored.txt", "/x")), &locals)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not found"), "{error}");
    let op = copied(
        &local,
        pb::FileActionCopy {
            required_paths: vec!["a/missing".into()],
            ..copy("/a", "/req/")
        },
    );
    let error = t.solve_with(&op, &locals).await.unwrap_err().to_string();
    assert!(error.contains("/a/missing"), "{error}");

    // ADD's archive unpacking.
    let op = copied(
        &local,
        pb::FileActionCopy {
            attempt_unpack_docker_compatibility: true,
            ..copy("/archive.tar.gz", "/unpacked/")
        },
    );
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(
        t.read(id, "unpacked/archived/inside.txt").as_deref(),
        Some("inside")
    );
}
