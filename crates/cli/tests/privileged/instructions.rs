//! Dockerfile instructions end to end through the `kiln` binary: FROM variants, ENV and ARG
//! scoping, the image-config instructions, ONBUILD and history. Each test runs real builds
//! (runc over overlayfs) from the busybox fixture image and checks the exported directory and
//! OCI image config against BuildKit's behaviour.

use crate::common::{DEFAULT_PATH, Harness, env_of};
use serde_json::json;

#[test]
fn from_registry_image_scratch_stages_global_args_platform_and_target() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"ARG REGISTRY=registry.invalid
ARG IMAGE=busybox
FROM ${REGISTRY}/${IMAGE}:latest AS Builder
ARG STAGE_ARG=from-builder-stage
RUN echo built > /built && echo "[$TARGETARCH]" > /undeclared-platform-arg

FROM scratch AS empty
COPY --from=BUILDER /built /from-builder

FROM --platform=$BUILDPLATFORM ${REGISTRY}/${IMAGE} AS plat
ARG BUILDPLATFORM
ARG TARGETPLATFORM
ARG TARGETARCH
RUN echo "$BUILDPLATFORM $TARGETPLATFORM $TARGETARCH" > /platforms

FROM builder
COPY --from=Empty /from-builder /copied-from-scratch-stage
COPY --from=plat /platforms /platforms
RUN echo "$STAGE_ARG" > /inherited-arg
"#,
    );
    let registry = format!("REGISTRY={}", h.fixture.registry.host());
    let built = h.build(&ctx, &["--build-arg", &registry, "--platform", "linux/amd64"]);
    // The default target is the last stage, built on the stage `Builder` (names are
    // case-insensitive), itself built on the registry image named through global ARGs.
    assert_eq!(built.read("/built"), "built\n");
    assert!(built.is_file("/bin/busybox"));
    assert_eq!(built.read("/copied-from-scratch-stage"), "built\n");
    assert_eq!(built.read("/platforms"), "linux/amd64 linux/amd64 amd64\n");
    // Platform ARGs are global: empty in a stage until declared there.
    assert_eq!(built.read("/undeclared-platform-arg"), "[]\n");
    // A stage built on another sees the ARGs that stage declared.
    assert_eq!(built.read("/inherited-arg"), "from-builder-stage\n");
    let config = built.config();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");

    // --target picks a stage, case-insensitively; a scratch stage holds only what was copied
    // into it and gets the default config of an empty image.
    let built = h.build(&ctx, &["--build-arg", &registry, "--target", "EMPTY"]);
    assert_eq!(built.list("/"), vec!["from-builder"]);
    let config = built.config();
    assert_eq!(env_of(&config), vec![DEFAULT_PATH]);
    assert!(config["config"]["Cmd"].is_null(), "{config}");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
}

#[test]
fn env_and_arg_scoping_in_run_and_image_config() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"ARG GLOBAL=from-global
ARG HIDDEN=global-not-redeclared
FROM @BASE@
ENV abc=hello
ENV abc=bye def=$abc
ENV multi="a b" other=c\ d
ENV legacy value with spaces
ARG GLOBAL
ARG WITH_DEFAULT=default-value
ARG DERIVED=${WITH_DEFAULT}-derived
ARG OVERRIDDEN=default
ARG EMPTY=
ARG NOVALUE
ARG SHADOWED=from-arg
ENV SHADOWED=from-env
ENV COPIED=$WITH_DEFAULT
RUN { echo "abc=$abc def=$def"; echo "multi=$multi other=$other"; echo "GLOBAL=$GLOBAL"; echo "HIDDEN=${HIDDEN-unset}"; echo "WITH_DEFAULT=$WITH_DEFAULT"; echo "OVERRIDDEN=$OVERRIDDEN"; echo "EMPTY=${EMPTY-unset}"; echo "NOVALUE=${NOVALUE-unset}"; echo "SHADOWED=$SHADOWED"; echo "COPIED=$COPIED"; echo "legacy=$legacy"; echo "DERIVED=$DERIVED"; } > /vars
RUN ["/bin/sh", "-c", "echo \"exec form sees $WITH_DEFAULT and $abc\" > /exec-vars"]
RUN echo "proxy=$HTTP_PROXY" > /proxy
"#,
    );
    let built = h.build(
        &ctx,
        &[
            "--build-arg",
            "OVERRIDDEN=from-cli",
            "--build-arg",
            "NEVER_DECLARED=x",
            "--build-arg",
            "HTTP_PROXY=http://proxy.invalid:3128",
        ],
    );
    assert_eq!(
        built.read("/vars"),
        "abc=bye def=hello\n\
         multi=a b other=c d\n\
         GLOBAL=from-global\n\
         HIDDEN=unset\n\
         WITH_DEFAULT=default-value\n\
         OVERRIDDEN=from-cli\n\
         EMPTY=\n\
         NOVALUE=unset\n\
         SHADOWED=from-env\n\
         COPIED=default-value\n\
         legacy=value with spaces\n\
         DERIVED=default-value-derived\n"
    );
    assert_eq!(built.read("/exec-vars"), "exec form sees default-value and bye\n");
    // Only ENV reaches the image; ARG values never do.
    assert_eq!(
        env_of(&built.config()),
        vec![
            DEFAULT_PATH,
            "abc=bye",
            "def=hello",
            "multi=a b",
            "other=c d",
            "legacy=value with spaces",
            "SHADOWED=from-env",
            "COPIED=default-value",
        ]
    );
    assert!(
        built.log.contains("NEVER_DECLARED"),
        "an unused build arg is warned about:\n{}",
        built.log
    );
    // Proxy variables reach RUN without being declared, and stay out of the image and its
    // history.
    assert_eq!(built.read("/proxy"), "proxy=http://proxy.invalid:3128\n");
    let history = built.history();
    assert!(
        history.iter().all(|(h, _)| !h.contains("proxy.invalid")),
        "{history:?}"
    );
    assert!(
        history
            .iter()
            .any(|(h, _)| h == "RUN |7 GLOBAL=from-global WITH_DEFAULT=default-value DERIVED=default-value-derived OVERRIDDEN=from-cli EMPTY= NOVALUE= SHADOWED=from-env /bin/sh -c echo \"proxy=$HTTP_PROXY\" > /proxy # buildkit"),
        "{history:?}"
    );
}

#[test]
fn metadata_instructions_shape_the_image_config() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"FROM @BASE@ AS meta
MAINTAINER Jane Doe <jane@example.com>
ARG PORT=8080
ARG MORE_PORTS="9000/udp 9001"
LABEL version="1.0" description="two words" "quoted key"=x
LABEL from.arg=$PORT
EXPOSE 80 443/tcp 53/udp ${PORT} 7000-7002/udp
EXPOSE $MORE_PORTS
VOLUME /data /var/log
VOLUME ["/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD wget -q -O- http://localhost/ || exit 1
WORKDIR /srv
WORKDIR app
USER app
ENTRYPOINT ["/bin/echo", "entry"]
CMD ["default", "args"]

FROM meta AS inherit
HEALTHCHECK NONE
ENTRYPOINT ["/bin/true"]

FROM meta AS keepcmd
CMD ["first"]
ENTRYPOINT ["/bin/echo"]

FROM @BASE@ AS shells
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT echo entry
CMD echo cmd
HEALTHCHECK CMD ["/bin/true"]
USER 1000:1000

FROM @BASE@ AS badjson
ENTRYPOINT []random string
CMD ["not", "closed"
"#,
    );

    let built = h.build(&ctx, &["--target", "meta"]);
    let config = built.config();
    assert_eq!(config["author"], "Jane Doe <jane@example.com>");
    let c = &config["config"];
    assert_eq!(
        c["Labels"],
        json!({"description": "two words", "from.arg": "8080", "quoted key": "x", "version": "1.0"})
    );
    assert_eq!(
        c["ExposedPorts"],
        json!({"443/tcp": {}, "53/udp": {}, "7000/udp": {}, "7001/udp": {}, "7002/udp": {},
               "80/tcp": {}, "8080/tcp": {}, "9000/udp": {}, "9001/tcp": {}})
    );
    assert_eq!(c["Volumes"], json!({"/cache": {}, "/data": {}, "/var/log": {}}));
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(
        c["Healthcheck"],
        json!({
            "Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
            "Interval": 30_000_000_000u64,
            "Timeout": 5_000_000_000u64,
            "StartPeriod": 10_000_000_000u64,
            "Retries": 3,
        })
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "app");
    assert_eq!(c["Entrypoint"], json!(["/bin/echo", "entry"]));
    assert_eq!(c["Cmd"], json!(["default", "args"]));
    // WORKDIR creates the directory, owned by root since USER came later.
    assert!(built.is_dir("/srv/app"));
    assert_eq!(built.owner("/srv/app"), (0, 0));
    // A VOLUME path is only metadata.
    assert!(!built.exists("/data"));

    // HEALTHCHECK NONE disables an inherited check; an ENTRYPOINT resets the inherited CMD.
    let c = h.build(&ctx, &["--target", "inherit"]).config()["config"].clone();
    assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
    assert_eq!(c["Entrypoint"], json!(["/bin/true"]));
    assert!(c["Cmd"].is_null(), "inherited CMD survived ENTRYPOINT: {c}");
    assert_eq!(c["Labels"]["version"], "1.0");
    assert_eq!(c["User"], "app");

    // …but not a CMD set earlier in the same stage.
    let c = h.build(&ctx, &["--target", "keepcmd"]).config()["config"].clone();
    assert_eq!(c["Cmd"], json!(["first"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/echo"]));

    // SHELL changes the shell form of ENTRYPOINT and CMD and is recorded itself.
    let c = h.build(&ctx, &["--target", "shells"]).config()["config"].clone();
    assert_eq!(c["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-ec", "echo entry"]));
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-ec", "echo cmd"]));
    assert_eq!(c["Healthcheck"], json!({"Test": ["CMD", "/bin/true"]}));
    assert_eq!(c["User"], "1000:1000");

    // Text that looks like JSON but is not valid JSON is shell form.
    let c = h.build(&ctx, &["--target", "badjson"]).config()["config"].clone();
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "[]random string"]));
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", r#"["not", "closed""#]));
}

#[test]
fn onbuild_triggers_run_in_the_child_only() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("marker.txt", "marker\n");
    ctx.dockerfile(
        r#"FROM @BASE@ AS parent
ONBUILD RUN echo triggered >> /onbuild-log
ONBUILD COPY marker.txt /marker
RUN echo parent >> /onbuild-log

FROM parent AS child
RUN echo child >> /onbuild-log

FROM child AS grandchild
RUN echo grandchild >> /onbuild-log
"#,
    );
    let built = h.build(&ctx, &["--target", "parent"]);
    assert_eq!(built.read("/onbuild-log"), "parent\n");
    assert!(!built.exists("/marker"));
    assert_eq!(
        built.config()["config"]["OnBuild"],
        json!(["RUN echo triggered >> /onbuild-log", "COPY marker.txt /marker"])
    );

    let built = h.build(&ctx, &[]);
    assert_eq!(
        built.read("/onbuild-log"),
        "parent\ntriggered\nchild\ngrandchild\n",
        "the triggers run right after the child's FROM, and not again in the grandchild"
    );
    assert_eq!(built.read("/marker"), "marker\n");
    assert!(built.config()["config"]["OnBuild"].is_null());
    let built = h.build(&ctx, &["--target", "child"]);
    assert!(
        built.config()["config"]["OnBuild"].is_null(),
        "triggers are not inherited by the child's image"
    );

    // A registry image whose config carries ONBUILD triggers.
    let mut config = testkit::base_config(&["busybox", "onbuild marker"]);
    config.config.on_build = Some(vec![
        "RUN echo from-image >> /image-trigger".to_string(),
        "ENV TRIGGERED=yes".to_string(),
    ]);
    let mut extra = testkit::LayerBuilder::new();
    extra.file("etc/onbuild-base", 0o644, "base\n");
    let image = testkit::FixtureImage::new(config, &[testkit::busybox_layer().unwrap(), extra]).unwrap();
    let reference = h.push("onbuild:latest", &image);
    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM {reference} AS child
RUN echo "seen=$TRIGGERED" > /seen

FROM child
RUN cat /image-trigger > /grand
"#
    ));
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/etc/onbuild-base"), "base\n");
    assert_eq!(built.read("/image-trigger"), "from-image\n");
    assert_eq!(built.read("/grand"), "from-image\n");
    assert_eq!(built.read("/seen"), "seen=yes\n");
    let config = built.config();
    assert!(env_of(&config).contains(&"TRIGGERED=yes".to_string()));
    assert!(config["config"]["OnBuild"].is_null(), "{config}");
}

#[test]
fn history_records_each_instruction_of_the_final_stage() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("f.txt", "f\n");
    ctx.dockerfile(
        r#"FROM @BASE@ AS other
RUN echo other > /other

FROM @BASE@
MAINTAINER kiln tests
ARG A=1
ENV E=x F="two words"
LABEL l=v
ONBUILD RUN true
RUN echo $A > /a
COPY f.txt /f.txt
COPY --from=other /other /other
WORKDIR /w
USER 1000:1000
VOLUME /v
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["sh", "-c"]
CMD ["echo", "hi"]
"#,
    );
    let built = h.build(&ctx, &[]);
    let expected: Vec<(&str, bool)> = vec![
        ("testkit: busybox-static from /bin/busybox", false),
        ("MAINTAINER kiln tests", true),
        ("ARG A=1", true),
        ("ENV E=x F=two words", true),
        ("LABEL l=v", true),
        ("RUN |1 A=1 /bin/sh -c echo $A > /a # buildkit", false),
        ("COPY f.txt /f.txt # buildkit", false),
        ("COPY /other /other # buildkit", false),
        ("WORKDIR /w", false),
        ("USER 1000:1000", true),
        ("VOLUME [/v]", true),
        ("STOPSIGNAL SIGINT", true),
        ("SHELL [/bin/sh -ec]", true),
        (r#"ENTRYPOINT ["sh" "-c"]"#, true),
        (r#"CMD ["echo" "hi"]"#, true),
    ];
    let history = built.history();
    let got: Vec<(&str, bool)> = history.iter().map(|(s, e)| (s.as_str(), *e)).collect();
    assert_eq!(got, expected);
    let config = built.config();
    for entry in &config["history"].as_array().unwrap()[1..] {
        assert_eq!(entry["comment"], "buildkit.dockerfile.v0", "{entry}");
    }
    // One layer per history entry that is not empty.
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 5);
    assert_eq!(built.manifest()["layers"].as_array().unwrap().len(), 5);
    assert_eq!(built.read("/a"), "1\n");
    assert!(!built.exists("/w/x"));
    assert_eq!(built.read("/other"), "other\n");
}
