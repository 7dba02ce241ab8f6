//! Where cache objects live: a registry repository, or an OCI image layout directory.
//!
//! A cache object is read as its manifest (or BuildKit's older index form), then its cache
//! config; layer blobs are fetched later, one by one, through the [`BlobSource`] of the
//! backend. Writing puts the blobs first and the manifest last, so a reader never finds a
//! manifest whose blobs are missing. A layout directory is updated under an exclusive lock on
//! `DIR/index.json.lock`, and its `index.json` is replaced atomically (written aside, synced,
//! renamed), so two builds exporting to one directory each leave a complete index.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use oci::cache::{CACHE_CONFIG_V0, CacheConfig, CacheConfigError, MAX_CONFIG_SIZE};
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, Reference, media_type};
use sources::pull::{BlobSource, RegistryBlobs};
use store::Store;

pub(crate) use super::error::CacheError;
use super::{CacheBackend, Imported};
use crate::layout::{REF_NAME, blob_path as layout_blob};

/// The largest manifest or `index.json` read from a cache.
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// What an import found.
pub(crate) struct ImportOutcome {
    pub(crate) imported: Imported,
    /// Results that could not be followed.
    pub(crate) dropped: usize,
}

/// Reads the cache object of `backend`: its manifest and config, not its layers.
pub(crate) async fn import(
    registry: &registry::Client,
    backend: &CacheBackend,
) -> Result<ImportOutcome, CacheError> {
    let name = backend.to_string();
    let (blobs, layers, config): (Arc<dyn BlobSource>, _, _) = match backend {
        CacheBackend::Registry { reference } => {
            let reference = parse_reference(reference)?;
            let registry_error = |source| CacheError::Registry {
                name: name.clone(),
                source,
            };
            let fetched = registry
                .fetch_manifest(&reference)
                .await
                .map_err(registry_error)?;
            let (layers, bytes) = match object(&name, &fetched.bytes)? {
                Object::Cache { config, layers } => {
                    (layers, fetch_small(registry, &reference, &config, &name).await?)
                }
                Object::Image { config, layers } => {
                    let bytes = fetch_small(registry, &reference, &config, &name).await?;
                    inline_cache(&name, &bytes, layers)?
                }
            };
            let blobs = RegistryBlobs {
                registry: registry.clone(),
                reference,
            };
            (Arc::new(blobs), layers, bytes)
        }
        CacheBackend::Inline => {
            return Err(CacheError::Invalid {
                name,
                what: "an inline cache is read from its image: --cache-from IMAGE".into(),
            });
        }
        CacheBackend::S3(location) => {
            let store = super::s3::client(location)?;
            let manifest = super::s3::read_manifest(store.as_ref(), location, MAX_MANIFEST_SIZE).await?;
            let Object::Cache { config, layers } = object(&name, &manifest)? else {
                return Err(CacheError::Invalid {
                    name,
                    what: "its manifest is an image's, not a cache's".into(),
                });
            };
            let bytes = super::s3::read_blob(store.as_ref(), location, &config, MAX_CONFIG_SIZE).await?;
            let blobs = super::s3::S3Blobs {
                store,
                location: (**location).clone(),
            };
            (Arc::new(blobs), layers, bytes)
        }
        CacheBackend::Local { dir, tag } => {
            let blobs = crate::layout::LayoutBlobs { dir: dir.clone() };
            let (dir, tag, read_name) = (dir.clone(), tag.clone(), name.clone());
            let (layers, bytes) = tokio::task::spawn_blocking(move || read_layout(&dir, &tag, &read_name))
                .await
                .map_err(CacheError::Join)??;
            (Arc::new(blobs), layers, bytes)
        }
    };
    let config = CacheConfig::parse(&config).map_err(|source| CacheError::Config {
        name: name.clone(),
        source,
    })?;
    let cache_mounts = layers
        .iter()
        .filter_map(|d| {
            Some(super::ImportedCacheMount {
                id: d.annotations.get(super::ANNOTATION_CACHE_MOUNT_ID)?.clone(),
                base: d.annotations.get(super::ANNOTATION_CACHE_MOUNT_BASE)?.clone(),
                descriptor: Descriptor::new(&d.media_type, d.digest.clone(), d.size),
            })
        })
        .collect();
    let listed: BTreeMap<Digest, Descriptor> = layers.into_iter().map(|d| (d.digest.clone(), d)).collect();
    let results = config.results(&listed);
    Ok(ImportOutcome {
        imported: Imported {
            name,
            blobs,
            chains: results.chains,
            links: results.links,
            cache_mounts,
        },
        dropped: results.dropped,
    })
}

fn parse_reference(reference: &str) -> Result<Reference, CacheError> {
    Reference::parse(reference).map_err(|source| CacheError::Reference {
        reference: reference.to_string(),
        source,
    })
}

/// What a cache reference names.
enum Object {
    /// A cache object: its config (a cache config) and layers.
    Cache {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// An image, whose config may hold an inline cache.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

/// The key of the inline cache in an image config.
const INLINE_KEY: &str = "moby.buildkit.cache.v0";

/// The inline cache of an image config (the base64 of a cache config), and the image's layers
/// with their diff IDs from the config.
fn inline_cache(
    name: &str,
    config: &[u8],
    layers: Vec<Descriptor>,
) -> Result<(Vec<Descriptor>, Vec<u8>), CacheError> {
    use base64::Engine as _;
    let invalid = |what: String| CacheError::Invalid {
        name: name.to_string(),
        what,
    };
    let image: serde_json::Value = serde_json::from_slice(config).map_err(|source| CacheError::Document {
        name: name.to_string(),
        document: "image config",
        source,
    })?;
    let encoded = image
        .get(INLINE_KEY)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| invalid(format!("the image has no inline cache ({INLINE_KEY})")))?;
    let cache = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| invalid(format!("its inline cache is not base64: {e}")))?;
    let diff_ids: Vec<&str> = image
        .pointer("/rootfs/diff_ids")
        .and_then(serde_json::Value::as_array)
        .map(|ids| ids.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let layers = layers
        .into_iter()
        .zip(diff_ids.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|(mut layer, diff_id)| {
            if let Some(diff_id) = diff_id {
                layer
                    .annotations
                    .entry(oci::cache::ANNOTATION_UNCOMPRESSED.into())
                    .or_insert_with(|| diff_id.to_string());
            }
            layer
        })
        .collect();
    Ok((layers, cache))
}

/// The config descriptor and layer descriptors of a cache object: an image manifest whose
/// config is a cache config, or an index listing the layers and the config; or of an image.
fn object(name: &str, bytes: &[u8]) -> Result<Object, CacheError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|source| CacheError::Document {
        name: name.to_string(),
        document: "manifest",
        source,
    })?;
    let document_error = |source| CacheError::Document {
        name: name.to_string(),
        document: "manifest",
        source,
    };
    let invalid = |what: String| CacheError::Invalid {
        name: name.to_string(),
        what,
    };
    if value.get("manifests").is_some() {
        let index: ImageIndex = serde_json::from_value(value).map_err(document_error)?;
        let (configs, layers): (Vec<Descriptor>, Vec<Descriptor>) = index
            .manifests
            .into_iter()
            .partition(|d| d.media_type == CACHE_CONFIG_V0);
        let config = configs.into_iter().next().ok_or_else(|| {
            invalid("the index lists no cache config: it is no cache (a multi-platform image has no inline cache kiln reads)".into())
        })?;
        return Ok(Object::Cache { config, layers });
    }
    let manifest: ImageManifest = serde_json::from_value(value).map_err(document_error)?;
    match manifest.config.media_type.as_str() {
        CACHE_CONFIG_V0 => Ok(Object::Cache {
            config: manifest.config,
            layers: manifest.layers,
        }),
        media_type::OCI_CONFIG | media_type::DOCKER_CONFIG => Ok(Object::Image {
            config: manifest.config,
            layers: manifest.layers,
        }),
        other => Err(invalid(format!(
            "its config is a {other}, neither a cache config ({CACHE_CONFIG_V0}) nor an image config: it is no cache"
        ))),
    }
}

/// Fetches a small blob (a cache config) from a registry, refusing one over the config limit.
async fn fetch_small(
    registry: &registry::Client,
    reference: &Reference,
    descriptor: &Descriptor,
    name: &str,
) -> Result<Vec<u8>, CacheError> {
    if descriptor.size > MAX_CONFIG_SIZE {
        return Err(CacheError::Config {
            name: name.to_string(),
            source: CacheConfigError::TooBig {
                size: descriptor.size,
            },
        });
    }
    let registry_error = |source| CacheError::Registry {
        name: name.to_string(),
        source,
    };
    let mut reader = registry
        .fetch_blob(reference, descriptor)
        .await
        .map_err(registry_error)?;
    let mut bytes = Vec::with_capacity(descriptor.size as usize);
    while let Some(chunk) = reader.chunk().await.map_err(registry_error)? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The layer descriptors and cache config of the object tagged `tag` in a layout directory.
fn read_layout(dir: &Path, tag: &str, name: &str) -> Result<(Vec<Descriptor>, Vec<u8>), CacheError> {
    let index = crate::layout::read_index(dir)?;
    let spec = crate::layout::LayoutSpec {
        dir: dir.to_path_buf(),
        tag: Some(tag.to_string()),
        digest: None,
    };
    let entry = crate::layout::entry(dir, &index, &spec)?;
    let manifest = crate::layout::read_blob(dir, &entry.digest, MAX_MANIFEST_SIZE)?;
    let Object::Cache { config, layers } = object(name, &manifest)? else {
        return Err(CacheError::Invalid {
            name: name.to_string(),
            what: format!("{tag} is an image, not a cache"),
        });
    };
    if config.size > MAX_CONFIG_SIZE {
        return Err(CacheError::Config {
            name: name.to_string(),
            source: CacheConfigError::TooBig { size: config.size },
        });
    }
    let bytes = crate::layout::read_blob(dir, &config.digest, MAX_CONFIG_SIZE)?;
    Ok((layers, bytes))
}

/// A cache object ready to write: its blobs are in the local content store.
pub(crate) struct CacheObject {
    /// The layer blobs.
    pub(crate) layers: Vec<Descriptor>,
    /// The cache config blob.
    pub(crate) config: Vec<u8>,
    /// The manifest (or index) and its media type.
    pub(crate) manifest: Vec<u8>,
    pub(crate) manifest_type: &'static str,
}

impl CacheObject {
    fn config_descriptor(&self) -> Descriptor {
        Descriptor::new(
            CACHE_CONFIG_V0,
            Digest::of(&self.config),
            self.config.len() as u64,
        )
    }
}

/// Writes a cache object to `backend`: blobs first, the manifest (and the tag) last.
pub(crate) async fn write(
    store: &Arc<Store>,
    registry: &registry::Client,
    backend: &CacheBackend,
    object: CacheObject,
) -> Result<Digest, CacheError> {
    match backend {
        CacheBackend::Registry { reference } => {
            let reference = parse_reference(reference)?;
            let name = backend.to_string();
            let registry_error = |source| CacheError::Registry {
                name: name.clone(),
                source,
            };
            for layer in &object.layers {
                // A layer not in the local store was found in the repository already.
                if !store.content().contains(&layer.digest) {
                    continue;
                }
                let body = registry::BlobBody::File(store.content().path(&layer.digest));
                registry
                    .push_blob(&reference, layer, body)
                    .await
                    .map_err(registry_error)?;
            }
            let config = bytes::Bytes::from(object.config.clone());
            registry
                .push_blob(
                    &reference,
                    &object.config_descriptor(),
                    registry::BlobBody::Bytes(config),
                )
                .await
                .map_err(registry_error)?;
            registry
                .push_manifest(&reference, object.manifest_type, object.manifest.into())
                .await
                .map_err(registry_error)
        }
        CacheBackend::Inline => Err(CacheError::Invalid {
            name: backend.to_string(),
            what: "an inline cache is written with the image".into(),
        }),
        CacheBackend::S3(location) => {
            super::s3::write(store, location, &object.layers, &object.config, &object.manifest).await
        }
        CacheBackend::Local { dir, tag } => {
            let (store, dir, tag) = (store.clone(), dir.clone(), tag.clone());
            tokio::task::spawn_blocking(move || write_layout(&store, &dir, &tag, &object))
                .await
                .map_err(CacheError::Join)?
        }
    }
}

/// Writes a cache object into a layout directory and tags it, under the directory's lock.
fn write_layout(store: &Store, dir: &Path, tag: &str, object: &CacheObject) -> Result<Digest, CacheError> {
    let io_error = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| CacheError::Io { action, path, source }
    };
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io_error("create", &blobs))?;
    for layer in &object.layers {
        let from = store.content().path(&layer.digest);
        put_blob(dir, &layer.digest, |out| {
            let mut file = std::fs::File::open(&from)?;
            io::copy(&mut file, out).map(drop)
        })?;
    }
    let config = object.config_descriptor();
    put_blob(dir, &config.digest, |out| out.write_all(&object.config))?;
    let manifest = Digest::of(&object.manifest);
    put_blob(dir, &manifest, |out| out.write_all(&object.manifest))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        replace_file(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let lock_path = dir.join("index.json.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io_error("create", &lock_path))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io_error("lock", &lock_path)(e.into()))?;
    let index_path = dir.join("index.json");
    let mut index = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<ImageIndex>(&bytes).map_err(|source| CacheError::Document {
            name: dir.display().to_string(),
            document: "index.json",
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        },
        Err(e) => return Err(io_error("read", &index_path)(e)),
    };
    index
        .manifests
        .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
    let mut entry = Descriptor::new(
        object.manifest_type,
        manifest.clone(),
        object.manifest.len() as u64,
    );
    entry.annotations.insert(REF_NAME.into(), tag.to_string());
    index.manifests.push(entry);
    let bytes = serde_json::to_vec(&index).map_err(|source| CacheError::Document {
        name: dir.display().to_string(),
        document: "index.json",
        source,
    })?;
    replace_file(&index_path, &bytes)?;
    drop(lock);
    Ok(manifest)
}

/// A suffix no other writer of this machine uses at the same time: builds of one engine run
/// concurrently, so the process id alone is not enough.
fn unique() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Writes a blob into a layout directory unless it is there: aside, synced, renamed (a
/// concurrent writer of the same blob renames the same bytes over it).
fn put_blob(
    dir: &Path,
    digest: &Digest,
    write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> Result<(), CacheError> {
    let path = layout_blob(dir, digest);
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_file_name(format!(".{}.{}.tmp", digest.hex(), unique()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CacheError::Io {
            action: "write cache blob",
            path,
            source,
        }
    })
}

/// Replaces a file atomically: written aside, synced, renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let tmp = path.with_extension(format!("{}.tmp", unique()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CacheError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}
