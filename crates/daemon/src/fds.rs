//! Outputs written straight into a local client's files. For each output whose request names a
//! token (`Output.fd_token`), the build registers a [`Slot`] before its stream is answered; the
//! client then hands over the destination's descriptor on the socket beside the daemon's
//! (`PATH.fds`, see [`api::fds`]), and the export writes into it ([`FdWriter`]) instead of
//! streaming chunks: no copy through the stream for a file, nothing at all for `/dev/null`.
//! A descriptor can only be used with the access the client opened it with.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Status;

/// How long an export waits for the client's descriptor.
const WAIT: Duration = Duration::from_secs(10);

/// Writes reach the descriptor in pieces of this size (an export writes a tar header at a time).
const BUFFER: usize = 256 * 1024;

/// Outputs waiting for their descriptors, by token.
#[derive(Debug, Default)]
pub struct Slots(Mutex<HashMap<String, SyncSender<OwnedFd>>>);

/// An output's place for its descriptor; unregistered when dropped.
pub(crate) struct Slot {
    token: String,
    slots: Arc<Slots>,
    fd: Mutex<Receiver<OwnedFd>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.slots.0.lock() {
            slots.remove(&self.token);
        }
    }
}

impl Slot {
    /// Registers output token `token` (checked) of a build in `slots`.
    pub(crate) fn register(slots: &Arc<Slots>, token: &str) -> Result<Slot, Status> {
        if !api::fds::valid_token(token) {
            return Err(Status::invalid_argument(
                "an output's fd_token must be 32 hex digits",
            ));
        }
        let (tx, rx) = sync_channel(1);
        let mut waiting = slots
            .0
            .lock()
            .map_err(|_| Status::internal("the output register is poisoned"))?;
        if waiting.contains_key(token) {
            return Err(Status::invalid_argument("an output's fd_token is in use"));
        }
        waiting.insert(token.to_string(), tx);
        Ok(Slot {
            token: token.to_string(),
            slots: slots.clone(),
            fd: Mutex::new(rx),
        })
    }

    /// The client's descriptor, once it has arrived (blocking, at most [`WAIT`]), buffered.
    pub(crate) fn take(&self) -> std::io::Result<BufWriter<std::fs::File>> {
        let fd = self
            .fd
            .lock()
            .map_err(|_| std::io::Error::other("the output's slot is poisoned"))?
            .recv_timeout(WAIT)
            .map_err(|_| std::io::Error::other("the client did not hand over its output file"))?;
        Ok(BufWriter::with_capacity(BUFFER, std::fs::File::from(fd)))
    }
}

/// Gives a descriptor that arrived to the output waiting for it.
fn deliver(slots: &Slots, token: &str, fd: OwnedFd) -> Result<(), String> {
    let slots = slots
        .0
        .lock()
        .map_err(|_| "the output register is poisoned".to_string())?;
    let slot = slots
        .get(token)
        .ok_or_else(|| "no build waits for this output".to_string())?;
    slot.try_send(fd)
        .map_err(|_| "this output's file was handed over already".to_string())
}

/// Takes descriptors on `listener` (a [`api::fds::socket_of`] socket) until `stopped`.
pub(crate) async fn serve(
    slots: Arc<Slots>,
    listener: tokio::net::UnixListener,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = stopped.wait_for(|s| *s) => return,
        };
        let slots = slots.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(stream) = stream
                .into_std()
                .and_then(|s| s.set_nonblocking(false).map(|()| s))
            else {
                return;
            };
            let result = api::fds::receive(&stream)
                .map_err(|e| e.to_string())
                .and_then(|(token, fd)| deliver(&slots, &token, fd));
            api::fds::answer(&stream, result);
        });
    }
}

/// Writes an output into the client's descriptor; says so on the stream when done.
pub(crate) struct FdWriter {
    pub(crate) file: std::io::Result<BufWriter<std::fs::File>>,
    /// Sends the last (empty) chunk.
    pub(crate) done: Box<dyn FnOnce() -> std::io::Result<()> + Send>,
}

impl Write for FdWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Ok(file) => file.write(data),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Ok(file) => file.flush(),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl engine::StreamWriter for FdWriter {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        self.file?.into_inner().map_err(|e| e.into_error())?;
        (self.done)()
    }
}
