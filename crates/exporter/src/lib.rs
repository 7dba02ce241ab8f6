//! Exporters: turn a solved build result into something a user can take away.
//!
//! A build ends with a result filesystem (a committed [`store`] snapshot, or nothing at all) and
//! the image config the frontend produced. This crate writes that result out, as BuildKit's
//! exporters do:
//! - [`build_image`] is the shared part of every image-producing exporter: it computes (or
//!   reuses) one layer blob per snapshot of the result's chain, aligns the config's history with
//!   those layers, and writes the config and manifest blobs into the content store.
//! - [`layer_chain`] gives the same layer blobs for a remote cache export.
//! - [`write_oci_tar`] writes an OCI image-layout tarball of that image.
//! - [`write_docker_tar`] writes the same tarball plus the `manifest.json` of `docker load`,
//!   with Docker media types unless asked for OCI ones ([`OciOptions::oci_media_types`]).
//! - [`write_local`] copies the result filesystem into a directory.
//! - [`write_tar`] writes the result filesystem as one tar stream.
//!
//! Invariants:
//! - Exporters read results and never change cache records or snapshots. The one thing they
//!   record is the layer blob computed for a snapshot ([`store::Store::set_layer_blob`]), so
//!   that later exports reuse it instead of compressing again.
//! - Output is byte-for-byte deterministic for the same input: layer tars are deterministic
//!   ([`fsops::layer::write_layer`]), gzip headers carry no time or name, times in the config come from
//!   the snapshots (or `SOURCE_DATE_EPOCH`), never from the clock, and tarball entries are in a
//!   fixed order with fixed metadata. A fully cached rebuild yields the same image digest.
//! - Layers are streamed from disk to disk; no layer is ever held in memory whole (parallel gzip
//!   holds at most two 4 MiB chunks per core).
//!
//! Deliberately not done here: pushing to a registry (the engine pushes what [`build_image`]
//! stored), multi-platform indexes, attestations, and
//! parsing exporter attributes (the CLI turns them into the typed options used here).

#![forbid(unsafe_code)]

mod compress;
mod image;
mod local;
mod oci_tar;

use std::path::PathBuf;

use oci::{Digest, ImageConfig};
use store::{SnapshotId, Store};

pub use image::{ChainBlob, ImageSummary, build_image, directory_blob, layer_chain};
pub use local::{write_local, write_tar};
pub use oci_tar::{write_docker_tar, write_oci_tar};

/// What to export.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The store holding the result.
    pub store: &'a Store,
    /// The result filesystem: a committed snapshot, or `None` for an empty filesystem.
    pub result: Option<SnapshotId>,
    /// The image config produced by the frontend: history filled in (one entry per step, with
    /// `empty_layer` set for metadata-only steps), `rootfs.diff_ids` empty. Image exporters fill
    /// in the diff IDs and missing times and set `created` from the history (whatever it was);
    /// directory and tar exporters ignore it.
    pub image: &'a ImageConfig,
}

/// How new layer blobs are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// gzip at the default level (`application/vnd.oci.image.layer.v1.tar+gzip`).
    #[default]
    Gzip,
    /// Plain tar (`application/vnd.oci.image.layer.v1.tar`).
    Uncompressed,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

/// Options of the image exporters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OciOptions {
    /// The image name, e.g. `example.com/app:v1`; written as annotations of the index entry.
    pub name: Option<String>,
    /// Compression of the layers in the image. The build's own layers are converted when their
    /// recorded blob is in another compression, and so are blobs between gzip and plain tar;
    /// base image layers in zstd or (for zstd) gzip keep their blob unless `force_compression`.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH` (Unix seconds): when set, used for every history entry that has no
    /// time yet instead of the snapshots' commit times (and so, normally, for the image's
    /// creation time, the last entry's).
    pub epoch: Option<i64>,
    /// The exporter attribute `oci-mediatypes`: label the manifest, config and layers with OCI
    /// media types (`Some(true)`) or Docker's schema 2 ones (`Some(false)`). `None` takes the
    /// exporter's default, BuildKit's: OCI for [`write_oci_tar`] and [`build_image`] (pushes),
    /// Docker for [`write_docker_tar`]. Only the labels differ: the config and layer bytes are
    /// the same either way.
    pub oci_media_types: Option<bool>,
    /// `compression-level=`: the codec's level for blobs made now (gzip 0–9, zstd 1–22);
    /// `None`: the default (gzip 6, zstd 3).
    pub compression_level: Option<i32>,
    /// `force-compression=true`: base image layers whose blobs are in another compression are
    /// converted too (the build's own layers always are).
    pub force_compression: bool,
    /// `rewrite-timestamp=true`: the build's own layers are written with no mtime later than
    /// [`OciOptions::epoch`] (ignored without one).
    pub rewrite_timestamp: bool,
    /// BuildKit's inline cache to put into the config (`--cache-to type=inline`); `None` leaves
    /// it out, also when the frontend's config (copied from a base image) had one.
    pub inline_cache: Option<String>,
}

/// Errors of the exporters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory (a cache mount's) could not be written as a layer blob.
    #[error("failed to write {} as a layer blob", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot of the result could not be looked up.
    #[error("failed to read snapshot {id}")]
    Snapshot {
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// The result could not be mounted.
    #[error("failed to mount snapshot {id}")]
    Mount {
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// Writing the layer tar of a snapshot failed.
    #[error("failed to write the layer of snapshot {id}")]
    WriteLayer {
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: fsops::layer::LayerError,
    },
    /// Writing the result filesystem as a tar failed.
    #[error("failed to write the filesystem of snapshot {id} as a tar")]
    WriteTar {
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: fsops::layer::LayerError,
    },
    /// A content store or metadata operation failed.
    #[error("failed to {action} for snapshot {id}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// Compressing or decompressing a layer failed.
    #[error("failed to {action} layer of snapshot {id}")]
    Compress {
        /// What was being done.
        action: &'static str,
        /// The snapshot.
        id: SnapshotId,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A recorded layer blob is not in the content store.
    #[error("layer blob {digest} of snapshot {id} is missing from the content store")]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// The snapshot.
        id: SnapshotId,
    },
    /// A recorded layer blob has a media type kiln cannot put into an image.
    #[error("layer blob {digest} of snapshot {id} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The blob.
        digest: Digest,
        /// The snapshot.
        id: SnapshotId,
        /// Its media type.
        media_type: String,
    },
    /// Encoding a JSON document failed.
    #[error("failed to encode the image {what}")]
    Encode {
        /// Which document.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Storing the config or manifest blob failed.
    #[error("failed to store the image {what}")]
    StoreBlob {
        /// Which document.
        what: &'static str,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// The image name is not a valid reference.
    #[error("invalid image name {name:?}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: oci::ReferenceError,
    },
    /// A blob could not be read from the content store.
    #[error("failed to read blob {digest} from the content store")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// A blob in the content store does not have the size or digest its name promises.
    #[error("blob {digest} in the content store is corrupt: {reason}")]
    CorruptBlob {
        /// The blob.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// Writing the output stream failed.
    #[error("failed to write {entry} to the output")]
    Output {
        /// The tarball entry being written.
        entry: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A filesystem operation of the local exporter failed.
    #[error("failed to {action} {path}")]
    Local {
        /// What was being done.
        action: &'static str,
        /// The path (in the destination, or in the result for reads).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
