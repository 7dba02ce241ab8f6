//! Cache behaviour through the `kiln` binary: what reruns after which change.

use std::process::{Command, Output};

use crate::common::write;
use testkit::{CountingRuntime, Fixture, TempRoot};

fn kiln(root: &TempRoot, runtime: &CountingRuntime, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", root.path())
        .env("KILN_RUNTIME", runtime.path())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "kiln panicked:\n{stderr}");
    assert!(output.status.success(), "kiln {args:?} failed:\n{stderr}");
    output
}

/// What every test here starts from: the registry fixture, a fresh state directory, a runtime
/// that counts container runs, and an empty context directory.
struct Setup {
    fixture: Fixture,
    root: TempRoot,
    runtime: CountingRuntime,
    context: tempfile::TempDir,
}

impl Setup {
    /// Starts the fixtures; fails the test (`testkit::require_privileged`) where real builds
    /// cannot run.
    fn start() -> Setup {
        testkit::require_privileged();
        Setup {
            fixture: Fixture::start().unwrap(),
            root: TempRoot::new().unwrap(),
            runtime: CountingRuntime::new().unwrap(),
            context: tempfile::tempdir().unwrap(),
        }
    }
}

/// Which RUN steps ran (not cached), by the text after `RUN `.
/// The RUN steps that ran (not cached), sorted: independent steps run in any order.
fn ran(output: &Output) -> Vec<String> {
    let log = String::from_utf8_lossy(&output.stderr);
    let mut names = Vec::new();
    for line in log.lines() {
        let Some((number, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        if let Some(i) = text.find("] RUN ")
            && log.lines().any(|l| l.starts_with(&format!("#{number} DONE")))
        {
            names.push(text[i + 6..].to_string());
        }
    }
    names.sort();
    names
}

const DOCKERFILE: &str = r#"ARG BASE
FROM ${BASE}
ARG FLAVOUR=plain
COPY app/ /app/
RUN cat /app/main.txt > /main.out
COPY config/ /config/
RUN cat /config/settings > /settings.out
RUN echo "flavour $FLAVOUR" > /flavour.out
"#;

#[test]
fn only_steps_that_depend_on_a_change_rerun() {
    let Setup {
        fixture,
        root,
        runtime,
        context,
    } = Setup::start();
    write(context.path(), "Dockerfile", DOCKERFILE);
    write(context.path(), "app/main.txt", "main v1");
    write(context.path(), "config/settings", "settings v1");
    write(context.path(), "unused.txt", "not copied");
    let base = format!("BASE={}", fixture.busybox);
    let ctx = context.path().to_str().unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "--build-arg", base.as_str()];
        args.extend_from_slice(extra);
        args.push(ctx);
        kiln(&root, &runtime, &args)
    };

    build(&[]);
    assert_eq!(runtime.runs(), 3);

    // Touching files (mtime only) and editing a file no COPY reads change nothing.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let file = std::fs::File::options()
        .write(true)
        .open(context.path().join("app/main.txt"))
        .unwrap();
    file.set_modified(later).unwrap();
    write(context.path(), "unused.txt", "edited");
    let output = build(&[]);
    assert_eq!(ran(&output), Vec::<String>::new());
    assert_eq!(runtime.runs(), 3);

    // Editing a file only the second COPY reads reruns that COPY and what follows it.
    write(context.path(), "config/settings", "settings v2");
    let output = build(&[]);
    assert_eq!(
        ran(&output),
        vec![
            "cat /config/settings > /settings.out",
            r#"echo "flavour plain" > /flavour.out"#
        ]
    );
    assert_eq!(runtime.runs(), 5);

    // A build arg is in the environment of every RUN after its ARG, so all of them rerun.
    let output = build(&["--build-arg", "FLAVOUR=spicy"]);
    assert_eq!(ran(&output).len(), 3);
    assert_eq!(runtime.runs(), 8);

    // --no-cache reruns everything, and a normal build afterwards is cached again.
    let output = build(&["--no-cache"]);
    assert_eq!(ran(&output).len(), 3);
    assert_eq!(runtime.runs(), 11);
    build(&[]);
    assert_eq!(runtime.runs(), 11);
}

/// The image of the `final` stage of `target_builds_only_the_stages_it_needs`: its config and
/// history, as skopeo reads them.
fn check_final_image(oci: &std::path::Path) {
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg("--config")
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/bin/app"]));
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["--help"]));
    assert_eq!(
        config["config"]["Labels"],
        serde_json::json!({"a": "1", "b": "two words"})
    );
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    let history = config["history"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        created_by,
        vec![
            "COPY /test /deps / # buildkit",
            "USER 1000:1000",
            r#"ENTRYPOINT ["/bin/app"]"#,
            r#"CMD ["--help"]"#,
            "LABEL a=1 b=two words",
        ]
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let Setup {
        fixture,
        root,
        runtime,
        context,
    } = Setup::start();
    write(
        context.path(),
        "Dockerfile",
        r#"ARG BASE
FROM ${BASE} AS deps
RUN echo deps > /deps

FROM ${BASE} AS Test
COPY --from=deps /deps /deps
RUN echo test > /test

# Unreachable from the target: its image does not exist and it is never resolved.
FROM registry.invalid/never/pulled:1 AS broken
RUN exit 1

FROM scratch AS final
COPY --from=test /test /deps /
USER 1000:1000
ENTRYPOINT ["/bin/app"]
CMD ["--help"]
LABEL a=1 b="two words"
"#,
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    let base = format!("BASE={}", fixture.busybox);
    let ctx = context.path().to_str().unwrap();
    let output = kiln(
        &root,
        &runtime,
        &[
            "build",
            "--progress=plain",
            "--build-arg",
            &base,
            "--target",
            "TEST",
            "-o",
            dest.to_str().unwrap(),
            ctx,
        ],
    );
    assert_eq!(runtime.runs(), 2, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dest.join("test").exists() && dest.join("deps").exists());

    let oci = out.path().join("final.tar");
    kiln(
        &root,
        &runtime,
        &[
            "build",
            "--progress=plain",
            "--build-arg",
            &base,
            "--target",
            "final",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            ctx,
        ],
    );
    assert_eq!(runtime.runs(), 2, "the stages final needs were cached");
    check_final_image(&oci);

    // A target that does not exist is named, with the closest stage suggested.
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", root.path())
        .args([
            "build",
            "--progress=plain",
            "--build-arg",
            &base,
            "--target",
            "fnal",
            ctx,
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(r#"target stage "fnal" could not be found (did you mean final?)"#),
        "{err}"
    );
}

#[test]
fn no_cache_filter_reruns_the_named_stages_only() {
    let Setup {
        fixture,
        root,
        runtime,
        context,
    } = Setup::start();
    write(
        context.path(),
        "Dockerfile",
        r#"ARG BASE
FROM ${BASE} AS deps
RUN echo deps > /deps

FROM ${BASE} AS tools
RUN echo tools > /tools

FROM ${BASE}
COPY --from=deps /deps /deps
COPY --from=tools /tools /tools
RUN cat /deps /tools > /all
"#,
    );
    let base = format!("BASE={}", fixture.busybox);
    let ctx = context.path().to_str().unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "--build-arg", &base];
        args.extend_from_slice(extra);
        args.push(ctx);
        ran(&kiln(&root, &runtime, &args))
    };
    assert_eq!(build(&[]).len(), 3);
    // Only the named stage's steps skip the cache; what follows them reruns only if their result
    // changed (here it did not, so the last RUN stays cached).
    assert_eq!(build(&["--no-cache-filter", "Deps"]), ["echo deps > /deps"]);
    assert_eq!(
        build(&["--no-cache-filter", "deps,tools"]),
        ["echo deps > /deps", "echo tools > /tools"]
    );
    assert!(build(&[]).is_empty());

    // A name that is no stage is an error, with the closest name.
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", root.path())
        .env("KILN_RUNTIME", runtime.path())
        .args(["build", "--build-arg", &base, "--no-cache-filter", "dep", ctx])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--no-cache-filter: no stage named \"dep\" (did you mean deps?)"),
        "{stderr}"
    );
}
