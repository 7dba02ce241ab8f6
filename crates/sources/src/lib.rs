//! Sources: where a build's filesystems come from before any step runs. Image pulls
//! ([`pull`]) become snapshots in the store, one per layer; HTTP downloads ([`http`]) a
//! snapshot holding one file; git checkouts ([`git`], with the git CLI) a snapshot of one
//! commit's tree.
//!
//! Main types: the requests [`pull::ImageSource`], [`http::HttpSource`] (checked into an
//! [`http::Download`]) and [`git::GitSource`] (checked into a [`git::Git`]), what they resolve
//! to (a manifest digest, an [`http::Fetched`] file, a [`git::Resolved`] commit), their errors
//! ([`pull::PullError`], [`http::HttpError`], [`git::GitError`]); [`Progress`], the status lines
//! a source reports while it works, and [`Secrets`], the build's secrets for authentication.
//!
//! Inputs are plain values: the store (an `Arc<store::Store>`), a registry client (the build's
//! handle, with its credentials), the platform, a [`Secrets`] provider and, for downloads, the
//! engine's [`http::HttpState`]. Outputs are [`store::SnapshotId`]s and typed errors whose
//! causes are `source()`s, down to the OS error.
//!
//! Invariants:
//! - Everything that touches the store (and so the disk), and reading secrets, runs on tokio's
//!   blocking pool, never on an async worker; downloads stream into the content store through a
//!   bounded channel.
//! - Dropping a future cancels its work and leaves nothing half-made: git is killed, unfinished
//!   snapshots and ingest files are removed by their guards (and by `Store::open` after a
//!   crash).
//! - What is stored is verified: blobs by digest, layers by diff ID, pinned downloads by their
//!   checksum.
//! - Secret values appear in no message, progress line or stored record.
//!
//! Not here: the solver, LLB, cache keys and sessions (the engine's source ops turn LLB source
//! attributes into these requests, compute cache keys from what the sources resolve, salt
//! authenticated sources with the secrets they name, and map results to their refs), and the
//! CLI.
//!
//! Tests: unit tests in each module; `tests/it` (authentication, checkouts of local
//! repositories and cancelled ones, and failures with their causes) and `tests/privileged`
//! (pulls from a loopback registry, layers applied through overlayfs; a download onto a full
//! disk); the engine's privileged tests (`crates/engine/tests/privileged`) and the CLI's run
//! sources through LLB against loopback servers.

#![forbid(unsafe_code)]

pub mod git;
pub mod http;
mod ingest;
pub mod progress;
pub mod pull;
pub mod secrets;

pub use progress::{Progress, human_size};
pub use secrets::{NoSecrets, SecretError, Secrets};
