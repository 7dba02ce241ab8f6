//! Solver tests with toy ops that count their executions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// Counts executions per op name and the peak number of ops running at once.
#[derive(Default)]
struct Counters {
    runs: Mutex<HashMap<String, usize>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    dropped: AtomicUsize,
}

impl Counters {
    fn runs(&self, name: &str) -> usize {
        self.runs.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.runs.lock().unwrap().values().sum()
    }
    /// The most ops that ran at once.
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
    /// Ops still running (started and not finished).
    fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
    /// Ops whose execution was dropped before it finished.
    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// A toy op: its output is its name followed by its inputs' outputs.
struct Toy {
    name: String,
    /// Changes what the op "does".
    version: u32,
    counters: Arc<Counters>,
    /// How long exec waits (lets tests observe overlap and cancellation).
    wait: Duration,
    cacheable: bool,
    /// Inputs whose content (output text) replaces their key.
    content_inputs: Vec<usize>,
    fail: bool,
    /// For uncacheable sources: what they produce (like a local directory's files).
    content: Arc<Mutex<String>>,
    resource: Resource,
}

struct DropGuard(Arc<Counters>, bool);
impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Op<String, ()> for Toy {
    fn resource(&self) -> Resource {
        self.resource
    }

    fn cache_map<'a>(&'a self, _ctx: &'a Context<()>) -> BoxFuture<'a, Result<CacheMap<String>, OpError>> {
        Box::pin(async move {
            let digest = Digest::of(format!("{}:{}", self.name, self.version).as_bytes());
            Ok(CacheMap {
                digest,
                deps: Vec::new(),
                cacheable: self.cacheable,
                facts: vec![("name".into(), self.name.clone())],
            })
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<()>,
        inputs: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, OpError>> {
        Box::pin(async move {
            *self
                .counters
                .runs
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default() += 1;
            let now = self.counters.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.counters.peak.fetch_max(now, Ordering::SeqCst);
            let mut guard = DropGuard(self.counters.clone(), false);
            ctx.log(1, format!("running {}", self.name).as_bytes());
            tokio::time::sleep(self.wait).await;
            self.counters.running.fetch_sub(1, Ordering::SeqCst);
            guard.1 = true;
            if self.fail {
                return Err(Arc::new(std::io::Error::other(format!("{} failed", self.name))) as OpError);
            }
            let own = if self.cacheable {
                self.name.clone()
            } else {
                self.content.lock().unwrap().clone()
            };
            Ok(vec![format!("{own}({})", inputs.join(","))])
        })
    }
}

/// Wraps a toy so its cache map has the right number of deps.
struct WithDeps {
    toy: Toy,
    inputs: usize,
}

impl Op<String, ()> for WithDeps {
    fn resource(&self) -> Resource {
        self.toy.resource
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context<()>) -> BoxFuture<'a, Result<CacheMap<String>, OpError>> {
        Box::pin(async move {
            let mut map = self.toy.cache_map(ctx).await?;
            map.deps = (0..self.inputs)
                .map(|i| {
                    let content: Option<ContentFn<String>> = if self.toy.content_inputs.contains(&i) {
                        Some(Arc::new(|r: String| {
                            Box::pin(async move { Ok::<_, OpError>(Digest::of(r.as_bytes())) })
                                as BoxFuture<'static, Result<Digest, OpError>>
                        }))
                    } else {
                        None
                    };
                    Dep {
                        selector: None,
                        content,
                    }
                })
                .collect();
            Ok(map)
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<()>,
        inputs: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, OpError>> {
        self.toy.exec(ctx, inputs)
    }
}

#[derive(Default)]
struct MemoryCache {
    records: Mutex<HashMap<Digest, Vec<String>>>,
    /// Link keys and the keys they stand for, as a remote cache would know them.
    links: Mutex<HashMap<Digest, Digest>>,
}

impl<S> CacheStore<String, S> for MemoryCache {
    fn load<'a>(
        &'a self,
        key: &'a Digest,
        _ctx: &'a Context<S>,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, OpError>> {
        Box::pin(async move { Ok(self.records.lock().unwrap().get(key).cloned()) })
    }
    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [String]) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            self.records.lock().unwrap().insert(key.clone(), outputs.to_vec());
            Ok(())
        })
    }
    fn has_links(&self, _ctx: &Context<S>) -> bool {
        !self.links.lock().unwrap().is_empty()
    }
    fn resolve_link<'a>(
        &'a self,
        link: &'a Digest,
        _ctx: &'a Context<S>,
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        Box::pin(async move { Ok(self.links.lock().unwrap().get(link).cloned()) })
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);
impl Progress for Events {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}
impl Events {
    fn cached(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Cached { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }
}

/// Builds toy graphs.
struct Graph {
    counters: Arc<Counters>,
    wait: Duration,
}

impl Graph {
    fn new() -> Graph {
        Graph {
            counters: Arc::new(Counters::default()),
            wait: Duration::from_millis(0),
        }
    }

    fn toy(&self, name: &str) -> Toy {
        Toy {
            name: name.into(),
            version: 0,
            counters: self.counters.clone(),
            wait: self.wait,
            cacheable: true,
            content_inputs: Vec::new(),
            fail: false,
            content: Arc::new(Mutex::new(String::new())),
            resource: Resource::Compute,
        }
    }

    fn vertex(&self, toy: Toy, inputs: Vec<Arc<Vertex<String, ()>>>) -> Arc<Vertex<String, ()>> {
        // The digest covers the op and its inputs, like an LLB digest.
        let mut text = format!(
            "{}:{}:{}:{:?}",
            toy.name, toy.version, toy.cacheable, toy.content_inputs
        );
        for i in &inputs {
            text.push_str(&format!(":{}", i.digest));
        }
        let n = inputs.len();
        Arc::new(Vertex {
            digest: Digest::of(text.as_bytes()),
            name: toy.name.clone(),
            inputs: inputs.into_iter().map(|v| (v, 0)).collect(),
            op: Arc::new(WithDeps { toy, inputs: n }),
            ignore_cache: false,
            salt: None,
        })
    }

    fn leaf(&self, name: &str) -> Arc<Vertex<String, ()>> {
        self.vertex(self.toy(name), Vec::new())
    }

    /// A leaf that is an external op (like a RUN step or a pull).
    fn external(&self, name: &str) -> Arc<Vertex<String, ()>> {
        let mut toy = self.toy(name);
        toy.resource = Resource::External;
        self.vertex(toy, Vec::new())
    }
}

fn solver(cache: &Arc<MemoryCache>) -> Arc<Solver<String, ()>> {
    Arc::new(Solver::new(cache.clone() as Arc<dyn CacheStore<String, ()>>))
}

/// A solver with an empty cache of its own and these limits.
fn limited_solver(max_parallelism: Option<usize>, compute: usize) -> Arc<Solver<String, ()>> {
    let cache = Arc::new(MemoryCache::default()) as Arc<dyn CacheStore<String, ()>>;
    let limits = Limits {
        max_parallelism,
        compute,
    };
    Arc::new(Solver::with_limits(cache, limits))
}

/// A job of `solver` whose events nobody reads.
fn job(solver: &Arc<Solver<String, ()>>) -> Job<String, ()> {
    solver.job(Arc::new(Events::default()), Arc::new(()))
}

/// Solves output 0 of `root` in a job of its own.
async fn solve(
    solver: &Arc<Solver<String, ()>>,
    root: &Arc<Vertex<String, ()>>,
) -> Result<String, SolveError> {
    job(solver).solve(root, 0).await
}

#[tokio::test]
async fn shared_vertex_runs_once_within_a_build() {
    let g = Graph::new();
    let base = g.leaf("base");
    let a = g.vertex(g.toy("a"), vec![base.clone()]);
    let b = g.vertex(g.toy("b"), vec![base.clone()]);
    let root = g.vertex(g.toy("root"), vec![a, b]);
    let cache = Arc::new(MemoryCache::default());
    let result = solve(&solver(&cache), &root).await.unwrap();
    assert_eq!(result, "root(a(base()),b(base()))");
    assert_eq!(g.counters.runs("base"), 1);
    assert_eq!(g.counters.total(), 4);
}

#[tokio::test]
async fn identical_work_of_concurrent_builds_runs_once() {
    let mut g = Graph::new();
    g.wait = Duration::from_millis(100);
    let shared = g.leaf("shared");
    let one = g.vertex(g.toy("one"), vec![shared.clone()]);
    // A second build constructs the same shared vertex independently.
    let shared_again = g.leaf("shared");
    assert_eq!(shared.digest, shared_again.digest);
    let two = g.vertex(g.toy("two"), vec![shared_again]);
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    let mut job1 = job(&solver);
    let mut job2 = job(&solver);
    let (r1, r2) = tokio::join!(job1.solve(&one, 0), job2.solve(&two, 0));
    assert_eq!(r1.unwrap(), "one(shared())");
    assert_eq!(r2.unwrap(), "two(shared())");
    assert_eq!(g.counters.runs("shared"), 1);
}

#[tokio::test]
async fn independent_branches_run_in_parallel() {
    let mut g = Graph::new();
    g.wait = Duration::from_millis(50);
    // Like RUN steps: by default, external work is not bounded by the number of cores.
    let branches: Vec<_> = (0..4)
        .map(|i| {
            let mut toy = g.toy(&format!("branch{i}"));
            toy.resource = Resource::External;
            g.vertex(toy, Vec::new())
        })
        .collect();
    let root = g.vertex(g.toy("root"), branches);
    let cache = Arc::new(MemoryCache::default());
    solve(&solver(&cache), &root).await.unwrap();
    assert_eq!(g.counters.peak(), 4, "all four branches must be running at once");
}

#[tokio::test]
async fn rebuild_uses_the_cache_and_reports_every_step_cached() {
    let g = Graph::new();
    let build = |g: &Graph| {
        let base = g.leaf("base");
        let mid = g.vertex(g.toy("mid"), vec![base]);
        g.vertex(g.toy("top"), vec![mid])
    };
    let cache = Arc::new(MemoryCache::default());
    let first = solve(&solver(&cache), &build(&g)).await.unwrap();
    assert_eq!(g.counters.total(), 3);
    // A new solver (a new process) with the same persistent cache.
    let events = Arc::new(Events::default());
    let second = solver(&cache)
        .job(events.clone(), Arc::new(()))
        .solve(&build(&g), 0)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(g.counters.total(), 3, "nothing may run again");
    assert_eq!(events.cached(), vec!["base", "mid", "top"]);
}

#[tokio::test]
async fn a_change_reruns_exactly_the_dependent_steps() {
    let g = Graph::new();
    let build = |g: &Graph, version: u32| {
        let base = g.leaf("base");
        let other = g.vertex(g.toy("other"), vec![base.clone()]);
        let mut changed = g.toy("changed");
        changed.version = version;
        let changed = g.vertex(changed, vec![base]);
        let after = g.vertex(g.toy("after"), vec![changed]);
        g.vertex(g.toy("root"), vec![other, after])
    };
    let cache = Arc::new(MemoryCache::default());
    solve(&solver(&cache), &build(&g, 1)).await.unwrap();
    solve(&solver(&cache), &build(&g, 2)).await.unwrap();
    assert_eq!(g.counters.runs("base"), 1);
    assert_eq!(g.counters.runs("other"), 1);
    assert_eq!(g.counters.runs("changed"), 2);
    assert_eq!(g.counters.runs("after"), 2);
    assert_eq!(g.counters.runs("root"), 2);
}

#[tokio::test]
async fn content_keys_make_users_of_uncacheable_sources_cacheable() {
    let g = Graph::new();
    let files = Arc::new(Mutex::new("v1".to_string()));
    let build = |g: &Graph| {
        let mut local = g.toy("local");
        local.cacheable = false;
        local.content = files.clone();
        let local = g.vertex(local, Vec::new());
        let mut copy = g.toy("copy");
        copy.content_inputs = vec![0];
        let copy = g.vertex(copy, vec![local.clone()]);
        // Depends on the local source through a fast key: never cacheable.
        let raw = g.vertex(g.toy("raw"), vec![local]);
        (copy, raw)
    };
    let cache = Arc::new(MemoryCache::default());
    let (copy, _) = build(&g);
    solve(&solver(&cache), &copy).await.unwrap();
    let (copy, raw) = build(&g);
    let s = solver(&cache);
    let mut job = job(&s);
    job.solve(&copy, 0).await.unwrap();
    assert_eq!(
        g.counters.runs("local"),
        2,
        "an uncacheable source runs every build"
    );
    assert_eq!(g.counters.runs("copy"), 1, "same content: cache hit");
    job.solve(&raw, 0).await.unwrap();
    solve(&solver(&cache), &raw).await.unwrap();
    assert_eq!(
        g.counters.runs("raw"),
        2,
        "a fast-key user of an uncacheable source is uncacheable"
    );
    *files.lock().unwrap() = "v2".into();
    let (copy, _) = build(&g);
    let out = solve(&solver(&cache), &copy).await.unwrap();
    assert_eq!(g.counters.runs("copy"), 2, "changed content: rerun");
    assert_eq!(out, "copy(v2())");
}

#[tokio::test]
async fn a_failure_names_its_vertex_and_stops_dependents() {
    let g = Graph::new();
    let mut bad = g.toy("bad");
    bad.fail = true;
    let bad = g.vertex(bad, Vec::new());
    let root = g.vertex(g.toy("root"), vec![bad.clone()]);
    let cache = Arc::new(MemoryCache::default());
    let err = solve(&solver(&cache), &root).await.unwrap_err();
    assert_eq!(err.vertex, bad.digest);
    assert_eq!(err.name, "bad");
    assert_eq!(err.to_string(), "bad failed");
    assert_eq!(g.counters.runs("root"), 0);
    assert!(
        cache.records.lock().unwrap().is_empty(),
        "a failed step is never cached"
    );
}

#[tokio::test]
async fn cancelling_drops_running_ops_and_releases_state() {
    let mut g = Graph::new();
    g.wait = Duration::from_secs(30);
    let slow = g.leaf("slow");
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    {
        let mut job = job(&solver);
        let solve = job.solve(&slow, 0);
        let outcome = tokio::time::timeout(Duration::from_millis(50), solve).await;
        assert!(outcome.is_err(), "the solve must still be running");
    }
    // The work was its own task: aborting it drops the op's future on the runtime.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(g.counters.dropped(), 1, "the running op future was dropped");
    assert_eq!(g.counters.running(), 1, "it never reached its end");
    assert_eq!(solver.live_states(), 0, "no vertex state outlives its jobs");
}

#[tokio::test]
async fn max_parallelism_bounds_every_running_op() {
    let mut g = Graph::new();
    g.wait = Duration::from_millis(40);
    let mut branches: Vec<_> = (0..3).map(|i| g.leaf(&format!("compute{i}"))).collect();
    branches.extend((0..3).map(|i| g.external(&format!("external{i}"))));
    let root = g.vertex(g.toy("root"), branches);
    let out = solve(&limited_solver(Some(2), 8), &root).await.unwrap();
    assert!(out.starts_with("root("), "{out}");
    assert_eq!(g.counters.total(), 7, "every op ran");
    assert_eq!(
        g.counters.peak(),
        2,
        "never more than two ops at once, and two did overlap"
    );
}

#[tokio::test]
async fn compute_ops_are_bounded_but_external_ops_overlap() {
    // Two graphs, so each kind of op has its own counters.
    let mut compute = Graph::new();
    compute.wait = Duration::from_millis(40);
    let mut external = Graph::new();
    external.wait = Duration::from_millis(40);
    let mut branches: Vec<_> = (0..3).map(|i| compute.leaf(&format!("copy{i}"))).collect();
    branches.extend((0..4).map(|i| external.external(&format!("sleep{i}"))));
    let root = external.vertex(external.toy("root"), branches);
    solve(&limited_solver(None, 1), &root).await.unwrap();
    assert_eq!(compute.counters.total(), 3);
    assert_eq!(
        compute.counters.peak(),
        1,
        "compute work is bounded by the compute limit"
    );
    assert_eq!(
        external.counters.peak(),
        4,
        "all four external ops (like sleeping RUN steps) overlap"
    );
}

#[test]
fn explicit_max_parallelism_also_caps_compute_work() {
    let limits = Limits::with_max_parallelism(1);
    assert_eq!(limits.max_parallelism, Some(1));
    assert_eq!(limits.compute, 1);
    assert_eq!(
        Limits::with_max_parallelism(0).max_parallelism,
        Some(1),
        "0 means 1, never a hang"
    );
    assert_eq!(Limits::for_this_machine().max_parallelism, None);
}

#[tokio::test]
async fn keyed_events_say_how_each_input_entered_the_key() {
    let g = Graph::new();
    let files = Arc::new(Mutex::new("v1".to_string()));
    let mut local = g.toy("local");
    local.cacheable = false;
    local.content = files.clone();
    let local = g.vertex(local, Vec::new());
    let base = g.leaf("base");
    let mut copy = g.toy("copy");
    copy.content_inputs = vec![1];
    let copy = g.vertex(copy, vec![base.clone(), local.clone()]);
    let cache = Arc::new(MemoryCache::default());
    let events = Arc::new(Events::default());
    solver(&cache)
        .job(events.clone(), Arc::new(()))
        .solve(&copy, 0)
        .await
        .unwrap();
    type Keyed = (Option<Digest>, bool, Vec<KeyDep>, Vec<(String, String)>);
    let keyed: HashMap<String, Keyed> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Keyed {
                name,
                key,
                cached,
                deps,
                facts,
                ..
            } => Some((name.clone(), (key.clone(), *cached, deps.clone(), facts.to_vec()))),
            _ => None,
        })
        .collect();
    assert_eq!(keyed.len(), 3, "one Keyed event per vertex: {keyed:?}");
    let (local_key, _, local_deps, _) = &keyed["local"];
    assert_eq!(
        (local_key, local_deps.len()),
        (&None, 0),
        "the local source is uncacheable"
    );
    let (base_key, base_cached, _, facts) = &keyed["base"];
    assert!(!base_cached);
    assert_eq!(facts, &vec![("name".to_string(), "base".to_string())]);
    let (copy_key, _, deps, _) = &keyed["copy"];
    assert!(copy_key.is_some());
    assert_eq!(deps.len(), 2);
    assert_eq!(deps[0].input, base.digest);
    assert_eq!(deps[0].part, Some(KeyPart::Key(base_key.clone().unwrap())));
    assert_eq!(deps[1].input_name, "local");
    assert_eq!(deps[1].part, Some(KeyPart::Content(Digest::of(b"v1()"))));

    // Second build: every key is found, and the events say so.
    let events = Arc::new(Events::default());
    solver(&cache)
        .job(events.clone(), Arc::new(()))
        .solve(&copy, 0)
        .await
        .unwrap();
    let cached: Vec<bool> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Keyed { name, cached, .. } if name != "local" => Some(*cached),
            _ => None,
        })
        .collect();
    assert_eq!(cached, vec![true, true]);
}

#[tokio::test]
async fn inputs_that_must_run_start_while_a_content_key_waits() {
    // `copy` reads `slow` by content (like COPY --from=build) and builds on `own` (like the
    // stage's previous step): `own` must run while `slow` runs, not after.
    let mut g = Graph::new();
    g.wait = Duration::from_millis(100);
    let slow = g.external("slow");
    let own = g.external("own");
    g.wait = Duration::from_millis(0);
    let mut copy = g.toy("copy");
    copy.content_inputs = vec![1];
    copy.resource = Resource::External;
    let copy = g.vertex(copy, vec![own, slow]);
    let cache = Arc::new(MemoryCache::default());
    let started = Instant::now();
    solve(&solver(&cache), &copy).await.unwrap();
    assert_eq!(g.counters.peak(), 2, "own and slow overlapped");
    assert!(
        started.elapsed() < Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(g.counters.total(), 3, "each ran once");
}

#[tokio::test]
async fn cancelling_one_job_never_stops_work_another_waits_on() {
    let mut g = Graph::new();
    g.wait = Duration::from_millis(300);
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    let mut staying = job(&solver);
    let slow = g.leaf("slow");
    let leaving = {
        let (solver, slow) = (solver.clone(), g.leaf("slow"));
        tokio::spawn(async move {
            let mut job = job(&solver);
            job.solve(&slow, 0).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stay = staying.solve(&slow, 0);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        leaving.abort();
    };
    let (result, ()) = tokio::join!(stay, cancel);
    assert_eq!(result.unwrap(), "slow()");
    assert_eq!(g.counters.runs("slow"), 1, "the shared step ran exactly once");
    assert_eq!(g.counters.dropped(), 0, "it was never cancelled halfway");
}

#[tokio::test]
async fn vertices_with_the_same_cache_key_run_once() {
    // Two uncacheable sources with different digests but the same content, each read by a
    // content-keyed copy: the copies differ in digest, not in cache key.
    let mut g = Graph::new();
    g.wait = Duration::from_millis(100);
    let copy_of = |g: &Graph, source: &str| {
        let mut local = g.toy(source);
        local.cacheable = false;
        *local.content.lock().unwrap() = "same files".into();
        let local = g.vertex(local, Vec::new());
        let mut copy = g.toy("copy");
        copy.content_inputs = vec![0];
        g.vertex(copy, vec![local])
    };
    let one = copy_of(&g, "context-of-one");
    let two = copy_of(&g, "context-of-two");
    assert_ne!(one.digest, two.digest);
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    let (events1, events2) = (Arc::new(Events::default()), Arc::new(Events::default()));
    let mut job1 = solver.job(events1.clone(), Arc::new(()));
    let mut job2 = solver.job(events2.clone(), Arc::new(()));
    let (r1, r2) = tokio::join!(job1.solve(&one, 0), job2.solve(&two, 0));
    assert_eq!(r1.unwrap(), r2.unwrap());
    assert_eq!(g.counters.runs("copy"), 1, "one execution served both");
    // Each job saw the step run, under its own vertex.
    for (events, vertex) in [(&events1, &one.digest), (&events2, &two.digest)] {
        let seen: Vec<&'static str> = events
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Started { vertex: v, .. } if v == vertex => Some("started"),
                Event::Completed { vertex: v, .. } if v == vertex => Some("completed"),
                _ => None,
            })
            .collect();
        assert_eq!(seen, vec!["started", "completed"]);
    }
}

#[tokio::test]
async fn salted_vertices_share_only_with_the_same_salt() {
    let g = Graph::new();
    let salted = |salt: &str| {
        let leaf = g.leaf("secret-step");
        Arc::new(Vertex {
            digest: leaf.digest.clone(),
            name: leaf.name.clone(),
            inputs: Vec::new(),
            op: leaf.op.clone(),
            ignore_cache: false,
            salt: Some(Digest::of(salt.as_bytes())),
        })
    };
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    let mut job = job(&solver);
    job.solve(&salted("a"), 0).await.unwrap();
    job.solve(&salted("a"), 0).await.unwrap();
    assert_eq!(
        g.counters.runs("secret-step"),
        1,
        "same salt: one state, then a cache hit"
    );
    let user = g.vertex(g.toy("user"), vec![salted("b")]);
    job.solve(&user, 0).await.unwrap();
    assert_eq!(g.counters.runs("secret-step"), 2, "another salt: never shared");
    let plain = g.vertex(g.toy("user"), vec![g.leaf("secret-step")]);
    job.solve(&plain, 0).await.unwrap();
    assert_eq!(
        g.counters.runs("user"),
        2,
        "users of different salts have different keys"
    );
    assert_eq!(
        g.counters.runs("secret-step"),
        3,
        "nor does the unsalted vertex share"
    );
}

/// An op that records the sessions it saw.
struct SessionProbe {
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    wait: Duration,
}

impl Op<String, String> for SessionProbe {
    fn cache_map<'a>(
        &'a self,
        _ctx: &'a Context<String>,
    ) -> BoxFuture<'a, Result<CacheMap<String>, OpError>> {
        Box::pin(async move { Ok(CacheMap::new(Digest::of(b"probe"), Vec::new())) })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<String>,
        _inputs: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, OpError>> {
        Box::pin(async move {
            let before: Vec<String> = ctx.sessions().iter().map(|s| s.to_string()).collect();
            tokio::time::sleep(self.wait).await;
            let after: Vec<String> = ctx.sessions().iter().map(|s| s.to_string()).collect();
            self.seen.lock().unwrap().extend([before, after]);
            Ok(vec!["done".into()])
        })
    }
}

#[tokio::test]
async fn ops_see_the_sessions_of_the_jobs_waiting_and_only_those() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let vertex = Arc::new(Vertex {
        digest: Digest::of(b"probe-vertex"),
        name: "probe".into(),
        inputs: Vec::new(),
        op: Arc::new(SessionProbe {
            seen: seen.clone(),
            wait: Duration::from_millis(200),
        }) as Arc<dyn Op<String, String>>,
        ignore_cache: false,
        salt: None,
    });
    let cache = Arc::new(MemoryCache::default());
    let solver: Arc<Solver<String, String>> =
        Arc::new(Solver::new(cache as Arc<dyn CacheStore<String, String>>));
    let first = {
        let (solver, vertex) = (solver.clone(), vertex.clone());
        tokio::spawn(async move {
            let mut job = solver.job(Arc::new(Events::default()), Arc::new("alice".to_string()));
            job.solve(&vertex, 0).await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let events = Arc::new(Events::default());
    let mut second = solver.job(events.clone(), Arc::new("bob".to_string()));
    let solve = second.solve(&vertex, 0);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.abort();
    };
    let (result, ()) = tokio::join!(solve, cancel);
    assert_eq!(result.unwrap(), "done");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], vec!["alice"], "only alice waited when it started");
    assert_eq!(
        seen[1],
        vec!["bob"],
        "alice left: her session is no longer offered"
    );
    assert!(!events.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_finished_job_stops_receiving_events() {
    let mut g = Graph::new();
    g.wait = Duration::from_millis(150);
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    let shared = g.leaf("shared");
    let first_events = Arc::new(Events::default());
    let first = {
        let (solver, shared, events) = (solver.clone(), shared.clone(), first_events.clone());
        tokio::spawn(async move {
            let mut job = solver.job(events, Arc::new(()));
            job.solve(&shared, 0).await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = job(&solver);
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        first.abort();
    };
    let (result, ()) = tokio::join!(second.solve(&shared, 0), cancel);
    result.unwrap();
    let events = first_events.0.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Started { .. })),
        "the first job watched the step start"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Completed { .. })),
        "a dropped job's sink hears nothing more"
    );
}

#[test]
fn a_long_chain_drops_without_deep_recursion() {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let g = Graph::new();
            let mut top = g.leaf("v0");
            for i in 1..100_000 {
                top = g.vertex(g.toy(&format!("v{i}")), vec![top]);
            }
            drop(top);
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

#[tokio::test]
async fn a_long_chain_solves_without_deep_recursion() {
    let g = Graph::new();
    let mut top = g.leaf("v0");
    for i in 1..3000 {
        top = g.vertex(g.toy(&format!("v{i}")), vec![top]);
    }
    let cache = Arc::new(MemoryCache::default());
    let solver = solver(&cache);
    solve(&solver, &top).await.unwrap();
    assert_eq!(g.counters.total(), 3000);
}

#[tokio::test]
async fn a_link_key_finds_a_content_keyed_result_without_building_its_inputs() {
    let g = Graph::new();
    let build = |g: &Graph| {
        let base = g.leaf("base");
        let builder = g.vertex(g.toy("builder"), vec![base.clone()]);
        let mut copy = g.toy("final");
        copy.content_inputs = vec![1];
        g.vertex(copy, vec![base, builder])
    };
    // A first machine builds everything; its events name the link key and the key.
    let first = Arc::new(MemoryCache::default());
    let s = solver(&first);
    let events = Arc::new(Events::default());
    let expected = s
        .job(events.clone(), Arc::new(()))
        .solve(&build(&g), 0)
        .await
        .unwrap();
    let (key, link) = events
        .0
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            Event::Keyed { name, key, link, .. } if name == "final" => Some((key.clone()?, link.clone()?)),
            _ => None,
        })
        .expect("the content-keyed vertex has a link key");
    assert_eq!(g.counters.runs("builder"), 1);
    // A second machine knows only the final result, under its key and its link key: the input
    // read only for its content is never built.
    let second = Arc::new(MemoryCache::default());
    let outputs = first.records.lock().unwrap()[&key].clone();
    second.records.lock().unwrap().insert(key.clone(), outputs);
    second.links.lock().unwrap().insert(link, key);
    assert_eq!(solve(&solver(&second), &build(&g)).await.unwrap(), expected);
    assert_eq!(g.counters.runs("builder"), 1);
    assert_eq!(g.counters.runs("final"), 1);
    // Without the link the content is needed, so the input is built.
    let third = Arc::new(MemoryCache::default());
    *third.records.lock().unwrap() = second.records.lock().unwrap().clone();
    assert_eq!(solve(&solver(&third), &build(&g)).await.unwrap(), expected);
    assert_eq!(g.counters.runs("builder"), 2);
    assert_eq!(g.counters.runs("final"), 1, "same content: the same key, a hit");
}
