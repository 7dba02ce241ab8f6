//! The S3 backend (`type=s3`), through `object_store` (its own SigV4 signer; kiln's TLS
//! settings through its HTTP client).
//!
//! Objects, under `prefix` (BuildKit's key layout): blobs at `blobs_prefix + DIGEST` (default
//! `blobs/sha256:…`), and the cache object's manifest at `manifests_prefix + NAME` (default
//! `manifests/buildkit`) for each name. Blobs are written first, the manifests last, so a reader
//! never finds a manifest whose blobs are missing. Credentials: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (and the other `AWS_*` settings
//! `object_store` reads), or `access_key_id=`/`secret_access_key=`/`session_token=`.

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use oci::{Descriptor, Digest};
use sources::pull::{BlobSource, BoxFuture, PullError};
use store::Store;
use tokio::io::AsyncWriteExt;

use super::error::CacheError;

/// Where a cache lives in S3 (`type=s3`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Location {
    /// `bucket=`.
    pub bucket: String,
    /// `region=`.
    pub region: String,
    /// `endpoint_url=`: another S3 service than AWS's.
    pub endpoint_url: Option<String>,
    /// `use_path_style=true`: `ENDPOINT/BUCKET/KEY` rather than `BUCKET.ENDPOINT/KEY`.
    pub use_path_style: bool,
    /// `prefix=`: before every key.
    pub prefix: String,
    /// `blobs_prefix=` (default `blobs/`).
    pub blobs_prefix: String,
    /// `manifests_prefix=` (default `manifests/`).
    pub manifests_prefix: String,
    /// `name=` (`;`-separated; default `buildkit`): the manifests written, and the first one read.
    pub names: Vec<String>,
    /// `access_key_id=`, `secret_access_key=`, `session_token=` (else the environment's).
    pub access_key_id: Option<String>,
    /// See `access_key_id`.
    pub secret_access_key: Option<String>,
    /// See `access_key_id`.
    pub session_token: Option<String>,
}

impl S3Location {
    /// A location with BuildKit's defaults.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> S3Location {
        S3Location {
            bucket: bucket.into(),
            region: region.into(),
            blobs_prefix: "blobs/".into(),
            manifests_prefix: "manifests/".into(),
            names: vec!["buildkit".into()],
            ..S3Location::default()
        }
    }

    fn blob_key(&self, digest: &Digest) -> ObjectPath {
        ObjectPath::from(format!("{}{}{digest}", self.prefix, self.blobs_prefix))
    }

    fn manifest_key(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{}{name}", self.prefix, self.manifests_prefix))
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{}{}{}",
            self.bucket,
            self.prefix,
            self.manifests_prefix,
            self.names.first().map_or("buildkit", String::as_str)
        )
    }
}

/// kiln's HTTP client (its TLS roots and redirect rules) for `object_store`.
#[derive(Debug)]
struct Connector;

impl object_store::client::HttpConnector for Connector {
    fn connect(
        &self,
        _options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let client = registry::http_client(concat!("kiln/", env!("CARGO_PKG_VERSION"))).map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// The S3 client of `location`.
pub(crate) fn client(location: &S3Location) -> Result<Arc<dyn ObjectStore>, CacheError> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&location.bucket)
        .with_region(&location.region)
        .with_virtual_hosted_style_request(!location.use_path_style)
        .with_http_connector(Connector);
    if let Some(endpoint) = &location.endpoint_url {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    for (value, set) in [
        (
            &location.access_key_id,
            object_store::aws::AmazonS3ConfigKey::AccessKeyId,
        ),
        (
            &location.secret_access_key,
            object_store::aws::AmazonS3ConfigKey::SecretAccessKey,
        ),
        (
            &location.session_token,
            object_store::aws::AmazonS3ConfigKey::Token,
        ),
    ] {
        if let Some(value) = value {
            builder = builder.with_config(set, value);
        }
    }
    let store = builder.build().map_err(|source| s3_error(location, source))?;
    Ok(Arc::new(store))
}

fn s3_error(location: &S3Location, source: object_store::Error) -> CacheError {
    CacheError::S3 {
        name: location.to_string(),
        source: Box::new(source),
    }
}

/// Reads an object of at most `limit` bytes.
async fn get_small(
    store: &dyn ObjectStore,
    location: &S3Location,
    key: &ObjectPath,
    limit: u64,
) -> Result<Vec<u8>, CacheError> {
    let result = store.get(key).await.map_err(|e| s3_error(location, e))?;
    if result.meta.size > limit {
        return Err(CacheError::Invalid {
            name: location.to_string(),
            what: format!(
                "{key} is {} bytes, more than the {limit} kiln reads",
                result.meta.size
            ),
        });
    }
    let bytes = result.bytes().await.map_err(|e| s3_error(location, e))?;
    Ok(bytes.to_vec())
}

/// The manifest of the cache object at `location` (its first name), at most `limit` bytes.
pub(crate) async fn read_manifest(
    store: &dyn ObjectStore,
    location: &S3Location,
    limit: u64,
) -> Result<Vec<u8>, CacheError> {
    let name = location.names.first().map_or("buildkit", String::as_str);
    get_small(store, location, &location.manifest_key(name), limit).await
}

/// A small blob (a cache config) of at most `limit` bytes, checked against its digest.
pub(crate) async fn read_blob(
    store: &dyn ObjectStore,
    location: &S3Location,
    descriptor: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>, CacheError> {
    if descriptor.size > limit {
        return Err(CacheError::Invalid {
            name: location.to_string(),
            what: format!(
                "blob {} is {} bytes, more than the {limit} kiln reads",
                descriptor.digest, descriptor.size
            ),
        });
    }
    let bytes = get_small(store, location, &location.blob_key(&descriptor.digest), limit).await?;
    let actual = Digest::of(&bytes);
    if actual != descriptor.digest {
        return Err(CacheError::Invalid {
            name: location.to_string(),
            what: format!("blob {} has digest {actual}", descriptor.digest),
        });
    }
    Ok(bytes)
}

/// Layer blobs of an S3 cache.
pub(crate) struct S3Blobs {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) location: S3Location,
}

impl BlobSource for S3Blobs {
    fn fetch<'a>(
        &'a self,
        store: &'a Arc<Store>,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<(), PullError>> {
        Box::pin(async move {
            let reference = self.location.to_string();
            let fetch_error = |source: object_store::Error| PullError::Store {
                reference: reference.clone(),
                source: store::Error::Io {
                    action: "read cache blob",
                    path: std::path::PathBuf::from(self.location.blob_key(&descriptor.digest).to_string()),
                    source: std::io::Error::other(source),
                },
            };
            let result = self
                .store
                .get(&self.location.blob_key(&descriptor.digest))
                .await
                .map_err(fetch_error)?;
            let mut stream = result.into_stream();
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
            let (target, expected) = (store.clone(), descriptor.clone());
            let writer = tokio::task::spawn_blocking(move || {
                let mut ingest = target.content().ingest()?;
                let mut written = 0u64;
                while let Some(chunk) = receiver.blocking_recv() {
                    written += chunk.len() as u64;
                    if written > expected.size {
                        break;
                    }
                    std::io::Write::write_all(&mut ingest, &chunk).map_err(|source| store::Error::Io {
                        action: "write blob",
                        path: target.root().join("ingest"),
                        source,
                    })?;
                }
                if written != expected.size {
                    return Err(store::Error::Corrupt {
                        what: format!(
                            "cache blob {}: {written} bytes where {} were expected",
                            expected.digest, expected.size
                        ),
                    });
                }
                ingest.commit(Some(&expected.digest)).map(drop)
            });
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(fetch_error)?;
                if sender.send(chunk).await.is_err() {
                    break;
                }
            }
            drop(sender);
            writer
                .await
                .map_err(|source| PullError::Task {
                    reference: reference.clone(),
                    source,
                })?
                .map_err(|source| PullError::Store {
                    reference: reference.clone(),
                    source,
                })
        })
    }
}

/// Writes a cache object: blobs (unless there), the config, then the manifest under each name.
pub(crate) async fn write(
    content: &Arc<Store>,
    location: &S3Location,
    layers: &[Descriptor],
    config: &[u8],
    manifest: &[u8],
) -> Result<Digest, CacheError> {
    let store = client(location)?;
    for layer in layers {
        let key = location.blob_key(&layer.digest);
        if store.head(&key).await.is_ok() || !content.content().contains(&layer.digest) {
            continue;
        }
        let path = content.content().path(&layer.digest);
        let io_error = |source| CacheError::Io {
            action: "upload",
            path: path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        let mut upload = object_store::buffered::BufWriter::new(store.clone(), key);
        tokio::io::copy(&mut file, &mut upload).await.map_err(io_error)?;
        upload.shutdown().await.map_err(io_error)?;
    }
    let config_key = location.blob_key(&Digest::of(config));
    store
        .put(&config_key, bytes::Bytes::copy_from_slice(config).into())
        .await
        .map_err(|e| s3_error(location, e))?;
    for name in &location.names {
        store
            .put(
                &location.manifest_key(name),
                bytes::Bytes::copy_from_slice(manifest).into(),
            )
            .await
            .map_err(|e| s3_error(location, e))?;
    }
    Ok(Digest::of(manifest))
}
