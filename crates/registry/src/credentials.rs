//! Where registry credentials come from: the [`CredentialStore`] trait and two stores,
//! [`NoCredentials`] and [`DockerConfigCredentials`] (the docker CLI's `config.json` and its
//! credential helpers, read only when a registry first asks for credentials).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::error::CredentialsError;

/// The key docker uses for Docker Hub in `config.json` and with credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The user name that marks [`Credentials::password`] as an identity (refresh) token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A source of credentials. A client asks it at most once per registry (see
/// [`Client::with_credentials`](crate::Client::with_credentials)), when that registry first
/// answers a request with an authentication challenge; never for registries that do not.
///
/// Implementations may block (credential helpers run processes); the client calls them on a
/// blocking thread.
pub trait CredentialStore: Send + Sync {
    /// The credentials for `registry` (`host[:port]` as written in the image reference, e.g.
    /// `docker.io`), or `None` to stay anonymous.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError>;
}

/// A user name and password. A user name of `<token>` means the password is an identity token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, or `<token>` for an identity token.
    pub username: String,
    /// The password or identity token.
    pub password: String,
}

impl Credentials {
    /// The identity token, when these credentials are one.
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }
}

impl fmt::Debug for Credentials {
    // Never print secrets, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Anonymous access: never has credentials.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCredentials;

impl CredentialStore for NoCredentials {
    fn credentials(&self, _registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        Ok(None)
    }
}

/// Credentials from the docker CLI configuration (`config.json`), as `docker login` leaves them.
///
/// Lookup order follows docker: a per-registry `credHelpers` entry, else the `credsStore`
/// helper, else the `auths` entry (base64 `auth`, `username`/`password`, or `identitytoken`).
/// Helpers run as `docker-credential-<name> get` with the server URL on stdin.
///
/// The file is read on the first lookup, not when the store is made, so that a build that
/// needs no credentials never reads it (nor fails on a broken one). Once read it is kept for
/// the store's lifetime; a failed read is tried again at the next lookup.
#[derive(Debug)]
pub struct DockerConfigCredentials {
    /// The file, or `None` when there is no home directory to find it in (anonymous).
    path: Option<PathBuf>,
    config: Mutex<Option<Arc<ConfigFile>>>,
    helper_path: Option<OsString>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// What errors call a configuration given as bytes rather than read from a file.
const IN_MEMORY_NAME: &str = "config.json";

impl DockerConfigCredentials {
    /// The docker CLI's configuration: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`. Only the location is decided here (from the environment
    /// now); the file is read on the first lookup. A missing file (or no home directory) means
    /// anonymous access.
    pub fn from_env() -> DockerConfigCredentials {
        let dir = match (std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME")) {
            (Some(dir), _) if !dir.is_empty() => Some(PathBuf::from(dir)),
            (_, Some(home)) => Some(PathBuf::from(home).join(".docker")),
            _ => None,
        };
        DockerConfigCredentials {
            path: dir.map(|dir| dir.join("config.json")),
            config: Mutex::new(None),
            helper_path: None,
        }
    }

    /// The given `config.json`, read on the first lookup; a missing file means anonymous
    /// access.
    pub fn from_file(path: impl Into<PathBuf>) -> DockerConfigCredentials {
        DockerConfigCredentials {
            path: Some(path.into()),
            config: Mutex::new(None),
            helper_path: None,
        }
    }

    /// Parses the contents of a `config.json` now; errors call it `config.json`.
    pub fn from_json(json: &[u8]) -> Result<DockerConfigCredentials, CredentialsError> {
        let config = parse_config(json, Path::new(IN_MEMORY_NAME))?;
        Ok(DockerConfigCredentials {
            path: None,
            config: Mutex::new(Some(Arc::new(config))),
            helper_path: None,
        })
    }

    /// Sets the `PATH` under which credential helpers are looked up (only for the helper
    /// processes; the default is this process's `PATH`).
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> DockerConfigCredentials {
        self.helper_path = Some(path.into());
        self
    }

    /// The configuration file this store reads, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's name for messages.
    fn name(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(IN_MEMORY_NAME))
    }

    /// The configuration, read on first use.
    fn config(&self) -> Result<Arc<ConfigFile>, CredentialsError> {
        // A poisoned lock only means a panic elsewhere; the cached value is still whole.
        let mut cached = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(config) = &*cached {
            return Ok(config.clone());
        }
        let config = match &self.path {
            None => ConfigFile::default(),
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => parse_config(&bytes, path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
                Err(source) => {
                    return Err(CredentialsError::Read {
                        path: path.clone(),
                        source,
                    });
                }
            },
        };
        let config = Arc::new(config);
        *cached = Some(config.clone());
        Ok(config)
    }

    fn run_helper(&self, helper: &str, server: &str) -> Result<Option<Credentials>, CredentialsError> {
        if helper.is_empty() || helper.contains(['/', '\\']) {
            return Err(CredentialsError::InvalidHelper {
                path: self.name().to_path_buf(),
                name: helper.to_string(),
            });
        }
        let program = format!("docker-credential-{helper}");
        let mut command = Command::new(&program);
        command
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.helper_path {
            command.env("PATH", path);
        }
        let spawn_failed = |source| CredentialsError::HelperSpawn {
            program: program.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_failed)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading stdin makes this fail; its exit status and
            // output below are the better error, so the write error is not reported.
            let _ = stdin.write_all(server.as_bytes());
        }
        let output = child.wait_with_output().map_err(spawn_failed)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
                return Ok(None);
            }
            let said = if stdout.trim().is_empty() {
                stderr.trim()
            } else {
                stdout.trim()
            };
            return Err(CredentialsError::HelperFailed {
                program,
                status: output.status,
                output: said.to_string(),
            });
        }
        let parsed: HelperOutput = serde_json::from_slice(&output.stdout)
            .map_err(|source| CredentialsError::HelperOutput { program, source })?;
        if parsed.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username: parsed.username,
            password: parsed.secret,
        }))
    }

    fn entry_credentials(
        &self,
        registry: &str,
        entry: &AuthEntry,
    ) -> Result<Option<Credentials>, CredentialsError> {
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials {
                username: IDENTITY_TOKEN_USER.into(),
                password: token.into(),
            }));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let invalid = |reason| CredentialsError::InvalidAuth {
                path: self.name().to_path_buf(),
                registry: registry.into(),
                reason,
            };
            let decoded = decode_base64(auth).ok_or_else(|| invalid("not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid("not utf-8"))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| invalid("expected user:password"))?;
            return Ok(Some(Credentials {
                username: user.into(),
                password: pass.into(),
            }));
        }
        match (entry.username.as_deref(), entry.password.as_deref()) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            })),
            _ => Ok(None),
        }
    }
}

fn parse_config(json: &[u8], path: &Path) -> Result<ConfigFile, CredentialsError> {
    serde_json::from_slice(json).map_err(|source| CredentialsError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn is_docker_hub(registry: &str) -> bool {
    matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

/// The host part of an `auths` key, which may be a bare host or a URL such as
/// `https://index.docker.io/v1/`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

impl CredentialStore for DockerConfigCredentials {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        let config = self.config()?;
        let hub = is_docker_hub(registry);
        let server = if hub { DOCKER_HUB_KEY } else { registry };
        let helper = config
            .cred_helpers
            .get(server)
            .or_else(|| config.cred_helpers.get(registry))
            .or(config.creds_store.as_ref());
        if let Some(helper) = helper {
            return self.run_helper(helper, server);
        }
        if let Some(entry) = config.auths.get(server) {
            return self.entry_credentials(registry, entry);
        }
        let wanted = |host: &str| {
            if hub {
                is_docker_hub(host)
            } else {
                host == registry
            }
        };
        match config.auths.iter().find(|(key, _)| wanted(key_host(key))) {
            Some((_, entry)) => self.entry_credentials(registry, entry),
            None => Ok(None),
        }
    }
}

/// Decodes standard base64 (padding optional), as docker writes `auth` fields.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let trimmed = input.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot encode a byte.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI").unwrap(), b"ab");
        assert!(decode_base64("a!b").is_none());
        assert!(decode_base64("Y").is_none());
    }

    #[test]
    fn auths_entries_and_docker_hub_key() {
        let config = DockerConfigCredentials::from_json(
            br#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                "https://ghcr.example.com/v2/":{"username":"u","password":"p"},
                "tok.example.com":{"identitytoken":"refresh"},
                "empty.example.com":{}
            }}"#,
        )
        .unwrap();
        let hub = config.credentials("docker.io").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("user", "pass"));
        let ghcr = config.credentials("ghcr.example.com").unwrap().unwrap();
        assert_eq!((ghcr.username.as_str(), ghcr.password.as_str()), ("u", "p"));
        let tok = config.credentials("tok.example.com").unwrap().unwrap();
        assert_eq!(tok.identity_token(), Some("refresh"));
        assert!(config.credentials("empty.example.com").unwrap().is_none());
        assert!(config.credentials("other.example.com").unwrap().is_none());
        assert!(!format!("{hub:?}").contains("pass\""));
    }

    #[test]
    fn config_file_is_read_at_the_first_lookup_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DockerConfigCredentials::from_file(dir.path().join("config.json"));
        assert!(missing.credentials("docker.io").unwrap().is_none());

        // Making the store reads nothing: the file can still be fixed before the first lookup.
        let path = dir.path().join("later.json");
        let store = DockerConfigCredentials::from_file(&path);
        std::fs::write(
            &path,
            br#"{"auths":{"r.example":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        assert_eq!(store.credentials("r.example").unwrap().unwrap().username, "u");
        // Once read, it is kept.
        std::fs::write(&path, b"{").unwrap();
        assert!(store.credentials("r.example").unwrap().is_some());

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{\"auths\": ?}").unwrap();
        let store = DockerConfigCredentials::from_file(&bad);
        let err = store.credentials("docker.io").unwrap_err();
        assert_eq!(err.to_string(), format!("failed to parse {}", bad.display()));
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(cause, "expected value at line 1 column 11");
        // A failed read is not remembered: fixing the file fixes the next lookup.
        std::fs::write(&bad, b"{}").unwrap();
        assert!(store.credentials("docker.io").unwrap().is_none());

        let unreadable = DockerConfigCredentials::from_file(dir.path());
        let err = unreadable.credentials("docker.io").unwrap_err();
        assert!(matches!(err, CredentialsError::Read { .. }), "{err:?}");
    }

    #[test]
    fn invalid_auth_entries_name_the_file() {
        let store = DockerConfigCredentials::from_json(br#"{"auths":{"r.example":{"auth":"!!"}}}"#).unwrap();
        let err = store.credentials("r.example").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid \"auth\" for r.example in config.json: not base64"
        );
    }

    #[test]
    fn credential_helpers_run_with_server_url_on_stdin() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // The fake helper echoes the server URL it was given as the user name, so the test sees
        // what was written to stdin; it knows no credentials for "unknown.example.com".
        let script = "#!/bin/sh\nread -r server\n\
            if [ \"$1\" != get ]; then exit 2; fi\n\
            case \"$server\" in *unknown*) echo 'credentials not found in native keychain'; exit 1;; esac\n\
            printf '{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"s3cret\"}' \"$server\" \"$server\"\n";
        for name in ["docker-credential-fake", "docker-credential-special"] {
            let path = dir.path().join(name);
            std::fs::write(&path, script.replace("s3cret", name)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let store = DockerConfigCredentials::from_json(
            br#"{"credsStore":"fake","credHelpers":{"special.example.com":"special"},
                 "auths":{"https://index.docker.io/v1/":{}}}"#,
        )
        .unwrap()
        .with_helper_path(dir.path().as_os_str());
        let hub = store.credentials("docker.io").unwrap().unwrap();
        assert_eq!(hub.username, DOCKER_HUB_KEY);
        assert_eq!(hub.password, "docker-credential-fake");
        let special = store.credentials("special.example.com").unwrap().unwrap();
        assert_eq!(special.username, "special.example.com");
        assert_eq!(special.password, "docker-credential-special");
        assert!(store.credentials("unknown.example.com").unwrap().is_none());

        let missing = DockerConfigCredentials::from_json(br#"{"credsStore":"absent"}"#)
            .unwrap()
            .with_helper_path(dir.path().as_os_str());
        let err = missing.credentials("example.com").unwrap_err();
        assert_eq!(err.to_string(), "failed to run docker-credential-absent");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("No such file or directory"), "{cause}");
    }
}
