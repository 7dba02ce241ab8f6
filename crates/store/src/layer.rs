//! Conversion between OCI image layer tarballs and overlayfs layer directories.
//!
//! kiln keeps every snapshot as an overlayfs layer: its upper directory holds only what changed
//! relative to the parent chain, in overlayfs's on-disk format (a deleted entry is a character
//! device 0/0; a replaced directory carries the xattr `trusted.overlay.opaque=y`).
//!
//! - [`apply_layer`] extracts an uncompressed layer tar onto a directory tree: an empty
//!   directory for a base layer, or the mounted merged view of the parent chain plus a new empty
//!   upper directory. On the merged view the kernel writes whiteouts and opaque markers into the
//!   upper directory itself, so applying only ever deletes, creates and replaces.
//! - [`write_layer`] turns an upper directory back into a layer tar. The output is deterministic:
//!   the same tree always yields byte-identical bytes.
//!
//! Security: layer tars are untrusted. Every write goes through a directory fd that was resolved
//! with `openat2(RESOLVE_IN_ROOT)` on the target root, so `..` and symlinks (absolute or
//! relative) can never lead outside it, and the last path component of an entry is never
//! followed. Entry paths are cleaned lexically first, and `..` is clamped at the root as
//! containerd does: `../../etc/x` is written to `<root>/etc/x`. See [`apply_layer`] for the
//! full rules. `apply_layer` takes any reader, so a fuzz target can feed it raw bytes
//! (`apply_layer(data, tempdir)`) and check that nothing appears outside the temp root.
//!
//! Deliberately not done here: compression (callers wrap the streams), digests, diffing two
//! trees without overlayfs, and the overlayfs features kiln does not mount with (`redirect_dir`,
//! `metacopy`, `userxattr`); upper directories using those are not understood.

use std::io;
use std::path::PathBuf;

mod apply;
mod write;

pub use apply::apply_layer;
pub(crate) use apply::extract_archive;
pub use write::write_layer;

/// Prefix of an OCI whiteout entry: `.wh.<name>` deletes `<name>` from the lower layers.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// OCI opaque-directory marker: hides everything the lower layers had in its directory.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of the xattrs overlayfs keeps for itself; they never travel inside a layer tar.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// What [`apply_layer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied, including whiteouts and opaque markers.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Entries ignored: unsupported types (sockets, PAX global headers, ...), the root
    /// directory itself, and aufs metadata names such as `.wh..wh.plnk`.
    pub skipped_entries: u64,
    /// xattrs not applied: `trusted.*` and other names outside the allow list, xattrs on
    /// symlinks and device nodes, and xattrs the file system does not support.
    pub skipped_xattrs: u64,
}

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries written (PAX extension headers not counted).
    pub entries: u64,
    /// Bytes of tar written, including the end-of-archive blocks.
    pub bytes: u64,
    /// True when the layer has no entries at all; kiln drops such layers from images.
    pub is_empty: bool,
    /// Things left out: sockets, and xattrs whose names are not UTF-8.
    pub skipped: u64,
}

/// Errors of layer apply and layer write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The root (apply) or upper (write) directory could not be opened.
    #[error("failed to open layer directory {path}")]
    OpenDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The tar stream is unreadable or malformed.
    #[error("failed to read layer tar after {entries} entries")]
    ReadTar {
        /// Entries read successfully before the failure.
        entries: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Applying one entry failed.
    #[error("failed to {action} for layer entry {entry}")]
    Apply {
        /// The entry path as stored in the tar (lossily decoded).
        entry: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry is malformed or unsafe and was refused.
    #[error("refused layer entry {entry}: {reason}")]
    InvalidEntry {
        /// The entry path as stored in the tar (lossily decoded).
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Writing the tar of an upper directory failed at one path.
    #[error("failed to {action} {path} while writing layer")]
    Write {
        /// The path relative to the upper directory (lossily decoded).
        path: String,
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
