//! OCI distribution-spec client: the only crate in kiln that speaks the registry HTTP protocol.
//!
//! Main types:
//! - [`Client`]: resolves references, fetches and pushes manifests and blobs, and runs the
//!   `WWW-Authenticate` handshake (Bearer tokens, or Basic). One client serves many builds:
//!   [`Client::with_credentials`] gives each build a handle with its own credentials that shares
//!   the connections, the TLS setup and the token cache.
//! - [`CredentialStore`]: where a build's credentials come from; the caller chooses.
//!   [`NoCredentials`] is anonymous, [`DockerConfigCredentials`] reads the docker CLI
//!   configuration and helpers, the first time a registry asks for credentials.
//! - [`BlobReader`]: a streamed blob download that verifies size and digest as it goes.
//! - [`Error`] and [`CredentialsError`]: every cause is in the message or the `source()`
//!   chain, down to the OS error (`Connection refused (os error 111)`); a registry that stops
//!   answering fails with [`Error::Timeout`] saying after how long.
//!
//! Invariants:
//! - Manifests are returned as the exact bytes received, with the digest of those bytes; a
//!   digest the caller or the registry asserted is always checked against them.
//! - Credentials and tokens are only sent to the registry they belong to: redirects to another
//!   origin (blob storage) go without `Authorization`, and plain HTTP is used only for loopback
//!   hosts and registries the caller listed as insecure.
//! - A token is only used by handles whose credential store gave the same credentials for its
//!   registry (tokens are cached per registry, scope and a digest of the user name and secret;
//!   anonymous tokens separately).
//! - Credential stores are asked only after a registry challenges a request, at most once per
//!   registry and handle.
//! - Memory is bounded: manifests, token responses and error bodies are read with size limits.
//! - Nothing waits forever: connecting may take `connect_timeout` (30 s by default), and a
//!   registry silent for `read_timeout` (60 s by default) fails the request; see
//!   [`ClientConfig`].
//!
//! Auth details: Bearer tokens are requested with HTTP Basic credentials, or with the OAuth2
//! refresh-token form POST when the credentials are an identity token (user `<token>`). An
//! upload location on another host than the registry gets no `Authorization` header, so a
//! registry that needs auth there is not supported.
//!
//! It deliberately does not: store anything on disk, retry failed transfers, upload in chunks,
//! mount blobs across repositories, or list tags. Schema 1 manifests are not supported.

#![forbid(unsafe_code)]

// Module dependencies run one way: error <- tls <- http <- target <- auth <- client <- manifest,
// blob (credentials beside auth); no two modules import each other.
mod auth;
mod blob;
mod client;
mod credentials;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod manifest;
mod target;
mod tls;

pub use blob::{BlobBody, BlobReader};
pub use client::{Client, ClientConfig};
pub use credentials::{
    CredentialStore, Credentials, DockerConfigCredentials, IDENTITY_TOKEN_USER, NoCredentials,
};
pub use error::{CredentialsError, Error, Result};
pub use http::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, http_client};
pub use manifest::{FetchedManifest, ResolvedImage, select_platform};
