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
//! Submodules: [`http`] and [`git`] sources, [`merge`] ops (`COPY --link`), and [`mounts`], the
//! exec mounts besides the root filesystem (`RUN --mount=type=bind|tmpfs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use llb::pb;
use oci::{Digest, Reference};
use prost::Message;
use solver::{BoxFuture, CacheMap, Context, Dep, Op, OpError};
use store::fileop::{self, Ownership, UserRef};

use crate::{BuildError, Inner, Progress, Ref, SourceSnippet, pull};

mod cache_mounts;
pub(crate) mod git;
pub(crate) mod http;
mod merge;
mod mounts;
mod secrets;
mod ssh;

/// Errors of ops, as shown to users.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpFailure {
    #[error("process {command:?} did not complete successfully: exit code: {code}")]
    ProcessFailed { command: String, code: i32 },
    #[error("{0}")]
    Executor(#[from] executor::Error),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("{0}")]
    FileOp(#[from] fileop::FileOpError),
    #[error("{0}")]
    Pull(#[from] pull::PullError),
    #[error("{0}")]
    Http(#[from] http::HttpError),
    #[error("{0}")]
    Git(#[from] git::GitError),
    #[error("{0} is not supported yet")]
    NotSupported(String),
    #[error("{0}")]
    Invalid(String),
}

fn op_error(e: impl Into<OpFailure>) -> OpError {
    Arc::new(e.into())
}

fn join_error(e: tokio::task::JoinError) -> OpError {
    Arc::new(OpFailure::Invalid(format!("internal task failed: {e}")))
}

/// What one build brings from its client: the directories its local sources read, its
/// secrets and ssh agents, and the entitlements it was granted. Ops of the build share it.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Unique per build; local sources are keyed by it (they are never cached).
    pub(crate) id: String,
    /// Directories of `local://NAME` sources.
    pub(crate) local_dirs: BTreeMap<String, PathBuf>,
    /// `--secret`s.
    pub(crate) secrets: BTreeMap<String, crate::SecretSource>,
    /// `--ssh`es.
    pub(crate) ssh: BTreeMap<String, crate::SshSource>,
    /// `--allow`.
    pub(crate) entitlements: std::collections::BTreeSet<crate::Entitlement>,
    /// The ssh agents started for `--ssh ID=KEY` ids, on first use.
    pub(crate) agents: ssh::Agents,
}

impl Session {
    /// A session for a build with no client features beyond local directories.
    pub(crate) fn with_locals(id: String, local_dirs: BTreeMap<String, PathBuf>) -> Session {
        Session {
            id,
            local_dirs,
            ..Session::default()
        }
    }
}

/// Builds the solver vertices of a loaded LLB graph.
pub(crate) fn vertices(
    inner: &Arc<Inner>,
    graph: &llb::Graph,
    session: &Arc<Session>,
) -> Result<BTreeMap<Digest, Arc<solver::Vertex<Ref>>>, OpFailure> {
    let mut out: BTreeMap<Digest, Arc<solver::Vertex<Ref>>> = BTreeMap::new();
    // The `.dockerignore` patterns of each local source, by vertex: they travel to the ops that
    // read the directory, which see it through them.
    let mut excludes: BTreeMap<Digest, Arc<Vec<String>>> = BTreeMap::new();
    // Definition order puts inputs before their users.
    for vertex in &graph.vertices {
        let input_excludes: Vec<Arc<Vec<String>>> = vertex
            .inputs
            .iter()
            .map(|(d, _)| excludes.get(d).cloned().unwrap_or_default())
            .collect();
        let local_inputs: Vec<bool> = vertex
            .inputs
            .iter()
            .map(|(d, _)| excludes.contains_key(d))
            .collect();
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
        let op: Arc<dyn Op<Ref>> = match &vertex.op.kind {
            Some(pb::op::Kind::Source(source)) => {
                if source.identifier.starts_with(llb::attr::SCHEME_LOCAL) {
                    excludes.insert(vertex.digest.clone(), Arc::new(local_excludes(source)?));
                }
                source_op(inner, source, session)?
            }
            Some(pb::op::Kind::Exec(exec)) => Arc::new(ExecOp {
                inner: inner.clone(),
                session: session.clone(),
                op: exec.clone(),
                base: base_digest(&vertex.op),
                n_inputs: inputs.len(),
                excludes: input_excludes,
                local_inputs,
            }),
            Some(pb::op::Kind::File(file)) => Arc::new(FileOp {
                inner: inner.clone(),
                op: file.clone(),
                base: base_digest(&vertex.op),
                n_inputs: inputs.len(),
                excludes: input_excludes,
            }),
            Some(pb::op::Kind::Merge(merge)) => Arc::new(merge::MergeOp {
                inner: inner.clone(),
                op: merge.clone(),
                base: base_digest(&vertex.op),
                n_inputs: inputs.len(),
            }),
            None => return Err(OpFailure::Invalid("op without body".into())),
        };
        let op: Arc<dyn Op<Ref>> = Arc::new(Described {
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
            }),
        );
    }
    Ok(out)
}

/// An op with the facts of its LLB definition added to its cache map (for cache-miss
/// explanations). Facts the op gives itself (a resolved image digest, say) win.
struct Described {
    op: Arc<dyn Op<Ref>>,
    facts: Vec<(String, String)>,
}

impl Op<Ref> for Described {
    fn resource(&self) -> solver::Resource {
        self.op.resource()
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
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

    fn exec<'a>(&'a self, ctx: &'a Context, inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        self.op.exec(ctx, inputs)
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
fn base_digest(op: &pb::Op) -> Digest {
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

/// The resource limits of an exec; -1 is unlimited.
fn ulimits(meta: &pb::Meta) -> Result<Vec<executor::Ulimit>, OpError> {
    let value = |name: &str, v: i64| -> Result<Option<u64>, OpError> {
        match v {
            -1 => Ok(None),
            v => u64::try_from(v).map(Some).map_err(|_| {
                op_error(OpFailure::Invalid(format!(
                    "ulimit {name} has a negative limit {v}"
                )))
            }),
        }
    };
    meta.ulimit
        .iter()
        .map(|u| {
            Ok(executor::Ulimit {
                name: u.name.clone(),
                soft: value(&u.name, u.soft)?,
                hard: value(&u.name, u.hard)?,
            })
        })
        .collect()
}

/// The extra `/etc/hosts` entries of an exec, with their addresses checked.
fn extra_hosts(meta: &pb::Meta) -> Result<Vec<(String, std::net::IpAddr)>, OpError> {
    meta.extra_hosts
        .iter()
        .map(|h| {
            let ip = h.ip.parse().map_err(|_| {
                op_error(OpFailure::Invalid(format!(
                    "extra host {:?} has an invalid address {:?}",
                    h.host, h.ip
                )))
            })?;
            if h.host.is_empty() || h.host.chars().any(char::is_whitespace) {
                return Err(op_error(OpFailure::Invalid(format!(
                    "extra host {:?} is not a valid host name",
                    h.host
                ))));
            }
            Ok((h.host.clone(), ip))
        })
        .collect()
}

/// The process environment: the op's, plus proxy variables (upper and lower case, as tools
/// read either) that the op does not set itself.
fn process_env(meta: &pb::Meta) -> Vec<String> {
    let mut env = meta.env.clone();
    let Some(proxy) = &meta.proxy_env else { return env };
    let pairs = [
        ("HTTP_PROXY", &proxy.http_proxy),
        ("HTTPS_PROXY", &proxy.https_proxy),
        ("FTP_PROXY", &proxy.ftp_proxy),
        ("NO_PROXY", &proxy.no_proxy),
        ("ALL_PROXY", &proxy.all_proxy),
    ];
    for (name, value) in pairs {
        if value.is_empty() {
            continue;
        }
        for key in [name.to_string(), name.to_ascii_lowercase()] {
            if !env
                .iter()
                .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
            {
                env.push(format!("{key}={value}"));
            }
        }
    }
    env
}

/// `env` with `vars` set, each replacing a variable of the same name.
fn with_vars(mut env: Vec<String>, vars: Vec<(String, String)>) -> Vec<String> {
    for (name, value) in vars {
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name);
        env.push(format!("{name}={value}"));
    }
    env
}

/// The exclude patterns (`.dockerignore`) of a local source: a JSON list of strings.
fn local_excludes(source: &pb::SourceOp) -> Result<Vec<String>, OpFailure> {
    match source.attrs.get(llb::attr::LOCAL_EXCLUDE_PATTERNS) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            OpFailure::Invalid(format!("invalid exclude patterns of {}: {e}", source.identifier))
        }),
    }
}

fn source_op(
    inner: &Arc<Inner>,
    source: &pb::SourceOp,
    session: &Arc<Session>,
) -> Result<Arc<dyn Op<Ref>>, OpFailure> {
    if let Some(name) = source.identifier.strip_prefix(llb::attr::SCHEME_LOCAL) {
        let dir = session
            .local_dirs
            .get(name)
            .ok_or_else(|| OpFailure::Invalid(format!("no local directory named {name:?} in this build")))?;
        return Ok(Arc::new(LocalOp {
            dir: Arc::new(dir.clone()),
            session: session.id.clone(),
        }));
    }
    if let Some(reference) = source.identifier.strip_prefix(llb::attr::SCHEME_IMAGE) {
        let reference = Reference::parse(reference)
            .map_err(|e| OpFailure::Invalid(format!("invalid image source: {e}")))?;
        return Ok(Arc::new(ImageOp {
            inner: inner.clone(),
            reference,
        }));
    }
    if source.identifier.starts_with("http://") || source.identifier.starts_with("https://") {
        return Ok(Arc::new(http::HttpOp::new(inner, session, source)?));
    }
    if source.identifier.starts_with(llb::attr::SCHEME_GIT) {
        return Ok(Arc::new(git::GitOp::new(inner, session, source)?));
    }
    Err(OpFailure::NotSupported(format!("source {:?}", source.identifier)))
}

struct ImageOp {
    inner: Arc<Inner>,
    reference: Reference,
}

impl Op<Ref> for ImageOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a container, a registry or a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, _ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            // The manifest digest identifies the content; a tag is resolved first.
            let digest = match self.reference.digest() {
                Some(d) => d.clone(),
                None => {
                    pull::manifest(&self.inner, &self.reference)
                        .await
                        .map_err(op_error)?
                        .0
                }
            };
            let key = format!("image:{digest}:{}", self.inner.platform);
            Ok(CacheMap {
                digest: Digest::of(key.as_bytes()),
                deps: Vec::new(),
                cacheable: true,
                facts: vec![("image digest".into(), digest.to_string())],
            })
        })
    }

    fn exec<'a>(&'a self, ctx: &'a Context, _inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            ctx.status(format!("resolve {}", self.reference));
            let r = pull::pull(&self.inner, &self.reference, ctx)
                .await
                .map_err(op_error)?;
            Ok(vec![r])
        })
    }
}

/// The build context, read in place. Never cached: users key on the content they read.
struct LocalOp {
    dir: Arc<PathBuf>,
    session: String,
}

impl Op<Ref> for LocalOp {
    fn cache_map<'a>(&'a self, _ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let digest = Digest::of(format!("local:{}:{}", self.session, self.dir.display()).as_bytes());
            Ok(CacheMap {
                digest,
                deps: Vec::new(),
                cacheable: false,
                facts: Vec::new(),
            })
        })
    }

    fn exec<'a>(&'a self, _ctx: &'a Context, _inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            if !self.dir.is_dir() {
                return Err(op_error(OpFailure::Invalid(format!(
                    "build context {} is not a directory",
                    self.dir.display()
                ))));
            }
            Ok(vec![Ref::Local(self.dir.clone())])
        })
    }
}

struct ExecOp {
    inner: Arc<Inner>,
    session: Arc<Session>,
    op: pb::ExecOp,
    base: Digest,
    n_inputs: usize,
    /// Per input: the exclude patterns of a local source (empty for anything else).
    excludes: Vec<Arc<Vec<String>>>,
    /// Per input: whether it is a local source (the build context).
    local_inputs: Vec<bool>,
}

struct LogSink<'a>(&'a Context);

impl executor::OutputSink for LogSink<'_> {
    fn write(&self, stream: executor::Stream, data: &[u8]) {
        let n = match stream {
            executor::Stream::Stdout => 1,
            executor::Stream::Stderr => 2,
        };
        self.0.log(n, data);
    }
}

impl ExecOp {
    /// The cache dep of input `i`. Inputs are keyed by their own keys, except the build context
    /// (which has none): a bind mount of it is keyed by the content of the part it mounts, as a
    /// COPY from it is, so editing another file of the context changes nothing.
    fn dep(&self, i: usize) -> Dep<Ref> {
        if !self.local_inputs.get(i).copied().unwrap_or(false) {
            return Dep::default();
        }
        let selectors: Vec<String> = self
            .op
            .mounts
            .iter()
            .filter(|m| {
                usize::try_from(m.input).ok() == Some(i)
                    && m.dest != "/"
                    && m.mount_type == pb::MountType::Bind as i32
            })
            .map(|m| format!("/{}", m.selector.trim_start_matches('/')))
            .collect();
        if selectors.is_empty() {
            return Dep::default();
        }
        let excludes = self.excludes.get(i).cloned().unwrap_or_default();
        let list: Arc<Vec<fileop::CopyOptions>> = Arc::new(
            selectors
                .iter()
                .map(|src| fileop::CopyOptions {
                    src: src.clone(),
                    follow_symlink: true,
                    context_excludes: excludes.to_vec(),
                    ..fileop::CopyOptions::default()
                })
                .collect(),
        );
        let inner = self.inner.clone();
        let content: solver::ContentFn<Ref> = Arc::new(move |r: Ref| {
            let list = list.clone();
            let inner = inner.clone();
            Box::pin(async move { content_key(inner, r, list).await })
        });
        Dep {
            selector: Some(Digest::of(format!("mount\n{}", selectors.join("\n")).as_bytes())),
            content: Some(content),
        }
    }
}

impl ExecOp {
    /// Fails unless the build was granted what the op asks for: `network.host` for
    /// `--network=host`, `security.insecure` for `--security=insecure` (checked in that order,
    /// as BuildKit does).
    fn check_entitlements(&self) -> Result<(), OpError> {
        let needs = [
            (
                self.op.network == pb::NetMode::Host as i32,
                crate::Entitlement::NetworkHost,
                "RUN --network=host",
            ),
            (
                self.op.security == pb::SecurityMode::Insecure as i32,
                crate::Entitlement::SecurityInsecure,
                "RUN --security=insecure",
            ),
        ];
        for (needed, entitlement, flag) in needs {
            if needed && !self.session.entitlements.contains(&entitlement) {
                let name = entitlement.name();
                return Err(op_error(OpFailure::Invalid(format!(
                    "{name} is not allowed: {flag} needs the {name} entitlement (run kiln build with --allow {name})"
                ))));
            }
        }
        Ok(())
    }
}

impl Op<Ref> for ExecOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a container, a registry or a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, _ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            // Entitlements are checked before the cache is even asked, as BuildKit validates
            // them up front: a cached result must not let a build skip what it was not granted.
            self.check_entitlements()?;
            let deps = (0..self.n_inputs).map(|i| self.dep(i)).collect();
            Ok(CacheMap {
                digest: self.base.clone(),
                deps,
                cacheable: true,
                facts: Vec::new(),
            })
        })
    }

    fn exec<'a>(&'a self, ctx: &'a Context, inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let meta = self.op.meta.clone().unwrap_or_default();
            let mut roots = self.op.mounts.iter().filter(|m| m.dest == "/");
            let (Some(root), None) = (roots.next(), roots.next()) else {
                return Err(op_error(OpFailure::Invalid(
                    "an exec needs exactly one mount at /".into(),
                )));
            };
            // Privileges first, as BuildKit validates entitlements before running anything: a
            // step that may not run at all reports that, not a missing secret. Network before
            // security, in BuildKit's order.
            self.check_entitlements()?;
            let network = match pb::NetMode::try_from(self.op.network) {
                // The worker's network, as configured (`--oci-worker-net`; loopback only by
                // default, since these machines have no bridge).
                Ok(pb::NetMode::Unset) => self.inner.default_network,
                Ok(pb::NetMode::None) => executor::NetworkMode::None,
                // Asked for explicitly, host networking is an entitlement.
                Ok(pb::NetMode::Host) => executor::NetworkMode::Host,
                Err(_) => {
                    return Err(op_error(OpFailure::Invalid(format!(
                        "unknown network mode {}",
                        self.op.network
                    ))));
                }
            };
            let security = match pb::SecurityMode::try_from(self.op.security) {
                Ok(pb::SecurityMode::Sandbox) => executor::SecurityMode::Sandbox,
                Ok(pb::SecurityMode::Insecure) => executor::SecurityMode::Insecure,
                Err(_) => {
                    return Err(op_error(OpFailure::Invalid(format!(
                        "unknown security mode {}",
                        self.op.security
                    ))));
                }
            };
            // `env=` secrets join the process environment (replacing a variable of the same
            // name); they are never in the op's definition, so never in its key.
            let secret_env = secrets::env(&self.session, &self.op.secretenv).map_err(op_error)?;
            let parent = match usize::try_from(root.input).ok().and_then(|i| inputs.get(i)) {
                None | Some(Ref::Empty) => None,
                Some(Ref::Snapshot(id)) => Some(*id),
                Some(Ref::Local(_)) => {
                    return Err(op_error(OpFailure::NotSupported(
                        "a local directory as the root of a RUN".into(),
                    )));
                }
            };
            let store = self.inner.store.clone();
            // Dropped after the run: unmounts and discards everything the mounts needed.
            let extra = mounts::prepare(
                &store,
                &self.session,
                &self.op.mounts,
                &inputs,
                &self.excludes,
                &meta,
            )
            .await
            .map_err(op_error)?;
            let spec = executor::ExecSpec {
                args: meta.args.clone(),
                env: with_vars(process_env(&meta), secret_env),
                cwd: if meta.cwd.is_empty() {
                    "/".into()
                } else {
                    meta.cwd.clone()
                },
                user: meta.user.clone(),
                hostname: meta.hostname.clone(),
                extra_hosts: extra_hosts(&meta)?,
                ulimits: ulimits(&meta)?,
                network,
                mounts: extra.mounts.clone(),
                readonly_rootfs: root.readonly,
                security,
            };
            let active = store
                .prepare(parent, &format!("exec {}", meta.args.join(" ")))
                .map_err(op_error)?;
            let status = {
                let mount = active.mount().map_err(op_error)?;
                store::fault::point("exec.before-run");
                self.inner
                    .executor
                    .run(mount.path(), &spec, &LogSink(ctx))
                    .await
                    .map_err(op_error)?
            };
            drop(extra);
            if !status.success() {
                return Err(op_error(OpFailure::ProcessFailed {
                    command: meta.args.join(" "),
                    code: status.code,
                }));
            }
            store::fault::point("exec.after-run");
            // Committing is one small database transaction.
            let info = active.commit().map_err(op_error)?;
            Ok(vec![Ref::Snapshot(info.id)])
        })
    }
}

struct FileOp {
    inner: Arc<Inner>,
    op: pb::FileOp,
    base: Digest,
    n_inputs: usize,
    /// Per input: the exclude patterns of a local source (empty for anything else).
    excludes: Vec<Arc<Vec<String>>>,
}

/// The options of a copy action reading an input with the given exclude patterns (a local
/// source's `.dockerignore`). Ownership is left to the caller: the new owner is resolved in the
/// destination, and the build context's files become 0:0.
fn copy_options(copy: &pb::FileActionCopy, excludes: &[String]) -> fileop::CopyOptions {
    fileop::CopyOptions {
        src: copy.src.clone(),
        dest: copy.dest.clone(),
        owner: None,
        source_owner: None,
        mode: u32::try_from(copy.mode).ok(),
        mode_str: (!copy.mode_str.is_empty()).then(|| copy.mode_str.clone()),
        follow_symlink: copy.follow_symlink,
        dir_copy_contents: copy.dir_copy_contents,
        create_dest_path: copy.create_dest_path,
        allow_wildcard: copy.allow_wildcard,
        allow_empty_wildcard: copy.allow_empty_wildcard,
        timestamp: (copy.timestamp >= 0).then_some(copy.timestamp),
        include_patterns: copy.include_patterns.clone(),
        exclude_patterns: copy.exclude_patterns.clone(),
        context_excludes: excludes.to_vec(),
        required_paths: copy.required_paths.clone(),
        attempt_unpack: copy.attempt_unpack_docker_compatibility,
        always_replace_existing_dest_paths: copy.always_replace_existing_dest_paths,
    }
}

/// Ownership given to files copied from the build context, as BuildKit's local sources do.
const CONTEXT_OWNER: Ownership = Ownership { uid: 0, gid: 0 };

impl Op<Ref> for FileOp {
    fn cache_map<'a>(&'a self, _ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let n = self.n_inputs;
            let mut selections: Vec<Vec<fileop::CopyOptions>> = vec![Vec::new(); n];
            for action in &self.op.actions {
                if let Some(pb::file_action::Action::Copy(copy)) = &action.action
                    && let Ok(i) = usize::try_from(action.secondary_input)
                    && let Some(list) = selections.get_mut(i)
                {
                    let excludes = self.excludes.get(i).map_or(&[][..], |e| e.as_slice());
                    // Files of the build context are copied as 0:0 (content_key keeps the
                    // owners of other inputs).
                    list.push(fileop::CopyOptions {
                        source_owner: Some(CONTEXT_OWNER),
                        ..copy_options(copy, excludes)
                    });
                }
            }
            let deps = selections
                .into_iter()
                .map(|list| {
                    if list.is_empty() {
                        return Dep::default();
                    }
                    let selector = Digest::of(
                        list.iter()
                            .map(|s| s.src.as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                            .as_bytes(),
                    );
                    let list = Arc::new(list);
                    let inner = self.inner.clone();
                    let content: solver::ContentFn<Ref> = Arc::new(move |r: Ref| {
                        let list = list.clone();
                        let inner = inner.clone();
                        Box::pin(async move { content_key(inner, r, list).await })
                    });
                    Dep {
                        selector: Some(selector),
                        content: Some(content),
                    }
                })
                .collect();
            Ok(CacheMap {
                digest: self.base.clone(),
                deps,
                cacheable: true,
                facts: Vec::new(),
            })
        })
    }

    fn exec<'a>(&'a self, ctx: &'a Context, inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let _ = ctx;
            let store = self.inner.store.clone();
            let op = self.op.clone();
            let excludes = self.excludes.clone();
            let id = tokio::task::spawn_blocking(move || run_file_op(&store, &op, &inputs, &excludes))
                .await
                .map_err(join_error)?;
            Ok(vec![id.map_err(op_error)?])
        })
    }
}

/// The content key of what a COPY (or a bind mount) reads from one input, as `selections`
/// select it: a digest of exactly those files (names, modes, owners, contents; not times).
/// The build context is hashed with the store's file-digest cache, so only changed files are
/// read; a snapshot's digest is computed once and remembered, since snapshots never change.
async fn content_key(
    inner: Arc<Inner>,
    r: Ref,
    selections: Arc<Vec<fileop::CopyOptions>>,
) -> Result<Digest, OpError> {
    if let Ref::Empty = r {
        return Ok(Digest::of(b"empty"));
    }
    tokio::task::spawn_blocking(move || {
        let store = &inner.store;
        let mut text = String::new();
        // What was read from a local directory, for cache-miss explanations.
        let mut listing: Option<fileop::Listing> = None;
        for options in selections.iter() {
            let d = match &r {
                Ref::Local(dir) => {
                    let (d, files) =
                        fileop::content_listing_cached(dir, options, store.hash_cache()).map_err(op_error)?;
                    listing.get_or_insert_with(Vec::new).extend(files);
                    d
                }
                // Files copied from a snapshot keep their owners.
                Ref::Snapshot(id) => {
                    let options = fileop::CopyOptions {
                        source_owner: None,
                        ..options.clone()
                    };
                    store.snapshot_content_digest(*id, &options).map_err(op_error)?
                }
                Ref::Empty => Digest::of(b"empty"),
            };
            text.push_str(&format!("{}\n{d}\n", options.src));
        }
        let digest = Digest::of(text.as_bytes());
        if let Some(mut listing) = listing {
            listing.sort();
            listing.dedup_by(|a, b| a.0 == b.0);
            inner.listings.put(digest.clone(), listing);
        }
        Ok(digest)
    })
    .await
    .map_err(join_error)?
}

fn run_file_op(
    store: &store::Store,
    op: &pb::FileOp,
    inputs: &[Ref],
    excludes: &[Arc<Vec<String>>],
) -> Result<Ref, OpFailure> {
    let n_inputs = inputs.len() as i64;
    let first = op
        .actions
        .first()
        .ok_or_else(|| OpFailure::Invalid("file op without actions".into()))?;
    let base = match usize::try_from(first.input).ok().and_then(|i| inputs.get(i)) {
        None | Some(Ref::Empty) => None,
        Some(Ref::Snapshot(id)) => Some(*id),
        Some(Ref::Local(_)) => {
            return Err(OpFailure::NotSupported(
                "file actions on a local directory".into(),
            ));
        }
    };
    for (i, action) in op.actions.iter().enumerate().skip(1) {
        if action.input != n_inputs + i as i64 - 1 {
            return Err(OpFailure::NotSupported(
                "file actions that do not chain on the previous action".into(),
            ));
        }
    }
    let active = store.prepare(base, "file op")?;
    {
        let mount = active.mount()?;
        let dest = mount.path();
        for action in &op.actions {
            if action.secondary_input >= n_inputs {
                return Err(OpFailure::NotSupported(
                    "copying from the result of an earlier action".into(),
                ));
            }
            let timestamp = |t: i64| (t >= 0).then_some(t);
            match &action.action {
                Some(pb::file_action::Action::Copy(copy)) => {
                    let index = usize::try_from(action.secondary_input).ok();
                    let source = index.and_then(|i| inputs.get(i)).cloned();
                    let empty_dir;
                    let view;
                    let (src_root, source_owner) = match &source {
                        Some(Ref::Local(dir)) => ((**dir).clone(), Some(CONTEXT_OWNER)),
                        Some(Ref::Snapshot(id)) => {
                            view = store.view(*id)?;
                            (view.path().to_path_buf(), None)
                        }
                        None | Some(Ref::Empty) => {
                            empty_dir = EmptyDir::new(store)?;
                            (empty_dir.path.clone(), None)
                        }
                    };
                    let excludes = index
                        .and_then(|i| excludes.get(i))
                        .map_or(&[][..], |e| e.as_slice());
                    let options = fileop::CopyOptions {
                        owner: ownership(dest, copy.owner.as_ref())?,
                        source_owner,
                        ..copy_options(copy, excludes)
                    };
                    fileop::copy(&src_root, dest, &options)?;
                }
                Some(pb::file_action::Action::Mkdir(m)) => {
                    let owner = ownership(dest, m.owner.as_ref())?;
                    fileop::mkdir(
                        dest,
                        &m.path,
                        m.mode as u32,
                        m.make_parents,
                        owner,
                        timestamp(m.timestamp),
                    )?;
                }
                Some(pb::file_action::Action::Mkfile(m)) => {
                    let owner = ownership(dest, m.owner.as_ref())?;
                    fileop::mkfile(
                        dest,
                        &m.path,
                        m.mode as u32,
                        &m.data,
                        owner,
                        timestamp(m.timestamp),
                    )?;
                }
                Some(pb::file_action::Action::Rm(r)) => {
                    fileop::rm(dest, &r.path, r.allow_not_found, r.allow_wildcard)?;
                }
                Some(pb::file_action::Action::Symlink(s)) => {
                    let owner = ownership(dest, s.owner.as_ref())?;
                    fileop::symlink(dest, &s.oldpath, &s.newpath, owner, timestamp(s.timestamp))?;
                }
                None => return Err(OpFailure::Invalid("file action without body".into())),
            }
        }
    }
    Ok(Ref::Snapshot(active.commit()?.id))
}

/// Solves a whole LLB definition (the engine's entry point for clients that bring their own
/// LLB): loads and validates it, builds the vertices with `local_dirs` as its `local://`
/// sources, and solves its result.
pub(crate) async fn solve_definition(
    inner: &Arc<Inner>,
    solver: &Arc<solver::Solver<Ref>>,
    definition: &llb::Definition,
    local_dirs: &BTreeMap<String, PathBuf>,
    progress: Arc<dyn Progress>,
) -> Result<Option<store::SnapshotId>, BuildError> {
    static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let graph = llb::Graph::load(&definition.pb).map_err(|e| BuildError::Request(e.to_string()))?;
    let session = format!(
        "definition-{}-{}",
        std::process::id(),
        SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let session = Arc::new(Session::with_locals(session, local_dirs.clone()));
    let vertices = vertices(inner, &graph, &session).map_err(|e| BuildError::Request(e.to_string()))?;
    let Some((digest, index)) = &graph.root else {
        return Ok(None);
    };
    let root = vertices
        .get(digest)
        .ok_or_else(|| BuildError::Request("result op missing".into()))?;
    let result = solver
        .job(Arc::new(crate::progress::Forward(progress)))
        .solve(root, *index as usize)
        .await
        .map_err(|error| BuildError::Step {
            vertex: error.vertex.clone(),
            name: error.name.clone(),
            message: error.to_string(),
            snippets: graph
                .locations(&error.vertex)
                .into_iter()
                .map(|(filename, data, start, end)| SourceSnippet {
                    filename,
                    data: String::from_utf8_lossy(&data).into_owned(),
                    start_line: start.max(0) as usize,
                    end_line: end.max(0) as usize,
                })
                .collect(),
        })?;
    match result {
        Ref::Empty => Ok(None),
        Ref::Snapshot(id) => Ok(Some(id)),
        Ref::Local(_) => Err(BuildError::Request(
            "a build result cannot be a local directory".into(),
        )),
    }
}

/// An empty directory under the state directory, removed on drop.
struct EmptyDir {
    path: PathBuf,
}

impl EmptyDir {
    fn new(store: &store::Store) -> Result<EmptyDir, OpFailure> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = store
            .root()
            .join("mnt")
            .join(format!("empty-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| OpFailure::Invalid(format!("create {}: {e}", path.display())))?;
        Ok(EmptyDir { path })
    }
}

impl Drop for EmptyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn user_ref(u: &pb::UserOpt) -> Option<UserRef> {
    match u.user.as_ref()? {
        pb::user_opt::User::ById(id) => Some(UserRef::Id(*id)),
        pb::user_opt::User::ByName(n) => Some(UserRef::Name(n.name.clone())),
    }
}

fn ownership(root: &std::path::Path, owner: Option<&pb::ChownOpt>) -> Result<Option<Ownership>, OpFailure> {
    let Some(owner) = owner else { return Ok(None) };
    let Some(user) = owner.user.as_ref().and_then(user_ref) else {
        return Ok(None);
    };
    let group = owner.group.as_ref().and_then(user_ref);
    Ok(Some(fileop::resolve_ownership(root, &user, group.as_ref())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_op(proxy: Option<pb::ProxyEnv>) -> pb::Op {
        let meta = pb::Meta {
            args: vec!["true".into()],
            env: vec!["no_proxy=mine".into()],
            proxy_env: proxy,
            ..Default::default()
        };
        let exec = pb::ExecOp {
            meta: Some(meta),
            ..Default::default()
        };
        pb::Op {
            inputs: Vec::new(),
            kind: Some(pb::op::Kind::Exec(exec)),
            platform: None,
        }
    }

    #[test]
    fn proxies_are_in_the_env_but_not_the_cache_key() {
        let proxy = pb::ProxyEnv {
            http_proxy: "http://p:1".into(),
            no_proxy: "x".into(),
            ..Default::default()
        };
        let with = exec_op(Some(proxy));
        assert_eq!(base_digest(&with), base_digest(&exec_op(None)));
        let Some(pb::op::Kind::Exec(exec)) = &with.kind else {
            panic!("not an exec op")
        };
        let env = process_env(exec.meta.as_ref().unwrap());
        assert_eq!(
            env,
            vec![
                "no_proxy=mine",
                "HTTP_PROXY=http://p:1",
                "http_proxy=http://p:1",
                "NO_PROXY=x"
            ]
        );
    }
}
