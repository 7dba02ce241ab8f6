//! Failing builds through the `kiln` binary: every error exits non-zero with a clear message,
//! shows the Dockerfile line it is about, and never panics. `kiln build` refuses to start
//! without root, so even the errors found while compiling are privileged tests here.

use std::process::Command;

use crate::common::{Harness, Kiln, assert_points_at};

/// Builds a context holding only `dockerfile` (and `a.txt`) and expects failure; returns
/// standard error.
fn build_fails(dockerfile: &str) -> String {
    testkit::require_privileged();
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(context.path().join("a.txt"), "a\n").unwrap();
    let output = kiln.run(&["build", "--progress=plain", context.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "build succeeded:\n{err}");
    assert!(err.contains("ERROR: "), "{err}");
    err
}

#[test]
fn unknown_flag_is_named_with_a_suggestion() {
    let err = build_fails("FROM scratch\nCOPY --chmode=0644 a.txt /b\n");
    assert_points_at(&err, 2, "COPY --chmode=0644 a.txt /b");
    assert!(err.contains("unknown flag: --chmode"), "{err}");
    assert!(err.contains("did you mean") && err.contains("chmod?"), "{err}");
}

#[test]
fn invalid_chmod_is_rejected() {
    let err = build_fails("FROM scratch\nCOPY --chmod=999 a.txt /b\n");
    assert_points_at(&err, 2, "COPY --chmod=999 a.txt /b");
    assert!(
        err.contains("invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"),
        "{err}"
    );
}

#[test]
fn misspelt_mount_type_gets_a_hint() {
    let err = build_fails("FROM scratch\nRUN --mount=type=cahce,target=/x true\n");
    assert_points_at(&err, 2, "RUN --mount=type=cahce,target=/x true");
    assert!(err.contains(r#"unsupported mount type "cahce""#), "{err}");
    assert!(err.contains("did you mean cache?"), "{err}");
}

#[test]
fn copy_from_a_later_stage_is_rejected() {
    let err = build_fails(
        "FROM scratch\nCOPY --from=later /a.txt /b\n\nFROM scratch AS later\nCOPY a.txt /a.txt\n",
    );
    assert_points_at(&err, 2, "COPY --from=later /a.txt /b");
    assert!(err.contains(r#""later""#), "{err}");
    assert!(err.contains("needs to be defined before"), "{err}");
}

#[test]
fn a_stage_copying_from_itself_is_circular() {
    let err = build_fails("FROM scratch AS s0\nCOPY --from=s0 /a.txt /b\n");
    assert_points_at(&err, 2, "COPY --from=s0 /a.txt /b");
    assert!(err.contains("circular dependency detected on stage: s0"), "{err}");
}

/// `FROM a AS a` is not a cycle for BuildKit: a base name is looked up among the stages
/// defined *before* the current one only, so here `a` is the image `docker.io/library/a`
/// (as in the common `FROM nginx AS nginx`). The same goes for a name only a later stage has.
/// Checked offline: the image is named in the graph, never pulled.
#[test]
fn from_its_own_name_is_an_image_not_a_cycle() {
    let context = tempfile::tempdir().unwrap();
    let llb = |dockerfile: &str| {
        std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["debug", "llb", "--offline", context.path().to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(output.status.success(), "{stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let graph = llb("FROM a AS a\nRUN echo in-a\n");
    assert!(
        graph.starts_with("v0 = source docker-image://docker.io/library/a:latest"),
        "{graph}"
    );
    let graph = llb("FROM b AS a\nRUN echo in-a\n\nFROM a AS b\nRUN echo in-b\n");
    assert!(
        graph.starts_with("v0 = source docker-image://docker.io/library/b:latest"),
        "{graph}"
    );
    assert!(
        graph.contains("echo in-a") && graph.contains("echo in-b"),
        "{graph}"
    );
}

#[test]
fn copy_from_with_a_variable_is_rejected() {
    let err = build_fails("FROM scratch AS a\nFROM scratch\nARG SRC=a\nCOPY --from=$SRC /a.txt /b\n");
    assert_points_at(&err, 4, "COPY --from=$SRC /a.txt /b");
    assert!(err.contains("variable expansion"), "{err}");
    assert!(err.contains("--from"), "{err}");
}

#[test]
fn required_global_arg_fails_with_its_message() {
    let err = build_fails("ARG FOO=${FOO:?\"custom error\"}\nFROM scratch\nCOPY a.txt /\n");
    assert!(err.contains("FOO: custom error"), "{err}");
    assert!(err.contains("Dockerfile:1"), "{err}");
}

#[test]
fn a_dockerfile_without_stages_is_rejected() {
    let err = build_fails("ARG ONLY=args\n");
    assert!(err.contains("dockerfile contains no stages to build"), "{err}");
}

#[test]
fn unterminated_heredoc_is_a_parse_error() {
    let err = build_fails("FROM scratch\nRUN <<EOF\necho never closed\n");
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("unterminated heredoc"), "{err}");
}

#[test]
fn custom_syntax_frontend_is_refused_clearly() {
    let err = build_fails("# syntax=example.com/custom/frontend\nFROM scratch\nCOPY a.txt /\n");
    assert_points_at(&err, 1, "# syntax=example.com/custom/frontend");
    assert!(err.contains("example.com/custom/frontend"), "{err}");
    assert!(err.contains("unsupported"), "{err}");
}

#[test]
fn builtin_args_choosing_a_frontend_or_unsupported_exports_fail_clearly() {
    testkit::require_privileged();
    let run = |args: &[&str]| {
        let kiln = Kiln::new();
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("Dockerfile"), "FROM scratch\nCOPY a.txt /\n").unwrap();
        std::fs::write(context.path().join("a.txt"), "a\n").unwrap();
        let dir = context.path().to_str().unwrap().to_string();
        let mut all = vec!["build", "--progress=plain", "--output", "type=tar,dest=/dev/null"];
        all.extend_from_slice(args);
        all.push(&dir);
        let output = kiln.run(&all);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--build-arg", "BUILDKIT_SYNTAX=example.com/custom/frontend"]);
    assert!(
        !ok && err.contains("unsupported syntax directive \"example.com/custom/frontend\""),
        "{err}"
    );
    let (ok, err) = run(&["--build-arg", "BUILDKIT_SYNTAX=docker/dockerfile:1.7"]);
    assert!(ok, "{err}");
    let (ok, err) = run(&["--build-arg", "BUILDKIT_INLINE_CACHE=1"]);
    assert!(
        !ok && err.contains("BUILDKIT_INLINE_CACHE=1") && err.contains("not supported yet"),
        "{err}"
    );
    let (ok, err) = run(&["--build-arg", "BUILDKIT_INLINE_CACHE=0"]);
    assert!(ok, "{err}");
}

#[test]
fn missing_copy_source_names_the_path_and_line() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("present.txt", "here\n");
    ctx.dockerfile("FROM @BASE@\nCOPY present.txt /present.txt\nCOPY missing.txt /x\n");
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 3, "COPY missing.txt /x");
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn a_failed_step_shows_its_whole_chain_of_causes_once() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("a.txt", "a\n");
    // `/app` is a file, so the directory COPY needs cannot be made.
    ctx.dockerfile("FROM @BASE@\nRUN touch /app\nCOPY a.txt /app/a.txt\n");
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 3, "COPY a.txt /app/a.txt");
    let line = err
        .lines()
        .find(|l| l.starts_with("ERROR: failed to solve:"))
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    assert!(line.contains("/app"), "{line}");
    assert!(line.contains("(os error "), "the OS error is kept: {line}");
    let os_errors = line.matches("(os error").count();
    assert_eq!(os_errors, 1, "each cause once: {line}");
}

#[test]
fn failing_run_in_a_later_stage_reports_its_line() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@ AS first\nRUN echo ok > /ok\n\nFROM first\nRUN echo failing >&2 && exit 7\n");
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 5, "RUN echo failing >&2 && exit 7");
    assert!(err.contains("exit code: 7"), "{err}");
    assert!(err.contains("failing"), "the step's output is repeated:\n{err}");
}

#[test]
fn host_network_and_insecure_mode_are_refused() {
    let h = Harness::start();
    for (instruction, word) in [
        ("RUN --network=host true", "host"),
        ("RUN --security=insecure true", "insecure"),
    ] {
        let ctx = h.context();
        ctx.dockerfile(&format!("FROM @BASE@\n{instruction}\n"));
        let err = h.build_err(&ctx, &[]);
        assert_points_at(&err, 2, instruction);
        assert!(err.contains(word), "{err}");
    }
    assert_eq!(h.kiln.runtime.runs(), 0, "no container ran");
}

/// A registry that asks for Basic credentials on every request, on a loopback port.
fn basic_auth_registry() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    port
}

#[test]
fn registry_failures_reach_the_user_with_their_cause() {
    testkit::require_privileged();
    // Nothing listens on this port: the OS's reason ends the message.
    let closed = testkit::closed_port();
    let err = build_fails(&format!("FROM 127.0.0.1:{closed}/x\n"));
    assert_points_at(&err, 1, &format!("FROM 127.0.0.1:{closed}/x"));
    let last = err.trim_end().lines().last().unwrap();
    assert!(last.ends_with("Connection refused (os error 111)"), "{err}");

    // A broken docker configuration is read (and named) only when a registry asks for
    // credentials.
    let docker_config = tempfile::tempdir().unwrap();
    let config = docker_config.path().join("config.json");
    std::fs::write(&config, "{\"auths\": ?}").unwrap();
    let kiln = Kiln::new();
    kiln.env
        .borrow_mut()
        .push(("DOCKER_CONFIG".into(), docker_config.path().display().to_string()));
    let context = tempfile::tempdir().unwrap();
    let guarded = basic_auth_registry();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM 127.0.0.1:{guarded}/x\n"),
    )
    .unwrap();
    let output = kiln.run(&["build", "--progress=plain", context.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "failed to get credentials for 127.0.0.1:{guarded}: failed to parse {}: expected value at line 1 column 11",
            config.display()
        )),
        "{err}"
    );
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY Dockerfile /\n",
    )
    .unwrap();
    let output = kiln.run(&["build", "--progress=plain", context.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "a build without registries never reads it:\n{err}"
    );
}

/// A tmpfs of 1 MiB mounted at `path` (created if missing), unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", path.display());
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_at_export_is_named() {
    testkit::require_privileged();
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\nCOPY big /big\n").unwrap();
    // Incompressible, so neither the layer blob nor the tarball fits in 1 MiB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(context.path().join("big"), noise).unwrap();
    let build = |output: &str| {
        let out = kiln.run(&[
            "build",
            "--progress=plain",
            "--output",
            output,
            context.path().to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "build succeeded:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
        // The step's line and the final report each name the OS error, once.
        let report = err
            .lines()
            .find(|l| l.starts_with("ERROR: failed to export"))
            .unwrap_or_else(|| panic!("no export error:\n{err}"));
        assert_eq!(report.matches("No space left on device").count(), 1, "{err}");
        report.to_string()
    };

    // The state directory's ingest area is full while the layer blob is written.
    let dest = tempfile::tempdir().unwrap();
    let output = format!("type=oci,dest={}/image.tar", dest.path().display());
    let ingest = SmallDisk::mount(&kiln.root.path().join("ingest"));
    let err = build(&output);
    // Written while the tar is made, or when the last compressed chunk goes out.
    assert!(
        err.contains("failed to write the layer of snapshot")
            || err.contains("failed to finish the layer of snapshot"),
        "{err}"
    );
    drop(ingest);

    // The destination is full (the layer blob is stored by now).
    let _full = SmallDisk::mount(dest.path());
    let err = build(&output);
    assert!(err.contains("to the output"), "{err}");
}
