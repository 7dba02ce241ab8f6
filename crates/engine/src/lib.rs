//! The build engine: what a build means, composed from the lower layers.
//!
//! [`Engine::build`] runs a build job end to end: it reads the Dockerfile, resolves base-image
//! metadata through the registry, compiles the Dockerfile to LLB (`dockerfile`), turns every
//! LLB op into a solver op (`ops`: image and local sources, exec, file), solves the graph with
//! the store-backed cache (`cache`), and writes the requested outputs (`exporter`).
//!
//! Progress is reported as data ([`Event`]) to a [`Progress`] sink supplied by the caller;
//! internal steps (loading the definition, resolving metadata, exporting) appear as vertices
//! of their own, as in BuildKit.
//!
//! Invariants: knows nothing about the CLI or the wire; all blocking filesystem work runs on
//! tokio's blocking pool; all state lives in the [`store::Store`] (and the executor's own
//! directory, `executor/`, under the state directory).
//!
//! Tests: `tests/` (end-to-end, privileged).

#![forbid(unsafe_code)]

mod cache;
mod context;
mod disk;
mod docker;
mod error;
pub mod explain;
mod export;
mod frontend;
mod history;
mod job;
mod layout;
mod ops;
pub mod progress;
mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use disk::{
    DiskError, DiskUsage, Filter, GcOutcome, OtherContent, ParseError, PruneOptions, PruneReport, RecordId,
    RecordKind, SnapshotId, StateDir, TextMatch, UsageRecord, default_gc_limit, parse_duration, parse_size,
};
pub use docker::{DEFAULT_DOCKER_HOST, LoadError, load as load_into_docker};
pub use error::{BuildError, DockerfileError, SourceSnippet, StepError};
pub use executor::{NetworkMode, ULIMIT_NAMES};
pub use export::ExportError;
pub use exporter::Compression;
/// Build contexts sent as archives (`kiln build - < context.tar`) are unpacked by the client with
/// the store's confined extraction (see [`fsops::fileop::unpack_archive`]).
pub use fsops::fileop::{is_archive, unpack_archive};
pub use history::{BuildStatus, HistoryEntry, history};
pub use layout::{LayoutError, split_layout_context};
pub use ops::ssh::start_key_agent;
pub use progress::{Event, Progress};
/// Registry credentials as the client's docker configuration gives them (a daemon's client
/// answers its daemon's questions with them).
pub use registry::{CredentialStore, DockerConfigCredentials};
pub use remote::error::CacheError;
pub use remote::{CacheBackend, CacheExport, CacheMode, RemoteRef, S3Location};
pub use sources::human_size;
/// Build logs, readable without opening the state directory (see [`store::logs`]).
pub use store::logs;

use oci::Platform;
use solver::Solver;
use store::Store;

/// A result of a solver vertex: a filesystem.
#[derive(Clone, Debug)]
pub enum Ref {
    /// The empty filesystem.
    Empty,
    /// A committed snapshot.
    Snapshot(store::SnapshotId),
    /// A directory of the client (the build context), read in place.
    Local(Arc<PathBuf>),
    /// A result found in a `--cache-from` cache, downloaded only when its files are needed.
    Remote(Arc<RemoteRef>),
}

/// Where an output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A file.
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// A Docker daemon, loaded through its Engine API (`type=docker` without `dest`, `--load`):
    /// its address (`DOCKER_HOST`, `unix:///var/run/docker.sock` by default).
    Daemon(String),
    /// A client's stream (a daemon's build: the client writes the bytes where it was asked).
    Stream(StreamSink),
}

/// One requested output (`--output`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    /// The result filesystem copied into a directory.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// An OCI image-layout tarball.
    Oci {
        /// Where to write it.
        dest: Destination,
        /// Image name to record in the index.
        name: Option<String>,
        /// `oci-mediatypes=`: OCI media types (the default for `type=oci`) or Docker's.
        oci_media_types: Option<bool>,
        /// Layer compression and times.
        format: ImageFormat,
    },
    /// The result filesystem as a tar stream.
    Tar {
        /// Where to write it.
        dest: Destination,
    },
    /// A tarball for `docker load`: the OCI layout plus Docker's `manifest.json`.
    Docker {
        /// Where to write it.
        dest: Destination,
        /// The names to tag the image with when it is loaded.
        names: Vec<String>,
        /// `oci-mediatypes=`: Docker's media types (the default for `type=docker`) or OCI ones.
        oci_media_types: Option<bool>,
        /// Layer compression and times.
        format: ImageFormat,
    },
    /// The image pushed to a registry (`type=image,push=true`, `type=registry`, `--push`).
    Registry {
        /// Image references to push to, in order (a missing tag is `latest`).
        names: Vec<String>,
        /// Layer compression and times.
        format: ImageFormat,
    },
}

/// How an image output makes its layers and dates its image (exporter options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFormat {
    /// `compression=`: of the layers made for this output (default gzip).
    pub compression: Compression,
    /// `compression-level=`: gzip 0–9, zstd 1–22.
    pub compression_level: Option<i32>,
    /// `force-compression=true`: base image layers are converted to `compression` too.
    pub force_compression: bool,
    /// `rewrite-timestamp=true`: the build's own layers get no mtime later than
    /// `SOURCE_DATE_EPOCH`.
    pub rewrite_timestamp: bool,
    /// `source-date-epoch=`: this output's `SOURCE_DATE_EPOCH`, instead of the build's.
    pub source_date_epoch: Option<i64>,
}

/// A build to run.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// A git repository as the build context (`kiln build https://host/repo.git#ref:subdir`):
    /// when set, `context` is ignored; the repository is checked out first and its checkout is
    /// the context, and a relative `dockerfile` is inside the checkout.
    pub git_context: Option<dockerfile::convert::GitRef>,
    /// The Dockerfile; default `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text, when the client has it rather than a file (`-f -`, read from
    /// standard input); `dockerfile` then only names it. No `<Dockerfile>.dockerignore` applies.
    pub dockerfile_text: Option<String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--output`s.
    pub outputs: Vec<OutputSpec>,
    /// `--build-context NAME=VALUE`s, as given: a directory, or `docker-image://REF`.
    pub named_contexts: BTreeMap<String, String>,
    /// `--secret`s, by id: where each secret's value is read from when a step mounts it. The
    /// value is never stored, logged or part of a cache key.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh`es, by id: the agents (or keys) a step's `RUN --mount=type=ssh` may use.
    pub ssh: BTreeMap<String, SshSource>,
    /// `--allow`: the entitlements granted to this build.
    pub entitlements: BTreeSet<Entitlement>,
    /// `--add-host HOST:IP`s: extra `/etc/hosts` entries of every RUN, in order.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `--network`: the network of RUN steps without `--network` (`Unset`: the worker's).
    pub default_network: llb::pb::NetMode,
    /// `--ulimit`s of every RUN step.
    pub ulimits: Vec<llb::pb::Ulimit>,
    /// `--shm-size` in bytes (0: the runtime's 64 MiB).
    pub shm_size: i64,
    /// `--label`s of the result image.
    pub labels: BTreeMap<String, String>,
    /// `--cache-from`: caches whose results the build may use (a miss in the local cache is
    /// looked up there).
    pub cache_from: Vec<CacheBackend>,
    /// `--cache-to`: where the build's cache is exported after its outputs.
    pub cache_to: Vec<CacheExport>,
    /// `--no-cache-filter`: names of the stages whose steps never use the cache.
    pub no_cache_filter: BTreeSet<String>,
    /// The `.dockerignore` patterns of the context, when the client gives them (a daemon's
    /// build: the client applied them already and the daemon has no `<Dockerfile>.dockerignore`
    /// to read); `None`: read from the context (or beside the Dockerfile).
    pub context_excludes: Option<Vec<String>>,
    /// How the client names the context (a daemon's build: the client's directory, where
    /// `context` is the daemon's copy of it), for the build's log and history.
    pub client_context: Option<String>,
    /// Where this build's registry credentials come from; `None`: the docker configuration of
    /// the process (`~/.docker/config.json`, `DOCKER_CONFIG`), read only when a registry asks.
    pub credentials: Option<Credentials>,
}

/// Where a secret's value comes from (`--secret id=ID,src=FILE` or `…,env=VAR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file of the client, read when a step mounts the secret.
    File(PathBuf),
    /// An environment variable of the client process.
    Env(String),
    /// Asked of a client when a step needs it (a daemon's build: the client serves it).
    Client(ClientSecrets),
}

/// A client that serves secret values on request.
pub trait SecretProvider: Send + Sync {
    /// The value of secret `id`, `Ok(None)` when the client has none, or why the client could
    /// not give it. Blocking: it may wait for the client's answer.
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, String>;
}

/// A [`SecretProvider`] in a request (equal only to itself; never printed).
#[derive(Clone)]
pub struct ClientSecrets(pub Arc<dyn SecretProvider>);

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecrets(..)")
    }
}

impl PartialEq for ClientSecrets {
    fn eq(&self, other: &ClientSecrets) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ClientSecrets {}

/// Where an output's bytes go when a client writes them (a daemon's build): each output opens
/// one writer, writes the whole output, then finishes it.
pub trait OutputStream: Send + Sync {
    /// A writer for one output.
    fn open(&self) -> Box<dyn StreamWriter>;
}

/// The writer of one streamed output.
pub trait StreamWriter: std::io::Write + Send {
    /// The output is complete: the client may keep it.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// An [`OutputStream`] in a request (equal only to itself).
#[derive(Clone)]
pub struct StreamSink(pub Arc<dyn OutputStream>);

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSink(..)")
    }
}

impl PartialEq for StreamSink {
    fn eq(&self, other: &StreamSink) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StreamSink {}

/// What an `--ssh` id forwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket (`--ssh default` uses `$SSH_AUTH_SOCK`).
    Socket(PathBuf),
    /// Private key files, served by an agent kiln starts for the build.
    Keys(Vec<PathBuf>),
}

/// A privilege a build must be granted explicitly (`--allow`), as BuildKit's entitlements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host`.
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure`.
    SecurityInsecure,
}

impl Entitlement {
    /// The name users type (`network.host`, `security.insecure`).
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }

    /// Parses a name users type.
    pub fn parse(name: &str) -> Option<Entitlement> {
        match name {
            "network.host" => Some(Entitlement::NetworkHost),
            "security.insecure" => Some(Entitlement::SecurityInsecure),
            _ => None,
        }
    }
}

/// The image an output wrote (an OCI tarball or a push), as `--metadata-file` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedImage {
    /// The manifest's descriptor.
    pub manifest: oci::Descriptor,
    /// The digest of the image config.
    pub config: oci::Digest,
    /// The names the image was written or pushed under, as given.
    pub names: Vec<String>,
}

/// What a finished build reports.
#[derive(Clone, Debug, Default)]
pub struct BuildResult {
    /// Manifest digest of the image, when an image output was written.
    pub manifest: Option<oci::Digest>,
    /// The image of the last image output (OCI tarball or push), if any.
    pub image: Option<ExportedImage>,
    /// Build arguments that were given but never used.
    pub unused_build_args: Vec<String>,
    /// What automatic garbage collection did after the build.
    pub gc: GcOutcome,
    /// The build's id: its log is `kiln logs <id>`.
    pub id: String,
    /// Problems that did not fail the build (e.g. its log could not be written).
    pub warnings: Vec<String>,
}

/// How to set up an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The state directory.
    pub root: PathBuf,
    /// The OCI runtime binary (`runc`).
    pub runtime: PathBuf,
    /// Registries to reach over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Bound on steps executing at once (`--max-parallelism`). `None`: in-process work
    /// (copies, layer unpacking, hashing) is bounded by the cores and RUN steps and downloads
    /// are not bounded, so steps that sleep or wait overlap.
    pub max_parallelism: Option<usize>,
    /// The network RUN steps get when they do not ask for one (`RUN --network=default`):
    /// BuildKit's `oci-worker-net`. These machines have no bridge or CNI, so the default is
    /// [`executor::NetworkMode::None`] (loopback only); [`executor::NetworkMode::Host`] shares the
    /// host's network, so steps reach what the host reaches (and the host's own services).
    pub default_network: executor::NetworkMode,
    /// Limit of automatic garbage collection after builds, in bytes (`--gc-keep-storage`);
    /// `None`: [`default_gc_limit`] of the state directory; `Some(0)`: no automatic GC.
    pub gc_keep_storage: Option<u64>,
}

impl EngineConfig {
    /// Defaults for a state directory: `runc` from `PATH`.
    pub fn new(root: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            root: root.into(),
            runtime: PathBuf::from("runc"),
            insecure_registries: Vec::new(),
            max_parallelism: None,
            default_network: executor::NetworkMode::None,
            gc_keep_storage: None,
        }
    }
}

/// Errors setting up an engine.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The state directory could not be opened.
    #[error("failed to open the state directory")]
    Store(#[from] store::Error),
    /// The executor could not be set up.
    #[error("failed to set up the container runtime")]
    Executor(#[from] executor::Error),
    /// The registry client could not be set up.
    #[error("failed to set up the registry client")]
    Registry(#[from] registry::Error),
}

/// Object-safe form of [`executor::Executor`], so an engine can hold any executor behind one type.
pub trait DynExecutor: Send + Sync {
    /// See [`executor::Executor::run`].
    fn run<'a>(
        &'a self,
        rootfs: &'a Path,
        spec: &'a executor::ExecSpec,
        output: &'a dyn executor::OutputSink,
    ) -> solver::BoxFuture<'a, Result<executor::ExitStatus, executor::Error>>;
}

impl<E: executor::Executor> DynExecutor for E {
    fn run<'a>(
        &'a self,
        rootfs: &'a Path,
        spec: &'a executor::ExecSpec,
        output: &'a dyn executor::OutputSink,
    ) -> solver::BoxFuture<'a, Result<executor::ExitStatus, executor::Error>> {
        Box::pin(executor::Executor::run(self, rootfs, spec, output))
    }
}

/// A build's source of registry credentials (never printed).
#[derive(Clone)]
pub struct Credentials(pub Arc<dyn registry::CredentialStore>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl BuildRequest {
    /// The registry client of this build: the engine's, with this build's credentials.
    pub(crate) fn registry(&self, engine: &registry::Client) -> registry::Client {
        let credentials = match &self.credentials {
            Some(Credentials(store)) => store.clone(),
            None => Arc::new(registry::DockerConfigCredentials::from_env()),
        };
        engine.with_credentials(credentials)
    }
}

/// Everything ops need, shared by all builds of an engine.
pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    /// The anonymous registry client; builds use handles of it with their credentials.
    pub(crate) registry: registry::Client,
    pub(crate) executor: Arc<dyn DynExecutor>,
    pub(crate) platform: Platform,
    /// The network of RUN steps that do not ask for one ([`EngineConfig::default_network`]).
    pub(crate) default_network: executor::NetworkMode,
    /// HTTP sources' client and what earlier downloads returned (for revalidation).
    pub(crate) http: sources::http::HttpState,
    /// Listings of hashed build-context files, for cache-miss explanations.
    pub(crate) listings: Arc<explain::Listings>,
}

/// The build engine. One per process (or daemon); builds may run concurrently.
pub struct Engine {
    inner: Arc<Inner>,
    solver: Arc<Solver<Ref, ops::Session>>,
    /// Held shared by every running build, exclusively by garbage collection: GC never runs
    /// while a build uses snapshots the store cannot see as used (see [`Engine::collect_garbage`]).
    builds: tokio::sync::RwLock<()>,
    /// Automatic GC limit in bytes; 0 = off.
    gc_limit: u64,
}

impl Engine {
    /// Opens the state directory and sets up the runc executor. `on_wait` is called if another
    /// process holds the state directory, before waiting for it.
    ///
    /// Crash recovery happens here: opening the store removes its debris, and then every
    /// container a killed kiln left in the executor's directory is killed and deleted (the
    /// store's lock is held, so none of them belongs to a live process). A stale container may
    /// have written into a half-made snapshot meanwhile, so the store recovers once more after.
    pub fn open(config: &EngineConfig, on_wait: impl FnOnce()) -> Result<Engine, SetupError> {
        let store = Store::open(&config.root, on_wait)?;
        let mut runc = executor::RuncConfig::new(store.root().join("executor"));
        runc.runtime = config.runtime.clone();
        let executor = executor::RuncExecutor::new(runc)?;
        if !executor.recover()?.is_empty() {
            store.recover()?;
        }
        Self::with_executor(store, Arc::new(executor), config)
    }

    /// An engine over an open store with the given executor.
    pub fn with_executor(
        store: Store,
        executor: Arc<dyn DynExecutor>,
        config: &EngineConfig,
    ) -> Result<Engine, SetupError> {
        // Anonymous: each build gets a handle with its own credentials (`BuildRequest::credentials`).
        let registry = registry::Client::new(registry::ClientConfig {
            insecure: config.insecure_registries.clone(),
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            ..registry::ClientConfig::default()
        })?;
        let store = Arc::new(store);
        let cache = Arc::new(cache::StoreCache { store: store.clone() });
        let limits = match config.max_parallelism {
            Some(n) => solver::Limits::with_max_parallelism(n),
            None => solver::Limits::for_this_machine(),
        };
        let inner = Arc::new(Inner {
            store,
            registry,
            executor,
            platform: Platform::linux_amd64(),
            default_network: config.default_network,
            http: sources::http::HttpState::default(),
            listings: Arc::default(),
        });
        let gc_limit = config
            .gc_keep_storage
            .unwrap_or_else(|| default_gc_limit(inner.store.root()));
        Ok(Engine {
            inner,
            solver: Arc::new(Solver::with_limits(cache, limits)),
            builds: tokio::sync::RwLock::new(()),
            gc_limit,
        })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        self.inner.store.root()
    }

    /// The open state directory, for callers that inspect results (tests, exporters of their
    /// own).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Solves an LLB definition directly, without a frontend: `local_dirs` maps the names of its
    /// `local://` sources to directories. Returns the result snapshot (`None` for an empty
    /// result). Failures carry the failing vertex and its source locations, as [`Engine::build`].
    pub async fn solve_definition(
        &self,
        definition: &llb::Definition,
        local_dirs: &BTreeMap<String, PathBuf>,
        progress: Arc<dyn Progress>,
    ) -> Result<Option<store::SnapshotId>, BuildError> {
        let _running = self.builds.read().await;
        ops::solve_definition(&self.inner, &self.solver, definition, local_dirs, progress).await
    }

    /// Runs a build.
    pub async fn build(
        &self,
        request: &BuildRequest,
        progress: Arc<dyn Progress>,
    ) -> Result<BuildResult, BuildError> {
        let running = self.builds.read().await;
        let id = progress::new_build_id();
        let log = {
            let store = self.inner.store.clone();
            let id = id.clone();
            tokio::task::spawn_blocking(move || store.create_log(&id)).await
        };
        let mut warnings = Vec::new();
        let log = match log {
            Ok(Ok(log)) => Some(log),
            Ok(Err(e)) => {
                warnings.push(format!("the build log could not be created: {e}"));
                None
            }
            Err(e) => {
                warnings.push(format!("the build log could not be created: {e}"));
                None
            }
        };
        let progress = Arc::new(progress::BuildProgress::new(progress, log));
        progress.log_line(&progress::json::encode_build(&progress::json::BuildLine {
            id: id.clone(),
            started: oci::time::rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
            ),
            context: match (&request.git_context, &request.client_context) {
                (Some(git), _) => git.identifier(),
                (None, Some(client)) => client.clone(),
                (None, None) => request.context.display().to_string(),
            },
            dockerfile: match (&request.dockerfile, &request.git_context) {
                (Some(file), _) => file.display().to_string(),
                (None, Some(_)) => "Dockerfile".into(),
                (None, None) => request.context.join("Dockerfile").display().to_string(),
            },
            target: request.target.clone(),
        }));
        let result = job::build(&self.inner, &self.solver, request, progress.clone()).await;
        progress.log_line(&progress::json::encode_result(&progress::json::ResultLine {
            time: progress.elapsed().as_secs_f64(),
            error: result.as_ref().err().map(|e| oci::error_chain(e)),
        }));
        drop(running);
        warnings.extend(progress.warnings());
        let result = result.map(|mut r| {
            r.id = id;
            r.warnings = warnings;
            r
        });
        // After the outputs are written, and only after a success: a failed build's partial
        // results are worth keeping for the retry.
        let mut result = result?;
        result.gc = self.collect_garbage().await;
        Ok(result)
    }

    /// Compiles a Dockerfile to LLB without building. With `offline`, no base image is resolved.
    pub async fn compile(
        &self,
        request: &BuildRequest,
        offline: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<llb::Definition, BuildError> {
        let registry = request.registry(&self.inner.registry);
        if offline && request.git_context.is_some() {
            return Err(offline_git_context());
        }
        let _running = self.builds.read().await;
        let (request, _checkout) =
            context::resolve(&self.inner, &self.solver, request, &registry, progress.clone()).await?;
        frontend::compile_only(&self.inner, &registry, &request, offline, progress)
            .await
            .map(|(c, _)| c.definition)
    }
}

/// Compiles a Dockerfile with no engine at all: nothing is resolved (`kiln debug llb --offline`).
pub async fn compile_offline(request: &BuildRequest) -> Result<llb::Definition, BuildError> {
    if request.git_context.is_some() {
        return Err(offline_git_context());
    }
    frontend::compile_offline(request).await.map(|c| c.definition)
}

/// Parses a git build context as `kiln build URL` takes it (`https://host/repo.git#ref:dir`).
pub fn parse_git_context(text: &str) -> Result<dockerfile::convert::GitRef, String> {
    dockerfile::convert::parse_git_ref(text)?.ok_or_else(|| format!("{text:?} is no git URL"))
}

/// A git context cannot be read without fetching it.
fn offline_git_context() -> BuildError {
    BuildError::Request(
        "a git build context must be fetched before its Dockerfile can be read: run without --offline".into(),
    )
}

/// A new build session id, unique in this process (and across processes sharing a state
/// directory: it names the process).
pub(crate) fn new_session_id() -> String {
    static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Prepares the process for running builds: enters a private mount namespace so every mount
/// kiln makes disappears with the process, even if it is killed. Call first thing in `main`,
/// before any thread exists. Fails with the step and the OS error (without `CAP_SYS_ADMIN`,
/// `EPERM`); building without the namespace would leave mounts behind a killed kiln.
pub fn prepare_process() -> Result<(), executor::Error> {
    executor::enter_private_mount_namespace()
}
