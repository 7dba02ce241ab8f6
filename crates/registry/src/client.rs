//! The distribution client: request plumbing (scheme choice, auth retry, redirects) and the
//! manifest and blob operations built on it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, Platform, Reference, media_type};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
use sha2::Digest as _;

use crate::auth::{TokenCache, parse_challenges};
use crate::{CredentialStore, Error, NoCredentials};

/// Manifests and indexes larger than this are refused (the limit distribution itself uses).
const MANIFEST_LIMIT: u64 = 4 << 20;
/// How much of an error body is read to explain a failure.
const ERROR_BODY_LIMIT: usize = 64 << 10;
/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Every manifest type this client can read, offered on manifest requests.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// How a [`Client`] reaches registries.
#[derive(Clone)]
pub struct ClientConfig {
    /// Registries (`host[:port]`, or a bare host for every port) to reach over plain HTTP.
    /// Loopback hosts (localhost, 127.0.0.0/8, ::1) always use plain HTTP, as docker treats them
    /// as insecure by default.
    pub insecure: Vec<String>,
    /// Where credentials come from.
    pub credentials: Arc<dyn CredentialStore>,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure: Vec::new(),
            credentials: Arc::new(NoCredentials),
            user_agent: "kiln".into(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("insecure", &self.insecure)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// An OCI distribution client. Cheap to clone: clones share connections and the token cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("insecure", &self.inner.insecure)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    insecure: Vec<String>,
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) tokens: TokenCache,
    /// The TLS certificate verifier, which knows (once asked) why HTTPS is unavailable when
    /// the machine has no trusted roots; reported per request so that plain-HTTP registries
    /// keep working.
    tls: Arc<LazyVerifier>,
}

/// What a request needs the right to do; decides the token scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// One repository on one registry, as requests address it.
pub(crate) struct Target {
    /// The registry as written in the reference: the key for credentials and tokens.
    pub registry: String,
    repository: String,
    /// The reference, for messages.
    reference: String,
    /// `scheme://host[:port]/` of the registry's API.
    base: Url,
    access: Access,
}

impl Target {
    pub fn scope(&self) -> String {
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        format!("repository:{}:{actions}", self.repository)
    }

    fn url(&self, tail: &str) -> Result<Url, Error> {
        let text = format!("{}v2/{}/{tail}", self.base, self.repository);
        Url::parse(&text).map_err(|e| Error::InvalidResponse {
            url: text,
            reason: format!("invalid url: {e}"),
        })
    }

    fn digest_mismatch(&self, expected: &Digest, actual: &Digest) -> Error {
        let (expected, actual) = (expected.clone(), actual.clone());
        Error::DigestMismatch {
            reference: self.reference.clone(),
            expected,
            actual,
        }
    }

    fn size_mismatch(&self, descriptor: &Descriptor, actual: u64) -> Error {
        let (digest, expected) = (descriptor.digest.clone(), descriptor.size);
        Error::SizeMismatch {
            reference: self.reference.clone(),
            digest,
            expected,
            actual,
        }
    }

    pub fn unauthorized(&self, message: String) -> Error {
        Error::Unauthorized {
            reference: self.reference.clone(),
            registry: self.registry.clone(),
            message,
        }
    }

    async fn http_error(&self, action: &'static str, url: &Url, response: Response) -> Error {
        let status = response.status().as_u16();
        let message = error_excerpt(response).await;
        Error::Http {
            action,
            reference: self.reference.clone(),
            url: url.to_string(),
            status,
            message,
        }
    }
}

/// A request that can be built again for the retry after authentication.
struct Request {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Body,
    follow_redirects: bool,
}

enum Body {
    Empty,
    Bytes(Bytes),
    File(PathBuf, u64),
}

impl Request {
    fn new(method: Method, url: Url) -> Request {
        let follow_redirects = method == Method::GET || method == Method::HEAD;
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            follow_redirects,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
}

/// A manifest or index as received.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The exact bytes received.
    pub bytes: Bytes,
    /// Its media type (from `Content-Type`, or the document's `mediaType` when the header is
    /// missing or generic).
    pub media_type: String,
    /// The sha256 of `bytes`.
    pub digest: Digest,
}

/// A reference resolved to a single-platform image manifest.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference that was resolved.
    pub reference: Reference,
    /// The digest of the index the reference pointed at, when it pointed at one.
    pub index_digest: Option<Digest>,
    /// The single-platform manifest's exact bytes.
    pub manifest: FetchedManifest,
    /// The manifest parsed from those bytes.
    pub parsed: ImageManifest,
}

/// What to upload as a blob.
#[derive(Clone, Debug)]
pub enum BlobBody {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, streamed from disk.
    File(PathBuf),
}

/// A blob download in progress. [`BlobReader::chunk`] verifies size and digest against the
/// descriptor: the end of the stream is reported only once both matched.
pub struct BlobReader {
    response: Response,
    hasher: sha2::Sha256,
    received: u64,
    descriptor: Descriptor,
    reference: String,
    url: String,
    state: ReaderState,
}

#[derive(PartialEq, Eq)]
enum ReaderState {
    Streaming,
    Verified,
    Failed,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("url", &self.url)
            .field("digest", &self.descriptor.digest)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The descriptor being downloaded.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The next chunk of the blob; `Ok(None)` once all of it arrived and matched the descriptor.
    /// Errors with [`Error::SizeMismatch`] as soon as the stream exceeds the descriptor's size,
    /// and with [`Error::SizeMismatch`] or [`Error::DigestMismatch`] at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        match self.state {
            ReaderState::Verified => return Ok(None),
            ReaderState::Failed => {
                return Err(Error::InvalidResponse {
                    url: self.url.clone(),
                    reason: "blob download already failed".into(),
                });
            }
            ReaderState::Streaming => {}
        }
        self.state = ReaderState::Failed;
        let size_mismatch = |actual| Error::SizeMismatch {
            reference: self.reference.clone(),
            digest: self.descriptor.digest.clone(),
            expected: self.descriptor.size,
            actual,
        };
        match self.response.chunk().await {
            Err(source) => Err(Error::Transport {
                url: self.url.clone(),
                source,
            }),
            Ok(Some(chunk)) => {
                self.received += chunk.len() as u64;
                if self.received > self.descriptor.size {
                    return Err(size_mismatch(self.received));
                }
                self.hasher.update(&chunk);
                self.state = ReaderState::Streaming;
                Ok(Some(chunk))
            }
            Ok(None) => {
                if self.received != self.descriptor.size {
                    return Err(size_mismatch(self.received));
                }
                let actual = Digest::from_sha256(self.hasher.finalize_reset().into());
                if actual != self.descriptor.digest {
                    return Err(Error::DigestMismatch {
                        reference: self.reference.clone(),
                        expected: self.descriptor.digest.clone(),
                        actual,
                    });
                }
                self.state = ReaderState::Verified;
                Ok(None)
            }
        }
    }
}

/// The TLS setup for every HTTPS connection: rustls with the platform verifier, made on first
/// use ([`LazyVerifier`]).
fn tls_config() -> Result<(rustls::ClientConfig, Arc<LazyVerifier>), Error> {
    // The ring provider is passed explicitly rather than installed process-wide, so this can
    // neither fail nor conflict with another crate's choice of default provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(LazyVerifier {
        provider: provider.clone(),
        verifier: std::sync::OnceLock::new(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ClientSetup { source: Box::new(e) })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // reqwest does not set ALPN on a preconfigured config; without it HTTP/2 is never chosen.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, verifier))
}

/// The platform certificate verifier, made when the first HTTPS connection needs it: loading
/// the machine's trusted roots takes milliseconds that builds talking only to plain-HTTP
/// registries (a loopback registry, say) should not pay at every start.
#[derive(Debug)]
pub(crate) struct LazyVerifier {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl LazyVerifier {
    /// The verifier, or why there is none (no trusted roots could be loaded).
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                rustls_platform_verifier::Verifier::new(self.provider.clone()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(format!("no trusted root certificates: {e}")))
    }
}

impl rustls::client::danger::ServerCertVerifier for LazyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        // Asked for every handshake's hello: answered from the provider, without the roots
        // (the platform verifier answers the same way).
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A general-purpose HTTP client with the same TLS setup as registry connections (rustls with
/// the platform verifier) that follows redirects, for downloads that are not registry traffic
/// (HTTP build sources). It sends no credentials of its own, follows at most 10 redirects and
/// never one from https down to plain http.
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
        .connect_timeout(Duration::from_secs(30))
        // No overall timeout (downloads can be large), but a stalled connection must not hang
        // a build forever.
        .read_timeout(Duration::from_secs(300))
        .user_agent(user_agent)
        .build()
        .map_err(|e| Error::ClientSetup { source: Box::new(e) })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|v| v.parse().ok())
}

fn header_length(headers: &HeaderMap) -> Option<u64> {
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

/// Whether `registry` (`host[:port]`) is reached over plain HTTP.
fn uses_plain_http(registry: &str, insecure: &[String]) -> bool {
    is_loopback(registry)
        || insecure
            .iter()
            .any(|entry| entry == registry || entry == host_only(registry))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Whether a redirect from `from` to `to` may be followed: only to http(s), and never from
/// https down to plain http, where the transfer could be read or altered.
fn redirect_allowed(from: &Url, to: &Url) -> bool {
    matches!(
        (from.scheme(), to.scheme()),
        ("https", "https") | ("http", "http") | ("http", "https")
    )
}

/// Reads a body of at most `limit` bytes.
pub(crate) async fn read_limited(mut response: Response, limit: u64, url: &str) -> Result<Bytes, Error> {
    let too_large = || Error::TooLarge {
        url: url.to_string(),
        limit,
    };
    if header_str(response.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok())
        > Some(limit)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| Error::Transport {
        url: url.into(),
        source,
    })? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// A readable excerpt of an error response body (best effort: read errors yield what arrived).
pub(crate) async fn error_excerpt(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    describe_error_body(&body)
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

/// The media type of a manifest: the `Content-Type` unless missing or generic, else the
/// document's `mediaType`, else a guess from its shape (OCI allows omitting `mediaType`).
pub(crate) fn detect_media_type(content_type: Option<&str>, body: &[u8]) -> String {
    if let Some(specific) = content_type.and_then(specific_media_type) {
        return specific.to_string();
    }
    let header = content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        config: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe {
            media_type: Some(m), ..
        }) if !m.is_empty() => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => media_type::OCI_INDEX.to_string(),
        Ok(Probe { config: Some(_), .. }) => media_type::OCI_MANIFEST.to_string(),
        _ if header.is_empty() => "application/octet-stream".to_string(),
        _ => header.to_string(),
    }
}

/// The media type in a `Content-Type` value, unless it is missing or too generic to say what
/// kind of manifest the body is.
fn specific_media_type(content_type: &str) -> Option<&str> {
    let value = content_type.split(';').next().map(str::trim).unwrap_or("");
    (!matches!(
        value,
        "" | "application/json" | "text/plain" | "application/octet-stream"
    ))
    .then_some(value)
}

/// The index entry for `wanted`: an exact variant match first, then any compatible one.
pub(crate) fn select_platform<'i>(index: &'i ImageIndex, wanted: &Platform) -> Option<&'i Descriptor> {
    let candidates = || {
        index
            .manifests
            .iter()
            .filter(|d| media_type::is_manifest(&d.media_type))
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.matches(wanted)))
    };
    candidates()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.variant == wanted.variant))
        .or_else(|| candidates().next())
}

impl Inner {
    pub(crate) fn plain_http_allowed(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or("");
        let registry = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        uses_plain_http(&registry, &self.insecure)
    }

    fn target(&self, reference: &Reference, access: Access) -> Result<Target, Error> {
        let registry = reference.registry();
        // Docker Hub's API is not served at the name images use.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if uses_plain_http(registry, &self.insecure) {
            "http"
        } else {
            "https"
        };
        if scheme == "https"
            && let Err(problem) = self.tls.verifier()
        {
            return Err(Error::TlsUnavailable {
                registry: registry.to_string(),
                reason: problem.to_string(),
            });
        }
        let text = format!("{scheme}://{host}/");
        let base = Url::parse(&text).map_err(|e| Error::InvalidResponse {
            url: text,
            reason: format!("invalid registry url: {e}"),
        })?;
        Ok(Target {
            registry: registry.to_string(),
            repository: reference.repository().to_string(),
            reference: reference.to_string(),
            base,
            access,
        })
    }

    /// Sends `request`, authenticating and retrying once on 401.
    async fn send(&self, target: &Target, request: &Request) -> Result<Response, Error> {
        let scope = target.scope();
        let mut retried = false;
        loop {
            let auth = self.tokens.get(&target.registry, &scope);
            let response = self.send_once(target, request, auth.as_deref()).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if retried {
                let excerpt = error_excerpt(response).await;
                return Err(target.unauthorized(format!("access denied: {excerpt}")));
            }
            let challenges: Vec<_> = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(parse_challenges)
                .collect();
            if challenges.is_empty() {
                return Err(target.unauthorized("401 without an authentication challenge".into()));
            }
            self.tokens.remove(&target.registry, &scope);
            self.authenticate(target, &challenges).await?;
            retried = true;
        }
    }

    /// One attempt, following redirects for GET and HEAD. `Authorization` goes only to the
    /// registry's own origin, never to the storage hosts registries redirect blob requests to.
    async fn send_once(
        &self,
        target: &Target,
        request: &Request,
        auth: Option<&str>,
    ) -> Result<Response, Error> {
        let mut url = request.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self.http.request(request.method.clone(), url.clone());
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            if let Some(auth) = auth
                && same_origin(&url, &target.base)
            {
                builder = builder.header(reqwest::header::AUTHORIZATION, auth);
            }
            builder = match &request.body {
                Body::Empty => builder,
                Body::Bytes(bytes) => builder.body(bytes.clone()),
                Body::File(path, len) => {
                    let file = tokio::fs::File::open(path).await.map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                    builder.header(CONTENT_LENGTH, *len).body(file)
                }
            };
            let response = builder.send().await.map_err(|source| Error::Transport {
                url: url.to_string(),
                source,
            })?;
            let redirect = matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            if !(request.follow_redirects && redirect) {
                return Ok(response);
            }
            let invalid = |reason: String| Error::InvalidResponse {
                url: url.to_string(),
                reason,
            };
            let location = header_str(response.headers(), LOCATION.as_str())
                .ok_or_else(|| invalid("redirect without a location".into()))?;
            let next = url
                .join(location)
                .map_err(|e| invalid(format!("invalid redirect location: {e}")))?;
            if !redirect_allowed(&url, &next) {
                return Err(invalid(format!("refusing redirect to {next}")));
            }
            url = next;
        }
        Err(Error::InvalidResponse {
            url: url.to_string(),
            reason: "too many redirects".into(),
        })
    }

    async fn blob_exists(&self, target: &Target, digest: &Digest) -> Result<bool, Error> {
        let url = target.url(&format!("blobs/{digest}"))?;
        let response = self
            .send(target, &Request::new(Method::HEAD, url.clone()))
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(target.http_error("check blob", &url, response).await),
        }
    }
}

impl Client {
    /// Creates a client. Fails only if the HTTP client cannot be built; a machine without
    /// trusted root certificates still gets a client, which can reach plain-HTTP registries.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let (tls_config, tls) = tls_config()?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            // No overall timeout (blobs can be large), but a stalled connection must not hang
            // a build forever.
            .read_timeout(Duration::from_secs(300))
            .user_agent(config.user_agent)
            .build()
            .map_err(|e| Error::ClientSetup { source: Box::new(e) })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                insecure: config.insecure,
                credentials: config.credentials,
                tokens: TokenCache::default(),
                tls,
            }),
        })
    }

    /// GETs the manifest or index for `reference` (by digest when it has one, else by tag).
    /// Verifies the bytes against the reference's digest, or against `Docker-Content-Digest`
    /// when fetching by tag.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        let target = self.inner.target(reference, Access::Pull)?;
        let url = target.url(&format!("manifests/{}", reference.manifest_reference()))?;
        let request = Request::new(Method::GET, url.clone()).header(ACCEPT.as_str(), MANIFEST_ACCEPT);
        let response = self.inner.send(&target, &request).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::ManifestUnknown {
                    reference: reference.to_string(),
                });
            }
            _ => return Err(target.http_error("fetch manifest", &url, response).await),
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str()).map(str::to_string);
        let announced = header_digest(response.headers());
        let bytes = read_limited(response, MANIFEST_LIMIT, url.as_str()).await?;
        let digest = Digest::of(&bytes);
        // A pinned digest is what the caller trusts; otherwise check what the registry claimed.
        if let Some(expected) = reference.digest().cloned().or(announced)
            && expected != digest
        {
            return Err(target.digest_mismatch(&expected, &digest));
        }
        let media_type = detect_media_type(content_type.as_deref(), &bytes);
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEADs the manifest: its descriptor without the body, or `None` when the registry does
    /// not know it. Falls back to a GET when the registry omits the digest, size or media type.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>, Error> {
        let target = self.inner.target(reference, Access::Pull)?;
        let url = target.url(&format!("manifests/{}", reference.manifest_reference()))?;
        let request = Request::new(Method::HEAD, url.clone()).header(ACCEPT.as_str(), MANIFEST_ACCEPT);
        let response = self.inner.send(&target, &request).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(target.http_error("check manifest", &url, response).await),
        }
        let headers = response.headers();
        let content_type = header_str(headers, CONTENT_TYPE.as_str()).and_then(specific_media_type);
        match (header_digest(headers), header_length(headers), content_type) {
            (Some(digest), Some(size), Some(media_type)) => {
                if let Some(expected) = reference.digest()
                    && *expected != digest
                {
                    return Err(target.digest_mismatch(expected, &digest));
                }
                Ok(Some(Descriptor::new(media_type, digest, size)))
            }
            _ => match self.fetch_manifest(reference).await {
                Ok(m) => Ok(Some(Descriptor::new(
                    m.media_type,
                    m.digest,
                    m.bytes.len() as u64,
                ))),
                Err(Error::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Resolves `reference` to the single-platform manifest for `platform`, going through an
    /// index when the reference points at one.
    pub async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage, Error> {
        let fetched = self.fetch_manifest(reference).await?;
        let (index_digest, manifest) = if media_type::is_index(&fetched.media_type) {
            let index: ImageIndex =
                serde_json::from_slice(&fetched.bytes).map_err(|source| Error::InvalidJson {
                    what: "image index",
                    reference: reference.to_string(),
                    source,
                })?;
            let Some(chosen) = select_platform(&index, platform) else {
                let mut available: Vec<String> = Vec::new();
                for p in index.manifests.iter().filter_map(|d| d.platform.as_ref()) {
                    let name = p.to_string();
                    if p.os != "unknown" && !available.contains(&name) {
                        available.push(name);
                    }
                }
                return Err(Error::NoMatchingPlatform {
                    reference: reference.to_string(),
                    wanted: platform.to_string(),
                    available,
                });
            };
            let child_ref = reference.with_digest(chosen.digest.clone());
            let child = self.fetch_manifest(&child_ref).await?;
            if child.bytes.len() as u64 != chosen.size {
                return Err(Error::SizeMismatch {
                    reference: child_ref.to_string(),
                    digest: chosen.digest.clone(),
                    expected: chosen.size,
                    actual: child.bytes.len() as u64,
                });
            }
            (Some(fetched.digest), child)
        } else {
            (None, fetched)
        };
        if !media_type::is_manifest(&manifest.media_type) {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: manifest.media_type,
            });
        }
        let parsed = serde_json::from_slice(&manifest.bytes).map_err(|source| Error::InvalidJson {
            what: "image manifest",
            reference: reference.to_string(),
            source,
        })?;
        Ok(ResolvedImage {
            reference: reference.clone(),
            index_digest,
            manifest,
            parsed,
        })
    }

    /// Starts downloading the blob `descriptor` names from `reference`'s repository, following
    /// redirects to storage. The reader verifies size and digest.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<BlobReader, Error> {
        let target = self.inner.target(reference, Access::Pull)?;
        let url = target.url(&format!("blobs/{}", descriptor.digest))?;
        let response = self
            .inner
            .send(&target, &Request::new(Method::GET, url.clone()))
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::BlobUnknown {
                    reference: target.reference,
                    digest: descriptor.digest.clone(),
                });
            }
            _ => return Err(target.http_error("fetch blob", &url, response).await),
        }
        if let Some(length) = header_length(response.headers())
            && length != descriptor.size
        {
            return Err(target.size_mismatch(descriptor, length));
        }
        Ok(BlobReader {
            url: response.url().to_string(),
            response,
            hasher: sha2::Sha256::new(),
            received: 0,
            descriptor: descriptor.clone(),
            reference: target.reference,
            state: ReaderState::Streaming,
        })
    }

    /// Whether `reference`'s repository has the blob `digest`.
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error> {
        let target = self.inner.target(reference, Access::Pull)?;
        self.inner.blob_exists(&target, digest).await
    }

    /// Uploads a blob to `reference`'s repository in one request (POST for an upload session,
    /// then PUT with the digest), unless the repository already has it. File bodies are
    /// streamed from disk.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        body: BlobBody,
    ) -> Result<(), Error> {
        let target = self.inner.target(reference, Access::Push)?;
        let body = match body {
            BlobBody::Bytes(bytes) => {
                if bytes.len() as u64 != descriptor.size {
                    return Err(target.size_mismatch(descriptor, bytes.len() as u64));
                }
                let actual = Digest::of(&bytes);
                if actual != descriptor.digest {
                    return Err(target.digest_mismatch(&descriptor.digest, &actual));
                }
                Body::Bytes(bytes)
            }
            BlobBody::File(path) => {
                let len = tokio::fs::metadata(&path)
                    .await
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                if len != descriptor.size {
                    return Err(target.size_mismatch(descriptor, len));
                }
                Body::File(path, len)
            }
        };
        if self.inner.blob_exists(&target, &descriptor.digest).await? {
            return Ok(());
        }
        let start = target.url("blobs/uploads/")?;
        let request = Request::new(Method::POST, start.clone()).header(CONTENT_LENGTH.as_str(), "0");
        let response = self.inner.send(&target, &request).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(target.http_error("start blob upload", &start, response).await);
        }
        let location =
            header_str(response.headers(), LOCATION.as_str()).ok_or_else(|| Error::InvalidResponse {
                url: start.to_string(),
                reason: "upload session without a location".into(),
            })?;
        let mut put = start.join(location).map_err(|e| Error::InvalidResponse {
            url: start.to_string(),
            reason: format!("invalid upload location {location:?}: {e}"),
        })?;
        put.query_pairs_mut()
            .append_pair("digest", &descriptor.digest.to_string());
        let mut request =
            Request::new(Method::PUT, put.clone()).header(CONTENT_TYPE.as_str(), "application/octet-stream");
        request.body = body;
        let response = self.inner.send(&target, &request).await?;
        if !response.status().is_success() {
            return Err(target.http_error("push blob", &put, response).await);
        }
        Ok(())
    }

    /// PUTs a manifest or index under the reference's tag, or its digest when it has no tag.
    /// Returns the digest of the bytes (checked against the reference's digest, if any).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, Error> {
        let target = self.inner.target(reference, Access::Push)?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest()
            && *expected != digest
        {
            return Err(target.digest_mismatch(expected, &digest));
        }
        let name = reference.tag().map_or_else(|| digest.to_string(), str::to_string);
        let url = target.url(&format!("manifests/{name}"))?;
        let mut request = Request::new(Method::PUT, url.clone()).header(CONTENT_TYPE.as_str(), media_type);
        request.body = Body::Bytes(bytes);
        let response = self.inner.send(&target, &request).await?;
        if !response.status().is_success() {
            return Err(target.http_error("push manifest", &url, response).await);
        }
        // A registry that stored different bytes than we sent would break every digest we hand out.
        if let Some(stored) = header_digest(response.headers())
            && stored != digest
        {
            return Err(target.digest_mismatch(&digest, &stored));
        }
        Ok(digest)
    }
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
    fn media_type_from_header_or_document() {
        let oci = media_type::OCI_MANIFEST;
        assert_eq!(
            detect_media_type(Some(&format!("{oci}; charset=utf-8")), b"{}"),
            oci
        );
        let doc =
            br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert_eq!(
            detect_media_type(Some("application/json"), doc),
            media_type::DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            detect_media_type(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            media_type::OCI_INDEX
        );
        assert_eq!(
            detect_media_type(Some("text/plain"), br#"{"config":{},"layers":[]}"#),
            oci
        );
        assert_eq!(
            detect_media_type(Some("application/json"), b"garbage"),
            "application/json"
        );
        assert_eq!(detect_media_type(None, b"garbage"), "application/octet-stream");
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

    #[test]
    fn platform_selection_prefers_exact_variant() {
        let entry = |platform: &str, byte: &[u8]| {
            let mut d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(byte), 1);
            d.platform = Platform::parse(platform);
            d
        };
        let index = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: vec![
                entry("linux/arm64", b"a"),
                entry("linux/arm64/v8", b"b"),
                entry("linux/amd64", b"c"),
            ],
            annotations: Default::default(),
        };
        let pick = |p: &str| select_platform(&index, &Platform::parse(p).unwrap()).map(|d| d.digest.clone());
        assert_eq!(pick("linux/arm64/v8"), Some(Digest::of(b"b")));
        assert_eq!(pick("linux/arm64"), Some(Digest::of(b"a")));
        assert_eq!(pick("linux/amd64"), Some(Digest::of(b"c")));
        assert_eq!(pick("linux/s390x"), None);
    }

    #[test]
    fn trusted_roots_are_loaded_only_when_https_needs_them() {
        let (_, lazy) = tls_config().unwrap();
        assert!(
            lazy.verifier.get().is_none(),
            "building the client loads no roots"
        );
        let _ = lazy.verifier();
        assert!(lazy.verifier.get().is_some(), "the first HTTPS use does");
    }
}
