//! Shared helpers: an engine on a temporary state directory, LLB shorthands, result readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{BuildError, Engine, EngineConfig, Event, Progress};
use llb::{Definition, Exec, FileChain, MountOptions, OpOptions, Output, pb};
use store::SnapshotId;
use testkit::TempRoot;

/// Discards progress.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _event: Event) {}
}

/// An engine on a temporary state directory, with the real runc.
pub struct TestEngine {
    pub engine: Engine,
    // Dropped after the engine (fields drop in order), so the store is closed first.
    _root: TempRoot,
}

impl TestEngine {
    pub fn new() -> TestEngine {
        let root = TempRoot::new().unwrap();
        let mut config = EngineConfig::new(root.path());
        config.runtime = testkit::runc().unwrap();
        let engine = Engine::open(&config, || {}).unwrap();
        TestEngine { engine, _root: root }
    }

    /// Solves `output` with no local directories.
    pub async fn solve(&self, output: &Output) -> Result<Option<SnapshotId>, BuildError> {
        self.solve_with(output, &BTreeMap::new()).await
    }

    /// Solves `output` with the given `local://` directories.
    pub async fn solve_with(
        &self,
        output: &Output,
        locals: &BTreeMap<String, PathBuf>,
    ) -> Result<Option<SnapshotId>, BuildError> {
        let definition = Definition::marshal(Some(output), Vec::new());
        self.engine
            .solve_definition(&definition, locals, Arc::new(Quiet))
            .await
    }

    /// Solves `output`, which must succeed with a snapshot.
    pub async fn snapshot(&self, output: &Output) -> SnapshotId {
        self.solve(output).await.unwrap().expect("a snapshot")
    }

    /// Solves `output`, which must fail; returns the message with all its causes.
    pub async fn error(&self, output: &Output) -> String {
        match self.solve(output).await {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => oci::error_chain(&e),
        }
    }

    /// Runs `check` on the mounted filesystem of snapshot `id`.
    pub fn inspect<T>(&self, id: SnapshotId, check: impl FnOnce(&Path) -> T) -> T {
        let view = self.engine.store().view(id).unwrap();
        check(view.path())
    }

    /// Reads a file of snapshot `id` as text (`None` when missing).
    pub fn read(&self, id: SnapshotId, path: &str) -> Option<String> {
        self.inspect(id, |root| {
            std::fs::read_to_string(root.join(path.trim_start_matches('/'))).ok()
        })
    }

    /// Whether `path` exists (without following a final symlink) in snapshot `id`.
    pub fn exists(&self, id: SnapshotId, path: &str) -> bool {
        self.inspect(id, |root| {
            root.join(path.trim_start_matches('/')).symlink_metadata().is_ok()
        })
    }

    /// The diff ID of the layer of snapshot `id` (its own changes, as a layer tar).
    pub fn diff_id(&self, id: SnapshotId) -> oci::Digest {
        let mut hasher = oci::Sha256Writer::new(std::io::sink());
        fsops::layer::write_layer(&self.engine.store().layer_dir(id), &mut hasher).unwrap();
        hasher.finish().0
    }
}

/// A source op.
pub fn source(identifier: &str, attrs: &[(&str, &str)]) -> Output {
    let attrs = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Output::source(identifier, attrs, OpOptions::default())
}

/// A filesystem with the given files (mode 0644, mtime 0) and their parents.
pub fn files(base: Option<&Output>, entries: &[(&str, &str)]) -> Output {
    let mut chain = FileChain::new(base);
    for (path, data) in entries {
        let parent = Path::new(path).parent().unwrap().to_str().unwrap();
        if parent != "/" {
            chain = chain.mkdir(pb::FileActionMkDir {
                path: parent.into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: 0,
            });
        }
        chain = chain.mkfile(pb::FileActionMkFile {
            path: path.to_string(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
            owner: None,
            timestamp: 0,
        });
    }
    chain.finish(OpOptions::default()).unwrap()
}

/// Removes `path` from `base`.
pub fn rm(base: &Output, path: &str) -> Output {
    FileChain::new(Some(base))
        .rm(pb::FileActionRm {
            path: path.into(),
            allow_not_found: false,
            allow_wildcard: false,
        })
        .finish(OpOptions::default())
        .unwrap()
}

/// The process of a `RUN /bin/sh -c <script>`.
pub fn shell(script: &str) -> pb::Meta {
    pb::Meta {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin:/usr/bin:/sbin:/usr/sbin".into()],
        cwd: "/".into(),
        ..pb::Meta::default()
    }
}

/// An exec on `root` (its root mount is the op's output) with extra mounts added by `mounts`.
pub fn run(root: &Output, script: &str, mounts: impl FnOnce(&mut Exec)) -> Output {
    let mut exec = Exec::new(shell(script), pb::NetMode::None, pb::SecurityMode::Sandbox);
    exec.mount(
        "/",
        Some(root),
        MountOptions {
            output: true,
            ..MountOptions::default()
        },
    );
    mounts(&mut exec);
    exec.finish(OpOptions::default()).remove(0)
}
