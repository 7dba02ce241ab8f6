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

/// Why a build failed. Each variant either says everything in its message or names its cause
/// as its `source()`, so [`oci::error_chain`] shows the whole story once.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build request itself is wrong (a missing context, an unusable named context, …): the
    /// message says what and what to do.
    #[error("{0}")]
    Request(String),
    /// A file or directory of the build (the Dockerfile, a `.dockerignore`, the context) could
    /// not be read.
    #[error("failed to read {what} {}", path.display())]
    Read {
        /// What it is (`dockerfile`, `build context`, …).
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `.dockerignore` file is not valid.
    #[error("failed to parse {}", path.display())]
    Ignore {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        #[source]
        source: dockerfile::dockerignore::DockerignoreError,
    },
    /// A `--build-context NAME=docker-image://REF` names no valid image.
    #[error("invalid build context {name}={value}")]
    NamedContext {
        /// The context's name.
        name: String,
        /// Its value as given.
        value: String,
        /// Why the reference is invalid.
        #[source]
        source: oci::ReferenceError,
    },
    /// The LLB definition cannot be run.
    #[error("invalid build definition")]
    Definition(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The Dockerfile is wrong (or what it names cannot be resolved).
    #[error(transparent)]
    Dockerfile(Box<DockerfileError>),
    /// A build step failed.
    #[error(transparent)]
    Step(Box<StepError>),
    /// Writing an output failed.
    #[error("failed to export")]
    Export(#[source] Box<crate::export::ExportError>),
    /// A `--cache-to` export failed (without `ignore-error=true`).
    #[error("failed to export the build cache")]
    CacheExport(#[source] Box<crate::CacheError>),
    /// The build's result was found in a remote cache and could not be downloaded.
    #[error("failed to download the build result from the cache")]
    CacheDownload(#[source] solver::OpError),
    /// The checked-out git build context could not be made ready to read.
    #[error("failed to mount the git build context")]
    Checkout(#[source] store::Error),
    /// A task of the build's own failed (a panic).
    #[error("internal task failed")]
    Internal(#[source] tokio::task::JoinError),
}

/// An error of the Dockerfile frontend, with the lines it is about.
///
/// It shows as the frontend's error does (the same message and `source()` chain).
#[derive(Debug)]
pub struct DockerfileError {
    /// The frontend's error.
    pub error: dockerfile::Error,
    /// Where, when it concerns particular lines.
    pub snippet: Option<SourceSnippet>,
}

impl std::fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for DockerfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// A build step that failed: which, why (the whole chain of causes) and where it came from.
///
/// It shows as its cause does (the same message and `source()` chain), so a rendered chain names
/// every cause once.
#[derive(Debug)]
pub struct StepError {
    /// The failing vertex and its error.
    pub error: solver::SolveError,
    /// The Dockerfile lines it came from.
    pub snippets: Vec<SourceSnippet>,
}

impl StepError {
    /// The failing vertex.
    pub fn vertex(&self) -> &oci::Digest {
        &self.error.vertex
    }

    /// Its progress name.
    pub fn name(&self) -> &str {
        &self.error.name
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}
