//! The JSON-lines form of a build's progress: `--progress=json` prints it, build logs
//! (`kiln logs`) store it. One object per line; the schema is documented in
//! `docs/progress-json.md` and pinned by the tests below.
//!
//! Every line has `"type"`. Event lines also have `"time"`, seconds since the build started.
//! Logs add a `build` line first and a `result` line last.

use std::time::Duration;

use oci::Digest;
use serde_json::{Value, json};

use super::Event;
use crate::explain::Reason;

/// Version of the schema, in `build` lines.
pub const VERSION: u32 = 1;

/// The first line of a build log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildLine {
    /// The build id.
    pub id: String,
    /// When it started (RFC 3339, UTC).
    pub started: String,
    /// The build context directory.
    pub context: String,
    /// The Dockerfile.
    pub dockerfile: String,
    /// `--target`, if given.
    pub target: Option<String>,
}

/// The last line of a build log.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultLine {
    /// Seconds since the start.
    pub time: f64,
    /// The error, if the build failed.
    pub error: Option<String>,
}

/// One decoded line.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// The build's header.
    Build(BuildLine),
    /// An event, with its time since the build started.
    Event(Duration, Event),
    /// The build's outcome.
    Result(ResultLine),
}

/// A line that is not valid progress JSON.
#[derive(Debug, thiserror::Error)]
#[error("invalid progress line: {0}")]
pub struct DecodeError(String);

fn digests(list: &[Digest]) -> Vec<String> {
    list.iter().map(Digest::to_string).collect()
}

/// The `inputs` of a line: absent (logs written before kiln reported them) is none.
fn inputs(value: &Value) -> Result<Vec<Digest>, DecodeError> {
    let Some(list) = value.get("inputs") else {
        return Ok(Vec::new());
    };
    list.as_array()
        .ok_or_else(|| DecodeError("\"inputs\" is not a list".into()))?
        .iter()
        .map(|d| {
            d.as_str()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| DecodeError(format!("invalid input digest {d}")))
        })
        .collect()
}

/// Encodes an event that happened `time` after the build started.
pub fn encode_event(time: Duration, event: &Event) -> String {
    let time = round_ms(time.as_secs_f64());
    let value = match event {
        Event::Cached { vertex, name, inputs } => {
            json!({"type": "cached", "time": time, "vertex": vertex.to_string(), "name": name, "inputs": digests(inputs)})
        }
        Event::CacheMiss {
            vertex,
            name,
            reasons,
        } => {
            let reasons: Vec<Value> = reasons.iter().map(reason_value).collect();
            json!({"type": "cache-miss", "time": time, "vertex": vertex.to_string(), "name": name, "reasons": reasons})
        }
        Event::Started { vertex, name, inputs } => {
            json!({"type": "started", "time": time, "vertex": vertex.to_string(), "name": name, "inputs": digests(inputs)})
        }
        Event::Log { vertex, stream, data } => {
            let mut value =
                json!({"type": "log", "time": time, "vertex": vertex.to_string(), "stream": stream});
            match std::str::from_utf8(data) {
                Ok(text) => value["text"] = json!(text),
                Err(_) => value["base64"] = json!(base64_encode(data)),
            }
            value
        }
        Event::Status { vertex, message } => {
            json!({"type": "status", "time": time, "vertex": vertex.to_string(), "message": message})
        }
        Event::Completed {
            vertex,
            name,
            duration,
            error,
        } => json!({
            "type": "completed",
            "time": time,
            "vertex": vertex.to_string(),
            "name": name,
            "duration": round_ms(duration.as_secs_f64()),
            "error": error,
        }),
    };
    value.to_string()
}

/// Encodes a log's first line.
pub fn encode_build(line: &BuildLine) -> String {
    json!({
        "type": "build",
        "version": VERSION,
        "id": line.id,
        "started": line.started,
        "context": line.context,
        "dockerfile": line.dockerfile,
        "target": line.target,
    })
    .to_string()
}

/// Encodes a log's last line.
pub fn encode_result(line: &ResultLine) -> String {
    json!({"type": "result", "time": round_ms(line.time), "error": line.error}).to_string()
}

/// Decodes one line.
pub fn decode(line: &str) -> Result<Line, DecodeError> {
    let value: Value = serde_json::from_str(line).map_err(|e| DecodeError(e.to_string()))?;
    let text = |key: &str| -> Result<String, DecodeError> {
        value
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| DecodeError(format!("missing {key:?}")))
    };
    let optional = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    let seconds = |key: &str| -> Result<Duration, DecodeError> {
        value
            .get(key)
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| DecodeError(format!("missing {key:?}")))
    };
    let vertex = || -> Result<Digest, DecodeError> {
        text("vertex")?
            .parse()
            .map_err(|_| DecodeError("invalid \"vertex\"".into()))
    };
    let kind = text("type")?;
    let event = match kind.as_str() {
        "build" => {
            return Ok(Line::Build(BuildLine {
                id: text("id")?,
                started: text("started")?,
                context: text("context")?,
                dockerfile: text("dockerfile")?,
                target: optional("target"),
            }));
        }
        "result" => {
            return Ok(Line::Result(ResultLine {
                time: seconds("time")?.as_secs_f64(),
                error: optional("error"),
            }));
        }
        "cached" => Event::Cached {
            vertex: vertex()?,
            name: text("name")?,
            inputs: inputs(&value)?,
        },
        "cache-miss" => {
            let reasons = value
                .get("reasons")
                .and_then(Value::as_array)
                .ok_or_else(|| DecodeError("missing \"reasons\"".into()))?
                .iter()
                .map(|r| serde_json::from_value::<Reason>(r.clone()).map_err(|e| DecodeError(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            Event::CacheMiss {
                vertex: vertex()?,
                name: text("name")?,
                reasons,
            }
        }
        "started" => Event::Started {
            vertex: vertex()?,
            name: text("name")?,
            inputs: inputs(&value)?,
        },
        "log" => {
            let data = match (optional("text"), optional("base64")) {
                (Some(text), _) => text.into_bytes(),
                (None, Some(b64)) => {
                    base64_decode(&b64).ok_or_else(|| DecodeError("invalid \"base64\"".into()))?
                }
                (None, None) => return Err(DecodeError("log line without \"text\" or \"base64\"".into())),
            };
            let stream = value
                .get("stream")
                .and_then(Value::as_u64)
                .and_then(|s| u8::try_from(s).ok())
                .ok_or_else(|| DecodeError("missing \"stream\"".into()))?;
            Event::Log {
                vertex: vertex()?,
                stream,
                data,
            }
        }
        "status" => Event::Status {
            vertex: vertex()?,
            message: text("message")?,
        },
        "completed" => Event::Completed {
            vertex: vertex()?,
            name: text("name")?,
            duration: seconds("duration")?,
            error: optional("error"),
        },
        other => return Err(DecodeError(format!("unknown type {other:?}"))),
    };
    Ok(Line::Event(seconds("time")?, event))
}

/// A reason as JSON: its fields, plus `text`, the sentence shown to people.
fn reason_value(reason: &Reason) -> Value {
    let mut value = serde_json::to_value(reason).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("text".into(), json!(reason.to_string()));
    }
    value
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648); also the basic authentication git sources send.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in bytes {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex() -> Digest {
        Digest::of(b"v")
    }

    #[test]
    fn every_line_round_trips_and_the_format_is_pinned() {
        let t = Duration::from_millis(1500);
        let events = vec![
            Event::Started {
                vertex: vertex(),
                name: "[1/2] RUN make".into(),
                inputs: vec![Digest::of(b"input")],
            },
            Event::Log {
                vertex: vertex(),
                stream: 1,
                data: b"hello\n".to_vec(),
            },
            Event::Log {
                vertex: vertex(),
                stream: 2,
                data: vec![0xff, 0x00, b'a'],
            },
            Event::Status {
                vertex: vertex(),
                message: "pulling".into(),
            },
            Event::Cached {
                vertex: vertex(),
                name: "n".into(),
                inputs: Vec::new(),
            },
            Event::CacheMiss {
                vertex: vertex(),
                name: "n".into(),
                reasons: vec![Reason::NewStep],
            },
            Event::Completed {
                vertex: vertex(),
                name: "n".into(),
                duration: Duration::from_millis(250),
                error: Some("boom".into()),
            },
        ];
        for event in &events {
            let line = encode_event(t, event);
            assert_eq!(decode(&line).unwrap(), Line::Event(t, event.clone()), "{line}");
        }
        let v = vertex().to_string();
        assert_eq!(
            encode_event(t, &events[1]),
            format!(r#"{{"stream":1,"text":"hello\n","time":1.5,"type":"log","vertex":"{v}"}}"#)
        );
        assert_eq!(
            encode_event(t, &events[2]),
            format!(r#"{{"base64":"/wBh","stream":2,"time":1.5,"type":"log","vertex":"{v}"}}"#)
        );
        assert_eq!(
            encode_event(t, &events[5]),
            format!(
                r#"{{"name":"n","reasons":[{{"kind":"new-step","text":"no earlier build of this step"}}],"time":1.5,"type":"cache-miss","vertex":"{v}"}}"#
            )
        );
        let build = BuildLine {
            id: "abc".into(),
            started: "2026-11-28T00:00:00Z".into(),
            context: "/ctx".into(),
            dockerfile: "/ctx/Dockerfile".into(),
            target: None,
        };
        assert_eq!(decode(&encode_build(&build)).unwrap(), Line::Build(build));
        let result = ResultLine {
            time: 2.25,
            error: None,
        };
        assert_eq!(decode(&encode_result(&result)).unwrap(), Line::Result(result));
    }

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for line in [
            "",
            "{}",
            "[1]",
            r#"{"type":"log","time":1}"#,
            r#"{"type":"started","time":-1,"vertex":"sha256:00","name":"x"}"#,
            r#"{"type":"nope"}"#,
            r#"{"type":"log","time":1,"vertex":"x","stream":1,"base64":"!!"}"#,
        ] {
            assert!(decode(line).is_err(), "{line}");
        }
    }
}
