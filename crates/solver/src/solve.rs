//! The solver proper: vertex states shared between jobs, cache keys, and executions shared by
//! cache key.
//!
//! A [`State`] exists once per vertex identity (digest, salt, input identities) among the jobs
//! alive in a solver. Its three stages (cache map, cache key with the cache lookup, result) are
//! each a [`Shared`] task: started by the first job that needs it, counted, aborted when no job
//! waits any more. The result stage of a vertex that misses the cache joins the [`Execution`] of
//! its cache key, so vertices with equal keys run once whatever their digests.
//!
//! Nothing here recurses over the graph on the stack: loading a job's graph is an explicit
//! post-order walk, and every stage is a task of its own that awaits its inputs' tasks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use futures_util::future::{join, join_all, try_join_all};
use oci::Digest;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::shared::Shared;
use crate::watch::{Target, Targets, Watchers};
use crate::{
    BoxFuture, CacheMap, CacheStore, Context, Event, Internal, KEY_VERSION, KeyDep, KeyPart, LINK_VERSION,
    Limits, OpError, Progress, Resource, SolveError, Vertex,
};

/// A vertex's cache key (`None` when uncacheable) and the outputs found under it.
type KeyAndCached<R> = (Option<Digest>, Option<Vec<R>>);

/// The outcome of an execution: the outputs, or the failure and whether the op itself failed
/// (`true`) rather than one of its inputs.
type Outcome<R> = Result<Vec<R>, (SolveError, bool)>;

/// The shared state of one vertex identity.
struct State<R, S> {
    vertex: Arc<Vertex<R, S>>,
    inputs: Vec<(Arc<State<R, S>>, usize)>,
    /// The digests of the vertex's inputs, for progress.
    input_digests: Arc<Vec<Digest>>,
    watchers: Arc<Watchers<S>>,
    cache_map: Arc<Shared<Result<Arc<CacheMap<R>>, SolveError>>>,
    key: Arc<Shared<Result<KeyAndCached<R>, SolveError>>>,
    result: Arc<Shared<Result<Vec<R>, SolveError>>>,
    /// The execution this vertex joined, kept while the vertex lives so that a vertex with the
    /// same key that asks a moment later still finds its outcome.
    execution: Mutex<Option<Arc<Execution<R, S>>>>,
}

impl<R, S> Drop for State<R, S> {
    /// Drops the states under this one by an explicit walk, as [`Vertex`]'s drop does.
    fn drop(&mut self) {
        let mut stack: Vec<Arc<State<R, S>>> = self.inputs.drain(..).map(|(s, _)| s).collect();
        while let Some(state) = stack.pop() {
            if let Ok(mut state) = Arc::try_unwrap(state) {
                stack.extend(state.inputs.drain(..).map(|(s, _)| s));
            }
        }
    }
}

/// One run of an op, shared by every vertex with its cache key.
struct Execution<R, S> {
    outcome: Arc<Shared<Outcome<R>>>,
    targets: Arc<Targets<S>>,
}

/// Identities mapped to live states (or executions), with dead entries swept when the map has
/// doubled since the last sweep: lookups stay O(1), the sweep is amortised.
struct LiveMap<T> {
    map: HashMap<Digest, Weak<T>>,
    sweep_at: usize,
}

impl<T> LiveMap<T> {
    fn new() -> LiveMap<T> {
        LiveMap {
            map: HashMap::new(),
            sweep_at: 64,
        }
    }

    fn get(&self, id: &Digest) -> Option<Arc<T>> {
        self.map.get(id).and_then(Weak::upgrade)
    }

    fn insert(&mut self, id: Digest, value: &Arc<T>) {
        self.map.insert(id, Arc::downgrade(value));
        if self.map.len() >= self.sweep_at {
            self.map.retain(|_, w| w.strong_count() > 0);
            self.sweep_at = (self.map.len() * 2).max(64);
        }
    }

    #[cfg(test)]
    fn live(&self) -> usize {
        self.map.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// The engine-wide solver: shares vertex states and executions between concurrent jobs.
pub struct Solver<R, S> {
    cache: Arc<dyn CacheStore<R, S>>,
    states: Mutex<LiveMap<State<R, S>>>,
    executions: Mutex<LiveMap<Execution<R, S>>>,
    /// Permits for every executing op, when bounded.
    all: Option<Semaphore>,
    /// Permits for compute work.
    compute: Semaphore,
    jobs: AtomicU64,
}

/// Permits held while an op executes; released on drop (also when the work is cancelled).
struct Permits<'a> {
    _all: Option<SemaphorePermit<'a>>,
    _compute: Option<SemaphorePermit<'a>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn fail<R, S>(state: &State<R, S>, error: OpError) -> SolveError {
    SolveError {
        vertex: state.vertex.digest.clone(),
        name: state.vertex.name.clone(),
        error,
    }
}

fn panicked<R, S>(state: &State<R, S>) -> SolveError {
    fail(state, Arc::new(Internal::Panicked))
}

/// Output `index` of `outputs`, or an error naming the vertex that lacks it.
fn output<R: Clone, S>(state: &State<R, S>, outputs: &[R], index: usize) -> Result<R, SolveError> {
    outputs
        .get(index)
        .cloned()
        .ok_or_else(|| fail(state, Arc::new(Internal::NoOutput(index))))
}

impl<R, S> Solver<R, S>
where
    R: Clone + Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    /// A solver storing results in `cache`, with the default [`Limits`] of this machine.
    pub fn new(cache: Arc<dyn CacheStore<R, S>>) -> Solver<R, S> {
        Self::with_limits(cache, Limits::for_this_machine())
    }

    /// A solver storing results in `cache`, running ops within `limits`.
    pub fn with_limits(cache: Arc<dyn CacheStore<R, S>>, limits: Limits) -> Solver<R, S> {
        Solver {
            cache,
            states: Mutex::new(LiveMap::new()),
            executions: Mutex::new(LiveMap::new()),
            all: limits.max_parallelism.map(|n| Semaphore::new(n.max(1))),
            compute: Semaphore::new(limits.compute.max(1)),
            jobs: AtomicU64::new(1),
        }
    }

    /// Starts a job reporting to `progress`, whose ops may use `session`.
    pub fn job(self: &Arc<Self>, progress: Arc<dyn Progress>, session: Arc<S>) -> Job<R, S> {
        Job {
            solver: self.clone(),
            id: self.jobs.fetch_add(1, Ordering::Relaxed),
            progress,
            session,
            loaded: HashMap::new(),
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

    /// Finds the live state of `identity`, or makes one.
    fn state(
        &self,
        identity: Digest,
        vertex: &Arc<Vertex<R, S>>,
        inputs: Vec<(Arc<State<R, S>>, usize)>,
    ) -> Arc<State<R, S>> {
        let mut states = lock(&self.states);
        if let Some(state) = states.get(&identity) {
            return state;
        }
        let state = Arc::new(State {
            vertex: vertex.clone(),
            input_digests: Arc::new(vertex.inputs.iter().map(|(v, _)| v.digest.clone()).collect()),
            inputs,
            watchers: Arc::new(Watchers::new()),
            cache_map: Arc::new(Shared::new()),
            key: Arc::new(Shared::new()),
            result: Arc::new(Shared::new()),
            execution: Mutex::new(None),
        });
        states.insert(identity, &state);
        state
    }

    fn targets(state: &State<R, S>) -> Arc<Targets<S>> {
        Arc::new(Targets::new(Self::target(state)))
    }

    fn target(state: &State<R, S>) -> Target<S> {
        Target {
            vertex: state.vertex.digest.clone(),
            name: state.vertex.name.clone(),
            inputs: state.input_digests.clone(),
            watchers: state.watchers.clone(),
        }
    }

    /// The cache map of `state`, computed once.
    fn cache_map(
        self: &Arc<Self>,
        state: &Arc<State<R, S>>,
    ) -> BoxFuture<'static, Result<Arc<CacheMap<R>>, SolveError>> {
        let state = state.clone();
        Box::pin(async move {
            let work = state.clone();
            let start = move || -> BoxFuture<'static, _> {
                Box::pin(async move {
                    let ctx = Context::new(work.vertex.digest.clone(), Self::targets(&work));
                    let map = work.vertex.op.cache_map(&ctx).await.map_err(|e| fail(&work, e))?;
                    if map.deps.len() != work.inputs.len() {
                        let internal = Internal::DepCount {
                            deps: map.deps.len(),
                            inputs: work.inputs.len(),
                        };
                        return Err(fail(&work, Arc::new(internal)));
                    }
                    Ok(Arc::new(map))
                })
            };
            state
                .cache_map
                .get(start)
                .await
                .unwrap_or_else(|_| Err(panicked(&state)))
        })
    }

    /// The cache key of `state` and what the cache holds under it, computed once.
    fn key(
        self: &Arc<Self>,
        state: &Arc<State<R, S>>,
    ) -> BoxFuture<'static, Result<KeyAndCached<R>, SolveError>> {
        let (solver, state) = (self.clone(), state.clone());
        Box::pin(async move {
            let (work_solver, work) = (solver.clone(), state.clone());
            let start = move || -> BoxFuture<'static, _> {
                Box::pin(async move { work_solver.compute_key(&work).await })
            };
            state
                .key
                .get(start)
                .await
                .unwrap_or_else(|_| Err(panicked(&state)))
        })
    }

    /// The result of `state`, computed once.
    fn result(self: &Arc<Self>, state: &Arc<State<R, S>>) -> BoxFuture<'static, Result<Vec<R>, SolveError>> {
        let (solver, state) = (self.clone(), state.clone());
        Box::pin(async move {
            let (work_solver, work) = (solver.clone(), state.clone());
            let start = move || -> BoxFuture<'static, _> {
                Box::pin(async move { work_solver.compute_result(&work).await })
            };
            state
                .result
                .get(start)
                .await
                .unwrap_or_else(|_| Err(panicked(&state)))
        })
    }

    /// How one input enters the key: its own key, or the digest of its content.
    async fn key_part(
        self: &Arc<Self>,
        state: &Arc<State<R, S>>,
        input: &Arc<State<R, S>>,
        index: usize,
        dep: &crate::Dep<R>,
    ) -> Result<Option<KeyPart>, SolveError> {
        let Some(content) = dep.content.clone() else {
            return Ok(self.key(input).await?.0.map(KeyPart::Key));
        };
        let outputs = self.result(input).await?;
        let output = output(input, &outputs, index)?;
        let _permits = self.permits(Resource::Compute).await;
        let digest = content(output).await.map_err(|e| fail(state, e))?;
        Ok(Some(KeyPart::Content(digest)))
    }

    /// While a content key waits for an input to run, the inputs that will have to run anyway
    /// (keyed and not in the cache) start too, instead of after this key is known: a
    /// `COPY --from=build` then does not hold up its stage's own steps. (Only if this vertex
    /// turns out cached is that work unneeded.) Their failures surface when this vertex runs
    /// them.
    async fn prefetch(self: &Arc<Self>, state: &Arc<State<R, S>>, map: &CacheMap<R>) {
        if !map.deps.iter().any(|dep| dep.content.is_some()) {
            return;
        }
        let needed = state
            .inputs
            .iter()
            .zip(map.deps.iter())
            .filter(|(_, dep)| dep.content.is_none())
            .map(|((input, _), _)| async move {
                if let Ok((Some(_), None)) = self.key(input).await {
                    let _ = self.result(input).await;
                }
            });
        join_all(needed).await;
    }

    async fn compute_key(self: &Arc<Self>, state: &Arc<State<R, S>>) -> Result<KeyAndCached<R>, SolveError> {
        let map = self.cache_map(state).await?;
        let vertex = &state.vertex;
        let keyed =
            |key: Option<Digest>, cached: bool, deps: Vec<KeyDep>, link: Option<Digest>| Event::Keyed {
                vertex: vertex.digest.clone(),
                name: vertex.name.clone(),
                key,
                cached,
                ignore_cache: vertex.ignore_cache,
                facts: Arc::new(map.facts.clone()),
                deps,
                link,
            };
        if !map.cacheable {
            state.watchers.send(&keyed(None, false, Vec::new(), None));
            return Ok((None, None));
        }
        let ctx = Context::new(vertex.digest.clone(), Self::targets(state));
        let early_link = if self.cache.has_links(&ctx) && !vertex.ignore_cache {
            let link = self.link(state, &map).await?;
            if let Some((link, deps)) = &link
                && let Some((key, outputs)) = self.linked(state, link).await?
            {
                state
                    .watchers
                    .send(&keyed(Some(key.clone()), true, deps.clone(), Some(link.clone())));
                self.send_cached(state);
                return Ok((Some(key), Some(outputs)));
            }
            Some(link.map(|(link, _)| link))
        } else {
            None
        };
        let parts = try_join_all(
            state
                .inputs
                .iter()
                .zip(map.deps.iter())
                .map(|((input, index), dep)| self.key_part(state, input, *index, dep)),
        );
        let late_link = async {
            match &early_link {
                Some(link) => Ok(link.clone()),
                None => self.link(state, &map).await.map(|l| l.map(|(link, _)| link)),
            }
        };
        let ((parts, ()), link) = join(join(parts, self.prefetch(state, &map)), late_link).await;
        let link = link?;
        let deps: Vec<KeyDep> = state
            .inputs
            .iter()
            .zip(map.deps.iter())
            .zip(parts?)
            .map(|(((input, index), dep), part)| KeyDep {
                input: input.vertex.digest.clone(),
                input_name: input.vertex.name.clone(),
                output: *index,
                selector: dep.selector.clone(),
                part,
            })
            .collect();
        // An input without a key (and without content hashing) makes this op uncacheable:
        // nothing identifies what it would read.
        if deps.iter().any(|dep| dep.part.is_none()) {
            state.watchers.send(&keyed(None, false, deps, None));
            return Ok((None, None));
        }
        let key = cache_key(&map.digest, vertex.salt.as_ref(), &deps);
        let cached = if vertex.ignore_cache {
            None
        } else {
            self.cache.load(&key, &ctx).await.map_err(|e| fail(state, e))?
        };
        state
            .watchers
            .send(&keyed(Some(key.clone()), cached.is_some(), deps, link));
        if cached.is_some() {
            self.send_cached(state);
        }
        Ok((Some(key), cached))
    }

    fn send_cached(&self, state: &State<R, S>) {
        state.watchers.send(&Event::Cached {
            vertex: state.vertex.digest.clone(),
            name: state.vertex.name.clone(),
            inputs: state.input_digests.to_vec(),
        });
    }

    /// The link key of a vertex with content deps whose inputs all have keys, with its deps as
    /// keys; `None` otherwise.
    async fn link(
        self: &Arc<Self>,
        state: &Arc<State<R, S>>,
        map: &CacheMap<R>,
    ) -> Result<Option<(Digest, Vec<KeyDep>)>, SolveError> {
        if !map.deps.iter().any(|dep| dep.content.is_some()) {
            return Ok(None);
        }
        let keys = try_join_all(state.inputs.iter().map(|(input, _)| self.key(input))).await?;
        let mut deps = Vec::with_capacity(keys.len());
        for (((input, index), dep), (key, _)) in state.inputs.iter().zip(map.deps.iter()).zip(keys) {
            let Some(key) = key else {
                return Ok(None);
            };
            deps.push(KeyDep {
                input: input.vertex.digest.clone(),
                input_name: input.vertex.name.clone(),
                output: *index,
                selector: dep.selector.clone(),
                part: Some(KeyPart::Key(key)),
            });
        }
        let link = link_key(&map.digest, state.vertex.salt.as_ref(), &deps);
        Ok(Some((link, deps)))
    }

    /// The key and outputs a link key stands for in the cache, if it resolves and the outputs
    /// are there.
    async fn linked(
        self: &Arc<Self>,
        state: &Arc<State<R, S>>,
        link: &Digest,
    ) -> Result<Option<(Digest, Vec<R>)>, SolveError> {
        let ctx = Context::new(state.vertex.digest.clone(), Self::targets(state));
        let Some(key) = self
            .cache
            .resolve_link(link, &ctx)
            .await
            .map_err(|e| fail(state, e))?
        else {
            return Ok(None);
        };
        let outputs = self.cache.load(&key, &ctx).await.map_err(|e| fail(state, e))?;
        Ok(outputs.map(|outputs| (key, outputs)))
    }

    /// The execution `state` joins: the live one of its key, or a new one.
    fn execution(&self, key: Option<&Digest>, state: &Arc<State<R, S>>) -> Arc<Execution<R, S>> {
        let vertex = &state.vertex;
        let new = || {
            Arc::new(Execution {
                outcome: Arc::new(Shared::new()),
                targets: Self::targets(state),
            })
        };
        let Some(key) = key else {
            return new();
        };
        // A no-cache vertex must not take over work of cache-using ones, nor they its.
        let id = if vertex.ignore_cache {
            Digest::of(format!("{key}:ignore-cache").as_bytes())
        } else {
            key.clone()
        };
        let execution = {
            let mut executions = lock(&self.executions);
            match executions.get(&id) {
                Some(execution) => execution,
                None => {
                    let execution = new();
                    executions.insert(id, &execution);
                    execution
                }
            }
        };
        execution.targets.join(Self::target(state));
        execution
    }

    async fn compute_result(self: &Arc<Self>, state: &Arc<State<R, S>>) -> Result<Vec<R>, SolveError> {
        let (key, cached) = self.key(state).await?;
        if let Some(outputs) = cached {
            return Ok(outputs);
        }
        let execution = self.execution(key.as_ref(), state);
        *lock(&state.execution) = Some(execution.clone());
        let (solver, owner, targets) = (self.clone(), state.clone(), execution.targets.clone());
        let start = move || -> BoxFuture<'static, Outcome<R>> {
            Box::pin(async move { solver.run(&owner, key, targets).await })
        };
        match execution.outcome.get(start).await {
            Ok(Ok(outputs)) => Ok(outputs),
            // The op failed: whichever vertex ran it, for this job it is this vertex that failed.
            Ok(Err((error, true))) => Err(fail(state, error.error)),
            Ok(Err((error, false))) => Err(error),
            Err(_) => Err(panicked(state)),
        }
    }

    /// Runs the op of `owner` for everyone waiting on its execution.
    async fn run(
        self: &Arc<Self>,
        owner: &Arc<State<R, S>>,
        key: Option<Digest>,
        targets: Arc<Targets<S>>,
    ) -> Outcome<R> {
        let vertex = &owner.vertex;
        let own = |e: OpError| (fail(owner, e), true);
        // A vertex with this key may have finished and been stored between the lookup of this
        // one and now: never run the same work twice.
        let ctx = Context::new(vertex.digest.clone(), targets.clone());
        if let Some(key) = key.as_ref().filter(|_| !vertex.ignore_cache)
            && let Some(outputs) = self.cache.load(key, &ctx).await.map_err(own)?
        {
            targets.send(|target| Event::Cached {
                vertex: target.vertex.clone(),
                name: target.name.clone(),
                inputs: target.inputs.to_vec(),
            });
            return Ok(outputs);
        }
        let inputs = try_join_all(owner.inputs.iter().map(|(input, index)| async move {
            let outputs = self.result(input).await?;
            output(input, &outputs, *index)
        }))
        .await
        .map_err(|e| (e, false))?;
        let permits = self.permits(vertex.op.resource()).await;
        targets.start();
        let started = Instant::now();
        let outcome = vertex.op.exec(&ctx, inputs).await;
        targets.complete(
            started.elapsed(),
            outcome.as_ref().err().map(|e| oci::error_chain(e.as_ref())),
        );
        // Reported complete before the permits go, so no two steps are ever seen running
        // beyond the limits.
        drop(permits);
        let outputs = outcome.map_err(own)?;
        if let Some(key) = &key {
            self.cache.save(key, &outputs).await.map_err(own)?;
        }
        Ok(outputs)
    }

    /// How many vertex states are alive (tests).
    #[cfg(test)]
    pub(crate) fn live_states(&self) -> usize {
        lock(&self.states).live()
    }
}

/// `key(v) = H(version, op digest, salt, per input: its key and output index, or its content)`.
fn cache_key(digest: &Digest, salt: Option<&Digest>, deps: &[KeyDep]) -> Digest {
    let mut text = format!("{KEY_VERSION}\n{digest}\n");
    if let Some(salt) = salt {
        text.push_str(&format!("salt:{salt}\n"));
    }
    for (i, dep) in deps.iter().enumerate() {
        let selector = dep.selector.as_ref().map(Digest::to_string).unwrap_or_default();
        let part = match &dep.part {
            Some(KeyPart::Key(k)) => format!("key:{k}:{}", dep.output),
            Some(KeyPart::Content(d)) => format!("content:{d}"),
            None => String::new(),
        };
        text.push_str(&format!("{i} {part} {selector}\n"));
    }
    Digest::of(text.as_bytes())
}

/// The link key of a vertex with content deps: its key as if every input entered by its own key
/// (`deps` all [`KeyPart::Key`]), under its own version so it never equals a real key.
fn link_key(digest: &Digest, salt: Option<&Digest>, deps: &[KeyDep]) -> Digest {
    let key = cache_key(digest, salt, deps);
    Digest::of(format!("{LINK_VERSION}\n{key}\n").as_bytes())
}

/// What identifies a vertex's state: its digest when nothing else is involved, otherwise a
/// digest of its digest, salt and its inputs' identities; a no-cache request never joins a
/// cache-using one.
fn identity<R, S>(
    vertex: &Vertex<R, S>,
    inputs: &[(Arc<State<R, S>>, usize)],
    input_ids: &[&Digest],
) -> Digest {
    let plain = vertex.salt.is_none()
        && inputs
            .iter()
            .zip(input_ids)
            .all(|((input, _), id)| input.vertex.digest == **id);
    let identity = if plain {
        vertex.digest.clone()
    } else {
        let mut text = format!("identity\n{}\n", vertex.digest);
        if let Some(salt) = &vertex.salt {
            text.push_str(&format!("salt:{salt}\n"));
        }
        for ((_, index), id) in inputs.iter().zip(input_ids) {
            text.push_str(&format!("{id}:{index}\n"));
        }
        Digest::of(text.as_bytes())
    };
    if vertex.ignore_cache {
        Digest::of(format!("{identity}:ignore-cache").as_bytes())
    } else {
        identity
    }
}

/// One build's view of the solver: the vertices it loaded, where its progress goes and the
/// session its ops may use. Dropping it stops its watching (its sink and session leave every
/// vertex); dropping a [`Job::solve`] future leaves the waits it was in.
pub struct Job<R, S> {
    solver: Arc<Solver<R, S>>,
    id: u64,
    progress: Arc<dyn Progress>,
    session: Arc<S>,
    /// By vertex address: the states of the vertices this job loaded, with their identities
    /// (and the vertices, so that no address is reused while it is a key here).
    loaded: HashMap<usize, Loaded<R, S>>,
}

/// A vertex a job loaded: its state, its identity, and the vertex itself.
struct Loaded<R, S> {
    state: Arc<State<R, S>>,
    identity: Digest,
    _vertex: Arc<Vertex<R, S>>,
}

impl<R, S> Job<R, S>
where
    R: Clone + Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    /// Loads the graph under `root` (a post-order walk, no recursion) and returns its state.
    fn load(&mut self, root: &Arc<Vertex<R, S>>) -> Arc<State<R, S>> {
        let address = |v: &Arc<Vertex<R, S>>| Arc::as_ptr(v) as *const () as usize;
        let mut stack = vec![(root.clone(), false)];
        while let Some((vertex, expanded)) = stack.pop() {
            if self.loaded.contains_key(&address(&vertex)) {
                continue;
            }
            if !expanded {
                stack.push((vertex.clone(), true));
                for (input, _) in vertex.inputs.iter().rev() {
                    if !self.loaded.contains_key(&address(input)) {
                        stack.push((input.clone(), false));
                    }
                }
                continue;
            }
            let loaded: Vec<&Loaded<R, S>> = vertex
                .inputs
                .iter()
                .map(|(input, _)| &self.loaded[&address(input)])
                .collect();
            let ids: Vec<&Digest> = loaded.iter().map(|l| &l.identity).collect();
            let states: Vec<(Arc<State<R, S>>, usize)> = loaded
                .iter()
                .zip(&vertex.inputs)
                .map(|(l, (_, index))| (l.state.clone(), *index))
                .collect();
            let identity = identity(&vertex, &states, &ids);
            let state = self.solver.state(identity.clone(), &vertex, states);
            state.watchers.add(self.id, &self.progress, &self.session);
            self.loaded.insert(
                address(&vertex),
                Loaded {
                    state,
                    identity,
                    _vertex: vertex,
                },
            );
        }
        self.loaded[&address(root)].state.clone()
    }

    /// Solves output `index` of `root`, returning its result.
    pub async fn solve(&mut self, root: &Arc<Vertex<R, S>>, index: usize) -> Result<R, SolveError> {
        let state = self.load(root);
        let outputs = self.solver.result(&state).await?;
        output(&state, &outputs, index)
    }
}

impl<R, S> Drop for Job<R, S> {
    fn drop(&mut self) {
        for loaded in self.loaded.values() {
            loaded.state.watchers.remove(self.id);
        }
    }
}
