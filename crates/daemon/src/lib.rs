//! `kiln daemon`: the engine behind the control API (`api`), for many clients at once.
//!
//! [`serve`] binds every listener ([`listen`]: unix sockets with mode 0660 and a group, TCP with
//! mutual TLS, or plain TCP only when asked), serves the `Control` service ([`service`]) until
//! its shutdown future resolves, then stops accepting, cancels the builds still running and
//! returns once they have released what they hold. A build is a session ([`session`]): the
//! client's context directories arrive through [`sync`] into the daemon's copies of them (only
//! what changed since the last build of that directory from that client), secrets and registry
//! credentials are asked of the client when a step needs them, client-side outputs stream back.
//!
//! Invariants: never reads a client path; a secret value or credential lives only in memory, for
//! the build that asked for it (never logged, never written); everything a request carries is
//! checked here before the engine sees it ([`convert`]); a client that goes away cancels its build.

#![forbid(unsafe_code)]

mod cache_dirs;
pub mod convert;
mod fds;
pub mod listen;
pub mod service;
pub mod session;
mod ssh;
pub mod state;
pub mod sync;

use std::sync::Arc;

use engine::{CacheBackend, CacheExport, Engine};

pub use listen::{ListenError, Listener, bind};

/// How a daemon serves.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Where to listen.
    pub addresses: Vec<api::Address>,
    /// Mutual TLS for TCP listeners.
    pub tls: api::TlsFiles,
    /// Serve TCP without TLS (warned about).
    pub insecure_tcp: bool,
    /// The group that owns unix sockets (`None`: root's).
    pub group: Option<String>,
    /// `--cache-from` of every build that names none.
    pub cache_from: Vec<CacheBackend>,
    /// `--cache-to` of every build that names none.
    pub cache_to: Vec<CacheExport>,
}

/// A daemon's service, before and while it serves.
pub struct Server {
    daemon: Arc<state::Daemon>,
}

impl Server {
    /// The service of `engine` with `config`'s build defaults.
    pub fn new(engine: Arc<Engine>, config: &Config) -> Server {
        Server {
            daemon: Arc::new(state::Daemon::new(engine, config)),
        }
    }

    /// Builds running now.
    pub fn running_builds(&self) -> usize {
        self.daemon.running_builds()
    }

    /// Resolves once no build runs and none will start any more: a build arriving later is
    /// refused as if the daemon were shutting down.
    pub async fn drain(&self) {
        loop {
            self.daemon.idle().await;
            if self.daemon.close_if_idle() {
                return;
            }
        }
    }

    /// Serves on `listeners` until `shutdown` resolves, then stops accepting, cancels running
    /// builds and waits for them to unwind.
    pub async fn serve(&self, listeners: Vec<Listener>, shutdown: impl std::future::Future<Output = ()>) {
        listen::run(self.daemon.clone(), listeners, shutdown).await;
    }
}

/// Serves `engine` on `config`'s listeners until `shutdown` resolves, then stops accepting,
/// cancels running builds and waits for them to unwind. `ready` is called once every listener
/// is bound (with what it bound).
pub async fn serve(
    engine: Arc<Engine>,
    config: &Config,
    shutdown: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(&[Listener]),
) -> Result<(), ListenError> {
    let listeners = listen::bind(config)?;
    ready(&listeners);
    Server::new(engine, config).serve(listeners, shutdown).await;
    Ok(())
}
