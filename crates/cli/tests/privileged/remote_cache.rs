//! `--cache-to` / `--cache-from` through the `kiln` binary: a build in one empty state directory
//! exports its cache, a build of the same context in another empty state directory imports it
//! and runs no RUN step (the runtime wrappers count container starts), with the same files.
//! Backends: an OCI layout directory, the loopback registry, an inline cache and S3 (SeaweedFS). Also: laziness (nothing is
//! downloaded when no output needs it), hostile cache data, `ignore-error=true`, and two builds
//! exporting to one directory at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Context, Harness, Kiln};

const MULTI_STAGE: &str = "FROM @BASE@ AS build\n\
RUN echo built > /built.txt\n\
FROM @BASE@\n\
COPY hello.txt /hello.txt\n\
RUN cat /hello.txt > /copy.txt && echo ran > /ran.txt\n\
COPY --from=build /built.txt /built.txt\n";

/// Runs `kiln build` in `kiln`'s state directory with a local output in `out`; must succeed.
fn build_into(kiln: &Kiln, ctx: &Context, out: &Path, extra: &[&str]) -> String {
    let dest = format!("type=local,dest={}", out.display());
    let mut args = vec!["build", "--progress=plain", "-o", dest.as_str()];
    args.extend_from_slice(extra);
    args.push(ctx.path().to_str().unwrap());
    let output = kiln.run(&args);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "build failed:\n{log}");
    log
}

fn run_build(kiln: &Kiln, ctx: &Context, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.path().to_str().unwrap());
    kiln.run(&args)
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The manifest tagged `tag` in an OCI layout directory.
fn layout_manifest(dir: &Path, tag: &str) -> Value {
    let index = json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone();
    json(&blob(dir, entry["digest"].as_str().unwrap()))
}

#[test]
fn a_local_cache_serves_an_empty_state_directory_with_every_step() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n").dockerfile(MULTI_STAGE);
    let cache = h.out_path("cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let first = h.out_path("first");
    build_into(&h.kiln, &ctx, &first, &["--cache-to", &to]);
    assert_eq!(h.kiln.runtime.runs(), 2);

    // BuildKit's layout: an image manifest whose config is the cache config.
    let manifest = layout_manifest(&cache, "latest");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );
    let config = json(&blob(&cache, manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap();
    for layer in layers {
        assert!(
            blob(&cache, layer["digest"].as_str().unwrap()).is_file(),
            "{layer}"
        );
        assert!(
            layer["annotations"]["containerd.io/uncompressed"].is_string(),
            "{layer}"
        );
    }
    // mode=max: both stages' steps, each result pointing at a layer.
    let records = config["records"].as_array().unwrap();
    assert!(records.len() >= 5, "{config}");
    assert!(
        records.iter().all(|r| r["layers"][0]["layer"].is_i64()),
        "{config}"
    );

    let b = Kiln::new();
    let second = h.out_path("second");
    let from = format!("type=local,src={}", cache.display());
    let log = build_into(&b, &ctx, &second, &["--cache-from", &from]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    for path in ["hello.txt", "copy.txt", "ran.txt", "built.txt"] {
        assert_eq!(read(&first, path), read(&second, path), "{path}");
    }
    assert!(log.contains("importing cache manifest from"), "{log}");
}

#[test]
fn a_registry_cache_serves_empty_state_directories_and_is_exported_again() {
    let h = Harness::start();
    let host = h.fixture.registry.host();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n")
        .dockerfile("FROM @BASE@\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy.txt\n");
    let cache = format!("{host}/cache/app:buildcache");
    let first = h.out_path("first");
    build_into(
        &h.kiln,
        &ctx,
        &first,
        &["--cache-to", &format!("type=registry,ref={cache}")],
    );
    assert_eq!(h.kiln.runtime.runs(), 1);
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{cache}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );

    // The shorthand `--cache-from REF`; the result is re-exported from the imported cache
    // without being built, and a third empty state directory uses that export.
    let b = Kiln::new();
    let second = h.out_path("second");
    let again = format!("type=registry,ref={host}/cache/again:latest");
    let log = build_into(&b, &ctx, &second, &["--cache-from", &cache, "--cache-to", &again]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    assert_eq!(read(&second, "copy.txt"), "hello\n");
    let c = Kiln::new();
    let third = h.out_path("third");
    let log = build_into(
        &c,
        &ctx,
        &third,
        &["--cache-from", &format!("{host}/cache/again:latest")],
    );
    assert_eq!(c.runtime.runs(), 0, "{log}");
    assert_eq!(read(&third, "copy.txt"), "hello\n");

    // A changed file misses where it should: the RUN after the COPY runs again.
    ctx.write("hello.txt", "changed\n");
    let d = Kiln::new();
    let fourth = h.out_path("fourth");
    build_into(&d, &ctx, &fourth, &["--cache-from", &cache]);
    assert_eq!(d.runtime.runs(), 1);
    assert_eq!(read(&fourth, "copy.txt"), "changed\n");
}

#[test]
fn an_imported_result_is_downloaded_only_when_an_output_needs_it() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN head -c 100000 /dev/urandom > /random.bin\n");
    let cache = h.out_path("cache");
    let to = format!("type=local,dest={}", cache.display());
    build_into(&h.kiln, &ctx, &h.out_path("first"), &["--cache-to", &to]);
    let manifest = layout_manifest(&cache, "latest");
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let b = Kiln::new();
    let from = format!("type=local,src={}", cache.display());
    let output = run_build(&b, &ctx, &["--cache-from", &from]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert_eq!(b.runtime.runs(), 0, "{log}");
    assert!(log.contains("CACHED"), "{log}");
    // Without an output, the RUN's layer never left the cache.
    assert!(!blob(b.root.path(), &top).exists(), "{log}");

    let out = h.out_path("second");
    let log = build_into(&b, &ctx, &out, &["--cache-from", &from]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    assert!(blob(b.root.path(), &top).exists(), "{log}");
    assert_eq!(std::fs::metadata(out.join("random.bin")).unwrap().len(), 100_000);
}

#[test]
fn hostile_or_missing_caches_are_misses_or_clear_errors() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN echo one > /one.txt\n");
    let cache = h.out_path("cache");
    let to = format!("type=local,dest={}", cache.display());
    build_into(&h.kiln, &ctx, &h.out_path("first"), &["--cache-to", &to]);
    let from = format!("type=local,src={}", cache.display());

    // A missing cache, and a cache whose config is not what its digest says: warnings, and the
    // build runs its step.
    let missing = format!("type=local,src={}", h.out_path("nowhere").display());
    let b = Kiln::new();
    let manifest = layout_manifest(&cache, "latest");
    let config = blob(&cache, manifest["config"]["digest"].as_str().unwrap());
    let original = std::fs::read(&config).unwrap();
    std::fs::write(&config, b"{\"records\":[{\"digest\":\"sha256:").unwrap();
    let log = build_into(
        &b,
        &ctx,
        &h.out_path("b"),
        &["--cache-from", &missing, "--cache-from", &from],
    );
    assert_eq!(b.runtime.runs(), 1, "{log}");
    assert!(log.contains("importing cache from"), "{log}");
    assert!(log.contains("has digest"), "{log}");
    std::fs::write(&config, &original).unwrap();

    // A truncated layer blob: the step that needs it fails, naming the blob and the cache.
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer = blob(&cache, &top);
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..bytes.len() / 2]).unwrap();
    let c = Kiln::new();
    let out = h.out_path("c");
    let dest = format!("type=local,dest={}", out.display());
    let output = run_build(&c, &ctx, &["--cache-from", &from, "-o", &dest]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains(&top) && log.contains("cache"), "{log}");
}

#[test]
fn a_failed_export_fails_the_build_unless_errors_are_ignored() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN echo one > /one.txt\n");
    let nowhere = format!("127.0.0.1:{}/cache/app:latest", testkit::closed_port());
    let output = run_build(
        &h.kiln,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={nowhere}")],
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("failed to export the build cache"), "{log}");
    assert!(
        log.contains("Connection refused") || log.contains("connection refused"),
        "{log}"
    );

    let ignored = format!("type=registry,ref={nowhere},ignore-error=true");
    let output = run_build(&h.kiln, &ctx, &["--cache-to", &ignored]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("ignore-error=true"), "{log}");
}

#[test]
fn two_builds_export_to_one_directory_at_once() {
    let h = Harness::start();
    let (one, two) = (h.context(), h.context());
    one.dockerfile("FROM @BASE@\nRUN echo one > /one.txt\n");
    two.dockerfile("FROM @BASE@\nRUN echo two > /two.txt\n");
    let cache = h.out_path("cache");
    let b = Kiln::new();
    let spec = |tag: &str| format!("type=local,dest={},tag={tag}", cache.display());
    let (spec_one, spec_two) = (spec("one"), spec("two"));
    let spawn = |kiln: &Kiln, ctx: &Context, spec: &str| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", kiln.root.path())
            .env("KILN_RUNTIME", kiln.runtime.path())
            .args(["build", "--progress=plain", "--cache-to", spec])
            .arg(ctx.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&h.kiln, &one, &spec_one), spawn(&b, &two, &spec_two));
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    layout_manifest(&cache, "one");
    layout_manifest(&cache, "two");
    let c = Kiln::new();
    let from = format!("type=local,src={},tag=two", cache.display());
    let out = h.out_path("out");
    build_into(&c, &two, &out, &["--cache-from", &from]);
    assert_eq!(c.runtime.runs(), 0);
    assert_eq!(read(&out, "two.txt"), "two\n");
}

#[test]
fn an_inline_cache_travels_in_the_pushed_image() {
    let h = Harness::start();
    let host = h.fixture.registry.host();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n").dockerfile(MULTI_STAGE);
    let image = format!("{host}/inline/app:v1");
    let push = format!("type=image,name={image},push=true");
    let first = h.out_path("first");
    build_into(&h.kiln, &ctx, &first, &["--cache-to", "type=inline", "-o", &push]);
    assert_eq!(h.kiln.runtime.runs(), 2);
    let raw = Command::new("skopeo")
        .args(["inspect", "--config", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let config: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert!(config["moby.buildkit.cache.v0"].is_string(), "{config}");

    // mode=min holds only the final stage's steps, yet the build stage never runs: the
    // `COPY --from` is found by its link key, from its inputs' keys, without their content.
    let b = Kiln::new();
    let second = h.out_path("second");
    let log = build_into(&b, &ctx, &second, &["--cache-from", &image]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    for path in ["hello.txt", "copy.txt", "ran.txt", "built.txt"] {
        assert_eq!(read(&first, path), read(&second, path), "{path}");
    }

    // Layers converted for the image would not be the ones the inline cache names: refused.
    let zstd = format!(
        "type=oci,dest={},compression=zstd",
        h.out_path("zstd.tar").display()
    );
    let output = run_build(&h.kiln, &ctx, &["--cache-to", "type=inline", "-o", &zstd]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("type=inline with an image output using compression"),
        "{log}"
    );

    // An image without an inline cache is a warning, not a failure.
    let c = Kiln::new();
    let log = build_into(&c, &ctx, &h.out_path("third"), &["--cache-from", h.base()]);
    assert_eq!(c.runtime.runs(), 2, "{log}");
    assert!(log.contains("has no inline cache"), "{log}");
}

#[test]
fn an_s3_cache_serves_an_empty_state_directory() {
    let h = Harness::start();
    let weed = testkit::SeaweedFs::start("kiln-cache").unwrap();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n").dockerfile(MULTI_STAGE);
    let spec = |mode: &str| {
        format!(
            "type=s3,bucket=kiln-cache,region=us-east-1,endpoint_url={},use_path_style=true,prefix=team/,name=app;app-main{mode}",
            weed.endpoint()
        )
    };
    let credentials = [
        ("AWS_ACCESS_KEY_ID".to_string(), "kiln".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "kiln-secret".to_string()),
    ];
    h.kiln.env.borrow_mut().extend(credentials.clone());
    let first = h.out_path("first");
    build_into(&h.kiln, &ctx, &first, &["--cache-to", &spec(",mode=max")]);
    assert_eq!(h.kiln.runtime.runs(), 2);

    // The second name of the export is read back.
    let b = Kiln::new();
    b.env.borrow_mut().extend(credentials);
    let second = h.out_path("second");
    let from = spec("").replace("name=app;app-main", "name=app-main");
    let log = build_into(&b, &ctx, &second, &["--cache-from", &from]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    for path in ["hello.txt", "copy.txt", "ran.txt", "built.txt"] {
        assert_eq!(read(&first, path), read(&second, path), "{path}");
    }
    // A name nothing was exported under: a warning, and the steps run.
    let c = Kiln::new();
    let missing = spec("").replace("name=app;app-main", "name=nothing");
    let log = build_into(&c, &ctx, &h.out_path("third"), &["--cache-from", &missing]);
    assert_eq!(c.runtime.runs(), 2, "{log}");
    assert!(
        log.contains("importing cache from s3://kiln-cache/team/manifests/nothing failed"),
        "{log}"
    );
}

#[test]
fn cache_mount_contents_travel_with_the_cache() {
    let h = Harness::start();
    let fill = h.context();
    fill.dockerfile(
        "FROM @BASE@\n\
         RUN --mount=type=cache,target=/cache --mount=type=cache,id=owned,target=/owned,uid=1000 \\\n\
         echo filled > /cache/fill.txt && echo owned > /owned/own.txt && echo done > /done\n",
    );
    let cache = h.out_path("cache");
    let to = format!("type=local,dest={},cache-mounts=true", cache.display());
    build_into(&h.kiln, &fill, &h.out_path("first"), &["--cache-to", &to]);
    let manifest = layout_manifest(&cache, "latest");
    let mounts: Vec<&Value> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["annotations"]["dev.kiln.cache-mount.id"].is_string())
        .collect();
    assert_eq!(mounts.len(), 2, "{manifest}");

    // Another Dockerfile (its steps miss), in an empty state directory: its caches start with
    // what the first build left in them; their contents are in no layer.
    let read = h.context();
    read.dockerfile(
        "FROM @BASE@\n\
         RUN --mount=type=cache,target=/cache --mount=type=cache,id=owned,target=/owned,uid=1000 \\\n\
         (cat /cache/fill.txt /owned/own.txt || echo none) > /seen.txt && stat -c %u /owned/own.txt >> /seen.txt || true\n",
    );
    let b = Kiln::new();
    let out = h.out_path("second");
    let from = format!("type=local,src={}", cache.display());
    let log = build_into(&b, &read, &out, &["--cache-from", &from]);
    assert_eq!(self::read(&out, "seen.txt"), "filled\nowned\n0\n", "{log}");
    assert!(!out.join("cache").join("fill.txt").exists());
    // Without the cache, the caches start empty.
    let c = Kiln::new();
    let out = h.out_path("third");
    build_into(&c, &read, &out, &[]);
    assert!(
        self::read(&out, "seen.txt").starts_with("none"),
        "{}",
        self::read(&out, "seen.txt")
    );
}

#[test]
fn a_zstd_cache_is_written_and_read() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN echo zstd > /z.txt\n");
    let cache = h.out_path("cache");
    let to = format!(
        "type=local,dest={},compression=zstd,compression-level=9,force-compression=true",
        cache.display()
    );
    build_into(&h.kiln, &ctx, &h.out_path("first"), &["--cache-to", &to]);
    let manifest = layout_manifest(&cache, "latest");
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(!types.is_empty());
    assert!(
        types
            .iter()
            .all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    let b = Kiln::new();
    let out = h.out_path("second");
    let from = format!("type=local,src={}", cache.display());
    let log = build_into(&b, &ctx, &out, &["--cache-from", &from]);
    assert_eq!(b.runtime.runs(), 0, "{log}");
    assert_eq!(read(&out, "z.txt"), "zstd\n");
}
