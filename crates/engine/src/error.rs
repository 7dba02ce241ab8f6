//! Build errors, carrying what the CLI needs to point at the Dockerfile.

/// Lines of a source file that an error concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSnippet {
    /// File name, e.g. `Dockerfile`.
    pub filename: String,
    /// The whole file.
    pub data: String,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line (1-based, inclusive).
    pub end_line: usize,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build request itself is wrong (missing context, unreadable Dockerfile, …).
    #[error("{0}")]
    Request(String),
    /// The Dockerfile is wrong.
    #[error("{error}")]
    Dockerfile {
        /// The frontend's error.
        error: Box<dockerfile::Error>,
        /// Where, when it concerns particular lines.
        snippet: Option<SourceSnippet>,
    },
    /// A build step failed.
    #[error("{message}")]
    Step {
        /// The failing vertex.
        vertex: oci::Digest,
        /// Its progress name.
        name: String,
        /// Why it failed.
        message: String,
        /// The Dockerfile lines it came from.
        snippets: Vec<SourceSnippet>,
    },
    /// Writing an output failed.
    #[error("{0}")]
    Export(String),
}
