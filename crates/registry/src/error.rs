//! The crate's error types: [`Error`] for registry operations and [`CredentialsError`] for
//! credential lookups. Each error either says its cause in its message or carries it as its
//! `source`, never both, so a caller that prints the `source()` chain shows every cause once.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The request could not be sent or the response could not be read (connection refused,
    /// reset, DNS failure, TLS failure, …). The source chain ends with the OS error.
    #[error("request to {url} failed")]
    Transport {
        /// The request URL.
        url: String,
        /// The underlying error (without its URL, which this error already names).
        #[source]
        source: reqwest::Error,
    },
    /// The registry did not answer in time: no connection within the connect timeout, or
    /// nothing received for the read timeout. The message says it all (there is no source).
    #[error("request to {url} timed out: {phase} within {} s", after.as_secs_f64())]
    Timeout {
        /// The request URL.
        url: String,
        /// What did not happen in time: `no connection`, `no response` (to the request) or
        /// `no data` (of a body being received).
        phase: &'static str,
        /// The timeout that ran out.
        after: Duration,
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
    #[error("failed to get credentials for {registry}")]
    Credentials {
        /// The registry whose credentials were wanted.
        registry: String,
        /// What went wrong.
        #[source]
        source: CredentialsError,
    },
    /// A local file could not be read.
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
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

/// Why credentials could not be read. Messages name the file or the helper program involved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The docker configuration file could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The docker configuration file is not valid JSON of the expected shape.
    #[error("failed to parse {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// An `auths` entry of the configuration file has an `auth` field that is not
    /// base64 of `user:password`.
    #[error("invalid \"auth\" for {registry} in {path}: {reason}")]
    InvalidAuth {
        /// The file.
        path: PathBuf,
        /// The registry of the entry.
        registry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `credsStore` or a `credHelpers` entry names something that cannot be a helper.
    #[error("invalid credential helper name {name:?} in {path}")]
    InvalidHelper {
        /// The file.
        path: PathBuf,
        /// The configured name.
        name: String,
    },
    /// The credential helper program could not be run.
    #[error("failed to run {program}")]
    HelperSpawn {
        /// `docker-credential-<name>`.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The credential helper ran and failed.
    #[error("{program} get failed ({status}): {output}")]
    HelperFailed {
        /// `docker-credential-<name>`.
        program: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// What it printed (stdout, else stderr), trimmed.
        output: String,
    },
    /// The credential helper printed something that is not its JSON answer.
    #[error("invalid output from {program} get")]
    HelperOutput {
        /// `docker-credential-<name>`.
        program: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The lookup's blocking task did not finish (it panicked, or the runtime shut down).
    #[error("the credential lookup did not finish")]
    Aborted {
        /// The underlying error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A failure of a caller's own [`CredentialStore`](crate::CredentialStore).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
