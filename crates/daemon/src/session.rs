//! One build over a stream: the client's `BuildStart`, the transfer of its directories
//! ([`crate::sync`]), its secrets and registry credentials asked for when needed (`Asker`),
//! progress and client-side outputs streamed back, and the outcome last.
//!
//! The build runs as a registered task of the daemon (`Daemon::spawn_build`): it is cancelled
//! when the client goes away (its response stream is dropped) or the daemon shuts down.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::pb::{self, client_message, server_message};
use engine::{
    BuildError, BuildRequest, ClientSecrets, Credentials, Destination, OutputSpec, Progress, SecretSource,
    StreamSink,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tonic::{Status, Streaming};

use crate::fds::Slot;
use crate::state::Daemon;
use crate::sync::Incoming;

use crate::ssh::{Events, Outbox, Reply, Tunnels, send_event};

/// How long a step waits for the client to answer a question (a secret, credentials).
const ASK_LIMIT: Duration = Duration::from_secs(120);

fn reply(message: server_message::Message) -> Reply {
    Ok(pb::ServerMessage {
        message: Some(message),
    })
}

/// Starts a build from its stream; returns the stream of what the daemon sends.
pub(crate) async fn start(
    daemon: Arc<Daemon>,
    mut inbound: Streaming<pb::ClientMessage>,
) -> Result<impl Stream<Item = Reply> + Send + 'static, Status> {
    let first = inbound
        .message()
        .await?
        .ok_or_else(|| Status::invalid_argument("the build stream ended before its BuildStart"))?;
    let Some(client_message::Message::Start(start)) = first.message else {
        return Err(Status::invalid_argument(
            "a build stream must start with BuildStart",
        ));
    };
    api::check_start(&start).map_err(Status::invalid_argument)?;
    let copy_of = |name: &str| {
        let local = start.locals.iter().find(|l| l.name == name)?;
        Some(crate::sync::copy_dir(
            daemon.engine.root(),
            &start.client_id,
            name,
            &local.path,
        ))
    };
    let request = crate::convert::request(&start, &daemon.cache_from, &daemon.cache_to, &copy_of)?;
    let (out_tx, out_rx) = mpsc::channel::<Reply>(32);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Reply>();
    // Only the outbox holds the senders: closing it at the end of the build ends the stream.
    let events = Outbox::new(ev_tx);
    let asker = Arc::new(Asker {
        tx: events.clone(),
        pending: Arc::default(),
        next: AtomicU64::new(0),
        handle: tokio::runtime::Handle::current(),
    });
    let tunnels = Arc::new(Tunnels::new(events.clone()));
    let (sync_tx, sync_rx) = mpsc::channel(8);
    tokio::spawn(dispatch(inbound, sync_tx, asker.pending.clone(), tunnels.clone()));
    // Registered before the client hears back, so that it can hand over its files at once.
    let slots = start
        .outputs
        .iter()
        .map(|o| {
            (!o.fd_token.is_empty())
                .then(|| Slot::register(&daemon.fds, &o.fd_token))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let channels = Channels {
        incoming: sync_rx,
        out: out_tx,
        events,
        asker,
        tunnels,
        slots,
    };
    let build = run(daemon.clone(), start, request, channels);
    daemon.spawn_build(build)?;
    Ok(tokio_stream::StreamExt::merge(
        ReceiverStream::new(out_rx),
        UnboundedReceiverStream::new(ev_rx),
    ))
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<client_message::Message>>>>;

/// Reads the client's messages: directory transfers go to the build, answers to whoever asked.
/// When the client's side ends, every question still waiting fails.
async fn dispatch(
    mut inbound: Streaming<pb::ClientMessage>,
    sync: mpsc::Sender<Incoming>,
    pending: Pending,
    tunnels: Arc<Tunnels>,
) {
    loop {
        let message = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(status) => {
                eprintln!(
                    "kiln daemon: a client's stream broke: {}",
                    oci::error_chain(&status)
                );
                break;
            }
        };
        let (request, answer) = match message.message {
            Some(client_message::Message::Ssh(data)) => {
                tunnels.deliver(data);
                continue;
            }
            Some(client_message::Message::Files(list)) => {
                let _ = sync.send(Incoming::List(list)).await;
                continue;
            }
            Some(client_message::Message::Data(data)) => {
                let _ = sync.send(Incoming::Data(data)).await;
                continue;
            }
            Some(client_message::Message::Batch(batch)) => {
                for data in batch.files {
                    let _ = sync.send(Incoming::Data(data)).await;
                }
                continue;
            }
            Some(client_message::Message::Secret(s)) => (s.request, client_message::Message::Secret(s)),
            Some(client_message::Message::Credentials(c)) => {
                (c.request, client_message::Message::Credentials(c))
            }
            // A second start, or nothing: ignored.
            _ => continue,
        };
        let waiter = pending.lock().ok().and_then(|mut p| p.remove(&request));
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
    tunnels.close_all();
}

/// Asks the client questions on behalf of steps (blocking: steps ask from their own threads).
pub(crate) struct Asker {
    tx: Events,
    pending: Pending,
    next: AtomicU64,
    handle: tokio::runtime::Handle,
}

impl Asker {
    fn ask(
        &self,
        question: impl FnOnce(u64) -> server_message::Message,
    ) -> Result<client_message::Message, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "the session is broken".to_string())?
            .insert(id, tx);
        if !send_event(&self.tx, question(id)) {
            return Err("the client has gone".into());
        }
        let answer =
            tokio::task::block_in_place(|| self.handle.block_on(tokio::time::timeout(ASK_LIMIT, rx)));
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the client has gone".into()),
            Err(_) => Err(format!(
                "the client did not answer within {}s",
                ASK_LIMIT.as_secs()
            )),
        }
    }
}

impl engine::SecretProvider for Asker {
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, String> {
        let id = id.to_string();
        match self.ask(|request| server_message::Message::Secret(pb::SecretRequest { request, id }))? {
            client_message::Message::Secret(v) if !v.error.is_empty() => Err(v.error),
            client_message::Message::Secret(v) => Ok(v.found.then_some(v.value)),
            _ => Err("the client answered something else".into()),
        }
    }
}

/// Registry credentials asked of the client.
struct ClientCredentials(Arc<Asker>);

impl registry::CredentialStore for ClientCredentials {
    fn credentials(
        &self,
        registry: &str,
    ) -> Result<Option<registry::Credentials>, registry::CredentialsError> {
        let registry = registry.to_string();
        let failed = |m: String| registry::CredentialsError::Other(m.into());
        let question =
            |request| server_message::Message::Credentials(pb::CredentialsRequest { request, registry });
        match self.0.ask(question).map_err(failed)? {
            client_message::Message::Credentials(c) if !c.error.is_empty() => Err(failed(c.error)),
            client_message::Message::Credentials(c) => Ok(c.found.then_some(registry::Credentials {
                username: c.username,
                password: c.password,
            })),
            _ => Err(failed("the client answered something else".into())),
        }
    }
}

/// Progress events, sent as kiln's JSON lines.
struct Forward {
    tx: Events,
    start: Instant,
}

impl Progress for Forward {
    fn event(&self, event: engine::Event) {
        let line = engine::progress::json::encode_event(self.start.elapsed(), &event);
        send_event(&self.tx, server_message::Message::Event(line));
    }
}

/// A client-side output: its bytes as chunks on the stream, or written into the client's file
/// when it handed one over (`slot`).
struct OutputSink {
    index: u32,
    tx: Arc<Outbox<mpsc::Sender<Reply>>>,
    slot: Option<crate::fds::Slot>,
}

/// What a [`ChunkWriter`]'s bytes are.
enum Chunks {
    /// Output number N.
    Output(u32),
    /// Files for the client's cache directory of this name.
    Cache(String),
}

struct ChunkWriter {
    kind: Chunks,
    tx: Option<mpsc::Sender<Reply>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self, last: bool) -> std::io::Result<()> {
        let data = std::mem::take(&mut self.buf);
        let message = match &self.kind {
            Chunks::Output(index) => server_message::Message::Output(pb::OutputChunk {
                output: *index,
                data,
                last,
            }),
            Chunks::Cache(local) => server_message::Message::CacheFiles(pb::CacheFiles {
                local: local.clone(),
                data,
                last,
            }),
        };
        let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client has gone");
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .blocking_send(reply(message))
            .map_err(|_| gone())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= api::DATA_CHUNK {
            self.send(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl engine::StreamWriter for ChunkWriter {
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.send(true)
    }
}

impl engine::OutputStream for OutputSink {
    fn open(&self) -> Box<dyn engine::StreamWriter> {
        let chunks = ChunkWriter {
            kind: Chunks::Output(self.index),
            tx: self.tx.get(),
            buf: Vec::new(),
        };
        match &self.slot {
            Some(slot) => {
                let mut chunks = chunks;
                Box::new(crate::fds::FdWriter {
                    file: slot.take(),
                    done: Box::new(move || chunks.send(true)),
                })
            }
            None => Box::new(ChunkWriter {
                buf: Vec::with_capacity(api::DATA_CHUNK),
                ..chunks
            }),
        }
    }
}

/// The outputs of `start`: client-side ones stream back (or go into the client's files, with
/// their `slots`), pushes run here.
fn outputs(
    start: &pb::BuildStart,
    tx: &Arc<Outbox<mpsc::Sender<Reply>>>,
    slots: &mut [Option<crate::fds::Slot>],
) -> Result<Vec<OutputSpec>, Status> {
    let mut outputs = Vec::new();
    for (index, output) in start.outputs.iter().enumerate() {
        let dest = Destination::Stream(StreamSink(Arc::new(OutputSink {
            index: index as u32,
            tx: tx.clone(),
            slot: slots.get_mut(index).and_then(Option::take),
        })));
        let format = crate::convert::image_format(output.format.as_ref())?;
        let names = output.names.clone();
        outputs.push(match pb::output::Kind::try_from(output.kind) {
            Ok(pb::output::Kind::Local | pb::output::Kind::Tar) => OutputSpec::Tar { dest },
            Ok(pb::output::Kind::Oci) => OutputSpec::Oci {
                dest,
                name: names.into_iter().next(),
                oci_media_types: output.oci_media_types,
                format,
            },
            Ok(pb::output::Kind::Docker) => OutputSpec::Docker {
                dest,
                names,
                oci_media_types: output.oci_media_types,
                format,
            },
            Ok(pb::output::Kind::Registry) => OutputSpec::Registry { names, format },
            _ => {
                return Err(Status::invalid_argument(format!(
                    "unknown output kind {}",
                    output.kind
                )));
            }
        });
    }
    Ok(outputs)
}

/// Receives the client's directories into the daemon's copies (held until the build ends).
async fn receive_locals(
    daemon: &Daemon,
    start: &pb::BuildStart,
    mut incoming: mpsc::Receiver<Incoming>,
    out: &mpsc::Sender<Reply>,
    progress: &Arc<dyn Progress>,
) -> Result<(Vec<(String, crate::sync::Held)>, crate::sync::Stats), String> {
    let mut held = Vec::new();
    let mut total = crate::sync::Stats::default();
    for local in &start.locals {
        let step = if let Some(name) = local.name.strip_prefix("named-") {
            format!("[internal] transfer build context {name}")
        } else if let Some(name) = local.name.strip_prefix("layout-") {
            format!("[internal] transfer OCI layout {name}")
        } else {
            "[internal] transfer build context".to_string()
        };
        let step = engine::progress::Step::start(progress, step);
        let copy = match daemon
            .mirrors
            .hold(daemon.engine.root(), &start.client_id, &local.name, &local.path)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(oci::error_chain(&step.finish::<(), _>(Err(e)).unwrap_err())),
        };
        let (name, tx) = (local.name.clone(), out.clone());
        let received = tokio::task::spawn_blocking(move || {
            let want = |w: pb::FileWant| tx.blocking_send(reply(server_message::Message::Want(w))).is_ok();
            let mut copy = copy;
            let result = crate::sync::receive(&mut copy, &name, &mut incoming, &want);
            // A cache export may write into a cache directory's copy.
            if name.starts_with("cache-") {
                copy.forget();
            }
            (copy, incoming, result)
        })
        .await
        .map_err(|e| format!("the context transfer stopped: {e}"))?;
        let (copy, rest, result) = received;
        incoming = rest;
        if let Ok(stats) = &result {
            step.status(format!(
                "transferring context: {} files, {} ({} entries)",
                stats.files,
                engine::human_size(stats.bytes),
                stats.entries
            ));
        }
        let stats = step.finish(result).map_err(|e| oci::error_chain(&e))?;
        total.files += stats.files;
        total.bytes += stats.bytes;
        total.entries += stats.entries;
        held.push((local.name.clone(), copy));
    }
    Ok((held, total))
}

/// Points the request at the daemon's copies of the client's directories.
fn place_locals(start: &pb::BuildStart, held: &[(String, crate::sync::Held)], request: &mut BuildRequest) {
    for (name, copy) in held {
        if let Some(named) = name.strip_prefix("named-") {
            request
                .named_contexts
                .insert(named.to_string(), copy.dir.display().to_string());
        } else if name == api::CONTEXT {
            request.context = copy.dir.clone();
        }
    }
    // `check_start` made sure each layout context's directory is among them.
    for (name, value) in &start.named_images {
        if let Some(pick) = value.strip_prefix("oci-layout://")
            && let Some((_, copy)) = held.iter().find(|(local, _)| *local == api::layout_local(name))
        {
            request
                .named_contexts
                .insert(name.clone(), format!("oci-layout://{}{pick}", copy.dir.display()));
        }
    }
}

/// The state before the build of the copies that `type=local` cache exports write into.
fn cache_exports(
    start: &pb::BuildStart,
    held: &[(String, crate::sync::Held)],
) -> Result<Vec<crate::cache_dirs::Before>, String> {
    let mut befores: Vec<crate::cache_dirs::Before> = Vec::new();
    for export in &start.cache_to {
        let Some(pb::cache_backend::Backend::Local(local)) =
            export.backend.as_ref().and_then(|b| b.backend.as_ref())
        else {
            continue;
        };
        if befores.iter().any(|b| b.local == local.local) {
            continue;
        }
        if let Some((_, copy)) = held.iter().find(|(name, _)| *name == local.local) {
            let before = crate::cache_dirs::before(&local.local, &copy.dir)
                .map_err(|e| format!("failed to read the copy of cache directory {}: {e}", local.local))?;
            befores.push(before);
        }
    }
    Ok(befores)
}

/// Sends back what `type=local` cache exports added or changed in the client's directories.
async fn return_cache_files(
    befores: Vec<crate::cache_dirs::Before>,
    out: &mpsc::Sender<Reply>,
) -> Result<(), String> {
    for before in befores {
        let tx = out.clone();
        tokio::task::spawn_blocking(move || {
            let paths = crate::cache_dirs::changed(&before)?;
            if paths.is_empty() {
                return Ok(());
            }
            let mut writer = ChunkWriter {
                kind: Chunks::Cache(before.local.clone()),
                tx: Some(tx),
                buf: Vec::with_capacity(api::DATA_CHUNK),
            };
            crate::cache_dirs::write_tar(&before, &paths, &mut writer)?;
            writer.send(true)
        })
        .await
        .map_err(|e| format!("sending the cache back stopped: {e}"))?
        .map_err(|e| format!("failed to send the type=local cache back to the client: {e}"))?;
    }
    Ok(())
}

/// Closes what a build sends to its client with when dropped.
struct EndBuild(Arc<Tunnels>, Events, Arc<Outbox<mpsc::Sender<Reply>>>);

impl Drop for EndBuild {
    fn drop(&mut self) {
        self.0.end();
        self.1.close();
        self.2.close();
    }
}

/// How a build talks to its client.
struct Channels {
    /// Directory transfers from the client.
    incoming: mpsc::Receiver<Incoming>,
    /// Wants, outputs and the outcome, in order.
    out: mpsc::Sender<Reply>,
    /// Progress and questions.
    events: Events,
    asker: Arc<Asker>,
    tunnels: Arc<Tunnels>,
    /// The outputs' places for the client's file descriptors, by output.
    slots: Vec<Option<crate::fds::Slot>>,
}

/// The build: transfer, engine, outcome. Cancelled when the client goes away.
async fn run(daemon: Arc<Daemon>, start: pb::BuildStart, mut request: BuildRequest, channels: Channels) {
    let Channels {
        incoming,
        out,
        events,
        asker,
        tunnels,
        mut slots,
    } = channels;
    // However the build ends, nothing holds the stream to the client open any more.
    let outputs_box = Outbox::new(out.clone());
    let _end = EndBuild(tunnels.clone(), events.clone(), outputs_box.clone());
    let progress: Arc<dyn Progress> = Arc::new(Forward {
        tx: events,
        start: Instant::now(),
    });
    let work = async {
        let (held, stats) = receive_locals(&daemon, &start, incoming, &out, &progress)
            .await
            .map_err(|m| failure_message(&m))?;
        place_locals(&start, &held, &mut request);
        let befores = cache_exports(&start, &held).map_err(|m| failure_message(&m))?;
        request.outputs =
            outputs(&start, &outputs_box, &mut slots).map_err(|s| failure_message(s.message()))?;
        for id in &start.secrets {
            request
                .secrets
                .insert(id.clone(), SecretSource::Client(ClientSecrets(asker.clone())));
        }
        request.credentials = Some(Credentials(Arc::new(ClientCredentials(asker.clone()))));
        let (agents, sockets) = crate::ssh::serve(daemon.engine.root(), &start.ssh, &tunnels)
            .map_err(|e| failure_message(&format!("failed to set up the ssh agents' sockets: {e}")))?;
        for (id, socket) in sockets {
            request.ssh.insert(id, engine::SshSource::Socket(socket));
        }
        let result = daemon.engine.build(&request, progress.clone()).await;
        drop(agents);
        return_cache_files(befores, &out)
            .await
            .map_err(|m| failure_message(&m))?;
        drop(held);
        Ok::<_, pb::Failure>((result, stats))
    };
    let outcome = tokio::select! {
        done = work => match done {
            Ok((result, stats)) => outcome(result, stats),
            Err(failure) => pb::BuildOutcome { failure: Some(failure), ..Default::default() },
        },
        () = out.closed() => return,
    };
    if let Some(failure) = &outcome.failure {
        eprintln!(
            "kiln daemon: build {} failed: {}",
            outcome.build_id, failure.message
        );
    }
    let _ = out.send(reply(server_message::Message::Outcome(outcome))).await;
}

fn failure_message(message: &str) -> pb::Failure {
    pb::Failure {
        message: message.to_string(),
        ..pb::Failure::default()
    }
}

fn outcome(result: Result<engine::BuildResult, BuildError>, stats: crate::sync::Stats) -> pb::BuildOutcome {
    let mut outcome = pb::BuildOutcome {
        files_sent: stats.files,
        bytes_sent: stats.bytes,
        ..pb::BuildOutcome::default()
    };
    match result {
        Ok(r) => {
            outcome.build_id = r.id;
            outcome.unused_build_args = r.unused_build_args;
            outcome.warnings = r.warnings;
            outcome.image = r.image.map(|i| pb::Image {
                manifest_digest: i.manifest.digest.to_string(),
                manifest_media_type: i.manifest.media_type.clone(),
                manifest_size: i.manifest.size as i64,
                config_digest: i.config.to_string(),
                manifest_descriptor: serde_json::to_string(&i.manifest).unwrap_or_default(),
                names: i.names,
            });
        }
        Err(e) => outcome.failure = Some(failure(&e)),
    }
    outcome
}

fn snippet(s: &engine::SourceSnippet) -> pb::Snippet {
    pb::Snippet {
        filename: s.filename.clone(),
        data: s.data.clone(),
        start_line: s.start_line as u64,
        end_line: s.end_line as u64,
    }
}

/// A failed build as the client renders it.
fn failure(e: &BuildError) -> pb::Failure {
    let mut f = failure_message(&oci::error_chain(e));
    match e {
        BuildError::Step(step) => {
            f.vertex = step.vertex().to_string();
            f.step = step.name().to_string();
            f.snippets = step.snippets.iter().map(snippet).collect();
            f.solve = true;
        }
        BuildError::Dockerfile(d) => {
            f.snippets = d.snippet.iter().map(snippet).collect();
            f.solve = true;
        }
        _ => {}
    }
    f
}
