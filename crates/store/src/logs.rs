//! Build logs: one file per build in `logs/<id>.jsonl`, appended while the build runs, so
//! `kiln logs` can show a build's full output afterwards (or while it still runs).
//!
//! The store only keeps the files: what a line holds is the engine's business. Ids are short
//! lowercase names (`[a-z0-9-]`), chosen by the writer, that sort in creation order. The
//! newest [`KEEP`] logs are kept; creating one removes the oldest beyond that. Logs are not
//! part of the crash-consistency contract: a killed build leaves its log as far as it got,
//! and readers accept a torn last line.
//!
//! Logs take disk space like the cache does, so [`crate::gc`] counts them, one record of kind
//! `build.log` each, and prunes them (all but the newest, and never one still being written).
//!
//! Reading needs no lock ([`list`], [`find`] work on the directory path), so logs can be read
//! while another process holds the state directory.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::{Error, Store};

/// How many build logs are kept.
pub const KEEP: usize = 50;

/// The directory of the logs, under the state directory.
pub(crate) const DIR: &str = "logs";
const SUFFIX: &str = ".jsonl";

/// One stored build log.
#[derive(Clone, Debug)]
pub struct LogInfo {
    /// The build id.
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// When it was created (when the file system does not say, when it was last written).
    pub created: SystemTime,
    /// When it was last written.
    pub modified: SystemTime,
}

/// The ids of the logs this process is writing, which pruning must leave alone.
#[derive(Debug, Default)]
pub(crate) struct Writing(Arc<Mutex<BTreeSet<String>>>);

impl Writing {
    pub(crate) fn ids(&self) -> BTreeSet<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Appends lines to one build's log. Dropping it flushes what was written.
pub struct LogWriter {
    out: BufWriter<File>,
    path: PathBuf,
    written: u64,
    id: String,
    writing: Arc<Mutex<BTreeSet<String>>>,
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // What is written is kept as far as it goes: a log is best effort.
        let _ = self.out.flush();
        self.writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl LogWriter {
    /// Appends `line` and a newline.
    pub fn line(&mut self, line: &str) -> Result<(), Error> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| Error::Io {
                action: "write build log",
                path: self.path.clone(),
                source,
            })?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes out buffered lines, so readers see them.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|source| Error::Io {
            action: "write build log",
            path: self.path.clone(),
            source,
        })
    }
}

/// Whether `id` is a valid build id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Store {
    /// Starts the log of build `id` (see [`valid_id`]), removing the oldest logs beyond
    /// [`KEEP`] (except those still being written).
    pub fn create_log(&self, id: &str) -> Result<LogWriter, Error> {
        if !valid_id(id) {
            return Err(Error::InvalidLogId(id.to_string()));
        }
        let dir = self.root().join(DIR);
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        let existing = list(self.root())?;
        let writing = self.writing_logs.ids();
        let excess = existing.len().saturating_sub(KEEP.saturating_sub(1));
        // Oldest first, passing over those still being written.
        let oldest = existing.iter().rev().filter(|log| !writing.contains(&log.id));
        for old in oldest.take(excess) {
            // Best effort: a log that cannot be removed only takes space.
            let _ = fs::remove_file(&old.path);
        }
        let path = dir.join(format!("{id}{SUFFIX}"));
        let file = File::options()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Io {
                action: "create build log",
                path: path.clone(),
                source,
            })?;
        let writing = self.writing_logs.0.clone();
        writing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        Ok(LogWriter {
            out: BufWriter::new(file),
            path,
            written: 0,
            id: id.to_string(),
            writing,
        })
    }
}

/// The build logs under the state directory `root`, newest first.
pub fn list(root: &Path) -> Result<Vec<LogInfo>, Error> {
    let dir = root.join(DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "list",
                path: dir,
                source,
            });
        }
    };
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            action: "list",
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if !valid_id(id) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        logs.push(LogInfo {
            id: id.to_string(),
            path: entry.path(),
            size: meta.len(),
            created: meta.created().unwrap_or(modified),
            modified,
        });
    }
    // Ids sort in creation order; the newest first.
    logs.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(logs)
}

/// Why [`find`] found no single log.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// Listing failed.
    #[error(transparent)]
    Store(#[from] Error),
    /// No build has a log yet.
    #[error("no build logs yet: run a build first")]
    Empty,
    /// No id starts with the prefix.
    #[error("no build log with an id starting with {0:?} (`kiln logs --list` shows them)")]
    NotFound(String),
    /// Several ids start with the prefix.
    #[error("build id prefix {prefix:?} is ambiguous: it matches {}", matches.join(", "))]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// The ids it matches.
        matches: Vec<String>,
    },
}

/// The log of the build whose id starts with `prefix`, or the newest log for `None`.
pub fn find(root: &Path, prefix: Option<&str>) -> Result<LogInfo, FindError> {
    let logs = list(root)?;
    let Some(prefix) = prefix else {
        return logs.into_iter().next().ok_or(FindError::Empty);
    };
    let mut matches: Vec<LogInfo> = logs.into_iter().filter(|l| l.id.starts_with(prefix)).collect();
    if let Some(exact) = matches.iter().position(|l| l.id == prefix) {
        return Ok(matches.swap_remove(exact));
    }
    match matches.len() {
        0 => Err(FindError::NotFound(prefix.to_string())),
        1 => Ok(matches.remove(0)),
        _ => Err(FindError::Ambiguous {
            prefix: prefix.to_string(),
            matches: matches.into_iter().map(|l| l.id).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_listed_newest_first_found_by_prefix_and_bounded() {
        let (dir, store) = crate::open_temp();
        assert!(matches!(find(dir.path(), None), Err(FindError::Empty)));
        for i in 0..KEEP + 3 {
            let mut log = store.create_log(&format!("b{i:04}")).unwrap();
            log.line(&format!("{{\"n\":{i}}}")).unwrap();
            log.flush().unwrap();
        }
        let logs = list(dir.path()).unwrap();
        assert_eq!(logs.len(), KEEP, "older logs are removed");
        assert_eq!(logs[0].id, format!("b{:04}", KEEP + 2));
        assert_eq!(find(dir.path(), None).unwrap().id, logs[0].id);
        let text = fs::read_to_string(&find(dir.path(), Some("b0052")).unwrap().path).unwrap();
        assert_eq!(text, "{\"n\":52}\n");
        assert!(matches!(
            find(dir.path(), Some("b00")),
            Err(FindError::Ambiguous { .. })
        ));
        assert!(matches!(
            find(dir.path(), Some("b0000")),
            Err(FindError::NotFound(_))
        ));
        assert!(
            matches!(store.create_log("../escape"), Err(Error::InvalidLogId(_))),
            "ids cannot name other paths"
        );
    }

    #[test]
    fn a_log_being_written_is_never_rotated_away() {
        let (dir, store) = crate::open_temp();
        let mut first = store.create_log("a0000").unwrap();
        assert_eq!(store.writing_logs.ids(), BTreeSet::from(["a0000".to_string()]));
        // The oldest log stays while it is written; the next oldest go in its place.
        for i in 1..=KEEP + 1 {
            store.create_log(&format!("a{i:04}")).unwrap();
        }
        let ids: Vec<String> = list(dir.path()).unwrap().into_iter().map(|l| l.id).collect();
        assert!(ids.contains(&"a0000".to_string()), "{ids:?}");
        assert!(!ids.contains(&"a0001".to_string()), "{ids:?}");
        assert_eq!(ids.len(), KEEP, "{ids:?}");
        first.line("still here").unwrap();
        drop(first);
        assert!(store.writing_logs.ids().is_empty());
        assert_eq!(
            fs::read_to_string(dir.path().join("logs/a0000.jsonl")).unwrap(),
            "still here\n"
        );
    }
}
