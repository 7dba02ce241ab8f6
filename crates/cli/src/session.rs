//! What a build takes from the client besides its context: `--secret` and `--ssh`, parsed the
//! way buildx parses them.
//!
//! Secret values are not read here: the engine reads a file or variable when a step mounts the
//! secret, so a value lives only as long as that step. A secret file that does not exist is an
//! error now, though, before anything runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::{SecretSource, SshSource};

/// Largest secret value accepted, as BuildKit's limit (the engine checks it again).
const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// The value of a secret for a daemon that asks for it: `None` when its variable is unset.
pub(crate) fn read_secret(source: &SecretSource) -> Result<Option<Vec<u8>>, String> {
    let value = match source {
        SecretSource::Env(name) => match std::env::var_os(name) {
            Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
            None => return Ok(None),
        },
        SecretSource::File(path) => {
            use std::io::Read;
            let mut value = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_SIZE + 1).read_to_end(&mut value))
                .map_err(|e| format!("failed to read {}: {e}", path.display()))?;
            value
        }
        SecretSource::Client(_) => return Err("a client secret cannot be served again".into()),
    };
    if value.len() as u64 > MAX_SECRET_SIZE {
        return Err(format!("too big: the limit is {MAX_SECRET_SIZE} bytes"));
    }
    Ok(Some(value))
}

/// Parses `--secret` values: `id=ID[,src|source=FILE][,env=VAR][,type=file|env]`.
pub(crate) fn secrets(specs: &[String]) -> Result<BTreeMap<String, SecretSource>, String> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, source) = secret(spec)?;
        if let SecretSource::File(path) = &source
            && !path.is_file()
        {
            return Err(format!(
                "--secret {spec}: {} is not a file (for an environment variable use env=VAR)",
                path.display()
            ));
        }
        out.insert(id, source);
    }
    Ok(out)
}

fn secret(spec: &str) -> Result<(String, SecretSource), String> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        let (key, value) = field.split_once('=').ok_or_else(|| {
            format!("invalid --secret {spec:?}: expected key=value fields, e.g. id=mytoken,src=token.txt")
        })?;
        let value = value.to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(value),
            "src" | "source" => src = Some(value),
            "env" => env = Some(value),
            "type" => match value.as_str() {
                "file" | "env" => kind = Some(value),
                other => {
                    return Err(format!(
                        "invalid --secret {spec:?}: unsupported type {other:?} (file or env)"
                    ));
                }
            },
            other => {
                return Err(format!(
                    "invalid --secret {spec:?}: unexpected key {other:?} (id, src, env, type)"
                ));
            }
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .or_else(|| env.clone())
        .ok_or_else(|| format!("invalid --secret {spec:?}: id= is required"))?;
    let source = match (kind.as_deref(), src, env) {
        (Some("env"), Some(_), _) => {
            return Err(format!(
                "invalid --secret {spec:?}: type=env takes env=, not src="
            ));
        }
        (Some("file"), _, Some(_)) => {
            return Err(format!(
                "invalid --secret {spec:?}: type=file takes src=, not env="
            ));
        }
        (_, Some(_), Some(_)) => {
            return Err(format!("invalid --secret {spec:?}: give src= or env=, not both"));
        }
        (Some("env"), None, env) => SecretSource::Env(env.unwrap_or_else(|| id.clone())),
        (Some("file"), src, None) => SecretSource::File(PathBuf::from(src.unwrap_or_else(|| id.clone()))),
        (_, Some(src), None) => SecretSource::File(PathBuf::from(src)),
        (_, None, Some(env)) => SecretSource::Env(env),
        // Neither: the variable named like the id when it is set, else the file of that name.
        (_, None, None) => {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
    };
    Ok((id, source))
}

/// Parses `--ssh` values: `default`, `ID`, `ID=SOCKET` or `ID=KEY[,KEY…]`.
pub(crate) fn ssh(specs: &[String]) -> Result<BTreeMap<String, SshSource>, String> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, paths) = match spec.split_once('=') {
            Some((id, paths)) => (
                id.to_string(),
                paths.split(',').map(PathBuf::from).collect::<Vec<_>>(),
            ),
            None => (spec.clone(), Vec::new()),
        };
        if id.is_empty() {
            return Err(format!(
                "invalid --ssh {spec:?}: expected default or ID[=SOCKET|KEY[,KEY…]]"
            ));
        }
        let source = if paths.is_empty() {
            let socket = std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("--ssh {spec}: SSH_AUTH_SOCK is not set: start an agent or give a socket or key, e.g. --ssh {id}=$HOME/.ssh/id_ed25519"))?;
            SshSource::Socket(PathBuf::from(socket))
        } else {
            for path in &paths {
                if !path.exists() {
                    return Err(format!("--ssh {spec}: {} does not exist", path.display()));
                }
            }
            let sockets = paths.iter().filter(|p| is_socket(p)).count();
            match (sockets, paths.len()) {
                (0, _) => SshSource::Keys(paths),
                (1, 1) => SshSource::Socket(paths[0].clone()),
                _ => {
                    return Err(format!(
                        "--ssh {spec}: give one agent socket or key files, not both"
                    ));
                }
            }
        };
        out.insert(id, source);
    }
    Ok(out)
}

fn is_socket(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_like_buildx() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "x").unwrap();
        let spec = format!("id=tok,src={}", file.display());
        assert_eq!(secrets(&[spec]).unwrap()["tok"], SecretSource::File(file.clone()));
        assert_eq!(
            secret("id=tok,env=MY_TOKEN").unwrap(),
            ("tok".into(), SecretSource::Env("MY_TOKEN".into()))
        );
        assert_eq!(
            secret("id=tok,type=env").unwrap(),
            ("tok".into(), SecretSource::Env("tok".into()))
        );
        assert_eq!(
            secret("env=ONLY_ENV").unwrap(),
            ("ONLY_ENV".into(), SecretSource::Env("ONLY_ENV".into()))
        );
        assert!(secret("id=a,src=x,env=y").unwrap_err().contains("not both"));
        assert!(secret("src=x").unwrap_err().contains("id= is required"));
        assert!(secret("id=a,typo=1").unwrap_err().contains("unexpected key"));
        assert!(
            secrets(&["id=a,src=/no/such/file".into()])
                .unwrap_err()
                .contains("is not a file")
        );
    }

    #[test]
    fn ssh_specs_name_sockets_or_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let parsed = ssh(&[
            format!("deploy={}", key.display()),
            format!("agent={}", sock.display()),
        ])
        .unwrap();
        assert_eq!(parsed["deploy"], SshSource::Keys(vec![key.clone()]));
        assert_eq!(parsed["agent"], SshSource::Socket(sock.clone()));
        assert!(
            ssh(&[format!("x={},{}", key.display(), sock.display())])
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            ssh(&["x=/no/such/key".into()])
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
