//! Failing builds through the `kiln` binary: every error exits non-zero with a clear message,
//! shows the Dockerfile line it is about, and never panics. Errors found while compiling need
//! no privileges; the ones found while running a step use real builds.

mod common;

use std::process::Command;

use common::{Harness, Kiln, assert_points_at};

/// Builds a context holding only `dockerfile` (and `a.txt`) and expects failure; returns
/// standard error.
fn build_fails(dockerfile: &str) -> String {
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
    let Some(h) = Harness::start() else { return };
    let ctx = h.context();
    ctx.write("present.txt", "here\n");
    ctx.dockerfile("FROM @BASE@\nCOPY present.txt /present.txt\nCOPY missing.txt /x\n");
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 3, "COPY missing.txt /x");
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn failing_run_in_a_later_stage_reports_its_line() {
    let Some(h) = Harness::start() else { return };
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@ AS first\nRUN echo ok > /ok\n\nFROM first\nRUN echo failing >&2 && exit 7\n");
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 5, "RUN echo failing >&2 && exit 7");
    assert!(err.contains("exit code: 7"), "{err}");
    assert!(err.contains("failing"), "the step's output is repeated:\n{err}");
}

#[test]
fn host_network_and_insecure_mode_are_refused() {
    let Some(h) = Harness::start() else { return };
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
