//! A generic solver for content-addressed build graphs.
//!
//! The solver runs a DAG of [`Vertex`]es. Each vertex has an [`Op`] that knows two things: its
//! [`CacheMap`] (a digest of what the op does, without its inputs, plus how each input
//! contributes to the cache key) and how to execute given its inputs' results. The solver
//! computes cache keys bottom-up, reuses results from a [`CacheStore`] where a key matches, and
//! executes the rest, running independent branches concurrently.
//!
//! Cache keys (modelled on BuildKit's): `key(v) = H(version, cachemap.digest, salt, for each
//! input: dep key)`, where a dep key is either the input's own key and output index (a "fast"
//! key, from the definition alone) or a digest of the input's content as the op sees it (a
//! "slow" content key, e.g. of the files a COPY reads — computed from the input's result). An
//! op may also declare itself uncacheable (e.g. a local directory read afresh every build);
//! anything depending on it through a fast key is then uncacheable too, while a content dep
//! makes its users cacheable again.
//!
//! Many builds, one solver. Each build is a [`Job`] with its own progress sink and its own
//! session (`S`: whatever the caller's ops need from the client that asked: directories,
//! secrets, credentials). Nothing of a session is stored in shared state: an op reaches the
//! sessions of the jobs waiting for it through its [`Context`], and a vertex that depends on
//! something of one session (a secret's value, say) carries a [`Vertex::salt`] that keeps it
//! from being shared with vertices of other sessions.
//!
//! Sharing. Vertices are identified by their digest (plus salt and the identities of their
//! inputs): loaded by any number of concurrent jobs, a vertex has one state, so its cache map
//! and key are computed once. Execution is shared by cache key (BuildKit merges edges the same
//! way): two vertices whose keys are equal run once, even when their digests differ. Each such
//! piece of work counts its waiters (module `shared`); work not ready at its first poll goes on as
//! a task of its own. A job that is cancelled only leaves the count, and the work stops when its
//! last waiter has gone. So
//! cancelling one build never stops or restarts work another build waits on.
//!
//! Parallelism: independent vertices run concurrently, bounded by [`Limits`]. Ops say which
//! [`Resource`] they use: in-process work (copying files, unpacking layers, hashing) is
//! bounded by the number of cores, since more of it at once only thrashes; ops that wait on
//! something outside the process (a container, the network) are unbounded by default, so
//! steps that sleep or wait overlap freely and the kernel shares the CPU between containers.
//! An explicit `max_parallelism` bounds every executing op, whatever its resource.
//!
//! Invariants: knows nothing about LLB, containers or disks (ops, results and sessions are
//! opaque); no IO of its own; every lookup is a hash-map access, so solving a graph costs time
//! linear in its size (`benches/solve.rs`); a job's progress sink and session are dropped from
//! every vertex when the job ends.
//!
//! Tests: toy ops that count executions, in `tests.rs` (and the counted-work primitive in
//! `shared.rs`).

#![forbid(unsafe_code)]

mod shared;
mod solve;
mod watch;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use oci::Digest;

pub use solve::{Job, Solver};
pub use watch::Context;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors of ops and cache stores, shared between every waiter of a failed vertex.
pub type OpError = Arc<dyn std::error::Error + Send + Sync>;

/// Version of the cache-key encoding; part of every key.
pub const KEY_VERSION: &str = "kiln-solver-key-v2";

/// Version of the link-key encoding ([`Event::Keyed::link`]).
pub const LINK_VERSION: &str = "kiln-solver-link-v1";

/// A function computing the content key of one input result.
pub type ContentFn<R> = Arc<dyn Fn(R) -> BoxFuture<'static, Result<Digest, OpError>> + Send + Sync>;

/// How one input contributes to its user's cache key.
pub struct Dep<R> {
    /// Which part of the input the op reads (e.g. the paths a COPY selects).
    pub selector: Option<Digest>,
    /// When set, the input's content (as this function digests it) replaces its key.
    pub content: Option<ContentFn<R>>,
}

impl<R> Default for Dep<R> {
    fn default() -> Self {
        Dep {
            selector: None,
            content: None,
        }
    }
}

/// What an op's cache key is made of.
pub struct CacheMap<R> {
    /// Digest of what the op does, not including its inputs.
    pub digest: Digest,
    /// One entry per input, in input order.
    pub deps: Vec<Dep<R>>,
    /// `false`: never look this op up in the cache nor store its result.
    pub cacheable: bool,
    /// What `digest` is made of, for people: (field, value) pairs such as ("command", "make")
    /// or ("env CC", "gcc"). Compared between builds to explain why a key changed.
    pub facts: Vec<(String, String)>,
}

impl<R> CacheMap<R> {
    /// A cacheable key of `digest` and `deps`, without facts.
    pub fn new(digest: Digest, deps: Vec<Dep<R>>) -> CacheMap<R> {
        CacheMap {
            digest,
            deps,
            cacheable: true,
            facts: Vec::new(),
        }
    }

    /// A cacheable key of an op without inputs, made of one fact: `digest` is what
    /// `field` = `value` resolved to.
    pub fn of_fact(digest: Digest, field: &str, value: String) -> CacheMap<R> {
        CacheMap {
            facts: vec![(field.to_string(), value)],
            ..CacheMap::new(digest, Vec::new())
        }
    }

    /// The same key, never looked up in the cache nor stored.
    pub fn uncacheable(self) -> CacheMap<R> {
        CacheMap {
            cacheable: false,
            ..self
        }
    }
}

/// How one input entered a vertex's cache key (see [`Event::Keyed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDep {
    /// The input vertex.
    pub input: Digest,
    /// Its name.
    pub input_name: String,
    /// Which of its outputs.
    pub output: usize,
    /// What part of it the op reads, if the op said.
    pub selector: Option<Digest>,
    /// What identified it in the key; `None` when it had no key (so neither has its user).
    pub part: Option<KeyPart>,
}

/// What identifies an input in its user's cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The input's own cache key (a fast key).
    Key(Digest),
    /// A digest of the input's content as the op reads it (a slow key).
    Content(Digest),
}

/// What an op spends while it executes; decides which [`Limits`] apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// CPU and disk of this process (file copies, layer unpacking, hashing).
    Compute,
    /// Time waiting on something outside the process: a container, a download.
    External,
}

/// How many ops may execute at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bound on every executing op (`--max-parallelism`); `None`: no overall bound.
    pub max_parallelism: Option<usize>,
    /// Bound on ops using [`Resource::Compute`] (and on content hashing).
    pub compute: usize,
}

impl Limits {
    /// The default: compute work bounded by the machine's cores, external work unbounded.
    pub fn for_this_machine() -> Limits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Limits {
            max_parallelism: None,
            compute: cores,
        }
    }

    /// Every op bounded by `n` (at least 1), compute work also by the cores.
    pub fn with_max_parallelism(n: usize) -> Limits {
        let n = n.max(1);
        let machine = Limits::for_this_machine();
        Limits {
            max_parallelism: Some(n),
            compute: machine.compute.min(n),
        }
    }
}

/// An operation the solver can run, for jobs whose sessions are `S`.
pub trait Op<R, S>: Send + Sync {
    /// What executing the op spends; [`Resource::Compute`] unless the op says otherwise.
    fn resource(&self) -> Resource {
        Resource::Compute
    }
    /// The op's cache map. Called at most once per vertex state (unless cancelled).
    fn cache_map<'a>(&'a self, ctx: &'a Context<S>) -> BoxFuture<'a, Result<CacheMap<R>, OpError>>;
    /// Runs the op on its inputs' results, returning its outputs.
    fn exec<'a>(&'a self, ctx: &'a Context<S>, inputs: Vec<R>) -> BoxFuture<'a, Result<Vec<R>, OpError>>;
}

/// Persistent results, keyed by cache key, for jobs whose sessions are `S`.
pub trait CacheStore<R, S>: Send + Sync {
    /// The outputs stored under `key`, if any (and still valid). `ctx` holds the sessions of
    /// the jobs waiting for the vertex, whose own cache sources (a build's `--cache-from`) the
    /// store may consult too.
    fn load<'a>(
        &'a self,
        key: &'a Digest,
        ctx: &'a Context<S>,
    ) -> BoxFuture<'a, Result<Option<Vec<R>>, OpError>>;
    /// Stores outputs under `key`.
    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [R]) -> BoxFuture<'a, Result<(), OpError>>;
    /// The cache key a [`link key`](Event::Keyed::link) stood for when it was recorded (a
    /// remote cache records both), if known. A vertex with content deps whose link key resolves
    /// takes that key without reading its inputs' content, so inputs needed only for their
    /// content are never built. The default knows none.
    /// Whether [`CacheStore::resolve_link`] may know any link for the jobs in `ctx`. When it
    /// does, a vertex with content deps waits for its inputs' keys and tries its link key
    /// before it reads any content; otherwise its link key is computed alongside, so that
    /// inputs it reads by content start as early as before.
    fn has_links(&self, _ctx: &Context<S>) -> bool {
        false
    }
    fn resolve_link<'a>(
        &'a self,
        _link: &'a Digest,
        _ctx: &'a Context<S>,
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A node of the graph.
pub struct Vertex<R, S> {
    /// What the vertex is: equal digests (and salts) mean identical work.
    pub digest: Digest,
    /// Name for progress output.
    pub name: String,
    /// Inputs: (producing vertex, output index).
    pub inputs: Vec<(Arc<Vertex<R, S>>, usize)>,
    /// What to do.
    pub op: Arc<dyn Op<R, S>>,
    /// Never use a cached result (the result is still stored).
    pub ignore_cache: bool,
    /// What the vertex depends on besides its definition and inputs, typically a keyed digest
    /// of the session data it uses (secret values, credentials; a unique id for a client's
    /// directory). Vertices with different salts never share a state, an execution or a cache
    /// key, and neither do the vertices built on them.
    pub salt: Option<Digest>,
}

impl<R, S> Drop for Vertex<R, S> {
    /// Drops the graph under this vertex by an explicit walk: the default drop would recurse
    /// down a chain of inputs and overflow the stack on a long one.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<Vertex<R, S>>> = self.inputs.drain(..).map(|(v, _)| v).collect();
        while let Some(vertex) = stack.pop() {
            if let Ok(mut vertex) = Arc::try_unwrap(vertex) {
                stack.extend(vertex.inputs.drain(..).map(|(v, _)| v));
            }
        }
    }
}

/// Progress of a solve, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A vertex's cache key was computed (before it is looked up, run or reported cached).
    Keyed {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// Its key; `None` when uncacheable.
        key: Option<Digest>,
        /// Whether a result was found under the key.
        cached: bool,
        /// Whether the cache was skipped for this vertex (`--no-cache`).
        ignore_cache: bool,
        /// The op's facts ([`CacheMap::facts`]).
        facts: Arc<Vec<(String, String)>>,
        /// How each input entered the key, in input order (empty when uncacheable).
        deps: Vec<KeyDep>,
        /// For a vertex with content deps whose inputs all have keys: its link key, the key
        /// it would have if every input entered by its key (with what the op reads of it).
        /// A remote cache records it next to `key`, so that an importer can find `key` from
        /// its inputs' keys alone ([`CacheStore::resolve_link`]).
        link: Option<Digest>,
    },
    /// A vertex's result was found in the cache.
    Cached {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// The digests of its inputs, in order.
        inputs: Vec<Digest>,
    },
    /// A vertex started executing.
    Started {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// The digests of its inputs, in order.
        inputs: Vec<Digest>,
    },
    /// Output of a running vertex.
    Log {
        /// The vertex.
        vertex: Digest,
        /// 1 = stdout, 2 = stderr.
        stream: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A status line of a running vertex.
    Status {
        /// The vertex.
        vertex: Digest,
        /// The line.
        message: String,
    },
    /// A vertex finished executing.
    Completed {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// How long it ran.
        duration: Duration,
        /// Its error, if it failed.
        error: Option<String>,
    },
}

/// Receives progress events.
pub trait Progress: Send + Sync {
    /// Called for every event, from any thread.
    fn event(&self, event: Event);
}

/// A failed solve: which vertex failed, and why.
///
/// It shows as its op's error (the same message, the same `source()` chain), so a chain
/// rendered from it names every cause once.
#[derive(Clone)]
pub struct SolveError {
    /// The vertex that failed.
    pub vertex: Digest,
    /// Its name.
    pub name: String,
    /// The op's (or cache store's) error.
    pub error: OpError,
}

impl fmt::Debug for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SolveError({}: {})", self.name, self.error)
    }
}

impl fmt::Display for SolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Transparent: the op's error is what this displays, so its cause comes next.
        self.error.source()
    }
}

/// An internal failure of the solver itself, as an op error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Internal {
    #[error("op returned {deps} cache deps for {inputs} inputs")]
    DepCount { deps: usize, inputs: usize },
    #[error("vertex has no output {0}")]
    NoOutput(usize),
    #[error("internal error: the work on this step panicked")]
    Panicked,
}

#[cfg(test)]
mod tests;
