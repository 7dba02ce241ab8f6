//! Build contexts end to end through the `kiln` binary: named contexts (`--build-context`) as
//! local directories, as images and as OCI layouts (directories and tarballs), and what `.dockerignore` and `<Dockerfile>.dockerignore`
//! leave out of the context.

use crate::common::{Harness, env_of};

#[test]
fn named_contexts_replace_images_and_provide_directories() {
    let h = Harness::start();
    // An image that exists only under a registry name the Dockerfile never mentions.
    let mut config = testkit::base_config(&["busybox", "tagged"]);
    config
        .config
        .env
        .get_or_insert_with(Vec::new)
        .push("FROM_IMAGE=yes".to_string());
    let mut extra = testkit::LayerBuilder::new();
    extra.file("etc/tagged", 0o644, "tagged image\n");
    let image = testkit::FixtureImage::new(config, &[testkit::busybox_layer().unwrap(), extra]).unwrap();
    let tagged = h.push("tagged:v1", &image);

    let extra_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(extra_dir.path().join("nested")).unwrap();
    std::fs::write(extra_dir.path().join("file.txt"), "extra file\n").unwrap();
    std::fs::write(extra_dir.path().join("nested/inner.txt"), "inner\n").unwrap();
    std::fs::write(extra_dir.path().join("ignored.txt"), "ignored\n").unwrap();
    std::fs::write(extra_dir.path().join(".dockerignore"), "ignored.txt\n").unwrap();

    let ctx = h.context();
    ctx.write("ignored.txt", "main context has it\n");
    ctx.dockerfile(
        r#"FROM extra AS fromdir

# Replaced by a named context of the same name: never resolved, never run.
FROM registry.invalid/never/pulled:1 AS deps
RUN exit 1

FROM base AS fromimage
RUN echo "from image env: $FROM_IMAGE" > /env-from-image

FROM fromimage
COPY --from=extra file.txt /from-extra
COPY --from=extra . /extra-all/
COPY --from=fromdir /nested/inner.txt /via-stage
COPY ignored.txt /from-main-context
COPY --from=deps /etc/tagged /from-overridden-stage
"#,
    );
    let extra_arg = format!("extra={}", extra_dir.path().display());
    let base_arg = format!("base=docker-image://{tagged}");
    let deps_arg = format!("deps=docker-image://{tagged}");
    let contexts = [
        "--build-context",
        extra_arg.as_str(),
        "--build-context",
        base_arg.as_str(),
        "--build-context",
        deps_arg.as_str(),
    ];
    let built = h.build(&ctx, &contexts);
    // `FROM base` is the image named by the context, with its config.
    assert_eq!(built.read("/etc/tagged"), "tagged image\n");
    assert_eq!(built.read("/env-from-image"), "from image env: yes\n");
    assert!(env_of(&built.config()).contains(&"FROM_IMAGE=yes".to_string()));
    // A local named context for COPY --from, honouring its own .dockerignore.
    assert_eq!(built.read("/from-extra"), "extra file\n");
    assert_eq!(
        built.list("/extra-all"),
        vec![".dockerignore", "file.txt", "nested"]
    );
    // …and as the base of a stage.
    assert_eq!(built.read("/via-stage"), "inner\n");
    // The main context is unaffected by the named context's ignore file.
    assert_eq!(built.read("/from-main-context"), "main context has it\n");
    // A named context replaces the stage of the same name.
    assert_eq!(built.read("/from-overridden-stage"), "tagged image\n");
    assert_eq!(h.kiln.runtime.runs(), 1, "only the RUN of `fromimage` ran");

    // …also when that stage is the target.
    // BuildKit replaces the whole stage by the named context of its name (its base image is
    // never resolved), so the result is the image `tagged:v1`.
    let mut args = contexts.to_vec();
    args.extend(["--target", "deps"]);
    let built = h.build(&ctx, &args);
    assert_eq!(built.read("/etc/tagged"), "tagged image\n");
    assert!(
        env_of(&built.config()).contains(&"FROM_IMAGE=yes".to_string()),
        "the image's config too"
    );
    assert_eq!(h.kiln.runtime.runs(), 1);
}

#[test]
fn dockerignore_and_dockerfile_specific_ignore_files() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write(".dockerignore", "# a comment\n*.log\nsecret/\n!keep.log\ntemp*\n")
        .write("a.log", "a\n")
        .write("keep.log", "keep\n")
        .write("secret/x", "x\n")
        .write("temp1", "t\n")
        .write("tempdir/y", "y\n")
        .write("normal.txt", "normal\n")
        .write("sub/a.log", "nested log\n");
    ctx.dockerfile("FROM scratch\nCOPY . /ctx/\n");
    let built = h.build(&ctx, &[]);
    assert_eq!(
        built.list("/ctx"),
        vec![".dockerignore", "Dockerfile", "keep.log", "normal.txt", "sub"],
        "excluded files must be absent, `!keep.log` re-included"
    );
    // `*.log` is anchored at the context root.
    assert_eq!(built.read("/ctx/sub/a.log"), "nested log\n");

    // An ignored file cannot be copied: it is not in the context.
    ctx.dockerfile("FROM scratch\nCOPY a.log /a.log\n");
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("a.log"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");

    // `Dockerfile.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`.
    ctx.write("Dockerfile.dockerignore", "normal.txt\nDockerfile*\n");
    ctx.dockerfile("FROM scratch\nCOPY . /ctx/\n");
    let dockerfile = ctx.join("Dockerfile");
    let built = h.build(&ctx, &["-f", dockerfile.to_str().unwrap()]);
    assert_eq!(
        built.list("/ctx"),
        vec![
            ".dockerignore",
            "a.log",
            "keep.log",
            "secret",
            "sub",
            "temp1",
            "tempdir"
        ]
    );

    // The same for a Dockerfile outside the context, under another name.
    let elsewhere = tempfile::tempdir().unwrap();
    let custom = elsewhere.path().join("app.Dockerfile");
    std::fs::write(&custom, "FROM scratch\nCOPY . /ctx/\n").unwrap();
    std::fs::write(
        elsewhere.path().join("app.Dockerfile.dockerignore"),
        "*\n!normal.txt\n",
    )
    .unwrap();
    let built = h.build(&ctx, &["-f", custom.to_str().unwrap()]);
    assert_eq!(built.list("/ctx"), vec!["normal.txt"]);
}

#[test]
fn oci_layout_contexts_are_bases_in_any_state_directory() {
    let h = Harness::start();
    // An image written as an OCI layout (a tarball, and unpacked), tagged v1.
    let (tarball, layout) =
        h.oci_layout("FROM @BASE@\nRUN echo from-layout > /layout.txt\nENV FROM_LAYOUT=yes\n");

    let ctx = h.context();
    ctx.dockerfile(
        "FROM base\nRUN cat /layout.txt > /copied.txt && echo $FROM_LAYOUT > /env.txt\nCOPY --from=base /layout.txt /again.txt\n",
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    for value in [
        format!("oci-layout://{}", layout.display()),
        format!("oci-layout://{}:v1", layout.display()),
        format!("oci-layout://{}@{digest}", layout.display()),
        format!("oci-layout://{}:v1", tarball.display()),
    ] {
        // An empty state directory: the layers can only come from the layout.
        let kiln = crate::common::Kiln::new();
        let out = h.out_path(&format!("out-{}", kiln.root.path().display()).replace('/', "_"));
        let dest = format!("type=local,dest={}", out.display());
        let context = format!("base={value}");
        let output = kiln.run(&[
            "build",
            "--progress=plain",
            "--build-context",
            &context,
            "-o",
            &dest,
            ctx.path().to_str().unwrap(),
        ]);
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{value}: {log}");
        for (file, text) in [
            ("copied.txt", "from-layout\n"),
            ("env.txt", "yes\n"),
            ("again.txt", "from-layout\n"),
        ] {
            assert_eq!(
                std::fs::read_to_string(out.join(file)).unwrap(),
                text,
                "{value}: {file}"
            );
        }
    }

    let missing = format!("base=oci-layout://{}:v2", layout.display());
    let err = h.build_err(&ctx, &["--build-context", &missing]);
    assert!(err.contains("no manifest tagged \"v2\""), "{err}");
    let nowhere = format!("base=oci-layout://{}", h.out_path("nowhere").display());
    let err = h.build_err(&ctx, &["--build-context", &nowhere]);
    assert!(err.contains("is no OCI image layout"), "{err}");
}
