//! The Dockerfile frontend adapter and the build job: read the Dockerfile, resolve base images
//! through the registry, compile, solve, export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dockerfile::convert::{CONTEXT_NAME, NamedContext};
use dockerfile::{BuildOptions, Compiled, ImageResolver, ResolvedImage};
use oci::{ImageConfig, Platform, Reference};
use solver::Solver;

use crate::explain::Explainer;
use crate::progress::{BuildProgress, Step};
use crate::{
    BuildError, BuildRequest, BuildResult, Destination, Inner, OutputSpec, Progress, Ref, SourceSnippet, ops,
    pull,
};

/// Resolves base images through the registry, recording manifests and configs in the store.
struct RegistryResolver<'a> {
    inner: &'a Arc<Inner>,
    progress: Arc<dyn Progress>,
    resolved: Mutex<BTreeMap<Reference, ResolvedImage>>,
}

impl ImageResolver for RegistryResolver<'_> {
    async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage, String> {
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
        let result = async {
            let resolved = self
                .inner
                .registry
                .resolve(reference, platform)
                .await
                .map_err(|e| e.to_string())?;
            self.inner
                .store
                .content()
                .write(&resolved.manifest.bytes)
                .map_err(|e| e.to_string())?;
            let pinned = reference.with_digest(resolved.manifest.digest.clone());
            let config: ImageConfig = pull::config(self.inner, &pinned, &resolved.parsed)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(ResolvedImage {
                reference: pinned,
                config,
            })
        }
        .await;
        let result = step.finish(result)?;
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.clone(), result.clone());
        Ok(result)
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

fn dockerfile_path(request: &BuildRequest) -> PathBuf {
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
    let ignore = if specific.is_file() {
        specific
    } else {
        request.context.join(".dockerignore")
    };
    options
        .local_excludes
        .insert(CONTEXT_NAME.to_string(), read_ignore_file(&ignore)?);
    for (name, value) in &request.named_contexts {
        let key = name.to_ascii_lowercase();
        if let Some(image) = value.strip_prefix("docker-image://") {
            let reference = Reference::parse(image)
                .map_err(|e| BuildError::Request(format!("invalid build context {name}={value}: {e}")))?;
            options.named_contexts.insert(key, NamedContext::Image(reference));
            continue;
        }
        if value.contains("://") || value.starts_with("git@") {
            return Err(BuildError::Request(format!(
                "build context {name}={value} is not supported yet: use a local directory or docker-image://REF"
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
        Ok(text) => dockerfile::dockerignore::parse(&text)
            .map_err(|e| BuildError::Request(format!("failed to parse {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(BuildError::Request(format!(
            "failed to read {}: {e}",
            path.display()
        ))),
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
    let read = std::fs::read(&path)
        .map_err(|e| format!("failed to read dockerfile: open {}: {e}", path.display()))
        .and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| format!("failed to read dockerfile {}: not valid UTF-8", path.display()))
        });
    if let (Some(step), Ok(text)) = (&step, &read) {
        step.status(format!("transferring dockerfile: {}B done", text.len()));
    }
    let text = match step {
        Some(step) => step.finish(read),
        None => read,
    }
    .map_err(BuildError::Request)?;
    Ok((path, text))
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
    BuildError::Dockerfile {
        error: Box::new(error),
        snippet,
    }
}

/// Compiles without building (and without an engine when `offline`). Returns the compiled
/// build and the local directories it reads, by local source name.
pub(crate) async fn compile_only(
    inner: &Arc<Inner>,
    request: &BuildRequest,
    offline: bool,
    progress: Arc<dyn Progress>,
) -> Result<(Compiled, BTreeMap<String, PathBuf>), BuildError> {
    if offline {
        return compile_offline(request).await.map(|c| (c, BTreeMap::new()));
    }
    let (path, text) = load_definition(request, Some(&progress))?;
    let session = format!(
        "{}-{}",
        std::process::id(),
        SESSION_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let (options, locals) = build_options(request, &path, &inner.platform, Some(session))?;
    let resolver = RegistryResolver {
        inner,
        progress,
        resolved: Mutex::new(BTreeMap::new()),
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

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs a whole build.
pub(crate) async fn build(
    inner: &Arc<Inner>,
    solver: &Arc<Solver<Ref>>,
    request: &BuildRequest,
    build_progress: Arc<BuildProgress>,
) -> Result<BuildResult, BuildError> {
    let progress: Arc<dyn Progress> = build_progress.clone();
    let (compiled, locals) = compile_only(inner, request, false, progress.clone()).await?;
    let graph = llb::Graph::load(&compiled.definition.pb).map_err(|e| BuildError::Request(e.to_string()))?;
    let mut dirs = BTreeMap::new();
    for (name, dir) in locals {
        let dir = std::fs::canonicalize(&dir)
            .map_err(|e| BuildError::Request(format!("unable to prepare context {}: {e}", dir.display())))?;
        dirs.insert(name, dir);
    }
    let session = format!(
        "{}-{}",
        std::process::id(),
        SESSION_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let session = Arc::new(ops::Session {
        id: session,
        local_dirs: dirs.clone(),
        secrets: request.secrets.clone(),
        ssh: request.ssh.clone(),
        entitlements: request.entitlements.clone(),
        agents: Default::default(),
    });
    let vertices = ops::vertices(inner, &graph, &session).map_err(|e| BuildError::Request(e.to_string()))?;
    let result = match &graph.root {
        None => Ref::Empty,
        Some((digest, index)) => {
            let root = vertices
                .get(digest)
                .ok_or_else(|| BuildError::Request("result op missing".into()))?;
            build_progress.set_explainer(explainer(inner, request, &dirs).await);
            let mut job = solver.job(build_progress.clone());
            let solved = job.solve(root, *index as usize).await;
            // File digests learnt while hashing the context, and what each step's key was made
            // of, are kept for the next build, even when this one failed; losing them only
            // costs re-hashing (or an explanation).
            let store = inner.store.clone();
            let records = build_progress
                .explainer()
                .and_then(|e| e.finish(solved.is_ok()).map(|r| (e.scope().to_string(), r)));
            let saved = tokio::task::spawn_blocking(move || {
                store.save_hash_cache()?;
                if let Some((scope, records)) = records {
                    store.save_step_records(&scope, &records)?;
                }
                Ok::<_, store::Error>(())
            })
            .await;
            if let Ok(Err(e)) = saved {
                build_progress.warn(format!("cache bookkeeping not saved: {e}"));
            }
            solved.map_err(|e| step_error(&graph, e))?
        }
    };
    let snapshot = match result {
        Ref::Empty => None,
        Ref::Snapshot(id) => Some(id),
        Ref::Local(_) => {
            return Err(BuildError::Request(
                "a build result cannot be the build context itself".into(),
            ));
        }
    };
    let mut outcome = BuildResult {
        manifest: None,
        unused_build_args: compiled.unused_build_args.clone(),
        ..BuildResult::default()
    };
    for output in &request.outputs {
        if let Some(image) = export(inner, output, snapshot, &compiled.image, &progress).await? {
            outcome.manifest = Some(image.manifest.digest.clone());
            outcome.image = Some(image);
        }
    }
    Ok(outcome)
}

/// The explainer of a build: its scope is the context directory, the Dockerfile and the
/// target, and it compares with the records the last build of that scope left.
async fn explainer(
    inner: &Arc<Inner>,
    request: &BuildRequest,
    dirs: &BTreeMap<String, PathBuf>,
) -> Explainer {
    let context = dirs
        .get(CONTEXT_NAME)
        .cloned()
        .unwrap_or_else(|| request.context.clone());
    let dockerfile = dockerfile_path(request);
    let dockerfile = std::fs::canonicalize(&dockerfile).unwrap_or(dockerfile);
    let scope = oci::Digest::of(
        format!(
            "{}\n{}\n{}",
            context.display(),
            dockerfile.display(),
            request.target.as_deref().unwrap_or("")
        )
        .as_bytes(),
    )
    .to_string();
    let store = inner.store.clone();
    let key = scope.clone();
    let previous = tokio::task::spawn_blocking(move || store.step_records(&key))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    Explainer::new(
        scope,
        request.build_args.clone(),
        previous.as_deref(),
        inner.listings.clone(),
    )
}

fn step_error(graph: &llb::Graph, error: solver::SolveError) -> BuildError {
    let snippets = graph
        .locations(&error.vertex)
        .into_iter()
        .map(|(filename, data, start, end)| SourceSnippet {
            filename,
            data: String::from_utf8_lossy(&data).into_owned(),
            start_line: start.max(0) as usize,
            end_line: end.max(0) as usize,
        })
        .collect();
    BuildError::Step {
        vertex: error.vertex.clone(),
        name: error.name.clone(),
        message: error.to_string(),
        snippets,
    }
}

/// Writes one output.
async fn export(
    inner: &Arc<Inner>,
    output: &OutputSpec,
    snapshot: Option<store::SnapshotId>,
    image: &ImageConfig,
    progress: &Arc<dyn Progress>,
) -> Result<Option<crate::ExportedImage>, BuildError> {
    if let OutputSpec::Registry { names } = output {
        return push(inner, names, snapshot, image, progress).await;
    }
    let store = inner.store.clone();
    let image = image.clone();
    let output = output.clone();
    let (name, progress) = match &output {
        OutputSpec::Oci { .. } => ("exporting to oci image format", progress.clone()),
        OutputSpec::Docker { .. } => ("exporting to docker image format", progress.clone()),
        OutputSpec::Local { .. } => ("exporting to client directory", progress.clone()),
        OutputSpec::Tar { .. } => ("exporting to client tarball", progress.clone()),
        OutputSpec::Registry { .. } => ("exporting to image", progress.clone()),
    };
    let step = Step::start(&progress, name);
    let result = tokio::task::spawn_blocking(
        move || -> Result<(Option<crate::ExportedImage>, Vec<String>), String> {
            let source = exporter::Source {
                store: &store,
                result: snapshot,
                image: &image,
            };
            let mut notes = Vec::new();
            let manifest = match &output {
                OutputSpec::Oci { dest, name } => {
                    let options = exporter::OciOptions {
                        name: name.clone(),
                        ..exporter::OciOptions::default()
                    };
                    let summary = with_destination(dest, |w| {
                        exporter::write_oci_tar(&source, &options, w).map_err(|e| e.to_string())
                    })?;
                    notes.push(format!("exporting manifest {} done", summary.manifest.digest));
                    notes.push(format!("exporting config {} done", summary.config.digest));
                    notes.push("sending tarball done".into());
                    Some(crate::ExportedImage {
                        manifest: summary.manifest,
                        config: summary.config.digest,
                        names: name.iter().cloned().collect(),
                    })
                }
                OutputSpec::Docker { dest, names } => {
                    let options = exporter::OciOptions {
                        name: names.first().cloned(),
                        ..exporter::OciOptions::default()
                    };
                    let summary = with_destination(dest, |w| {
                        exporter::write_docker_tar(&source, &options, names, w).map_err(|e| e.to_string())
                    })?;
                    notes.push(format!("exporting manifest {} done", summary.manifest.digest));
                    notes.push(format!("exporting config {} done", summary.config.digest));
                    for name in names {
                        notes.push(format!("naming to {name} done"));
                    }
                    notes.push("sending tarball done".into());
                    Some(crate::ExportedImage {
                        manifest: summary.manifest,
                        config: summary.config.digest,
                        names: names.clone(),
                    })
                }
                OutputSpec::Local { dest } => {
                    exporter::write_local(&source, dest).map_err(|e| e.to_string())?;
                    notes.push("copying files done".into());
                    None
                }
                OutputSpec::Tar { dest } => {
                    with_destination(dest, |w| {
                        exporter::write_tar(&source, w).map_err(|e| e.to_string())
                    })?;
                    notes.push("sending tarball done".into());
                    None
                }
                OutputSpec::Registry { .. } => return Err("registry outputs are pushed, not written".into()),
            };
            Ok((manifest, notes))
        },
    )
    .await
    .map_err(|e| BuildError::Export(e.to_string()))
    .and_then(|r| r.map_err(BuildError::Export));
    if let Ok((_, notes)) = &result {
        for note in notes {
            step.status(note.clone());
        }
    }
    step.finish(result).map(|(m, _)| m)
}

/// Builds the image (its blobs in the content store, as for an OCI tarball) and pushes it to
/// every name: layers and config first (blobs the repository has already are skipped), then the
/// manifest under the name's tag. Returns the manifest digest.
async fn push(
    inner: &Arc<Inner>,
    names: &[String],
    snapshot: Option<store::SnapshotId>,
    image: &ImageConfig,
    progress: &Arc<dyn Progress>,
) -> Result<Option<crate::ExportedImage>, BuildError> {
    let step = Step::start(progress, "exporting to image");
    let result = async {
        let references = names
            .iter()
            .map(|name| oci::Reference::parse(name).map_err(|e| format!("invalid image name {name:?}: {e}")))
            .collect::<Result<Vec<_>, String>>()?;
        if references.is_empty() {
            return Err("pushing an image needs a name: add name=NAME to the output, or -t NAME".to_string());
        }
        let store = inner.store.clone();
        let config = image.clone();
        let summary = tokio::task::spawn_blocking(move || {
            let source = exporter::Source {
                store: &store,
                result: snapshot,
                image: &config,
            };
            exporter::build_image(&source, &exporter::OciOptions::default()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        step.status("exporting layers done");
        step.status(format!("exporting manifest {} done", summary.manifest.digest));
        step.status(format!("exporting config {} done", summary.config.digest));
        let content = inner.store.content();
        let manifest = bytes::Bytes::from(
            std::fs::read(content.path(&summary.manifest.digest))
                .map_err(|e| format!("failed to read manifest {}: {e}", summary.manifest.digest))?,
        );
        for reference in &references {
            let shown = reference.familiar();
            step.status(format!("naming to {shown} done"));
            let failed = |e: registry::Error| format!("failed to push {shown}: {e}");
            for blob in summary.layers.iter().chain([&summary.config]) {
                let body = registry::BlobBody::File(content.path(&blob.digest));
                inner
                    .registry
                    .push_blob(reference, blob, body)
                    .await
                    .map_err(failed)?;
            }
            step.status(format!("pushing layers for {shown} done"));
            let digest = inner
                .registry
                .push_manifest(reference, &summary.manifest.media_type, manifest.clone())
                .await
                .map_err(failed)?;
            step.status(format!("pushing manifest for {shown}@{digest} done"));
        }
        Ok(Some(crate::ExportedImage {
            manifest: summary.manifest,
            config: summary.config.digest,
            names: names.to_vec(),
        }))
    }
    .await
    .map_err(BuildError::Export);
    step.finish(result)
}

fn with_destination<T>(
    dest: &Destination,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<T, String>,
) -> Result<T, String> {
    match dest {
        Destination::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let value = write(&mut lock)?;
            std::io::Write::flush(&mut lock).map_err(|e| e.to_string())?;
            Ok(value)
        }
        // A device or pipe (e.g. /dev/null) is written in place; it must never be replaced.
        Destination::File(path) if path.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("failed to open {}: {e}", path.display()))?;
            let mut buffered = std::io::BufWriter::new(file);
            let value = write(&mut buffered)?;
            std::io::Write::flush(&mut buffered).map_err(|e| e.to_string())?;
            Ok(value)
        }
        // A regular file is written next to its destination and renamed into place, so a failed
        // build never leaves a truncated output behind.
        Destination::File(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.kiln-tmp",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            let file = std::fs::File::create(&tmp)
                .map_err(|e| format!("failed to create {}: {e}", tmp.display()))?;
            let mut buffered = std::io::BufWriter::new(file);
            let result = write(&mut buffered).and_then(|v| {
                let file = buffered.into_inner().map_err(|e| e.to_string())?;
                file.sync_all().map_err(|e| e.to_string())?;
                Ok(v)
            });
            match result {
                Ok(v) => {
                    store::fault::point("export.before-rename");
                    std::fs::rename(&tmp, path)
                        .map_err(|e| format!("failed to write {}: {e}", path.display()))?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
        }
    }
}
