//! `kiln daemon`: opens the engine over the state directory and serves it (`daemon::serve`) on
//! `--addr` until SIGTERM or SIGINT, then stops accepting, cancels the running builds and exits
//! once they have released everything.

use std::process::ExitCode;
use std::sync::Arc;

use crate::args::{Cli, DaemonArgs};
use crate::render::CliError;

/// Where a daemon listens without `--addr`.
pub(crate) const DEFAULT_ADDRESS: &str = "unix:///run/kiln/kiln.sock";

/// The daemon's configuration from its flags (checked before anything runs).
pub(crate) fn config(cli: &Cli, args: &DaemonArgs) -> Result<daemon::Config, CliError> {
    let mut addresses = Vec::new();
    let given: Vec<&str> = if cli.host.is_empty() {
        vec![DEFAULT_ADDRESS]
    } else {
        cli.host.iter().map(String::as_str).collect()
    };
    for text in given {
        addresses.extend(api::Address::parse_list(text).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    Ok(daemon::Config {
        addresses,
        tls: api::TlsFiles {
            ca: cli.tlscacert.clone(),
            cert: cli.tlscert.clone(),
            key: cli.tlskey.clone(),
        },
        insecure_tcp: args.insecure_tcp,
        group: args.group.clone(),
        cache_from: args
            .cache_from
            .iter()
            .map(|s| crate::cache_specs::parse_cache_from(s))
            .collect::<Result<_, _>>()
            .map_err(CliError::Usage)?,
        cache_to: args
            .cache_to
            .iter()
            .map(|s| crate::cache_specs::parse_cache_to(s))
            .collect::<Result<_, _>>()
            .map_err(CliError::Usage)?,
    })
}

/// Runs the daemon until `shutdown` resolves.
pub(crate) async fn run(
    cli: &Cli,
    config: daemon::Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<ExitCode, CliError> {
    let engine = Arc::new(crate::setup::open_engine(cli).await?);
    let root = cli.root.display().to_string();
    daemon::serve(engine, &config, shutdown, |listeners| {
        for l in listeners {
            eprintln!("kiln daemon: serving {root} on {}", l.address());
        }
    })
    .await
    .map_err(|e| CliError::failed("kiln daemon", e))?;
    eprintln!("kiln daemon: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The socket in the state directory through which another `kiln build` joins this process's
/// engine instead of waiting for its lock.
pub(crate) fn guest_socket(root: &std::path::Path) -> std::path::PathBuf {
    root.join("kiln.sock")
}

/// A `kiln build` that holds the state directory, serving guests on [`guest_socket`].
pub(crate) struct Host {
    server: Arc<daemon::Server>,
    done: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Host {
    /// Serves `engine` to guests; `None` (and the build goes on alone) if the socket cannot be
    /// made.
    pub(crate) fn start(engine: Arc<engine::Engine>, root: &std::path::Path) -> Option<Host> {
        let config = daemon::Config {
            addresses: vec![api::Address::Unix(guest_socket(root))],
            ..daemon::Config::default()
        };
        let listeners = match daemon::bind(&config) {
            Ok(l) => l,
            Err(e) => {
                if crate::setup::debug_notes(false) {
                    eprintln!(
                        "kiln: other builds cannot join this one: {}",
                        oci::error_chain(&e)
                    );
                }
                return None;
            }
        };
        let server = Arc::new(daemon::Server::new(engine, &config));
        let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        let task = tokio::spawn(async move {
            let drained = serving.clone();
            let shutdown = async move {
                let _ = done_rx.await;
                drained.drain().await;
            };
            serving.serve(listeners, shutdown).await;
        });
        Some(Host { server, done, task })
    }

    /// This process's own build is over: waits for the builds that joined it, then stops
    /// serving.
    pub(crate) async fn finish(self) {
        let guests = self.server.running_builds();
        if guests > 0 {
            eprintln!("kiln: waiting for {guests} build(s) that joined this one");
        }
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}

/// The engine of another `kiln build` holding the state directory `root`, if one answers on
/// its socket: this build joins it.
pub(crate) async fn host_of(root: &std::path::Path) -> Option<crate::remote::Remote> {
    let socket = guest_socket(root);
    if !socket.exists() {
        return None;
    }
    let remote = crate::remote::Remote {
        addresses: vec![api::Address::Unix(socket)],
        tls: api::TlsFiles::default(),
    };
    let mut client = remote.client(&remote.addresses[0]).ok()?;
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.ping(api::pb::PingRequest {}),
    );
    match ping.await {
        Ok(Ok(_)) => Some(remote),
        _ => None,
    }
}
