//! Image outputs and the flags around them, through the `kiln` binary: pushing to a registry
//! (`--output type=image,name=…,push=true`, `type=registry`, `--push`) against the loopback
//! registry of the fixture — what lands there is a valid image that skopeo reads and that a
//! later build can use as its base — and `--iidfile`, `--metadata-file`, `--label`, `--quiet`.

use std::process::Command;

use crate::common::Harness;

/// `skopeo inspect --raw` of a pushed image: its manifest.
fn raw_manifest(reference: &str) -> serde_json::Value {
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo inspect {reference} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn images_are_pushed_and_usable_as_bases() {
    let h = Harness::start();
    let host = h.fixture.registry.host();
    let ctx = h.context();
    ctx.write("hello.txt", "pushed\n");
    ctx.dockerfile("FROM @BASE@\nCOPY hello.txt /hello.txt\nRUN echo ran > /ran.txt\n");

    let first = format!("{host}/pushed/app:v1");
    let built = h.build(&ctx, &["--output", &format!("type=image,name={first},push=true")]);
    assert!(built.log.contains("exporting to image"), "{}", built.log);
    assert!(
        built
            .log
            .contains(&format!("pushing manifest for {first}@sha256:")),
        "{}",
        built.log
    );
    let manifest = raw_manifest(&first);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // The base layer, the COPY and the RUN.
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3, "{manifest}");

    // `--push` pushes to every -t name; the blobs are in the registry already. The image id and
    // the metadata describe what was pushed.
    let second = format!("{host}/pushed/app:v2");
    let third = format!("{host}/other/app:latest");
    let files = tempfile::tempdir().unwrap();
    let iidfile = files.path().join("iid");
    let metadata_file = files.path().join("metadata.json");
    let output = h.kiln.run(&[
        "build",
        "--progress=plain",
        "--push",
        "-t",
        &second,
        "-t",
        &third,
        "--iidfile",
        iidfile.to_str().unwrap(),
        "--metadata-file",
        metadata_file.to_str().unwrap(),
        ctx.path().to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert_eq!(raw_manifest(&second), manifest);
    assert_eq!(raw_manifest(&third), manifest);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata_file).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    assert!(
        log.contains(&format!("pushing manifest for {second}@{digest} done")),
        "{digest}\n{log}"
    );
    assert_eq!(metadata["containerimage.descriptor"]["digest"], digest);
    // The image ID is the config digest, as buildx writes it.
    let iid = std::fs::read_to_string(&iidfile).unwrap();
    assert_eq!(iid, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(
        metadata["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        metadata["containerimage.config.digest"],
        manifest["config"]["digest"]
    );
    assert_eq!(metadata["image.name"], format!("{second},{third}"));

    // A build from the pushed image sees its files.
    let next = h.context();
    next.dockerfile(&format!(
        "FROM {first}\nRUN cat /hello.txt /ran.txt > /both.txt\n"
    ));
    let built = h.build(&next, &[]);
    assert_eq!(built.read("/both.txt"), "pushed\nran\n");
}

#[test]
fn labels_quiet_and_pull_flags() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nLABEL from=dockerfile keep=yes\nRUN echo hi > /hi\n");
    // `--label` wins over LABEL; `--pull` is accepted (every build resolves tags again).
    let built = h.build(&ctx, &["--label", "from=cli", "--label", "extra=1", "--pull"]);
    let labels = &built.config()["config"]["Labels"];
    assert_eq!(labels["from"], "cli", "{labels}");
    assert_eq!(labels["keep"], "yes", "{labels}");
    assert_eq!(labels["extra"], "1", "{labels}");

    // `--quiet` shows no progress and prints the image ID (the config digest) of the image it
    // wrote.
    let out = tempfile::tempdir().unwrap();
    let oci = format!("type=oci,dest={}", out.path().join("image.tar").display());
    let output = h
        .kiln
        .run(&["build", "-q", "--output", &oci, ctx.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("#1 "), "progress was shown: {stderr}");
    let id = stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{stdout:?}");
    let tar_file = |name: &str| {
        let output = Command::new("tar")
            .args(["-xOf"])
            .arg(out.path().join("image.tar"))
            .arg(name)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let manifest = tar_file("index.json")["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = tar_file(&format!("blobs/sha256/{}", &manifest["sha256:".len()..]));
    assert_eq!(manifest["config"]["digest"], id, "{id} is not the image's config");

    // `--progress=quiet` is `-q`; `--progress=none` prints no ID; `-q` goes with no other mode.
    let run = |args: &[&str]| {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.extend(["--output", &oci, ctx.path().to_str().unwrap()]);
        h.kiln.run(&all)
    };
    let quiet = run(&["--progress=quiet"]);
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stdout).trim(), id);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("#1 "));
    let none = run(&["--progress=none"]);
    assert!(none.status.success());
    assert_eq!(String::from_utf8_lossy(&none.stdout), "");
    let both = run(&["-q", "--progress=plain"]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("progress=plain and quiet cannot be used together")
    );

    // A failing step still shows what failed, quiet or not.
    let failing = h.context();
    failing.dockerfile("FROM @BASE@\nRUN echo oops-output && exit 4\n");
    let output = h.kiln.run(&["build", "-q", failing.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("oops-output") && stderr.contains("exit code: 4"),
        "{stderr}"
    );
}

#[test]
fn docker_archives_name_their_tags_for_docker_load() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN echo docker > /d\n");
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("image.tar");
    let output = h.kiln.run(&[
        "build",
        "--progress=plain",
        "--output",
        &format!("type=docker,dest={}", tar.display()),
        "-t",
        "kiln/test:v1",
        "-t",
        "example.com/app:2",
        ctx.path().to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let manifest = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["kiln/test:v1", "example.com/app:2"])
    );
    // skopeo reads it as docker-archive (the manifest.json view) and as an OCI layout.
    let inspect = |transport: &str| -> serde_json::Value {
        let output = Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("{transport}:{}", tar.display()))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "skopeo {transport}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let docker = inspect("docker-archive");
    let oci = inspect("oci-archive");
    assert_eq!(docker["rootfs"], oci["rootfs"]);
    assert_eq!(
        docker["rootfs"]["diff_ids"].as_array().unwrap().len(),
        2,
        "{docker}"
    );
}

#[test]
fn outputs_that_cannot_push_are_refused_clearly() {
    let kiln = crate::common::Kiln::new();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let dir = context.path().to_str().unwrap();
    for (args, message) in [
        (
            vec!["--output", "type=image,name=example.com/a:1"],
            "without push=true is not supported yet",
        ),
        (vec!["--output", "type=registry"], "needs an image name"),
        (vec!["--push"], "needs an image name"),
    ] {
        let mut all = vec!["build"];
        all.extend(args.iter().copied());
        all.push(dir);
        let output = kiln.run(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
