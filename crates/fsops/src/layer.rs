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
//! - [`write_layer`] (and [`write_layer_clamped`], which caps mtimes) turns an upper directory back into a layer tar. The output is deterministic:
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
//! Errors tell the input from the disk: a tar (or the decompressor under it) that cannot be read
//! is [`LayerError::ReadTar`] or [`LayerError::ReadEntry`] ([`LayerError::is_input_error`]), a
//! corrupt or truncated blob; a failure to write the tree keeps its OS error
//! ([`LayerError::Apply`]: `No space left on device (os error 28)`).
//!
//! Deliberately not done here: compression (callers wrap the streams), digests, crash-test
//! fault points (callers get a hook per entry, [`apply_layer_with`]), diffing two trees without
//! overlayfs, and the overlayfs features kiln does not mount with (`redirect_dir`, `metacopy`,
//! `userxattr`); upper directories using those are not understood.

mod apply;
mod error;
mod names;
mod write;

pub(crate) use apply::extract_archive;
pub use apply::{ApplyStats, apply_layer, apply_layer_with};
pub use error::LayerError;
pub use write::{LayerStats, write_layer, write_layer_clamped};
