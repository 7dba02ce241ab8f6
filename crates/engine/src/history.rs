//! Past builds (`kiln history`), read from their stored logs: what each build line, event and
//! result line says.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;

use crate::Event;
use crate::progress::json::{self, Line};

/// How a past build ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildStatus {
    /// It succeeded.
    Completed,
    /// It failed.
    Failed,
    /// Its log has no result: it is still running, or its process was killed.
    Unfinished,
}

impl BuildStatus {
    /// `completed`, `failed`, `unfinished`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Completed => "completed",
            BuildStatus::Failed => "failed",
            BuildStatus::Unfinished => "unfinished",
        }
    }
}

/// One past build.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// Its id (`kiln logs ID`).
    pub id: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Its context (directory or git URL).
    pub context: String,
    /// Its Dockerfile.
    pub dockerfile: String,
    /// `--target`.
    pub target: Option<String>,
    /// How it ended.
    pub status: BuildStatus,
    /// Seconds it took (none while unfinished).
    pub duration: Option<f64>,
    /// Steps it ran or found cached (internal steps included).
    pub steps: u32,
    /// Steps found in the cache.
    pub cached: u32,
    /// Its error.
    pub error: Option<String>,
}

/// The newest `limit` builds whose logs the state directory `root` keeps, newest first. A log
/// that cannot be read is skipped.
pub fn history(root: &Path, limit: usize) -> Result<Vec<HistoryEntry>, store::Error> {
    let mut entries = Vec::new();
    for log in store::logs::list(root)?.into_iter().take(limit) {
        let Ok(file) = std::fs::File::open(&log.path) else {
            continue;
        };
        entries.push(summarize(&log.id, std::io::BufReader::new(file)));
    }
    Ok(entries)
}

/// What the lines of one log say.
fn summarize(id: &str, reader: impl BufRead) -> HistoryEntry {
    let mut entry = HistoryEntry {
        id: id.to_string(),
        started: String::new(),
        context: String::new(),
        dockerfile: String::new(),
        target: None,
        status: BuildStatus::Unfinished,
        duration: None,
        steps: 0,
        cached: 0,
        error: None,
    };
    let (mut steps, mut cached) = (BTreeSet::new(), BTreeSet::new());
    for line in reader.lines().map_while(Result::ok) {
        match json::decode(&line) {
            Ok(Line::Build(build)) => {
                entry.started = build.started;
                entry.context = build.context;
                entry.dockerfile = build.dockerfile;
                entry.target = build.target;
            }
            Ok(Line::Event(_, Event::Cached { vertex, .. })) => {
                steps.insert(vertex.clone());
                cached.insert(vertex);
            }
            Ok(Line::Event(_, Event::Started { vertex, .. })) => {
                steps.insert(vertex);
            }
            Ok(Line::Result(result)) => {
                entry.duration = Some(result.time);
                entry.status = match result.error {
                    None => BuildStatus::Completed,
                    Some(_) => BuildStatus::Failed,
                };
                entry.error = result.error;
            }
            _ => {}
        }
    }
    entry.steps = steps.len() as u32;
    entry.cached = cached.len() as u32;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_log_is_summarized() {
        let v = |n: &str| oci::Digest::of(n.as_bytes());
        let lines = [
            json::encode_build(&json::BuildLine {
                id: "b1".into(),
                started: "2026-12-07T00:00:00Z".into(),
                context: "/src".into(),
                dockerfile: "/src/Dockerfile".into(),
                target: None,
            }),
            json::encode_event(
                Duration::ZERO,
                &Event::Cached {
                    vertex: v("a"),
                    name: "a".into(),
                    inputs: vec![],
                },
            ),
            json::encode_event(
                Duration::ZERO,
                &Event::Started {
                    vertex: v("b"),
                    name: "b".into(),
                    inputs: vec![],
                },
            ),
            json::encode_result(&json::ResultLine {
                time: 1.5,
                error: None,
            }),
        ]
        .join("\n");
        let entry = summarize("b1", lines.as_bytes());
        assert_eq!(entry.status, BuildStatus::Completed);
        assert_eq!((entry.steps, entry.cached), (2, 1));
        assert_eq!(entry.duration, Some(1.5));
        assert_eq!(entry.context, "/src");
        let unfinished = summarize("b2", lines.lines().next().unwrap().as_bytes());
        assert_eq!(unfinished.status, BuildStatus::Unfinished);
    }
}
