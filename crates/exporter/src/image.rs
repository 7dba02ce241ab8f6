//! Building an image from a result: layer blobs, config and manifest in the content store.
//!
//! Each snapshot of the result's chain is one layer. A snapshot whose layer blob is already
//! recorded (pulled base layers carry their original compressed blob; snapshots exported before
//! carry the blob computed then) reuses it; otherwise its layer directory is written as a
//! deterministic tar ([`fsops::layer::write_layer`]), hashed (the diff ID) and compressed in one pass
//! into the content store, and the blob is recorded for the next export.
//!
//! The config's history is then aligned with the layers as BuildKit's image writer does: every
//! history entry without `empty_layer` stands for one layer, in order. Layers with no entries
//! at all (a `RUN true`) are dropped from the image and their history entry is marked
//! `empty_layer`, so `rootfs.diff_ids`, the manifest's layers and the non-empty history entries
//! always match one to one.

use std::io;

use oci::media_type::{self, Compression as BlobCompression};
use oci::{Descriptor, Digest, History, ImageManifest, RootFs, Sha256Writer};
use store::{LayerBlob, SnapshotId, SnapshotInfo, Store};

use crate::compress::{self, Sink};
use crate::{Compression, Error, OciOptions, Source};
use oci::time::rfc3339;

/// Comment of the history entries added for layers the frontend's history does not cover.
pub(crate) const SYNTHETIC_COMMENT: &str = "kiln.exporter.image.v0";

/// The image [`build_image`] wrote into the content store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The manifest blob (`application/vnd.oci.image.manifest.v1+json`, or Docker's
    /// `application/vnd.docker.distribution.manifest.v2+json`).
    pub manifest: Descriptor,
    /// The config blob (`application/vnd.oci.image.config.v1+json`, or Docker's
    /// `application/vnd.docker.container.image.v1+json`).
    pub config: Descriptor,
    /// The layer blobs, base first, as listed in the manifest.
    pub layers: Vec<Descriptor>,
}

/// Computes (or reuses) the layer blob of every snapshot of the result, writes the config and
/// manifest blobs into the content store and returns their descriptors.
///
/// The config is `source.image` with history aligned to the layers (see the module docs),
/// missing history times filled in, `rootfs.diff_ids` set and `created` replaced:
/// - A non-empty history entry without `created` gets its snapshot's commit time; an
///   `empty_layer` entry without one gets a neighbour's time, as BuildKit dates them (see
///   `normalize_history`). With `options.epoch` (`SOURCE_DATE_EPOCH`), every entry without a
///   time gets the epoch instead; entries that came with a time (the base image's) keep it.
/// - The image's `created` is the time of the last history entry, so it is the time of the
///   build's last step, never the base image's date the frontend's config started with; for
///   an image without history it is the epoch, or 1970-01-01T00:00:00Z.
///
/// Times therefore come from the snapshots, never from the clock: a fully cached rebuild
/// produces the same manifest digest. Media types are the OCI ones unless
/// `options.oci_media_types` is `Some(false)`; a reused blob is listed under the type of the
/// chosen family for its compression, whatever family it was pulled with (the bytes are the
/// same).
pub fn build_image(source: &Source<'_>, options: &OciOptions) -> Result<ImageSummary, Error> {
    assemble(source, options, options.oci_media_types.unwrap_or(true))
}

/// [`build_image`] with the media-type family decided: OCI types when `oci`, else Docker's.
pub(crate) fn assemble(source: &Source<'_>, options: &OciOptions, oci: bool) -> Result<ImageSummary, Error> {
    let store = source.store;
    let chain = match source.result {
        Some(id) => store.chain(id).map_err(|source| Error::Snapshot { id, source })?,
        None => Vec::new(),
    };
    let plan = LayerPlan::of(options);
    let new = new_layers(&source.image.history, chain.len());
    let mut layers = Vec::with_capacity(chain.len());
    for (info, new) in chain.iter().zip(new) {
        layers.push(layer(store, info, &plan, new, oci)?);
        store::fault::point("export.layer");
    }
    let metas: Vec<LayerMeta<'_>> = chain
        .iter()
        .zip(&layers)
        .map(|(info, layer)| LayerMeta {
            created: info.created,
            description: &info.description,
            empty: layer.empty,
        })
        .collect();

    let mut config = source.image.clone();
    config.history = normalize_history(&source.image.history, &metas, options.epoch);
    let kept: Vec<&Layer> = layers.iter().filter(|l| !l.empty).collect();
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: kept.iter().map(|l| l.diff_id.clone()).collect(),
    };
    config.created = Some(image_created(&config.history, options.epoch));
    config.inline_cache = options.inline_cache.clone();

    let config_bytes = serde_json::to_vec(&config).map_err(|source| Error::Encode {
        what: "config",
        source,
    })?;
    let (manifest_type, config_type) = if oci {
        (media_type::OCI_MANIFEST, media_type::OCI_CONFIG)
    } else {
        (media_type::DOCKER_MANIFEST, media_type::DOCKER_CONFIG)
    };
    let config = Descriptor::new(
        config_type,
        write_blob(store, &config_bytes, "config")?,
        len(&config_bytes),
    );
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.into()),
        config: config.clone(),
        layers: kept.iter().map(|l| l.descriptor.clone()).collect(),
        annotations: Default::default(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Encode {
        what: "manifest",
        source,
    })?;
    let manifest_digest = write_blob(store, &manifest_bytes, "manifest")?;
    Ok(ImageSummary {
        manifest: Descriptor::new(manifest_type, manifest_digest, len(&manifest_bytes)),
        config,
        layers: manifest.layers,
    })
}

fn len(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

fn write_blob(store: &Store, bytes: &[u8], what: &'static str) -> Result<Digest, Error> {
    store
        .content()
        .write(bytes)
        .map_err(|source| Error::StoreBlob { what, source })
}

/// One snapshot's layer as it goes into the image.
struct Layer {
    diff_id: Digest,
    /// The blob with the media type it is listed under; for empty layers, the recorded blob as
    /// is.
    descriptor: Descriptor,
    empty: bool,
}

/// How the layers of one export are made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerPlan {
    pub(crate) compression: Compression,
    pub(crate) level: Option<i32>,
    /// Convert every reused blob to `compression` (`force-compression=true`).
    pub(crate) force: bool,
    /// `rewrite-timestamp=true` with `SOURCE_DATE_EPOCH`: the build's own layers are written
    /// again with no mtime later than this.
    pub(crate) clamp: Option<i64>,
}

impl LayerPlan {
    pub(crate) fn of(options: &OciOptions) -> LayerPlan {
        LayerPlan {
            compression: options.compression,
            level: options.compression_level,
            force: options.force_compression,
            clamp: options.epoch.filter(|_| options.rewrite_timestamp),
        }
    }
}

/// The layer of snapshot `info`, listed under OCI media types when `oci`, else Docker's.
///
/// A layer this build made (`new`), under `rewrite-timestamp`, is written again with clamped
/// times (and not recorded: it depends on the epoch). Otherwise the recorded blob is reused, or a
/// blob is computed (and recorded) in the plan's compression; a reused blob in another
/// compression is converted when the layer is new or `force-compression` asks, and also between
/// gzip and plain tar, as kiln always did; a base layer otherwise keeps its blob, as BuildKit's.
fn layer(store: &Store, info: &SnapshotInfo, plan: &LayerPlan, new: bool, oci: bool) -> Result<Layer, Error> {
    let id = info.id;
    if let (Some(epoch), true) = (plan.clamp, new) {
        let blob = compute_blob(store, id, plan, Some(epoch))?;
        return Ok(Layer {
            diff_id: blob.diff_id,
            descriptor: Descriptor::new(
                layer_type(plan.compression.into(), oci),
                blob.descriptor.digest,
                blob.descriptor.size,
            ),
            empty: blob.empty,
        });
    }
    let blob = match &info.blob {
        Some(blob) if !store.content().contains(&blob.descriptor.digest) => {
            return Err(Error::MissingBlob {
                digest: blob.descriptor.digest.clone(),
                id,
            });
        }
        Some(blob) => blob.clone(),
        None => {
            let blob = compute_blob(store, id, plan, None)?;
            store
                .set_layer_blob(id, blob.clone())
                .map_err(|source| Error::Store {
                    action: "record the layer blob",
                    id,
                    source,
                })?;
            blob
        }
    };
    if blob.empty {
        // Dropped from the image, so its media type and compression do not matter.
        return Ok(Layer {
            diff_id: blob.diff_id,
            descriptor: blob.descriptor,
            empty: true,
        });
    }
    let LayerBlob {
        diff_id, descriptor, ..
    } = blob;
    let have =
        media_type::layer_compression(&descriptor.media_type).ok_or_else(|| Error::UnsupportedMediaType {
            digest: descriptor.digest.clone(),
            id,
            media_type: descriptor.media_type.clone(),
        })?;
    let want: BlobCompression = plan.compression.into();
    let gzip_or_tar = matches!(
        (have, want),
        (BlobCompression::Gzip, BlobCompression::None) | (BlobCompression::None, BlobCompression::Gzip)
    );
    let descriptor = if have != want && (new || plan.force || gzip_or_tar) {
        let converted = convert(store, id, &descriptor, &diff_id, have, plan)?;
        Descriptor::new(layer_type(want, oci), converted.digest, converted.size)
    } else {
        Descriptor::new(layer_type(have, oci), descriptor.digest, descriptor.size)
    };
    Ok(Layer {
        diff_id,
        descriptor,
        empty: false,
    })
}

/// Which layers of a chain of `n` the build made: those paired (as `normalize_history` pairs
/// them) with a history entry the frontend left undated. Base image entries come with their
/// times; layers without an entry are base layers.
fn new_layers(history: &[History], n: usize) -> Vec<bool> {
    let entries: Vec<&History> = history.iter().filter(|h| !h.empty_layer).collect();
    // Surplus entries are the earliest ones (see `normalize_history`).
    let entries = &entries[entries.len().saturating_sub(n)..];
    let mut out = vec![false; n - entries.len()];
    out.extend(entries.iter().map(|h| h.created.is_none()));
    out
}

/// One non-empty layer of a snapshot's chain, as a remote cache lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBlob {
    /// The blob in the content store, under its OCI media type.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed layer.
    pub diff_id: Digest,
    /// When the snapshot was committed (Unix seconds).
    pub created: i64,
}

/// The layer blobs of the chain of snapshots ending at `top`, base first, empty layers left out:
/// each snapshot's recorded blob, or a new blob computed once and recorded as for images, in
/// `options`' compression and level (recorded blobs in another compression are converted with
/// `force_compression`, and between gzip and plain tar).
pub fn layer_chain(store: &Store, top: SnapshotId, options: &OciOptions) -> Result<Vec<ChainBlob>, Error> {
    let chain = store
        .chain(top)
        .map_err(|source| Error::Snapshot { id: top, source })?;
    let mut out = Vec::with_capacity(chain.len());
    let plan = LayerPlan {
        clamp: None,
        ..LayerPlan::of(options)
    };
    for info in &chain {
        let layer = layer(store, info, &plan, false, true)?;
        if !layer.empty {
            out.push(ChainBlob {
                descriptor: layer.descriptor,
                diff_id: layer.diff_id,
                created: info.created,
            });
        }
    }
    Ok(out)
}

impl From<Compression> for BlobCompression {
    fn from(compression: Compression) -> BlobCompression {
        match compression {
            Compression::Gzip => BlobCompression::Gzip,
            Compression::Zstd => BlobCompression::Zstd,
            Compression::Uncompressed => BlobCompression::None,
        }
    }
}

/// The media type of a layer blob with `compression`: OCI's when `oci`, else Docker's (for
/// zstd, the name containerd and BuildKit use, as Docker's specification has none).
fn layer_type(compression: BlobCompression, oci: bool) -> &'static str {
    match (compression, oci) {
        (BlobCompression::Gzip, true) => media_type::OCI_LAYER_GZIP,
        (BlobCompression::None, true) => media_type::OCI_LAYER_TAR,
        (BlobCompression::Zstd, true) => media_type::OCI_LAYER_ZSTD,
        (BlobCompression::Gzip, false) => media_type::DOCKER_LAYER_GZIP,
        (BlobCompression::None, false) => media_type::DOCKER_LAYER_TAR,
        (BlobCompression::Zstd, false) => media_type::DOCKER_LAYER_ZSTD,
    }
}

/// Writes the layer tar of snapshot `id` into a new blob, hashing the uncompressed tar on the
/// way (the diff ID) and compressing it in the same pass; mtimes later than `clamp` are written
/// as `clamp`.
fn compute_blob(
    store: &Store,
    id: SnapshotId,
    plan: &LayerPlan,
    clamp: Option<i64>,
) -> Result<LayerBlob, Error> {
    let ingest = store.content().ingest().map_err(|source| Error::Store {
        action: "start a layer blob",
        id,
        source,
    })?;
    let compress_error = |action| move |source| Error::Compress { action, id, source };
    let sink = Sink::new(ingest, plan.compression, plan.level).map_err(compress_error("start the"))?;
    let mut tee = Sha256Writer::new(sink);
    let clamp = clamp.map(|c| u64::try_from(c).unwrap_or(0));
    let stats = fsops::layer::write_layer_clamped(&store.layer_dir(id), &mut tee, clamp)
        .map_err(|source| Error::WriteLayer { id, source })?;
    let (diff_id, _, sink) = tee.finish();
    let ingest = sink.finish().map_err(compress_error("finish the"))?;
    let size = ingest.written();
    let digest = ingest.commit(None).map_err(|source| Error::Store {
        action: "store the layer blob",
        id,
        source,
    })?;
    Ok(LayerBlob {
        diff_id,
        // Recorded under the OCI type; each image lists it under the family it uses.
        descriptor: Descriptor::new(layer_type(plan.compression.into(), true), digest, size),
        empty: stats.is_empty,
    })
}

/// A gzip layer blob of the plain directory `dir` (a cache mount's contents), written into the
/// content store: its descriptor (an OCI gzip layer) and diff ID.
pub fn directory_blob(store: &Store, dir: &std::path::Path) -> Result<(Descriptor, Digest), Error> {
    let failed = |source| Error::Directory {
        path: dir.to_path_buf(),
        source,
    };
    let ingest = store.content().ingest().map_err(|source| Error::StoreBlob {
        what: "cache mount",
        source,
    })?;
    let sink = Sink::new(ingest, Compression::Gzip, None).map_err(failed)?;
    let mut tee = Sha256Writer::new(sink);
    fsops::layer::write_layer(dir, &mut tee).map_err(|e| failed(std::io::Error::other(e)))?;
    let (diff_id, _, sink) = tee.finish();
    let ingest = sink.finish().map_err(failed)?;
    let size = ingest.written();
    let digest = ingest.commit(None).map_err(|source| Error::StoreBlob {
        what: "cache mount",
        source,
    })?;
    Ok((Descriptor::new(media_type::OCI_LAYER_GZIP, digest, size), diff_id))
}

/// Rewrites a blob compressed as `from` in the plan's compression. The result is not recorded:
/// a snapshot keeps one canonical blob and other compressions are derived from it.
fn convert(
    store: &Store,
    id: SnapshotId,
    blob: &Descriptor,
    diff_id: &Digest,
    from: BlobCompression,
    plan: &LayerPlan,
) -> Result<Descriptor, Error> {
    let file = store
        .content()
        .open_blob(&blob.digest)
        .map_err(|source| Error::Store {
            action: "open the layer blob",
            id,
            source,
        })?;
    let action = "convert the";
    let compress_error = |source| Error::Compress { action, id, source };
    let mut reader = compress::decoder(file, from).map_err(compress_error)?;
    let ingest = store.content().ingest().map_err(|source| Error::Store {
        action: "start a layer blob",
        id,
        source,
    })?;
    let mut sink = Sink::new(ingest, plan.compression, plan.level).map_err(compress_error)?;
    io::copy(&mut reader, &mut sink).map_err(compress_error)?;
    let ingest = sink.finish().map_err(compress_error)?;
    let size = ingest.written();
    // A decompressed blob is the layer tar itself, so its digest must be the diff ID.
    let expected = (plan.compression == Compression::Uncompressed).then_some(diff_id);
    let digest = ingest.commit(expected).map_err(|source| Error::Store {
        action: "store the converted layer blob",
        id,
        source,
    })?;
    Ok(Descriptor::new(
        layer_type(plan.compression.into(), true),
        digest,
        size,
    ))
}

/// What history alignment needs to know about one snapshot of the chain.
struct LayerMeta<'a> {
    /// Commit time, Unix seconds.
    created: i64,
    description: &'a str,
    /// The layer has no entries and is left out of the image.
    empty: bool,
}

/// Aligns `history` with `layers` (base first) and fills in missing times.
///
/// If the history claims fewer layers than there are, entries are added at the start for the
/// lowest layers (a base image without history); if it claims more, the earliest surplus
/// entries are marked `empty_layer`. Either way the latest entries, which describe the steps of
/// this build, stay paired with the latest layers. BuildKit aligns at the bottom instead
/// (appending entries, trimming the latest), which mislabels the build's own steps when a base
/// image's history is incomplete.
fn normalize_history(history: &[History], layers: &[LayerMeta<'_>], epoch: Option<i64>) -> Vec<History> {
    let mut history = history.to_vec();
    let claimed = history.iter().filter(|h| !h.empty_layer).count();
    if claimed > layers.len() {
        let surplus = claimed - layers.len();
        for h in history.iter_mut().filter(|h| !h.empty_layer).take(surplus) {
            h.empty_layer = true;
        }
    } else if claimed < layers.len() {
        let synthetic = layers[..layers.len() - claimed].iter().map(|layer| History {
            created_by: (!layer.description.is_empty()).then(|| layer.description.to_string()),
            comment: Some(SYNTHETIC_COMMENT.into()),
            ..History::default()
        });
        history.splice(0..0, synthetic);
    }

    // Now the non-empty entries and the layers correspond one to one, in order.
    let mut paired = layers.iter();
    for h in history.iter_mut().filter(|h| !h.empty_layer) {
        let Some(layer) = paired.next() else { break };
        if h.created.is_none() {
            h.created = Some(rfc3339(epoch.unwrap_or(layer.created)));
        }
        if layer.empty {
            h.empty_layer = true;
        }
    }

    if let Some(epoch) = epoch {
        // The frontend dates its own steps with SOURCE_DATE_EPOCH in BuildKit; kiln's frontend
        // leaves them empty and they get it here. Base-image entries keep their own times.
        for h in history.iter_mut().filter(|h| h.created.is_none()) {
            h.created = Some(rfc3339(epoch));
        }
        return history;
    }
    // What is left are metadata-only steps; they are dated like BuildKit dates them, never by
    // the clock. Entries before the first of them stay as they are. The first run of them takes
    // the time of the first dated entry after it (the first layer of this build), so that an
    // `ENV` right after `FROM` is not dated like the base image; later ones take the time of the
    // latest dated entry before them. With nothing dated after the first run, it takes the time
    // of the last dated entry before it.
    let Some(first_gap) = history.iter().position(|h| h.created.is_none()) else {
        return history;
    };
    let newest = layers.iter().map(|l| l.created).max().unwrap_or(0);
    let mut last = history[first_gap..]
        .iter()
        .find_map(|h| h.created.clone())
        .or_else(|| history[..first_gap].iter().rev().find_map(|h| h.created.clone()))
        .unwrap_or_else(|| rfc3339(newest));
    for h in &mut history[first_gap..] {
        match &h.created {
            Some(created) => last = created.clone(),
            None => h.created = Some(last.clone()),
        }
    }
    history
}

/// The image's creation time: the time of the last history entry (which, once the history is
/// normalized, every entry has), as BuildKit's image exporter records it; for an image without
/// history, `epoch` or else the Unix epoch.
///
/// A `created` coming with the config is not kept: the frontend's config starts as a copy of
/// the base image's, so it would carry the base image's date. (BuildKit's Dockerfile frontend
/// drops it for the same reason, and its exporter then takes the last history entry's.)
fn image_created(history: &[History], epoch: Option<i64>) -> String {
    history
        .last()
        .and_then(|h| h.created.clone())
        .unwrap_or_else(|| rfc3339(epoch.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(created_by: &str, empty_layer: bool) -> History {
        History {
            created_by: Some(created_by.into()),
            empty_layer,
            ..History::default()
        }
    }

    fn meta(created: i64, description: &str, empty: bool) -> LayerMeta<'_> {
        LayerMeta {
            created,
            description,
            empty,
        }
    }

    fn summary(history: &[History]) -> Vec<(String, String, bool)> {
        history
            .iter()
            .map(|h| {
                (
                    h.created_by.clone().unwrap_or_default(),
                    h.created.clone().unwrap_or_default(),
                    h.empty_layer,
                )
            })
            .collect()
    }

    fn row(created_by: &str, created: i64, empty: bool) -> (String, String, bool) {
        (created_by.into(), rfc3339(created), empty)
    }

    #[test]
    fn pairs_entries_with_layers_and_marks_empty_ones() {
        let history = [
            entry("ADD base", false),
            entry("ENV A=1", true),
            entry("RUN make", false),
            entry("RUN true", false),
        ];
        let layers = [
            meta(100, "base", false),
            meta(200, "make", false),
            meta(300, "true", true),
        ];
        let out = normalize_history(&history, &layers, None);
        assert_eq!(
            summary(&out),
            [
                row("ADD base", 100, false),
                row("ENV A=1", 200, true),
                row("RUN make", 200, false),
                row("RUN true", 300, true)
            ]
        );
    }

    #[test]
    fn adds_entries_for_base_layers_without_history() {
        let history = [entry("RUN make", false), entry("CMD x", true)];
        let layers = [
            meta(10, "pulled layer", false),
            meta(20, "", false),
            meta(30, "make", false),
        ];
        let out = normalize_history(&history, &layers, None);
        assert_eq!(
            summary(&out),
            [
                row("pulled layer", 10, false),
                row("", 20, false),
                row("RUN make", 30, false),
                row("CMD x", 30, true)
            ]
        );
        assert_eq!(out[0].comment.as_deref(), Some(SYNTHETIC_COMMENT));
        assert_eq!(out[1].created_by, None);
        assert_eq!(out[2].comment, None);
    }

    #[test]
    fn marks_earliest_surplus_entries_empty() {
        let history = [
            entry("a", false),
            entry("b", false),
            entry("c", true),
            entry("d", false),
        ];
        let layers = [meta(50, "d", false)];
        let out = normalize_history(&history, &layers, None);
        // `d` keeps the one layer; the rest are metadata-only and take the first known time.
        assert_eq!(
            summary(&out),
            [
                row("a", 50, true),
                row("b", 50, true),
                row("c", 50, true),
                row("d", 50, false)
            ]
        );
        let out = normalize_history(&history, &[], None);
        assert!(
            out.iter()
                .all(|h| h.empty_layer && h.created.as_deref() == Some("1970-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn keeps_existing_times_and_uses_the_epoch_for_missing_ones() {
        let mut history = vec![
            entry("FROM", true),
            entry("ADD", false),
            entry("ENV", true),
            entry("RUN", false),
        ];
        history[1].created = Some("2001-01-01T00:00:00Z".into());
        let layers = [meta(100, "add", false), meta(200, "run", false)];
        let out = normalize_history(&history, &layers, None);
        let old = "2001-01-01T00:00:00Z".to_string();
        let times: Vec<_> = out.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(times, [old.clone(), old.clone(), old.clone(), rfc3339(200)]);
        assert_eq!(image_created(&out, None), rfc3339(200));

        let out = normalize_history(&history, &layers, Some(7));
        let times: Vec<_> = out.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(times, [rfc3339(7), old, rfc3339(7), rfc3339(7)]);
        assert_eq!(image_created(&out, Some(7)), rfc3339(7));
    }

    #[test]
    fn metadata_steps_are_dated_by_the_first_new_layer_then_the_latest() {
        let dated = |created_by: &str, year: u32| History {
            created: Some(format!("{year}-01-01T00:00:00Z")),
            ..entry(created_by, false)
        };
        let history = [
            dated("base 1", 2020),
            dated("base 2", 2021),
            entry("ENV A=1", true),
            entry("RUN make", false),
            entry("CMD x", true),
            entry("RUN test", false),
            entry("USER u", true),
        ];
        let layers = [
            meta(10, "b1", false),
            meta(20, "b2", false),
            meta(300, "make", false),
            meta(400, "test", false),
        ];
        let out = normalize_history(&history, &layers, None);
        let times: Vec<String> = out.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(
            times,
            [
                "2020-01-01T00:00:00Z".to_string(),
                "2021-01-01T00:00:00Z".into(),
                rfc3339(300),
                rfc3339(300),
                rfc3339(300),
                rfc3339(400),
                rfc3339(400),
            ]
        );
        assert_eq!(image_created(&out, None), rfc3339(400));

        // Only metadata after the base image: those steps, and the image, take its last time.
        let out = normalize_history(&history[..3], &layers[..2], None);
        assert_eq!(out[2].created.as_deref(), Some("2021-01-01T00:00:00Z"));
        assert_eq!(image_created(&out, None), "2021-01-01T00:00:00Z");
    }

    #[test]
    fn image_time_is_the_last_history_entry() {
        assert_eq!(image_created(&[], None), "1970-01-01T00:00:00Z");
        assert_eq!(image_created(&[], Some(7)), rfc3339(7));
        let history = [
            History {
                created: Some("s".into()),
                ..History::default()
            },
            History {
                created: Some("t".into()),
                ..History::default()
            },
        ];
        assert_eq!(image_created(&history, None), "t");
        assert_eq!(image_created(&history, Some(7)), "t");
    }
}
