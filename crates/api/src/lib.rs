//! What crosses the wire between a `kiln` client and a `kiln daemon`.
//!
//! - [`pb`]: the control API, generated at build time from `proto/kiln/v1/control.proto` (protox
//!   and tonic; no `protoc`): the `Control` service's client and server stubs and its messages.
//! - [`Address`]: where a daemon listens (`unix:///run/kiln/kiln.sock`, `tcp://HOST:PORT`), and
//!   [`connect`], a client channel to one (mutual TLS over TCP with [`TlsFiles`]).
//! - [`Ring`]: the fleet's routing: consistent hashing of a build's stable key over several
//!   addresses, with the order to fail over in.
//! - [`walk`]: the client's side of a context transfer: a directory's listing after
//!   `.dockerignore`, the metadata the daemon compares with its copy to ask only for what changed.
//!
//! Invariants: only this crate knows gRPC and the generated types' names; the daemon never reads
//! a client path (everything of the client comes through these messages); limits on what one
//! message may hold are here ([`MAX_MESSAGE`]).

#![forbid(unsafe_code)]

mod address;
mod ring;
pub mod walk;

pub use address::{Address, AddressError, TlsFiles, connect};
pub use ring::Ring;

/// The generated control API.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("kiln.v1");
}

/// The largest message either side accepts (a chunk of a listing, of a file, of an output).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How many listing entries travel in one [`pb::FileList`], and how many bytes of a file or an
/// output in one chunk.
pub const LIST_CHUNK: usize = 4096;
/// See [`LIST_CHUNK`].
pub const DATA_CHUNK: usize = 256 * 1024;

/// The name of the build context among a build's local directories.
pub const CONTEXT: &str = "context";

/// Most local directories one build may send.
pub const MAX_LOCALS: usize = 64;

/// Checks what a client's `BuildStart` says about itself and its directories: a client id of 1
/// to 128 bytes, at most [`MAX_LOCALS`] directories named `context` or `named-NAME`, each once,
/// and a context unless the build's context is a git URL.
pub fn check_start(start: &pb::BuildStart) -> Result<(), String> {
    if start.client_id.is_empty() || start.client_id.len() > 128 {
        return Err("the client id must have 1 to 128 bytes".into());
    }
    if start.locals.len() > MAX_LOCALS {
        return Err(format!("more than {MAX_LOCALS} local directories"));
    }
    let mut names = std::collections::BTreeSet::new();
    for local in &start.locals {
        let named = local
            .name
            .strip_prefix("named-")
            .is_some_and(|n| !n.is_empty() && n.len() <= 256);
        if !(local.name == CONTEXT || named) || !names.insert(local.name.as_str()) {
            return Err(format!("invalid local directory name {:?}", local.name));
        }
    }
    if start.git_context.is_empty() && !names.contains(CONTEXT) {
        return Err("the build sends no context directory".into());
    }
    Ok(())
}
