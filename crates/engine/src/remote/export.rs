//! `--cache-to`: the records of a build as a cache object.
//!
//! The steps are those the build computed a key for ([`KeyedStep`], collected by the build's
//! progress). A step's result is what the local cache holds under its key, or what an imported
//! cache holds (a result that hit remotely and was never downloaded is exported from there).
//! `mode=min` keeps the steps whose result chain is part of the final result's chain.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use oci::cache::{
    ANNOTATION_CREATED_AT, ANNOTATION_UNCOMPRESSED, CacheConfig, CacheInput, CacheLayer, CacheRecord,
    CacheResult, LayerAnnotations,
};
use oci::{Descriptor, Digest, media_type};
use store::Store;

use super::backend::{self, CacheObject};
use super::error::CacheError;
use super::{CacheExport, CacheMode, Imported, KeyedStep};
use crate::{Inner, Ref};

/// What a build leaves for its cache exports.
#[derive(Clone, Copy)]
pub(crate) struct BuildCache<'a> {
    /// The steps it keyed.
    pub(crate) steps: &'a [KeyedStep],
    /// Its result.
    pub(crate) result: &'a Ref,
    /// The caches it imported.
    pub(crate) imported: &'a [Arc<Imported>],
    /// The cache mounts its steps used.
    pub(crate) cache_mounts: &'a [super::UsedCacheMount],
}

/// One layer of an exported chain, and where its blob is.
#[derive(Clone)]
struct Layer {
    descriptor: Descriptor,
    diff_id: Digest,
    created: Option<String>,
    /// The imported cache holding the blob when the local content store does not.
    remote: Option<Arc<Imported>>,
}

/// Exports the cache of a build to `export.backend`; returns the manifest's digest.
pub(crate) async fn export(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    export: &CacheExport,
    build: &BuildCache<'_>,
    progress: &crate::progress::Step,
) -> Result<Digest, CacheError> {
    let BuildCache {
        steps,
        result,
        imported,
        cache_mounts,
    } = *build;
    progress.status("preparing build cache for export");
    let chains = chains(
        inner,
        steps,
        result,
        imported,
        export.mode,
        &layer_options(export),
    )
    .await?;
    let (config, layers) = config(&chains, steps);
    for layer in &layers {
        ensure_local(inner, registry, export, layer).await?;
    }
    let mounts = if export.cache_mounts {
        cache_mount_blobs(inner, cache_mounts, progress).await?
    } else {
        Vec::new()
    };
    let object = object(export, config, &layers, mounts);
    progress.status(format!(
        "writing {} layers and {} cache records",
        layers.len(),
        chains.len()
    ));
    backend::write(&inner.store, registry, &export.backend, object).await
}

/// The inline cache of the build's images (`--cache-to type=inline`): the base64 of the cache
/// config of the steps whose results make the final result (`mode=min`), whose layers are the
/// image's.
pub(crate) async fn inline(
    inner: &Arc<Inner>,
    steps: &[KeyedStep],
    result: &Ref,
    imported: &[Arc<Imported>],
) -> Result<String, CacheError> {
    use base64::Engine as _;
    let layers = exporter::OciOptions::default();
    let chains = chains(inner, steps, result, imported, CacheMode::Min, &layers).await?;
    let (config, _) = config(&chains, steps);
    Ok(base64::engine::general_purpose::STANDARD.encode(config.to_bytes()))
}

/// The layer chain of each step's result, for `mode`.
async fn chains(
    inner: &Arc<Inner>,
    steps: &[KeyedStep],
    result: &Ref,
    imported: &[Arc<Imported>],
    mode: CacheMode,
    layers: &exporter::OciOptions,
) -> Result<BTreeMap<Digest, Vec<Layer>>, CacheError> {
    let final_chain = chain_of_result(inner, result, layers).await?;
    let mut chains: BTreeMap<Digest, Vec<Layer>> = BTreeMap::new();
    for step in steps {
        if chains.contains_key(&step.key) {
            continue;
        }
        if let Some(chain) = chain_of_key(inner, &step.key, imported, layers).await?
            && !chain.is_empty()
        {
            chains.insert(step.key.clone(), chain);
        }
    }
    if mode == CacheMode::Min {
        let ids: Vec<&Digest> = final_chain.iter().map(|l| &l.diff_id).collect();
        chains.retain(|_, chain| {
            chain.len() <= ids.len() && chain.iter().zip(&ids).all(|(l, id)| l.diff_id == **id)
        });
    }
    Ok(chains)
}

/// How an export makes layers: its compression, level and `force-compression`.
fn layer_options(export: &CacheExport) -> exporter::OciOptions {
    exporter::OciOptions {
        compression: export.compression,
        compression_level: export.compression_level,
        force_compression: export.force_compression,
        ..exporter::OciOptions::default()
    }
}

/// The layer chain of the build's final result.
async fn chain_of_result(
    inner: &Arc<Inner>,
    result: &Ref,
    layers: &exporter::OciOptions,
) -> Result<Vec<Layer>, CacheError> {
    match result {
        Ref::Snapshot(id) => local_chain(&inner.store, *id, layers).await,
        Ref::Remote(remote) => Ok(remote_chain(remote.source(), remote.chain())),
        Ref::Empty | Ref::Local(_) => Ok(Vec::new()),
    }
}

/// The layer chain of the result under `key`: from the local cache, else from an imported one.
async fn chain_of_key(
    inner: &Arc<Inner>,
    key: &Digest,
    imported: &[Arc<Imported>],
    layers: &exporter::OciOptions,
) -> Result<Option<Vec<Layer>>, CacheError> {
    let store = inner.store.clone();
    let lookup = key.clone();
    let record = tokio::task::spawn_blocking(move || store.cache_get(&lookup))
        .await
        .map_err(CacheError::Join)?
        .map_err(CacheError::Store)?;
    if let Some(record) = record {
        // Only single-output steps are exported (every step a Dockerfile makes).
        return match record.outputs.as_slice() {
            [Some(id)] => Ok(Some(local_chain(&inner.store, *id, layers).await?)),
            _ => Ok(None),
        };
    }
    Ok(imported
        .iter()
        .find_map(|source| source.chains.get(key).map(|chain| remote_chain(source, chain))))
}

async fn local_chain(
    store: &Arc<Store>,
    id: store::SnapshotId,
    layers: &exporter::OciOptions,
) -> Result<Vec<Layer>, CacheError> {
    let store = store.clone();
    let layers = layers.clone();
    let blobs = tokio::task::spawn_blocking(move || exporter::layer_chain(&store, id, &layers))
        .await
        .map_err(CacheError::Join)?
        .map_err(CacheError::Layers)?;
    Ok(blobs
        .into_iter()
        .map(|b| Layer {
            descriptor: b.descriptor,
            diff_id: b.diff_id,
            created: Some(oci::time::rfc3339(b.created)),
            remote: None,
        })
        .collect())
}

fn remote_chain(source: &Arc<Imported>, chain: &[oci::cache::ChainLayer]) -> Vec<Layer> {
    chain
        .iter()
        .map(|l| Layer {
            descriptor: l.descriptor.clone(),
            diff_id: l.diff_id.clone(),
            created: l.created_at.clone(),
            remote: Some(source.clone()),
        })
        .collect()
}

/// The cache config of `chains` (layers shared between chains listed once), and the layers in
/// the order the config lists them.
fn config(chains: &BTreeMap<Digest, Vec<Layer>>, steps: &[KeyedStep]) -> (CacheConfig, Vec<Layer>) {
    let mut config = CacheConfig::default();
    let mut layers: Vec<Layer> = Vec::new();
    let mut index: BTreeMap<(i64, Digest), i64> = BTreeMap::new();
    let links: BTreeMap<&Digest, i64> = chains.keys().enumerate().map(|(i, k)| (k, i as i64)).collect();
    let inputs: BTreeMap<&Digest, &KeyedStep> = steps.iter().map(|s| (&s.key, s)).collect();
    for (key, chain) in chains {
        let mut parent = -1i64;
        for layer in chain {
            parent = *index
                .entry((parent, layer.descriptor.digest.clone()))
                .or_insert_with(|| {
                    config.layers.push(CacheLayer {
                        blob: layer.descriptor.digest.clone(),
                        parent,
                        annotations: Some(LayerAnnotations {
                            media_type: layer.descriptor.media_type.clone(),
                            diff_id: Some(layer.diff_id.clone()),
                            size: layer.descriptor.size as i64,
                            created_at: layer.created.clone(),
                        }),
                    });
                    layers.push(layer.clone());
                    config.layers.len() as i64 - 1
                });
        }
        let record_inputs = inputs.get(key).map_or_else(Vec::new, |step| {
            step.inputs
                .iter()
                .map(|(input, selector)| {
                    input
                        .as_ref()
                        .and_then(|k| links.get(k))
                        .map(|link| CacheInput {
                            selector: selector.as_ref().map(Digest::to_string).unwrap_or_default(),
                            link: *link,
                        })
                        .into_iter()
                        .collect()
                })
                .collect()
        });
        config.records.push(CacheRecord {
            results: vec![CacheResult {
                layer: parent,
                created_at: chain.last().and_then(|l| l.created.clone()),
            }],
            chains: Vec::new(),
            digest: key.clone(),
            inputs: record_inputs,
            key: None,
        });
    }
    // Link records: the same result under a step's link key, naming its real key.
    let mut linked: Vec<CacheRecord> = steps
        .iter()
        .filter_map(|step| {
            let link = step.link.as_ref()?;
            let real = &config.records[usize::try_from(*links.get(&step.key)?).ok()?];
            Some(CacheRecord {
                digest: link.clone(),
                key: Some(step.key.clone()),
                ..real.clone()
            })
        })
        .collect();
    linked.sort_by(|a, b| a.digest.cmp(&b.digest));
    linked.dedup_by(|a, b| a.digest == b.digest);
    config.records.extend(linked);
    (config, layers)
}

/// Makes sure a layer's blob is in the local content store, fetching it from the cache it was
/// imported from, unless the destination registry has it already.
async fn ensure_local(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    export: &CacheExport,
    layer: &Layer,
) -> Result<(), CacheError> {
    let digest = &layer.descriptor.digest;
    if inner.store.content().contains(digest) {
        return Ok(());
    }
    let Some(source) = &layer.remote else {
        return Err(CacheError::Invalid {
            name: export.backend.to_string(),
            what: format!("layer blob {digest} is missing from the local store"),
        });
    };
    if let super::CacheBackend::Registry { reference } = &export.backend
        && let Ok(reference) = oci::Reference::parse(reference)
        && registry.blob_exists(&reference, digest).await.unwrap_or(false)
    {
        return Ok(());
    }
    source
        .blobs
        .fetch(&inner.store, &layer.descriptor)
        .await
        .map_err(|source_error| CacheError::Fetch {
            name: source.name.clone(),
            digest: digest.clone(),
            source: Box::new(source_error),
        })
}

/// The contents of the cache mounts the build used, each as a gzip tar blob annotated with the
/// cache's id and base (`cache-mounts=true`).
async fn cache_mount_blobs(
    inner: &Arc<Inner>,
    used: &[super::UsedCacheMount],
    progress: &crate::progress::Step,
) -> Result<Vec<Descriptor>, CacheError> {
    let mut out = Vec::new();
    for mount in used {
        progress.status(format!("exporting cache mount {:?}", mount.id));
        let (store, dir) = (inner.store.clone(), mount.dir.clone());
        let (mut descriptor, _) = tokio::task::spawn_blocking(move || exporter::directory_blob(&store, &dir))
            .await
            .map_err(CacheError::Join)?
            .map_err(CacheError::Layers)?;
        descriptor
            .annotations
            .insert(super::ANNOTATION_CACHE_MOUNT_ID.into(), mount.id.clone());
        descriptor
            .annotations
            .insert(super::ANNOTATION_CACHE_MOUNT_BASE.into(), mount.base.clone());
        out.push(descriptor);
    }
    Ok(out)
}

/// The manifest (or index) of a cache object; `extra` are blobs listed after the layers
/// (cache-mount contents), which the cache config does not name.
fn object(
    export: &CacheExport,
    config: CacheConfig,
    layers: &[Layer],
    extra: Vec<Descriptor>,
) -> CacheObject {
    let config = config.to_bytes();
    let config_descriptor = Descriptor::new(
        oci::cache::CACHE_CONFIG_V0,
        Digest::of(&config),
        config.len() as u64,
    );
    let mut seen = BTreeSet::new();
    let descriptors: Vec<Descriptor> = layers
        .iter()
        .filter(|l| seen.insert(l.descriptor.digest.clone()))
        .map(|l| {
            let mut d = Descriptor::new(
                layer_media_type(&l.descriptor.media_type, export.oci_media_types),
                l.descriptor.digest.clone(),
                l.descriptor.size,
            );
            d.annotations
                .insert(ANNOTATION_UNCOMPRESSED.into(), l.diff_id.to_string());
            if let Some(created) = &l.created {
                d.annotations
                    .insert(ANNOTATION_CREATED_AT.into(), created.clone());
            }
            d
        })
        .chain(extra)
        .collect();
    let (manifest, manifest_type) = if export.image_manifest {
        let manifest = oci::ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: config_descriptor,
            layers: descriptors.clone(),
            annotations: BTreeMap::new(),
        };
        (
            serde_json::to_vec(&manifest).unwrap_or_default(),
            media_type::OCI_MANIFEST,
        )
    } else {
        let index_type = if export.oci_media_types {
            media_type::OCI_INDEX
        } else {
            media_type::DOCKER_MANIFEST_LIST
        };
        let index = oci::ImageIndex {
            schema_version: 2,
            media_type: Some(index_type.into()),
            manifests: descriptors.iter().cloned().chain([config_descriptor]).collect(),
            annotations: BTreeMap::new(),
        };
        (serde_json::to_vec(&index).unwrap_or_default(), index_type)
    };
    CacheObject {
        layers: descriptors,
        config,
        manifest,
        manifest_type,
    }
}

/// A layer media type under OCI's names or Docker's.
fn layer_media_type(recorded: &str, oci: bool) -> String {
    use media_type::Compression as C;
    match (media_type::layer_compression(recorded), oci) {
        (Some(C::Gzip), true) => media_type::OCI_LAYER_GZIP.into(),
        (Some(C::Zstd), true) => media_type::OCI_LAYER_ZSTD.into(),
        (Some(C::None), true) => media_type::OCI_LAYER_TAR.into(),
        (Some(C::Gzip), false) => media_type::DOCKER_LAYER_GZIP.into(),
        (Some(C::Zstd), false) => media_type::DOCKER_LAYER_ZSTD.into(),
        (Some(C::None), false) => media_type::DOCKER_LAYER_TAR.into(),
        (None, _) => recorded.to_string(),
    }
}
