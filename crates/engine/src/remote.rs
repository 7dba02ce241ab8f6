//! Remote cache: `--cache-from` imports and `--cache-to` exports, in BuildKit's format
//! ([`oci::cache`]): an OCI image manifest whose config is the cache config and whose layers
//! are the result layers, in a registry or in an OCI image layout directory ([`backend`]).
//!
//! Import is lazy. Before the solve, each source's cache config is read (manifest and config
//! only) into a map of cache key → layer chain ([`Imported`]), which travels in the build's
//! session. When a key misses the local cache, [`lazy::lookup`] answers from the sessions of the
//! builds waiting for it with a [`RemoteRef`]: a result that is known but not downloaded. It is
//! made a snapshot ([`lazy::materialize`]) only when something needs its files: a step that runs on
//! it, a content key that reads it, the export of the build's result. Then its layers are
//! fetched and applied (each layer once, found again by chain ID, as pulls do) and the key is
//! recorded in the local cache. A build whose every step hits downloads only what its output
//! needs.
//!
//! Export ([`export::export`]) runs after the build's outputs: every step whose key was computed in this
//! build and whose result is in the local cache (or known from an import) becomes a record
//! (`mode=max`), or only those whose result is part of the final result's chain (`mode=min`);
//! their layers are computed once per snapshot (as for images) and written with the config.
//!
//! Cache keys are kiln's own (see `solver`): a record's digest is the whole key of its step, so
//! a lookup needs no walk over input links. The links are written too, for BuildKit's layout.
//! Invariants: untrusted cache data is read through [`oci::cache`]'s bounds and digests are
//! verified as blobs are stored; a source that cannot be read is a warning and a miss, never a
//! failed build; nothing of a session (credentials) enters a record.

use std::collections::BTreeMap;
use std::sync::Arc;

use oci::Digest;
use oci::cache::ChainLayer;
use store::SnapshotId;

pub(crate) mod backend;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod lazy;
pub(crate) mod s3;

pub use s3::S3Location;

/// Where a cache object lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    /// A repository in a registry (`type=registry,ref=REF`; `--cache-from REF`).
    Registry {
        /// The reference, e.g. `registry.example.com/app:buildcache`.
        reference: String,
    },
    /// An OCI image layout directory (`type=local,dest=DIR` / `src=DIR`), the cache object
    /// named by the tag `tag` in its `index.json`.
    Local {
        /// The directory.
        dir: std::path::PathBuf,
        /// The tag (`latest` by default).
        tag: String,
    },
    /// Export only: the cache config inside the config of the build's images
    /// (`type=inline`), read back by `--cache-from IMAGE`.
    Inline,
    /// An S3 bucket (`type=s3`).
    S3(Box<S3Location>),
}

impl std::fmt::Display for CacheBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheBackend::Registry { reference } => write!(f, "{reference}"),
            CacheBackend::Local { dir, tag } => write!(f, "{}:{tag}", dir.display()),
            CacheBackend::Inline => write!(f, "inline"),
            CacheBackend::S3(location) => write!(f, "{location}"),
        }
    }
}

/// Which results an export writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Only the layers of the build's result (BuildKit's default).
    #[default]
    Min,
    /// The result of every step, intermediate stages included.
    Max,
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to.
    pub backend: CacheBackend,
    /// `mode=`.
    pub mode: CacheMode,
    /// `ignore-error=true`: a failed export is a warning.
    pub ignore_error: bool,
    /// `image-manifest=` (default true): an image manifest with the cache config as its config;
    /// `false`: BuildKit's older form, an index listing the layers and the config.
    pub image_manifest: bool,
    /// `oci-mediatypes=` (default true): OCI media types; `false`: Docker's (index form only).
    pub oci_media_types: bool,
    /// `compression=` of layers made for the export.
    pub compression: exporter::Compression,
    /// `compression-level=`.
    pub compression_level: Option<i32>,
    /// `force-compression=true`: layers already made in another compression are converted.
    pub force_compression: bool,
    /// `cache-mounts=true`: the contents of the build's cache mounts travel too.
    pub cache_mounts: bool,
}

impl CacheExport {
    /// An export to `backend` with BuildKit's defaults.
    pub fn new(backend: CacheBackend) -> CacheExport {
        CacheExport {
            backend,
            mode: CacheMode::Min,
            ignore_error: false,
            image_manifest: true,
            oci_media_types: true,
            compression: exporter::Compression::Gzip,
            compression_level: None,
            force_compression: false,
            cache_mounts: false,
        }
    }
}

/// A cache source a build imported: its records, and where their blobs are.
pub(crate) struct Imported {
    /// The source, for messages.
    pub(crate) name: String,
    /// Where its layer blobs are fetched from.
    pub(crate) blobs: Arc<dyn sources::pull::BlobSource>,
    /// Layer chain of each cache key.
    pub(crate) chains: BTreeMap<Digest, Arc<[ChainLayer]>>,
    /// Link keys and the cache keys they stand for (see `solver::CacheStore::resolve_link`).
    pub(crate) links: BTreeMap<Digest, Digest>,
    /// Contents of cache mounts exported with the cache (`cache-mounts=true`).
    pub(crate) cache_mounts: Vec<ImportedCacheMount>,
}

/// The contents of a cache mount in an imported cache: a layer blob of its directory.
pub(crate) struct ImportedCacheMount {
    /// The cache's id.
    pub(crate) id: String,
    /// Its base, as [`UsedCacheMount::base`] names it.
    pub(crate) base: String,
    /// The blob (a gzip tar of the directory).
    pub(crate) descriptor: oci::Descriptor,
}

/// A cache mount a build's step used: its id, its base named portably (`scratch`, or the
/// content digest of the selected directory it was seeded from), and its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UsedCacheMount {
    pub(crate) id: String,
    pub(crate) base: String,
    pub(crate) dir: std::path::PathBuf,
}

/// Annotations of a cache-mount blob in a cache object: its id and its base.
pub(crate) const ANNOTATION_CACHE_MOUNT_ID: &str = "dev.kiln.cache-mount.id";
/// See [`ANNOTATION_CACHE_MOUNT_ID`].
pub(crate) const ANNOTATION_CACHE_MOUNT_BASE: &str = "dev.kiln.cache-mount.base";

/// A result found in an imported cache and not downloaded yet.
pub struct RemoteRef {
    pub(crate) key: Digest,
    pub(crate) source: Arc<Imported>,
    /// The snapshot once downloaded (`None`: the result has no layers).
    pub(crate) snapshot: tokio::sync::OnceCell<Option<SnapshotId>>,
}

impl std::fmt::Debug for RemoteRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRef")
            .field("key", &self.key)
            .field("source", &self.source.name)
            .finish_non_exhaustive()
    }
}

impl RemoteRef {
    /// The layers of the result, base first.
    pub(crate) fn chain(&self) -> &[ChainLayer] {
        self.source.chains.get(&self.key).map_or(&[], |chain| &chain[..])
    }

    /// The source the result was found in.
    pub(crate) fn source(&self) -> &Arc<Imported> {
        &self.source
    }
}

/// A step whose cache key was computed in a build, and the keys of its inputs (`None` for an
/// input that entered by content), with what the step read of each.
#[derive(Clone, Debug)]
pub(crate) struct KeyedStep {
    pub(crate) key: Digest,
    /// Its link key, when it has one.
    pub(crate) link: Option<Digest>,
    pub(crate) inputs: Vec<(Option<Digest>, Option<Digest>)>,
}
