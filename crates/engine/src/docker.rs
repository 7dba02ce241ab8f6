//! `--load` and `type=docker` without `dest`: the image tarball loaded into a Docker daemon
//! through its Engine API (`POST /images/load`), as buildx's docker driver loads it.
//!
//! The daemon is `DOCKER_HOST` (`unix:///path/to/docker.sock`; default
//! `unix:///var/run/docker.sock`). The tarball (what `type=docker,dest=…` writes) is streamed
//! from a temporary file; the daemon answers with a JSON message stream, whose `error` entries
//! fail the load.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;

/// The Docker daemon of a client without `DOCKER_HOST`.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The most of the daemon's answer read.
const MAX_ANSWER: usize = 1 << 20;

/// Why an image could not be loaded into a Docker daemon.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `DOCKER_HOST` is no unix socket.
    #[error("loading into the Docker daemon at {host} is not supported yet: only unix:// sockets are")]
    Host {
        /// The daemon's address.
        host: String,
    },
    /// The daemon could not be reached.
    #[error("cannot connect to the Docker daemon at {host}: is the docker daemon running?")]
    Connect {
        /// The daemon's address.
        host: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tarball could not be read.
    #[error("failed to read the image tarball {}", path.display())]
    Read {
        /// The tarball.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange with the daemon failed.
    #[error("the Docker daemon at {host} did not answer")]
    Http {
        /// The daemon's address.
        host: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The daemon refused the image.
    #[error("the Docker daemon at {host} refused the image: {message}")]
    Refused {
        /// The daemon's address.
        host: String,
        /// What it said.
        message: String,
    },
}

/// The socket path of a `DOCKER_HOST`.
fn socket(host: &str) -> Result<PathBuf, LoadError> {
    host.strip_prefix("unix://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| LoadError::Host {
            host: host.to_string(),
        })
}

/// Loads the tarball at `tar` into the daemon at `host`; returns what the daemon reported
/// (`Loaded image: NAME`).
pub async fn load(host: &str, tar: &Path) -> Result<Vec<String>, LoadError> {
    let path = socket(host)?;
    let connect_error = |source| LoadError::Connect {
        host: host.to_string(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(connect_error)?;
    let http_error = |source| LoadError::Http {
        host: host.to_string(),
        source,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(http_error)?;
    let driver = tokio::spawn(connection);
    let read_error = |source| LoadError::Read {
        path: tar.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(tar).await.map_err(read_error)?;
    let length = file.metadata().await.map_err(read_error)?.len();
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(buffer))), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let request = hyper::Request::post("/images/load?quiet=1")
        .header(hyper::header::HOST, "docker")
        .header(hyper::header::CONTENT_TYPE, "application/x-tar")
        .header(hyper::header::CONTENT_LENGTH, length)
        .body(StreamBody::new(chunks))
        .map_err(|e| LoadError::Refused {
            host: host.to_string(),
            message: format!("invalid request: {e}"),
        })?;
    let response = sender.send_request(request).await.map_err(http_error)?;
    let status = response.status();
    let body = read_answer(response.into_body()).await.map_err(http_error)?;
    driver.abort();
    answer(host, status.is_success(), &body)
}

/// Reads at most [`MAX_ANSWER`] bytes of the daemon's answer.
async fn read_answer(mut body: hyper::body::Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            let room = MAX_ANSWER.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(out)
}

/// The daemon's answer: its `stream` lines, or the first `error` (or the whole text of a
/// failed request) as a refusal.
fn answer(host: &str, success: bool, body: &[u8]) -> Result<Vec<String>, LoadError> {
    let refused = |message: String| LoadError::Refused {
        host: host.to_string(),
        message,
    };
    let text = String::from_utf8_lossy(body);
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
            return Err(refused(error.to_string()));
        }
        if let Some(message) = value.get("message").and_then(|m| m.as_str())
            && !success
        {
            return Err(refused(message.to_string()));
        }
        if let Some(stream) = value.get("stream").and_then(|s| s.as_str()) {
            lines.extend(stream.lines().map(str::to_string).filter(|l| !l.is_empty()));
        }
    }
    if !success {
        return Err(refused(text.trim().to_string()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_daemon_writes_them() {
        let ok = b"{\"stream\":\"Loaded image: app:v1\\n\"}\r\n";
        assert_eq!(answer("h", true, ok).unwrap(), ["Loaded image: app:v1"]);
        let failed = b"{\"errorDetail\":{\"message\":\"no space\"},\"error\":\"no space\"}\n";
        assert!(
            answer("h", true, failed)
                .unwrap_err()
                .to_string()
                .contains("no space")
        );
        let rejected = b"{\"message\":\"unexpected EOF\"}";
        assert!(
            answer("h", false, rejected)
                .unwrap_err()
                .to_string()
                .contains("unexpected EOF")
        );
        assert!(matches!(
            socket("tcp://1.2.3.4:2375"),
            Err(LoadError::Host { .. })
        ));
        assert_eq!(
            socket("unix:///run/d.sock").unwrap(),
            PathBuf::from("/run/d.sock")
        );
    }
}
