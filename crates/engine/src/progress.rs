//! Progress reporting: the solver's events, plus helpers for the engine's own internal steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use oci::Digest;
pub use solver::{Event, Progress};

static STEP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An internal step shown like a vertex (`[internal] load build definition from Dockerfile`).
pub(crate) struct Step {
    progress: Arc<dyn Progress>,
    vertex: Digest,
    name: String,
    started: Instant,
}

impl Step {
    pub(crate) fn start(progress: &Arc<dyn Progress>, name: impl Into<String>) -> Step {
        let name = name.into();
        let n = STEP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let vertex = Digest::of(format!("internal:{}:{n}:{name}", std::process::id()).as_bytes());
        progress.event(Event::Started {
            vertex: vertex.clone(),
            name: name.clone(),
        });
        Step {
            progress: progress.clone(),
            vertex,
            name,
            started: Instant::now(),
        }
    }

    pub(crate) fn status(&self, message: impl Into<String>) {
        self.progress.event(Event::Status {
            vertex: self.vertex.clone(),
            message: message.into(),
        });
    }

    pub(crate) fn finish<T, E: std::fmt::Display>(self, result: Result<T, E>) -> Result<T, E> {
        self.progress.event(Event::Completed {
            vertex: self.vertex.clone(),
            name: self.name.clone(),
            duration: self.started.elapsed(),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        result
    }
}
