//! Progress reporting: what a build shows, as data ([`Event`]s sent to a [`Progress`] sink).
//!
//! The solver's events are forwarded (its `Keyed` events become [`Event::CacheMiss`]
//! explanations, see [`crate::explain`]); the engine's internal steps (loading the Dockerfile,
//! resolving metadata, exporting) are reported the same way (`Step`). [`json`] is the
//! one-object-per-line encoding of events used by `--progress=json` and build logs.

pub mod json;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oci::Digest;

use crate::explain::Reason;

/// Something that happened in a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A step's result was found in the cache.
    Cached {
        /// The step's vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// The vertices of its inputs, in order.
        inputs: Vec<Digest>,
    },
    /// A step's cache key matched no result: why (computed before it runs).
    CacheMiss {
        /// The step's vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// What changed since the last build of the same context, Dockerfile and target.
        reasons: Vec<Reason>,
    },
    /// A step started running.
    Started {
        /// The step's vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// The vertices of its inputs, in order (none for the engine's internal steps).
        inputs: Vec<Digest>,
    },
    /// Output of a running step.
    Log {
        /// The step's vertex.
        vertex: Digest,
        /// 1 = stdout, 2 = stderr.
        stream: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A status line of a running step.
    Status {
        /// The step's vertex.
        vertex: Digest,
        /// The line.
        message: String,
    },
    /// A step finished.
    Completed {
        /// The step's vertex.
        vertex: Digest,
        /// Its name.
        name: String,
        /// How long it ran.
        duration: Duration,
        /// Its error, if it failed.
        error: Option<String>,
    },
}

/// Receives a build's events, from any thread.
pub trait Progress: Send + Sync {
    /// Called for every event.
    fn event(&self, event: Event);
}

/// Converts a solver event; `None` for `Keyed`, which is not shown as such.
pub(crate) fn from_solver(event: solver::Event) -> Option<Event> {
    Some(match event {
        solver::Event::Keyed { .. } => return None,
        solver::Event::Cached { vertex, name, inputs } => Event::Cached { vertex, name, inputs },
        solver::Event::Started { vertex, name, inputs } => Event::Started { vertex, name, inputs },
        solver::Event::Log { vertex, stream, data } => Event::Log { vertex, stream, data },
        solver::Event::Status { vertex, message } => Event::Status { vertex, message },
        solver::Event::Completed {
            vertex,
            name,
            duration,
            error,
        } => Event::Completed {
            vertex,
            name,
            duration,
            error,
        },
    })
}

/// Hands solver events to an engine sink, without explanations (solves of raw definitions).
pub(crate) struct Forward(pub(crate) Arc<dyn Progress>);

impl solver::Progress for Forward {
    fn event(&self, event: solver::Event) {
        if let Some(event) = from_solver(event) {
            self.0.event(event);
        }
    }
}

static STEP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An internal step shown like a vertex (`[internal] load build definition from Dockerfile`).
pub struct Step {
    progress: Arc<dyn Progress>,
    vertex: Digest,
    name: String,
    started: Instant,
}

impl Step {
    pub fn start(progress: &Arc<dyn Progress>, name: impl Into<String>) -> Step {
        let name = name.into();
        let n = STEP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let vertex = Digest::of(format!("internal:{}:{n}:{name}", std::process::id()).as_bytes());
        progress.event(Event::Started {
            vertex: vertex.clone(),
            name: name.clone(),
            inputs: Vec::new(),
        });
        Step {
            progress: progress.clone(),
            vertex,
            name,
            started: Instant::now(),
        }
    }

    pub fn status(&self, message: impl Into<String>) {
        self.progress.event(Event::Status {
            vertex: self.vertex.clone(),
            message: message.into(),
        });
    }

    /// Reports the step finished; a failure's line is the error's whole chain.
    pub fn finish<T, E: std::error::Error + 'static>(self, result: Result<T, E>) -> Result<T, E> {
        self.progress.event(Event::Completed {
            vertex: self.vertex.clone(),
            name: self.name.clone(),
            duration: self.started.elapsed(),
            error: result.as_ref().err().map(|e| oci::error_chain(e)),
        });
        result
    }
}

/// Most bytes of step output a build log keeps; later output is dropped from the log (the
/// live display still shows it), and the log says so.
const LOG_LIMIT: u64 = 64 << 20;

/// A build's progress: forwards events to the caller's sink, turns computed keys into
/// cache-miss explanations, and writes everything to the build's log.
pub(crate) struct BuildProgress {
    sink: Arc<dyn Progress>,
    start: Instant,
    explainer: std::sync::OnceLock<crate::explain::Explainer>,
    log: std::sync::Mutex<Option<Log>>,
    warnings: std::sync::Mutex<Vec<String>>,
    /// Every step whose key was computed, for `--cache-to`.
    keyed: std::sync::Mutex<Vec<crate::remote::KeyedStep>>,
}

struct Log {
    writer: store::logs::LogWriter,
    clipped: bool,
}

impl BuildProgress {
    /// Progress for a build whose log is `log` (none if it could not be created).
    pub(crate) fn new(sink: Arc<dyn Progress>, log: Option<store::logs::LogWriter>) -> BuildProgress {
        BuildProgress {
            sink,
            start: Instant::now(),
            explainer: std::sync::OnceLock::new(),
            log: std::sync::Mutex::new(log.map(|writer| Log {
                writer,
                clipped: false,
            })),
            warnings: std::sync::Mutex::new(Vec::new()),
            keyed: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The steps whose cache keys were computed so far, in the order they were.
    pub(crate) fn keyed_steps(&self) -> Vec<crate::remote::KeyedStep> {
        self.keyed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts explaining cache misses (once the build's scope is known).
    pub(crate) fn set_explainer(&self, explainer: crate::explain::Explainer) {
        let _ = self.explainer.set(explainer);
    }

    pub(crate) fn explainer(&self) -> Option<&crate::explain::Explainer> {
        self.explainer.get()
    }

    /// Time since the build started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Writes a line that is not an event (the log's first and last lines).
    pub(crate) fn log_line(&self, line: &str) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = log.as_mut() {
            let written = l.writer.line(line).and_then(|()| l.writer.flush());
            if let Err(e) = written {
                *log = None;
                self.warn(format!("build log abandoned: {e}"));
            }
        }
    }

    /// Problems worth telling the user that did not fail the build.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    fn emit(&self, event: Event) {
        self.record(&event);
        self.sink.event(event);
    }

    fn record(&self, event: &Event) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let Some(l) = log.as_mut() else { return };
        let time = self.start.elapsed();
        let mut written = Ok(());
        match event {
            Event::Log { vertex, .. } if l.writer.written() >= LOG_LIMIT => {
                if !l.clipped {
                    l.clipped = true;
                    let note = Event::Status {
                        vertex: vertex.clone(),
                        message: format!(
                            "[output clipped in the build log: log limit {}MiB reached]",
                            LOG_LIMIT >> 20
                        ),
                    };
                    written = l.writer.line(&json::encode_event(time, &note));
                }
            }
            _ => written = l.writer.line(&json::encode_event(time, event)),
        }
        // Completed steps are flushed, so `kiln logs` run meanwhile sees them.
        if written.is_ok() && matches!(event, Event::Completed { .. }) {
            written = l.writer.flush();
        }
        if let Err(e) = written {
            *log = None;
            drop(log);
            self.warn(format!("build log abandoned: {e}"));
        }
    }
}

impl Progress for BuildProgress {
    fn event(&self, event: Event) {
        self.emit(event);
    }
}

impl solver::Progress for BuildProgress {
    fn event(&self, event: solver::Event) {
        match event {
            solver::Event::Keyed {
                vertex,
                name,
                key,
                cached,
                ignore_cache,
                facts,
                deps,
                link,
            } => {
                if let Some(key) = &key {
                    let inputs = deps
                        .iter()
                        .map(|d| match &d.part {
                            Some(solver::KeyPart::Key(k)) => (Some(k.clone()), d.selector.clone()),
                            _ => (None, d.selector.clone()),
                        })
                        .collect();
                    self.keyed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(crate::remote::KeyedStep {
                            key: key.clone(),
                            link,
                            inputs,
                        });
                }
                let Some(explainer) = self.explainer.get() else {
                    return;
                };
                if let Some(reasons) =
                    explainer.keyed(&vertex, &name, key.as_ref(), cached, ignore_cache, &facts, &deps)
                {
                    self.emit(Event::CacheMiss {
                        vertex,
                        name,
                        reasons,
                    });
                }
            }
            other => {
                if let Some(event) = from_solver(other) {
                    self.emit(event);
                }
            }
        }
    }
}

/// A new build id: milliseconds since the epoch and a few bits of this process, in base 36,
/// so ids sort by start time (see [`store::logs`]).
pub(crate) fn new_build_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let salt = (u64::from(std::process::id()) << 16)
        ^ u64::from(now.subsec_nanos())
        ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}{}",
        base36(now.as_millis() as u64, 9),
        base36(salt % 36u64.pow(4), 4)
    )
}

/// `n` in base 36, zero-padded to `width` digits.
fn base36(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 || digits.len() < width {
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}
