//! The distribution client: its configuration, the handles builds get with their own
//! credentials, and the request plumbing (scheme choice, the auth retry, redirects). The
//! manifest and blob operations are in `manifest` and `blob`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use oci::Reference;
use reqwest::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{self, BuildCredentials, TokenCache, parse_challenges};
use crate::credentials::{CredentialStore, NoCredentials};
use crate::error::Error;
use crate::http::{
    Body, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, Http, Timeouts, header_str, redirect_allowed,
    same_origin, uses_plain_http,
};
use crate::target::{Access, Target};
use crate::tls::LazyVerifier;

/// Redirect hops followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Attempts of one request when the registry answers 401: the first, one with a token another
/// handle with the same credentials already obtained, and one after our own handshake.
const MAX_AUTH_ATTEMPTS: usize = 3;

/// How a [`Client`] reaches registries. Credentials are not part of it: each build brings its
/// own through [`Client::with_credentials`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registries (`host[:port]`, or a bare host for every port) to reach over plain HTTP.
    /// Loopback hosts (localhost, 127.0.0.0/8, ::1) always use plain HTTP, as docker treats them
    /// as insecure by default.
    pub insecure: Vec<String>,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
    /// How long connecting (TCP and TLS) may take; [`DEFAULT_CONNECT_TIMEOUT`] by default.
    pub connect_timeout: Duration,
    /// How long a registry may stay silent before a request fails with [`Error::Timeout`]:
    /// before answering (counted from when the request, or the last piece of its upload, went
    /// out) and between pieces of a body. [`DEFAULT_READ_TIMEOUT`] by default. There is no
    /// overall deadline, since blobs can be large.
    pub read_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure: Vec::new(),
            user_agent: "kiln".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// An OCI distribution client. Cheap to clone: clones share connections, the TLS setup, the
/// token cache and the credentials.
///
/// [`Client::new`] makes an anonymous client; [`Client::with_credentials`] makes a handle
/// that uses other credentials and shares everything else, so one client serves many builds,
/// each with its own credentials. A token is only reused by handles whose store gave the same
/// credentials for that registry.
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    credentials: Arc<BuildCredentials>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("insecure", &self.shared.insecure)
            .field("timeouts", &self.shared.http.timeouts())
            .finish_non_exhaustive()
    }
}

/// What every handle of a client shares.
pub(crate) struct Shared {
    pub(crate) http: Http,
    insecure: Vec<String>,
    tokens: TokenCache,
    /// The TLS certificate verifier, which knows (once asked) why HTTPS is unavailable when
    /// the machine has no trusted roots; reported per request so that plain-HTTP registries
    /// keep working.
    tls: Arc<LazyVerifier>,
}

/// A request that can be built again for the retry after authentication.
pub(crate) struct Request {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    pub(crate) body: Body,
    follow_redirects: bool,
}

impl Request {
    pub(crate) fn new(method: Method, url: Url) -> Request {
        let follow_redirects = method == Method::GET || method == Method::HEAD;
        Request {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            follow_redirects,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
}

impl Client {
    /// Creates an anonymous client. Fails only if the HTTP client cannot be built; a machine
    /// without trusted root certificates still gets a client, which can reach plain-HTTP
    /// registries.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            read: config.read_timeout,
        };
        let (http, tls) = Http::new(&config.user_agent, timeouts)?;
        Ok(Client {
            shared: Arc::new(Shared {
                http,
                insecure: config.insecure,
                tokens: TokenCache::default(),
                tls,
            }),
            credentials: Arc::new(BuildCredentials::new(Arc::new(NoCredentials))),
        })
    }

    /// A handle on the same client (connections, TLS setup, token cache) that authenticates
    /// with `credentials`: what one build uses. The store is asked at most once per registry
    /// for the handle's lifetime, and only when that registry asks for authentication.
    /// Tokens are shared with other handles only when their stores gave the same credentials.
    pub fn with_credentials(&self, credentials: Arc<dyn CredentialStore>) -> Client {
        Client {
            shared: self.shared.clone(),
            credentials: Arc::new(BuildCredentials::new(credentials)),
        }
    }

    pub(crate) fn target(&self, reference: &Reference, access: Access) -> Result<Target, Error> {
        let registry = reference.registry();
        // Docker Hub's API is not served at the name images use.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        let scheme = if uses_plain_http(registry, &self.shared.insecure) {
            "http"
        } else {
            "https"
        };
        if scheme == "https"
            && let Err(problem) = self.shared.tls.verifier()
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

    /// Sends `request`, authenticating on 401 with this handle's credentials and retrying.
    ///
    /// Before the registry first challenges this handle, requests go without `Authorization`
    /// (the credential store is not asked). After a challenge the store's answer decides the
    /// credential identity, under which tokens are looked up and cached.
    pub(crate) async fn send(&self, target: &Target, request: &Request) -> Result<Response, Error> {
        let scope = target.scope();
        let tokens = &self.shared.tokens;
        let mut handshake_done = false;
        let mut attempt = 1;
        loop {
            let known = self.credentials.known(&target.registry);
            let sent = known.and_then(|id| tokens.get(&target.registry, &scope, &id));
            let response = self.send_once(target, request, sent.as_deref()).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if handshake_done || attempt == MAX_AUTH_ATTEMPTS {
                let excerpt = self.shared.http.error_excerpt(response).await;
                return Err(target.unauthorized(format!("access denied: {excerpt}")));
            }
            attempt += 1;
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
            let resolved = self.credentials.resolve(&target.registry).await?;
            match tokens.get(&target.registry, &scope, &resolved.id) {
                // Another handle with the same credentials has a token this request did not
                // carry: try it before asking for a new one.
                Some(cached) if sent.as_ref() != Some(&cached) => continue,
                Some(stale) => tokens.remove(&target.registry, &scope, &resolved.id, &stale),
                None => {}
            }
            let (header, ttl) = auth::answer(
                &self.shared.http,
                &self.shared.insecure,
                target,
                &challenges,
                resolved.credentials.as_ref(),
            )
            .await?;
            tokens.insert(&target.registry, &scope, &resolved.id, header, ttl);
            handshake_done = true;
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
        let http = &self.shared.http;
        let mut url = request.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = http.request(request.method.clone(), url.clone());
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            if let Some(auth) = auth
                && same_origin(&url, &target.base)
            {
                builder = builder.header(AUTHORIZATION, auth);
            }
            let response = http.send(builder, &url, &request.body).await?;
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
}
