//! Many builds in one engine: what they share (identical work, run once, also by cache key) and
//! what they never share (entitlements, secret values), cancellation of one build beside
//! another, and a load of 20 overlapping builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::{BuildRequest, Engine, EngineConfig, Entitlement, OutputSpec, SecretSource};
use testkit::{CountingRuntime, Fixture, TempRoot};

use crate::support::Quiet;

/// One engine (with a runc that counts its containers) and the busybox base image.
struct Shared {
    engine: Arc<Engine>,
    runtime: CountingRuntime,
    fixture: Fixture,
    scratch: tempfile::TempDir,
    _root: TempRoot,
}

impl Shared {
    fn new() -> Shared {
        let root = TempRoot::new().unwrap();
        let runtime = CountingRuntime::new().unwrap();
        let mut config = EngineConfig::new(root.path());
        config.runtime = runtime.path().to_path_buf();
        // GC would wait for every running build; these tests look at the cache afterwards.
        config.gc_keep_storage = Some(0);
        let engine = Arc::new(Engine::open(&config, || {}).unwrap());
        Shared {
            engine,
            runtime,
            fixture: Fixture::start().unwrap(),
            scratch: tempfile::tempdir().unwrap(),
            _root: root,
        }
    }

    /// A new context directory holding `files`, with `FROM BASE` in the Dockerfile replaced.
    fn context(&self, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            dockerfile.replace("BASE", &self.fixture.busybox),
        )
        .unwrap();
        for (path, data) in files {
            std::fs::write(dir.join(path), data).unwrap();
        }
        dir
    }

    /// A request building `context` into a directory next to it.
    fn request(&self, context: &Path) -> BuildRequest {
        BuildRequest {
            context: context.to_path_buf(),
            outputs: vec![OutputSpec::Local {
                dest: context.with_extension("out"),
            }],
            ..BuildRequest::default()
        }
    }

    async fn build(&self, request: BuildRequest) -> Result<engine::BuildResult, engine::BuildError> {
        self.engine.build(&request, Arc::new(Quiet)).await
    }

    /// Starts a build as a task of its own (so that it can be aborted).
    fn spawn(
        &self,
        request: BuildRequest,
    ) -> tokio::task::JoinHandle<Result<engine::BuildResult, engine::BuildError>> {
        let engine = self.engine.clone();
        tokio::spawn(async move { engine.build(&request, Arc::new(Quiet)).await })
    }

    fn output(&self, context: &Path, file: &str) -> String {
        std::fs::read_to_string(context.with_extension("out").join(file)).unwrap_or_default()
    }

    fn check_store(&self) {
        let report = self.engine.store().check().unwrap();
        assert!(report.is_ok(), "the state directory is not clean: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entitlements_are_per_build_even_for_a_shared_step() {
    testkit::require_privileged();
    let shared = Shared::new();
    let dockerfile = "FROM BASE\nRUN --security=insecure sleep 1 && echo ok > /insecure\n";
    let allowed = shared.context("allowed", dockerfile, &[]);
    let refused = shared.context("refused", dockerfile, &[]);
    let mut with_allow = shared.request(&allowed);
    with_allow.entitlements = BTreeSet::from([Entitlement::SecurityInsecure]);
    // The build without --allow starts first and must not be let into the step, nor take the
    // other one's refusal along.
    let (denied, granted) = tokio::join!(shared.build(shared.request(&refused)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shared.build(with_allow.clone()).await
    });
    let message = denied.expect_err("no --allow: refused").to_string();
    assert!(message.contains("security.insecure is not allowed"), "{message}");
    granted.expect("--allow security.insecure: built");
    assert_eq!(shared.output(&allowed, "insecure"), "ok\n");
    assert_eq!(
        shared.runtime.runs(),
        1,
        "the step ran for the build that was allowed"
    );
    // Now cached: still refused to the build without --allow.
    let message = shared
        .build(shared.request(&refused))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("security.insecure is not allowed"), "{message}");
    shared.check_store();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_with_different_secret_values_never_share_a_step() {
    testkit::require_privileged();
    let shared = Shared::new();
    let secrets = tempfile::tempdir().unwrap();
    let dockerfile = "FROM BASE\nRUN --mount=type=secret,id=tok sleep 1 && cat /run/secrets/tok > /seen\n";
    let request = |name: &str, value: &str| {
        let context = shared.context(name, dockerfile, &[]);
        let file = secrets.path().join(name);
        std::fs::write(&file, value).unwrap();
        let mut request = shared.request(&context);
        request.secrets = BTreeMap::from([("tok".to_string(), SecretSource::File(file))]);
        (context, request)
    };
    let (alice, alice_request) = request("alice", "alice's token");
    let (bob, bob_request) = request("bob", "bob's token");
    let (a, b) = tokio::join!(shared.build(alice_request), shared.build(bob_request));
    a.unwrap();
    b.unwrap();
    assert_eq!(shared.output(&alice, "seen"), "alice's token");
    assert_eq!(shared.output(&bob, "seen"), "bob's token");
    assert_eq!(shared.runtime.runs(), 2, "each value ran the step once");
    // The same value as an earlier build shares its result.
    let (carol, carol_request) = request("carol", "alice's token");
    shared.build(carol_request).await.unwrap();
    assert_eq!(shared.output(&carol, "seen"), "alice's token");
    assert_eq!(shared.runtime.runs(), 2, "same value: a cache hit");
    shared.check_store();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_build_never_stops_a_step_another_waits_on() {
    testkit::require_privileged();
    let shared = Shared::new();
    let dockerfile = "FROM BASE\nRUN sleep 2 && echo done > /slow\n";
    let first = shared.context("first", dockerfile, &[]);
    let second = shared.context("second", dockerfile, &[]);
    let cancelled = shared.spawn(shared.request(&first));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = shared.spawn(shared.request(&second));
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    kept.await.unwrap().expect("the other build completes");
    assert_eq!(shared.output(&second, "slow"), "done\n");
    assert_eq!(
        shared.runtime.runs(),
        1,
        "the shared step ran exactly once, never restarted"
    );
    shared.check_store();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_with_the_same_cache_key_run_once() {
    testkit::require_privileged();
    let shared = Shared::new();
    // Two contexts (two local sources, so every vertex after COPY has another digest) with the
    // same file: the COPY and the RUN after it have the same cache keys in both builds.
    let dockerfile = "FROM BASE\nCOPY input /input\nRUN sleep 1 && cat /input > /output\n";
    let one = shared.context("one", dockerfile, &[("input", "same content")]);
    let two = shared.context("two", dockerfile, &[("input", "same content")]);
    let (a, b) = tokio::join!(
        shared.build(shared.request(&one)),
        shared.build(shared.request(&two))
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(shared.output(&one, "output"), "same content");
    assert_eq!(shared.output(&two, "output"), "same content");
    assert_eq!(shared.runtime.runs(), 1, "one execution served both builds");
    shared.check_store();
}

/// Four Dockerfiles sharing a prefix in pairs, each built five times at once.
fn variant(n: usize) -> String {
    let family = n / 2;
    format!(
        "FROM BASE\n\
         RUN echo shared-by-all > /all && sleep 1\n\
         RUN echo family-{family} > /family\n\
         COPY input /input\n\
         RUN cat /all /family /input > /result && echo variant-{n} >> /result\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_overlapping_builds_share_their_steps_and_agree() {
    testkit::require_privileged();
    let shared = Shared::new();
    let started = Instant::now();
    let builds: Vec<(usize, PathBuf)> = (0..20)
        .map(|i| {
            let n = i % 4;
            let context = shared.context(
                &format!("build-{i}"),
                &variant(n),
                &[("input", &format!("input-{n}"))],
            );
            (n, context)
        })
        .collect();
    let handles: Vec<_> = builds
        .iter()
        .map(|(_, context)| shared.spawn(shared.request(context)))
        .collect();
    let outcome = tokio::time::timeout(Duration::from_secs(120), futures_util::future::join_all(handles))
        .await
        .expect("no deadlock: 20 builds finish");
    for result in outcome {
        result.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    for (n, context) in &builds {
        let expected = format!("shared-by-all\nfamily-{}\ninput-{n}variant-{n}\n", n / 2);
        assert_eq!(shared.output(context, "result"), expected, "build of variant {n}");
    }
    // Distinct RUN steps: 1 shared by all, 2 per family, 4 per variant.
    assert_eq!(shared.runtime.runs(), 1 + 2 + 4, "each distinct step ran once");
    eprintln!(
        "20 builds of 4 overlapping Dockerfiles: {:.2}s, {} containers",
        elapsed.as_secs_f64(),
        shared.runtime.runs()
    );
    shared.check_store();
}
