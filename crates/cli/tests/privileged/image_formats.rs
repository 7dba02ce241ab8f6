//! Image format options of image outputs through the `kiln` binary: `compression=zstd|gzip|
//! uncompressed`, `compression-level`, `force-compression`, and reproducible images with
//! `SOURCE_DATE_EPOCH` and `rewrite-timestamp=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Context, Harness, Kiln};

/// An OCI output unpacked: its layout directory.
struct Layout(PathBuf);

impl Layout {
    fn json(&self, path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.0
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn manifest_digest(&self) -> String {
        let index = self.json(&self.0.join("index.json"));
        index["manifests"][0]["digest"].as_str().unwrap().to_string()
    }

    fn manifest(&self) -> Value {
        self.json(&self.blob(&self.manifest_digest()))
    }

    fn config(&self) -> Value {
        self.json(&self.blob(self.manifest()["config"]["digest"].as_str().unwrap()))
    }

    fn layer_types(&self) -> Vec<String> {
        self.manifest()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect()
    }

    /// `tar -tvf` of the last layer (decompressed by tar, which knows zstd and gzip).
    fn last_layer_listing(&self) -> String {
        let manifest = self.manifest();
        let last = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let output = Command::new("tar")
            .args(["--full-time", "-tvf"])
            .arg(self.blob(&last))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Builds `ctx` in `kiln`'s state directory with one OCI output carrying `options`; unpacks it.
fn build_oci(kiln: &Kiln, ctx: &Context, out: &Path, options: &str, extra: &[&str]) -> Layout {
    let tar = out.with_extension("tar");
    let spec = format!("type=oci,dest={}{options}", tar.display());
    let mut args = vec!["build", "--progress=plain", "-o", spec.as_str()];
    args.extend_from_slice(extra);
    args.push(ctx.path().to_str().unwrap());
    let output = kiln.run(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::create_dir_all(out).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    Layout(out.to_path_buf())
}

const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

#[test]
fn layers_are_compressed_as_asked_and_zstd_images_are_usable() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n")
        .dockerfile("FROM @BASE@\nCOPY hello.txt /hello.txt\nRUN head -c 300000 /dev/zero > /zeros\n");
    // zstd: the build's layers; the base layer keeps its gzip blob unless forced.
    let zstd = build_oci(&h.kiln, &ctx, &h.out_path("zstd"), ",compression=zstd", &[]);
    assert_eq!(zstd.layer_types(), [OCI_GZIP, OCI_ZSTD, OCI_ZSTD]);
    assert!(zstd.last_layer_listing().contains("zeros"));
    let forced = build_oci(
        &h.kiln,
        &ctx,
        &h.out_path("forced"),
        ",compression=zstd,force-compression=true,compression-level=19",
        &[],
    );
    assert_eq!(forced.layer_types(), [OCI_ZSTD, OCI_ZSTD, OCI_ZSTD]);
    let plain = build_oci(
        &h.kiln,
        &ctx,
        &h.out_path("plain"),
        ",compression=uncompressed",
        &[],
    );
    assert_eq!(plain.layer_types(), [OCI_TAR, OCI_TAR, OCI_TAR]);
    // The same layers whatever the compression: the diff IDs agree.
    let gzip = build_oci(&h.kiln, &ctx, &h.out_path("gzip"), "", &[]);
    for other in [&zstd, &forced, &plain] {
        assert_eq!(other.config()["rootfs"], gzip.config()["rootfs"]);
    }
    assert_eq!(gzip.layer_types(), [OCI_GZIP, OCI_GZIP, OCI_GZIP]);

    // A zstd image pushed to a registry is a base image a later build (another state
    // directory) pulls and runs on.
    let host = h.fixture.registry.host();
    let image = format!("{host}/zstd/app:v1");
    let push = format!("type=image,name={image},push=true,compression=zstd,force-compression=true");
    let output = h.run_build(ctx.path(), &["-o", &push]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let on_top = h.context();
    on_top.dockerfile(&format!(
        "FROM {image}\nRUN cat /hello.txt > /again.txt && wc -c < /zeros > /size\n"
    ));
    let b = Kiln::new();
    let out = h.out_path("on-top");
    let dest = format!("type=local,dest={}", out.display());
    let output = b.run(&[
        "build",
        "--progress=plain",
        "-o",
        &dest,
        on_top.path().to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.join("again.txt")).unwrap(), "hello\n");
    assert_eq!(
        std::fs::read_to_string(out.join("size")).unwrap().trim(),
        "300000"
    );
}

#[test]
fn two_empty_state_directories_at_different_times_give_the_same_image() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n").dockerfile(
        "FROM @BASE@\nCOPY hello.txt /hello.txt\nRUN mkdir /made && echo made > /made/file && touch /hello-run\nENV A=1\n",
    );
    let epoch = "1700000000";
    let arg = format!("SOURCE_DATE_EPOCH={epoch}");
    let build = |kiln: &Kiln, name: &str, options: &str| {
        build_oci(kiln, &ctx, &h.out_path(name), options, &["--build-arg", &arg])
    };
    let (a, b) = (Kiln::new(), Kiln::new());
    let first = build(&a, "first", ",rewrite-timestamp=true");
    let first_plain = build(&a, "first-plain", "");
    // Another second, another machine.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build(&b, "second", ",rewrite-timestamp=true");
    let second_plain = build(&b, "second-plain", "");
    assert_eq!(first.manifest_digest(), second.manifest_digest());
    assert_eq!(first.config()["created"], "2023-11-14T22:13:20Z");
    let listing = first.last_layer_listing();
    assert!(
        listing.contains("2023-11-14 22:13:20") && listing.contains("made/file"),
        "{listing}"
    );
    assert!(!listing.contains("2026-"), "{listing}");
    // Without rewrite-timestamp, the files the RUN made carry the time it ran: the images
    // differ although their configs are dated alike.
    assert_eq!(first_plain.config()["created"], second_plain.config()["created"]);
    assert_ne!(first_plain.manifest_digest(), second_plain.manifest_digest());

    // The client's SOURCE_DATE_EPOCH is the build arg, as with buildx.
    let c = Kiln::new();
    c.env
        .borrow_mut()
        .push(("SOURCE_DATE_EPOCH".into(), epoch.into()));
    let third = build_oci(&c, &ctx, &h.out_path("third"), ",rewrite-timestamp=true", &[]);
    assert_eq!(third.manifest_digest(), first.manifest_digest());
    let output = c.run(&[
        "build",
        "--build-arg",
        "SOURCE_DATE_EPOCH=yesterday",
        ctx.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid SOURCE_DATE_EPOCH"));
}
