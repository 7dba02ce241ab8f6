//! BuildKit's remote cache format (`application/vnd.buildkit.cacheconfig.v0`).
//!
//! A cache object is an OCI image manifest (or, in BuildKit's older form, an index) whose config
//! blob is a [`CacheConfig`] and whose layers are the layer blobs the config names. The config
//! lists `layers` (a blob and the index of its parent layer, `-1` for none: so each layer is the
//! top of a chain) and `records` (a cache key's digest, links to the records of its inputs, and
//! its results: the index of the top layer of each result's chain).
//!
//! Cache data is untrusted. [`CacheConfig::parse`] refuses documents over
//! [`MAX_CONFIG_SIZE`] and anything that is not the format; [`CacheConfig::results`] turns the
//! rest into layer chains and drops what cannot be followed (a result naming a layer that is not
//! there, parent links that loop, a layer without the diff ID needed to apply it), so such a
//! record is a cache miss, never a wrong result.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Descriptor, Digest};

/// The media type of a cache config blob.
pub const CACHE_CONFIG_V0: &str = "application/vnd.buildkit.cacheconfig.v0";

/// The largest cache config read (a config of many thousand steps takes a few MiB).
pub const MAX_CONFIG_SIZE: u64 = 32 << 20;

/// The annotation of a layer descriptor naming the digest of its uncompressed content.
pub const ANNOTATION_UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// The annotation of a layer descriptor with the time its snapshot was made.
pub const ANNOTATION_CREATED_AT: &str = "buildkit/createdat";

/// The longest layer chain followed (deeper chains are refused as loops).
const MAX_CHAIN: usize = 1_000;

/// The most layers all the chains of one config may hold together.
const MAX_RESULT_LAYERS: usize = 100_000;

/// A cache config: layers and the records that point at them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Layer blobs, each with its parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<CacheLayer>,
    /// Cache records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<CacheRecord>,
}

/// One layer blob of a cache and the layer under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The blob.
    pub blob: Digest,
    /// Index of the parent layer in [`CacheConfig::layers`]; `-1` for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parent: i64,
    /// What the blob is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

/// What a layer blob is, as BuildKit records it next to the blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerAnnotations {
    /// The blob's media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// The digest of the uncompressed layer tar.
    #[serde(rename = "diffID", default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// The blob's size.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    /// When the layer was made (RFC 3339).
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// One cache key and its results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Results: each the top layer of a chain.
    #[serde(rename = "layers", default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CacheResult>,
    /// Results made of several chains (BuildKit's merges).
    #[serde(rename = "chains", default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainedResult>,
    /// The cache key.
    pub digest: Digest,
    /// Per input of the step, links to the records of what it was built on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<CacheInput>>,
    /// kiln's extension (other readers ignore it): when `digest` is a link key (a step's key as
    /// if its inputs entered by their keys, not their content), the real cache key it stands for.
    #[serde(rename = "kiln/key", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Digest>,
}

/// A result: the top layer of its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheResult {
    /// Index in [`CacheConfig::layers`].
    pub layer: i64,
    /// When the result was made (RFC 3339).
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A result made of several chains stacked in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedResult {
    /// Indexes in [`CacheConfig::layers`] of the top layer of each chain.
    pub layers: Vec<i64>,
    /// When the result was made (RFC 3339).
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// A link from a record to the record of one of its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInput {
    /// What part of the input the step read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Index in [`CacheConfig::records`].
    pub link: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Why a cache config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CacheConfigError {
    /// Larger than [`MAX_CONFIG_SIZE`].
    #[error("cache config is {size} bytes, more than the {MAX_CONFIG_SIZE} bytes kiln reads")]
    TooBig {
        /// Its size.
        size: u64,
    },
    /// Not a cache config document.
    #[error("invalid cache config")]
    Decode(#[source] serde_json::Error),
}

/// One layer of a result's chain, as needed to fetch and apply it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLayer {
    /// The blob (media type, digest, size).
    pub descriptor: Descriptor,
    /// The digest of its uncompressed content.
    pub diff_id: Digest,
    /// When it was made, if recorded.
    pub created_at: Option<String>,
}

/// What [`CacheConfig::results`] found: a chain per cache key, and how many records or results
/// it had to drop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheResults {
    /// The layer chain (base first) of each cache key's first usable result (shared between
    /// the keys whose results are the same layer).
    pub chains: BTreeMap<Digest, Arc<[ChainLayer]>>,
    /// Results that could not be followed (bad layer indexes, loops, missing diff IDs).
    pub dropped: usize,
    /// Link keys and the cache keys they stand for (records with [`CacheRecord::key`]).
    pub links: BTreeMap<Digest, Digest>,
}

impl CacheConfig {
    /// Reads a cache config blob (untrusted).
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, CacheConfigError> {
        if bytes.len() as u64 > MAX_CONFIG_SIZE {
            return Err(CacheConfigError::TooBig {
                size: bytes.len() as u64,
            });
        }
        serde_json::from_slice(bytes).map_err(CacheConfigError::Decode)
    }

    /// The config as canonical JSON (fields in a fixed order, no spaces).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising these types cannot fail: no maps with non-string keys, no foreign types.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The layer chain of every record's first usable result. `blobs` are the descriptors the
    /// cache object lists (its manifest's layers), by digest: a layer's media type, size and diff
    /// ID come from its annotations in the config, else from there.
    pub fn results(&self, blobs: &BTreeMap<Digest, Descriptor>) -> CacheResults {
        let mut out = CacheResults::default();
        // Each top layer's chain is followed once and shared by every record that names it, and
        // all chains together hold at most MAX_RESULT_LAYERS layers: a hostile config cannot make
        // this quadratic in time or memory.
        let mut memo: HashMap<i64, Option<Arc<[ChainLayer]>>> = HashMap::new();
        let mut budget = MAX_RESULT_LAYERS;
        for record in &self.records {
            let tops = record.results.iter().map(|r| r.layer).chain(
                record
                    .chains
                    .iter()
                    .filter(|c| c.layers.len() == 1)
                    .map(|c| c.layers[0]),
            );
            let mut found = None;
            for top in tops {
                let chain = memo
                    .entry(top)
                    .or_insert_with(|| self.chain(top, blobs, &mut budget))
                    .clone();
                match chain {
                    Some(chain) => {
                        found = Some(chain);
                        break;
                    }
                    None => out.dropped += 1,
                }
            }
            if let Some(chain) = found {
                out.chains.entry(record.digest.clone()).or_insert(chain);
            }
            if let Some(key) = &record.key {
                out.links
                    .entry(record.digest.clone())
                    .or_insert_with(|| key.clone());
            }
        }
        out
    }

    /// The chain of layers whose top is layer `top`, base first; `None` when it cannot be
    /// followed, or would take more than what is left of `budget`.
    fn chain(
        &self,
        top: i64,
        blobs: &BTreeMap<Digest, Descriptor>,
        budget: &mut usize,
    ) -> Option<Arc<[ChainLayer]>> {
        let mut chain = Vec::new();
        let mut next = top;
        while next != -1 {
            let layer = self.layers.get(usize::try_from(next).ok()?)?;
            if chain.len() >= MAX_CHAIN.min(self.layers.len()) || chain.len() >= *budget {
                return None;
            }
            chain.push(chain_layer(layer, blobs)?);
            next = layer.parent;
        }
        *budget -= chain.len();
        chain.reverse();
        Some(chain.into())
    }
}

/// A layer of the config as a chain layer, its facts from its annotations or the cache object's
/// descriptor.
fn chain_layer(layer: &CacheLayer, blobs: &BTreeMap<Digest, Descriptor>) -> Option<ChainLayer> {
    let listed = blobs.get(&layer.blob);
    let noted = layer.annotations.as_ref();
    let media_type = noted
        .map(|a| a.media_type.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| listed.map(|d| d.media_type.clone()))?;
    let size = match noted.map(|a| a.size).filter(|s| *s > 0) {
        Some(size) => u64::try_from(size).ok()?,
        None => listed?.size,
    };
    let diff_id = match noted.and_then(|a| a.diff_id.clone()) {
        Some(diff_id) => diff_id,
        None => listed?.annotations.get(ANNOTATION_UNCOMPRESSED)?.parse().ok()?,
    };
    let created_at = noted
        .and_then(|a| a.created_at.clone())
        .or_else(|| listed.and_then(|d| d.annotations.get(ANNOTATION_CREATED_AT).cloned()));
    Some(ChainLayer {
        descriptor: Descriptor::new(media_type, layer.blob.clone(), size),
        diff_id,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn layer(n: u8, parent: i64) -> CacheLayer {
        CacheLayer {
            blob: digest(n),
            parent,
            annotations: Some(LayerAnnotations {
                media_type: crate::media_type::OCI_LAYER_GZIP.into(),
                diff_id: Some(digest(100 + n)),
                size: 10,
                created_at: None,
            }),
        }
    }

    fn record(key: u8, layer: i64) -> CacheRecord {
        CacheRecord {
            results: vec![CacheResult {
                layer,
                created_at: None,
            }],
            chains: Vec::new(),
            digest: digest(key),
            inputs: Vec::new(),
            key: None,
        }
    }

    #[test]
    fn reads_buildkits_field_names_and_follows_parents() {
        let text = format!(
            r#"{{"layers":[{{"blob":"{a}","parent":-1,"annotations":{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"{da}","size":5,"createdAt":"2024-01-01T00:00:00Z"}}}},
               {{"blob":"{b}","annotations":{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"{db}","size":6}}}}],
               "records":[{{"layers":[{{"layer":1,"createdAt":"2024-01-01T00:00:00Z"}}],"digest":"{k}","inputs":[[{{"selector":"s","link":0}}]]}}]}}"#,
            a = digest(1),
            b = digest(2),
            da = digest(11),
            db = digest(12),
            k = digest(9)
        );
        let config = CacheConfig::parse(text.as_bytes()).unwrap();
        // `parent` omitted means 0, as Go's omitempty writes it.
        assert_eq!(config.layers[1].parent, 0);
        let results = config.results(&BTreeMap::new());
        let chain = &results.chains[&digest(9)];
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].descriptor.digest, digest(1));
        assert_eq!(chain[0].diff_id, digest(11));
        assert_eq!(chain[0].created_at.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(chain[1].descriptor.size, 6);
        assert_eq!(results.dropped, 0);
    }

    #[test]
    fn serialises_deterministically_and_reads_back() {
        let mut link = record(8, 1);
        link.key = Some(digest(7));
        let config = CacheConfig {
            layers: vec![layer(1, -1), layer(2, 0)],
            records: vec![record(7, 1), link],
        };
        assert_eq!(config.results(&BTreeMap::new()).links[&digest(8)], digest(7));
        let bytes = config.to_bytes();
        assert_eq!(bytes, config.to_bytes());
        assert_eq!(CacheConfig::parse(&bytes).unwrap(), config);
        // The record's results are listed under BuildKit's name.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""records":[{"layers":[{"layer":1}]"#), "{text}");
    }

    #[test]
    fn chains_are_shared_and_bounded() {
        // 1000 layers in one chain, and many records on its top: followed once, shared.
        let layers: Vec<CacheLayer> = (0..1000).map(|i| layer((i % 100) as u8, i as i64 - 1)).collect();
        let records: Vec<CacheRecord> = (0..200u8).map(|k| record(k, 999)).collect();
        let config = CacheConfig { layers, records };
        let results = config.results(&BTreeMap::new());
        assert_eq!(results.chains.len(), 200);
        let first = &results.chains[&digest(0)];
        assert_eq!(first.len(), 1000);
        assert!(Arc::ptr_eq(first, &results.chains[&digest(199)]));
        // Distinct tops beyond the budget are dropped, not built.
        let layers: Vec<CacheLayer> = (0..1000).map(|i| layer((i % 100) as u8, i as i64 - 1)).collect();
        let records: Vec<CacheRecord> = (0..1000).map(|i| record((i % 250) as u8, i as i64)).collect();
        let results = CacheConfig { layers, records }.results(&BTreeMap::new());
        let kept: usize = results.chains.values().map(|c| c.len()).sum();
        assert!(kept <= MAX_RESULT_LAYERS, "{kept}");
    }

    #[test]
    fn hostile_configs_are_errors_or_misses_never_panics() {
        assert!(matches!(
            CacheConfig::parse(&vec![b' '; MAX_CONFIG_SIZE as usize + 1]),
            Err(CacheConfigError::TooBig { .. })
        ));
        assert!(CacheConfig::parse(b"{\"layers\":[{\"blob\":\"md5:x\"}]}").is_err());
        assert!(CacheConfig::parse(b"[1,2]").is_err());
        let config = CacheConfig {
            // 0 → 1 → 0 loops; 2 names a parent that is not there.
            layers: vec![layer(1, 1), layer(2, 0), layer(3, 99)],
            records: vec![record(1, 0), record(2, 2), record(3, 5), record(4, -7)],
        };
        let results = config.results(&BTreeMap::new());
        assert!(results.chains.is_empty(), "{results:?}");
        assert_eq!(results.dropped, 4);
        // A layer without a diff ID anywhere cannot be applied: a miss.
        let mut bare = layer(1, -1);
        bare.annotations = None;
        let config = CacheConfig {
            layers: vec![bare],
            records: vec![record(1, 0)],
        };
        assert!(config.results(&BTreeMap::new()).chains.is_empty());
        // … unless the cache object's descriptor has it.
        let mut listed = Descriptor::new(crate::media_type::OCI_LAYER_GZIP, digest(1), 3);
        listed
            .annotations
            .insert(ANNOTATION_UNCOMPRESSED.into(), digest(50).to_string());
        let blobs = BTreeMap::from([(digest(1), listed)]);
        assert_eq!(config.results(&blobs).chains[&digest(1)][0].diff_id, digest(50));
    }
}
