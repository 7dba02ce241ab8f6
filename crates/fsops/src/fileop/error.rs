//! The errors of file operations, with paths as the build sees them.

use std::io;
use std::path::PathBuf;

use crate::layer::LayerError;
use crate::user::UserError;

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
    /// A `--chown` user or group could not be resolved in the destination's user database.
    #[error(transparent)]
    User(#[from] UserError),
    /// A path pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// A chmod mode string is malformed.
    #[error(transparent)]
    InvalidMode(#[from] gocompat::chmod::ModeError),
    /// Extracting an archive (`ADD`) failed; nothing was written outside the destination.
    #[error("failed to extract archive {path}")]
    Extract {
        /// The archive's source path.
        path: String,
        /// The cause.
        #[source]
        source: LayerError,
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
pub(super) fn failed<'a, E: Into<io::Error>>(
    action: &'static str,
    path: &'a str,
) -> impl FnOnce(E) -> FileOpError + 'a {
    move |source| FileOpError::Io {
        action,
        path: path.to_owned(),
        source: source.into(),
    }
}
