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

/// Scheme of git sources: `git://<remote without scheme>[#ref[:subdir]]`.
pub const SCHEME_GIT: &str = "git://";
/// Git source: the remote as the user wrote it (`https://…`, `git@host:…`, `ssh://…`).
pub const GIT_FULL_URL: &str = "git.fullurl";
/// Git source: keep the `.git` directory (`"true"`).
pub const GIT_KEEP_GIT_DIR: &str = "git.keepgitdir";
/// Git source: the commit (or prefix) the ref must resolve to.
pub const GIT_CHECKSUM: &str = "git.checksum";
/// Git source: do not check out submodules (`"true"`).
pub const GIT_SKIP_SUBMODULES: &str = "git.skipsubmodules";

/// HTTP sources use the URL itself as identifier (`http://…`, `https://…`).
/// HTTP source: expected content digest (`sha256:…`).
pub const HTTP_CHECKSUM: &str = "http.checksum";
/// HTTP source: name of the downloaded file in the result.
pub const HTTP_FILENAME: &str = "http.filename";
/// HTTP source: permission bits of the file (decimal).
pub const HTTP_PERM: &str = "http.perm";

/// Local source: the client session the directory belongs to, so identical local sources of
/// different clients never share a vertex.
pub const LOCAL_SESSION: &str = "local.session";
