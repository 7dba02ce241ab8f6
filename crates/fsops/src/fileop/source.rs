//! Finding what a copy reads: the paths `src` names (literal, or wildcard matches), less what
//! the build context's excludes hide, and the `required_paths` check. Shared by
//! [`copy`](super::copy) and [`content_digest`](super::content_digest), so both read the same
//! sources.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::error::{FileOpError, failed};
use super::filter::Filters;
use super::options::CopyOptions;
use super::support::{rel_path, shown, split_last};
use super::wildcard;
use crate::inroot::{self, errno_is, open_dir, resolve_final};

/// The source paths `src` names: the cleaned literal path, or with `allow_wildcard` the sorted
/// wildcard matches.
pub(super) fn find_sources(
    root: BorrowedFd<'_>,
    src: &str,
    allow_wildcard: bool,
    allow_empty_wildcard: bool,
) -> Result<Vec<Vec<u8>>, FileOpError> {
    let rel = rel_path(src)?;
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
    if !allow_wildcard || !comps.iter().any(|c| wildcard::has_wildcards(c)) {
        return Ok(vec![rel]);
    }
    let matches = wildcard::expand(root, &comps).map_err(failed("match", &shown(&rel)))?;
    if matches.is_empty() && !allow_empty_wildcard {
        return Err(FileOpError::NotFound { path: shown(&rel) });
    }
    Ok(matches)
}

/// A source entry located for reading: its directory, name and `lstat`.
pub(super) struct Source {
    pub(super) dir: OwnedFd,
    pub(super) name: Vec<u8>,
    pub(super) stat: rfs::Stat,
}

/// Locates the source path `rel`, following a final symlink (within the root) when `follow`.
pub(super) fn open_source(root: BorrowedFd<'_>, rel: &[u8], follow: bool) -> Result<Source, FileOpError> {
    let not_found = || FileOpError::NotFound { path: shown(rel) };
    let located = if follow {
        resolve_final(root, rel)
    } else {
        let (parent, name) = split_last(rel);
        let name = if name.is_empty() { &b"."[..] } else { name };
        open_dir(root, parent, None).map(|dir| (dir, name.to_vec()))
    };
    let (dir, name) = match located {
        Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => return Err(not_found()),
        other => other.map_err(failed("resolve", &shown(rel)))?,
    };
    let stat = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Err(not_found()),
        other => other.map_err(failed("stat", &shown(rel)))?,
    };
    Ok(Source { dir, name, stat })
}

/// Whether the source entry located as `source` (at `rel`) is visible through the context
/// excludes.
pub(super) fn source_visible(filters: &Filters, rel: &[u8], source: &Source) -> Result<bool, FileOpError> {
    let dir = if inroot::is_dir(&source.stat) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Some(
            rfs::openat(&source.dir, source.name.as_slice(), flags, Mode::empty())
                .map_err(failed("open", &shown(rel)))?,
        )
    } else {
        None
    };
    filters
        .visible(rel, dir.as_ref().map(|d| d.as_fd()))
        .map_err(failed("list", &shown(rel)))
}

/// The sources a copy (or its content digest) reads: [`find_sources`], less what the context
/// excludes hide. A hidden literal source is [`FileOpError::NotFound`], as is a wildcard left
/// with no visible match (unless empty wildcards are allowed).
pub(super) fn copy_sources(
    root: BorrowedFd<'_>,
    options: &CopyOptions,
    filters: &Filters,
) -> Result<Vec<Vec<u8>>, FileOpError> {
    let matches = find_sources(
        root,
        &options.src,
        options.allow_wildcard,
        options.allow_empty_wildcard,
    )?;
    if options.context_excludes.is_empty() {
        return Ok(matches);
    }
    let had_matches = !matches.is_empty();
    let mut visible = Vec::with_capacity(matches.len());
    for rel in matches {
        // A missing source is reported by the copy itself, with the usual error.
        let source = match open_source(root, &rel, options.follow_symlink) {
            Err(FileOpError::NotFound { .. }) => {
                visible.push(rel);
                continue;
            }
            other => other?,
        };
        if source_visible(filters, &rel, &source)? {
            visible.push(rel);
        }
    }
    let src = rel_path(&options.src)?;
    let wildcard = options.allow_wildcard && src.split(|&b| b == b'/').any(wildcard::has_wildcards);
    if had_matches && visible.is_empty() && !(wildcard && options.allow_empty_wildcard) {
        return Err(FileOpError::NotFound { path: shown(&src) });
    }
    Ok(visible)
}

/// Checks that every `required_paths` entry exists (final symlinks not followed) and is visible
/// through the context excludes.
pub(super) fn check_required(
    root: BorrowedFd<'_>,
    options: &CopyOptions,
    filters: &Filters,
) -> Result<(), FileOpError> {
    for path in &options.required_paths {
        let rel = rel_path(path)?;
        let source = open_source(root, &rel, false)?;
        if !source_visible(filters, &rel, &source)? {
            return Err(FileOpError::NotFound { path: shown(&rel) });
        }
    }
    Ok(())
}
