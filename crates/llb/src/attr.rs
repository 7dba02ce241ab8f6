//! Well-known identifiers and attribute keys.

/// Metadata description key for the name shown in progress output.
pub const CUSTOM_NAME: &str = "llb.customname";

/// Scheme of image sources: `docker-image://<normalised reference>`.
pub const SCHEME_IMAGE: &str = "docker-image://";
/// Scheme of local directory sources: `local://<name>`.
pub const SCHEME_LOCAL: &str = "local://";

/// Local source: only transfer paths matching these patterns (JSON list).
pub const LOCAL_INCLUDE_PATTERNS: &str = "local.includepattern";
/// Local source: never transfer paths matching these patterns (JSON list).
pub const LOCAL_EXCLUDE_PATTERNS: &str = "local.excludepatterns";
/// Local source: paths the graph reads (JSON list), so a transfer can be limited to them.
pub const LOCAL_FOLLOW_PATHS: &str = "local.followpaths";
/// Local source: a hint naming the directory, to reuse earlier transfers of it.
pub const LOCAL_SHARED_KEY_HINT: &str = "local.sharedkeyhint";

/// Image source: how to resolve (`default`, `pull`, `local`).
pub const IMAGE_RESOLVE_MODE: &str = "image.resolvemode";
