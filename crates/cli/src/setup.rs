//! Opening the state directory: with the whole engine (builds, `debug llb`, `debug check`) or
//! without the build machinery (`du`, `prune`).

use engine::{Engine, EngineConfig, StateDir};

use crate::args::{Cli, WorkerNet};
use crate::render::CliError;

/// Opens the engine over the state directory, saying so if another kiln holds it. Opening
/// blocks (waiting for the lock, recovering from a crash), so it runs on the blocking pool:
/// the command stays cancellable meanwhile.
pub(crate) async fn open_engine(cli: &Cli) -> Result<Engine, CliError> {
    let mut config = EngineConfig::new(&cli.root);
    config.runtime = cli.runtime.clone();
    config.gc_keep_storage = cli.gc_keep_storage;
    config.max_parallelism = cli.max_parallelism.map(|n| n as usize);
    config.default_network = match cli.oci_worker_net {
        WorkerNet::None => engine::NetworkMode::None,
        WorkerNet::Host => engine::NetworkMode::Host,
    };
    let root = cli.root.clone();
    let opened = tokio::task::spawn_blocking(move || Engine::open(&config, || waiting(&config.root)))
        .await
        .map_err(|e| CliError::failed("opening the state directory stopped", e))?;
    opened.map_err(|e| CliError::failed(format!("state directory {}", root.display()), e))
}

/// Opens the state directory for disk management (on the blocking pool, as [`open_engine`]).
pub(crate) async fn open_state_dir(cli: &Cli) -> Result<StateDir, CliError> {
    let root = cli.root.clone();
    let opened = tokio::task::spawn_blocking(move || StateDir::open(&root, || waiting(&root)))
        .await
        .map_err(|e| CliError::failed("opening the state directory stopped", e))?;
    opened.map_err(|e| CliError::failed(format!("state directory {}", cli.root.display()), e))
}

/// Says that another kiln holds the state directory.
fn waiting(root: &std::path::Path) {
    eprintln!("waiting for another kiln process to release {}", root.display());
}

/// Whether kiln's debug notes are on (`KILN_DEBUG`, or `kiln build --debug`).
pub(crate) fn debug_notes(flag: bool) -> bool {
    flag || std::env::var_os("KILN_DEBUG").is_some()
}
