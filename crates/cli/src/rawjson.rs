//! `--progress=rawjson`: the stream `docker buildx build --progress=rawjson` writes, so tools
//! that read buildx's output read kiln's. Each line is one BuildKit `client.SolveStatus` as Go's
//! `encoding/json` encodes it: `vertexes` (`digest`, `inputs`, `name`, `started`, `completed`,
//! `cached`, `error`), `statuses` (`id`, `vertex`, `name`, `total`, `current`, `timestamp`,
//! `started`, `completed`), `logs` (`vertex`, `stream`, `data` in base64, `timestamp`) and
//! `warnings` (`vertex`, `level`, `short` in base64, …); empty fields are left out as Go's
//! `omitempty` leaves them, times are RFC 3339 with nanoseconds in UTC, and `<`, `>`, `&` are
//! escaped as Go escapes them.
//!
//! A vertex's `inputs` are the digests of the vertices it reads, as kiln's events carry them
//! (the engine's internal steps have none).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::Event;
use engine::progress::json::base64_encode;
use serde::Serialize;

#[derive(Default, Serialize)]
struct SolveStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vertexes: Vec<Vertex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    statuses: Vec<VertexStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logs: Vec<VertexLog>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<VertexWarning>,
}

#[derive(Clone, Default, Serialize)]
struct Vertex {
    #[serde(skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

#[derive(Serialize)]
struct VertexStatus {
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "is_zero")]
    total: i64,
    current: i64,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
}

#[derive(Serialize)]
struct VertexLog {
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "is_zero")]
    stream: i64,
    data: String,
    timestamp: String,
}

#[derive(Serialize)]
struct VertexWarning {
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "is_zero")]
    level: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    short: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Turns kiln's events into `SolveStatus` lines, remembering each vertex's state, since BuildKit
/// sends a vertex whole every time it changes.
#[derive(Default)]
pub(crate) struct Encoder {
    vertices: HashMap<String, Vertex>,
}

impl Encoder {
    /// The line for `event`, which happened at `at`; `None` for events buildx has no form for
    /// (cache-miss explanations).
    pub(crate) fn event(&mut self, event: &Event, at: SystemTime) -> Option<String> {
        let now = time(at);
        let mut status = SolveStatus::default();
        match event {
            Event::CacheMiss { .. } => return None,
            Event::Started { vertex, name, inputs } => {
                let v = self.vertex(vertex, name, inputs);
                v.started = Some(now);
                v.completed = None;
                status.vertexes.push(v.clone());
            }
            Event::Cached { vertex, name, inputs } => {
                let v = self.vertex(vertex, name, inputs);
                v.started.get_or_insert_with(|| now.clone());
                v.completed = Some(now);
                v.cached = true;
                status.vertexes.push(v.clone());
            }
            Event::Completed {
                vertex, name, error, ..
            } => {
                let v = self.vertex(vertex, name, &[]);
                v.started.get_or_insert_with(|| now.clone());
                v.completed = Some(now);
                v.error = error.clone().unwrap_or_default();
                status.vertexes.push(v.clone());
            }
            Event::Log { vertex, stream, data } => status.logs.push(VertexLog {
                vertex: vertex.to_string(),
                stream: i64::from(*stream),
                data: base64_encode(data),
                timestamp: now,
            }),
            Event::Status { vertex, message } => {
                // kiln's statuses are finished lines ("exporting layers done") or notes of what
                // a step is doing; BuildKit's are items by id, completed when done.
                let (id, completed) = match message.strip_suffix(" done") {
                    Some(id) => (id.to_string(), Some(now.clone())),
                    None => (message.clone(), None),
                };
                status.statuses.push(VertexStatus {
                    id,
                    vertex: vertex.to_string(),
                    name: String::new(),
                    total: 0,
                    current: 0,
                    timestamp: now.clone(),
                    started: Some(now),
                    completed,
                });
            }
        }
        Some(encode(&status))
    }

    fn vertex(&mut self, digest: &oci::Digest, name: &str, inputs: &[oci::Digest]) -> &mut Vertex {
        let v = self.vertices.entry(digest.to_string()).or_insert_with(|| Vertex {
            digest: digest.to_string(),
            ..Vertex::default()
        });
        if !name.is_empty() {
            v.name = name.to_string();
        }
        if !inputs.is_empty() {
            v.inputs = inputs.iter().map(oci::Digest::to_string).collect();
        }
        v
    }
}

/// A line with one warning (BuildKit's level 1, as its lint warnings), for warnings kiln gives
/// outside any step.
pub(crate) fn warning(message: &str) -> String {
    encode(&SolveStatus {
        warnings: vec![VertexWarning {
            vertex: String::new(),
            level: 1,
            short: base64_encode(message.as_bytes()),
        }],
        ..SolveStatus::default()
    })
}

/// Go's `json.Marshal`: serde_json's output, with the characters Go escapes for HTML safety
/// escaped too (they can only occur inside strings).
fn encode(status: &SolveStatus) -> String {
    let text = serde_json::to_string(status).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `time.Time` in JSON (RFC 3339 with nanoseconds, trailing zeros dropped), in UTC.
fn time(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = oci::time::rfc3339(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
    let nanos = since.subsec_nanos();
    if nanos == 0 {
        return whole;
    }
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    format!("{}.{fraction}Z", whole.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn times_are_go_rfc3339_nano() {
        assert_eq!(time(at(1_700_000_000, 0)), "2023-11-14T22:13:20Z");
        assert_eq!(time(at(1_700_000_000, 120_000_000)), "2023-11-14T22:13:20.12Z");
        assert_eq!(time(at(1_700_000_000, 5)), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn events_become_solve_statuses() {
        let vertex = oci::Digest::of(b"v");
        let d = vertex.to_string();
        let mut enc = Encoder::default();
        let input = oci::Digest::of(b"input");
        let started = Event::Started {
            vertex: vertex.clone(),
            name: "[1/2] RUN echo <hi> & bye".into(),
            inputs: vec![input.clone()],
        };
        assert_eq!(
            enc.event(&started, at(1_700_000_000, 0)).unwrap(),
            format!(
                r#"{{"vertexes":[{{"digest":"{d}","inputs":["{input}"],"name":"[1/2] RUN echo \u003chi\u003e \u0026 bye","started":"2023-11-14T22:13:20Z"}}]}}"#
            )
        );
        let log = Event::Log {
            vertex: vertex.clone(),
            stream: 1,
            data: b"hi\n".to_vec(),
        };
        assert_eq!(
            enc.event(&log, at(1_700_000_001, 0)).unwrap(),
            format!(
                r#"{{"logs":[{{"vertex":"{d}","stream":1,"data":"aGkK","timestamp":"2023-11-14T22:13:21Z"}}]}}"#
            )
        );
        let status = Event::Status {
            vertex: vertex.clone(),
            message: "exporting layers done".into(),
        };
        assert_eq!(
            enc.event(&status, at(1_700_000_001, 0)).unwrap(),
            format!(
                r#"{{"statuses":[{{"id":"exporting layers","vertex":"{d}","current":0,"timestamp":"2023-11-14T22:13:21Z","started":"2023-11-14T22:13:21Z","completed":"2023-11-14T22:13:21Z"}}]}}"#
            )
        );
        let completed = Event::Completed {
            vertex: vertex.clone(),
            name: "[1/2] RUN echo <hi> & bye".into(),
            duration: Duration::from_secs(2),
            error: Some("exit code: 1".into()),
        };
        assert_eq!(
            enc.event(&completed, at(1_700_000_002, 0)).unwrap(),
            format!(
                r#"{{"vertexes":[{{"digest":"{d}","inputs":["{input}"],"name":"[1/2] RUN echo \u003chi\u003e \u0026 bye","started":"2023-11-14T22:13:20Z","completed":"2023-11-14T22:13:22Z","error":"exit code: 1"}}]}}"#
            )
        );
        let cached = Event::Cached {
            vertex: oci::Digest::of(b"c"),
            name: "[2/2] COPY a b".into(),
            inputs: Vec::new(),
        };
        let line = enc.event(&cached, at(1_700_000_003, 0)).unwrap();
        assert!(
            line.contains(
                r#""started":"2023-11-14T22:13:23Z","completed":"2023-11-14T22:13:23Z","cached":true"#
            ),
            "{line}"
        );
        assert_eq!(warning("x"), r#"{"warnings":[{"level":1,"short":"eA=="}]}"#);
    }
}
