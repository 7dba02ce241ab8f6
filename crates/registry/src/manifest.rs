//! Manifests and indexes: fetching (exact bytes, verified digests), HEAD, resolving a tag to
//! the manifest for a platform, pushing; and the decoders of what a registry sends for them.

use bytes::Bytes;
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, Platform, Reference, media_type};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::client::{Client, Request};
use crate::error::Error;
use crate::http::{Body, header_digest, header_length, header_str};
use crate::target::Access;

/// Manifests and indexes larger than this are refused (the limit distribution itself uses).
const MANIFEST_LIMIT: u64 = 4 << 20;
/// Every manifest type this client can read, offered on manifest requests.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A manifest or index as received.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The exact bytes received.
    pub bytes: Bytes,
    /// Its media type (from `Content-Type`, or the document's `mediaType` when the header is
    /// missing or generic).
    pub media_type: String,
    /// The sha256 of `bytes`.
    pub digest: Digest,
}

/// A reference resolved to a single-platform image manifest.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference that was resolved.
    pub reference: Reference,
    /// The digest of the index the reference pointed at, when it pointed at one.
    pub index_digest: Option<Digest>,
    /// The single-platform manifest's exact bytes.
    pub manifest: FetchedManifest,
    /// The manifest parsed from those bytes.
    pub parsed: ImageManifest,
}

impl Client {
    /// GETs the manifest or index for `reference` (by digest when it has one, else by tag).
    /// Verifies the bytes against the reference's digest, or against `Docker-Content-Digest`
    /// when fetching by tag.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        let target = self.target(reference, Access::Pull)?;
        let url = target.url(&format!("manifests/{}", reference.manifest_reference()))?;
        let request = Request::new(Method::GET, url.clone()).header(ACCEPT.as_str(), MANIFEST_ACCEPT);
        let response = self.send(&target, &request).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::ManifestUnknown {
                    reference: reference.to_string(),
                });
            }
            _ => {
                return Err(target
                    .http_error(&self.shared.http, "fetch manifest", &url, response)
                    .await);
            }
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str()).map(str::to_string);
        let announced = header_digest(response.headers());
        let bytes = self.shared.http.read_limited(response, MANIFEST_LIMIT).await?;
        let digest = Digest::of(&bytes);
        // A pinned digest is what the caller trusts; otherwise check what the registry claimed.
        if let Some(expected) = reference.digest().cloned().or(announced)
            && expected != digest
        {
            return Err(target.digest_mismatch(&expected, &digest));
        }
        let media_type = detect_media_type(content_type.as_deref(), &bytes);
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEADs the manifest: its descriptor without the body, or `None` when the registry does
    /// not know it. Falls back to a GET when the registry omits the digest, size or media type.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>, Error> {
        let target = self.target(reference, Access::Pull)?;
        let url = target.url(&format!("manifests/{}", reference.manifest_reference()))?;
        let request = Request::new(Method::HEAD, url.clone()).header(ACCEPT.as_str(), MANIFEST_ACCEPT);
        let response = self.send(&target, &request).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => {
                return Err(target
                    .http_error(&self.shared.http, "check manifest", &url, response)
                    .await);
            }
        }
        let headers = response.headers();
        let content_type = header_str(headers, CONTENT_TYPE.as_str()).and_then(specific_media_type);
        match (header_digest(headers), header_length(headers), content_type) {
            (Some(digest), Some(size), Some(media_type)) => {
                if let Some(expected) = reference.digest()
                    && *expected != digest
                {
                    return Err(target.digest_mismatch(expected, &digest));
                }
                Ok(Some(Descriptor::new(media_type, digest, size)))
            }
            _ => match self.fetch_manifest(reference).await {
                Ok(m) => Ok(Some(Descriptor::new(
                    m.media_type,
                    m.digest,
                    m.bytes.len() as u64,
                ))),
                Err(Error::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Resolves `reference` to the single-platform manifest for `platform`, going through an
    /// index when the reference points at one.
    pub async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage, Error> {
        let fetched = self.fetch_manifest(reference).await?;
        let (index_digest, manifest) = if media_type::is_index(&fetched.media_type) {
            let index: ImageIndex =
                serde_json::from_slice(&fetched.bytes).map_err(|source| Error::InvalidJson {
                    what: "image index",
                    reference: reference.to_string(),
                    source,
                })?;
            let Some(chosen) = select_platform(&index, platform) else {
                let mut available: Vec<String> = Vec::new();
                for p in index.manifests.iter().filter_map(|d| d.platform.as_ref()) {
                    let name = p.to_string();
                    if p.os != "unknown" && !available.contains(&name) {
                        available.push(name);
                    }
                }
                return Err(Error::NoMatchingPlatform {
                    reference: reference.to_string(),
                    wanted: platform.to_string(),
                    available,
                });
            };
            let child_ref = reference.with_digest(chosen.digest.clone());
            let child = self.fetch_manifest(&child_ref).await?;
            if child.bytes.len() as u64 != chosen.size {
                return Err(Error::SizeMismatch {
                    reference: child_ref.to_string(),
                    digest: chosen.digest.clone(),
                    expected: chosen.size,
                    actual: child.bytes.len() as u64,
                });
            }
            (Some(fetched.digest), child)
        } else {
            (None, fetched)
        };
        if !media_type::is_manifest(&manifest.media_type) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: manifest.media_type,
            });
        }
        let parsed = serde_json::from_slice(&manifest.bytes).map_err(|source| Error::InvalidJson {
            what: "image manifest",
            reference: reference.to_string(),
            source,
        })?;
        Ok(ResolvedImage {
            reference: reference.clone(),
            index_digest,
            manifest,
            parsed,
        })
    }

    /// PUTs a manifest or index under the reference's tag, or its digest when it has no tag.
    /// Returns the digest of the bytes (checked against the reference's digest, if any).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, Error> {
        let target = self.target(reference, Access::Push)?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest()
            && *expected != digest
        {
            return Err(target.digest_mismatch(expected, &digest));
        }
        let name = reference.tag().map_or_else(|| digest.to_string(), str::to_string);
        let url = target.url(&format!("manifests/{name}"))?;
        let mut request = Request::new(Method::PUT, url.clone()).header(CONTENT_TYPE.as_str(), media_type);
        request.body = Body::Bytes(bytes);
        let response = self.send(&target, &request).await?;
        if !response.status().is_success() {
            return Err(target
                .http_error(&self.shared.http, "push manifest", &url, response)
                .await);
        }
        // A registry that stored different bytes than we sent would break every digest we hand out.
        if let Some(stored) = header_digest(response.headers())
            && stored != digest
        {
            return Err(target.digest_mismatch(&digest, &stored));
        }
        Ok(digest)
    }
}

/// The media type of a manifest: the `Content-Type` unless missing or generic, else the
/// document's `mediaType`, else a guess from its shape (OCI allows omitting `mediaType`).
pub(crate) fn detect_media_type(content_type: Option<&str>, body: &[u8]) -> String {
    if let Some(specific) = content_type.and_then(specific_media_type) {
        return specific.to_string();
    }
    let header = content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe {
            media_type: Some(m), ..
        }) if !m.is_empty() => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => media_type::OCI_INDEX.to_string(),
        Ok(Probe { config: Some(_), .. }) => media_type::OCI_MANIFEST.to_string(),
        _ if header.is_empty() => "application/octet-stream".to_string(),
        _ => header.to_string(),
    }
}

/// The media type in a `Content-Type` value, unless it is missing or too generic to say what
/// kind of manifest the body is.
fn specific_media_type(content_type: &str) -> Option<&str> {
    let value = content_type.split(';').next().map(str::trim).unwrap_or("");
    (!matches!(
        value,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    ))
    .then_some(value)
}

/// The index entry for `wanted`: an exact variant match first, then any compatible one.
pub fn select_platform<'i>(index: &'i ImageIndex, wanted: &Platform) -> Option<&'i Descriptor> {
    let candidates = || {
        index
            .manifests
            .iter()
            .filter(|d| media_type::is_manifest(&d.media_type))
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(wanted)))
    };
    candidates()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.variant == wanted.variant))
        .or_else(|| candidates().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_or_document() {
        let oci = media_type::OCI_MANIFEST;
        assert_eq!(
            detect_media_type(Some(&format!("{oci}; charset=utf-8")), b"{}"),
            oci
        );
        let doc =
            br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert_eq!(
            detect_media_type(Some("application/json"), doc),
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            detect_media_type(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            media_type::OCI_INDEX
        );
        assert_eq!(
            detect_media_type(Some("text/plain"), br#"{"config":{},"layers":[]}"#),
            oci
        );
        assert_eq!(
            detect_media_type(Some("application/json"), b"garbage"),
            "application/json"
        );
        assert_eq!(detect_media_type(None, b"garbage"), "application/octet-stream");
    }

    #[test]
    fn platform_selection_prefers_exact_variant() {
        let entry = |platform: &str, byte: &[u8]| {
            let mut d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(byte), 1);
            d.platform = Platform::parse(platform);
            d
        };
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: vec![
                entry("linux/arm64", b"a"),
                entry("linux/arm64/v8", b"b"),
                entry("linux/amd64", b"c"),
            ],
            annotations: Default::default(),
        };
        let pick = |p: &str| select_platform(&index, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/arm64/v8"), Some(Digest::of(b"b")));
        assert_eq!(pick("linux/arm64"), Some(Digest::of(b"a")));
        assert_eq!(pick("linux/amd64"), Some(Digest::of(b"c")));
        assert_eq!(pick("linux/s390x"), None);
    }
}
