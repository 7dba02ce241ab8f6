//! One build, end to end: compile the Dockerfile, make the build's session and vertices, solve
//! the graph as a job of the engine's solver, keep the cache bookkeeping, write the outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dockerfile::convert::CONTEXT_NAME;
use solver::Solver;

use crate::explain::Explainer;
use crate::progress::BuildProgress;
use crate::{
    BuildError, BuildRequest, BuildResult, CacheBackend, Inner, Progress, Ref, export, frontend, ops,
};

/// Runs a whole build.
pub(crate) async fn build(
    inner: &Arc<Inner>,
    solver: &Arc<Solver<Ref, ops::Session>>,
    request: &BuildRequest,
    build_progress: Arc<BuildProgress>,
) -> Result<BuildResult, BuildError> {
    check_inline(request)?;
    let progress: Arc<dyn Progress> = build_progress.clone();
    let registry = request.registry(&inner.registry);
    let scope_context = request.git_context.as_ref().map(|git| git.identifier());
    let (request, _checkout) =
        crate::context::resolve(inner, solver, request, &registry, progress.clone()).await?;
    let request = request.as_ref();
    let (compiled, locals) =
        frontend::compile_only(inner, &registry, request, false, progress.clone()).await?;
    let mut dirs = BTreeMap::new();
    for (name, dir) in locals {
        let dir = std::fs::canonicalize(&dir).map_err(|source| BuildError::Read {
            what: "build context",
            path: dir.clone(),
            source,
        })?;
        dirs.insert(name, dir);
    }
    let warn = |message: String| build_progress.warn(message);
    let imported = crate::remote::import::import_all(&registry, &request.cache_from, &progress, &warn).await;
    let mut session = ops::Session::of_build(request, &registry, dirs.clone());
    session.remote_cache = imported.clone();
    let session = Arc::new(session);
    let (graph, vertices) = ops::prepare(inner, &compiled.definition, &session).await?;
    let result = match &graph.root {
        None => Ref::Empty,
        Some((digest, index)) => {
            let root = vertices
                .get(digest)
                .ok_or_else(|| BuildError::Request("the build definition has no result op".into()))?;
            let explainer = explainer(inner, request, &dirs, scope_context).await;
            build_progress.set_explainer(explainer);
            let solved = solver
                .job(build_progress.clone(), session.clone())
                .solve(root, *index as usize)
                .await;
            keep_bookkeeping(inner, &build_progress, solved.is_ok()).await;
            solved.map_err(|e| ops::step_error(&graph, e))?
        }
    };
    let needs_files = !request.outputs.is_empty();
    let result = match result {
        // Downloaded only when an output needs the files.
        Ref::Remote(_) if needs_files => {
            let step = crate::progress::Step::start(&progress, "downloading the result from the cache");
            let status = |line: String| step.status(line);
            let materialized = crate::remote::lazy::materialize(inner, result, &status).await;
            step.finish(materialized.map_err(Unwrapped))
                .map_err(|e| BuildError::CacheDownload(e.0))?
        }
        other => other,
    };
    let snapshot = match &result {
        Ref::Empty | Ref::Remote(_) => None,
        Ref::Snapshot(id) => Some(*id),
        Ref::Local(_) => {
            return Err(BuildError::Request(
                "a build result cannot be the build context itself".into(),
            ));
        }
    };
    let mut outcome = BuildResult {
        unused_build_args: compiled.unused_build_args.clone(),
        ..BuildResult::default()
    };
    let steps = build_progress.keyed_steps();
    let extras = export::ImageExtras {
        inline_cache: inline_cache(inner, request, &steps, &result, &imported, &build_progress).await?,
        epoch: source_date_epoch(request)?,
    };
    for output in &request.outputs {
        let image = export::export(
            inner,
            &registry,
            output,
            snapshot,
            &compiled.image,
            &extras,
            &progress,
        )
        .await?;
        if let Some(image) = image {
            outcome.manifest = Some(image.manifest.digest.clone());
            outcome.image = Some(image);
        }
    }
    let mounts = session_cache_mounts(&session);
    let build = crate::remote::export::BuildCache {
        steps: &steps,
        result: &result,
        imported: &imported,
        cache_mounts: &mounts,
    };
    export_caches(inner, &registry, request, &build, &build_progress).await?;
    Ok(outcome)
}

/// Writes every `--cache-to` but the inline one; a failure fails the build unless its export
/// says `ignore-error=true`.
async fn export_caches(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    request: &BuildRequest,
    build: &crate::remote::export::BuildCache<'_>,
    build_progress: &Arc<BuildProgress>,
) -> Result<(), BuildError> {
    let progress: Arc<dyn Progress> = build_progress.clone();
    for export in request
        .cache_to
        .iter()
        .filter(|e| e.backend != CacheBackend::Inline)
    {
        let step = crate::progress::Step::start(&progress, cache_step_name(&export.backend));
        let written = crate::remote::export::export(inner, registry, export, build, &step).await;
        if let Ok(digest) = &written {
            step.status(format!("writing cache manifest {digest} done"));
        }
        match step.finish(written) {
            Ok(_) => {}
            Err(e) if export.ignore_error => build_progress.warn(format!(
                "exporting cache to {} failed (ignored, ignore-error=true): {}",
                export.backend,
                oci::error_chain(&e)
            )),
            Err(e) => return Err(BuildError::CacheExport(Box::new(e))),
        }
    }
    Ok(())
}

/// Refuses `--cache-to type=inline` with an image output whose layers would not be the ones the
/// inline cache names (layers converted to zstd or plain tar, or rewritten with capped times).
fn check_inline(request: &BuildRequest) -> Result<(), BuildError> {
    if !request.cache_to.iter().any(|e| e.backend == CacheBackend::Inline) {
        return Ok(());
    }
    for output in &request.outputs {
        let format = match output {
            crate::OutputSpec::Oci { format, .. }
            | crate::OutputSpec::Docker { format, .. }
            | crate::OutputSpec::Registry { format, .. } => format,
            _ => continue,
        };
        if format.compression != crate::Compression::Gzip
            || format.force_compression
            || format.rewrite_timestamp
        {
            return Err(BuildError::Request(
                "--cache-to type=inline with an image output using compression other than gzip, \
                 force-compression or rewrite-timestamp is not supported yet: use type=registry or type=local for the cache"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The cache mounts the build's steps used.
fn session_cache_mounts(session: &ops::Session) -> Vec<crate::remote::UsedCacheMount> {
    session
        .cache_mounts_used
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// The build's `SOURCE_DATE_EPOCH` (a build arg, as buildx passes it): Unix seconds.
fn source_date_epoch(request: &BuildRequest) -> Result<Option<i64>, BuildError> {
    let Some(value) = request.build_args.get("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| {
            BuildError::Request(format!(
                "invalid SOURCE_DATE_EPOCH {value:?}: it must be a number of seconds since 1970-01-01"
            ))
        })
}

/// The progress name of a cache export, as BuildKit's.
fn cache_step_name(backend: &CacheBackend) -> &'static str {
    match backend {
        CacheBackend::Registry { .. } => "exporting cache to registry",
        CacheBackend::Local { .. } => "exporting cache to client directory",
        CacheBackend::Inline => "preparing build cache for export",
        CacheBackend::S3(_) => "exporting cache to Amazon S3",
    }
}

/// The inline cache for the build's image outputs, when `--cache-to type=inline` asks for one
/// (and an output writes an image: otherwise there is nowhere to put it, which is a warning).
async fn inline_cache(
    inner: &Arc<Inner>,
    request: &BuildRequest,
    steps: &[crate::remote::KeyedStep],
    result: &Ref,
    imported: &[Arc<crate::remote::Imported>],
    progress: &BuildProgress,
) -> Result<Option<String>, BuildError> {
    let Some(export) = request
        .cache_to
        .iter()
        .find(|e| e.backend == CacheBackend::Inline)
    else {
        return Ok(None);
    };
    let images = request.outputs.iter().any(|o| {
        matches!(
            o,
            crate::OutputSpec::Oci { .. }
                | crate::OutputSpec::Docker { .. }
                | crate::OutputSpec::Registry { .. }
        )
    });
    if !images {
        progress.warn("--cache-to type=inline has no effect: no output writes an image".into());
        return Ok(None);
    }
    match crate::remote::export::inline(inner, steps, result, imported).await {
        Ok(cache) => Ok(Some(cache)),
        Err(e) if export.ignore_error => {
            progress.warn(format!(
                "exporting the inline cache failed (ignored, ignore-error=true): {}",
                oci::error_chain(&e)
            ));
            Ok(None)
        }
        Err(e) => Err(BuildError::CacheExport(Box::new(e))),
    }
}

/// An op error as a plain error (for [`crate::progress::Step::finish`]).
#[derive(Debug)]
struct Unwrapped(solver::OpError);

impl std::fmt::Display for Unwrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Unwrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Keeps the file digests learnt while hashing the context, and what each step's key was made
/// of, for the next build, even when this one failed; losing them only costs re-hashing (or an
/// explanation), so a failure is a warning.
async fn keep_bookkeeping(inner: &Arc<Inner>, progress: &BuildProgress, succeeded: bool) {
    let store = inner.store.clone();
    let records = progress
        .explainer()
        .and_then(|e| e.finish(succeeded).map(|r| (e.scope().to_string(), r)));
    let saved = tokio::task::spawn_blocking(move || {
        store.save_hash_cache()?;
        if let Some((scope, records)) = records {
            store.save_step_records(&scope, &records)?;
        }
        Ok::<_, store::Error>(())
    })
    .await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => progress.warn(format!("cache bookkeeping not saved: {}", oci::error_chain(&e))),
        Err(e) => progress.warn(format!("cache bookkeeping not saved: {}", oci::error_chain(&e))),
    }
}

/// The explainer of a build: its scope is the context (the directory, or the git context as
/// given: its checkout's path is not stable), the Dockerfile and the target, and it compares
/// with the records the last build of that scope left.
async fn explainer(
    inner: &Arc<Inner>,
    request: &BuildRequest,
    dirs: &BTreeMap<String, PathBuf>,
    git_context: Option<String>,
) -> Explainer {
    let dockerfile = frontend::dockerfile_path(request);
    let (context, dockerfile) = match git_context {
        Some(git) => {
            let inside = dockerfile.strip_prefix(&request.context).unwrap_or(&dockerfile);
            (git, inside.to_path_buf())
        }
        None => {
            let context = dirs.get(CONTEXT_NAME).unwrap_or(&request.context);
            let dockerfile = std::fs::canonicalize(&dockerfile).unwrap_or(dockerfile);
            (context.display().to_string(), dockerfile)
        }
    };
    let scope = oci::Digest::of(
        format!(
            "{}\n{}\n{}",
            context,
            dockerfile.display(),
            request.target.as_deref().unwrap_or("")
        )
        .as_bytes(),
    )
    .to_string();
    let store = inner.store.clone();
    let key = scope.clone();
    // Without the previous records the build still runs; only explanations are lost.
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
