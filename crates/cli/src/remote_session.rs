//! The client's half of a build session: sends its directories as far as the daemon asks,
//! answers questions (secret values, registry credentials), shows progress and writes the
//! outputs as their bytes arrive.

use std::io::{Read, Seek, Write};
use std::sync::Arc;

use api::Address;
use api::pb::{self, client_message, server_message};
use engine::{BuildRequest, CredentialStore, Progress};
use tokio::sync::mpsc;

use crate::progress::Display;
use crate::remote::status_text;
use crate::remote_wire::Target;
use crate::render::CliError;

/// One local directory the build sends: its wire name, its path, its listing.
pub(crate) struct Local {
    pub(crate) name: String,
    pub(crate) path: std::path::PathBuf,
    pub(crate) listing: api::walk::Listing,
}

/// An output being received.
enum Sink {
    /// Into a temporary file beside the destination, renamed into place when complete.
    File(tempfile::NamedTempFile, std::path::PathBuf),
    /// Into a device or pipe, in place.
    Device(std::fs::File),
    Stdout,
    /// Into a temporary file, then unpacked into the directory.
    Unpack(tempfile::NamedTempFile, std::path::PathBuf),
    /// Into a temporary file, then loaded into the Docker daemon.
    Load(tempfile::NamedTempFile, String),
}

/// The client of one build stream.
pub(crate) struct Client<'a> {
    request: &'a BuildRequest,
    display: Arc<Display>,
    tx: mpsc::Sender<pb::ClientMessage>,
    sinks: Vec<Option<Sink>>,
    /// Tunnelled connections to this client's ssh agents, by connection.
    ssh: std::collections::HashMap<u64, mpsc::UnboundedSender<Vec<u8>>>,
    /// The `type=local` cache directories (`cache-N`), and the files coming back for them.
    caches: std::collections::HashMap<String, (std::path::PathBuf, Option<tempfile::NamedTempFile>)>,
}

fn send(message: client_message::Message) -> pb::ClientMessage {
    pb::ClientMessage {
        message: Some(message),
    }
}

fn failed(context: String, e: std::io::Error) -> CliError {
    CliError::failed(context, e)
}

impl<'a> Client<'a> {
    pub(crate) fn new(
        request: &'a BuildRequest,
        display: Arc<Display>,
        tx: mpsc::Sender<pb::ClientMessage>,
    ) -> Self {
        Client {
            request,
            display,
            tx,
            sinks: request.outputs.iter().map(|_| None).collect(),
            ssh: std::collections::HashMap::new(),
            caches: std::collections::HashMap::new(),
        }
    }

    /// Opens the sinks of outputs `handed` (index, token) now and hands their files over to the
    /// daemon on `socket`, which writes into them and sends only their last, empty chunk.
    pub(crate) fn hand_over(
        &mut self,
        socket: &std::path::Path,
        handed: &[(usize, String)],
    ) -> Result<(), CliError> {
        use std::os::fd::AsFd;
        for (index, token) in handed {
            let spec = self
                .request
                .outputs
                .get(*index)
                .ok_or_else(|| CliError::Usage("no such output".into()))?;
            let sink = open_sink(spec)?;
            let stdout = std::io::stdout();
            let fd = match &sink {
                Sink::File(file, _) => file.as_file().as_fd(),
                Sink::Device(file) => file.as_fd(),
                Sink::Stdout => stdout.as_fd(),
                Sink::Unpack(..) | Sink::Load(..) => continue,
            };
            api::fds::hand_over(socket, token, fd).map_err(|e| {
                CliError::failed(
                    format!(
                        "failed to hand the output file to the daemon at {}",
                        socket.display()
                    ),
                    e,
                )
            })?;
            self.sinks[*index] = Some(sink);
        }
        Ok(())
    }

    /// Serves the session until the daemon's stream ends; returns the build's outcome.
    pub(crate) async fn serve(
        mut self,
        address: &Address,
        mut inbound: tonic::Streaming<pb::ServerMessage>,
        locals: Vec<Local>,
    ) -> Result<pb::BuildOutcome, CliError> {
        for local in locals.iter().filter(|l| l.name.starts_with("cache-")) {
            self.caches.insert(local.name.clone(), (local.path.clone(), None));
        }
        let (want_tx, want_rx) = mpsc::channel(1);
        let sender = tokio::spawn(send_locals(self.tx.clone(), locals, want_rx));
        let mut outcome = None;
        loop {
            let message = match inbound.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(status) if outcome.is_none() => {
                    sender.abort();
                    return Err(CliError::Failed(anyhow::anyhow!(
                        "the daemon at {address} stopped during the build: {}",
                        status_text(&status)
                    )));
                }
                Err(_) => break,
            };
            match message.message {
                Some(server_message::Message::Want(want)) => {
                    let _ = want_tx.send(want).await;
                }
                Some(server_message::Message::Event(line)) => {
                    if let Ok(engine::progress::json::Line::Event(_, event)) =
                        engine::progress::json::decode(&line)
                    {
                        self.display.event(event);
                    }
                }
                Some(server_message::Message::Output(chunk)) => self.output(chunk).await?,
                Some(server_message::Message::CacheFiles(chunk)) => self.cache_files(chunk).await?,
                Some(server_message::Message::Secret(question)) => self.answer_secret(question).await,
                Some(server_message::Message::Credentials(question)) => {
                    self.answer_credentials(question).await
                }
                Some(server_message::Message::Outcome(o)) => outcome = Some(o),
                Some(server_message::Message::SshOpen(open)) => self.open_ssh(open),
                Some(server_message::Message::Ssh(data)) => {
                    if data.close || data.data.is_empty() {
                        if let Some(tx) = self.ssh.remove(&data.connection) {
                            let _ = tx.send(Vec::new());
                        }
                    } else if let Some(tx) = self.ssh.get(&data.connection) {
                        let _ = tx.send(data.data);
                    }
                }
                None => {}
            }
        }
        sender.abort();
        outcome.ok_or_else(|| {
            CliError::Failed(anyhow::anyhow!(
                "the daemon at {address} ended the build without a result"
            ))
        })
    }

    /// A step connected to agent `open.id`: connects to this client's agent and relays.
    fn open_ssh(&mut self, open: pb::SshOpen) {
        let (tx, rx) = mpsc::unbounded_channel();
        let agent = match self.request.ssh.get(&open.id) {
            Some(engine::SshSource::Socket(path)) => Some(path.clone()),
            _ => None,
        };
        self.ssh.insert(open.connection, tx);
        tokio::spawn(relay_ssh(agent, open.connection, rx, self.tx.clone()));
    }

    async fn answer_secret(&self, question: pb::SecretRequest) {
        let source = self.request.secrets.get(&question.id).cloned();
        let read = tokio::task::spawn_blocking(move || match source {
            None => Ok(None),
            Some(source) => crate::session::read_secret(&source),
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let answer = match read {
            Ok(value) => pb::SecretValue {
                request: question.request,
                found: value.is_some(),
                value: value.unwrap_or_default(),
                error: String::new(),
            },
            Err(error) => pb::SecretValue {
                request: question.request,
                error,
                ..pb::SecretValue::default()
            },
        };
        let _ = self.tx.send(send(client_message::Message::Secret(answer))).await;
    }

    async fn answer_credentials(&self, question: pb::CredentialsRequest) {
        let registry = question.registry.clone();
        let found = tokio::task::spawn_blocking(move || {
            engine::DockerConfigCredentials::from_env()
                .credentials(&registry)
                .map_err(|e| oci::error_chain(&e))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let mut answer = pb::CredentialsValue {
            request: question.request,
            ..pb::CredentialsValue::default()
        };
        match found {
            Ok(Some(c)) => {
                answer.found = true;
                answer.username = c.username;
                answer.password = c.password;
            }
            Ok(None) => {}
            Err(e) => answer.error = e,
        }
        let _ = self
            .tx
            .send(send(client_message::Message::Credentials(answer)))
            .await;
    }

    /// Receives files of a `type=local` cache export; unpacks them into the cache directory,
    /// as this user, on the last chunk.
    async fn cache_files(&mut self, chunk: pb::CacheFiles) -> Result<(), CliError> {
        let (dir, spool) = self.caches.get_mut(&chunk.local).ok_or_else(|| {
            CliError::Failed(anyhow::anyhow!(
                "the daemon sent files for an unknown cache directory {:?}",
                chunk.local
            ))
        })?;
        if spool.is_none() {
            *spool = Some(
                tempfile::Builder::new()
                    .prefix(".kiln-cache-")
                    .tempfile()
                    .map_err(|e| failed("failed to create a temporary file".into(), e))?,
            );
        }
        let file = spool.as_mut().ok_or_else(|| CliError::Usage("no spool".into()))?;
        file.write_all(&chunk.data)
            .map_err(|e| failed("failed to write a temporary file".into(), e))?;
        if !chunk.last {
            return Ok(());
        }
        let (dir, Some(file)) = (dir.clone(), spool.take()) else {
            return Ok(());
        };
        let owner = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        unpack_spooled(file, dir, Some(owner), "the cache").await
    }

    /// Writes a chunk of output `chunk.output`; finishes the output on its last chunk.
    async fn output(&mut self, chunk: pb::OutputChunk) -> Result<(), CliError> {
        let index = chunk.output as usize;
        let spec =
            self.request.outputs.get(index).ok_or_else(|| {
                CliError::Failed(anyhow::anyhow!("the daemon sent an unknown output {index}"))
            })?;
        if self.sinks[index].is_none() {
            self.sinks[index] = Some(open_sink(spec)?);
        }
        let sink = self.sinks[index]
            .as_mut()
            .ok_or_else(|| CliError::Usage("no sink".into()))?;
        let written = match sink {
            Sink::File(file, path) | Sink::Unpack(file, path) => file
                .write_all(&chunk.data)
                .map_err(|e| failed(format!("failed to write {}", path.display()), e)),
            Sink::Load(file, _) => file
                .write_all(&chunk.data)
                .map_err(|e| failed("failed to write the image".into(), e)),
            Sink::Device(file) => file
                .write_all(&chunk.data)
                .map_err(|e| failed("failed to write the output".into(), e)),
            Sink::Stdout => std::io::stdout()
                .write_all(&chunk.data)
                .map_err(|e| failed("failed to write to standard output".into(), e)),
        };
        written?;
        if chunk.last
            && let Some(sink) = self.sinks[index].take()
        {
            finish_sink(sink).await?;
        }
        Ok(())
    }
}

/// Where an output's bytes go until it is complete.
fn open_sink(spec: &engine::OutputSpec) -> Result<Sink, CliError> {
    let temp_in = |dir: &std::path::Path| {
        tempfile::Builder::new()
            .prefix(".kiln-output-")
            .tempfile_in(dir)
            .map_err(|e| failed(format!("failed to create a file in {}", dir.display()), e))
    };
    Ok(match crate::remote_wire::target(spec) {
        Some(Target::File(path)) if path.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            Sink::Device(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| failed(format!("failed to open {}", path.display()), e))?,
            )
        }
        Some(Target::File(path)) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            Sink::File(temp_in(dir)?, path)
        }
        Some(Target::Stdout) => Sink::Stdout,
        Some(Target::Directory(dir)) => Sink::Unpack(temp_in(&std::env::temp_dir())?, dir),
        Some(Target::Docker(host)) => Sink::Load(temp_in(&std::env::temp_dir())?, host),
        None => {
            return Err(CliError::Failed(anyhow::anyhow!(
                "the daemon sent bytes of an output it pushes"
            )));
        }
    })
}

/// An output is complete: put it in place.
async fn finish_sink(sink: Sink) -> Result<(), CliError> {
    match sink {
        Sink::File(file, path) => {
            file.as_file()
                .sync_all()
                .map_err(|e| failed(format!("failed to write {}", path.display()), e))?;
            file.persist(&path)
                .map_err(|e| failed(format!("failed to write {}", path.display()), e.error))?;
        }
        Sink::Device(_) => {}
        Sink::Stdout => std::io::stdout()
            .flush()
            .map_err(|e| failed("failed to write to standard output".into(), e))?,
        Sink::Unpack(file, dir) => unpack_spooled(file, dir, None, "the output").await?,
        Sink::Load(file, host) => {
            for line in engine::load_into_docker(&host, file.path())
                .await
                .map_err(|e| CliError::failed(format!("failed to load the image into {host}"), e))?
            {
                eprintln!("{line}");
            }
        }
    }
    Ok(())
}

/// Unpacks the tar spooled in `file` into `dir` (created if missing), with the archive's
/// owners or `owner`; `what` names it in errors.
async fn unpack_spooled(
    mut file: tempfile::NamedTempFile,
    dir: std::path::PathBuf,
    owner: Option<(u32, u32)>,
    what: &'static str,
) -> Result<(), CliError> {
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(format!("failed to create {}", dir.display()), e))?;
        file.as_file_mut()
            .rewind()
            .map_err(|e| failed(format!("failed to read {what}"), e))?;
        engine::unpack_archive(file.as_file_mut(), &dir, owner)
            .map_err(|e| CliError::failed(format!("failed to write {what} into {}", dir.display()), e))?;
        Ok::<_, CliError>(())
    })
    .await
    .map_err(|e| CliError::failed(format!("writing {what} stopped"), e))?
}

/// Relays one tunnelled connection to the agent at `agent` (none: closed at once).
async fn relay_ssh(
    agent: Option<std::path::PathBuf>,
    connection: u64,
    mut from_daemon: mpsc::UnboundedReceiver<Vec<u8>>,
    tx: mpsc::Sender<pb::ClientMessage>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let close = pb::SshData {
        connection,
        data: Vec::new(),
        close: true,
    };
    let stream = match agent {
        Some(path) => tokio::net::UnixStream::connect(path).await.ok(),
        None => None,
    };
    let Some(stream) = stream else {
        let _ = tx.send(send(client_message::Message::Ssh(close))).await;
        return;
    };
    let (mut read, mut write) = stream.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = read.read(&mut buf).await.unwrap_or(0);
            let data = pb::SshData {
                connection,
                data: buf[..n].to_vec(),
                close: n == 0,
            };
            if tx.send(send(client_message::Message::Ssh(data))).await.is_err() || n == 0 {
                return;
            }
        }
    };
    let down = async {
        while let Some(data) = from_daemon.recv().await {
            if data.is_empty() || write.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Sends each directory's listing, waits for what the daemon wants of it, sends that, and goes
/// on with the next directory.
async fn send_locals(
    tx: mpsc::Sender<pb::ClientMessage>,
    locals: Vec<Local>,
    mut wants: mpsc::Receiver<pb::FileWant>,
) {
    for local in locals {
        let Local { name, listing, .. } = local;
        let chunks: Vec<&[pb::FileEntry]> = listing.entries.chunks(api::LIST_CHUNK).collect();
        let count = chunks.len().max(1);
        for i in 0..count {
            let list = pb::FileList {
                local: name.clone(),
                entries: chunks.get(i).map(|c| c.to_vec()).unwrap_or_default(),
                last: i + 1 == count,
            };
            if tx.send(send(client_message::Message::Files(list))).await.is_err() {
                return;
            }
        }
        let Some(want) = wants.recv().await else {
            return;
        };
        let tx = tx.clone();
        let sent = tokio::task::spawn_blocking(move || send_files(&tx, &name, &listing, &want.indexes)).await;
        if !matches!(sent, Ok(true)) {
            return;
        }
    }
}

/// Sends the content of the entries `indexes` (blocking), small files many to a message (a
/// flood of tiny HTTP/2 DATA frames is refused by the daemon's HTTP/2 stack). A file that cannot
/// be read is sent empty: the daemon sees the size differ and fails the build naming it.
fn send_files(
    tx: &mpsc::Sender<pb::ClientMessage>,
    local: &str,
    listing: &api::walk::Listing,
    indexes: &[u64],
) -> bool {
    let mut batch = Vec::new();
    let mut batched = 0usize;
    let flush = |batch: &mut Vec<pb::FileData>, batched: &mut usize| {
        *batched = 0;
        let files = std::mem::take(batch);
        files.is_empty()
            || tx
                .blocking_send(send(client_message::Message::Batch(pb::FileBatch { files })))
                .is_ok()
    };
    let mut buf = vec![0u8; api::DATA_CHUNK];
    for &index in indexes {
        let Some(path) = listing.paths.get(index as usize) else {
            return false;
        };
        let mut file = std::fs::File::open(path).ok();
        loop {
            let n = file
                .as_mut()
                .and_then(|f| read_full(f, &mut buf).ok())
                .unwrap_or(0);
            // A short read is the end of the file.
            let last = n < buf.len();
            batched += n + 64;
            batch.push(pb::FileData {
                local: local.to_string(),
                index,
                data: buf[..n].to_vec(),
                last,
            });
            if (batched >= api::DATA_CHUNK || batch.len() >= 1024) && !flush(&mut batch, &mut batched) {
                return false;
            }
            if last {
                break;
            }
        }
    }
    flush(&mut batch, &mut batched)
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
