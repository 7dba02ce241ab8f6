//! What the compiler is given and what it gives back: build options, the image resolver it
//! asks for base-image metadata, and the compiled result.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use oci::{ImageConfig, Platform, Reference};

/// The `PATH` a `FROM scratch` stage (and any image without one) gets on Linux.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The history comment BuildKit writes on every entry it creates.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Name of the local source holding the build context.
pub const CONTEXT_NAME: &str = "context";

/// A named build context (`--build-context NAME=…`): what FROM, `COPY --from` and
/// `RUN --mount from=` mean when they use NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, transferred as the local source of this name.
    Local(String),
    /// An image.
    Image(Reference),
}

/// What a build asks of the compiler.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The platform to build for.
    pub target_platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// The Dockerfile's name, for the source map.
    pub dockerfile_name: String,
    /// Patterns of paths to leave out of local sources (from `.dockerignore`), by local name.
    pub local_excludes: BTreeMap<String, Vec<String>>,
    /// Named build contexts, by lower-cased name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// Identifies the client session local sources belong to, so that identical local sources
    /// of different clients never share a vertex. `None` for offline compiles.
    pub session: Option<String>,
    /// Never use cached results (`--no-cache`).
    pub no_cache: bool,
    /// `--add-host` entries every RUN gets in its `/etc/hosts`.
    pub extra_hosts: Vec<llb::pb::HostIp>,
    /// `--network`: the network of RUN steps that do not choose one (`Unset`: the worker's).
    pub default_network: llb::pb::NetMode,
    /// `--ulimit`s of every RUN step.
    pub ulimits: Vec<llb::pb::Ulimit>,
    /// `--shm-size` in bytes: every RUN step gets a `/dev/shm` of this size (0: the runtime's).
    pub shm_size: i64,
    /// `--label`s of the result image; they win over the Dockerfile's `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache-filter`: lower-cased names of the stages whose steps never use the cache.
    pub no_cache_filter: BTreeSet<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
            dockerfile_name: "Dockerfile".into(),
            local_excludes: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
            session: None,
            no_cache: false,
            extra_hosts: Vec::new(),
            default_network: llb::pb::NetMode::Unset,
            ulimits: Vec::new(),
            shm_size: 0,
            labels: BTreeMap::new(),
            no_cache_filter: BTreeSet::new(),
        }
    }
}

/// The result of resolving a base image.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference to build from, pinned to the manifest digest when it is known.
    pub reference: Reference,
    /// The image config (an empty default when unknown, e.g. offline).
    pub config: ImageConfig,
}

/// Why an image could not be resolved: the resolver's own error, kept whole as the cause of
/// the compiler's [`ErrorKind::Resolve`](crate::ErrorKind::Resolve).
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// Supplies base-image metadata to the compiler. The compiler never does IO itself.
pub trait ImageResolver: Sync {
    /// Resolves `reference` for `platform`.
    fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, ResolveError>> + Send;
}

/// A resolver that resolves nothing: every image gets an empty config and stays unpinned
/// (`kiln debug llb --offline`).
pub struct OfflineResolver;

impl ImageResolver for OfflineResolver {
    async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            ..ImageConfig::default()
        };
        Ok(ResolvedImage {
            reference: reference.clone(),
            config,
        })
    }
}

/// A compiled build.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The build graph; its result is the target stage's filesystem.
    pub definition: llb::Definition,
    /// The image config of the target stage, with history. Layer diff IDs are left for the
    /// exporter to fill in.
    pub image: ImageConfig,
    /// The target stage's display name.
    pub target: String,
    /// Build arguments given but never declared.
    pub unused_build_args: Vec<String>,
    /// Names of the local sources the build reads (the build context and named local contexts).
    pub locals: BTreeSet<String>,
}
