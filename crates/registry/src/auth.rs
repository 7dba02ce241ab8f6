//! The `WWW-Authenticate` handshake: challenge parsing, token requests and the token cache.
//!
//! Tokens are cached per (registry, scope) and only ever attached to requests to the origin of
//! that registry (see `client::Inner::send`), so a token never leaves the host it was issued for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use crate::client::{Inner, Target, error_excerpt, read_limited};
use crate::{Credentials, Error};

/// Token responses larger than this are refused; real ones are a few KiB.
const TOKEN_LIMIT: u64 = 1 << 20;
/// The token lifetime when the response does not say (the token spec's default).
const DEFAULT_TOKEN_TTL: u64 = 60;

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

/// A cached `Authorization` header value and, for tokens, when it stops being valid.
struct CachedAuth {
    header: String,
    expires: Option<Instant>,
}

/// `Authorization` header values per (registry, scope), with an expiry for tokens.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<(String, String), CachedAuth>>,
}

impl TokenCache {
    pub fn get(&self, registry: &str, scope: &str) -> Option<String> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let cached = entries.get(&(registry.to_string(), scope.to_string()))?;
        match cached.expires {
            Some(at) if at <= Instant::now() => None,
            _ => Some(cached.header.clone()),
        }
    }

    pub fn insert(&self, registry: &str, scope: &str, header: String, ttl: Option<Duration>) {
        // Renew a little early so a token does not expire between the check and the request.
        let expires = ttl.map(|ttl| Instant::now() + ttl - (ttl / 10).min(Duration::from_secs(10)));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            (registry.to_string(), scope.to_string()),
            CachedAuth { header, expires },
        );
    }

    pub fn remove(&self, registry: &str, scope: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&(registry.to_string(), scope.to_string()));
    }
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

impl Inner {
    /// Answers the challenges of a 401 for `target`: fetches and caches a Bearer token, or caches
    /// Basic credentials. The caller retries its request once afterwards.
    pub(crate) async fn authenticate(&self, target: &Target, challenges: &[Challenge]) -> Result<(), Error> {
        let scope = target.scope();
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        let credentials = self.credentials_for(&target.registry).await?;
        if let Some(challenge) = bearer {
            let realm = challenge
                .params
                .get("realm")
                .ok_or_else(|| target.unauthorized("bearer challenge without a realm".into()))?;
            let service = challenge.params.get("service").map(String::as_str);
            let (token, ttl) = self
                .fetch_token(target, realm, service, &scope, credentials.as_ref())
                .await?;
            self.tokens
                .insert(&target.registry, &scope, format!("Bearer {token}"), Some(ttl));
            Ok(())
        } else if basic.is_some() {
            match credentials {
                Some(c) if c.identity_token().is_none() => {
                    self.tokens
                        .insert(&target.registry, &scope, basic_header(&c), None);
                    Ok(())
                }
                Some(_) => {
                    Err(target.unauthorized("an identity token cannot answer a basic challenge".into()))
                }
                None => Err(target.unauthorized("authentication required".into())),
            }
        } else {
            let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
            Err(target.unauthorized(format!(
                "unsupported authentication challenge [{}]",
                schemes.join(", ")
            )))
        }
    }

    async fn fetch_token(
        &self,
        target: &Target,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<(String, Duration), Error> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| target.unauthorized(format!("invalid token realm {realm:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if credentials.is_none() || self.plain_http_allowed(&url) => {}
            "http" => {
                return Err(
                    target.unauthorized(format!("refusing to send credentials over plain http to {realm}"))
                );
            }
            other => return Err(target.unauthorized(format!("unsupported token realm scheme {other:?}"))),
        }
        let request = match credentials.and_then(Credentials::identity_token) {
            Some(refresh_token) => {
                // Identity tokens are exchanged with the OAuth2 form POST of the docker token spec.
                let mut form = format!(
                    "grant_type=refresh_token&client_id=kiln&scope={}",
                    form_encode(scope)
                );
                if let Some(service) = service {
                    form.push_str(&format!("&service={}", form_encode(service)));
                }
                form.push_str(&format!("&refresh_token={}", form_encode(refresh_token)));
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form)
            }
            None => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    query.append_pair("scope", scope);
                }
                let request = self.http.get(url.clone());
                match credentials {
                    Some(c) => request.header(AUTHORIZATION, basic_header(c)),
                    None => request,
                }
            }
        };
        let url_text = url.to_string();
        let response = request.send().await.map_err(|source| Error::Transport {
            url: url_text.clone(),
            source,
        })?;
        if !response.status().is_success() {
            let status = response.status();
            let excerpt = error_excerpt(response).await;
            return Err(target.unauthorized(format!("token request to {realm} returned {status}: {excerpt}")));
        }
        let body = read_limited(response, TOKEN_LIMIT, &url_text).await?;
        parse_token_response(&body)
            .map_err(|source| Error::InvalidJson {
                what: "token response",
                reference: realm.to_string(),
                source,
            })?
            .ok_or_else(|| target.unauthorized(format!("token response from {realm} has no token")))
    }

    /// Asks the credential store on a blocking thread, since helpers run processes.
    async fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let store = self.credentials.clone();
        let owned = registry.to_string();
        tokio::task::spawn_blocking(move || store.credentials(&owned))
            .await
            .map_err(|e| Error::Credentials {
                registry: registry.to_string(),
                message: e.to_string(),
            })?
    }
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
    fn token_cache_honours_expiry() {
        let cache = TokenCache::default();
        cache.insert("r", "s", "Bearer a".into(), Some(Duration::from_secs(60)));
        cache.insert("r", "t", "Bearer b".into(), Some(Duration::ZERO));
        assert_eq!(cache.get("r", "s").as_deref(), Some("Bearer a"));
        assert_eq!(cache.get("r", "t"), None);
        assert_eq!(cache.get("other", "s"), None);
        cache.remove("r", "s");
        assert_eq!(cache.get("r", "s"), None);
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
