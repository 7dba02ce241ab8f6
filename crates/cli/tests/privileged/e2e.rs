//! End-to-end builds through the `kiln` binary with real containers (runc over overlayfs), a
//! real registry on loopback and locally built base images.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{Kiln, write};
use testkit::Fixture;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Names of the Dockerfile steps in plain progress output, with whether each was CACHED.
fn steps(log: &str) -> Vec<(String, bool)> {
    let mut names: Vec<(String, String)> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((number, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') && !text.starts_with("[internal]") && !names.iter().any(|(n, _)| n == number)
        {
            names.push((number.to_string(), text.to_string()));
        }
    }
    names
        .into_iter()
        .map(|(number, name)| {
            let cached = log.lines().any(|l| l == format!("#{number} CACHED"));
            (name, cached)
        })
        .collect()
}

const MULTI_STAGE: &str = r#"ARG BASE
FROM ${BASE} AS build
WORKDIR /work
COPY hello.txt .
RUN echo "built $(cat hello.txt)" > out.txt
RUN echo "$STAGE_NOTE" > note.txt
ENV STAGE_NOTE=unused

FROM ${BASE}
ENV GREETING="hi there"
WORKDIR /app
COPY --from=build /work/out.txt /app/
COPY run.sh ./run.sh
RUN chmod +x /app/run.sh
CMD ["/bin/sh", "/app/run.sh"]
"#;

#[test]
fn multi_stage_build_produces_a_runnable_oci_image_and_rebuilds_from_cache() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    write(context.path(), "Dockerfile", MULTI_STAGE);
    write(context.path(), "hello.txt", "hello");
    write(
        context.path(),
        "run.sh",
        "echo \"$GREETING: $(cat /app/out.txt)\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let oci = out.path().join("image.tar");
    let local = out.path().join("rootfs");
    let base = format!("BASE={}", fixture.busybox);
    let build = |kiln: &Kiln| {
        kiln.run(&[
            "build",
            "--progress=plain",
            "--build-arg",
            &base,
            "--output",
            &format!("type=oci,dest={},name=kiln-test/e2e:v1", oci.display()),
            "--output",
            &format!("type=local,dest={}", local.display()),
            context.path().to_str().unwrap(),
        ])
    };
    let first = build(&kiln);
    assert!(first.status.success(), "build failed:\n{}", stderr(&first));
    assert_eq!(kiln.runtime.runs(), 3, "three RUN steps ran in containers");

    // The image is valid for skopeo…
    let inspect = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let env: Vec<&str> = info["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hi there"), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("STAGE_NOTE")),
        "ENV of another stage leaked: {env:?}"
    );
    // …and for umoci, and it runs with runc.
    let printed = run_image(&oci, out.path());
    assert_eq!(printed.trim(), "hi there: built hello");

    // The local output is the final filesystem.
    assert_eq!(
        std::fs::read_to_string(local.join("app/out.txt")).unwrap(),
        "built hello\n"
    );
    assert!(local.join("bin/busybox").exists());
    assert!(
        !local.join("work").exists(),
        "the build stage's files must not be in the result"
    );

    // An identical rebuild runs no container and reports every step CACHED.
    let manifest = manifest_digest(&oci);
    let second = build(&kiln);
    assert!(second.status.success(), "rebuild failed:\n{}", stderr(&second));
    assert_eq!(kiln.runtime.runs(), 3, "the rebuild must not run any container");
    let log = stderr(&second);
    let steps = steps(&log);
    assert_eq!(
        steps.len(),
        9,
        "every Dockerfile step that makes a vertex appears:\n{log}"
    );
    for (name, cached) in &steps {
        assert!(cached, "step {name:?} was not CACHED:\n{log}");
    }
    assert_eq!(
        manifest_digest(&oci),
        manifest,
        "a cached rebuild yields the identical image"
    );
}

fn manifest_digest(oci: &Path) -> String {
    let output = Command::new("tar")
        .arg("-xOf")
        .arg(oci)
        .arg("index.json")
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

/// Unpacks an OCI tarball with umoci and runs it with runc, returning what it printed.
fn run_image(oci: &Path, work: &Path) -> String {
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(oci)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap()
            .success()
    );
    let bundle = work.join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = serde_json::Value::Bool(false);
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let state: PathBuf = work.join("runc-state");
    let id = format!("kiln-e2e-{}", std::process::id());
    let output = Command::new(testkit::runc().unwrap())
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    let _ = Command::new(testkit::runc().unwrap())
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    assert!(
        output.status.success(),
        "runc run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn unknown_instruction_fails_with_the_dockerfile_line() {
    testkit::require_privileged();
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    write(context.path(), "Dockerfile", "FROM scratch\nFOO bar\n");
    let output = kiln.run(&["build", "--progress=plain", context.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("Dockerfile:2\n"), "{err}");
    assert!(err.contains(" 2 | >>> FOO bar"), "{err}");
    assert!(
        err.contains("ERROR: failed to solve: unknown instruction: FOO"),
        "{err}"
    );
}

#[test]
fn failing_run_reports_line_command_and_exit_code() {
    testkit::require_privileged();
    let fixture = Fixture::start().unwrap();
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    write(
        context.path(),
        "Dockerfile",
        "ARG BASE\nFROM ${BASE}\nRUN echo about to fail && exit 3\nRUN echo never\n",
    );
    let base = format!("BASE={}", fixture.busybox);
    let output = kiln.run(&[
        "build",
        "--progress=plain",
        "--build-arg",
        &base,
        context.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("Dockerfile:3\n"), "{err}");
    assert!(err.contains(" 3 | >>> RUN echo about to fail && exit 3"), "{err}");
    assert!(
        err.contains(
            r#"process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3"#
        ),
        "{err}"
    );
    // The failing step's output is repeated in the error report.
    let report = err.split("------\n").nth(1).unwrap_or_default();
    assert!(report.contains("about to fail"), "{err}");
    assert_eq!(kiln.runtime.runs(), 1, "the step after the failure never ran");
}

#[test]
fn debug_llb_offline_prints_the_graph() {
    let context = tempfile::tempdir().unwrap();
    write(
        context.path(),
        "Dockerfile",
        "FROM busybox AS a\nRUN echo a\nFROM scratch\nCOPY --from=a /bin/sh /sh\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["debug", "llb", "--offline", context.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("v0 = source docker-image://docker.io/library/busybox:latest"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(r#"v1 = exec ["/bin/sh", "-c", "echo a"]"#),
        "{text}"
    );
    assert!(
        lines[2].starts_with(r#"v2 = file [#0 on scratch: copy v1:"/bin/sh" -> "/sh""#),
        "{text}"
    );
    assert!(lines[3].starts_with("result = v2 sha256:"), "{text}");
}
