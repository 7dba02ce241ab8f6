//! The file actions of LLB's FileOp on directory trees: copy, mkdir, mkfile, rm, symlink, and
//! the content digest that serves as the cache key of a copy.
//!
//! These are what Dockerfile `COPY`/`ADD` (copy), `WORKDIR` (mkdir) and heredocs (mkfile)
//! compile to. Semantics follow BuildKit's file backend (`solver/llbsolver/file`) and the
//! `copy` package of tonistiigi/fsutil it uses; see [`copy`] for the rules.
//!
//! Main types: [`CopyOptions`] (LLB's `FileActionCopy`), [`PatternMatcher`] (moby's pattern
//! semantics for `.dockerignore`, `COPY --exclude` and `COPY --parents`), [`ModeSet`]
//! (symbolic `--chmod`).
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

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Timespec, Uid};
use rustix::io::Errno;

mod archive;
mod copy;
mod digest;
mod filter;
mod hashcache;
pub(crate) mod inroot;
mod mode;
mod patterns;
mod user;
mod wildcard;

pub use copy::copy;
pub use digest::{Listing, content_digest, content_digest_cached, content_listing_cached};
pub use hashcache::HashCache;
pub(crate) use hashcache::{Entry as HashEntry, FileKey};
pub use mode::{ModeSet, parse_mode_str};
pub use patterns::{MatchInfo, PatternMatcher};
pub use user::resolve_ownership;

use filter::Filters;
use inroot::{NewDir, errno_is, open_dir, resolve_final};

/// Numeric owner of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ownership {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A user or group as written in `--chown`: a numeric id or a name to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// A numeric id, used as is.
    Id(u32),
    /// A name, looked up in the destination's `/etc/passwd` or `/etc/group`.
    Name(String),
}

impl UserRef {
    /// Parses `--chown` syntax: all digits (fitting a u32) is an id, anything else a name.
    pub fn parse(text: &str) -> UserRef {
        match text.parse::<u32>() {
            Ok(id) if text.bytes().all(|b| b.is_ascii_digit()) => UserRef::Id(id),
            _ => UserRef::Name(text.to_owned()),
        }
    }
}

/// Options of [`copy`], mirroring LLB's `FileActionCopy`. [`content_digest`] takes the same
/// options and uses only the source-side ones (`src`, `follow_symlink`, wildcards,
/// `source_owner`, the three pattern lists and `required_paths`).
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Absolute path in the source tree; with `allow_wildcard` it may contain `*`, `?`, `[...]`
    /// and `\` escapes (Go `filepath.Match` per component; `*` never crosses `/`).
    pub src: String,
    /// Absolute path in the destination tree; a trailing `/` (or `/.`) means "a directory".
    pub dest: String,
    /// Owner given to every copied entry and to the directories the copy creates; for an
    /// unpacked archive, to every extracted entry.
    pub owner: Option<Ownership>,
    /// When `owner` is `None`: ownership given to copied entries instead of their source
    /// ownership (the local build context, whose files become 0:0). Not applied to the
    /// entries of an unpacked archive, which keep the archive's ownership.
    pub source_owner: Option<Ownership>,
    /// Permission bits (with setuid, setgid and sticky) given to every copied entry except
    /// symlinks, and to the directories the copy creates.
    pub mode: Option<u32>,
    /// Symbolic (or octal) chmod string (`u=rwX,go=rX`, see [`ModeSet`]) applied to every
    /// copied entry except symlinks, relative to the entry's own source mode. Takes precedence
    /// over `mode`, as in BuildKit, where a mode string means no numeric mode is used at all:
    /// directories the copy creates as parents then get 0755.
    pub mode_str: Option<String>,
    /// Copy what the matched source path points to when it is a symlink (resolved within the
    /// source root). Symlinks inside copied directories are always copied as symlinks.
    pub follow_symlink: bool,
    /// A source directory's contents are copied into `dest`, not the directory itself.
    pub dir_copy_contents: bool,
    /// Create missing parent directories of `dest`; otherwise its parent must exist.
    pub create_dest_path: bool,
    /// Expand wildcards in `src`.
    pub allow_wildcard: bool,
    /// A wildcard matching nothing copies nothing instead of failing.
    pub allow_empty_wildcard: bool,
    /// Modification (and access) time of every copied entry and created directory, in Unix
    /// seconds; `None` keeps the source times.
    pub timestamp: Option<i64>,
    /// Only entries matching these patterns ([`PatternMatcher`] semantics), and the directories
    /// on the way to them, are copied. Matched against the path relative to each matched source
    /// (fsutil's rule); the matched source itself is always copied. BuildKit lowers
    /// `COPY --parents a/b/c /d/` to `src: "/"` with `a/b/c` here, and `/x/./y/z` to `src: "/x"`
    /// with `y/z`. Directories created on the way get their source's metadata.
    pub include_patterns: Vec<String>,
    /// Entries matching these patterns are not copied (`COPY --exclude`). Matched, like
    /// `include_patterns`, against the path relative to each matched source: excluding `*.log`
    /// while copying `/src/dir` tests `x.log` for `/src/dir/x.log`. The matched source itself is
    /// never excluded (so a single-file source is always copied).
    pub exclude_patterns: Vec<String>,
    /// The build context's excludes (`.dockerignore`), matched against the path relative to the
    /// *source root*. Unlike `exclude_patterns` they hide paths as if they were not in the
    /// context at all: a hidden source is [`FileOpError::NotFound`], wildcards do not match
    /// hidden paths, and a hidden directory exists only while a `!` pattern re-includes
    /// something below it. A matched source reached through a symlink is filtered by the path
    /// it was matched at.
    pub context_excludes: Vec<String>,
    /// Paths in the source tree (relative to its root; a leading `/` changes nothing) that must
    /// exist, as seen through `context_excludes`; a missing one is [`FileOpError::NotFound`].
    pub required_paths: Vec<String>,
    /// `ADD`'s archive handling (LLB `attempt_unpack_docker_compatibility`): a matched source
    /// that is a regular file (after following symlinks) holding a tar archive, plain or
    /// compressed with gzip, bzip2, xz or zstd (detected by content, never by name), is
    /// extracted into `dest`, which is treated as a directory (created with mode 0755, `owner`
    /// and `timestamp` when missing), merging into what is there like `tar -x`. Entries keep the
    /// archive's ownership unless `owner` is set, and its modes and times; `mode`, `mode_str`,
    /// the patterns and `timestamp` do not apply to them. Whiteout names (`.wh.*`) are plain
    /// names here, as in docker's `ADD`. Other sources are copied as usual.
    pub attempt_unpack: bool,
    /// Replace existing destination entries of another type (a directory over a file and the
    /// reverse) instead of failing; directories still merge into directories.
    pub always_replace_existing_dest_paths: bool,
}

/// What [`copy`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Non-directory entries written (files, hard links, symlinks, device nodes, fifos).
    pub files: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}

/// Errors of file operations. Paths are the ones the build sees (`/dir/file`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileOpError {
    /// A root directory could not be opened.
    #[error("failed to open root directory {path}")]
    OpenRoot {
        /// The host path of the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A source path does not exist, or a wildcard matched nothing.
    #[error("\"{path}\": not found")]
    NotFound {
        /// The path or pattern.
        path: String,
    },
    /// A directory was to be copied onto an existing non-directory.
    #[error("cannot copy directory {src} to {dest}: destination exists and is not a directory")]
    DirOverNonDir {
        /// The source directory.
        src: String,
        /// The destination.
        dest: String,
    },
    /// A non-directory was to be copied onto an existing directory.
    #[error("cannot copy {src} to {dest}: destination is a directory")]
    NonDirOverDir {
        /// The source entry.
        src: String,
        /// The destination directory.
        dest: String,
    },
    /// The path to create exists already.
    #[error("{path}: file exists")]
    Exists {
        /// The path.
        path: String,
    },
    /// A path is unusable for the operation.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A user name is not in the destination's `/etc/passwd`.
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser {
        /// The name.
        name: String,
    },
    /// A group name is not in the destination's `/etc/group`.
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup {
        /// The name.
        name: String,
    },
    /// A path pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// A chmod mode string is malformed.
    #[error("invalid mode {mode:?}: {reason}")]
    InvalidMode {
        /// The mode string as given.
        mode: String,
        /// Why.
        reason: &'static str,
    },
    /// Extracting an archive (`ADD`) failed; nothing was written outside the destination.
    #[error("failed to extract archive {path}")]
    Extract {
        /// The archive's source path.
        path: String,
        /// The cause.
        #[source]
        source: crate::layer::LayerError,
    },
    /// A requested feature is not implemented.
    #[error("file operation not supported: {what}")]
    NotSupported {
        /// The feature.
        what: &'static str,
    },
    /// A filesystem call failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Builds an [`FileOpError::Io`] mapper for `action` on `path`.
fn failed<'a, E: Into<io::Error>>(action: &'static str, path: &'a str) -> impl FnOnce(E) -> FileOpError + 'a {
    move |source| FileOpError::Io {
        action,
        path: path.to_owned(),
        source: source.into(),
    }
}

/// Opens a root directory as `O_PATH`.
fn open_root(path: &Path) -> Result<OwnedFd, FileOpError> {
    rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileOpError::OpenRoot {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Cleans a user path into its relative form (`/a/../b/` → `b`; the root is empty).
fn rel_path(path: &str) -> Result<Vec<u8>, FileOpError> {
    if path.contains('\0') {
        return Err(FileOpError::InvalidPath {
            path: path.to_owned(),
            reason: "path contains a nul byte",
        });
    }
    Ok(inroot::clean(path.as_bytes()).join(&b'/'))
}

/// How a relative path is shown in errors: absolute, as in the build.
fn shown(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}

/// Joins a shown path and a relative one.
fn join_shown(base: &str, rel: &[u8]) -> String {
    match (base.trim_end_matches('/'), rel.is_empty()) {
        (base, true) if !base.is_empty() => base.to_owned(),
        (base, _) => format!("{base}/{}", String::from_utf8_lossy(rel)),
    }
}

/// Splits a relative path into parent and last component (empty for the root).
fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b""[..], rel),
    }
}

fn timespec(secs: i64) -> Timespec {
    Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }
}

/// The source paths `src` names: the cleaned literal path, or with `allow_wildcard` the sorted
/// wildcard matches.
fn find_sources(
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
struct Source {
    dir: OwnedFd,
    name: Vec<u8>,
    stat: rfs::Stat,
}

/// Locates the source path `rel`, following a final symlink (within the root) when `follow`.
fn open_source(root: BorrowedFd<'_>, rel: &[u8], follow: bool) -> Result<Source, FileOpError> {
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
fn source_visible(filters: &Filters, rel: &[u8], source: &Source) -> Result<bool, FileOpError> {
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
fn copy_sources(
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
fn check_required(root: BorrowedFd<'_>, options: &CopyOptions, filters: &Filters) -> Result<(), FileOpError> {
    for path in &options.required_paths {
        let rel = rel_path(path)?;
        let source = open_source(root, &rel, false)?;
        if !source_visible(filters, &rel, &source)? {
            return Err(FileOpError::NotFound { path: shown(&rel) });
        }
    }
    Ok(())
}

/// Opens the regular file `name` of `dir` for reading and checks it is still the file `stat`
/// describes, so a file swapped for a fifo or device in between is never opened for reading.
fn open_regular(dir: BorrowedFd<'_>, name: &[u8], stat: &rfs::Stat) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, name, flags, Mode::empty())?;
    let now = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(now.st_mode) != rfs::FileType::RegularFile
        || (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino)
    {
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(fd)
}

/// The metadata given to directories created on the way to a path.
fn new_dir(mode: u32, owner: Option<Ownership>, timestamp: Option<i64>) -> NewDir {
    NewDir {
        mode,
        owner: owner.map(|o| (o.uid, o.gid)),
        mtime: timestamp.map(timespec),
    }
}

/// Creates directory `path` (LLB `FileActionMkDir`) with permission bits `mode & 0o777`.
///
/// With `make_parents`, missing parents are created too, all with `mode`, `owner` and
/// `timestamp`, and an existing directory is left unchanged. Without it the parent must exist;
/// an existing directory is accepted unchanged as well (as BuildKit does), an existing
/// non-directory is [`FileOpError::Exists`]. A final symlink is followed within the root.
pub fn mkdir(
    root: &Path,
    path: &str,
    mode: u32,
    make_parents: bool,
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(path)?;
    let new = new_dir(mode & 0o777, owner, timestamp);
    let show = shown(&rel);
    if make_parents {
        open_dir(root.as_fd(), &rel, Some(&new)).map_err(failed("create directory", &show))?;
        return Ok(());
    }
    let (dir, name) = resolve_final(root.as_fd(), &rel).map_err(failed("create directory", &show))?;
    match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if inroot::is_dir(&st) => Ok(()),
        Ok(_) => Err(FileOpError::Exists { path: show }),
        Err(Errno::NOENT) => inroot::make_dir(dir.as_fd(), &name, &new)
            .and_then(|fd| inroot::finish_dirs(&[fd], &new))
            .map_err(failed("create directory", &show)),
        Err(e) => Err(failed("create directory", &show)(e)),
    }
}

/// Writes file `path` (LLB `FileActionMkFile`) with `data` and permission bits `mode & 0o777`,
/// replacing an existing non-directory. A final symlink is followed within the root; the parent
/// must exist. The file is owned by `owner` (else by the caller) and gets `timestamp` as mtime.
pub fn mkfile(
    root: &Path,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(path)?;
    let show = shown(&rel);
    let (dir, name) = resolve_final(root.as_fd(), &rel).map_err(failed("write file", &show))?;
    let is_dir_err = || failed("write file", &show)(Errno::ISDIR);
    match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if inroot::is_dir(&st) => return Err(is_dir_err()),
        Ok(_) => rfs::unlinkat(&dir, name.as_slice(), AtFlags::empty()).map_err(failed("replace", &show))?,
        Err(Errno::NOENT) => {}
        Err(e) => return Err(failed("write file", &show)(e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rfs::openat(&dir, name.as_slice(), flags, Mode::from_raw_mode(0o600))
        .map_err(failed("create file", &show))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(failed("write file", &show))?;
    if let Some(o) = owner {
        rfs::fchown(&file, Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid)))
            .map_err(failed("chown", &show))?;
    }
    rfs::fchmod(&file, Mode::from_raw_mode(mode & 0o777)).map_err(failed("chmod", &show))?;
    if let Some(ts) = timestamp {
        rfs::futimens(&file, &inroot::times(timespec(ts))).map_err(failed("set times of", &show))?;
    }
    Ok(())
}

/// Removes `path` recursively (LLB `FileActionRm`); a final symlink is removed, not followed.
///
/// A missing path is [`FileOpError::NotFound`] unless `allow_not_found`. With
/// `allow_wildcard`, every match of the pattern is removed; no match is not an error. The root
/// itself cannot be removed.
pub fn rm(root: &Path, path: &str, allow_not_found: bool, allow_wildcard: bool) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    for rel in find_sources(root.as_fd(), path, allow_wildcard, true)? {
        let show = shown(&rel);
        let (parent, name) = split_last(&rel);
        if name.is_empty() {
            return Err(FileOpError::InvalidPath {
                path: path.to_owned(),
                reason: "cannot remove the root directory",
            });
        }
        let exists = match open_dir(root.as_fd(), parent, None) {
            Ok(dir) => match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => Some(dir),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(failed("remove", &show)(e)),
            },
            Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => None,
            Err(e) => return Err(failed("remove", &show)(e)),
        };
        match exists {
            Some(dir) => inroot::remove_all(dir.as_fd(), name).map_err(failed("remove", &show))?,
            None if allow_not_found => {}
            None => return Err(FileOpError::NotFound { path: show }),
        }
    }
    Ok(())
}

/// Creates symlink `newpath` pointing to `oldpath` (stored verbatim) (LLB
/// `FileActionSymlink`). The parent must exist; an existing `newpath` is
/// [`FileOpError::Exists`]. The link is owned by `owner` (else by the caller) and gets
/// `timestamp` as mtime.
pub fn symlink(
    root: &Path,
    oldpath: &str,
    newpath: &str,
    owner: Option<Ownership>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let root = open_root(root)?;
    let rel = rel_path(newpath)?;
    let show = shown(&rel);
    if oldpath.contains('\0') {
        return Err(FileOpError::InvalidPath {
            path: oldpath.to_owned(),
            reason: "symlink target contains a nul byte",
        });
    }
    let (parent, name) = split_last(&rel);
    if name.is_empty() {
        return Err(FileOpError::Exists { path: show });
    }
    let dir = open_dir(root.as_fd(), parent, None).map_err(failed("create symlink", &show))?;
    match rfs::symlinkat(oldpath, &dir, name) {
        Err(Errno::EXIST) => return Err(FileOpError::Exists { path: show }),
        other => other.map_err(failed("create symlink", &show))?,
    }
    if let Some(o) = owner {
        let (uid, gid) = (Some(Uid::from_raw(o.uid)), Some(Gid::from_raw(o.gid)));
        rfs::chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(failed("chown", &show))?;
    }
    if let Some(ts) = timestamp {
        rfs::utimensat(
            &dir,
            name,
            &inroot::times(timespec(ts)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(failed("set times of", &show))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_shown_absolute() {
        assert_eq!(rel_path("/a/../../b/./c/").unwrap(), b"b/c");
        assert_eq!(rel_path("/").unwrap(), b"");
        assert!(matches!(rel_path("a\0b"), Err(FileOpError::InvalidPath { .. })));
        assert_eq!(shown(b"b/c"), "/b/c");
        assert_eq!(join_shown("/", b"x"), "/x");
        assert_eq!(join_shown("/d", b""), "/d");
        assert_eq!(join_shown("/d", b"x/y"), "/d/x/y");
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn user_refs_parse() {
        assert_eq!(UserRef::parse("1000"), UserRef::Id(1000));
        assert_eq!(UserRef::parse("www-data"), UserRef::Name("www-data".into()));
        assert_eq!(UserRef::parse("+5"), UserRef::Name("+5".into()));
        assert_eq!(UserRef::parse("99999999999"), UserRef::Name("99999999999".into()));
    }
}
