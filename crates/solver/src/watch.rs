//! Who is watching a vertex, and where an op's output goes: [`Watchers`], [`Targets`] and the
//! [`Context`] handed to ops.
//!
//! Every job that loaded a vertex watches it: the job's progress sink receives the vertex's
//! events, and the job's session is among those an op of the vertex may use. A job stops
//! watching when it ends, so a long-lived solver never keeps the sinks of finished builds.
//!
//! An execution may serve several vertices (vertices with the same cache key run once): its
//! targets are the watchers of each of them, and each target hears the execution's events
//! under its own vertex digest.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci::Digest;

use crate::{Event, Progress};

/// One job watching a vertex.
struct Watcher<S> {
    job: u64,
    progress: Arc<dyn Progress>,
    session: Arc<S>,
}

/// The jobs watching one vertex.
pub(crate) struct Watchers<S> {
    list: Mutex<Vec<Watcher<S>>>,
}

impl<S> Watchers<S> {
    pub(crate) fn new() -> Watchers<S> {
        Watchers {
            list: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Watcher<S>>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a job (once).
    pub(crate) fn add(&self, job: u64, progress: &Arc<dyn Progress>, session: &Arc<S>) {
        let mut list = self.lock();
        if !list.iter().any(|w| w.job == job) {
            list.push(Watcher {
                job,
                progress: progress.clone(),
                session: session.clone(),
            });
        }
    }

    /// Removes a job.
    pub(crate) fn remove(&self, job: u64) {
        self.lock().retain(|w| w.job != job);
    }

    /// Sends an event to every watching job.
    pub(crate) fn send(&self, event: &Event) {
        let sinks: Vec<Arc<dyn Progress>> = self.lock().iter().map(|w| w.progress.clone()).collect();
        for sink in sinks {
            sink.event(event.clone());
        }
    }

    /// The sessions of the watching jobs, oldest job first.
    fn sessions(&self, into: &mut Vec<(u64, Arc<S>)>) {
        for watcher in self.lock().iter() {
            if !into.iter().any(|(job, _)| *job == watcher.job) {
                into.push((watcher.job, watcher.session.clone()));
            }
        }
    }
}

/// A vertex an execution reports to, as its watchers know it.
pub(crate) struct Target<S> {
    pub(crate) vertex: Digest,
    pub(crate) name: String,
    /// The digests of the vertex's inputs, in order.
    pub(crate) inputs: Arc<Vec<Digest>>,
    pub(crate) watchers: Arc<Watchers<S>>,
}

impl<S> Clone for Target<S> {
    fn clone(&self) -> Self {
        Target {
            vertex: self.vertex.clone(),
            name: self.name.clone(),
            inputs: self.inputs.clone(),
            watchers: self.watchers.clone(),
        }
    }
}

impl<S> Target<S> {
    fn started(&self) -> Event {
        Event::Started {
            vertex: self.vertex.clone(),
            name: self.name.clone(),
            inputs: self.inputs.to_vec(),
        }
    }

    fn completed(&self, duration: Duration, error: Option<String>) -> Event {
        Event::Completed {
            vertex: self.vertex.clone(),
            name: self.name.clone(),
            duration,
            error,
        }
    }
}

/// The vertices an execution (or a cache-map or key computation) reports to.
pub(crate) struct Targets<S> {
    list: Mutex<TargetList<S>>,
}

struct TargetList<S> {
    targets: Vec<Target<S>>,
    /// Set once the op started: a target joining later hears `Started` at once.
    started: bool,
    /// How long the op ran and how it failed, once it has completed: a target joining later
    /// hears `Completed` at once too.
    completed: Option<(Duration, Option<String>)>,
}

impl<S> Targets<S> {
    pub(crate) fn new(target: Target<S>) -> Targets<S> {
        Targets {
            list: Mutex::new(TargetList {
                targets: vec![target],
                started: false,
                completed: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TargetList<S>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a vertex whose result this execution also is.
    pub(crate) fn join(&self, target: Target<S>) {
        let mut list = self.lock();
        if list
            .targets
            .iter()
            .any(|t| t.vertex == target.vertex && Arc::ptr_eq(&t.watchers, &target.watchers))
        {
            return;
        }
        if list.started {
            target.watchers.send(&target.started());
        }
        if let Some((duration, error)) = &list.completed {
            target.watchers.send(&target.completed(*duration, error.clone()));
        }
        list.targets.push(target);
    }

    /// Sends an event, made for each target, to every target.
    pub(crate) fn send(&self, make: impl Fn(&Target<S>) -> Event) {
        let targets: Vec<Target<S>> = self.lock().targets.clone();
        for target in &targets {
            target.watchers.send(&make(target));
        }
    }

    /// Marks the op started and tells every target.
    pub(crate) fn start(&self) {
        self.lock().started = true;
        self.send(Target::started);
    }

    /// Marks the op completed and tells every target.
    pub(crate) fn complete(&self, duration: Duration, error: Option<String>) {
        self.lock().completed = Some((duration, error.clone()));
        self.send(|target| target.completed(duration, error.clone()));
    }

    fn sessions(&self) -> Vec<Arc<S>> {
        let targets: Vec<Arc<Watchers<S>>> = self.lock().targets.iter().map(|t| t.watchers.clone()).collect();
        let mut sessions = Vec::new();
        for watchers in targets {
            watchers.sessions(&mut sessions);
        }
        sessions.sort_by_key(|(job, _)| *job);
        sessions.into_iter().map(|(_, s)| s).collect()
    }
}

/// What an op gets while it computes its cache map or runs: where its output goes, and the
/// sessions of the builds waiting for it.
pub struct Context<S> {
    vertex: Digest,
    targets: Arc<Targets<S>>,
}

impl<S> Context<S> {
    pub(crate) fn new(vertex: Digest, targets: Arc<Targets<S>>) -> Context<S> {
        Context { vertex, targets }
    }

    /// The vertex being worked on.
    pub fn vertex(&self) -> &Digest {
        &self.vertex
    }

    /// The sessions of the jobs waiting for this work right now, oldest job first (BuildKit's
    /// session group). Work shared by several builds may use any of them: an op takes the first
    /// that can serve what it needs. Never empty while a job waits.
    pub fn sessions(&self) -> Vec<Arc<S>> {
        self.targets.sessions()
    }

    /// Sends output of the op (1 = stdout, 2 = stderr) to everyone watching.
    pub fn log(&self, stream: u8, data: &[u8]) {
        self.targets.send(|target| Event::Log {
            vertex: target.vertex.clone(),
            stream,
            data: data.to_vec(),
        });
    }

    /// Sends a status line about the op (e.g. "pulling layer 2/3").
    pub fn status(&self, message: String) {
        self.targets.send(|target| Event::Status {
            vertex: target.vertex.clone(),
            message: message.clone(),
        });
    }
}
