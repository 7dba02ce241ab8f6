//! The errors of layer apply and layer write.

use std::io;
use std::path::PathBuf;

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
    /// The tar stream (or the decompressor under it) could not be read between entries: the
    /// input is corrupt or truncated.
    #[error("failed to read layer tar after {entries} entries")]
    ReadTar {
        /// Entries read successfully before the failure.
        entries: u64,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The content of one entry could not be read from the stream: the input is corrupt or
    /// truncated (writing it is [`LayerError::Apply`]).
    #[error("failed to read the content of layer entry {entry}")]
    ReadEntry {
        /// The entry path as stored in the tar (lossily decoded).
        entry: String,
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

impl LayerError {
    /// Whether the input stream failed to read (a corrupt or truncated blob), as opposed to the
    /// tree failing to be written or an entry being refused.
    pub fn is_input_error(&self) -> bool {
        matches!(self, LayerError::ReadTar { .. } | LayerError::ReadEntry { .. })
    }
}
