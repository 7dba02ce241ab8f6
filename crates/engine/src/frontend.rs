//! The Dockerfile frontend adapter: read the Dockerfile and `.dockerignore` files, resolve base
//! images through the registry, compile to LLB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dockerfile::convert::{CONTEXT_NAME, NamedContext};
use dockerfile::{BuildOptions, Compiled, ImageResolver, ResolveError, ResolvedImage};
use oci::{Platform, Reference};
use sources::pull::{ImageSource, PullError};

use crate::progress::Step;
use crate::{BuildError, BuildRequest, Inner, Progress, SourceSnippet};

/// Resolves base images through the registry, recording manifests and configs in the store.
struct RegistryResolver<'a> {
    inner: &'a Arc<Inner>,
    /// The build's registry client, with its credentials.
    registry: registry::Client,
    progress: Arc<dyn Progress>,
    resolved: Mutex<BTreeMap<Reference, ResolvedImage>>,
    /// The build's local directories, `oci-layout://` contexts among them.
    locals: BTreeMap<String, PathBuf>,
}

/// Why resolving a base image failed.
#[derive(Debug, thiserror::Error)]
enum ResolveFailure {
    /// The registry's own error: the step already names the image.
    #[error(transparent)]
    Registry(registry::Error),
    #[error(transparent)]
    Pull(PullError),
    #[error(transparent)]
    Layout(crate::layout::LayoutError),
    #[error("internal error: no OCI layout directory for {0}")]
    NoLayout(String),
    #[error("internal task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl From<PullError> for ResolveFailure {
    fn from(error: PullError) -> ResolveFailure {
        match error {
            PullError::Registry { source, .. } => ResolveFailure::Registry(source),
            other => ResolveFailure::Pull(other),
        }
    }
}

impl ImageResolver for RegistryResolver<'_> {
    async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        if let Some(r) = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reference)
        {
            return Ok(r.clone());
        }
        let step = Step::start(
            &self.progress,
            format!("[internal] load metadata for {}", reference.name_with_tag()),
        );
        if crate::layout::is_layout(reference) {
            let result = self.resolve_layout(reference, platform).await;
            let result = step.finish(result)?;
            self.remember(reference, &result);
            return Ok(result);
        }
        let image = ImageSource {
            reference: reference.clone(),
            platform: platform.clone(),
        };
        let result = sources::pull::resolve_config(&self.inner.store, &self.registry, &image)
            .await
            .map(|(reference, config)| ResolvedImage { reference, config })
            .map_err(ResolveFailure::from);
        let result = step.finish(result)?;
        self.remember(reference, &result);
        Ok(result)
    }
}

impl RegistryResolver<'_> {
    fn remember(&self, reference: &Reference, result: &ResolvedImage) {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.clone(), result.clone());
    }

    /// An `oci-layout://` context: its image read from the client's layout directory.
    async fn resolve_layout(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveFailure> {
        let dir = self
            .locals
            .get(&crate::layout::local_name(reference))
            .cloned()
            .ok_or_else(|| ResolveFailure::NoLayout(reference.to_string()))?;
        let spec = crate::layout::LayoutSpec {
            dir,
            tag: reference.tag().map(str::to_string),
            digest: reference.digest().cloned(),
        };
        let (store, platform) = (self.inner.store.clone(), platform.clone());
        let (digest, config) =
            tokio::task::spawn_blocking(move || crate::layout::resolve(&store, &spec, &platform))
                .await
                .map_err(ResolveFailure::Task)?
                .map_err(ResolveFailure::Layout)?;
        Ok(ResolvedImage {
            reference: reference.with_digest(digest),
            config,
        })
    }
}

trait NameWithTag {
    fn name_with_tag(&self) -> String;
}

impl NameWithTag for Reference {
    /// `docker.io/library/busybox:latest`, as BuildKit names metadata steps.
    fn name_with_tag(&self) -> String {
        match self.tag() {
            Some(t) => format!("{}:{t}", self.name()),
            None => self.to_string(),
        }
    }
}

pub(crate) fn dockerfile_path(request: &BuildRequest) -> PathBuf {
    match &request.dockerfile {
        Some(p) => p.clone(),
        None => {
            let upper = request.context.join("Dockerfile");
            let lower = request.context.join("dockerfile");
            if !upper.exists() && lower.exists() {
                lower
            } else {
                upper
            }
        }
    }
}

/// Everything the compiler needs besides the Dockerfile, and the local directories the build
/// reads (by local source name).
fn build_options(
    request: &BuildRequest,
    dockerfile: &Path,
    platform: &Platform,
    session: Option<String>,
) -> Result<(BuildOptions, BTreeMap<String, PathBuf>), BuildError> {
    let mut options = BuildOptions {
        target: request.target.clone(),
        build_args: request.build_args.clone(),
        target_platform: platform.clone(),
        build_platform: platform.clone(),
        dockerfile_name: dockerfile
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into()),
        session,
        no_cache: request.no_cache,
        default_network: request.default_network,
        ulimits: request.ulimits.clone(),
        shm_size: request.shm_size,
        labels: request.labels.clone(),
        no_cache_filter: request
            .no_cache_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        extra_hosts: request
            .extra_hosts
            .iter()
            .map(|(host, ip)| llb::pb::HostIp {
                host: host.clone(),
                ip: ip.to_string(),
            })
            .collect(),
        ..BuildOptions::default()
    };
    let mut locals = BTreeMap::from([(CONTEXT_NAME.to_string(), request.context.clone())]);
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`.
    let specific = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
    let excludes = match &request.context_excludes {
        Some(patterns) => patterns.clone(),
        None if request.dockerfile_text.is_none() && specific.is_file() => read_ignore_file(&specific)?,
        None => read_ignore_file(&request.context.join(".dockerignore"))?,
    };
    options.local_excludes.insert(CONTEXT_NAME.to_string(), excludes);
    for (name, value) in &request.named_contexts {
        let key = name.to_ascii_lowercase();
        if let Some(layout) = value.strip_prefix("oci-layout://") {
            let invalid =
                |why: String| BuildError::Request(format!("invalid build context {name}={value}: {why}"));
            let spec = crate::layout::parse_spec(layout).map_err(invalid)?;
            if !spec.dir.join("index.json").is_file() {
                return Err(invalid(format!(
                    "{} is no OCI image layout (no index.json)",
                    spec.dir.display()
                )));
            }
            let reference = crate::layout::reference(name, &spec).map_err(invalid)?;
            locals.insert(crate::layout::local_name(&reference), spec.dir.clone());
            options.named_contexts.insert(key, NamedContext::Image(reference));
            continue;
        }
        if let Some(image) = value.strip_prefix("docker-image://") {
            let reference = Reference::parse(image).map_err(|source| BuildError::NamedContext {
                name: name.clone(),
                value: value.clone(),
                source,
            })?;
            options.named_contexts.insert(key, NamedContext::Image(reference));
            continue;
        }
        if value.contains("://") || value.starts_with("git@") {
            return Err(BuildError::Request(format!(
                "build context {name}={value} is not supported yet: use a local directory, docker-image://REF or oci-layout://DIR"
            )));
        }
        let dir = PathBuf::from(value);
        if !dir.is_dir() {
            return Err(BuildError::Request(format!(
                "build context {name}: directory {value:?} not found"
            )));
        }
        let local = format!("named-{key}");
        options
            .local_excludes
            .insert(local.clone(), read_ignore_file(&dir.join(".dockerignore"))?);
        options
            .named_contexts
            .insert(key, NamedContext::Local(local.clone()));
        locals.insert(local, dir);
    }
    Ok((options, locals))
}

/// The patterns of a `.dockerignore` file (none when it does not exist).
fn read_ignore_file(path: &Path) -> Result<Vec<String>, BuildError> {
    match std::fs::read_to_string(path) {
        Ok(text) => dockerfile::dockerignore::parse(&text).map_err(|source| BuildError::Ignore {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(BuildError::Read {
            what: ".dockerignore",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads the Dockerfile (as an internal step) and checks the context.
fn load_definition(
    request: &BuildRequest,
    progress: Option<&Arc<dyn Progress>>,
) -> Result<(PathBuf, String), BuildError> {
    if !request.context.is_dir() {
        return Err(BuildError::Request(format!(
            "unable to prepare context: path {:?} not found",
            request.context.display().to_string()
        )));
    }
    let path = dockerfile_path(request);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let step = progress.map(|p| Step::start(p, format!("[internal] load build definition from {name}")));
    let read = match &request.dockerfile_text {
        Some(text) => Ok(text.clone()),
        None => read_dockerfile(&path),
    };
    if let (Some(step), Ok(text)) = (&step, &read) {
        step.status(format!("transferring dockerfile: {}B done", text.len()));
    }
    let text = match step {
        Some(step) => step.finish(read),
        None => read,
    }?;
    Ok((path, text))
}

fn read_dockerfile(path: &Path) -> Result<String, BuildError> {
    let bytes = std::fs::read(path).map_err(|source| BuildError::Read {
        what: "dockerfile",
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| {
        BuildError::Request(format!(
            "failed to read dockerfile {}: not valid UTF-8",
            path.display()
        ))
    })
}

fn dockerfile_error(error: dockerfile::Error, path: &Path, text: &str) -> BuildError {
    let snippet = error.location.map(|l| SourceSnippet {
        filename: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        data: text.to_string(),
        start_line: l.start_line,
        end_line: l.end_line,
    });
    BuildError::Dockerfile(Box::new(crate::DockerfileError { error, snippet }))
}

/// Compiles without building (and without an engine when `offline`). Returns the compiled
/// build and the local directories it reads, by local source name.
pub(crate) async fn compile_only(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    request: &BuildRequest,
    offline: bool,
    progress: Arc<dyn Progress>,
) -> Result<(Compiled, BTreeMap<String, PathBuf>), BuildError> {
    if offline {
        return compile_offline(request).await.map(|c| (c, BTreeMap::new()));
    }
    let (path, text) = load_definition(request, Some(&progress))?;
    let (options, locals) = build_options(request, &path, &inner.platform, Some(crate::new_session_id()))?;
    let resolver = RegistryResolver {
        inner,
        registry: registry.clone(),
        progress,
        resolved: Mutex::new(BTreeMap::new()),
        locals: locals.clone(),
    };
    let compiled = dockerfile::compile(&text, &options, &resolver)
        .await
        .map_err(|e| dockerfile_error(e, &path, &text))?;
    Ok((compiled, locals))
}

/// Compiles with no base image resolved.
pub(crate) async fn compile_offline(request: &BuildRequest) -> Result<Compiled, BuildError> {
    let (path, text) = load_definition(request, None)?;
    let (options, _) = build_options(request, &path, &Platform::linux_amd64(), None)?;
    dockerfile::compile(&text, &options, &dockerfile::OfflineResolver)
        .await
        .map_err(|e| dockerfile_error(e, &path, &text))
}
