//! The content store: immutable blobs under `blobs/sha256/<hex>`, written atomically.
//!
//! A blob is written to `ingest/<unique>`, hashed while it is written, fsynced, checked against
//! the expected digest and only then renamed into place. A crash leaves at most a stray ingest
//! file, which [`crate::Store::open`] removes; a blob path that exists always holds exactly the
//! content its name promises.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci::{Digest, Sha256Writer};

use crate::Error;

static INGEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Blob storage rooted at a directory.
#[derive(Debug)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    pub(crate) fn open(root: &Path) -> Result<ContentStore, Error> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "create directory",
                path: dir.clone(),
                source,
            })?;
        }
        // Nothing can be ingesting while the store is opened (the store lock is held).
        if let Ok(entries) = fs::read_dir(&ingest) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether the blob exists.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The size of an existing blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, Error> {
        let path = self.path(digest);
        fs::metadata(&path).map(|m| m.len()).map_err(|source| Error::Io {
            action: "stat blob",
            path,
            source,
        })
    }

    /// Reads a whole blob, verifying its digest.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.path(digest);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| Error::Io {
                action: "read blob",
                path: path.clone(),
                source,
            })?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(Error::Corrupt {
                what: format!("blob {digest} has digest {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob for streaming reads (not verified).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, Error> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| Error::Io {
            action: "open blob",
            path,
            source,
        })
    }

    /// Stores `bytes`, returning their digest.
    pub fn write(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::of(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut ingest = self.ingest()?;
        ingest.write_all(bytes).map_err(|source| Error::Io {
            action: "write blob",
            path: ingest.path.clone(),
            source,
        })?;
        ingest.commit(Some(&digest))
    }

    /// Starts writing a blob of unknown digest.
    pub fn ingest(&self) -> Result<Ingest, Error> {
        let n = INGEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.ingest.join(format!("{}-{n}", std::process::id()));
        let file = File::create(&path).map_err(|source| Error::Io {
            action: "create ingest file",
            path: path.clone(),
            source,
        })?;
        Ok(Ingest {
            writer: Some(Sha256Writer::new(file)),
            path,
            blobs: self.blobs.clone(),
        })
    }
}

/// A blob being written. Dropping it without [`Ingest::commit`] discards it.
pub struct Ingest {
    writer: Option<Sha256Writer<File>>,
    path: PathBuf,
    blobs: PathBuf,
}

impl Ingest {
    /// Finishes the blob: fsync, verify against `expected` (when given) and move into place.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest, Error> {
        let Some(writer) = self.writer.take() else {
            return Err(Error::Corrupt {
                what: "ingest committed twice".into(),
            });
        };
        let (digest, _, file) = writer.finish();
        file.sync_all().map_err(|source| Error::Io {
            action: "sync ingest file",
            path: self.path.clone(),
            source,
        })?;
        drop(file);
        if let Some(expected) = expected
            && expected != &digest
        {
            let _ = fs::remove_file(&self.path);
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual: digest,
            });
        }
        let target = self.blobs.join(digest.hex());
        crate::fault::point("ingest.before-rename");
        fs::rename(&self.path, &target).map_err(|source| Error::Io {
            action: "commit blob",
            path: target.clone(),
            source,
        })?;
        crate::fault::point("ingest.after-rename");
        if let Ok(dir) = File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        Ok(digest)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.as_ref().map_or(0, Sha256Writer::written)
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("ingest already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}
