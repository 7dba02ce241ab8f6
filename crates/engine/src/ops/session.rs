//! One build's client inputs ([`Session`]) and how they reach ops without leaking into another
//! build's work.
//!
//! A session travels with its build's solver job, never inside a vertex: an op finds the
//! sessions of the builds waiting for it in its [`Context`] and uses the first ([`Session::of`]).
//! Work is shared between builds only where that is sound:
//!
//! - a local source (a client's directory) is salted with its session's id, so it and whatever
//!   is built on it by a fast key are never shared with another build; what reads it by content
//!   (a COPY) is shared again through its content key;
//! - a step that mounts secrets or an ssh agent, and a download or a git fetch authenticated by
//!   secrets, is salted with a keyed digest ([`store::Store::keyed_digest`]) of exactly the
//!   values it would use: builds that would use the same values share it, builds with other
//!   values (or none) never do, and no value can be recovered from a key;
//! - entitlements (`--allow`) are checked for a build's whole graph before anything runs
//!   ([`check_entitlements`]), so a privileged step shared with a build that was granted it is
//!   never run for, nor handed to, one that was not.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use llb::pb;
use oci::Digest;
use solver::Context;
use store::Store;

use super::{OpFailure, ssh};
use crate::{Entitlement, SecretSource, SshSource};

/// Largest secret value accepted, as BuildKit's limit.
pub(super) const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// What one build brings from its client: the directories its local sources read, its
/// secrets, ssh agents and registry credentials, and the entitlements it was granted.
pub(crate) struct Session {
    /// Unique per build; local sources are salted with it.
    pub(crate) id: String,
    /// Directories of `local://NAME` sources.
    pub(crate) local_dirs: BTreeMap<String, PathBuf>,
    /// `--secret`s.
    pub(crate) secrets: BTreeMap<String, SecretSource>,
    /// `--ssh`es.
    pub(crate) ssh: BTreeMap<String, SshSource>,
    /// `--allow`.
    pub(crate) entitlements: BTreeSet<Entitlement>,
    /// The ssh agents started for `--ssh ID=KEY` ids, on first use.
    pub(crate) agents: ssh::Agents,
    /// The registry client with this build's credentials (a handle sharing the engine's
    /// connections; its tokens are never used for other credentials).
    pub(crate) registry: registry::Client,
    /// The `--cache-from` caches this build imported.
    pub(crate) remote_cache: Vec<Arc<crate::remote::Imported>>,
    /// The cache mounts this build's steps used, for `--cache-to …,cache-mounts=true`.
    pub(crate) cache_mounts_used: std::sync::Mutex<Vec<crate::remote::UsedCacheMount>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets' sources or the credentials.
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session of a build: its client's secrets, ssh agents, entitlements and registry
    /// credentials (`registry`), and the local directories its sources name.
    pub(crate) fn of_build(
        request: &crate::BuildRequest,
        registry: &registry::Client,
        local_dirs: BTreeMap<String, PathBuf>,
    ) -> Session {
        Session {
            id: crate::new_session_id(),
            local_dirs,
            secrets: request.secrets.clone(),
            ssh: request.ssh.clone(),
            entitlements: request.entitlements.clone(),
            agents: ssh::Agents::default(),
            registry: registry.clone(),
            remote_cache: Vec::new(),
            cache_mounts_used: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A session for a build with no client features beyond local directories, reaching
    /// registries with `registry`.
    pub(crate) fn with_locals(
        id: String,
        local_dirs: BTreeMap<String, PathBuf>,
        registry: registry::Client,
    ) -> Session {
        Session {
            id,
            local_dirs,
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            entitlements: BTreeSet::new(),
            agents: ssh::Agents::default(),
            registry,
            remote_cache: Vec::new(),
            cache_mounts_used: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The session an op uses: that of the oldest build waiting for it.
    pub(crate) fn of(ctx: &Context<Session>) -> Result<Arc<Session>, OpFailure> {
        ctx.sessions().into_iter().next().ok_or(OpFailure::NoSession)
    }

    /// The value of secret `id`, or `None` when the build was given no secret of that id (or its
    /// environment variable is unset). Blocking: reads the client's file.
    pub(crate) fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, OpFailure> {
        let Some(source) = self.secrets.get(id) else {
            return Ok(None);
        };
        match source {
            SecretSource::Env(name) => {
                let Some(value) = std::env::var_os(name) else {
                    return Ok(None);
                };
                let value = std::os::unix::ffi::OsStringExt::into_vec(value);
                check_size(id, value.len() as u64)?;
                Ok(Some(value))
            }
            SecretSource::Client(client) => {
                let value = client.0.secret(id).map_err(|message| OpFailure::SecretClient {
                    id: id.to_string(),
                    message,
                })?;
                if let Some(value) = &value {
                    check_size(id, value.len() as u64)?;
                }
                Ok(value)
            }
            SecretSource::File(path) => {
                let failed = |source| OpFailure::SecretRead {
                    id: id.to_string(),
                    path: path.clone(),
                    source,
                };
                let file = std::fs::File::open(path).map_err(failed)?;
                let size = file.metadata().map_err(failed)?.len();
                check_size(id, size)?;
                let mut value = Vec::with_capacity(size as usize);
                file.take(MAX_SECRET_SIZE + 1)
                    .read_to_end(&mut value)
                    .map_err(failed)?;
                check_size(id, value.len() as u64)?;
                Ok(Some(value))
            }
        }
    }

    /// The salt of work that uses the secrets `ids`: a keyed digest of their values (a missing
    /// one, or one that cannot be read, counts as such). With `only_if_given`, `None` when the
    /// build has none of them, so that unauthenticated work stays shared by every build.
    pub(crate) fn secrets_salt(
        &self,
        store: &Store,
        ids: &BTreeSet<String>,
        only_if_given: bool,
    ) -> Option<Digest> {
        if only_if_given && !ids.iter().any(|id| self.secrets.contains_key(id)) {
            return None;
        }
        let mut data = b"secrets\n".to_vec();
        for id in ids {
            field(&mut data, id.as_bytes());
            match self.secret(id) {
                Ok(Some(value)) => {
                    data.push(b'v');
                    field(&mut data, &value);
                }
                Ok(None) => data.push(b'-'),
                // The step will fail when it reads it; until then, that is what it depends on.
                Err(e) => {
                    data.push(b'e');
                    field(&mut data, e.to_string().as_bytes());
                }
            }
        }
        Some(store.keyed_digest(&data))
    }

    /// The salt of a step that mounts the ssh agents `ids`: a keyed digest of the keys each
    /// agent holds (the public keys a socket's agent lists, the key files given for the others),
    /// so that only builds forwarding the same keys share it. An agent that cannot be asked
    /// makes the step this build's own.
    pub(crate) fn ssh_salt(&self, store: &Store, ids: &BTreeSet<String>) -> Digest {
        let mut data = b"ssh\n".to_vec();
        for id in ids {
            field(&mut data, id.as_bytes());
            let keys = match self.ssh.get(id) {
                None => Ok(Vec::new()),
                Some(SshSource::Keys(paths)) => paths
                    .iter()
                    .map(std::fs::read)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string()),
                Some(SshSource::Socket(socket)) => agent_public_keys(socket),
            };
            match keys {
                Ok(mut keys) => {
                    keys.sort();
                    data.push(b'k');
                    for key in keys {
                        field(&mut data, &key);
                    }
                }
                Err(_) => {
                    data.push(b'u');
                    field(&mut data, self.id.as_bytes());
                }
            }
        }
        store.keyed_digest(&data)
    }
}

/// The build's secrets as sources ask for them (HTTP and git authentication).
impl sources::Secrets for Session {
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, sources::SecretError> {
        Session::secret(self, id).map_err(Into::into)
    }
}

/// Appends a length-prefixed field, so that no two lists of fields encode alike.
fn field(data: &mut Vec<u8>, bytes: &[u8]) {
    data.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    data.extend_from_slice(bytes);
}

fn check_size(id: &str, size: u64) -> Result<(), OpFailure> {
    if size > MAX_SECRET_SIZE {
        return Err(OpFailure::SecretTooBig {
            id: id.to_string(),
            size,
            limit: MAX_SECRET_SIZE,
        });
    }
    Ok(())
}

/// The public keys (wire blobs) the ssh agent at `socket` holds, by the agent protocol's
/// `REQUEST_IDENTITIES` (draft-miller-ssh-agent, section 4.4). Blocking, bounded by a timeout.
fn agent_public_keys(socket: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    const REQUEST_IDENTITIES: u8 = 11;
    const IDENTITIES_ANSWER: u8 = 12;
    const MAX_ANSWER: u32 = 1 << 20;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| e.to_string())?;
    let timeout = Some(Duration::from_secs(2));
    stream.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    stream.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    stream
        .write_all(&[0, 0, 0, 1, REQUEST_IDENTITIES])
        .map_err(|e| e.to_string())?;
    let mut length = [0; 4];
    stream.read_exact(&mut length).map_err(|e| e.to_string())?;
    let length = u32::from_be_bytes(length);
    if length == 0 || length > MAX_ANSWER {
        return Err(format!("agent answered {length} bytes"));
    }
    let mut answer = vec![0; length as usize];
    stream.read_exact(&mut answer).map_err(|e| e.to_string())?;
    let mut reader = WireReader(&answer);
    if reader.byte() != Some(IDENTITIES_ANSWER) {
        return Err("agent refused to list its keys".into());
    }
    let count = reader.u32().ok_or("truncated answer")?;
    let mut keys = Vec::new();
    for _ in 0..count {
        let blob = reader.string().ok_or("truncated answer")?;
        reader.string().ok_or("truncated answer")?; // the comment
        keys.push(blob.to_vec());
    }
    Ok(keys)
}

/// Reads the ssh wire encoding (bytes, big-endian u32s, length-prefixed strings).
struct WireReader<'a>(&'a [u8]);

impl<'a> WireReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n as usize)
    }
}

/// The entitlement an exec needs, with the flag that asked for it, in BuildKit's order of
/// checking (network before security).
fn needed_entitlements(exec: &pb::ExecOp) -> Vec<(Entitlement, &'static str)> {
    let mut needed = Vec::new();
    if exec.network == pb::NetMode::Host as i32 {
        needed.push((Entitlement::NetworkHost, "RUN --network=host"));
    }
    if exec.security == pb::SecurityMode::Insecure as i32 {
        needed.push((Entitlement::SecurityInsecure, "RUN --security=insecure"));
    }
    needed
}

/// Fails, naming the first step that asks for it, unless the build was granted every
/// entitlement its graph needs. Runs before anything of the build runs, as BuildKit validates
/// entitlements up front: a cached or shared result never lets a build skip this.
pub(crate) fn check_entitlements(
    graph: &llb::Graph,
    session: &Session,
) -> Result<(), (Digest, Box<OpFailure>)> {
    for vertex in &graph.vertices {
        let Some(pb::op::Kind::Exec(exec)) = &vertex.op.kind else {
            continue;
        };
        for (entitlement, flag) in needed_entitlements(exec) {
            if !session.entitlements.contains(&entitlement) {
                return Err((
                    vertex.digest.clone(),
                    Box::new(OpFailure::NotEntitled { entitlement, flag }),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_reader_stops_at_truncation() {
        let mut reader = WireReader(&[0, 0, 0, 5, b'a']);
        assert_eq!(reader.string(), None);
        let mut reader = WireReader(&[12, 0, 0, 0, 1, 0, 0, 0, 2, b'k', b'1']);
        assert_eq!(reader.byte(), Some(12));
        assert_eq!(reader.u32(), Some(1));
        assert_eq!(reader.string(), Some(&b"k1"[..]));
        assert_eq!(reader.string(), None);
    }

    #[test]
    fn fields_are_length_prefixed() {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        field(&mut one, b"ab");
        field(&mut one, b"c");
        field(&mut two, b"a");
        field(&mut two, b"bc");
        assert_ne!(one, two);
    }
}
