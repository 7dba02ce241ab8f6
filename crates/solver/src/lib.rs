//! A generic solver for content-addressed build graphs.
//!
//! The solver runs a DAG of [`Vertex`]es. Each vertex has an [`Op`] that knows two things: its
//! [`CacheMap`] (a digest of what the op does, without its inputs, plus how each input
//! contributes to the cache key) and how to execute given its inputs' results. The solver
//! computes cache keys bottom-up, reuses results from a [`CacheStore`] where a key matches, and
//! executes the rest, running independent branches concurrently.
//!
//! Cache keys (modelled on BuildKit's): `key(v) = H(version, cachemap.digest, for each input:
//! dep key)`, where a dep key is either the input's own key and output index (a "fast" key,
//! from the definition alone) or a digest of the input's content as the op sees it (a "slow"
//! content key, e.g. of the files a COPY reads — computed from the input's result). An op may
//! also declare itself uncacheable (e.g. a local directory read afresh every build); anything
//! depending on it through a fast key is then uncacheable too, while a content dep makes its
//! users cacheable again.
//!
//! Parallelism: independent vertices run concurrently, bounded by [`Limits`]. Ops say which
//! [`Resource`] they use: in-process work (copying files, unpacking layers, hashing) is
//! bounded by the number of cores, since more of it at once only thrashes; ops that wait on
//! something outside the process (a container, the network) are unbounded by default, so
//! steps that sleep or wait overlap freely and the kernel shares the CPU between containers.
//! An explicit `max_parallelism` bounds every executing op, whatever its resource.
//!
//! Sharing: every vertex is identified by its digest. Vertices loaded by any number of
//! concurrent [`Job`]s share one state per digest, so identical work runs once, and its
//! result is handed to everyone who asked.
//!
//! Invariants: knows nothing about LLB, containers or disks (ops and results are opaque);
//! no IO of its own. Cancelling a solve means dropping its future; every in-flight op future
//! is dropped with it.
//!
//! Tests: toy ops that count executions, in `tests.rs`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use oci::Digest;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors of ops and cache stores, shared between every waiter of a failed vertex.
pub type OpError = Arc<dyn std::error::Error + Send + Sync>;

/// Version of the cache-key encoding; part of every key.
pub const KEY_VERSION: &str = "kiln-solver-key-v1";

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

/// Per-vertex context handed to ops: where to send logs.
pub struct Context {
    vertex: Digest,
    progress: Arc<Broadcast>,
}

impl Context {
    /// The vertex being worked on.
    pub fn vertex(&self) -> &Digest {
        &self.vertex
    }

    /// Sends output of the op (1 = stdout, 2 = stderr) to everyone watching the vertex.
    pub fn log(&self, stream: u8, data: &[u8]) {
        self.progress.send(Event::Log {
            vertex: self.vertex.clone(),
            stream,
            data: data.to_vec(),
        });
    }

    /// Sends a status line about the op (e.g. "pulling layer 2/3").
    pub fn status(&self, message: String) {
        self.progress.send(Event::Status {
            vertex: self.vertex.clone(),
            message,
        });
    }
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

/// An operation the solver can run.
pub trait Op<R>: Send + Sync {
    /// What executing the op spends; [`Resource::Compute`] unless the op says otherwise.
    fn resource(&self) -> Resource {
        Resource::Compute
    }
    /// The op's cache map. Called at most once per vertex state.
    fn cache_map<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<R>, OpError>>;
    /// Runs the op on its inputs' results, returning its outputs.
    fn exec<'a>(&'a self, ctx: &'a Context, inputs: Vec<R>) -> BoxFuture<'a, Result<Vec<R>, OpError>>;
}

/// Persistent results, keyed by cache key.
pub trait CacheStore<R>: Send + Sync {
    /// The outputs stored under `key`, if any (and still valid).
    fn load<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Option<Vec<R>>, OpError>>;
    /// Stores outputs under `key`.
    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [R]) -> BoxFuture<'a, Result<(), OpError>>;
}

/// A node of the graph.
pub struct Vertex<R> {
    /// Identity: equal digests mean identical work.
    pub digest: Digest,
    /// Name for progress output.
    pub name: String,
    /// Inputs: (producing vertex, output index).
    pub inputs: Vec<(Arc<Vertex<R>>, usize)>,
    /// What to do.
    pub op: Arc<dyn Op<R>>,
    /// Never use a cached result (the result is still stored).
    pub ignore_cache: bool,
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
    },
    /// A vertex's result was found in the cache.
    Cached {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
    },
    /// A vertex started executing.
    Started {
        /// The vertex.
        vertex: Digest,
        /// Its name.
        name: String,
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
        Some(self.error.as_ref())
    }
}

/// Fans events out to every job watching a vertex.
#[derive(Default)]
struct Broadcast {
    sinks: Mutex<Vec<Arc<dyn Progress>>>,
}

impl Broadcast {
    fn add(&self, sink: Arc<dyn Progress>) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        if !sinks.iter().any(|s| Arc::ptr_eq(s, &sink)) {
            sinks.push(sink);
        }
    }

    fn send(&self, event: Event) {
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for sink in sinks {
            sink.event(event.clone());
        }
    }
}

/// A vertex's cache key (`None` when uncacheable) and the outputs found under it.
type KeyAndCached<R> = (Option<Digest>, Option<Vec<R>>);

/// The shared state of one vertex digest.
///
/// Each stage of a vertex's life is a `OnceCell`: whoever gets there first does the work,
/// everyone else waits for it. If the future doing it is dropped, the next waiter takes over.
struct State<R> {
    vertex: Arc<Vertex<R>>,
    inputs: Vec<(Arc<State<R>>, usize)>,
    progress: Arc<Broadcast>,
    cache_map: OnceCell<Result<Arc<CacheMap<R>>, SolveError>>,
    /// The cache key (`None` when uncacheable) and the cached outputs found under it.
    key: OnceCell<Result<KeyAndCached<R>, SolveError>>,
    result: OnceCell<Result<Vec<R>, SolveError>>,
}

/// The engine-wide solver: shares vertex states between concurrent jobs.
pub struct Solver<R> {
    cache: Arc<dyn CacheStore<R>>,
    active: Mutex<HashMap<Digest, Weak<State<R>>>>,
    /// Permits for every executing op, when bounded.
    all: Option<Semaphore>,
    /// Permits for compute work.
    compute: Semaphore,
}

/// Permits held while an op executes; released on drop (also when the solve is cancelled).
struct Permits<'a> {
    _all: Option<SemaphorePermit<'a>>,
    _compute: Option<SemaphorePermit<'a>>,
}

impl<R: Clone + Send + Sync + 'static> Solver<R> {
    /// A solver storing results in `cache`, with the default [`Limits`] of this machine.
    pub fn new(cache: Arc<dyn CacheStore<R>>) -> Solver<R> {
        Self::with_limits(cache, Limits::for_this_machine())
    }

    /// A solver storing results in `cache`, running ops within `limits`.
    pub fn with_limits(cache: Arc<dyn CacheStore<R>>, limits: Limits) -> Solver<R> {
        Solver {
            cache,
            active: Mutex::new(HashMap::new()),
            all: limits.max_parallelism.map(|n| Semaphore::new(n.max(1))),
            compute: Semaphore::new(limits.compute.max(1)),
        }
    }

    /// Waits for the permits an op of `resource` needs. The overall permit is always taken
    /// first, so two ops never wait on each other's permits.
    async fn permits(&self, resource: Resource) -> Permits<'_> {
        // The semaphores are never closed, so acquiring cannot fail.
        let all = match &self.all {
            Some(all) => all.acquire().await.ok(),
            None => None,
        };
        let compute = match resource {
            Resource::Compute => self.compute.acquire().await.ok(),
            Resource::External => None,
        };
        Permits {
            _all: all,
            _compute: compute,
        }
    }

    /// Starts a job reporting to `progress`.
    pub fn job(self: &Arc<Self>, progress: Arc<dyn Progress>) -> Job<R> {
        Job {
            solver: self.clone(),
            progress,
            states: HashMap::new(),
        }
    }

    /// Finds or creates the shared state of `vertex` (and, recursively, its inputs).
    fn state(
        &self,
        vertex: &Arc<Vertex<R>>,
        progress: &Arc<dyn Progress>,
        job: &mut HashMap<Digest, Arc<State<R>>>,
    ) -> Arc<State<R>> {
        if let Some(s) = job.get(&vertex.digest) {
            return s.clone();
        }
        // A no-cache request must not join a cached one: give it its own identity.
        let identity = if vertex.ignore_cache {
            Digest::of(format!("{}:ignore-cache", vertex.digest).as_bytes())
        } else {
            vertex.digest.clone()
        };
        let inputs: Vec<(Arc<State<R>>, usize)> = vertex
            .inputs
            .iter()
            .map(|(v, i)| (self.state(v, progress, job), *i))
            .collect();
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.retain(|_, w| w.strong_count() > 0);
        let state = match active.get(&identity).and_then(Weak::upgrade) {
            Some(existing) => existing,
            None => {
                let state = Arc::new(State {
                    vertex: vertex.clone(),
                    inputs,
                    progress: Arc::new(Broadcast::default()),
                    cache_map: OnceCell::new(),
                    key: OnceCell::new(),
                    result: OnceCell::new(),
                });
                active.insert(identity, Arc::downgrade(&state));
                state
            }
        };
        drop(active);
        state.progress.add(progress.clone());
        job.insert(vertex.digest.clone(), state.clone());
        state
    }

    fn context(state: &State<R>) -> Context {
        Context {
            vertex: state.vertex.digest.clone(),
            progress: state.progress.clone(),
        }
    }

    fn fail(state: &State<R>, error: OpError) -> SolveError {
        SolveError {
            vertex: state.vertex.digest.clone(),
            name: state.vertex.name.clone(),
            error,
        }
    }

    async fn cache_map(&self, state: &Arc<State<R>>) -> Result<Arc<CacheMap<R>>, SolveError> {
        state
            .cache_map
            .get_or_init(|| async {
                let ctx = Self::context(state);
                let map = state
                    .vertex
                    .op
                    .cache_map(&ctx)
                    .await
                    .map_err(|e| Self::fail(state, e))?;
                if map.deps.len() != state.inputs.len() {
                    let message = format!(
                        "op returned {} cache deps for {} inputs",
                        map.deps.len(),
                        state.inputs.len()
                    );
                    return Err(Self::fail(state, Arc::new(std::io::Error::other(message))));
                }
                Ok(Arc::new(map))
            })
            .await
            .clone()
    }

    fn key<'a>(&'a self, state: &'a Arc<State<R>>) -> BoxFuture<'a, Result<Option<Digest>, SolveError>> {
        Box::pin(async move {
            let (key, _) = self.key_and_cached(state).await?;
            Ok(key)
        })
    }

    async fn key_and_cached(
        &self,
        state: &Arc<State<R>>,
    ) -> Result<(Option<Digest>, Option<Vec<R>>), SolveError> {
        state
            .key
            .get_or_init(|| async {
                let map = self.cache_map(state).await?;
                let keyed = |key: Option<Digest>, cached: bool, deps: Vec<KeyDep>| Event::Keyed {
                    vertex: state.vertex.digest.clone(),
                    name: state.vertex.name.clone(),
                    key,
                    cached,
                    ignore_cache: state.vertex.ignore_cache,
                    facts: Arc::new(map.facts.clone()),
                    deps,
                };
                if !map.cacheable {
                    state.progress.send(keyed(None, false, Vec::new()));
                    return Ok((None, None));
                }
                let parts = try_join_all(state.inputs.iter().zip(map.deps.iter()).map(
                    |((input, index), dep)| {
                        let content = dep.content.clone();
                        async move {
                            match content {
                                Some(content) => {
                                    let outputs = self.result(input).await?;
                                    let output = outputs
                                        .get(*index)
                                        .cloned()
                                        .ok_or_else(|| missing_output(input, *index))?;
                                    let digest = {
                                        let _permits = self.permits(Resource::Compute).await;
                                        content(output).await.map_err(|e| Self::fail(state, e))?
                                    };
                                    Ok::<_, SolveError>(Some(KeyPart::Content(digest)))
                                }
                                None => Ok(self.key(input).await?.map(KeyPart::Key)),
                            }
                        }
                    },
                ));
                // While a content key waits for an input to run, the inputs that will have to
                // run anyway (keyed and not in the cache) start too, instead of after this key
                // is known: a `COPY --from=build` then does not hold up its stage's own steps.
                // (Only if this vertex turns out cached is that work unneeded, which takes its
                // result having outlived its input's, rare since pruning removes leaves first.)
                // Their failures surface when this vertex runs them.
                let prefetch = async {
                    if !map.deps.iter().any(|dep| dep.content.is_some()) {
                        return;
                    }
                    let needed = state
                        .inputs
                        .iter()
                        .zip(map.deps.iter())
                        .filter(|(_, dep)| dep.content.is_none())
                        .map(|((input, _), _)| async move {
                            if let Ok((Some(_), None)) = self.key_and_cached(input).await {
                                let _ = self.result(input).await;
                            }
                        });
                    futures_util::future::join_all(needed).await;
                };
                let (parts, ()) = futures_util::future::join(parts, prefetch).await;
                let parts = parts?;
                let deps: Vec<KeyDep> = state
                    .inputs
                    .iter()
                    .zip(map.deps.iter())
                    .zip(parts)
                    .map(|(((input, index), dep), part)| KeyDep {
                        input: input.vertex.digest.clone(),
                        input_name: input.vertex.name.clone(),
                        output: *index,
                        selector: dep.selector.clone(),
                        part,
                    })
                    .collect();
                // An input without a key (and without content hashing) makes this op
                // uncacheable: nothing identifies what it would read.
                if deps.iter().any(|dep| dep.part.is_none()) {
                    state.progress.send(keyed(None, false, deps));
                    return Ok((None, None));
                }
                let mut text = format!("{KEY_VERSION}\n{}\n", map.digest);
                for (i, dep) in deps.iter().enumerate() {
                    let selector = dep.selector.as_ref().map(Digest::to_string).unwrap_or_default();
                    let part = match &dep.part {
                        Some(KeyPart::Key(k)) => format!("key:{k}:{}", dep.output),
                        Some(KeyPart::Content(d)) => format!("content:{d}"),
                        None => String::new(),
                    };
                    text.push_str(&format!("{i} {part} {selector}\n"));
                }
                let key = Digest::of(text.as_bytes());
                let cached = if state.vertex.ignore_cache {
                    None
                } else {
                    self.cache.load(&key).await.map_err(|e| Self::fail(state, e))?
                };
                state
                    .progress
                    .send(keyed(Some(key.clone()), cached.is_some(), deps));
                if cached.is_some() {
                    state.progress.send(Event::Cached {
                        vertex: state.vertex.digest.clone(),
                        name: state.vertex.name.clone(),
                    });
                }
                Ok((Some(key), cached))
            })
            .await
            .clone()
    }

    fn result<'a>(&'a self, state: &'a Arc<State<R>>) -> BoxFuture<'a, Result<Vec<R>, SolveError>> {
        Box::pin(async move {
            state
                .result
                .get_or_init(|| async {
                    let (key, cached) = self.key_and_cached(state).await?;
                    if let Some(outputs) = cached {
                        return Ok(outputs);
                    }
                    let inputs = try_join_all(state.inputs.iter().map(|(input, index)| async move {
                        let outputs = self.result(input).await?;
                        outputs
                            .get(*index)
                            .cloned()
                            .ok_or_else(|| missing_output(input, *index))
                    }))
                    .await?;
                    let ctx = Self::context(state);
                    let vertex = &state.vertex;
                    let permits = self.permits(vertex.op.resource()).await;
                    state.progress.send(Event::Started {
                        vertex: vertex.digest.clone(),
                        name: vertex.name.clone(),
                    });
                    let started = Instant::now();
                    let outcome = vertex.op.exec(&ctx, inputs).await;
                    drop(permits);
                    state.progress.send(Event::Completed {
                        vertex: vertex.digest.clone(),
                        name: vertex.name.clone(),
                        duration: started.elapsed(),
                        error: outcome.as_ref().err().map(|e| e.to_string()),
                    });
                    let outputs = outcome.map_err(|e| Self::fail(state, e))?;
                    if let Some(key) = key {
                        self.cache
                            .save(&key, &outputs)
                            .await
                            .map_err(|e| Self::fail(state, e))?;
                    }
                    Ok(outputs)
                })
                .await
                .clone()
        })
    }
}

fn missing_output<R>(state: &State<R>, index: usize) -> SolveError {
    let message = format!("vertex has no output {index}");
    SolveError {
        vertex: state.vertex.digest.clone(),
        name: state.vertex.name.clone(),
        error: Arc::new(std::io::Error::other(message)),
    }
}

/// One build's view of the solver: the vertices it loaded and where its progress goes.
pub struct Job<R> {
    solver: Arc<Solver<R>>,
    progress: Arc<dyn Progress>,
    states: HashMap<Digest, Arc<State<R>>>,
}

impl<R: Clone + Send + Sync + 'static> Job<R> {
    /// Solves output `index` of `root`, returning its result.
    pub async fn solve(&mut self, root: &Arc<Vertex<R>>, index: usize) -> Result<R, SolveError> {
        let state = self.solver.state(root, &self.progress, &mut self.states);
        let outputs = self.solver.result(&state).await?;
        outputs
            .get(index)
            .cloned()
            .ok_or_else(|| missing_output(&state, index))
    }

    /// The cache key computed for `vertex` in this job, if it was computed and is cacheable.
    pub fn cache_key(&self, vertex: &Digest) -> Option<Digest> {
        let state = self.states.get(vertex)?;
        match state.key.get()? {
            Ok((key, _)) => key.clone(),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
