//! The names a layer tar uses for deletions, and the xattrs overlayfs keeps for itself.

/// Prefix of an OCI whiteout entry: `.wh.<name>` deletes `<name>` from the lower layers.
pub(super) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// OCI opaque-directory marker: hides everything the lower layers had in its directory.
pub(super) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of the xattrs overlayfs keeps for itself; they never travel inside a layer tar.
pub(super) const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
