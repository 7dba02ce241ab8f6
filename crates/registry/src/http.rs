//! HTTP plumbing under the registry protocol: the reqwest client and its timeouts, sending a
//! request so that a stalled server fails it instead of hanging it, bounded body reads, error
//! bodies made readable, and the rules for where plain HTTP may be used.
//!
//! Timeouts ([`Timeouts`]): connecting (TCP and TLS) may take [`DEFAULT_CONNECT_TIMEOUT`]; after
//! that the server must make progress at least every [`DEFAULT_READ_TIMEOUT`]: answer within
//! that time of the request being sent (counted from the last chunk of an upload handed to the
//! connection, so a long upload is not a stall), and send each next piece of a body within that
//! time of the previous one. There is no overall deadline, since blobs can be large.
//!
//! reqwest's own `read_timeout` is not used for the response head: it is one deadline from
//! the start of the request, so it would fail any upload that takes longer than it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci::Digest;
use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use reqwest::{Method, RequestBuilder, Response, Url};
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;

use crate::error::Error;
use crate::tls::{LazyVerifier, tls_config};

/// How long connecting (TCP and TLS handshake) may take: what docker's registry client and Go's
/// default dialer allow.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a registry may stay silent: before answering a request, or between two pieces of a
/// body. A minute is far beyond what a working registry or storage backend needs, and a stall is
/// reported after it rather than hanging the build.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an error body is read to explain a failure.
const ERROR_BODY_LIMIT: usize = 64 << 10;
/// Uploads are handed to the connection in pieces of this size, each counting as progress.
const UPLOAD_CHUNK: usize = 64 << 10;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The connect and read timeouts of a client (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
}

/// A request body that can be sent again (for the retry after authentication).
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// A file and its length, streamed from disk.
    File(PathBuf, u64),
}

/// The reqwest client of one registry client, with its timeouts.
pub(crate) struct Http {
    client: reqwest::Client,
    timeouts: Timeouts,
}

impl Http {
    /// A client that follows no redirects (the caller decides where credentials may go), and
    /// the TLS verifier it uses, which knows why HTTPS is unavailable if it is.
    pub fn new(user_agent: &str, timeouts: Timeouts) -> Result<(Http, Arc<LazyVerifier>), Error> {
        let (tls, verifier) = tls_config()?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .user_agent(user_agent)
            .build()
            .map_err(|e| Error::ClientSetup { source: Box::new(e) })?;
        Ok((Http { client, timeouts }, verifier))
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `builder` (a request to `url`) with `body`, failing with [`Error::Timeout`] when
    /// the server stays silent for the read timeout after the request (or the last piece of its
    /// upload) went out.
    pub async fn send(&self, builder: RequestBuilder, url: &Url, body: &Body) -> Result<Response, Error> {
        let progress = Progress::new();
        let builder = match body {
            Body::Empty => builder,
            Body::Bytes(bytes) if bytes.len() <= UPLOAD_CHUNK => builder.body(bytes.clone()),
            Body::Bytes(bytes) => builder
                .header(CONTENT_LENGTH, bytes.len())
                .body(tracked_bytes(bytes.clone(), progress.clone())),
            Body::File(path, len) => {
                let file = tokio::fs::File::open(path).await.map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                builder
                    .header(CONTENT_LENGTH, *len)
                    .body(tracked_file(file, progress.clone()))
            }
        };
        let sending = builder.send();
        tokio::pin!(sending);
        let read = self.timeouts.read;
        loop {
            tokio::select! {
                result = &mut sending => return result.map_err(|e| self.transport_error(url.as_str(), e)),
                () = tokio::time::sleep_until(progress.last() + read) => {
                    if progress.last() + read <= Instant::now() {
                        return Err(Error::Timeout { url: url.to_string(), phase: "no response", after: read });
                    }
                }
            }
        }
    }

    /// The next piece of a response body, failing with [`Error::Timeout`] after the read
    /// timeout without one.
    pub async fn chunk(&self, response: &mut Response) -> Result<Option<Bytes>, Error> {
        read_chunk(response, self.timeouts).await
    }

    /// Reads a body of at most `limit` bytes.
    pub async fn read_limited(&self, mut response: Response, limit: u64) -> Result<Bytes, Error> {
        let too_large = |response: &Response| Error::TooLarge {
            url: response.url().to_string(),
            limit,
        };
        if header_length(response.headers()).is_some_and(|length| length > limit) {
            return Err(too_large(&response));
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk(&mut response).await? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large(&response));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// A readable excerpt of an error response body (best effort: a failed or stalled read
    /// yields what arrived).
    pub async fn error_excerpt(&self, mut response: Response) -> String {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match self.chunk(&mut response).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        describe_error_body(&body)
    }

    /// The error for a failed request to `url`: a timeout when connecting timed out, else the
    /// transport error with its cause chain (reqwest's own message without the URL, which the
    /// error already names).
    pub fn transport_error(&self, url: &str, error: reqwest::Error) -> Error {
        transport_error(url, error, self.timeouts)
    }
}

/// See [`Http::chunk`]; for readers that keep the timeouts rather than the client.
pub(crate) async fn read_chunk(response: &mut Response, timeouts: Timeouts) -> Result<Option<Bytes>, Error> {
    match tokio::time::timeout(timeouts.read, response.chunk()).await {
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(error)) => Err(transport_error(response.url().as_str(), error, timeouts)),
        Err(_) => Err(Error::Timeout {
            url: response.url().to_string(),
            phase: "no data",
            after: timeouts.read,
        }),
    }
}

fn transport_error(url: &str, error: reqwest::Error, timeouts: Timeouts) -> Error {
    if error.is_connect() && error.is_timeout() {
        return Error::Timeout {
            url: url.to_string(),
            phase: "no connection",
            after: timeouts.connect,
        };
    }
    Error::Transport {
        url: url.to_string(),
        source: error.without_url(),
    }
}

/// When a request last made progress: when it started, or when the connection took the last
/// piece of its upload.
#[derive(Clone)]
struct Progress(Arc<Mutex<Instant>>);

impl Progress {
    fn new() -> Progress {
        Progress(Arc::new(Mutex::new(Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An upload from memory in pieces, each one taken by the connection counting as progress.
fn tracked_bytes(bytes: Bytes, progress: Progress) -> reqwest::Body {
    let pieces: Vec<Bytes> = (0..bytes.len())
        .step_by(UPLOAD_CHUNK)
        .map(|start| bytes.slice(start..(start + UPLOAD_CHUNK).min(bytes.len())))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces).map(move |piece| {
        progress.touch();
        Ok::<_, std::io::Error>(piece)
    }))
}

/// An upload streamed from a file, each piece taken by the connection counting as progress.
fn tracked_file(file: tokio::fs::File, progress: Progress) -> reqwest::Body {
    let pieces = futures_util::stream::unfold(Some(file), move |file| {
        let progress = progress.clone();
        async move {
            let mut file = file?;
            let mut buffer = vec![0; UPLOAD_CHUNK];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    progress.touch();
                    Some((Ok(Bytes::from(buffer)), Some(file)))
                }
                // The error ends the upload; the stream ends after it.
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(pieces)
}

/// A general-purpose HTTP client with the same TLS setup as registry connections (rustls with
/// the platform verifier) that follows redirects, for downloads that are not registry traffic
/// (HTTP build sources). It sends no credentials of its own, follows at most 10 redirects and
/// never one from https down to plain http. It connects within [`DEFAULT_CONNECT_TIMEOUT`] and
/// fails a download that receives nothing for 300 s (reqwest's read timeout, which for the
/// response head counts from the start of the request: these are downloads, without uploads).
pub fn http_client(user_agent: &str) -> Result<reqwest::Client, Error> {
    let (tls, _) = tls_config()?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let allowed = attempt
                .previous()
                .last()
                .is_none_or(|from| redirect_allowed(from, attempt.url()));
            if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else if !allowed {
                attempt.error("refusing a redirect from https to plain http")
            } else {
                attempt.follow()
            }
        }))
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .read_timeout(Duration::from_secs(300))
        .user_agent(user_agent)
        .build()
        .map_err(|e| Error::ClientSetup { source: Box::new(e) })
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

pub(crate) fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|v| v.parse().ok())
}

pub(crate) fn header_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok())
}

/// `host` without its port; IPv6 literals keep their brackets.
fn host_only(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.split(':').next().unwrap_or(registry)
}

fn is_loopback(registry: &str) -> bool {
    let host = host_only(registry);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `registry` (`host[:port]`) is reached over plain HTTP: loopback hosts always (as
/// docker treats them as insecure), others only when listed in `insecure`.
pub(crate) fn uses_plain_http(registry: &str, insecure: &[String]) -> bool {
    is_loopback(registry)
        || insecure
            .iter()
            .any(|entry| entry == registry || entry == host_only(registry))
}

/// Whether plain HTTP to `url`'s host is acceptable (see [`uses_plain_http`]).
pub(crate) fn plain_http_allowed(url: &Url, insecure: &[String]) -> bool {
    let host = url.host_str().unwrap_or("");
    let registry = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    uses_plain_http(&registry, insecure)
}

pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether a redirect from `from` to `to` may be followed: only to http(s), and never from
/// https down to plain http, where the transfer could be read or altered.
pub(crate) fn redirect_allowed(from: &Url, to: &Url) -> bool {
    matches!(
        (from.scheme(), to.scheme()),
        ("https", "https") | ("http", "http") | ("http", "https")
    )
}

/// Turns a distribution error body (`{"errors":[{"code","message"}]}`) into `CODE: message`
/// lines; anything else into a short text excerpt.
pub(crate) fn describe_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body)
        && !parsed.errors.is_empty()
    {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect();
        return parts.join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut excerpt: String = text.chars().take(200).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_registries() {
        let insecure = vec!["reg.local:5000".to_string(), "lab.example".to_string()];
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "reg.local:5000",
            "lab.example:443",
        ] {
            assert!(uses_plain_http(yes, &insecure), "{yes}");
        }
        for no in [
            "docker.io",
            "reg.local",
            "reg.local:5001",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!uses_plain_http(no, &insecure), "{no}");
        }
        assert!(plain_http_allowed(&url("http://127.0.0.1:80/token"), &[]));
        assert!(plain_http_allowed(&url("http://reg.local:5000/token"), &insecure));
        assert!(!plain_http_allowed(&url("http://auth.example/token"), &insecure));
    }

    #[test]
    fn redirects_keep_auth_on_origin_and_never_downgrade() {
        let base = url("https://registry.example/");
        assert!(same_origin(
            &url("https://registry.example:443/v2/x/blobs/sha256:a"),
            &base
        ));
        assert!(!same_origin(&url("https://storage.example/blob"), &base));
        assert!(!same_origin(&url("https://registry.example:8443/v2/"), &base));
        assert!(!same_origin(&url("http://registry.example/v2/"), &base));
        assert!(redirect_allowed(&base, &url("https://storage.example/x")));
        assert!(redirect_allowed(
            &url("http://127.0.0.1:5000/"),
            &url("https://storage.example/x")
        ));
        assert!(!redirect_allowed(&base, &url("http://storage.example/x")));
        assert!(!redirect_allowed(&base, &url("file:///etc/passwd")));
    }

    #[test]
    fn error_bodies_become_readable_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}},{"code":"DENIED"}]}"#;
        assert_eq!(
            describe_error_body(body),
            "MANIFEST_UNKNOWN: manifest unknown; DENIED"
        );
        assert_eq!(describe_error_body(b"  oops \n"), "oops");
        assert_eq!(describe_error_body(b""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(describe_error_body(long.as_bytes()).chars().count(), 201);
    }
}
