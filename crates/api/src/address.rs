//! Daemon addresses and client channels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Where a daemon listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Address {
    /// A unix socket (`unix:///run/kiln/kiln.sock`).
    Unix(PathBuf),
    /// A TCP address (`tcp://HOST:PORT`).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// A malformed address, or a channel that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// The text is no address.
    #[error("invalid daemon address {text:?}: {why} (expected unix:///PATH or tcp://HOST:PORT)")]
    Invalid {
        /// As given.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A TLS file could not be read.
    #[error("failed to read {}", path.display())]
    Tls {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS files are incomplete.
    #[error("{0}")]
    TlsIncomplete(&'static str),
    /// tonic refused the endpoint or its TLS configuration.
    #[error("failed to set up a channel to {address}")]
    Channel {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
}

impl Address {
    /// Parses one address.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let invalid = |why| AddressError::Invalid {
            text: text.to_string(),
            why,
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("the socket path is empty"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| invalid("the port is missing"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| invalid("the port is no number"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(invalid("the host is empty"));
            }
            return Ok(Address::Tcp {
                host: host.to_string(),
                port,
            });
        }
        Err(invalid("unknown scheme"))
    }

    /// Parses a comma-separated list (`KILN_HOST=tcp://a:7777,tcp://b:7777`); duplicates go.
    pub fn parse_list(text: &str) -> Result<Vec<Address>, AddressError> {
        let mut list = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let address = Address::parse(part)?;
            if !list.contains(&address) {
                list.push(address);
            }
        }
        if list.is_empty() {
            return Err(AddressError::Invalid {
                text: text.to_string(),
                why: "no address given",
            });
        }
        Ok(list)
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// The PEM contents of the CA, the certificate and the key.
pub type TlsPem = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The PEM files of mutual TLS: the CA that signs the other side's certificate, and this side's
/// certificate and key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--tlscacert`.
    pub ca: Option<PathBuf>,
    /// `--tlscert`.
    pub cert: Option<PathBuf>,
    /// `--tlskey`.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is given.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The three files' contents (CA, certificate, key), all required.
    pub fn read(&self) -> Result<TlsPem, AddressError> {
        let (Some(ca), Some(cert), Some(key)) = (&self.ca, &self.cert, &self.key) else {
            return Err(AddressError::TlsIncomplete(
                "mutual TLS needs all of --tlscacert, --tlscert and --tlskey",
            ));
        };
        Ok((read(ca)?, read(cert)?, read(key)?))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AddressError> {
    std::fs::read(path).map_err(|source| AddressError::Tls {
        path: path.to_path_buf(),
        source,
    })
}

/// How long connecting may take, and how long a silent connection is trusted: a daemon that died
/// or hangs is an error within seconds, never a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A channel to `address` (TCP with mutual TLS when `tls` names files). Connects lazily: the
/// first call reports an unreachable daemon.
pub fn connect(address: &Address, tls: &TlsFiles) -> Result<Channel, AddressError> {
    let failed = |source| AddressError::Channel {
        address: address.to_string(),
        source,
    };
    let endpoint = match address {
        Address::Unix(_) => Endpoint::from_static("http://kiln.sock"),
        Address::Tcp { host, port } => {
            let scheme = if tls.any() { "https" } else { "http" };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            Endpoint::from_shared(format!("{scheme}://{host}:{port}")).map_err(failed)?
        }
    };
    let mut endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .max_frame_size(crate::MAX_FRAME)
        .initial_stream_window_size(crate::STREAM_WINDOW)
        .initial_connection_window_size(crate::CONNECTION_WINDOW)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE)
        .keep_alive_while_idle(true);
    if let (Address::Tcp { host, .. }, true) = (address, tls.any()) {
        let (ca, cert, key) = tls.read()?;
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key))
            .domain_name(host.clone());
        endpoint = endpoint.tls_config(config).map_err(failed)?;
    }
    Ok(match address {
        Address::Unix(path) => {
            let path = path.clone();
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
            }))
        }
        Address::Tcp { .. } => endpoint.connect_lazy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let a = Address::parse("unix:///run/kiln/kiln.sock").unwrap();
        assert_eq!(a, Address::Unix("/run/kiln/kiln.sock".into()));
        assert_eq!(a.to_string(), "unix:///run/kiln/kiln.sock");
        let t = Address::parse("tcp://kiln-0.kiln:7777").unwrap();
        assert_eq!(t.to_string(), "tcp://kiln-0.kiln:7777");
        assert_eq!(
            Address::parse("tcp://[::1]:1").unwrap().to_string(),
            "tcp://[::1]:1"
        );
        for bad in [
            "",
            "http://x:1",
            "tcp://x",
            "tcp://:1",
            "tcp://x:99999",
            "unix://",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad} accepted");
        }
        let list = Address::parse_list("tcp://a:1, tcp://b:2,tcp://a:1,").unwrap();
        assert_eq!(list.len(), 2);
        assert!(Address::parse_list(" , ").is_err());
    }
}
