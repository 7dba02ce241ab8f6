//! Blobs: streamed, verified downloads ([`BlobReader`]), existence checks and monolithic
//! uploads.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use oci::{Descriptor, Digest, Reference};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use sha2::Digest as _;

use crate::client::{Client, Request};
use crate::error::Error;
use crate::http::{Body, Timeouts, header_length, header_str, read_chunk};
use crate::target::{Access, Target};

/// What to upload as a blob.
#[derive(Clone, Debug)]
pub enum BlobBody {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, streamed from disk.
    File(PathBuf),
}

/// A blob download in progress. [`BlobReader::chunk`] verifies size and digest against the
/// descriptor: the end of the stream is reported only once both matched.
pub struct BlobReader {
    response: Response,
    hasher: sha2::Sha256,
    received: u64,
    descriptor: Descriptor,
    reference: String,
    url: String,
    state: ReaderState,
    timeouts: Timeouts,
}

#[derive(PartialEq, Eq)]
enum ReaderState {
    Streaming,
    Verified,
    Failed,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.url)
            .field("digest", &self.descriptor.digest)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The descriptor being downloaded.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The next chunk of the blob; `Ok(None)` once all of it arrived and matched the descriptor.
    /// Errors with [`Error::SizeMismatch`] as soon as the stream exceeds the descriptor's size,
    /// and with [`Error::SizeMismatch`] or [`Error::DigestMismatch`] at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        match self.state {
            ReaderState::Verified => return Ok(None),
            ReaderState::Failed => {
                return Err(Error::InvalidResponse {
                    url: self.url.clone(),
                    reason: "blob download already failed".into(),
                });
            }
            ReaderState::Streaming => {}
        }
        self.state = ReaderState::Failed;
        let size_mismatch = |actual| Error::SizeMismatch {
            reference: self.reference.clone(),
            digest: self.descriptor.digest.clone(),
            expected: self.descriptor.size,
            actual,
        };
        match read_chunk(&mut self.response, self.timeouts).await? {
            Some(chunk) => {
                self.received += chunk.len() as u64;
                if self.received > self.descriptor.size {
                    return Err(size_mismatch(self.received));
                }
                self.hasher.update(&chunk);
                self.state = ReaderState::Streaming;
                Ok(Some(chunk))
            }
            None => {
                if self.received != self.descriptor.size {
                    return Err(size_mismatch(self.received));
                }
                let actual = Digest::from_sha256(self.hasher.finalize_reset().into());
                if actual != self.descriptor.digest {
                    return Err(Error::DigestMismatch {
                        reference: self.reference.clone(),
                        expected: self.descriptor.digest.clone(),
                        actual,
                    });
                }
                self.state = ReaderState::Verified;
                Ok(None)
            }
        }
    }
}

impl Client {
    /// Starts downloading the blob `descriptor` names from `reference`'s repository, following
    /// redirects to storage. The reader verifies size and digest.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, Error> {
        let target = self.target(reference, Access::Pull)?;
        let url = target.url(&format!("blobs/{}", descriptor.digest))?;
        let response = self
            .send(&target, &Request::new(Method::GET, url.clone()))
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::BlobUnknown {
                    reference: target.reference,
                    digest: descriptor.digest.clone(),
                });
            }
            _ => {
                return Err(target
                    .http_error(&self.shared.http, "fetch blob", &url, response)
                    .await);
            }
        }
        if let Some(length) = header_length(response.headers())
            && length != descriptor.size
        {
            return Err(target.size_mismatch(descriptor, length));
        }
        Ok(BlobReader {
            url: response.url().to_string(),
            response,
            hasher: sha2::Sha256::new(),
            received: 0,
            descriptor: descriptor.clone(),
            reference: target.reference,
            state: ReaderState::Streaming,
            timeouts: self.shared.http.timeouts(),
        })
    }

    /// Whether `reference`'s repository has the blob `digest`.
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        let target = self.target(reference, Access::Pull)?;
        self.blob_exists_at(&target, digest).await
    }

    /// Uploads a blob to `reference`'s repository in one request (POST for an upload session,
    /// then PUT with the digest), unless the repository already has it. File bodies are
    /// streamed from disk.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        body: BlobBody,
    ) -> Result<(), Error> {
        let target = self.target(reference, Access::Push)?;
        let body = match body {
            BlobBody::Bytes(bytes) => {
                if bytes.len() as u64 != descriptor.size {
                    return Err(target.size_mismatch(descriptor, bytes.len() as u64));
                }
                let actual = Digest::of(&bytes);
                if actual != descriptor.digest {
                    return Err(target.digest_mismatch(&descriptor.digest, &actual));
                }
                Body::Bytes(bytes)
            }
            BlobBody::File(path) => {
                let len = tokio::fs::metadata(&path)
                    .await
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                if len != descriptor.size {
                    return Err(target.size_mismatch(descriptor, len));
                }
                Body::File(path, len)
            }
        };
        if self.blob_exists_at(&target, &descriptor.digest).await? {
            return Ok(());
        }
        let start = target.url("blobs/uploads/")?;
        let request = Request::new(Method::POST, start.clone()).header(CONTENT_LENGTH.as_str(), "0");
        let response = self.send(&target, &request).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(target
                .http_error(&self.shared.http, "start blob upload", &start, response)
                .await);
        }
        let location =
            header_str(response.headers(), LOCATION.as_str()).ok_or_else(|| Error::InvalidResponse {
                url: start.to_string(),
                reason: "upload session without a location".into(),
            })?;
        let mut put = start.join(location).map_err(|e| Error::InvalidResponse {
            url: start.to_string(),
            reason: format!("invalid upload location {location:?}: {e}"),
        })?;
        put.query_pairs_mut()
            .append_pair("digest", &descriptor.digest.to_string());
        let mut request =
            Request::new(Method::PUT, put.clone()).header(CONTENT_TYPE.as_str(), "application/octet-stream");
        request.body = body;
        let response = self.send(&target, &request).await?;
        if !response.status().is_success() {
            return Err(target
                .http_error(&self.shared.http, "push blob", &put, response)
                .await);
        }
        Ok(())
    }

    async fn blob_exists_at(&self, target: &Target, digest: &Digest) -> Result<bool, Error> {
        let url = target.url(&format!("blobs/{digest}"))?;
        let response = self
            .send(target, &Request::new(Method::HEAD, url.clone()))
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(target
                .http_error(&self.shared.http, "check blob", &url, response)
                .await),
        }
    }
}
