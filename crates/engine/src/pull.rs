//! Getting images into the store: manifests and configs into the content store, layers applied
//! once each as snapshots (keyed by chain ID) and reused by every build that needs them.

use std::io::{self, Read};
use std::sync::Arc;

use oci::{Digest, ImageConfig, ImageManifest, Reference, media_type};
use store::{LayerBlob, SnapshotId, Store};

use crate::{Inner, Ref};

/// Errors while pulling.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error("failed to pull {reference}: {source}")]
    Registry {
        reference: String,
        source: registry::Error,
    },
    #[error("failed to store content of {reference}: {source}")]
    Store { reference: String, source: store::Error },
    #[error("invalid image {reference}: {message}")]
    Invalid { reference: String, message: String },
    #[error("failed to apply layer {digest} of {reference}: {message}")]
    Apply {
        reference: String,
        digest: Digest,
        message: String,
    },
    #[error("layer {digest} of {reference} is compressed with {media_type}, which is not supported yet")]
    Unsupported {
        reference: String,
        digest: Digest,
        media_type: String,
    },
}

/// Reads a blob from the content store, fetching it from the registry first when missing.
pub(crate) async fn blob(
    inner: &Inner,
    reference: &Reference,
    descriptor: &oci::Descriptor,
) -> Result<Vec<u8>, PullError> {
    let store = &inner.store;
    if !store.content().contains(&descriptor.digest) {
        fetch_into_store(inner, reference, descriptor).await?;
    }
    store
        .content()
        .read(&descriptor.digest)
        .map_err(|source| PullError::Store {
            reference: reference.to_string(),
            source,
        })
}

/// Streams a blob from the registry into the content store (digest verified on commit).
async fn fetch_into_store(
    inner: &Inner,
    reference: &Reference,
    descriptor: &oci::Descriptor,
) -> Result<(), PullError> {
    use std::io::Write;
    let registry_error = |source| PullError::Registry {
        reference: reference.to_string(),
        source,
    };
    let store_error = |source| PullError::Store {
        reference: reference.to_string(),
        source,
    };
    let mut reader = inner
        .registry
        .fetch_blob(reference, descriptor)
        .await
        .map_err(registry_error)?;
    let mut ingest = inner.store.content().ingest().map_err(store_error)?;
    while let Some(chunk) = reader.chunk().await.map_err(registry_error)? {
        ingest.write_all(&chunk).map_err(|e| {
            store_error(store::Error::Io {
                action: "write blob",
                path: inner.store.root().join("ingest"),
                source: e,
            })
        })?;
    }
    let store = inner.store.clone();
    let digest = descriptor.digest.clone();
    tokio::task::spawn_blocking(move || ingest.commit(Some(&digest)))
        .await
        .map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            message: e.to_string(),
        })?
        .map_err(store_error)?;
    drop(store);
    Ok(())
}

/// The manifest of a pinned reference, from the content store or the registry.
pub(crate) async fn manifest(
    inner: &Inner,
    reference: &Reference,
) -> Result<(Digest, ImageManifest), PullError> {
    let invalid = |message: String| PullError::Invalid {
        reference: reference.to_string(),
        message,
    };
    let bytes = match reference.digest() {
        Some(d) if inner.store.content().contains(d) => {
            inner.store.content().read(d).map_err(|source| PullError::Store {
                reference: reference.to_string(),
                source,
            })?
        }
        _ => {
            let platform = inner.platform.clone();
            let resolved = inner
                .registry
                .resolve(reference, &platform)
                .await
                .map_err(|source| PullError::Registry {
                    reference: reference.to_string(),
                    source,
                })?;
            inner
                .store
                .content()
                .write(&resolved.manifest.bytes)
                .map_err(|source| PullError::Store {
                    reference: reference.to_string(),
                    source,
                })?;
            resolved.manifest.bytes.to_vec()
        }
    };
    let digest = Digest::of(&bytes);
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("bad manifest: {e}")))?;
    if manifest.media_type.as_deref().is_some_and(media_type::is_index) {
        return Err(invalid(
            "expected a single-platform manifest, found an index".into(),
        ));
    }
    Ok((digest, manifest))
}

/// The config of an image.
pub(crate) async fn config(
    inner: &Inner,
    reference: &Reference,
    manifest: &ImageManifest,
) -> Result<ImageConfig, PullError> {
    let bytes = blob(inner, reference, &manifest.config).await?;
    serde_json::from_slice(&bytes).map_err(|e| PullError::Invalid {
        reference: reference.to_string(),
        message: format!("bad image config: {e}"),
    })
}

/// Makes sure every layer of `reference` is applied as a snapshot; returns the top one.
pub(crate) async fn pull(
    inner: &Arc<Inner>,
    reference: &Reference,
    ctx: &solver::Context,
) -> Result<Ref, PullError> {
    let (_, manifest) = manifest(inner, reference).await?;
    let config = config(inner, reference, &manifest).await?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(PullError::Invalid {
            reference: reference.to_string(),
            message: format!(
                "{} layers but {} diff IDs in the config",
                manifest.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let mut parent: Option<SnapshotId> = None;
    let mut chain: Option<Digest> = None;
    for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let chain_id = match &chain {
            None => diff_id.clone(),
            Some(c) => Digest::of(format!("{c} {diff_id}").as_bytes()),
        };
        chain = Some(chain_id.clone());
        if let Some(id) = inner
            .store
            .layer_snapshot(&chain_id)
            .map_err(|source| PullError::Store {
                reference: reference.to_string(),
                source,
            })?
        {
            parent = Some(id);
            continue;
        }
        let compression = media_type::layer_compression(&layer.media_type);
        match compression {
            Some(media_type::Compression::Gzip | media_type::Compression::None) => {}
            _ => {
                return Err(PullError::Unsupported {
                    reference: reference.to_string(),
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
        }
        if !inner.store.content().contains(&layer.digest) {
            ctx.status(format!("pulling {} {}", layer.digest, human_size(layer.size)));
            fetch_into_store(inner, reference, layer).await?;
        }
        ctx.status(format!("extracting {}", layer.digest));
        let store = inner.store.clone();
        let layer = layer.clone();
        let diff_id = diff_id.clone();
        let reference_text = reference.to_string();
        let gzip = compression == Some(media_type::Compression::Gzip);
        let id = tokio::task::spawn_blocking(move || {
            apply(&store, parent, &layer, &diff_id, &chain_id, gzip).map_err(|message| PullError::Apply {
                reference: reference_text,
                digest: layer.digest.clone(),
                message,
            })
        })
        .await
        .map_err(|e| PullError::Invalid {
            reference: reference.to_string(),
            message: e.to_string(),
        })??;
        parent = Some(id);
    }
    Ok(parent.map_or(Ref::Empty, Ref::Snapshot))
}

/// Applies one layer blob on top of `parent`, checking its diff ID.
fn apply(
    store: &Store,
    parent: Option<SnapshotId>,
    layer: &oci::Descriptor,
    diff_id: &Digest,
    chain_id: &Digest,
    gzip: bool,
) -> Result<SnapshotId, String> {
    let file = store
        .content()
        .open_blob(&layer.digest)
        .map_err(|e| e.to_string())?;
    let raw: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    let mut hashing = HashingReader {
        inner: raw,
        hasher: oci::Sha256Writer::new(io::sink()),
    };
    let active = store
        .prepare(parent, &format!("layer {}", layer.digest))
        .map_err(|e| e.to_string())?;
    {
        let mount = active.mount().map_err(|e| e.to_string())?;
        store::apply_layer(&mut hashing, mount.path()).map_err(|e| e.to_string())?;
        // The tar may carry padding after its end marker; the diff ID covers every byte.
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| e.to_string())?;
    }
    let (actual, _, _) = hashing.hasher.finish();
    if &actual != diff_id {
        return Err(format!(
            "diff ID mismatch: config says {diff_id}, content is {actual}"
        ));
    }
    store::fault::point("pull.applied");
    let info = active.commit().map_err(|e| e.to_string())?;
    store::fault::point("pull.committed");
    // The layer index entry comes last: a snapshot it names is complete and records its
    // original blob, so a crash in between leaves only an unreferenced snapshot (the layer is
    // applied again), never an entry whose exports would recompute a different blob.
    store
        .set_layer_blob(
            info.id,
            LayerBlob {
                diff_id: diff_id.clone(),
                descriptor: layer.clone(),
                empty: false,
            },
        )
        .map_err(|e| e.to_string())?;
    store::fault::point("pull.blob-recorded");
    store
        .set_layer_snapshot(chain_id, info.id)
        .map_err(|e| e.to_string())?;
    Ok(info.id)
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

/// `1.2MB`-style sizes, as BuildKit prints them in progress output.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234_567), "1.23MB");
    }
}
