//! Building an image from a result: layer blobs, config and manifest in the content store.
//!
//! Each snapshot of the result's chain is one layer. A snapshot whose layer blob is already
//! recorded (pulled base layers carry their original compressed blob; snapshots exported before
//! carry the blob computed then) reuses it; otherwise its layer directory is written as a
//! deterministic tar ([`store::write_layer`]), hashed (the diff ID) and compressed in one pass
//! into the content store, and the blob is recorded for the next export.
//!
//! The config's history is then aligned with the layers as BuildKit's image writer does: every
//! history entry without `empty_layer` stands for one layer, in order. Layers with no entries
//! at all (a `RUN true`) are dropped from the image and their history entry is marked
//! `empty_layer`, so `rootfs.diff_ids`, the manifest's layers and the non-empty history entries
//! always match one to one.

use std::io::{self, BufWriter, Read, Write};

use flate2::GzBuilder;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use oci::media_type::{self, Compression as BlobCompression};
use oci::{Descriptor, Digest, History, ImageManifest, RootFs, Sha256Writer};
use store::{Ingest, LayerBlob, SnapshotId, SnapshotInfo, Store};

use crate::{Compression, Error, OciOptions, Source};
use oci::time::rfc3339;

/// Comment of the history entries added for layers the frontend's history does not cover.
pub(crate) const SYNTHETIC_COMMENT: &str = "kiln.exporter.image.v0";

/// The image [`build_image`] wrote into the content store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// The manifest blob (`application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Descriptor,
    /// The config blob (`application/vnd.oci.image.config.v1+json`).
    pub config: Descriptor,
    /// The layer blobs, base first, as listed in the manifest.
    pub layers: Vec<Descriptor>,
}

/// Computes (or reuses) the layer blob of every snapshot of the result, writes the config and
/// manifest blobs into the content store and returns their descriptors.
///
/// The config is `source.image` with history aligned to the layers (see the module docs),
/// missing history times filled in, `rootfs.diff_ids` set and `created` set when absent:
/// - A non-empty history entry without `created` gets its snapshot's commit time; an
///   `empty_layer` entry without one gets the time of the nearest earlier entry (or, at the
///   start, of the first entry that has one). With `options.epoch`, every entry without a time
///   gets the epoch instead, and so does the image.
/// - The image's `created` is kept when the frontend set it; otherwise it is the time of the
///   last history entry, or 1970-01-01T00:00:00Z for an image without history.
///
/// Times therefore come from the snapshots, never from the clock: a fully cached rebuild
/// produces the same manifest digest. Layer media types are always the OCI ones; a reused
/// Docker-typed blob is listed under the equivalent OCI type (the bytes are the same).
pub fn build_image(source: &Source<'_>, options: &OciOptions) -> Result<ImageSummary, Error> {
    let store = source.store;
    let chain = match source.result {
        Some(id) => store.chain(id).map_err(|source| Error::Snapshot { id, source })?,
        None => Vec::new(),
    };
    let mut layers = Vec::with_capacity(chain.len());
    for info in &chain {
        layers.push(layer(store, info, options.compression)?);
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
    config.created = Some(image_created(
        config.created.take(),
        &config.history,
        options.epoch,
    ));

    let config_bytes = serde_json::to_vec(&config).map_err(|source| Error::Encode {
        what: "config",
        source,
    })?;
    let config = Descriptor::new(
        media_type::OCI_CONFIG,
        write_blob(store, &config_bytes, "config")?,
        len(&config_bytes),
    );
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
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
        manifest: Descriptor::new(media_type::OCI_MANIFEST, manifest_digest, len(&manifest_bytes)),
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
    /// The blob with its OCI media type; for empty layers, the recorded blob as is.
    descriptor: Descriptor,
    empty: bool,
}

/// The layer of snapshot `info`: its recorded blob, converted to `compression` where possible,
/// or a newly computed (and recorded) blob.
fn layer(store: &Store, info: &SnapshotInfo, compression: Compression) -> Result<Layer, Error> {
    let id = info.id;
    let blob = match &info.blob {
        Some(blob) if !store.content().contains(&blob.descriptor.digest) => {
            return Err(Error::MissingBlob {
                digest: blob.descriptor.digest.clone(),
                id,
            });
        }
        Some(blob) => blob.clone(),
        None => {
            let blob = compute_blob(store, id, compression)?;
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
    let descriptor = match (have, compression) {
        (BlobCompression::Gzip, Compression::Uncompressed) | (BlobCompression::None, Compression::Gzip) => {
            convert(store, id, &descriptor, &diff_id, compression)?
        }
        (BlobCompression::Gzip, _) => {
            Descriptor::new(media_type::OCI_LAYER_GZIP, descriptor.digest, descriptor.size)
        }
        (BlobCompression::None, _) => {
            Descriptor::new(media_type::OCI_LAYER_TAR, descriptor.digest, descriptor.size)
        }
        // No zstd codec in kiln yet: such blobs (pulled base layers) stay as they are.
        (BlobCompression::Zstd, _) => {
            Descriptor::new(media_type::OCI_LAYER_ZSTD, descriptor.digest, descriptor.size)
        }
    };
    Ok(Layer {
        diff_id,
        descriptor,
        empty: false,
    })
}

fn oci_layer_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Gzip => media_type::OCI_LAYER_GZIP,
        Compression::Uncompressed => media_type::OCI_LAYER_TAR,
    }
}

/// Writes the layer tar of snapshot `id` into a new blob, hashing the uncompressed tar on the
/// way (the diff ID) and compressing it in the same pass.
fn compute_blob(store: &Store, id: SnapshotId, compression: Compression) -> Result<LayerBlob, Error> {
    let ingest = store.content().ingest().map_err(|source| Error::Store {
        action: "start a layer blob",
        id,
        source,
    })?;
    let mut tee = Sha256Writer::new(Sink::new(ingest, compression));
    let stats = store::write_layer(&store.layer_dir(id), &mut tee)
        .map_err(|source| Error::WriteLayer { id, source })?;
    let (diff_id, _, sink) = tee.finish();
    let ingest = sink.finish().map_err(|source| Error::Compress {
        action: "finish the",
        id,
        source,
    })?;
    let size = ingest.written();
    let digest = ingest.commit(None).map_err(|source| Error::Store {
        action: "store the layer blob",
        id,
        source,
    })?;
    Ok(LayerBlob {
        diff_id,
        descriptor: Descriptor::new(oci_layer_type(compression), digest, size),
        empty: stats.is_empty,
    })
}

/// Rewrites a gzip blob as a plain tar or the other way round. The result is not recorded:
/// a snapshot keeps one canonical blob and other compressions are derived from it.
fn convert(
    store: &Store,
    id: SnapshotId,
    blob: &Descriptor,
    diff_id: &Digest,
    to: Compression,
) -> Result<Descriptor, Error> {
    let file = store
        .content()
        .open_blob(&blob.digest)
        .map_err(|source| Error::Store {
            action: "open the layer blob",
            id,
            source,
        })?;
    let (mut reader, action): (Box<dyn Read>, _) = match to {
        // Multi-member gzip streams (pigz) are valid layers too.
        Compression::Uncompressed => (Box::new(MultiGzDecoder::new(file)), "decompress the"),
        Compression::Gzip => (Box::new(file), "compress the"),
    };
    let ingest = store.content().ingest().map_err(|source| Error::Store {
        action: "start a layer blob",
        id,
        source,
    })?;
    let mut sink = Sink::new(ingest, to);
    io::copy(&mut reader, &mut sink).map_err(|source| Error::Compress { action, id, source })?;
    let ingest = sink
        .finish()
        .map_err(|source| Error::Compress { action, id, source })?;
    let size = ingest.written();
    // A decompressed blob is the layer tar itself, so its digest must be the diff ID.
    let expected = (to == Compression::Uncompressed).then_some(diff_id);
    let digest = ingest.commit(expected).map_err(|source| Error::Store {
        action: "store the converted layer blob",
        id,
        source,
    })?;
    Ok(Descriptor::new(oci_layer_type(to), digest, size))
}

/// Where layer bytes go: compressed or not, into a content store ingest.
enum Sink {
    Gzip(GzEncoder<Ingest>),
    Plain(BufWriter<Ingest>),
}

impl Sink {
    fn new(ingest: Ingest, compression: Compression) -> Sink {
        match compression {
            // No time, no file name and the "unknown" OS byte: the header never varies.
            Compression::Gzip => Sink::Gzip(
                GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(ingest, flate2::Compression::default()),
            ),
            Compression::Uncompressed => Sink::Plain(BufWriter::with_capacity(64 * 1024, ingest)),
        }
    }

    /// Flushes everything (the gzip trailer included) and returns the ingest to commit.
    fn finish(self) -> io::Result<Ingest> {
        match self {
            Sink::Gzip(encoder) => encoder.finish(),
            Sink::Plain(writer) => writer.into_inner().map_err(io::IntoInnerError::into_error),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Gzip(w) => w.write(buf),
            Sink::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Gzip(w) => w.flush(),
            Sink::Plain(w) => w.flush(),
        }
    }
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

    // Metadata-only steps take the time of the step before them (or, at the very start, of the
    // first step that has one), so their times never depend on when the export ran.
    let newest = layers.iter().map(|l| l.created).max().unwrap_or(0);
    let mut last = match epoch {
        Some(epoch) => rfc3339(epoch),
        None => history
            .iter()
            .find_map(|h| h.created.clone())
            .unwrap_or_else(|| rfc3339(newest)),
    };
    for h in &mut history {
        match &h.created {
            Some(created) if epoch.is_none() => last = created.clone(),
            Some(_) => {}
            None => h.created = Some(last.clone()),
        }
    }
    history
}

/// The image's creation time: the epoch if given, else what the frontend set, else the time of
/// the last history entry, else the Unix epoch.
fn image_created(current: Option<String>, history: &[History], epoch: Option<i64>) -> String {
    if let Some(epoch) = epoch {
        return rfc3339(epoch);
    }
    current
        .or_else(|| history.last().and_then(|h| h.created.clone()))
        .unwrap_or_else(|| rfc3339(0))
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
                row("ENV A=1", 100, true),
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
        assert_eq!(image_created(None, &out, None), rfc3339(200));

        let out = normalize_history(&history, &layers, Some(7));
        let times: Vec<_> = out.iter().map(|h| h.created.clone().unwrap()).collect();
        assert_eq!(times, [rfc3339(7), old, rfc3339(7), rfc3339(7)]);
        assert_eq!(
            image_created(Some("2030-01-01T00:00:00Z".into()), &out, Some(7)),
            rfc3339(7)
        );
    }

    #[test]
    fn image_time_prefers_the_frontend_then_history() {
        assert_eq!(image_created(Some("x".into()), &[], None), "x");
        assert_eq!(image_created(None, &[], None), "1970-01-01T00:00:00Z");
        let history = [History {
            created: Some("t".into()),
            ..History::default()
        }];
        assert_eq!(image_created(None, &history, None), "t");
    }
}
