//! OCI image layout directories as image sources: `--build-context NAME=oci-layout://DIR[:TAG|
//! @DIGEST]`, and the layout directories of `type=local` remote caches.
//!
//! A layout context becomes an image reference under the reserved host [`LAYOUT_HOST`]
//! (`oci-layout.invalid/NAME`, a name no registry can have), so that the frontend treats it as
//! any other image (`FROM NAME`, `COPY --from=NAME`, ONBUILD triggers): the resolver reads the
//! manifest and config from the directory (verified by digest) into the content store and pins
//! the reference to the manifest's digest; the image source op then finds both there and
//! fetches layer blobs from the directory ([`LayoutBlobs`]) instead of a registry. The directory
//! is the client's: it travels in the build's session, never in LLB or a cache key (which is the
//! manifest digest, as for any image).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci::{Descriptor, Digest, ImageIndex, Platform, Reference, media_type};
use sources::pull::{BlobSource, BoxFuture, PullError};
use store::Store;

/// The registry host of layout contexts' references (`.invalid` is reserved: no registry has it).
pub(crate) const LAYOUT_HOST: &str = "oci-layout.invalid";

/// The largest `index.json`, manifest or config read from a layout.
const MAX_DOCUMENT: u64 = 4 << 20;

/// The annotation naming a manifest's tag in an OCI layout's `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors of reading a layout context.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The layout is not what it should be.
    #[error("OCI layout {}: {what}", dir.display())]
    Invalid {
        /// The layout directory.
        dir: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A document does not parse.
    #[error("OCI layout {}: bad {document}", dir.display())]
    Document {
        /// The layout directory.
        dir: PathBuf,
        /// Which one.
        document: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The content store failed.
    #[error("failed to store the image of OCI layout {}", dir.display())]
    Store {
        /// The layout directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: store::Error,
    },
}

/// A parsed `oci-layout://DIR[:TAG|@DIGEST]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LayoutSpec {
    pub(crate) dir: PathBuf,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<Digest>,
}

/// Parses what follows `oci-layout://`.
pub(crate) fn parse_spec(value: &str) -> Result<LayoutSpec, String> {
    if let Some((dir, digest)) = value.rsplit_once('@') {
        let digest = digest
            .parse::<Digest>()
            .map_err(|e| format!("invalid digest {digest:?}: {e}"))?;
        return Ok(LayoutSpec {
            dir: PathBuf::from(dir),
            tag: None,
            digest: Some(digest),
        });
    }
    match value.rsplit_once(':') {
        Some((dir, tag)) if !tag.is_empty() && !tag.contains('/') => Ok(LayoutSpec {
            dir: PathBuf::from(dir),
            tag: Some(tag.to_string()),
            digest: None,
        }),
        _ => Ok(LayoutSpec {
            dir: PathBuf::from(value),
            tag: None,
            digest: None,
        }),
    }
}

/// Splits what follows `oci-layout://` into the layout's directory and what picks the image in
/// it (`:TAG`, `@DIGEST` or nothing): a client of a daemon sends the directory as one of its
/// local directories and the rest beside it.
pub fn split_layout_context(value: &str) -> Result<(PathBuf, String), String> {
    let spec = parse_spec(value)?;
    let pick = match (&spec.tag, &spec.digest) {
        (_, Some(digest)) => format!("@{digest}"),
        (Some(tag), None) => format!(":{tag}"),
        (None, None) => String::new(),
    };
    Ok((spec.dir, pick))
}

/// The reference a layout context named `name` is known by.
pub(crate) fn reference(name: &str, spec: &LayoutSpec) -> Result<Reference, String> {
    let repo: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut text = format!("{LAYOUT_HOST}/{}", repo.trim_matches('-'));
    if let Some(tag) = &spec.tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = &spec.digest {
        text.push('@');
        text.push_str(&digest.to_string());
    }
    Reference::parse(&text).map_err(|e| format!("{e}"))
}

/// The name of a layout context's directory among the build's local directories (never an
/// LLB local source: `:` is not in the names the frontend gives them).
pub(crate) fn local_name(reference: &Reference) -> String {
    format!("oci-layout:{}", reference.repository())
}

/// Whether `reference` names a layout context.
pub(crate) fn is_layout(reference: &Reference) -> bool {
    reference.registry() == LAYOUT_HOST
}

fn invalid(dir: &Path, what: String) -> LayoutError {
    LayoutError::Invalid {
        dir: dir.to_path_buf(),
        what,
    }
}

/// The path of a blob in a layout directory.
pub(crate) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm()).join(digest.hex())
}

/// The `index.json` of a layout (at most 4 MiB).
pub(crate) fn read_index(dir: &Path) -> Result<ImageIndex, LayoutError> {
    let bytes = read_limited(&dir.join("index.json"), MAX_DOCUMENT)?;
    serde_json::from_slice(&bytes).map_err(|source| LayoutError::Document {
        dir: dir.to_path_buf(),
        document: "index.json",
        source,
    })
}

/// Reads a whole file of at most `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let read_error = |source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes kiln reads"),
        )));
    }
    Ok(bytes)
}

/// Reads a blob of at most `limit` bytes, checking its digest.
pub(crate) fn read_blob(dir: &Path, digest: &Digest, limit: u64) -> Result<Vec<u8>, LayoutError> {
    let bytes = read_limited(&blob_path(dir, digest), limit)?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(invalid(dir, format!("blob {digest} has digest {actual}")));
    }
    Ok(bytes)
}

/// Finds the image of `spec` for `platform` in its layout, puts its manifest and config into
/// the content store, and returns the manifest's digest and the config. Blocking.
pub(crate) fn resolve(
    store: &Store,
    spec: &LayoutSpec,
    platform: &Platform,
) -> Result<(Digest, oci::ImageConfig), LayoutError> {
    let dir = &spec.dir;
    let index = read_index(dir)?;
    let document = |document| {
        move |source| LayoutError::Document {
            dir: dir.clone(),
            document,
            source,
        }
    };
    let entry = entry(dir, &index, spec)?;
    let mut manifest_digest = entry.digest.clone();
    let mut bytes = read_blob(dir, &manifest_digest, MAX_DOCUMENT)?;
    if media_type::is_index(&entry.media_type) {
        let nested: ImageIndex = serde_json::from_slice(&bytes).map_err(document("image index"))?;
        let chosen = registry::select_platform(&nested, platform)
            .ok_or_else(|| invalid(dir, format!("its image index has no manifest for {platform}")))?;
        manifest_digest = chosen.digest.clone();
        bytes = read_blob(dir, &manifest_digest, MAX_DOCUMENT)?;
    }
    let manifest: oci::ImageManifest = serde_json::from_slice(&bytes).map_err(document("manifest"))?;
    let config_bytes = read_blob(dir, &manifest.config.digest, MAX_DOCUMENT)?;
    let config: oci::ImageConfig = serde_json::from_slice(&config_bytes).map_err(document("image config"))?;
    let store_error = |source| LayoutError::Store {
        dir: dir.clone(),
        source,
    };
    store.content().write(&bytes).map_err(store_error)?;
    store.content().write(&config_bytes).map_err(store_error)?;
    Ok((manifest_digest, config))
}

/// The entry of `index.json` that `spec` names: by digest, by tag, or the only one.
pub(crate) fn entry<'i>(
    dir: &Path,
    index: &'i ImageIndex,
    spec: &LayoutSpec,
) -> Result<&'i Descriptor, LayoutError> {
    if let Some(digest) = &spec.digest {
        return index
            .manifests
            .iter()
            .find(|d| d.digest == *digest)
            .ok_or_else(|| invalid(dir, format!("index.json lists no manifest {digest}")));
    }
    let tagged = |tag: &str| {
        index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
    };
    match (&spec.tag, index.manifests.as_slice()) {
        // References get `latest` when they name no tag: a layout with one untagged image
        // answers it too.
        (Some(tag), [only]) if tag == "latest" && tagged(tag).is_none() => Ok(only),
        (Some(tag), _) => {
            tagged(tag).ok_or_else(|| invalid(dir, format!("index.json has no manifest tagged {tag:?}")))
        }
        (None, [only]) => Ok(only),
        (None, _) => tagged("latest").ok_or_else(|| {
            invalid(
                dir,
                format!(
                    "index.json lists {} manifests and none tagged latest: name one with :TAG or @DIGEST",
                    index.manifests.len()
                ),
            )
        }),
    }
}

/// Layer blobs of a layout directory.
pub(crate) struct LayoutBlobs {
    pub(crate) dir: PathBuf,
}

impl BlobSource for LayoutBlobs {
    fn fetch<'a>(
        &'a self,
        store: &'a Arc<Store>,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<(), PullError>> {
        Box::pin(async move {
            let (path, descriptor) = (blob_path(&self.dir, &descriptor.digest), descriptor.clone());
            let name = self.dir.display().to_string();
            sources::pull::on_store(store, &name, move |store| {
                copy_into_store(store, &path, &descriptor)
            })
            .await
        })
    }
}

/// Copies a blob file into the content store, verifying its size and digest.
fn copy_into_store(store: &Store, path: &Path, descriptor: &Descriptor) -> Result<(), store::Error> {
    let io_error = |source| store::Error::Io {
        action: "read blob",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut ingest = store.content().ingest()?;
    let copied = io::copy(&mut file.take(descriptor.size + 1), &mut ingest).map_err(io_error)?;
    if copied != descriptor.size {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{copied} bytes where {} were expected", descriptor.size),
        )));
    }
    ingest.commit(Some(&descriptor.digest)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_buildx() {
        let digest = Digest::of(b"x");
        assert_eq!(
            parse_spec("/tmp/layout").unwrap(),
            LayoutSpec {
                dir: "/tmp/layout".into(),
                tag: None,
                digest: None
            }
        );
        assert_eq!(parse_spec("/tmp/layout:v1").unwrap().tag.as_deref(), Some("v1"));
        assert_eq!(
            parse_spec(&format!("/tmp/layout@{digest}")).unwrap().digest,
            Some(digest.clone())
        );
        assert!(parse_spec("/tmp/layout@sha256:zz").is_err());
        // A colon inside the path is not a tag.
        assert_eq!(
            parse_spec("/tmp/a:b/layout").unwrap().dir,
            PathBuf::from("/tmp/a:b/layout")
        );
        let reference = reference("My_Base", &parse_spec("/x:v2").unwrap()).unwrap();
        assert!(is_layout(&reference));
        assert_eq!(reference.to_string(), "oci-layout.invalid/my-base:v2");
    }
}
