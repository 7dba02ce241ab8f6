//! LLB ops as solver ops: sources (image, local, HTTP, git), exec, file and merge.
//!
//! Cache maps follow BuildKit: an op's digest covers what it does but not its inputs (those
//! enter the key through the solver's deps), image sources are keyed by their manifest digest,
//! local sources are never cached, and a COPY from the build context is keyed by the content
//! of the files it selects, so an edit elsewhere in the context changes nothing; a bind mount of
//! the context in an exec is keyed the same way, by the content of the part it mounts. The
//! context is seen through its exclude patterns (`.dockerignore`, an attribute of its local
//! source), which the ops reading it get from the graph. HTTP sources are keyed by their
//! checksum or the downloaded content ([`http`]), git sources by the commit their ref resolves
//! to ([`git`]).
//!
//! A build's client inputs reach ops only through its solver job ([`session`]): vertices carry
//! no session, and those that depend on one are salted so that builds share only what they
//! would compute alike.
//!
//! Submodules: [`source`] (images and local directories), [`http`] and [`git`] sources,
//! [`exec`] (RUN) with [`mounts`] (bind, tmpfs, secret, ssh and [`cache_mounts`]), [`file`]
//! (COPY and friends, content keys), [`merge`] (`COPY --link`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fsops::fileop;
use llb::pb;
use oci::Digest;
use prost::Message;
use solver::{BoxFuture, CacheMap, Context, Op, OpError};

use crate::{BuildError, Entitlement, Inner, Progress, Ref, StepError};

mod cache_mounts;
mod exec;
mod file;
mod git;
mod http;
mod merge;
mod mounts;
mod secrets;
pub(crate) mod session;
mod source;
pub(crate) mod ssh;

pub(crate) use session::Session;

/// A solver op of a build, and its salt (what of the build's session it depends on).
type SaltedOp = (Arc<dyn Op<Ref, Session>>, Option<Digest>);

/// Errors of ops, as shown to users.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpFailure {
    #[error("process {command:?} did not complete successfully: exit code: {code}")]
    ProcessFailed { command: String, code: i32 },
    #[error(transparent)]
    Executor(#[from] executor::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    FileOp(#[from] fileop::FileOpError),
    #[error(transparent)]
    Pull(#[from] sources::pull::PullError),
    #[error(transparent)]
    Http(#[from] sources::http::HttpError),
    #[error(transparent)]
    Git(#[from] sources::git::GitError),
    #[error("{0} is not supported yet")]
    NotSupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: a result of the remote cache was used before it was downloaded")]
    NotDownloaded,
    #[error("no build waits for this step any more")]
    NoSession,
    #[error("no local directory named {0:?} in this build")]
    NoLocalDir(String),
    #[error("build context {} is not a directory", .0.display())]
    ContextNotDir(PathBuf),
    #[error("invalid image source")]
    ImageSource(#[source] oci::ReferenceError),
    #[error("invalid exclude patterns of {source_name}")]
    ExcludePatterns {
        source_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("secret {id}: failed to read {}", path.display())]
    SecretRead {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {id}: the client could not give it: {message}")]
    SecretClient { id: String, message: String },
    #[error("secret {id}: too big: {size} bytes, the limit is {limit}")]
    SecretTooBig { id: String, size: u64, limit: u64 },
    #[error("secret {0}: not found")]
    SecretNotFound(String),
    #[error("secret {id}: failed to stage it")]
    SecretStage {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name} is not allowed: {flag} needs the {name} entitlement (run kiln build with --allow {name})",
        name = entitlement.name()
    )]
    NotEntitled {
        entitlement: Entitlement,
        flag: &'static str,
    },
    #[error("internal task failed")]
    Join(#[source] tokio::task::JoinError),
    #[error("failed to mount {selector:?} at {dest}")]
    MountSource {
        selector: String,
        dest: String,
        #[source]
        source: std::io::Error,
    },
}

fn op_error(e: impl Into<OpFailure>) -> OpError {
    Arc::new(e.into())
}

fn join_error(e: tokio::task::JoinError) -> OpError {
    Arc::new(OpFailure::Join(e))
}

/// Runs blocking work (filesystem walks, mounts, reading client files) off the async workers:
/// in place, with the worker's other tasks handed to another thread, on a multi-threaded
/// runtime; as it is on a single-threaded one (tests), where nothing else could take them.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The solver vertices of a loaded LLB graph, by digest, for the build of `session`.
/// Blocking: salts read the session's secrets and ask its ssh agents for their keys.
pub(crate) fn vertices(
    inner: &Arc<Inner>,
    graph: &llb::Graph,
    session: &Session,
) -> Result<BTreeMap<Digest, Arc<solver::Vertex<Ref, Session>>>, OpFailure> {
    let mut out: BTreeMap<Digest, Arc<solver::Vertex<Ref, Session>>> = BTreeMap::new();
    // The `.dockerignore` patterns of each local source, by vertex: they travel to the ops that
    // read the directory, which see it through them.
    let mut excludes: BTreeMap<Digest, Arc<Vec<String>>> = BTreeMap::new();
    // Definition order puts inputs before their users.
    for vertex in &graph.vertices {
        let inputs = vertex
            .inputs
            .iter()
            .map(|(d, i)| {
                let v = out
                    .get(d)
                    .cloned()
                    .ok_or_else(|| OpFailure::Invalid(format!("input {d} defined after its user")))?;
                Ok((v, *i as usize))
            })
            .collect::<Result<Vec<_>, OpFailure>>()?;
        if let Some(pb::op::Kind::Source(source)) = &vertex.op.kind
            && source.identifier.starts_with(llb::attr::SCHEME_LOCAL)
        {
            excludes.insert(vertex.digest.clone(), Arc::new(source::local_excludes(source)?));
        }
        let (op, salt) = op(inner, vertex, &excludes, session)?;
        let op: Arc<dyn Op<Ref, Session>> = Arc::new(Described {
            inner: inner.clone(),
            op,
            facts: llb::facts(&vertex.op),
        });
        let name = vertex
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| short_name(&vertex.op));
        out.insert(
            vertex.digest.clone(),
            Arc::new(solver::Vertex {
                digest: vertex.digest.clone(),
                name,
                inputs,
                op,
                ignore_cache: vertex.metadata.ignore_cache,
                salt,
            }),
        );
    }
    Ok(out)
}

/// The solver op of one LLB vertex, and its salt (what of the session it depends on).
fn op(
    inner: &Arc<Inner>,
    vertex: &llb::Vertex,
    excludes: &BTreeMap<Digest, Arc<Vec<String>>>,
    session: &Session,
) -> Result<SaltedOp, OpFailure> {
    let input_excludes: Vec<Arc<Vec<String>>> = vertex
        .inputs
        .iter()
        .map(|(d, _)| excludes.get(d).cloned().unwrap_or_default())
        .collect();
    let n_inputs = vertex.inputs.len();
    Ok(match &vertex.op.kind {
        Some(pb::op::Kind::Source(source)) => source::source_op(inner, source, session)?,
        Some(pb::op::Kind::Exec(op)) => {
            let exec = exec::ExecOp {
                inner: inner.clone(),
                op: op.clone(),
                base: base_digest(&vertex.op),
                n_inputs,
                excludes: input_excludes,
                local_inputs: vertex
                    .inputs
                    .iter()
                    .map(|(d, _)| excludes.contains_key(d))
                    .collect(),
            };
            let salt = exec.session_salt(&inner.store, session);
            (Arc::new(exec), salt)
        }
        Some(pb::op::Kind::File(file)) => {
            let op = file::FileOp {
                inner: inner.clone(),
                op: file.clone(),
                base: base_digest(&vertex.op),
                n_inputs,
                excludes: input_excludes,
            };
            (Arc::new(op), None)
        }
        Some(pb::op::Kind::Merge(merge)) => {
            let op = merge::MergeOp {
                inner: inner.clone(),
                op: merge.clone(),
                base: base_digest(&vertex.op),
                n_inputs,
            };
            (Arc::new(op), None)
        }
        None => return Err(OpFailure::Invalid("op without body".into())),
    })
}

/// An op with the facts of its LLB definition added to its cache map (for cache-miss
/// explanations). Facts the op gives itself (a resolved image digest, say) win.
struct Described {
    inner: Arc<Inner>,
    op: Arc<dyn Op<Ref, Session>>,
    facts: Vec<(String, String)>,
}

impl Op<Ref, Session> for Described {
    fn resource(&self) -> solver::Resource {
        self.op.resource()
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let mut map = self.op.cache_map(ctx).await?;
            let own = std::mem::take(&mut map.facts);
            let mut facts = self.facts.clone();
            for (field, value) in own {
                match facts.iter_mut().find(|(f, _)| *f == field) {
                    Some(existing) => existing.1 = value,
                    None => facts.push((field, value)),
                }
            }
            map.facts = facts;
            Ok(map)
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            // Results found in a remote cache are downloaded now that a step reads them.
            let inputs = crate::remote::lazy::materialize_all(&self.inner, inputs, ctx).await?;
            self.op.exec(ctx, inputs).await
        })
    }
}

fn short_name(op: &pb::Op) -> String {
    match &op.kind {
        Some(pb::op::Kind::Source(s)) => s.identifier.clone(),
        Some(pb::op::Kind::Exec(e)) => e.meta.as_ref().map(|m| m.args.join(" ")).unwrap_or_default(),
        Some(pb::op::Kind::File(_)) => "file".into(),
        Some(pb::op::Kind::Merge(_)) => "merge".into(),
        None => String::new(),
    }
}

/// The digest of an op without its inputs: what it does, whatever it does it to.
pub(super) fn base_digest(op: &pb::Op) -> Digest {
    let mut kind = op.kind.clone();
    // Proxy settings reach the process but never its cache key, as in BuildKit: changing a
    // proxy must not rebuild anything.
    if let Some(pb::op::Kind::Exec(exec)) = &mut kind
        && let Some(meta) = &mut exec.meta
    {
        meta.proxy_env = None;
    }
    let without_inputs = pb::Op {
        inputs: Vec::new(),
        kind,
        platform: op.platform.clone(),
    };
    Digest::of(&without_inputs.encode_to_vec())
}

/// Loads a definition and makes its vertices for `session`, checking first that the build was
/// granted every entitlement the graph needs.
pub(crate) async fn prepare(
    inner: &Arc<Inner>,
    definition: &llb::Definition,
    session: &Arc<Session>,
) -> Result<
    (
        Arc<llb::Graph>,
        BTreeMap<Digest, Arc<solver::Vertex<Ref, Session>>>,
    ),
    BuildError,
> {
    let graph = Arc::new(llb::Graph::load(&definition.pb).map_err(|e| BuildError::Definition(Box::new(e)))?);
    session::check_entitlements(&graph, session).map_err(|(vertex, failure)| {
        let name = graph
            .vertices
            .iter()
            .find(|v| v.digest == vertex)
            .and_then(|v| v.name().map(str::to_string))
            .unwrap_or_default();
        step_error(
            &graph,
            solver::SolveError {
                vertex,
                name,
                error: Arc::<OpFailure>::from(failure),
            },
        )
    })?;
    let (work_inner, work_graph, work_session) = (inner.clone(), graph.clone(), session.clone());
    let vertices = tokio::task::spawn_blocking(move || vertices(&work_inner, &work_graph, &work_session))
        .await
        .map_err(BuildError::Internal)?
        .map_err(|e| BuildError::Definition(Box::new(e)))?;
    Ok((graph, vertices))
}

/// A failed step as a build error, pointing at the lines it came from.
pub(crate) fn step_error(graph: &llb::Graph, error: solver::SolveError) -> BuildError {
    let snippets = graph
        .locations(&error.vertex)
        .into_iter()
        .map(|(filename, data, start, end)| crate::SourceSnippet {
            filename,
            data: String::from_utf8_lossy(&data).into_owned(),
            start_line: start.max(0) as usize,
            end_line: end.max(0) as usize,
        })
        .collect();
    BuildError::Step(Box::new(StepError { error, snippets }))
}

/// Solves output `index` of `root` in `job`, with its files on disk: a result found in a remote
/// cache is downloaded. Errors point at the graph's lines.
pub(crate) async fn solve_files(
    inner: &Arc<Inner>,
    job: &mut solver::Job<Ref, Session>,
    graph: &llb::Graph,
    root: &Arc<solver::Vertex<Ref, Session>>,
    index: i64,
) -> Result<Ref, BuildError> {
    let result = job
        .solve(root, index as usize)
        .await
        .map_err(|error| step_error(graph, error))?;
    let quiet = |_: String| {};
    crate::remote::lazy::materialize(inner, result, &quiet)
        .await
        .map_err(|error| {
            step_error(
                graph,
                solver::SolveError {
                    vertex: root.digest.clone(),
                    name: root.name.clone(),
                    error,
                },
            )
        })
}

/// Solves a whole LLB definition (the engine's entry point for clients that bring their own
/// LLB): loads and validates it, builds the vertices with `local_dirs` as its `local://`
/// sources, and solves its result.
pub(crate) async fn solve_definition(
    inner: &Arc<Inner>,
    solver: &Arc<solver::Solver<Ref, Session>>,
    definition: &llb::Definition,
    local_dirs: &BTreeMap<String, PathBuf>,
    progress: Arc<dyn Progress>,
) -> Result<Option<store::SnapshotId>, BuildError> {
    let registry = inner
        .registry
        .with_credentials(Arc::new(registry::DockerConfigCredentials::from_env()));
    let session = Arc::new(Session::with_locals(
        crate::new_session_id(),
        local_dirs.clone(),
        registry,
    ));
    let (graph, vertices) = prepare(inner, definition, &session).await?;
    let Some((digest, index)) = &graph.root else {
        return Ok(None);
    };
    let root = vertices
        .get(digest)
        .ok_or_else(|| BuildError::Request("the build definition has no result op".into()))?;
    let mut job = solver.job(Arc::new(crate::progress::Forward(progress)), session);
    let result = solve_files(inner, &mut job, &graph, root, *index).await?;
    match result {
        Ref::Empty => Ok(None),
        Ref::Snapshot(id) => Ok(Some(id)),
        Ref::Remote(_) | Ref::Local(_) => Err(BuildError::Request(
            "a build result cannot be a local directory".into(),
        )),
    }
}
