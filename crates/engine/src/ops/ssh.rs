//! SSH agent forwarding (`RUN --mount=type=ssh`).
//!
//! The client names agents with `--ssh ID[=SOCKET|KEY…]` ([`crate::SshSource`]): a running
//! agent's socket, or private key files, for which kiln starts an `ssh-agent` of its own for the
//! build (once per id, killed when the build ends) and adds the keys with `ssh-add`. Keys are
//! read only by those host processes.
//!
//! A step never sees the client's socket itself: each mount gets a fresh listening socket in a
//! tmpfs, with the mount's owner and mode, and every connection to it is relayed to the agent.
//! That socket is bind-mounted at the target (`/run/buildkit/ssh_agent.N` by default; the
//! frontend sets `SSH_AUTH_SOCK` to the first one). The relay and the tmpfs go away when the
//! step ends. A mount whose agent was not forwarded fails when `required` and is left out
//! otherwise, as in BuildKit.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use llb::pb;
use store::{Mounted, Store};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

use super::{OpFailure, Session};
use crate::SshSource;

/// The agents kiln started for a build's key files, by id.
#[derive(Debug, Default)]
pub(crate) struct Agents(tokio::sync::Mutex<BTreeMap<String, Arc<KeyAgent>>>);

/// An `ssh-agent` holding a build's keys; killed when dropped.
#[derive(Debug)]
pub(crate) struct KeyAgent {
    socket: PathBuf,
    _process: tokio::process::Child,
    _tmpfs: Mounted,
}

/// What keeps a forwarded socket alive during a step: the relay and its tmpfs.
pub(super) struct Forward {
    relay: JoinHandle<()>,
    _tmpfs: Mounted,
}

impl Drop for Forward {
    fn drop(&mut self) {
        // Aborting the accept loop drops its set of connections, which aborts them too.
        self.relay.abort();
    }
}

/// Prepares an ssh mount: `None` when its agent was not forwarded and the mount is optional.
pub(super) async fn mount(
    store: &Store,
    session: &Session,
    mount: &pb::Mount,
) -> Result<Option<(executor::MountKind, Forward)>, OpFailure> {
    let options = mount.ssh_opt.clone().unwrap_or_default();
    let id = if options.id.is_empty() {
        "default".to_string()
    } else {
        options.id.clone()
    };
    let upstream = match session.ssh.get(&id) {
        None if options.optional => return Ok(None),
        None => {
            return Err(OpFailure::Invalid(format!(
                "no SSH agent {id:?} was forwarded: run kiln build with --ssh {id}[=SOCKET|KEY]"
            )));
        }
        Some(SshSource::Socket(path)) => path.clone(),
        Some(SshSource::Keys(keys)) => key_agent(store, session, &id, keys).await?.socket.clone(),
    };
    let uid = options.uid;
    let gid = options.gid;
    let mode = options.mode;
    if mode > 0o7777 {
        return Err(invalid(&id, "mode", mode));
    }
    let tmpfs = store.mount_tmpfs(64 * 1024)?;
    let socket = tmpfs.path().join("agent.sock");
    let failed =
        |e: std::io::Error| OpFailure::Invalid(format!("ssh {id}: failed to set up the agent socket: {e}"));
    let listener = UnixListener::bind(&socket).map_err(failed)?;
    std::os::unix::fs::chown(&socket, Some(uid), Some(gid)).map_err(failed)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    let relay = tokio::spawn(relay(listener, upstream));
    Ok(Some((
        executor::MountKind::Bind {
            source: socket,
            readonly: false,
        },
        Forward { relay, _tmpfs: tmpfs },
    )))
}

fn invalid(id: &str, what: &str, value: u32) -> OpFailure {
    OpFailure::Invalid(format!("ssh {id}: invalid {what} {value:o}"))
}

/// Accepts connections and relays each to the agent at `upstream`, until aborted.
async fn relay(listener: UnixListener, upstream: PathBuf) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { return };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    // An agent that is gone closes the step's connection, which ssh reports.
                    if let Ok(mut agent) = UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
                    }
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The build's agent for key files `keys` under `id`, started on first use.
async fn key_agent(
    store: &Store,
    session: &Session,
    id: &str,
    keys: &[PathBuf],
) -> Result<Arc<KeyAgent>, OpFailure> {
    let mut agents = session.agents.0.lock().await;
    if let Some(agent) = agents.get(id) {
        return Ok(agent.clone());
    }
    let tmpfs = store.mount_tmpfs(64 * 1024)?;
    let socket = tmpfs.path().join("agent.sock");
    let process = start_key_agent(&socket, keys)
        .await
        .map_err(|e| OpFailure::Invalid(format!("ssh {id}: {e}")))?;
    let agent = Arc::new(KeyAgent {
        socket,
        _process: process,
        _tmpfs: tmpfs,
    });
    agents.insert(id.to_string(), agent.clone());
    Ok(agent)
}

/// Starts an `ssh-agent` listening on `socket` (in a directory only this user can enter) and
/// adds the private key files `keys` to it. The agent is killed when the returned child is
/// dropped. Keys with a passphrase are refused: nothing can ask for it.
pub async fn start_key_agent(socket: &Path, keys: &[PathBuf]) -> Result<tokio::process::Child, String> {
    let process = tokio::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("failed to start ssh-agent (install openssh-client): {e}"))?;
    wait_for_socket(socket)
        .await
        .map_err(|e| format!("ssh-agent did not start: {e}"))?;
    for key in keys {
        add_key(socket, key)
            .await
            .map_err(|e| format!("failed to add key {}: {e}", key.display()))?;
    }
    Ok(process)
}

async fn wait_for_socket(socket: &Path) -> Result<(), String> {
    for _ in 0..100 {
        if UnixStream::connect(socket).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("no socket at {} after 2s", socket.display()))
}

async fn add_key(socket: &Path, key: &Path) -> Result<(), String> {
    let output = tokio::process::Command::new("ssh-add")
        .arg("-q")
        .arg(key)
        .env("SSH_AUTH_SOCK", socket)
        // A passphrase cannot be asked for: fail instead of waiting.
        .env_remove("DISPLAY")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("failed to run ssh-add: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "ssh-add failed ({}): {} (keys with a passphrase cannot be used; add them to an agent and pass its socket)",
            output.status,
            stderr.trim()
        ));
    }
    Ok(())
}
