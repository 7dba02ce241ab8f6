//! Getting images into the store: manifests and configs into the content store, layers applied
//! once each as snapshots (keyed by chain ID) and reused by every build that needs them.
//!
//! A layer's snapshot is found by its chain ID (`H(parent chain ID + " " + diff ID)`) in the
//! store's layer index; only a layer missing there is fetched (unless its blob is in the
//! content store already), decompressed, applied on top of its parent and checked against the
//! diff ID of the image config. The index entry is written last, after the snapshot and its
//! blob record, so a crash in between leaves an unreferenced snapshot, never an entry to trust
//! that points at nothing. Blobs are verified against their digests as they are stored.
//!
//! Everything that touches the store runs on tokio's blocking pool; downloads stream into it
//! through a bounded channel to a blocking writer.

use std::io::{self, Read};
use std::sync::Arc;

use fsops::layer::LayerError;
use oci::{Descriptor, Digest, ImageConfig, ImageManifest, Platform, Reference, media_type};
use store::{LayerBlob, SnapshotId, Store};
use tokio::task::JoinError;

use crate::ingest::{BlobWriter, IngestError};
use crate::progress::{Progress, human_size};

/// An image to pull: a reference (pinned by digest, or a tag resolved on the registry) for a
/// platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSource {
    /// The image.
    pub reference: Reference,
    /// The platform a tag's index is resolved for.
    pub platform: Platform,
}

/// Errors while pulling. Each names the image; causes are `source()`s.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry failed (its causes go down to the OS error).
    #[error("failed to pull {reference}")]
    Registry {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: registry::Error,
    },
    /// The content store failed.
    #[error("failed to store content of {reference}")]
    Store {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: store::Error,
    },
    /// A manifest or config is no valid JSON document of its kind.
    #[error("invalid image {reference}: bad {document}")]
    Decode {
        /// The image.
        reference: String,
        /// `manifest` or `image config`.
        document: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A pinned manifest is an index.
    #[error("invalid image {reference}: expected a single-platform manifest, found an index")]
    Index {
        /// The image.
        reference: String,
    },
    /// The config does not list a diff ID for each layer.
    #[error("invalid image {reference}: {layers} layers but {diff_ids} diff IDs in the config")]
    LayerCount {
        /// The image.
        reference: String,
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// A layer's content is not what the config says.
    #[error(
        "failed to apply layer {digest} of {reference}: diff ID mismatch: config says {expected}, content is {actual}"
    )]
    DiffId {
        /// The image.
        reference: String,
        /// The layer blob.
        digest: Digest,
        /// The diff ID in the config.
        expected: Digest,
        /// The digest of the uncompressed content.
        actual: Digest,
    },
    /// Making the layer's snapshot failed in the store.
    #[error("failed to apply layer {digest} of {reference}")]
    ApplyStore {
        /// The image.
        reference: String,
        /// The layer blob.
        digest: Digest,
        /// Why (boxed: the store's errors are large, and this one is rare).
        #[source]
        source: Box<store::Error>,
    },
    /// Writing the layer's files failed: the cause is the destination's (a full disk).
    #[error("failed to apply layer {digest} of {reference}")]
    ApplyLayer {
        /// The image.
        reference: String,
        /// The layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// The stored blob does not decompress or is no complete tar.
    #[error("layer blob {digest} of {reference} is corrupt or truncated")]
    Corrupt {
        /// The image.
        reference: String,
        /// The layer blob.
        digest: Digest,
        /// What failed to read.
        #[source]
        source: LayerError,
    },
    /// The layer's media type is none kiln reads (gzip, zstd or plain tar).
    #[error("layer {digest} of {reference} has media type {media_type}, which is not supported yet")]
    Unsupported {
        /// The image.
        reference: String,
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A blocking task of the pull failed.
    #[error("internal task failed while pulling {reference}")]
    Task {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: JoinError,
    },
}

/// The manifest of `image` and its digest, from the content store (when pinned and present) or
/// the registry (then stored).
pub async fn manifest(
    store: &Arc<Store>,
    registry: &registry::Client,
    image: &ImageSource,
) -> Result<(Digest, ImageManifest), PullError> {
    Pull::new(store, registry, &image.reference)
        .manifest(&image.platform)
        .await
}

/// Resolves `image` on the registry, records its manifest and config in the content store, and
/// returns the reference pinned to the manifest's digest with the image's config (what the
/// frontend needs of a base image).
pub async fn resolve_config(
    store: &Arc<Store>,
    registry: &registry::Client,
    image: &ImageSource,
) -> Result<(Reference, ImageConfig), PullError> {
    let pull = Pull::new(store, registry, &image.reference);
    let resolved = registry
        .resolve(&image.reference, &image.platform)
        .await
        .map_err(|source| pull.registry_error(source))?;
    let bytes = resolved.manifest.bytes.clone();
    pull.on_store(move |store| store.content().write(&bytes).map(drop))
        .await?;
    let pinned = image.reference.with_digest(resolved.manifest.digest.clone());
    let config = Pull::new(store, registry, &pinned)
        .config(&resolved.parsed)
        .await?;
    Ok((pinned, config))
}

/// Makes sure every layer of `image` is applied as a snapshot; returns the top one (`None` for
/// an image without layers). Reports each layer it fetches and extracts to `progress`.
pub async fn pull(
    store: &Arc<Store>,
    registry: &registry::Client,
    image: &ImageSource,
    progress: &dyn Progress,
) -> Result<Option<SnapshotId>, PullError> {
    let blobs = RegistryBlobs {
        registry: registry.clone(),
        reference: image.reference.clone(),
    };
    pull_with(store, registry, image, &blobs, progress).await
}

/// [`pull`] with the layer blobs fetched from `blobs` (manifest and config still come from the
/// content store, or else the registry).
pub async fn pull_with(
    store: &Arc<Store>,
    registry: &registry::Client,
    image: &ImageSource,
    blobs: &dyn BlobSource,
    progress: &dyn Progress,
) -> Result<Option<SnapshotId>, PullError> {
    let pull = Pull::new(store, registry, &image.reference);
    let (_, manifest) = pull.manifest(&image.platform).await?;
    let config = pull.config(&manifest).await?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::LayerCount {
            reference: pull.reference.to_string(),
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let layers: Vec<(Descriptor, Digest)> = manifest
        .layers
        .iter()
        .cloned()
        .zip(diff_ids.iter().cloned())
        .collect();
    apply_chain(store, &image.reference.to_string(), &layers, blobs, progress).await
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where the layer blobs of a chain come from: a registry, or a remote cache.
pub trait BlobSource: Send + Sync {
    /// Copies the blob `descriptor` names into `store`'s content store, verifying its digest.
    fn fetch<'a>(
        &'a self,
        store: &'a Arc<Store>,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<(), PullError>>;
}

/// Layer blobs of a repository in a registry.
pub struct RegistryBlobs {
    /// The registry handle (with the build's credentials).
    pub registry: registry::Client,
    /// The repository.
    pub reference: Reference,
}

impl BlobSource for RegistryBlobs {
    fn fetch<'a>(
        &'a self,
        store: &'a Arc<Store>,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<(), PullError>> {
        Box::pin(async move {
            Pull::new(store, &self.registry, &self.reference)
                .fetch_into_store(descriptor)
                .await
        })
    }
}

/// Makes sure every layer of a chain (blob and diff ID, base first) is applied as a snapshot;
/// returns the top one (`None` for no layers). A layer found in the store's layer index by its
/// chain ID is reused; only the others are fetched from `blobs` (unless their blob is stored),
/// applied and checked against their diff IDs. `name` names the image or cache in errors.
pub async fn apply_chain(
    store: &Arc<Store>,
    name: &str,
    layers: &[(Descriptor, Digest)],
    blobs: &dyn BlobSource,
    progress: &dyn Progress,
) -> Result<Option<SnapshotId>, PullError> {
    let chain_of = Chain {
        store,
        name: name.to_string(),
        blobs,
    };
    let mut parent: Option<SnapshotId> = None;
    let mut chain: Option<Digest> = None;
    for (layer, diff_id) in layers {
        let chain_id = match &chain {
            None => diff_id.clone(),
            Some(c) => Digest::of(format!("{c} {diff_id}").as_bytes()),
        };
        chain = Some(chain_id.clone());
        let known = chain_id.clone();
        parent = match chain_of
            .on_store(move |store| store.layer_snapshot(&known))
            .await?
        {
            Some(id) => Some(id),
            None => Some(chain_of.layer(parent, layer, diff_id, chain_id, progress).await?),
        };
    }
    Ok(parent)
}

/// Runs `work` on the store on the blocking pool; errors name `name` (an image or a cache).
pub async fn on_store<T: Send + 'static>(
    store: &Arc<Store>,
    name: &str,
    work: impl FnOnce(&Store) -> Result<T, store::Error> + Send + 'static,
) -> Result<T, PullError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&store))
        .await
        .map_err(|source| PullError::Task {
            reference: name.to_string(),
            source,
        })?
        .map_err(|source| PullError::Store {
            reference: name.to_string(),
            source,
        })
}

/// A chain of layers being applied.
struct Chain<'a> {
    store: &'a Arc<Store>,
    name: String,
    blobs: &'a dyn BlobSource,
}

impl Chain<'_> {
    /// Runs `work` on the store on the blocking pool.
    async fn on_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, store::Error> + Send + 'static,
    ) -> Result<T, PullError> {
        on_store(self.store, &self.name, work).await
    }

    /// Fetches (unless stored) and applies one layer on top of `parent`; records it under
    /// `chain_id`.
    async fn layer(
        &self,
        parent: Option<SnapshotId>,
        layer: &Descriptor,
        diff_id: &Digest,
        chain_id: Digest,
        progress: &dyn Progress,
    ) -> Result<SnapshotId, PullError> {
        let Some(compression) = media_type::layer_compression(&layer.media_type) else {
            return Err(PullError::Unsupported {
                reference: self.name.clone(),
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
            });
        };
        let digest = layer.digest.clone();
        if !self
            .on_store(move |store| Ok(store.content().contains(&digest)))
            .await?
        {
            progress.status(format!("pulling {} {}", layer.digest, human_size(layer.size)));
            self.blobs.fetch(self.store, layer).await?;
        }
        progress.status(format!("extracting {}", layer.digest));
        let store = self.store.clone();
        let applied = Applied {
            reference: self.name.clone(),
            layer: layer.clone(),
            diff_id: diff_id.clone(),
            chain_id,
            compression,
        };
        let (applied, result) = tokio::task::spawn_blocking(move || {
            let result = applied.apply(&store, parent);
            (applied, result)
        })
        .await
        .map_err(|e| PullError::Task {
            reference: self.name.clone(),
            source: e,
        })?;
        result.map_err(|e| applied.error(e))
    }
}

/// One image being pulled: where from, where to.
struct Pull<'a> {
    store: &'a Arc<Store>,
    registry: &'a registry::Client,
    reference: &'a Reference,
}

impl<'a> Pull<'a> {
    fn new(store: &'a Arc<Store>, registry: &'a registry::Client, reference: &'a Reference) -> Self {
        Pull {
            store,
            registry,
            reference,
        }
    }

    fn registry_error(&self, source: registry::Error) -> PullError {
        PullError::Registry {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn store_error(&self, source: store::Error) -> PullError {
        PullError::Store {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn task_error(&self, source: JoinError) -> PullError {
        PullError::Task {
            reference: self.reference.to_string(),
            source,
        }
    }

    fn decode_error(&self, document: &'static str) -> impl FnOnce(serde_json::Error) -> PullError {
        let reference = self.reference.to_string();
        move |source| PullError::Decode {
            reference,
            document,
            source,
        }
    }

    /// Runs `work` on the store on the blocking pool.
    async fn on_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, store::Error> + Send + 'static,
    ) -> Result<T, PullError> {
        on_store(self.store, &self.reference.to_string(), work).await
    }

    /// Streams a blob from the registry into the content store (digest verified on commit).
    async fn fetch_into_store(&self, descriptor: &Descriptor) -> Result<(), PullError> {
        let ingest_error = |e| match e {
            IngestError::Store(source) => self.store_error(source),
            IngestError::Task(source) => self.task_error(source),
        };
        let mut reader = self
            .registry
            .fetch_blob(self.reference, descriptor)
            .await
            .map_err(|e| self.registry_error(e))?;
        let mut writer = BlobWriter::start(self.store.clone());
        while let Some(chunk) = reader.chunk().await.map_err(|e| self.registry_error(e))? {
            writer.write(chunk).await.map_err(ingest_error)?;
        }
        writer
            .commit(Some(descriptor.digest.clone()))
            .await
            .map_err(ingest_error)?;
        Ok(())
    }

    /// Reads a blob from the content store, fetching it from the registry first when missing.
    async fn blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, PullError> {
        let digest = descriptor.digest.clone();
        let stored = self
            .on_store(move |store| match store.content().contains(&digest) {
                true => store.content().read(&digest).map(Some),
                false => Ok(None),
            })
            .await?;
        if let Some(bytes) = stored {
            return Ok(bytes);
        }
        self.fetch_into_store(descriptor).await?;
        let digest = descriptor.digest.clone();
        self.on_store(move |store| store.content().read(&digest)).await
    }

    /// The manifest of the pinned reference, from the content store or the registry.
    async fn manifest(&self, platform: &Platform) -> Result<(Digest, ImageManifest), PullError> {
        let pinned = self.reference.digest().cloned();
        let stored = self
            .on_store(move |store| match pinned {
                Some(d) if store.content().contains(&d) => store.content().read(&d).map(Some),
                _ => Ok(None),
            })
            .await?;
        let bytes = match stored {
            Some(bytes) => bytes,
            None => {
                let resolved = self
                    .registry
                    .resolve(self.reference, platform)
                    .await
                    .map_err(|e| self.registry_error(e))?;
                let bytes = resolved.manifest.bytes.to_vec();
                let written = bytes.clone();
                self.on_store(move |store| store.content().write(&written).map(drop))
                    .await?;
                bytes
            }
        };
        let digest = Digest::of(&bytes);
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(self.decode_error("manifest"))?;
        if manifest.media_type.as_deref().is_some_and(media_type::is_index) {
            return Err(PullError::Index {
                reference: self.reference.to_string(),
            });
        }
        Ok((digest, manifest))
    }

    /// The config of an image.
    async fn config(&self, manifest: &ImageManifest) -> Result<ImageConfig, PullError> {
        let bytes = self.blob(&manifest.config).await?;
        serde_json::from_slice(&bytes).map_err(self.decode_error("image config"))
    }
}

/// Why [`Applied::apply`] failed (small, to travel back from the blocking task; the layer and
/// image are added by [`Applied::error`]).
enum Failure {
    Store(store::Error),
    Layer(LayerError),
    /// The digest the content has instead of the diff ID.
    DiffId(Digest),
}

/// A layer to apply, with what its snapshot is recorded under.
struct Applied {
    reference: String,
    layer: Descriptor,
    diff_id: Digest,
    chain_id: Digest,
    /// How the blob is compressed (told by its media type).
    compression: media_type::Compression,
}

impl Applied {
    /// The error of a failure, telling a blob that does not read (corrupt or truncated) from a
    /// tree that cannot be written.
    fn error(&self, failure: Failure) -> PullError {
        let (reference, digest) = (self.reference.clone(), self.layer.digest.clone());
        match failure {
            Failure::Store(source) => PullError::ApplyStore {
                reference,
                digest,
                source: Box::new(source),
            },
            Failure::Layer(source) if source.is_input_error() => PullError::Corrupt {
                reference,
                digest,
                source,
            },
            Failure::Layer(source) => PullError::ApplyLayer {
                reference,
                digest,
                source,
            },
            Failure::DiffId(actual) => PullError::DiffId {
                reference,
                digest,
                expected: self.diff_id.clone(),
                actual,
            },
        }
    }

    /// Applies the layer blob on top of `parent`, checking its diff ID. Blocking.
    fn apply(&self, store: &Store, parent: Option<SnapshotId>) -> Result<SnapshotId, Failure> {
        let layer = &self.layer;
        let file = store.content().open_blob(&layer.digest).map_err(Failure::Store)?;
        let input = io::BufReader::new(file);
        let raw: Box<dyn Read> = match self.compression {
            media_type::Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            media_type::Compression::Zstd => Box::new(fsops::fileop::zstd_frames(input)),
            media_type::Compression::None => Box::new(input),
        };
        let mut hashing = HashingReader {
            inner: raw,
            hasher: oci::Sha256Writer::new(io::sink()),
        };
        let active = store
            .prepare(parent, &format!("layer {}", layer.digest))
            .map_err(Failure::Store)?;
        {
            let mount = active.mount().map_err(Failure::Store)?;
            let stats = store::apply_layer(&mut hashing, mount.path()).map_err(Failure::Layer)?;
            // The tar may carry padding after its end marker; the diff ID covers every byte.
            io::copy(&mut hashing, &mut io::sink()).map_err(|source| {
                Failure::Layer(LayerError::ReadTar {
                    entries: stats.entries + stats.skipped_entries,
                    source,
                })
            })?;
        }
        let (actual, _, _) = hashing.hasher.finish();
        if actual != self.diff_id {
            return Err(Failure::DiffId(actual));
        }
        store::fault::point("pull.applied");
        let info = active.commit().map_err(Failure::Store)?;
        store::fault::point("pull.committed");
        // The layer index entry comes last: a snapshot it names is complete and records its
        // original blob, so a crash in between leaves only an unreferenced snapshot (the layer is
        // applied again), never an entry whose exports would recompute a different blob.
        let blob = LayerBlob {
            diff_id: self.diff_id.clone(),
            descriptor: layer.clone(),
            empty: false,
        };
        store.set_layer_blob(info.id, blob).map_err(Failure::Store)?;
        store::fault::point("pull.blob-recorded");
        store
            .set_layer_snapshot(&self.chain_id, info.id)
            .map_err(Failure::Store)?;
        Ok(info.id)
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: oci::Sha256Writer<io::Sink>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut self.hasher, &buf[..n])?;
        Ok(n)
    }
}
