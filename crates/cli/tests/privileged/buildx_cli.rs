//! buildx's command line through the `kiln` binary: every flag and exporter option parses, what
//! kiln lacks is refused before anything runs, the legacy flags are ignored with buildx's
//! warnings, inputs come from standard input as in buildx (a Dockerfile, or a context archive),
//! `--progress=rawjson` is buildx's `SolveStatus` stream, and the privileges builds need are
//! checked first.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{BASE, Harness, Kiln};
use serde_json::Value;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether the state directory is as it was made: nothing opened it.
fn untouched(root: &Path) -> bool {
    std::fs::read_dir(root).map(|d| d.count() == 0).unwrap_or(true)
}

/// Runs `kiln build ARGS CONTEXT` on a context with a trivial Dockerfile and expects a refusal
/// containing `message`, before the state directory is touched.
fn refused(args: &[&str], message: &str) {
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(context.path().to_str().unwrap());
    let output = kiln.run(&all);
    let err = stderr(&output);
    assert!(!output.status.success(), "{args:?} was accepted:\n{err}");
    assert!(err.contains(message), "{args:?}: expected {message:?} in:\n{err}");
    assert!(
        untouched(kiln.root.path()),
        "{args:?}: the state directory was opened"
    );
}

#[test]
fn flags_of_missing_features_are_refused_before_anything_runs() {
    for (args, message) in [
        (
            &["--cache-from", "type=gha,scope=x"][..],
            "--cache-from type=gha is not supported yet",
        ),
        (
            &["--cache-to", "type=local,dest=c,compression=estargz"],
            "--cache-to option compression=estargz is not supported yet",
        ),
        (&["--sbom=true"], "--sbom=true is not supported yet"),
        (
            &["--provenance", "mode=max"],
            "--provenance=mode=max is not supported yet",
        ),
        (
            &["--attest", "type=sbom"],
            "--attest type=sbom is not supported yet",
        ),
        (&["--annotation", "a=b"], "--annotation is not supported yet"),
        (&["--call", "check"], "--call=check is not supported yet"),
        (&["--check"], "--check is not supported yet"),
        (&["--builder", "b"], "--builder is not supported yet"),
        (
            &["--cgroup-parent", "kiln"],
            "--cgroup-parent is not supported yet",
        ),
        (&["--resource", "memory=1g"], "--resource is not supported yet"),
        (&["-m", "1g"], "--memory is not supported yet"),
        (&["--cpu-quota", "50000"], "--cpu-quota is not supported yet"),
        (&["--policy", "filename=p.rego"], "--policy is not supported yet"),
        (&["--allow", "device"], "--allow device is not supported yet"),
        (
            &["--platform", "linux/arm64"],
            "--platform=linux/arm64 is not supported yet",
        ),
        (
            &["--platform", "linux/amd64,linux/arm64"],
            "multi-platform builds",
        ),
        (
            &["--platform", "linux/amd64", "--platform", "linux/arm/v7"],
            "multi-platform builds",
        ),
        (
            &["-o", "type=registry,name=r/a,compression=estargz"],
            "output option compression=estargz is not supported yet",
        ),
        (
            &["-o", "type=registry,name=r/a,oci-mediatypes=false"],
            "is not supported yet",
        ),
        (
            &["-o", "type=local,dest=out,platform-split=true"],
            "is not supported yet",
        ),
        (
            &["-o", "type=oci,dest=x.tar,annotation.a=b"],
            "is not supported yet",
        ),
        (
            &["-o", "type=local,dest=out,bogus=1"],
            "unknown option \"bogus\" for local output",
        ),
        (&["-o", "type=nope"], "unknown output type \"nope\""),
    ] {
        refused(args, message);
    }
}

#[test]
fn bad_values_fail_at_once_naming_them() {
    refused(&["-t", "Bad:Tag"], "invalid tag \"Bad:Tag\" (-t)");
    refused(&["-t", "ok:1", "-t", "a b"], "invalid tag \"a b\" (-t)");
    refused(
        &["--build-arg", "=x"],
        "invalid --build-arg \"=x\": the name before = is empty",
    );
    refused(
        &["-q", "--progress=rawjson"],
        "progress=rawjson and quiet cannot be used together",
    );
    refused(&["--push=maybe"], "invalid boolean");
    refused(
        &["-o", "type=tar,dest=-", "-o", "-"],
        "multiple outputs configured to write to stdout",
    );
}

#[test]
fn http_contexts_are_not_supported_yet() {
    let kiln = Kiln::new();
    let output = kiln.run(&["build", "https://example.com/context.tar.gz"]);
    let err = stderr(&output);
    assert!(
        !output.status.success() && err.contains("remote build contexts"),
        "{err}"
    );
    let output = kiln.run(&["build", "-f", "-", "-"]);
    assert!(stderr(&output).contains("can't use stdin for both build context and dockerfile"));
    assert!(untouched(kiln.root.path()));
}

#[test]
fn legacy_flags_are_ignored_with_buildx_warnings() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM scratch\nCOPY a.txt /a.txt\n")
        .write("a.txt", "a\n");
    let built = h.build(
        &ctx,
        &[
            "--rm=false",
            "--force-rm",
            "--compress",
            "--isolation=default",
            "--security-opt",
            "seccomp=unconfined",
            "--squash",
            "--provenance=false",
            "--sbom=false",
            "--call=build",
            "--load=false",
            "--platform=linux/amd64",
        ],
    );
    assert_eq!(built.read("/a.txt"), "a\n");
    for warning in [
        "WARNING: isolation flag is deprecated with BuildKit.",
        "WARNING: security-opt flag is deprecated. \"RUN --security=insecure\" should be used with BuildKit.",
        "WARNING: experimental flag squash is removed with BuildKit.",
    ] {
        assert!(built.log.contains(warning), "no {warning:?} in:\n{}", built.log);
    }
    assert!(!built.log.contains("--rm"), "{}", built.log);
}

#[test]
fn builds_need_root_and_its_capabilities() {
    testkit::require_privileged();
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "this test drops privileges with setpriv (util-linux)"
    );
    let kiln = Kiln::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let run = |setpriv: &[&str]| {
        let output = Command::new("setpriv")
            .args(setpriv)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", kiln.root.path())
            .args(["build", context.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        stderr(&output)
    };
    let err = run(&["--reuid=65534", "--regid=65534", "--clear-groups"]);
    assert!(
        err.contains("kiln build must run as root") && err.contains("user id 65534"),
        "{err}"
    );
    let err = run(&["--bounding-set=-sys_admin,-mknod"]);
    assert!(err.contains("kiln build runs as root but lacks"), "{err}");
    assert!(err.contains("CAP_SYS_ADMIN (to mount overlayfs"), "{err}");
    assert!(err.contains("CAP_MKNOD"), "{err}");
    assert!(!err.contains("CAP_CHOWN"), "{err}");
    assert!(untouched(kiln.root.path()), "the state directory was opened");
}

/// Builds with `input` on standard input into the local output `name`; the build must succeed.
fn build_stdin(h: &Harness, name: &str, args: &[&str], input: &[u8]) -> (Output, std::path::PathBuf) {
    let out = h.out_path(name);
    let dest = format!("type=local,dest={}", out.display());
    let mut all = vec!["build", "--progress=plain", "-o", dest.as_str()];
    all.extend_from_slice(args);
    let output = h.kiln.run_with_stdin(&all, input);
    assert!(output.status.success(), "{args:?}:\n{}", stderr(&output));
    (output, out)
}

#[test]
fn dockerfiles_and_contexts_come_from_standard_input() {
    let h = Harness::start();
    let dockerfile = format!("FROM {}\nCOPY . /ctx/\nRUN ls /ctx > /listing\n", h.base());
    // kiln's temporary directories go here, to be checked.
    let tmp = tempfile::tempdir().unwrap();
    h.kiln
        .env
        .borrow_mut()
        .push(("TMPDIR".into(), tmp.path().to_str().unwrap().into()));

    // `-f -`: the Dockerfile from standard input, the context a directory.
    let ctx = h.context();
    ctx.write("from-dir.txt", "dir\n")
        .write("Dockerfile", "FROM scratch\nCOPY nothing /\n");
    let (_, out) = build_stdin(
        &h,
        "dir",
        &["-f", "-", ctx.path().to_str().unwrap()],
        dockerfile.as_bytes(),
    );
    assert_eq!(
        std::fs::read_to_string(out.join("ctx/from-dir.txt")).unwrap(),
        "dir\n"
    );

    // `-` with a Dockerfile: an empty context.
    let (output, out) = build_stdin(&h, "empty", &["-"], dockerfile.as_bytes());
    assert_eq!(std::fs::read_to_string(out.join("listing")).unwrap(), "");
    assert!(stderr(&output).contains("[internal] load build definition from Dockerfile"));

    // `-` with a context archive, compressed or not; `-f` names the Dockerfile inside it.
    let archive_dir = h.context();
    archive_dir
        .write("sub/build.Dockerfile", &dockerfile)
        .write("in-archive.txt", "archived\n");
    let archives = tempfile::tempdir().unwrap();
    for (flag, name) in [
        ("-cf", "c.tar"),
        ("-czf", "c.tar.gz"),
        ("-cjf", "c.tar.bz2"),
        ("-cJf", "c.tar.xz"),
    ] {
        let path = archives.path().join(name);
        archive_dir.tar(&[flag, path.to_str().unwrap(), "."]);
        let (_, out) = build_stdin(
            &h,
            name,
            &["-f", "sub/build.Dockerfile", "-"],
            &std::fs::read(&path).unwrap(),
        );
        let listing = std::fs::read_to_string(out.join("listing")).unwrap();
        assert_eq!(listing, "in-archive.txt\nsub\n", "{name}");
    }
    // Nothing of the archives is left behind.
    assert!(untouched(tmp.path()), "temporary contexts were left behind");

    // An archive whose Dockerfile leads outside it is refused.
    let evil = h.context();
    evil.symlink("Dockerfile", "/etc/passwd");
    let path = archives.path().join("evil.tar");
    evil.tar(&["-cf", path.to_str().unwrap(), "."]);
    let output = h
        .kiln
        .run_with_stdin(&["build", "-"], &std::fs::read(&path).unwrap());
    assert!(!output.status.success());
    assert!(stderr(&output).contains("Dockerfile in the build context archive leads outside the context"));
    // A Dockerfile on stdin cannot be combined with -f.
    let output = h
        .kiln
        .run_with_stdin(&["build", "-f", "Dockerfile", "-"], dockerfile.as_bytes());
    assert!(stderr(&output).contains("ambiguous Dockerfile source"));
}

/// Decodes standard base64 with the `base64` tool.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn rawjson_is_buildx_solve_status() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo hello-rawjson\n"));
    let output = h
        .kiln
        .run(&["build", "--progress=rawjson", ctx.path().to_str().unwrap()]);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    let lines: Vec<Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let time = |v: &Value| {
        let t = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
        assert!(t.len() >= 20 && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    };
    let mut run_digest = None;
    for line in &lines {
        let object = line.as_object().unwrap();
        assert!(
            object
                .keys()
                .all(|k| ["vertexes", "statuses", "logs", "warnings"].contains(&k.as_str())),
            "{line}"
        );
        for v in line["vertexes"].as_array().into_iter().flatten() {
            assert!(v["digest"].as_str().unwrap().starts_with("sha256:"), "{v}");
            time(&v["started"]);
            if v["name"].as_str().unwrap().contains("RUN echo hello-rawjson") && !v["completed"].is_null() {
                time(&v["completed"]);
                assert!(v.get("error").is_none() && v.get("cached").is_none(), "{v}");
                run_digest = Some(v["digest"].as_str().unwrap().to_string());
            }
        }
        for s in line["statuses"].as_array().into_iter().flatten() {
            assert!(s["id"].is_string() && s["current"].is_number(), "{s}");
            time(&s["timestamp"]);
        }
        for w in line["warnings"].as_array().into_iter().flatten() {
            assert_eq!(w["level"], 1, "{w}");
        }
    }
    let run_digest = run_digest.unwrap_or_else(|| panic!("no completed RUN vertex:\n{err}"));
    let output: Vec<u8> = lines
        .iter()
        .flat_map(|l| l["logs"].as_array().cloned().unwrap_or_default())
        .filter(|l| l["vertex"] == run_digest.as_str())
        .flat_map(|l| {
            assert_eq!(l["stream"], 1, "{l}");
            time(&l["timestamp"]);
            base64_decode(l["data"].as_str().unwrap())
        })
        .collect();
    assert_eq!(String::from_utf8_lossy(&output), "hello-rawjson\n");
    let warned = lines
        .iter()
        .flat_map(|l| l["warnings"].as_array().cloned().unwrap_or_default())
        .any(|w| {
            String::from_utf8_lossy(&base64_decode(w["short"].as_str().unwrap()))
                .contains("No output specified")
        });
    assert!(
        warned,
        "the no-output warning is not a SolveStatus warning:\n{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["vertexes"][0]["name"] == "[internal] load build definition from Dockerfile"),
        "{err}"
    );
}
