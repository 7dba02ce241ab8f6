//! OCI vocabulary shared by every layer of kiln.
//!
//! This crate defines the data model of the OCI image and distribution specs as kiln uses it:
//! [`Digest`] (the one content address type), [`Descriptor`], [`Platform`], media types, image
//! [`ImageManifest`]s, [`ImageIndex`]es, image configurations ([`ImageConfig`]) and image
//! references ([`Reference`], with Docker's name normalisation), and BuildKit's remote cache
//! format ([`cache`]).
//!
//! Also [`error_chain`], the one way kiln renders an error and its causes.
//!
//! Invariants:
//! - It knows nothing of builds, LLB, caching, disks or networks: every function is pure.
//! - Digests are computed over exact bytes. Manifests and configs received from elsewhere are
//!   kept as the bytes that were received; these types are for reading them and for writing
//!   new documents, never for re-encoding someone else's document before digesting it.
//! - Serialisation is deterministic: maps are `BTreeMap`s and field order is fixed.
//!
//! Tests live beside the code (unit tests in each module).

#![forbid(unsafe_code)]

pub mod cache;
mod digest;
mod image;
mod platform;
mod reference;
pub mod time;

pub use digest::{Digest, DigestError, Sha256Writer};
pub use image::{
    ContainerConfig, Descriptor, HealthConfig, History, ImageConfig, ImageIndex, ImageManifest, RootFs,
    media_type,
};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};

/// How kiln shows an error to people: its message and every cause under it (`source()`), once
/// each, joined by `: ` (`failed to create directory /app: File exists (os error 17)`). Every
/// crate's errors either embed their cause in their message or return it as their source, never
/// both, so nothing is said twice. Kept here, in the crate every other one depends on, so that
/// there is one way.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
