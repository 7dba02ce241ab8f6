//! Keyed digests: HMAC-SHA256 under a key that only this state directory knows.
//!
//! Some cache keys must depend on data that must never be stored or shown, such as the value of
//! a secret a step mounts: two builds that give the same step different secret values must not
//! share its result, yet the value must not be recoverable from a key or a record. A plain
//! digest of a low-entropy secret can be guessed offline; an HMAC under a random key cannot,
//! without the key. The key is 32 random bytes in `session-key` (mode 0600), made on first use
//! and kept, so that keys stay the same from one process to the next.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use hmac::{KeyInit, Mac};
use oci::Digest;

use crate::Error;

/// The key's file in the state directory.
pub(crate) const FILE: &str = "session-key";

const KEY_LEN: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The directory's HMAC key.
#[derive(Clone)]
pub(crate) struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Reads the key of the state directory `root`, making it first if there is none.
    pub(crate) fn load(root: &Path) -> Result<Key, Error> {
        let path = root.join(FILE);
        match fs::read(&path) {
            Ok(bytes) if bytes.len() == KEY_LEN => {
                let mut key = [0; KEY_LEN];
                key.copy_from_slice(&bytes);
                return Ok(Key(key));
            }
            // A short file is what a crash while making it leaves: make it again.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        }
        let mut key = [0; KEY_LEN];
        fill_random(&mut key).map_err(|source| Error::Io {
            action: "get random bytes for",
            path: path.clone(),
            source,
        })?;
        // Written whole under another name and renamed: a crash never leaves a partial key
        // that a later process would use.
        let tmp = root.join(format!("{FILE}.tmp"));
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { action, path, source }
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        file.write_all(&key).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        Ok(Key(key))
    }

    /// The HMAC of `data` under this key, as a digest.
    pub(crate) fn digest(&self, data: &[u8]) -> Digest {
        // Any key length is valid for HMAC.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        Digest::from_sha256(mac.finalize().into_bytes().into())
    }
}

fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(std::io::Error::from)?;
        filled += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Key::load(dir.path()).unwrap();
        let again = Key::load(dir.path()).unwrap();
        assert_eq!(first.digest(b"value"), again.digest(b"value"));
        assert_ne!(first.digest(b"value"), first.digest(b"other value"));
        assert_ne!(first.digest(b"value"), Digest::of(b"value"), "not a plain digest");
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let elsewhere = tempfile::tempdir().unwrap();
        assert_ne!(
            Key::load(elsewhere.path()).unwrap().digest(b"value"),
            first.digest(b"value"),
            "another state directory has another key"
        );
    }

    #[test]
    fn a_truncated_key_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"short").unwrap();
        let key = Key::load(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join(FILE)).unwrap().len(), KEY_LEN);
        assert_eq!(Key::load(dir.path()).unwrap().digest(b"x"), key.digest(b"x"));
    }
}
