//! What a copy is asked to do (LLB's `FileActionCopy`) and what it did.

use crate::user::Ownership;

/// Options of [`copy`](super::copy), mirroring LLB's `FileActionCopy`.
/// [`content_digest`](super::content_digest) takes the same
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
    /// Symbolic (or octal) chmod string (`u=rwX,go=rX`, see [`ModeSet`](super::ModeSet)) applied to every
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
    /// Only entries matching these patterns ([`PatternMatcher`](super::PatternMatcher) semantics), and the directories
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
    /// context at all: a hidden source is [`FileOpError::NotFound`](super::FileOpError::NotFound), wildcards do not match
    /// hidden paths, and a hidden directory exists only while a `!` pattern re-includes
    /// something below it. A matched source reached through a symlink is filtered by the path
    /// it was matched at.
    pub context_excludes: Vec<String>,
    /// Paths in the source tree (relative to its root; a leading `/` changes nothing) that must
    /// exist, as seen through `context_excludes`; a missing one is [`FileOpError::NotFound`](super::FileOpError::NotFound).
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

impl CopyOptions {
    /// Everything inside the directory `src` (itself followed when it is a symlink), every other
    /// option at its default: how a whole tree, such as a build context, is copied or digested.
    pub fn contents_of(src: impl Into<String>) -> CopyOptions {
        CopyOptions {
            src: src.into(),
            follow_symlink: true,
            dir_copy_contents: true,
            ..CopyOptions::default()
        }
    }
}

/// What [`copy`](super::copy) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Non-directory entries written (files, hard links, symlinks, device nodes, fifos).
    pub files: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
}
