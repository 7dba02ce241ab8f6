//! How the solver's cost grows with the graph: cache keys of 10,000-vertex graphs.
//!
//! `cargo bench -p solver`. Each iteration loads a graph into a fresh job and solves its root
//! against a cache that already holds every result, so what is measured is the solver's own
//! work: loading the graph, computing every cache map and key, and looking each key up. Shapes:
//! a chain (the deepest graph), a layered graph where each vertex reads two of the layer below
//! (many shared inputs), and a wide one (one root over all vertices).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oci::Digest;
use solver::{BoxFuture, CacheMap, CacheStore, Context, Dep, Event, Op, OpError, Progress, Solver, Vertex};

fn main() {
    divan::main();
}

/// An op whose work is trivial: only the solver's own cost is left.
struct Unit(Digest, usize);

impl Op<u32, ()> for Unit {
    fn cache_map<'a>(&'a self, _ctx: &'a Context<()>) -> BoxFuture<'a, Result<CacheMap<u32>, OpError>> {
        Box::pin(async move {
            Ok(CacheMap::new(
                self.0.clone(),
                (0..self.1).map(|_| Dep::default()).collect(),
            ))
        })
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a Context<()>,
        _inputs: Vec<u32>,
    ) -> BoxFuture<'a, Result<Vec<u32>, OpError>> {
        Box::pin(async move { Ok(vec![1]) })
    }
}

#[derive(Default)]
struct Memory(Mutex<HashMap<Digest, Vec<u32>>>);

impl CacheStore<u32, ()> for Memory {
    fn load<'a>(
        &'a self,
        key: &'a Digest,
        _ctx: &'a Context<()>,
    ) -> BoxFuture<'a, Result<Option<Vec<u32>>, OpError>> {
        Box::pin(async move { Ok(self.0.lock().unwrap().get(key).cloned()) })
    }
    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [u32]) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            self.0.lock().unwrap().insert(key.clone(), outputs.to_vec());
            Ok(())
        })
    }
}

struct Quiet;
impl Progress for Quiet {
    fn event(&self, _event: Event) {}
}

type V = Arc<Vertex<u32, ()>>;

fn vertex(n: usize, inputs: Vec<V>) -> V {
    let digest = Digest::of(format!("vertex {n}").as_bytes());
    Arc::new(Vertex {
        digest: digest.clone(),
        name: format!("v{n}"),
        op: Arc::new(Unit(digest, inputs.len())),
        inputs: inputs.into_iter().map(|v| (v, 0)).collect(),
        ignore_cache: false,
        salt: None,
    })
}

fn chain(n: usize) -> V {
    let mut top = vertex(0, Vec::new());
    for i in 1..n {
        top = vertex(i, vec![top]);
    }
    top
}

fn layered(n: usize) -> V {
    let width = 100;
    let mut layer: Vec<V> = (0..width).map(|i| vertex(i, Vec::new())).collect();
    let mut made = width;
    while made + width < n {
        layer = (0..width)
            .map(|i| vertex(made + i, vec![layer[i].clone(), layer[(i + 1) % width].clone()]))
            .collect();
        made += width;
    }
    vertex(made, layer)
}

fn wide(n: usize) -> V {
    vertex(n, (0..n - 1).map(|i| vertex(i, Vec::new())).collect())
}

fn bench(bencher: divan::Bencher, root: V) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let cache = Arc::new(Memory::default());
    let solver: Arc<Solver<u32, ()>> = Arc::new(Solver::new(cache as Arc<dyn CacheStore<u32, ()>>));
    // Fill the cache once: every later solve is keys and lookups only.
    runtime
        .block_on(solver.job(Arc::new(Quiet), Arc::new(())).solve(&root, 0))
        .unwrap();
    bencher.bench_local(|| {
        runtime
            .block_on(solver.job(Arc::new(Quiet), Arc::new(())).solve(&root, 0))
            .unwrap()
    });
}

#[divan::bench(args = [1_000, 10_000])]
fn chain_keys(bencher: divan::Bencher, n: usize) {
    bench(bencher, chain(n));
}

#[divan::bench(args = [1_000, 10_000])]
fn layered_keys(bencher: divan::Bencher, n: usize) {
    bench(bencher, layered(n));
}

#[divan::bench(args = [1_000, 10_000])]
fn wide_keys(bencher: divan::Bencher, n: usize) {
    bench(bencher, wide(n));
}
