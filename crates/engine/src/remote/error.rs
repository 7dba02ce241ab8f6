//! The errors of remote cache backends.

use std::io;
use std::path::PathBuf;

use oci::Digest;
use oci::cache::CacheConfigError;
use sources::pull::PullError;

/// Errors of reading or writing a cache object.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The reference does not parse.
    #[error("invalid cache reference {reference:?}")]
    Reference {
        /// As given.
        reference: String,
        /// Why.
        #[source]
        source: oci::ReferenceError,
    },
    /// The registry failed (causes down to the OS error).
    #[error("registry request for cache {name} failed")]
    Registry {
        /// The cache.
        name: String,
        /// Why.
        #[source]
        source: registry::Error,
    },
    /// A file of a layout directory could not be read or written.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The cache object is not what it should be.
    #[error("cache {name}: {what}")]
    Invalid {
        /// The cache.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// The cache config does not read.
    #[error("cache {name}: bad cache config")]
    Config {
        /// The cache.
        name: String,
        /// Why.
        #[source]
        source: CacheConfigError,
    },
    /// The manifest or index does not read.
    #[error("cache {name}: bad {document}")]
    Document {
        /// The cache.
        name: String,
        /// `manifest` or `index.json`.
        document: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A blob of an imported cache could not be fetched into the local content store.
    #[error("failed to fetch blob {digest} of cache {name}")]
    Fetch {
        /// The cache.
        name: String,
        /// The blob.
        digest: Digest,
        /// Why (boxed: pull errors are large, and this one is rare).
        #[source]
        source: Box<PullError>,
    },
    /// The layers of a result could not be made.
    #[error("failed to make the cache layers")]
    Layers(#[source] exporter::Error),
    /// The local store failed.
    #[error("failed to read the local store")]
    Store(#[source] store::Error),
    /// A blocking task failed.
    #[error("internal task failed")]
    Join(#[source] tokio::task::JoinError),
    /// A layout directory's documents could not be read (the error names the directory).
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// The S3 service failed (causes down to the OS error).
    #[error("S3 request for cache {name} failed")]
    S3 {
        /// The cache.
        name: String,
        /// Why (boxed: the client's errors are large).
        #[source]
        source: Box<object_store::Error>,
    },
}
