//! Where registry credentials come from: the [`CredentialStore`] trait and two stores.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::Error;

/// The key docker uses for Docker Hub in `config.json` and with credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The user name that marks [`Credentials::password`] as an identity (refresh) token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A source of credentials, asked once per authentication handshake.
///
/// Implementations may block (credential helpers run processes); the client calls them on a
/// blocking thread.
pub trait CredentialStore: Send + Sync {
    /// The credentials for `registry` (`host[:port]` as written in the image reference, e.g.
    /// `docker.io`), or `None` to stay anonymous.
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, Error>;
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
    fn credentials(&self, _registry: &str) -> Result<Option<Credentials>, Error> {
        Ok(None)
    }
}

/// Credentials from the docker CLI configuration (`config.json`), as `docker login` leaves them.
///
/// Lookup order follows docker: a per-registry `credHelpers` entry, else the `credsStore`
/// helper, else the `auths` entry (base64 `auth`, `username`/`password`, or `identitytoken`).
/// Helpers run as `docker-credential-<name> get` with the server URL on stdin.
#[derive(Clone, Debug, Default)]
pub struct DockerConfigCredentials {
    config: ConfigFile,
    helper_path: Option<OsString>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
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

impl DockerConfigCredentials {
    /// Reads `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. A missing file (or
    /// no home directory) means anonymous access.
    pub fn load() -> Result<DockerConfigCredentials, Error> {
        let dir = match (std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME")) {
            (Some(dir), _) if !dir.is_empty() => PathBuf::from(dir),
            (_, Some(home)) => PathBuf::from(home).join(".docker"),
            _ => return Ok(DockerConfigCredentials::default()),
        };
        DockerConfigCredentials::from_file(&dir.join("config.json"))
    }

    /// Reads the given `config.json`; a missing file means anonymous access.
    pub fn from_file(path: &Path) -> Result<DockerConfigCredentials, Error> {
        match std::fs::read(path) {
            Ok(bytes) => DockerConfigCredentials::from_json(&bytes).map_err(|e| match e {
                Error::InvalidJson { what, source, .. } => Error::InvalidJson {
                    what,
                    reference: path.display().to_string(),
                    source,
                },
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfigCredentials::default()),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the contents of a `config.json`.
    pub fn from_json(json: &[u8]) -> Result<DockerConfigCredentials, Error> {
        let config = serde_json::from_slice(json).map_err(|source| Error::InvalidJson {
            what: "docker config",
            reference: "config.json".into(),
            source,
        })?;
        Ok(DockerConfigCredentials {
            config,
            helper_path: None,
        })
    }

    /// Sets the `PATH` under which credential helpers are looked up (only for the helper
    /// processes; the default is this process's `PATH`).
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> DockerConfigCredentials {
        self.helper_path = Some(path.into());
        self
    }

    fn run_helper(&self, helper: &str, registry: &str, server: &str) -> Result<Option<Credentials>, Error> {
        let fail = |message: String| Error::Credentials {
            registry: registry.to_string(),
            message,
        };
        if helper.is_empty() || helper.contains(['/', '\\']) {
            return Err(fail(format!("invalid credential helper name {helper:?}")));
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
        let mut child = command.spawn().map_err(|e| fail(format!("run {program}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading stdin makes this fail; its exit status and
            // output below are the better error, so the write error is not reported.
            let _ = stdin.write_all(server.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|e| fail(format!("run {program}: {e}")))?;
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
            return Err(fail(format!("{program} get failed ({}): {said}", output.status)));
        }
        let parsed: HelperOutput = serde_json::from_slice(&output.stdout)
            .map_err(|e| fail(format!("{program} get: invalid output: {e}")))?;
        if parsed.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username: parsed.username,
            password: parsed.secret,
        }))
    }
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

fn entry_credentials(registry: &str, entry: &AuthEntry) -> Result<Option<Credentials>, Error> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USER.into(),
            password: token.into(),
        }));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let fail = |why: &str| Error::Credentials {
            registry: registry.into(),
            message: format!("invalid auth: {why}"),
        };
        let decoded = decode_base64(auth).ok_or_else(|| fail("not base64"))?;
        let text = String::from_utf8(decoded).map_err(|_| fail("not utf-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| fail("expected user:password"))?;
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

impl CredentialStore for DockerConfigCredentials {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let hub = is_docker_hub(registry);
        let server = if hub { DOCKER_HUB_KEY } else { registry };
        let helper = self
            .config
            .cred_helpers
            .get(server)
            .or_else(|| self.config.cred_helpers.get(registry))
            .or(self.config.creds_store.as_ref());
        if let Some(helper) = helper {
            return self.run_helper(helper, registry, server);
        }
        if let Some(entry) = self.config.auths.get(server) {
            return entry_credentials(registry, entry);
        }
        let wanted = |host: &str| {
            if hub {
                is_docker_hub(host)
            } else {
                host == registry
            }
        };
        match self.config.auths.iter().find(|(key, _)| wanted(key_host(key))) {
            Some((_, entry)) => entry_credentials(registry, entry),
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
    fn missing_config_file_is_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let store = DockerConfigCredentials::from_file(&dir.path().join("config.json")).unwrap();
        assert!(store.credentials("docker.io").unwrap().is_none());
        std::fs::write(dir.path().join("bad.json"), b"{").unwrap();
        let err = DockerConfigCredentials::from_file(&dir.path().join("bad.json")).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
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
        assert!(err.to_string().contains("docker-credential-absent"), "{err}");
    }
}
