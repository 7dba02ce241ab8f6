//! `--ssh` through a daemon: for each id the client forwards, the daemon listens on a socket
//! of its own (mode 0600, in a directory of the build under `contexts/ssh/`) and hands that
//! socket to the engine as the agent; every connection a step makes to it is tunnelled over the
//! build stream (`SshOpen`, then `SshData` both ways) to the client, which connects to its agent.
//! Keys never leave the client's agent.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use api::pb::{self, server_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the daemon sends on a build stream.
pub(crate) type Reply = Result<pb::ServerMessage, tonic::Status>;

/// A sender to the client that the build closes when it ends, whoever still holds it (the
/// engine may keep a build's session or progress sink a little longer): the stream to the
/// client ends with the build.
pub(crate) struct Outbox<S>(Mutex<Option<S>>);

impl<S: Clone> Outbox<S> {
    pub(crate) fn new(sender: S) -> Arc<Outbox<S>> {
        Arc::new(Outbox(Mutex::new(Some(sender))))
    }

    /// The sender, until the build ends.
    pub(crate) fn get(&self) -> Option<S> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    /// The build has ended.
    pub(crate) fn close(&self) {
        if let Ok(mut s) = self.0.lock() {
            *s = None;
        }
    }
}

/// The stream of progress, questions and tunnelled bytes.
pub(crate) type Events = Arc<Outbox<mpsc::UnboundedSender<Reply>>>;

/// Sends `message` on `events`; `false` once the build has ended or the client is gone.
pub(crate) fn send_event(events: &Events, message: server_message::Message) -> bool {
    events.get().is_some_and(|tx| {
        tx.send(Ok(pb::ServerMessage {
            message: Some(message),
        }))
        .is_ok()
    })
}

/// How many bytes one tunnelled chunk carries at most.
const CHUNK: usize = 16 * 1024;

/// The tunnelled connections of one build.
pub(crate) struct Tunnels {
    tx: Events,
    connections: Mutex<HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>>,
    next: AtomicU64,
}

impl Tunnels {
    pub(crate) fn new(tx: Events) -> Tunnels {
        Tunnels {
            tx,
            connections: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    fn send(&self, message: server_message::Message) -> bool {
        send_event(&self.tx, message)
    }

    /// Bytes (or the close) the client sent on a connection; unknown connections are ignored.
    pub(crate) fn deliver(&self, data: pb::SshData) {
        let Ok(mut connections) = self.connections.lock() else {
            return;
        };
        if data.close || data.data.is_empty() {
            if let Some(tx) = connections.remove(&data.connection) {
                let _ = tx.send(Vec::new());
            }
        } else if let Some(tx) = connections.get(&data.connection) {
            let _ = tx.send(data.data);
        }
    }

    /// The client is gone, or the build is over: every connection is closed.
    pub(crate) fn close_all(&self) {
        if let Ok(mut connections) = self.connections.lock() {
            connections.clear();
        }
    }

    /// The build is over: nothing more is sent to the client.
    pub(crate) fn end(&self) {
        self.tx.close();
        self.close_all();
    }
}

/// The agents' sockets of one build; dropping it stops them and removes their directory.
pub(crate) struct Agents {
    dir: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static BUILDS: AtomicU64 = AtomicU64::new(0);

/// Listens for the agents `ids` of a build; returns the sockets, by id, to hand to the engine.
pub(crate) fn serve(
    root: &Path,
    ids: &[String],
    tunnels: &Arc<Tunnels>,
) -> std::io::Result<(Agents, BTreeMap<String, PathBuf>)> {
    let dir = root.join("contexts").join("ssh").join(format!(
        "{}-{}",
        std::process::id(),
        BUILDS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut agents = Agents {
        dir,
        tasks: Vec::new(),
    };
    let mut sockets = BTreeMap::new();
    for (n, id) in ids.iter().enumerate() {
        let socket = agents.dir.join(format!("{n}.sock"));
        let listener = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        agents
            .tasks
            .push(tokio::spawn(accept(listener, id.clone(), tunnels.clone())));
        sockets.insert(id.clone(), socket);
    }
    Ok((agents, sockets))
}

/// Tunnels every connection to the client's agent `id`.
async fn accept(listener: tokio::net::UnixListener, id: String, tunnels: Arc<Tunnels>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                let connection = tunnels.next.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::unbounded_channel();
                match tunnels.connections.lock() {
                    Ok(mut c) => c.insert(connection, tx),
                    Err(_) => return,
                };
                if !tunnels.send(server_message::Message::SshOpen(pb::SshOpen { connection, id: id.clone() })) {
                    return;
                }
                connections.spawn(pump(stream, connection, rx, tunnels.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Moves bytes between a step's connection and the client until either side closes.
async fn pump(
    stream: tokio::net::UnixStream,
    connection: u64,
    mut from_client: mpsc::UnboundedReceiver<Vec<u8>>,
    tunnels: Arc<Tunnels>,
) {
    let (mut read, mut write) = stream.into_split();
    let up = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read.read(&mut buf).await.unwrap_or(0);
            let data = pb::SshData {
                connection,
                data: buf[..n].to_vec(),
                close: n == 0,
            };
            if !tunnels.send(server_message::Message::Ssh(data)) || n == 0 {
                return;
            }
        }
    };
    let down = async {
        while let Some(data) = from_client.recv().await {
            if data.is_empty() || write.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(up, down);
    if let Ok(mut c) = tunnels.connections.lock() {
        c.remove(&connection);
    }
}
