//! Exec mounts besides the root: bind mounts of snapshots, the context and scratch, selectors,
//! tmpfs, and the mount kinds that are refused for now.

use std::collections::BTreeMap;

use llb::{MountKind, MountOptions, pb};
use testkit::Fixture;

use crate::support::{TestEngine, files, run, source};

fn readonly() -> MountOptions {
    MountOptions {
        readonly: true,
        ..MountOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mounts_see_their_input_and_keep_nothing() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let t = TestEngine::new();
    let base = source(&format!("docker-image://{}", fixture.busybox), &[]);
    let data = files(None, &[("/data/hello", "hi\n"), ("/data/sub/deep", "deep\n")]);

    // Read-only: the input is visible and cannot be written.
    let script = "cat /mnt/data/hello > /out; if touch /mnt/x 2>/dev/null; then echo writable; else echo readonly; fi >> /out";
    let id = t
        .snapshot(&run(&base, script, |e| {
            e.mount("/mnt", Some(&data), readonly());
        }))
        .await;
    assert_eq!(t.read(id, "out").as_deref(), Some("hi\nreadonly\n"));
    assert!(
        !t.exists(id, "mnt/data"),
        "the mounted input is not part of the result"
    );

    // Writable without an output: writes are seen during the step and thrown away after it.
    let script =
        "echo changed > /mnt/data/hello && echo added > /mnt/added && cat /mnt/data/hello /mnt/added > /out";
    let id = t
        .snapshot(&run(&base, script, |e| {
            e.mount("/mnt", Some(&data), MountOptions::default());
        }))
        .await;
    assert_eq!(t.read(id, "out").as_deref(), Some("changed\nadded\n"));
    assert!(!t.exists(id, "mnt/added"));
    let data_id = t.snapshot(&data).await;
    assert_eq!(t.read(data_id, "data/hello").as_deref(), Some("hi\n"));
    assert!(!t.exists(data_id, "added"));

    // A selector picks a subdirectory; one that does not exist fails the step.
    let id = t
        .snapshot(&run(&base, "cat /sel/deep > /out", |e| {
            e.mount(
                "/sel",
                Some(&data),
                MountOptions {
                    selector: "/data/sub".into(),
                    ..readonly()
                },
            );
        }))
        .await;
    assert_eq!(t.read(id, "out").as_deref(), Some("deep\n"));
    let error = t
        .error(&run(&base, "true", |e| {
            e.mount(
                "/sel",
                Some(&data),
                MountOptions {
                    selector: "/nothing".into(),
                    ..readonly()
                },
            );
        }))
        .await;
    assert!(error.contains("failed to mount \"/nothing\" at /sel"), "{error}");
    assert!(
        error.contains("No such file or directory (os error 2)"),
        "{error}"
    );

    // Scratch (no input), writable: an empty directory whose contents vanish.
    let id = t
        .snapshot(&run(&base, "echo x > /scratch/f && ls /scratch > /out", |e| {
            e.mount("/scratch", None, MountOptions::default());
        }))
        .await;
    assert_eq!(t.read(id, "out").as_deref(), Some("f\n"));
    assert!(!t.exists(id, "scratch/f"));

    // tmpfs: a fresh tmpfs that leaves nothing behind.
    let tmpfs = MountOptions {
        kind: MountKind::Tmpfs(pb::TmpfsOpt { size: 1 << 20 }),
        ..MountOptions::default()
    };
    let id = t
        .snapshot(&run(
            &base,
            "echo x > /t/f && grep ' /t ' /proc/mounts > /out",
            |e| {
                e.mount("/t", None, tmpfs);
            },
        ))
        .await;
    let mounts = t.read(id, "out").unwrap();
    assert!(mounts.starts_with("tmpfs /t tmpfs"), "{mounts}");
    assert!(!t.exists(id, "t/f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_build_context_mounts_without_being_written() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let t = TestEngine::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::create_dir(context.path().join("src")).unwrap();
    std::fs::write(context.path().join("src/main.txt"), "main\n").unwrap();
    let locals = BTreeMap::from([("context".to_string(), context.path().to_path_buf())]);
    std::fs::write(context.path().join("unrelated.txt"), "v1").unwrap();
    std::os::unix::fs::symlink("/src", context.path().join("srclink")).unwrap();
    let base = source(&format!("docker-image://{}", fixture.busybox), &[]);
    let local = source("local://context", &[]);

    let op = run(
        &base,
        "cat /ctx/src/main.txt > /out; touch /ctx/x 2>/dev/null || echo ro >> /out",
        |e| {
            e.mount("/ctx", Some(&local), readonly());
        },
    );
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(t.read(id, "out").as_deref(), Some("main\nro\n"));
    // Keyed by the content it mounts: unchanged content is a cache hit, a change reruns.
    assert_eq!(t.solve_with(&op, &locals).await.unwrap(), Some(id));
    std::fs::write(context.path().join("unrelated.txt"), "v2").unwrap();
    let changed = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_ne!(changed, id);

    // A mount of only `src` ignores the rest of the context.
    let op = run(&base, "cat /ctx/main.txt > /out", |e| {
        e.mount(
            "/ctx",
            Some(&local),
            MountOptions {
                selector: "/src".into(),
                ..readonly()
            },
        );
    });
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    std::fs::write(context.path().join("unrelated.txt"), "v3").unwrap();
    assert_eq!(t.solve_with(&op, &locals).await.unwrap(), Some(id));

    // Excluded files (`.dockerignore`) are not part of the mounted context.
    let filtered = source(
        "local://context",
        &[("local.excludepatterns", r#"["unrelated.txt"]"#)],
    );
    let op = run(&base, "ls /ctx > /out", |e| {
        e.mount("/ctx", Some(&filtered), readonly());
    });
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(t.read(id, "out").as_deref(), Some("src\nsrclink\n"));
    std::fs::write(context.path().join("unrelated.txt"), "v4").unwrap();
    assert_eq!(t.solve_with(&op, &locals).await.unwrap(), Some(id));

    // Writable, through a symlink that resolves inside the context.
    let op = run(
        &base,
        "echo changed > /src/main.txt && cat /src/main.txt > /out",
        |e| {
            e.mount(
                "/src",
                Some(&local),
                MountOptions {
                    selector: "srclink".into(),
                    ..MountOptions::default()
                },
            );
        },
    );
    let id = t.solve_with(&op, &locals).await.unwrap().unwrap();
    assert_eq!(t.read(id, "out").as_deref(), Some("changed\n"));
    assert_eq!(
        std::fs::read_to_string(context.path().join("src/main.txt")).unwrap(),
        "main\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_secrets_and_agents_the_build_lacks_are_errors() {
    testkit::require_privileged();
    let t = TestEngine::new();
    let base = files(None, &[("/f", "f")]);
    let kinds = [
        (
            "secret s: not found",
            MountKind::Secret(pb::SecretOpt {
                id: "s".into(),
                mode: 0o400,
                optional: false,
                ..pb::SecretOpt::default()
            }),
        ),
        (
            "no SSH agent \"default\" was forwarded",
            MountKind::Ssh(pb::SshOpt {
                id: "default".into(),
                mode: 0o600,
                optional: false,
                ..pb::SshOpt::default()
            }),
        ),
    ];
    for (message, kind) in kinds {
        let op = run(&base, "true", |e| {
            e.mount(
                "/m",
                None,
                MountOptions {
                    kind,
                    ..MountOptions::default()
                },
            );
        });
        let error = t.error(&op).await;
        assert!(error.contains(message), "{error}");
    }
    let mut exec = llb::Exec::new(
        crate::support::shell("true"),
        pb::NetMode::None,
        pb::SecurityMode::Sandbox,
    );
    exec.mount(
        "/",
        Some(&base),
        MountOptions {
            output: true,
            ..MountOptions::default()
        },
    );
    exec.secret_env(pb::SecretEnv {
        id: "token".into(),
        name: "TOKEN".into(),
        optional: false,
    });
    let op = exec.finish(llb::OpOptions::default()).remove(0);
    let error = t.error(&op).await;
    assert!(error.contains("secret token: not found"), "{error}");
}
