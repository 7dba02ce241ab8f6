//! Build secrets (`RUN --mount=type=secret`, and `env=` secrets in an exec's `secretenv`).
//!
//! A secret's value comes from the client (`--secret id=ID,src=FILE|env=VAR`, see
//! [`crate::SecretSource`]) and is read when a step needs it. It is written only into a fresh
//! tmpfs (never a disk), as one file with the mount's mode and owner, and that file is
//! bind-mounted read-only at the target; the tmpfs is unmounted when the step ends. Values never
//! reach a layer (the executor removes the mount-point stub it had to create), the image config,
//! history, cache keys (an exec's digest covers the secret's id and options, not its value),
//! logs or progress (the frontend masks `$NAME` of env secrets in step names as `****`).
//!
//! As in BuildKit: a secret the build was not given is an error `secret ID: not found` when the
//! mount is `required`, and otherwise mounts nothing (or, for `env=`, sets no variable). Values
//! are at most [`super::session::MAX_SECRET_SIZE`] bytes.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use llb::pb;
use store::{Mounted, Store};

use super::{OpFailure, Session};

fn not_found(id: &str) -> OpFailure {
    OpFailure::SecretNotFound(id.to_string())
}

/// The environment variables `NAME=value` of an exec's `env=` secrets, in order. Missing optional
/// secrets give no variable. Blocking: reads secret files.
pub(super) fn env(session: &Session, secrets: &[pb::SecretEnv]) -> Result<Vec<(String, String)>, OpFailure> {
    let mut vars = Vec::new();
    for secret in secrets {
        match session.secret(&secret.id)? {
            Some(value) => {
                let value = String::from_utf8(value).map_err(|_| {
                    OpFailure::Invalid(format!(
                        "secret {}: not valid UTF-8, so it cannot be the environment variable {}",
                        secret.id, secret.name
                    ))
                })?;
                if value.contains('\0') {
                    return Err(OpFailure::Invalid(format!(
                        "secret {}: contains a NUL byte, so it cannot be the environment variable {}",
                        secret.id, secret.name
                    )));
                }
                vars.push((secret.name.clone(), value));
            }
            None if secret.optional => {}
            None => return Err(not_found(&secret.id)),
        }
    }
    Ok(vars)
}

/// Prepares a secret file mount: the value in a fresh tmpfs, with the mount's mode and owner.
/// Returns the executor's mount and the tmpfs, which must outlive the run; `None` for an
/// optional secret the build was not given, which mounts nothing (as BuildKit skips it).
/// Blocking: reads the secret and mounts a tmpfs.
pub(super) fn mount(
    store: &Store,
    session: &Session,
    mount: &pb::Mount,
) -> Result<Option<(executor::MountKind, Mounted)>, OpFailure> {
    let options = mount.secret_opt.clone().unwrap_or_default();
    let value = match session.secret(&options.id)? {
        Some(value) => value,
        None if options.optional => return Ok(None),
        None => return Err(not_found(&options.id)),
    };
    // Room for the file and the filesystem's own bookkeeping.
    let tmpfs = store.mount_tmpfs(value.len() as u64 + 64 * 1024)?;
    let path = tmpfs.path().join("secret");
    let failed = |source| OpFailure::SecretStage {
        id: options.id.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    file.write_all(&value).map_err(failed)?;
    let uid = options.uid;
    let gid = options.gid;
    let mode = options.mode;
    if mode > 0o7777 {
        return Err(invalid_option(&options.id, "mode", mode));
    }
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(failed)?;
    drop(file);
    Ok(Some((
        executor::MountKind::Bind {
            source: path,
            readonly: true,
        },
        tmpfs,
    )))
}

fn invalid_option(id: &str, what: &str, value: u32) -> OpFailure {
    OpFailure::Invalid(format!("secret {id}: invalid {what} {value:o}"))
}
