//! The `WWW-Authenticate` handshake: challenge parsing, token requests, whose credentials a
//! token was obtained with, and the token cache.
//!
//! Tokens are cached per (registry, scope, credential identity): a token obtained with one
//! build's credentials is only ever sent for requests made with the same credentials (or, for
//! anonymous tokens, without any), and only to the origin of that registry (see
//! `client::Client::send_once`), so a token never leaves the host it was issued for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use sha2::Digest as _;

use crate::credentials::{CredentialStore, Credentials};
use crate::error::{CredentialsError, Error};
use crate::http::{Body, Http, plain_http_allowed};
use crate::target::Target;

/// Token responses larger than this are refused; real ones are a few KiB.
const TOKEN_LIMIT: u64 = 1 << 20;
/// The token lifetime when the response does not say (the token spec's default).
const DEFAULT_TOKEN_TTL: u64 = 60;
/// How long a Basic `Authorization` value is reused before the registry is asked again whether
/// it still wants one; bounded so that no credentials linger in the shared cache.
const BASIC_TTL: Duration = Duration::from_secs(600);

/// Whose credentials an `Authorization` value was made with: a digest of the user name and
/// secret (never the secret itself), or anonymous.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum CredentialId {
    Anonymous,
    Digest([u8; 32]),
}

impl CredentialId {
    pub fn of(credentials: Option<&Credentials>) -> CredentialId {
        let Some(credentials) = credentials else {
            return CredentialId::Anonymous;
        };
        let mut hasher = sha2::Sha256::new();
        // Length-prefixed, so that no two (user, secret) pairs hash the same bytes.
        for part in [&credentials.username, &credentials.password] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        CredentialId::Digest(hasher.finalize().into())
    }
}

/// What a credential store answered for one registry.
pub(crate) struct Resolved {
    pub credentials: Option<Credentials>,
    pub id: CredentialId,
}

/// The credentials one client handle (one build) uses: its store, asked at most once per
/// registry and only when that registry challenges a request.
pub(crate) struct BuildCredentials {
    store: Arc<dyn CredentialStore>,
    resolved: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Resolved>>>>>,
}

impl BuildCredentials {
    pub fn new(store: Arc<dyn CredentialStore>) -> BuildCredentials {
        BuildCredentials {
            store,
            resolved: Mutex::default(),
        }
    }

    fn cell(&self, registry: &str) -> Arc<tokio::sync::OnceCell<Arc<Resolved>>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved.entry(registry.to_string()).or_default().clone()
    }

    /// The identity for `registry` if the store was already asked, without asking it.
    pub fn known(&self, registry: &str) -> Option<CredentialId> {
        let resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        resolved.get(registry)?.get().map(|r| r.id.clone())
    }

    /// The store's answer for `registry`, asked on a blocking thread (helpers run processes)
    /// the first time only. A failure is not remembered.
    pub async fn resolve(&self, registry: &str) -> Result<Arc<Resolved>, Error> {
        let fail = |source| Error::Credentials {
            registry: registry.to_string(),
            source,
        };
        let cell = self.cell(registry);
        let resolved = cell
            .get_or_try_init(|| async {
                let store = self.store.clone();
                let owned = registry.to_string();
                let credentials = tokio::task::spawn_blocking(move || store.credentials(&owned))
                    .await
                    .map_err(|source| CredentialsError::Aborted { source })??;
                let id = CredentialId::of(credentials.as_ref());
                Ok(Arc::new(Resolved { credentials, id }))
            })
            .await
            .map_err(fail)?;
        Ok(resolved.clone())
    }
}

/// A cached `Authorization` header value and when it stops being valid.
struct CachedAuth {
    header: String,
    expires: Instant,
}

type TokenKey = (String, String, CredentialId);

/// `Authorization` header values per (registry, scope, credential identity), shared by every
/// handle of a client.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<TokenKey, CachedAuth>>,
}

impl TokenCache {
    fn key(registry: &str, scope: &str, id: &CredentialId) -> TokenKey {
        (registry.to_string(), scope.to_string(), id.clone())
    }

    pub fn get(&self, registry: &str, scope: &str, id: &CredentialId) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let cached = entries.get(&Self::key(registry, scope, id))?;
        (cached.expires > Instant::now()).then(|| cached.header.clone())
    }

    pub fn insert(&self, registry: &str, scope: &str, id: &CredentialId, header: String, ttl: Duration) {
        // Renew a little early so a token does not expire between the check and the request.
        let now = Instant::now();
        let expires = now + ttl - (ttl / 10).min(Duration::from_secs(10));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries are dropped here, so a long-lived client does not accumulate them.
        entries.retain(|_, cached| cached.expires > now);
        entries.insert(Self::key(registry, scope, id), CachedAuth { header, expires });
    }

    /// Forgets the value for the key, if it is still `header` (another request may have
    /// replaced it meanwhile).
    pub fn remove(&self, registry: &str, scope: &str, id: &CredentialId, header: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(registry, scope, id);
        if entries.get(&key).is_some_and(|cached| cached.header == header) {
            entries.remove(&key);
        }
    }
}

/// Answers the challenges of a 401 for `target` with `credentials`: fetches a Bearer token, or
/// makes the Basic header. Returns the `Authorization` value and how long it may be reused.
pub(crate) async fn answer(
    http: &Http,
    insecure: &[String],
    target: &Target,
    challenges: &[Challenge],
    credentials: Option<&Credentials>,
) -> Result<(String, Duration), Error> {
    let bearer = challenges.iter().find(|c| c.scheme == "bearer");
    let basic = challenges.iter().find(|c| c.scheme == "basic");
    if let Some(challenge) = bearer {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| target.unauthorized("bearer challenge without a realm".into()))?;
        let service = challenge.params.get("service").map(String::as_str);
        let token_request = TokenRequest {
            realm,
            service,
            scope: &target.scope(),
            credentials,
        };
        let (token, ttl) = fetch_token(http, insecure, target, &token_request).await?;
        return Ok((format!("Bearer {token}"), ttl));
    }
    if basic.is_none() {
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        return Err(target.unauthorized(format!(
            "unsupported authentication challenge [{}]",
            schemes.join(", ")
        )));
    }
    match credentials {
        Some(c) if c.identity_token().is_none() => Ok((basic_header(c), BASIC_TTL)),
        Some(_) => Err(target.unauthorized("an identity token cannot answer a basic challenge".into())),
        None => Err(target.unauthorized("authentication required".into())),
    }
}

/// What a token request asks for, and with which credentials.
struct TokenRequest<'a> {
    realm: &'a str,
    service: Option<&'a str>,
    scope: &'a str,
    credentials: Option<&'a Credentials>,
}

async fn fetch_token(
    http: &Http,
    insecure: &[String],
    target: &Target,
    request: &TokenRequest<'_>,
) -> Result<(String, Duration), Error> {
    let realm = request.realm;
    let mut url =
        Url::parse(realm).map_err(|e| target.unauthorized(format!("invalid token realm {realm:?}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if request.credentials.is_none() || plain_http_allowed(&url, insecure) => {}
        "http" => {
            return Err(
                target.unauthorized(format!("refusing to send credentials over plain http to {realm}"))
            );
        }
        other => return Err(target.unauthorized(format!("unsupported token realm scheme {other:?}"))),
    }
    let (builder, body) = match request.credentials.and_then(Credentials::identity_token) {
        Some(refresh_token) => {
            // Identity tokens are exchanged with the OAuth2 form POST of the docker token spec.
            let mut form = format!(
                "grant_type=refresh_token&client_id=kiln&scope={}",
                form_encode(request.scope)
            );
            if let Some(service) = request.service {
                form.push_str(&format!("&service={}", form_encode(service)));
            }
            form.push_str(&format!("&refresh_token={}", form_encode(refresh_token)));
            let builder = http
                .request(Method::POST, url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            (builder, Body::Bytes(form.into()))
        }
        None => {
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = request.service {
                    query.append_pair("service", service);
                }
                query.append_pair("scope", request.scope);
            }
            let builder = http.request(Method::GET, url.clone());
            let builder = match request.credentials {
                Some(c) => builder.header(AUTHORIZATION, basic_header(c)),
                None => builder,
            };
            (builder, Body::Empty)
        }
    };
    let response = http.send(builder, &url, &body).await?;
    if !response.status().is_success() {
        let status = response.status();
        let excerpt = http.error_excerpt(response).await;
        return Err(target.unauthorized(format!("token request to {realm} returned {status}: {excerpt}")));
    }
    let body = http.read_limited(response, TOKEN_LIMIT).await?;
    parse_token_response(&body)
        .map_err(|source| Error::InvalidJson {
            what: "token response",
            reference: realm.to_string(),
            source,
        })?
        .ok_or_else(|| target.unauthorized(format!("token response from {realm} has no token")))
}

/// One authentication challenge: a lower-cased scheme and its parameters (keys lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses a `WWW-Authenticate` header value, which may hold several challenges
/// (`Basic realm="a", Bearer realm="b",service="c"`). Quoted values may contain commas and
/// backslash escapes. Malformed parts are skipped rather than failing the whole header.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let bytes = header.as_bytes();
    let mut pos = 0;
    let mut challenges: Vec<Challenge> = Vec::new();
    let is_sep = |b: u8| b == b',' || b.is_ascii_whitespace();
    while pos < bytes.len() {
        while pos < bytes.len() && is_sep(bytes[pos]) {
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && !is_sep(bytes[pos]) && bytes[pos] != b'=' {
            pos += 1;
        }
        let token = &header[start..pos];
        let mut look = pos;
        while look < bytes.len() && bytes[look] == b' ' {
            look += 1;
        }
        if look < bytes.len() && bytes[look] == b'=' && !token.is_empty() {
            // A parameter: read its value, quoted or not.
            pos = look + 1;
            while pos < bytes.len() && bytes[pos] == b' ' {
                pos += 1;
            }
            let mut value = String::new();
            if pos < bytes.len() && bytes[pos] == b'"' {
                pos += 1;
                let mut chars = header[pos..].char_indices();
                let mut end = header.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = pos + i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                pos = end;
            } else {
                let start = pos;
                while pos < bytes.len() && !is_sep(bytes[pos]) {
                    pos += 1;
                }
                value.push_str(&header[start..pos]);
            }
            if let Some(current) = challenges.last_mut() {
                current.params.insert(token.to_ascii_lowercase(), value);
            }
        } else if !token.is_empty() && token.bytes().all(is_token_char) {
            challenges.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        } else if token.is_empty() {
            // A stray '=' with no name before it: skip it.
            pos += 1;
        }
    }
    challenges
}

/// Whether `b` may appear in an HTTP token (RFC 9110 `tchar`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Extracts the token and its lifetime from a token endpoint response.
pub(crate) fn parse_token_response(body: &[u8]) -> Result<Option<(String, Duration)>, serde_json::Error> {
    let parsed: TokenResponse = serde_json::from_slice(body)?;
    // Clamped to a day so that a hostile value cannot overflow the expiry instant.
    let seconds = parsed
        .expires_in
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_TOKEN_TTL)
        .min(86_400);
    let ttl = Duration::from_secs(seconds);
    let token = parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()));
    Ok(token.map(|t| (t, ttl)))
}

/// The `Authorization` value for HTTP Basic authentication.
pub(crate) fn basic_header(credentials: &Credentials) -> String {
    format!(
        "Basic {}",
        encode_base64(format!("{}:{}", credentials.username, credentials.password).as_bytes())
    )
}

fn encode_base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#;
        let challenges = parse_challenges(header);
        assert_eq!(
            challenges,
            vec![Challenge {
                scheme: "bearer".into(),
                params: params(&[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/busybox:pull,push"),
                ]),
            }]
        );
    }

    #[test]
    fn parses_multiple_challenges_escapes_and_unquoted_values() {
        let header = r#"Basic realm="a \"quoted\" realm, with comma", Bearer realm=https://t.example/token , service = reg,error="invalid_token""#;
        let challenges = parse_challenges(header);
        assert_eq!(challenges.len(), 2);
        assert_eq!(challenges[0].scheme, "basic");
        assert_eq!(
            challenges[0].params,
            params(&[("realm", r#"a "quoted" realm, with comma"#)])
        );
        assert_eq!(challenges[1].scheme, "bearer");
        assert_eq!(
            challenges[1].params,
            params(&[
                ("realm", "https://t.example/token"),
                ("service", "reg"),
                ("error", "invalid_token")
            ])
        );
        // Garbage never panics and yields what it can.
        assert_eq!(parse_challenges("").len(), 0);
        assert_eq!(parse_challenges(r#"=,="unterminated"#).len(), 0);
        assert_eq!(
            parse_challenges(r#"Bearer realm="unterminated, x"#)[0].params["realm"],
            "unterminated, x"
        );
        assert_eq!(parse_challenges("Basic").len(), 1);
    }

    #[test]
    fn token_response_variants() {
        let (token, ttl) = parse_token_response(br#"{"token":"abc","expires_in":300}"#)
            .unwrap()
            .unwrap();
        assert_eq!((token.as_str(), ttl), ("abc", Duration::from_secs(300)));
        let (token, ttl) = parse_token_response(br#"{"access_token":"xyz"}"#)
            .unwrap()
            .unwrap();
        assert_eq!((token.as_str(), ttl), ("xyz", Duration::from_secs(60)));
        assert!(parse_token_response(br#"{"token":""}"#).unwrap().is_none());
        let (_, ttl) = parse_token_response(br#"{"token":"t","expires_in":18446744073709551615}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ttl, Duration::from_secs(86_400));
        assert!(parse_token_response(b"not json").is_err());
    }

    #[test]
    fn token_cache_honours_expiry_and_credential_identity() {
        let cache = TokenCache::default();
        let user = |name: &str, password: &str| {
            CredentialId::of(Some(&Credentials {
                username: name.into(),
                password: password.into(),
            }))
        };
        let (alice, bob) = (user("alice", "a"), user("bob", "b"));
        let anonymous = CredentialId::of(None);
        assert!(
            alice == user("alice", "a"),
            "the identity is the same for the same credentials"
        );
        assert!(
            alice != user("alice", "other secret"),
            "and differs with the secret"
        );
        assert!(
            user("ab", "c") != user("a", "bc"),
            "user and secret do not run together"
        );
        assert!(alice != anonymous);

        cache.insert("r", "s", &alice, "Bearer a".into(), Duration::from_secs(60));
        cache.insert("r", "t", &alice, "Bearer b".into(), Duration::ZERO);
        assert_eq!(cache.get("r", "s", &alice).as_deref(), Some("Bearer a"));
        assert_eq!(
            cache.get("r", "s", &bob),
            None,
            "another user never gets alice's token"
        );
        assert_eq!(cache.get("r", "s", &anonymous), None);
        assert_eq!(cache.get("r", "t", &alice), None, "expired");
        assert_eq!(cache.get("other", "s", &alice), None);

        cache.remove("r", "s", &alice, "Bearer replaced meanwhile");
        assert_eq!(cache.get("r", "s", &alice).as_deref(), Some("Bearer a"));
        cache.remove("r", "s", &alice, "Bearer a");
        assert_eq!(cache.get("r", "s", &alice), None);
        // Inserting drops what expired.
        cache.insert("r", "u", &bob, "Bearer c".into(), Duration::from_secs(60));
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
    }

    #[test]
    fn basic_header_and_form_encoding() {
        let c = Credentials {
            username: "user".into(),
            password: "pa:ss".into(),
        };
        assert_eq!(basic_header(&c), "Basic dXNlcjpwYTpzcw==");
        assert_eq!(encode_base64(b"ab"), "YWI=");
        assert_eq!(encode_base64(b""), "");
        assert_eq!(
            form_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
