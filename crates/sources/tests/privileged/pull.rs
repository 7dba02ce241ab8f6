//! Image pulls against a loopback `docker-registry`: layers applied once each and reused by
//! chain ID, diff IDs checked, and gzip, zstd and uncompressed layers all read.

use bytes::Bytes;
use oci::{Descriptor, Digest, ImageConfig, ImageManifest, media_type};
use sources::pull::{self, PullError};
use store::SnapshotId;
use testkit::{FixtureImage, LayerBuilder, base_config};

use crate::common::{Env, client, image, pull_image};

fn read(env: &Env, id: SnapshotId, path: &str) -> Option<String> {
    let view = env.store.view(id).unwrap();
    std::fs::read_to_string(view.path().join(path)).ok()
}

fn layer(files: &[(&str, &str)]) -> LayerBuilder {
    let mut layer = LayerBuilder::new();
    for (path, contents) in files {
        layer.file(path, 0o644, *contents);
    }
    layer
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

/// `image` with its config's diff IDs replaced by `diff_ids`, its manifest made again.
fn with_diff_ids(image: &FixtureImage, diff_ids: Vec<Digest>) -> FixtureImage {
    let mut config: ImageConfig = serde_json::from_slice(&image.config).unwrap();
    config.rootfs.diff_ids = diff_ids;
    let config = Bytes::from(serde_json::to_vec(&config).unwrap());
    let config_descriptor = Descriptor::new(media_type::OCI_CONFIG, Digest::of(&config), config.len() as u64);
    let mut manifest: ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
    manifest.config = config_descriptor.clone();
    let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    FixtureImage {
        layers: image.layers.clone(),
        config_descriptor,
        config,
        manifest_digest: Digest::of(&manifest),
        manifest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_are_applied_once_and_reused_by_chain_id() {
    testkit::require_privileged();
    let registry = testkit::Registry::start().unwrap();
    let host = registry.host();
    let base = layer(&[("base.txt", "base")]);
    let two = FixtureImage::new(
        base_config(&["base", "two"]),
        &[base.clone(), layer(&[("two.txt", "two")])],
    )
    .unwrap();
    let other = FixtureImage::new(
        base_config(&["base", "other"]),
        &[base, layer(&[("other.txt", "other")])],
    )
    .unwrap();
    let two_ref = testkit::push_image(&host, "two:latest", &two).await.unwrap();
    let other_ref = testkit::push_image(&host, "other:latest", &other).await.unwrap();
    let env = Env::new();

    let (top, lines) = pull_image(&env, &two_ref).await.unwrap();
    let top = top.expect("a snapshot");
    assert_eq!(count(&lines, "pulling "), 2, "{lines:?}");
    assert_eq!(count(&lines, "extracting "), 2, "{lines:?}");
    assert_eq!(read(&env, top, "base.txt").as_deref(), Some("base"));
    assert_eq!(read(&env, top, "two.txt").as_deref(), Some("two"));
    // The manifest and config are kept, the layers recorded with their blobs.
    assert!(env.store.content().contains(&two.manifest_digest));
    assert!(env.store.content().contains(&two.config_descriptor.digest));

    // Again: nothing fetched, nothing applied, the same snapshot.
    let (again, lines) = pull_image(&env, &two_ref).await.unwrap();
    assert_eq!(again, Some(top));
    assert!(lines.is_empty(), "{lines:?}");

    // Another image on the same base layer applies only its own.
    let (other_top, lines) = pull_image(&env, &other_ref).await.unwrap();
    assert_eq!(count(&lines, "extracting "), 1, "{lines:?}");
    let other_top = other_top.unwrap();
    assert_eq!(read(&env, other_top, "base.txt").as_deref(), Some("base"));
    assert_eq!(read(&env, other_top, "two.txt"), None);
    let parent = |id| env.store.snapshot(id).unwrap().parent;
    assert_eq!(
        parent(other_top),
        parent(top),
        "the base layer's snapshot is shared"
    );

    // Pinned by digest: the stored manifest serves, and its digest is the cache's identity.
    let pinned = format!("{host}/two@{}", two.manifest_digest);
    let (digest, manifest) = pull::manifest(&env.store, &client(), &image(&pinned))
        .await
        .unwrap();
    assert_eq!(digest, two.manifest_digest);
    assert_eq!(manifest.layers.len(), 2);
}

/// `image` with its layers stored as `blobs` (media type and bytes each, base first).
fn with_blobs(image: &FixtureImage, blobs: Vec<(&str, Vec<u8>)>) -> FixtureImage {
    let layers: Vec<(Descriptor, Bytes)> = blobs
        .into_iter()
        .map(|(media_type, blob)| {
            let descriptor = Descriptor::new(media_type, Digest::of(&blob), blob.len() as u64);
            (descriptor, Bytes::from(blob))
        })
        .collect();
    let mut manifest: ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
    manifest.layers = layers.iter().map(|(d, _)| d.clone()).collect();
    let manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    FixtureImage {
        layers,
        config_descriptor: image.config_descriptor.clone(),
        config: image.config.clone(),
        manifest_digest: Digest::of(&manifest),
        manifest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_and_uncompressed_layers_are_pulled() {
    testkit::require_privileged();
    let registry = testkit::Registry::start().unwrap();
    let (first, second) = (layer(&[("first.txt", "zstd")]), layer(&[("second.txt", "plain")]));
    let gzipped = FixtureImage::new(
        base_config(&["first", "second"]),
        &[first.clone(), second.clone()],
    )
    .unwrap();
    // The first layer as two concatenated zstd frames (as a parallel compressor writes them).
    let tar = first.tar().unwrap();
    let (head, tail) = tar.split_at(tar.len() / 2);
    let level = ruzstd::encoding::CompressionLevel::Fastest;
    let mut zstd = ruzstd::encoding::compress_to_vec(head, level);
    zstd.extend(ruzstd::encoding::compress_to_vec(tail, level));
    let image = with_blobs(
        &gzipped,
        vec![
            (media_type::OCI_LAYER_ZSTD, zstd),
            (media_type::OCI_LAYER_TAR, second.tar().unwrap()),
        ],
    );
    let reference = testkit::push_image(&registry.host(), "mixed:latest", &image)
        .await
        .unwrap();
    let env = Env::new();
    let (top, lines) = pull_image(&env, &reference).await.unwrap();
    let top = top.expect("a snapshot");
    assert_eq!(count(&lines, "extracting "), 2, "{lines:?}");
    assert_eq!(read(&env, top, "first.txt").as_deref(), Some("zstd"));
    assert_eq!(read(&env, top, "second.txt").as_deref(), Some("plain"));

    // A zstd blob that is not what its diff ID says is refused like a gzip one.
    let corrupt = with_blobs(
        &gzipped,
        vec![
            (
                media_type::OCI_LAYER_ZSTD,
                ruzstd::encoding::compress_to_vec(&tar[..512], level),
            ),
            (media_type::OCI_LAYER_TAR, second.tar().unwrap()),
        ],
    );
    let reference = testkit::push_image(&registry.host(), "corrupt:latest", &corrupt)
        .await
        .unwrap();
    let error = pull_image(&Env::new(), &reference).await.unwrap_err();
    assert!(
        matches!(error, PullError::DiffId { .. } | PullError::Corrupt { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_is_not_its_diff_id_is_refused_and_not_recorded() {
    testkit::require_privileged();
    let registry = testkit::Registry::start().unwrap();
    let good = FixtureImage::new(base_config(&["one"]), &[layer(&[("a", "a")])]).unwrap();
    let wrong = Digest::of(b"not this layer");
    let bad = with_diff_ids(&good, vec![wrong.clone()]);
    let reference = testkit::push_image(&registry.host(), "bad:latest", &bad)
        .await
        .unwrap();
    let env = Env::new();
    let error = pull_image(&env, &reference).await.unwrap_err();
    let PullError::DiffId { expected, .. } = &error else {
        panic!("expected a diff ID mismatch, got {error:?}");
    };
    assert_eq!(expected, &wrong);
    assert!(error.to_string().contains("diff ID mismatch"), "{error}");
    assert_eq!(env.store.layer_snapshot(&wrong).unwrap(), None);

    let counted = with_diff_ids(&good, Vec::new());
    let reference = testkit::push_image(&registry.host(), "counted:latest", &counted)
        .await
        .unwrap();
    let error = pull_image(&env, &reference).await.unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("1 layers but 0 diff IDs in the config"),
        "{error}"
    );
}
