//! OCI distribution-spec client: the only crate in kiln that speaks the registry HTTP protocol.
//!
//! Main types:
//! - [`Client`]: resolves references, fetches and pushes manifests and blobs, and runs the
//!   `WWW-Authenticate` handshake (Bearer tokens cached per registry and scope, or Basic).
//! - [`CredentialStore`]: where credentials come from; the caller chooses. [`NoCredentials`] is
//!   anonymous, [`DockerConfigCredentials`] reads the docker CLI configuration and helpers.
//! - [`BlobReader`]: a streamed blob download that verifies size and digest as it goes.
//!
//! Invariants:
//! - Manifests are returned as the exact bytes received, with the digest of those bytes; a
//!   digest the caller or the registry asserted is always checked against them.
//! - Credentials and tokens are only sent to the registry they belong to: redirects to another
//!   origin (blob storage) go without `Authorization`, and plain HTTP is used only for loopback
//!   hosts and registries the caller listed as insecure.
//! - Memory is bounded: manifests, token responses and error bodies are read with size limits.
//!
//! Auth details: Bearer tokens are requested with HTTP Basic credentials, or with the OAuth2
//! refresh-token form POST when the credentials are an identity token (user `<token>`). An
//! upload location on another host than the registry gets no `Authorization` header, so a
//! registry that needs auth there is not supported.
//!
//! It deliberately does not: store anything on disk, retry failed transfers, upload in chunks,
//! mount blobs across repositories, or list tags. Schema 1 manifests are not supported.

#![forbid(unsafe_code)]

mod auth;
mod client;
mod credentials;
#[doc(hidden)]
pub mod fuzzing;

pub use client::{BlobBody, BlobReader, Client, ClientConfig, FetchedManifest, ResolvedImage, http_client};
pub use credentials::{
    CredentialStore, Credentials, DockerConfigCredentials, IDENTITY_TOKEN_USER, NoCredentials,
};

/// Why a registry operation failed. Messages name the image reference or URL involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry has no manifest for the reference.
    #[error("manifest unknown: {reference}")]
    ManifestUnknown {
        /// The image reference.
        reference: String,
    },
    /// The registry has no such blob.
    #[error("blob unknown: {digest} in {reference}")]
    BlobUnknown {
        /// The image reference.
        reference: String,
        /// The blob asked for.
        digest: oci::Digest,
    },
    /// The registry refused our credentials, or wanted some we do not have.
    #[error("unauthorized: {reference} on {registry}: {message}")]
    Unauthorized {
        /// The image reference.
        reference: String,
        /// The registry host.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// Content does not hash to the digest it was fetched or pushed under.
    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The image reference.
        reference: String,
        /// The digest that was asked for or announced.
        expected: oci::Digest,
        /// The digest of the bytes.
        actual: oci::Digest,
    },
    /// Content does not have the size its descriptor says.
    #[error("size mismatch for {digest} in {reference}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The image reference.
        reference: String,
        /// The blob's digest.
        digest: oci::Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The size seen (possibly a lower bound when the stream was cut short).
        actual: u64,
    },
    /// The registry answered with an unexpected HTTP status.
    #[error("{action} {reference}: {url} returned {status}: {message}")]
    Http {
        /// What we were doing (`fetch manifest`, `push blob`, …).
        action: &'static str,
        /// The image reference.
        reference: String,
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// A readable excerpt of the body (distribution error codes and messages when present).
        message: String,
    },
    /// The request could not be sent or the response could not be read.
    #[error("request to {url} failed")]
    Transport {
        /// The request URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// No manifest in an index matches the wanted platform.
    #[error("no manifest for platform {wanted} in {reference} (available: {})", available.join(", "))]
    NoMatchingPlatform {
        /// The image reference.
        reference: String,
        /// The platform asked for (`os/arch[/variant]`).
        wanted: String,
        /// The platforms the index lists.
        available: Vec<String>,
    },
    /// A manifest has a media type this client cannot use.
    #[error("unsupported media type {media_type:?} for {reference}")]
    UnsupportedMediaType {
        /// The image reference.
        reference: String,
        /// The media type received.
        media_type: String,
    },
    /// A JSON document (manifest, index, token response) could not be parsed.
    #[error("invalid {what} for {reference}")]
    InvalidJson {
        /// What the document was.
        what: &'static str,
        /// The image reference or URL.
        reference: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A response was larger than this client accepts for its kind.
    #[error("response from {url} exceeds the {limit} byte limit")]
    TooLarge {
        /// The request URL.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry answered in a way the protocol does not allow.
    #[error("invalid response from {url}: {reason}")]
    InvalidResponse {
        /// The request URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Credentials could not be read (config file, credential helper).
    #[error("read credentials for {registry}: {message}")]
    Credentials {
        /// The registry whose credentials were wanted.
        registry: String,
        /// What went wrong.
        message: String,
    },
    /// A local file could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// HTTPS is unusable on this machine (no trusted root certificates could be loaded).
    #[error("cannot reach {registry} over https: {reason}")]
    TlsUnavailable {
        /// The registry that was to be reached.
        registry: String,
        /// Why the platform verifier could not be set up.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("failed to set up the http client")]
    ClientSetup {
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
