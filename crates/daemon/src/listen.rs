//! Listeners: unix sockets (mode 0660, owned by root and `--group`, so only root and that
//! group's members can connect; the kernel refuses everyone else) and TCP, with mutual TLS
//! unless `--insecure-tcp` was given; and the servers on them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::Address;
use api::pb::control_server::ControlServer;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::Config;
use crate::state::Daemon;

/// A bound listener.
pub enum Listener {
    /// A unix socket at the path, and the one beside it that takes clients' output files
    /// (`PATH.fds`, see [`api::fds`]).
    Unix(PathBuf, tokio::net::UnixListener, tokio::net::UnixListener),
    /// A TCP socket, with its TLS configuration (none: insecure).
    Tcp(
        std::net::SocketAddr,
        tokio::net::TcpListener,
        Option<ServerTlsConfig>,
    ),
}

impl Listener {
    /// The address clients use.
    pub fn address(&self) -> Address {
        match self {
            Listener::Unix(path, _, _) => Address::Unix(path.clone()),
            Listener::Tcp(addr, _, _) => Address::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        }
    }
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// No address was given.
    #[error("no address to listen on")]
    NoAddress,
    /// TCP without mutual TLS, not explicitly allowed.
    #[error(
        "refusing to serve {0} without TLS: give --tlscacert, --tlscert and --tlskey (mutual TLS), or --insecure-tcp to accept anyone who can reach the port"
    )]
    InsecureTcp(Address),
    /// Another daemon answers on the socket.
    #[error("another daemon is listening on {}", .0.display())]
    InUse(PathBuf),
    /// A system call failed.
    #[error("failed to {action} {what}")]
    Io {
        /// What was done.
        action: &'static str,
        /// On what.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The group does not exist.
    #[error("unknown group {0:?} (--group)")]
    Group(String),
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] api::AddressError),
    /// tonic refused the TLS configuration.
    #[error("invalid TLS configuration")]
    TlsConfig(#[source] tonic::transport::Error),
}

fn io(action: &'static str, what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ListenError {
    let what = what.to_string();
    move |source| ListenError::Io { action, what, source }
}

/// Binds every address of `config`.
pub fn bind(config: &Config) -> Result<Vec<Listener>, ListenError> {
    if config.addresses.is_empty() {
        return Err(ListenError::NoAddress);
    }
    let gid = match &config.group {
        None => 0,
        Some(name) => group_id(name)?,
    };
    let mut listeners = Vec::new();
    for address in &config.addresses {
        listeners.push(match address {
            Address::Unix(path) => bind_unix(path, gid)?,
            Address::Tcp { host, port } => {
                let tls = if config.tls.any() {
                    let (ca, cert, key) = config.tls.read()?;
                    Some(
                        ServerTlsConfig::new()
                            .identity(Identity::from_pem(cert, key))
                            .client_ca_root(Certificate::from_pem(ca)),
                    )
                } else if config.insecure_tcp {
                    eprintln!(
                        "WARNING: serving {address} without TLS (--insecure-tcp): anyone who reaches it can run builds as root"
                    );
                    None
                } else {
                    return Err(ListenError::InsecureTcp(address.clone()));
                };
                let std = std::net::TcpListener::bind((host.as_str(), *port)).map_err(io("listen on", address))?;
                std.set_nonblocking(true).map_err(io("set up", address))?;
                let local = std.local_addr().map_err(io("set up", address))?;
                let listener = tokio::net::TcpListener::from_std(std).map_err(io("set up", address))?;
                Listener::Tcp(local, listener, tls)
            }
        });
    }
    Ok(listeners)
}

/// Binds a unix socket with mode 0660, owned by root and group `gid`. A socket file nobody
/// answers on (left by a killed daemon) is replaced; one a live daemon answers on is not.
fn bind_unix(path: &Path, gid: u32) -> Result<Listener, ListenError> {
    let shown = path.display();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("create", parent.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io("remove the stale socket", &shown))?;
    }
    let listener = listen_unix(path, gid)?;
    let fds_path = api::fds::socket_of(path);
    if fds_path.exists() {
        std::fs::remove_file(&fds_path).map_err(io("remove the stale socket", fds_path.display()))?;
    }
    let fds = listen_unix(&fds_path, gid)?;
    Ok(Listener::Unix(path.to_path_buf(), listener, fds))
}

/// Listens on a new unix socket at `path`, mode 0660, owned by root and group `gid`.
fn listen_unix(path: &Path, gid: u32) -> Result<tokio::net::UnixListener, ListenError> {
    let shown = path.display();
    let std = std::os::unix::net::UnixListener::bind(path).map_err(io("listen on", &shown))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io("set the mode of", &shown))?;
    std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io("set the owner of", &shown))?;
    std.set_nonblocking(true).map_err(io("set up", &shown))?;
    tokio::net::UnixListener::from_std(std).map_err(io("set up", &shown))
}

/// The id of group `name` (a number is taken as is), from `/etc/group`.
fn group_id(name: &str) -> Result<u32, ListenError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group").map_err(io("read", "/etc/group"))?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let group = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (group == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| ListenError::Group(name.to_string()))
}

/// How long servers may take to close their connections after the builds were cancelled.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Serves `daemon` on every listener until `shutdown` resolves; then cancels the running builds
/// (so their streams end) and stops the servers.
pub(crate) async fn run(
    daemon: Arc<Daemon>,
    listeners: Vec<Listener>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    let sockets: Vec<PathBuf> = listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Unix(path, _, _) => Some(path.clone()),
            Listener::Tcp(..) => None,
        })
        .collect();
    for listener in listeners {
        let service = ControlServer::from_arc(daemon.clone())
            .max_decoding_message_size(api::MAX_MESSAGE)
            .max_encoding_message_size(api::MAX_MESSAGE);
        let stopped_fds = stopped.clone();
        let mut stopped = stopped.clone();
        let signal = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let address = listener.address();
        let daemon = daemon.clone();
        let mut builder = Server::builder()
            .max_frame_size(api::MAX_FRAME)
            .initial_stream_window_size(api::STREAM_WINDOW)
            .initial_connection_window_size(api::CONNECTION_WINDOW)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)));
        servers.spawn(async move {
            let served = match listener {
                Listener::Unix(_, l, fds) => {
                    tokio::spawn(crate::fds::serve(daemon.fds.clone(), fds, stopped_fds));
                    builder
                        .add_service(service)
                        .serve_with_incoming_shutdown(UnixListenerStream::new(l), signal)
                        .await
                }
                Listener::Tcp(_, l, tls) => {
                    let mut builder = match tls {
                        Some(tls) => match builder.tls_config(tls) {
                            Ok(b) => b,
                            Err(e) => {
                                eprintln!("ERROR: {address}: {}", ListenError::TlsConfig(e));
                                return;
                            }
                        },
                        None => builder,
                    };
                    builder
                        .add_service(service)
                        .serve_with_incoming_shutdown(TcpListenerStream::new(l), signal)
                        .await
                }
            };
            if let Err(e) = served {
                eprintln!("ERROR: serving {address} failed: {}", oci::error_chain(&e));
            }
        });
    }
    shutdown.await;
    daemon.cancel_all().await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(CLOSE_LIMIT, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    for socket in sockets {
        let _ = std::fs::remove_file(api::fds::socket_of(&socket));
        let _ = std::fs::remove_file(socket);
    }
}
