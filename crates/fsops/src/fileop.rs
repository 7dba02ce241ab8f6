//! The file actions of LLB's FileOp on directory trees: copy, mkdir, mkfile, rm, symlink, and
//! the content digest that serves as the cache key of a copy.
//!
//! These are what Dockerfile `COPY`/`ADD` (copy), `WORKDIR` (mkdir) and heredocs (mkfile)
//! compile to. Semantics follow BuildKit's file backend (`solver/llbsolver/file`) and the
//! `copy` package of tonistiigi/fsutil it uses; see [`copy`] for the rules.
//!
//! Main types: [`CopyOptions`] (LLB's `FileActionCopy`), [`PatternMatcher`] (moby's pattern
//! semantics for `.dockerignore`, `COPY --exclude` and `COPY --parents`), [`ModeSet`]
//! (symbolic `--chmod`, [`gocompat::chmod`]'s grammar), [`HashCache`] (remembered file digests;
//! keeping them across processes is the caller's business, the store's).
//!
//! Security: both trees are untrusted. The destination is an image's filesystem and the
//! source may be another image's, so any symlink in either may point anywhere (`/etc -> /`,
//! `x -> /root/.ssh`). Every path is resolved with `openat2(RESOLVE_IN_ROOT)` beneath a root
//! directory fd (symlinks in parent components are followed *within* the root, absolute targets
//! restart at the root, `..` stops there) and every entry is then read or written through a
//! directory fd with calls that never follow a symlink in the last component. Where a final
//! symlink is meant to be followed (a `follow_symlink` source, the copy destination, mkfile), it
//! is resolved step by step, again inside the root. Leaving a root is therefore impossible by
//! construction, not an error. User-supplied paths are cleaned lexically first: `..` is clamped
//! at the root, so `/../../x` is `/x`. Archives unpacked by `ADD` are untrusted too: they are
//! extracted with the layer machinery, confined to the destination directory.
//!
//! Errors name paths as the build sees them (`/src/missing`), never the host paths of the roots.
//!
//! Not done here: id mapping (user namespaces), xattr error policies other than "skip what the
//! file system cannot store", and cache bookkeeping (callers key on [`content_digest`]).

mod actions;
mod archive;
mod copy;
mod digest;
mod error;
mod filter;
mod hashcache;
mod options;
mod patterns;
mod source;
mod support;
mod wildcard;

pub use crate::user::{Ownership, UserRef};
pub use actions::{mkdir, mkfile, resolve_ownership, rm, symlink};
pub use archive::zstd_frames;
pub use copy::copy;
pub use digest::{Listing, content_digest, content_digest_cached, content_listing_cached};
pub use error::FileOpError;
pub use gocompat::chmod::ModeSet;
pub use hashcache::{Entry as HashEntry, FileKey, HashCache, Loader as HashLoader, Lookup as HashLookup};
pub use options::{CopyOptions, CopyStats};
pub use patterns::{MatchInfo, PatternMatcher};

/// Whether `file` holds an archive, as docker tells a build context sent on standard input from
/// a Dockerfile: compressed (gzip, bzip2, xz or zstd magic bytes, whatever follows) or starting
/// with a valid tar header. Reads from the start of `file`.
pub fn is_archive(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut magic = Vec::with_capacity(6);
    Read::by_ref(file).take(6).read_to_end(&mut magic)?;
    Ok(archive::detect(&magic) != archive::Compression::None || archive::is_tar(file))
}

/// Unpacks the archive `file` (a tar, plain or compressed as [`is_archive`] tells) into the
/// directory `dir`, as `ADD` unpacks one: the archive is untrusted, every path is resolved inside
/// `dir`, a path or hard link that `..` would lead out of it is refused, and nothing is written
/// through a symlink. Entries keep the archive's owners, or are all owned by `owner` (uid, gid)
/// when given: what a user unpacks as themself.
pub fn unpack_archive(
    file: &mut std::fs::File,
    dir: &std::path::Path,
    owner: Option<(u32, u32)>,
) -> Result<crate::layer::ApplyStats, crate::layer::LayerError> {
    use std::os::fd::AsFd;
    let target = std::fs::File::open(dir).map_err(|source| crate::layer::LayerError::OpenDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let stream =
        archive::open(file).map_err(|source| crate::layer::LayerError::ReadTar { entries: 0, source })?;
    crate::layer::extract_archive(stream, target.as_fd(), owner)
}
