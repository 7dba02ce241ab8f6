//! Streaming a download into the content store without blocking the async workers: chunks
//! travel through a bounded channel to a blocking task that writes them into a
//! [`store::Ingest`], which verifies and commits the blob at the end.
//!
//! Dropping a [`BlobWriter`] before [`BlobWriter::commit`] (a failed download, a cancelled
//! build) closes the channel; the task then drops its ingest file, so nothing half-written
//! reaches the content store.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use oci::Digest;
use store::Store;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

/// Chunks in flight between the download and the writer: enough to keep both busy, little
/// enough to bound memory (reqwest's chunks are a few kB to a few tens of kB).
const QUEUE: usize = 16;

/// Why a blob could not be written.
#[derive(Debug)]
pub(crate) enum IngestError {
    /// The content store failed (with its OS error), or the digest did not match.
    Store(store::Error),
    /// The blocking task failed.
    Task(JoinError),
}

enum Message {
    Chunk(Bytes),
    /// The end of the blob, with the digest it must have, if known.
    Commit(Option<Digest>),
}

/// A blob being written by a blocking task, fed from async code.
pub(crate) struct BlobWriter {
    sender: mpsc::Sender<Message>,
    task: JoinHandle<Result<Digest, store::Error>>,
}

impl BlobWriter {
    /// Starts a blob in `store`'s content store.
    pub(crate) fn start(store: Arc<Store>) -> BlobWriter {
        let (sender, mut receiver) = mpsc::channel(QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            let write_error = |source| store::Error::Io {
                action: "write blob",
                path: store.root().join("ingest"),
                source,
            };
            let mut ingest = store.content().ingest()?;
            while let Some(message) = receiver.blocking_recv() {
                match message {
                    Message::Chunk(bytes) => ingest.write_all(&bytes).map_err(write_error)?,
                    Message::Commit(expected) => return ingest.commit(expected.as_ref()),
                }
            }
            // Every sender is gone without a commit: nobody waits for this answer, and the
            // ingest file goes with `ingest`.
            Err(write_error(io::Error::new(
                io::ErrorKind::Interrupted,
                "the download was abandoned",
            )))
        });
        BlobWriter { sender, task }
    }

    /// Hands a chunk to the writer. Fails with the writer's error when it has stopped.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), IngestError> {
        if self.sender.send(Message::Chunk(chunk)).await.is_ok() {
            return Ok(());
        }
        // The receiver is gone only when the task has ended, and with the sender alive it ends
        // only by failing.
        Err(self.outcome().await.err().unwrap_or_else(|| {
            IngestError::Store(store::Error::Corrupt {
                what: "the blob writer stopped before the end of the blob".into(),
            })
        }))
    }

    /// Finishes the blob: fsynced, checked against `expected` (when given) and moved into place.
    pub(crate) async fn commit(mut self, expected: Option<Digest>) -> Result<Digest, IngestError> {
        // When the task has already stopped, its outcome says why.
        let _ = self.sender.send(Message::Commit(expected)).await;
        self.outcome().await
    }

    async fn outcome(&mut self) -> Result<Digest, IngestError> {
        match (&mut self.task).await {
            Ok(result) => result.map_err(IngestError::Store),
            Err(e) => Err(IngestError::Task(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state"), || {}).unwrap());
        (dir, store)
    }

    fn ingest_files(store: &Store) -> usize {
        std::fs::read_dir(store.root().join("ingest")).unwrap().count()
    }

    #[tokio::test]
    async fn chunks_become_a_verified_blob() {
        let (_dir, store) = store();
        let mut writer = BlobWriter::start(store.clone());
        for chunk in ["hello ", "world"] {
            writer.write(Bytes::from(chunk)).await.unwrap();
        }
        let expected = Digest::of(b"hello world");
        let committed = writer.commit(Some(expected.clone())).await.unwrap();
        assert_eq!(committed, expected);
        assert_eq!(store.content().read(&expected).unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn a_wrong_digest_or_an_abandoned_writer_stores_nothing() {
        let (_dir, store) = store();
        let mut writer = BlobWriter::start(store.clone());
        writer.write(Bytes::from("content")).await.unwrap();
        let wrong = Digest::of(b"other");
        match writer.commit(Some(wrong.clone())).await {
            Err(IngestError::Store(store::Error::DigestMismatch { expected, .. })) => {
                assert_eq!(expected, wrong)
            }
            Err(other) => panic!("expected a digest mismatch, got {other:?}"),
            Ok(_) => panic!("expected a digest mismatch"),
        }
        assert!(!store.content().contains(&Digest::of(b"content")));

        let mut writer = BlobWriter::start(store.clone());
        writer.write(Bytes::from("partial")).await.unwrap();
        let task = writer.task.abort_handle();
        drop(writer);
        while !task.is_finished() {
            tokio::task::yield_now().await;
        }
        assert_eq!(ingest_files(&store), 0, "the ingest file is removed");
        assert!(!store.content().contains(&Digest::of(b"partial")));
    }
}
