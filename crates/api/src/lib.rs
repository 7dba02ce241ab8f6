//! What crosses the wire between a `kiln` client and a `kiln daemon`.
//!
//! - [`pb`]: the control API, generated at build time from `proto/kiln/v1/control.proto` (protox
//!   and tonic; no `protoc`): the `Control` service's client and server stubs and its messages.
//! - [`Address`]: where a daemon listens (`unix:///run/kiln/kiln.sock`, `tcp://HOST:PORT`), and
//!   [`connect`], a client channel to one (mutual TLS over TCP with [`TlsFiles`]).
//! - [`Ring`]: the fleet's routing: consistent hashing of a build's stable key over several
//!   addresses, with the order to fail over in.
//! - [`fds`]: a local client hands its output files' descriptors to the daemon, which writes
//!   into them instead of streaming the bytes.
//! - [`walk`]: the client's side of a context transfer: a directory's listing after
//!   `.dockerignore`, the metadata the daemon compares with its copy to ask only for what changed.
//!
//! Invariants: only this crate knows gRPC and the generated types' names; the daemon never reads
//! a client path (everything of the client comes through these messages); limits on what one
//! message may hold are here ([`MAX_MESSAGE`]).

#![forbid(unsafe_code)]

mod address;
pub mod fds;
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
pub const DATA_CHUNK: usize = 1024 * 1024;

/// The largest HTTP/2 frame either side accepts (1 MiB; HTTP/2's default is 16 KiB): an
/// output of megabytes crosses in a few frames and reads, not hundreds.
pub const MAX_FRAME: u32 = 1 << 20;
/// How many bytes of one stream may be in flight before the receiver acknowledges them.
pub const STREAM_WINDOW: u32 = 8 << 20;
/// How many bytes of all a connection's streams may be in flight.
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// The name of the build context among a build's local directories.
pub const CONTEXT: &str = "context";

/// Most local directories one build may send.
pub const MAX_LOCALS: usize = 64;

/// The local directory that carries the OCI layout of `--build-context NAME=oci-layout://DIR`.
pub fn layout_local(name: &str) -> String {
    format!("layout-{}", name.to_ascii_lowercase())
}

/// Checks what a client's `BuildStart` says about itself and its directories: a client id of 1
/// to 128 bytes, at most [`MAX_LOCALS`] directories named `context`, `named-NAME`,
/// `layout-NAME` or `cache-N`, each once, a context unless the build's context is a git URL,
/// for each `oci-layout://` named image only a tag or digest (`:TAG`, `@DIGEST` or nothing) and
/// the `layout-NAME` directory that carries it, and for each `type=local` cache a `cache-N`
/// directory.
pub fn check_start(start: &pb::BuildStart) -> Result<(), String> {
    if start.client_id.is_empty() || start.client_id.len() > 128 {
        return Err("the client id must have 1 to 128 bytes".into());
    }
    if start.locals.len() > MAX_LOCALS {
        return Err(format!("more than {MAX_LOCALS} local directories"));
    }
    let mut names = std::collections::BTreeSet::new();
    for local in &start.locals {
        let named = ["named-", "layout-"].iter().any(|prefix| {
            local
                .name
                .strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.len() <= 256)
        }) || local
            .name
            .strip_prefix("cache-")
            .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()));
        if !(local.name == CONTEXT || named) || !names.insert(local.name.as_str()) {
            return Err(format!("invalid local directory name {:?}", local.name));
        }
    }
    if start.git_context.is_empty() && !names.contains(CONTEXT) {
        return Err("the build sends no context directory".into());
    }
    let caches = start
        .cache_from
        .iter()
        .chain(start.cache_to.iter().filter_map(|e| e.backend.as_ref()));
    for cache in caches {
        if let Some(pb::cache_backend::Backend::Local(local)) = &cache.backend
            && !(local.local.starts_with("cache-") && names.contains(local.local.as_str()))
        {
            return Err(format!(
                "a type=local cache names {:?}, which is not one of its cache directories",
                local.local
            ));
        }
    }
    for (name, value) in &start.named_images {
        if let Some(pick) = value.strip_prefix("oci-layout://") {
            if !(pick.is_empty() || pick.starts_with(':') || pick.starts_with('@')) || pick.contains('/') {
                return Err(format!(
                    "build context {name}: oci-layout:// takes only :TAG or @DIGEST here (the directory travels apart)"
                ));
            }
            if !names.contains(layout_local(name).as_str()) {
                return Err(format!(
                    "build context {name}: its OCI layout directory is not sent"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(locals: &[&str]) -> pb::BuildStart {
        pb::BuildStart {
            client_id: "c".into(),
            locals: locals
                .iter()
                .map(|name| pb::LocalDir {
                    name: name.to_string(),
                    path: format!("/{name}"),
                })
                .collect(),
            ..pb::BuildStart::default()
        }
    }

    fn local_cache(local: &str) -> pb::CacheBackend {
        pb::CacheBackend {
            backend: Some(pb::cache_backend::Backend::Local(pb::LocalCache {
                local: local.into(),
                tag: "latest".into(),
            })),
        }
    }

    #[test]
    fn local_directories_are_named_and_sent_for_what_needs_them() {
        assert!(check_start(&start(&["context", "named-a", "layout-b", "cache-0"])).is_ok());
        for bad in ["other", "cache-x", "cache-1234", "named-", "../context"] {
            assert!(check_start(&start(&["context", bad])).is_err(), "{bad}");
        }
        assert!(check_start(&start(&["context", "context"])).is_err());
        assert!(check_start(&start(&["named-a"])).is_err(), "no context");

        // A layout context: only a tag or digest, and its directory sent.
        let mut with_layout = start(&["context", "layout-base"]);
        with_layout
            .named_images
            .insert("Base".into(), "oci-layout://:v1".into());
        assert!(check_start(&with_layout).is_ok());
        for value in ["oci-layout:///etc/layout", "oci-layout://x:v1"] {
            let mut bad = with_layout.clone();
            bad.named_images.insert("Base".into(), value.into());
            assert!(check_start(&bad).is_err(), "{value}");
        }
        let mut unsent = start(&["context"]);
        unsent
            .named_images
            .insert("base".into(), "oci-layout://@sha256:00".into());
        assert!(check_start(&unsent).is_err());

        // A local cache names one of the cache directories sent.
        let mut with_cache = start(&["context", "cache-0"]);
        with_cache.cache_from.push(local_cache("cache-0"));
        assert!(check_start(&with_cache).is_ok());
        for local in ["cache-1", "context", "/etc"] {
            let mut bad = with_cache.clone();
            bad.cache_to.push(pb::CacheExport {
                backend: Some(local_cache(local)),
                ..pb::CacheExport::default()
            });
            assert!(check_start(&bad).is_err(), "{local}");
        }
    }
}
