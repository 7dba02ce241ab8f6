//! Cache-miss explanations: for each step that missed the cache, which input changed since
//! the last build of the same context, Dockerfile and target (its *scope*).
//!
//! Every build records, per step, what its cache key was made of: the op's facts (command,
//! environment, mounts, file actions, base image digest, …; see [`llb::facts`]) and, per
//! input, the input's key or the digest of the files the step reads from it, with a listing
//! of those files for the build context ([`fsops::fileop::Listing`]). The records are kept in
//! the store, one set per scope. When a step misses, its record is compared with the previous
//! build's record of the same step (matched by vertex digest, else by name, else by position
//! `[stage n/m]`), and the differences become [`Reason`]s: a file edit, a build argument, a
//! base image digest, an earlier step, or the step's own definition.
//!
//! Comparison happens as keys are computed, before steps run, so reasons are shown live. The
//! new records replace the old ones at the end of the build (when anything changed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use fsops::fileop::Listing;
use oci::Digest;
use serde::{Deserialize, Serialize};
use solver::{KeyDep, KeyPart};

/// How many file names a [`Reason::Files`] names; the rest are counted.
const NAMED_FILES: usize = 10;
/// Longest value shown in a [`Reason::Definition`], in characters.
const SHOWN_VALUE: usize = 120;
/// Format of stored records; a different one is ignored (every step is then "new").
const RECORDS_VERSION: u32 = 1;

/// Why a step's cache key found no result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// The cache was disabled for the step (`--no-cache`).
    NoCache,
    /// No earlier build of this scope had this step.
    NewStep,
    /// The key is the same as last build, but its result is gone (pruned or collected).
    Pruned,
    /// A build argument the step sees changed.
    BuildArg {
        /// Its name.
        name: String,
        /// Its value last build (`None`: unset).
        old: Option<String>,
        /// Its value now (`None`: unset).
        new: Option<String>,
    },
    /// The base image resolved to another manifest.
    BaseImage {
        /// The image.
        image: String,
        /// Its digest last build.
        old: String,
        /// Its digest now.
        new: String,
    },
    /// Files the step reads from the build context (or another local directory) changed.
    Files {
        /// Which input (its step name).
        input: String,
        /// Paths whose content or metadata changed.
        modified: Vec<String>,
        /// Paths that appeared.
        added: Vec<String>,
        /// Paths that disappeared.
        removed: Vec<String>,
        /// How many more changed paths there are than named.
        more: usize,
    },
    /// The content the step reads from an input changed, and which files is not known (a
    /// stage's output, or no listing was recorded).
    Content {
        /// The input's step name.
        input: String,
    },
    /// An earlier step the step builds on changed.
    Input {
        /// The earlier step's name.
        input: String,
        /// Why it changed, if known: what started the chain of changes that reached it.
        because: Option<Box<Reason>>,
    },
    /// Part of the step's own definition changed.
    Definition {
        /// What (`command`, `env PATH`, `workdir`, `action 0`, …).
        field: String,
        /// Its value last build (`None`: absent).
        old: Option<String>,
        /// Its value now (`None`: absent).
        new: Option<String>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: &Option<String>| match v {
            Some(v) => format!("{:?}", shorten(v)),
            None => "(none)".to_string(),
        };
        match self {
            Reason::NoCache => write!(f, "cache disabled (--no-cache)"),
            Reason::NewStep => write!(f, "no earlier build of this step"),
            Reason::Pruned => write!(
                f,
                "same cache key as the last build, but its result was removed from the cache"
            ),
            Reason::BuildArg { name, old, new } => match (old, new) {
                (None, Some(new)) => write!(f, "build arg {name} set to {:?}", shorten(new)),
                (Some(old), None) => write!(f, "build arg {name} unset (was {:?})", shorten(old)),
                _ => write!(f, "build arg {name} changed: {} -> {}", value(old), value(new)),
            },
            Reason::BaseImage { image, old, new } => write!(
                f,
                "base image {image} changed: {} -> {}",
                short_digest(old),
                short_digest(new)
            ),
            Reason::Files {
                input,
                modified,
                added,
                removed,
                more,
            } => {
                let mut parts = Vec::new();
                for (label, paths) in [("modified", modified), ("added", added), ("removed", removed)] {
                    if !paths.is_empty() {
                        parts.push(format!("{label} {}", paths.join(", ")));
                    }
                }
                if *more > 0 {
                    parts.push(format!("and {more} more"));
                }
                write!(f, "files changed in {input}: {}", parts.join("; "))
            }
            Reason::Content { input } => write!(f, "files read from {input} changed"),
            Reason::Input { input, because } => {
                write!(f, "previous step changed: {input}")?;
                if let Some(because) = because {
                    write!(f, " ({because})")?;
                }
                Ok(())
            }
            Reason::Definition { field, old, new } => match (old, new) {
                (None, Some(new)) => write!(f, "{field} added: {:?}", shorten(new)),
                (Some(old), None) => write!(f, "{field} removed (was {:?})", shorten(old)),
                _ => write!(f, "{field} changed: {} -> {}", value(old), value(new)),
            },
        }
    }
}

fn shorten(value: &str) -> String {
    if value.chars().count() <= SHOWN_VALUE {
        return value.to_string();
    }
    let mut s: String = value.chars().take(SHOWN_VALUE).collect();
    s.push('…');
    s
}

fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

/// What one step's key was made of, in one build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StepRecord {
    name: String,
    vertex: String,
    key: Option<String>,
    facts: Vec<(String, String)>,
    deps: Vec<DepRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DepRecord {
    input: String,
    input_name: String,
    /// `key:<digest>`, `content:<digest>`, or `None` (no key).
    part: Option<String>,
    /// For content read from a local directory: what was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listing: Option<Vec<(String, String)>>,
}

#[derive(Serialize, Deserialize)]
struct Records {
    version: u32,
    /// The names of the build args given.
    build_args: BTreeSet<String>,
    steps: Vec<StepRecord>,
}

/// Listings of local content, by the content digest they produced, filled in by the ops that
/// hash the build context and taken by the build's [`Explainer`].
#[derive(Default)]
pub(crate) struct Listings(Mutex<HashMap<Digest, Arc<Listing>>>);

impl Listings {
    pub(crate) fn put(&self, digest: Digest, listing: Listing) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a daemon whose builds never take their listings must not grow forever.
        if map.len() > 256 {
            map.clear();
        }
        map.insert(digest, Arc::new(listing));
    }

    fn get(&self, digest: &Digest) -> Option<Arc<Listing>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
    }

    fn remove(&self, digests: &BTreeSet<Digest>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for d in digests {
            map.remove(d);
        }
    }
}

/// One build's explainer: the previous build's records, and this build's as they come.
pub(crate) struct Explainer {
    scope: String,
    build_args: BTreeMap<String, String>,
    previous: Vec<StepRecord>,
    previous_args: BTreeSet<String>,
    listings: Arc<Listings>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// This build's records, by vertex digest, in the order keys were computed.
    current: Vec<StepRecord>,
    /// Previous records already matched to a step of this build.
    matched: BTreeSet<usize>,
    /// Reasons computed for each vertex whose key changed (shown or not).
    reasons: HashMap<String, Vec<Reason>>,
    /// Content digests whose listings were used.
    used_listings: BTreeSet<Digest>,
}

impl Explainer {
    /// An explainer for a build of `scope`, comparing with `previous` (the stored records, if
    /// any; unreadable ones count as none).
    pub(crate) fn new(
        scope: String,
        build_args: BTreeMap<String, String>,
        previous: Option<&str>,
        listings: Arc<Listings>,
    ) -> Explainer {
        let (previous, previous_args) = previous
            .and_then(|text| serde_json::from_str::<Records>(text).ok())
            .filter(|r| r.version == RECORDS_VERSION)
            .map(|r| (r.steps, r.build_args))
            .unwrap_or_default();
        Explainer {
            scope,
            build_args,
            previous,
            previous_args,
            listings,
            state: Mutex::new(State::default()),
        }
    }

    /// The store key of this build's records.
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    /// Records a computed key; returns the reasons it missed when it has a key, found no
    /// result, and is worth explaining.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keyed(
        &self,
        vertex: &Digest,
        name: &str,
        key: Option<&Digest>,
        cached: bool,
        ignore_cache: bool,
        facts: &[(String, String)],
        deps: &[KeyDep],
    ) -> Option<Vec<Reason>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let deps: Vec<DepRecord> = deps
            .iter()
            .map(|dep| {
                let (part, listing) = match &dep.part {
                    None => (None, None),
                    Some(KeyPart::Key(k)) => (Some(format!("key:{k}")), None),
                    Some(KeyPart::Content(d)) => {
                        let listing = self.listings.get(d).map(|l| {
                            state.used_listings.insert(d.clone());
                            l.iter().map(|(p, f)| (p.clone(), format!("{f:016x}"))).collect()
                        });
                        (Some(format!("content:{d}")), listing)
                    }
                };
                DepRecord {
                    input: dep.input.to_string(),
                    input_name: dep.input_name.clone(),
                    part,
                    listing,
                }
            })
            .collect();
        let record = StepRecord {
            name: name.to_string(),
            vertex: vertex.to_string(),
            key: key.map(Digest::to_string),
            facts: facts.to_vec(),
            deps,
        };
        let previous = self.match_previous(&mut state, &record);
        let reasons = match (&record.key, previous) {
            // Uncacheable steps (reading a local directory) always run: nothing to explain.
            (None, _) => None,
            _ if ignore_cache => Some(vec![Reason::NoCache]),
            (Some(_), None) => Some(vec![Reason::NewStep]),
            (Some(key), Some(p)) if p.key.as_ref() == Some(key) => (!cached).then(|| vec![Reason::Pruned]),
            (Some(_), Some(p)) => Some(self.compare(&state, p, &record)),
        };
        if let Some(reasons) = &reasons {
            state.reasons.insert(record.vertex.clone(), reasons.clone());
        }
        state.current.push(record);
        reasons.filter(|_| !cached)
    }

    /// The previous record of the step `record` describes, if any.
    fn match_previous<'a>(&'a self, state: &mut State, record: &StepRecord) -> Option<&'a StepRecord> {
        let free = |i: &usize| !state.matched.contains(i);
        let found = (0..self.previous.len())
            .filter(free)
            .find(|&i| self.previous[i].vertex == record.vertex)
            .or_else(|| {
                (0..self.previous.len())
                    .filter(free)
                    .find(|&i| self.previous[i].name == record.name)
            })
            .or_else(|| {
                let position = position(&record.name)?;
                (0..self.previous.len())
                    .filter(free)
                    .find(|&i| position_matches(&self.previous[i].name, position, &record.name))
            })?;
        state.matched.insert(found);
        Some(&self.previous[found])
    }

    fn compare(&self, state: &State, old: &StepRecord, new: &StepRecord) -> Vec<Reason> {
        let mut reasons = Vec::new();
        // The step's own definition.
        let old_facts: BTreeMap<&str, &str> =
            old.facts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let new_facts: BTreeMap<&str, &str> =
            new.facts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut fields: Vec<&str> = new.facts.iter().map(|(k, _)| k.as_str()).collect();
        fields.extend(
            old.facts
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !new_facts.contains_key(k)),
        );
        let mut seen = BTreeSet::new();
        for field in fields {
            if !seen.insert(field) {
                continue;
            }
            let (before, after) = (old_facts.get(field).copied(), new_facts.get(field).copied());
            if before == after {
                continue;
            }
            let (before, after) = (before.map(str::to_string), after.map(str::to_string));
            if let Some(var) = field.strip_prefix("env ")
                && self.is_build_arg(var)
            {
                reasons.push(Reason::BuildArg {
                    name: var.to_string(),
                    old: before,
                    new: after,
                });
            } else if field == "image digest" {
                reasons.push(Reason::BaseImage {
                    image: new_facts
                        .get("image")
                        .or(old_facts.get("image"))
                        .unwrap_or(&"")
                        .to_string(),
                    old: before.unwrap_or_default(),
                    new: after.unwrap_or_default(),
                });
            } else if field == "image" {
                // The digest (if it changed too) says more; a new name is a definition change.
                if old_facts.get("image digest") == new_facts.get("image digest") {
                    reasons.push(Reason::Definition {
                        field: field.to_string(),
                        old: before,
                        new: after,
                    });
                }
            } else {
                reasons.push(Reason::Definition {
                    field: field.to_string(),
                    old: before,
                    new: after,
                });
            }
        }
        // Its inputs.
        if old.deps.len() == new.deps.len() {
            for (before, after) in old.deps.iter().zip(new.deps.iter()) {
                if before.part == after.part {
                    continue;
                }
                let content = after.part.as_deref().is_some_and(|p| p.starts_with("content:"));
                if content {
                    reasons.push(match (&before.listing, &after.listing) {
                        (Some(b), Some(a)) => files_reason(&after.input_name, b, a),
                        _ => Reason::Content {
                            input: after.input_name.clone(),
                        },
                    });
                } else {
                    let because = state
                        .reasons
                        .get(&after.input)
                        .and_then(|r| root_cause(r))
                        .map(Box::new);
                    reasons.push(Reason::Input {
                        input: after.input_name.clone(),
                        because,
                    });
                }
            }
        } else {
            reasons.push(Reason::Definition {
                field: "inputs".into(),
                old: Some(old.deps.len().to_string()),
                new: Some(new.deps.len().to_string()),
            });
        }
        if reasons.is_empty() {
            // Something the facts do not show (e.g. the platform of an input) changed.
            reasons.push(Reason::Definition {
                field: "definition".into(),
                old: None,
                new: None,
            });
        }
        reasons
    }

    /// Whether `name` was given as a build arg, in this build or the previous one (an arg
    /// given last time and not now changes back to its default).
    fn is_build_arg(&self, name: &str) -> bool {
        self.build_args.contains_key(name) || self.previous_args.contains(name)
    }

    /// This build's records, serialized, if they differ from the previous build's (`None`:
    /// nothing to save). A build that did not complete keeps the previous records of the
    /// steps it did not reach. Listings used by this build are released.
    pub(crate) fn finish(&self, completed: bool) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.listings.remove(&state.used_listings);
        let mut steps = state.current.clone();
        if !completed {
            steps.extend(
                (0..self.previous.len())
                    .filter(|i| !state.matched.contains(i))
                    .map(|i| self.previous[i].clone()),
            );
        }
        // Keys are computed concurrently: store in a stable order.
        steps.sort_by(|a, b| (&a.name, &a.vertex).cmp(&(&b.name, &b.vertex)));
        let build_args: BTreeSet<String> = self.build_args.keys().cloned().collect();
        if steps == self.previous && build_args == self.previous_args {
            return None;
        }
        serde_json::to_string(&Records {
            version: RECORDS_VERSION,
            build_args,
            steps,
        })
        .ok()
    }
}

/// What started a chain of changes: the first reason of a step that is not an earlier step
/// changing, else what that earlier step's change came from.
fn root_cause(reasons: &[Reason]) -> Option<Reason> {
    reasons
        .iter()
        .find(|r| !matches!(r, Reason::Input { .. }))
        .cloned()
        .or_else(|| {
            reasons.iter().find_map(|r| match r {
                Reason::Input { because, .. } => because.as_deref().cloned(),
                _ => None,
            })
        })
}

/// The `[stage n/m]` prefix of a step name.
fn position(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('[')?;
    let end = rest.find(']')?;
    Some(&name[..end + 2])
}

/// Whether `candidate` is at `position` and is the same instruction as `name` (its first word
/// after the position).
fn position_matches(candidate: &str, position: &str, name: &str) -> bool {
    let word = |n: &str| n[position.len()..].split_whitespace().next().map(str::to_string);
    candidate.starts_with(position) && word(candidate) == word(name)
}

fn files_reason(input: &str, before: &[(String, String)], after: &[(String, String)]) -> Reason {
    let old: BTreeMap<&str, &str> = before.iter().map(|(p, f)| (p.as_str(), f.as_str())).collect();
    let new: BTreeMap<&str, &str> = after.iter().map(|(p, f)| (p.as_str(), f.as_str())).collect();
    let shown = |p: &str| p.trim_start_matches('/').to_string();
    let (mut modified, mut added, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for (path, print) in &new {
        match old.get(path) {
            None => added.push(shown(path)),
            // A directory's record changes with its mode or owner only; list files first.
            Some(o) if o != print => modified.push(shown(path)),
            Some(_) => {}
        }
    }
    for path in old.keys() {
        if !new.contains_key(path) {
            removed.push(shown(path));
        }
    }
    let total = modified.len() + added.len() + removed.len();
    let mut budget = NAMED_FILES;
    for list in [&mut modified, &mut added, &mut removed] {
        list.truncate(budget);
        budget -= list.len();
    }
    let named = modified.len() + added.len() + removed.len();
    Reason::Files {
        input: input.to_string(),
        modified,
        added,
        removed,
        more: total - named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(input: &str, part: KeyPart) -> KeyDep {
        KeyDep {
            input: Digest::of(input.as_bytes()),
            input_name: input.to_string(),
            output: 0,
            selector: None,
            part: Some(part),
        }
    }

    fn facts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn key(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn from() -> Digest {
        Digest::of(b"[1/3] FROM busybox")
    }

    /// The first build: FROM, a RUN using build arg V=1, a COPY of the context; its records.
    fn first_build(listings: &Arc<Listings>) -> String {
        let args = BTreeMap::from([("V".to_string(), "1".to_string())]);
        let first = Explainer::new("s".into(), args, None, listings.clone());
        let image = facts(&[
            ("image", "busybox:latest"),
            ("image digest", "sha256:aaaaaaaaaaaaaaaa"),
        ]);
        let ctx = Digest::of(b"ctx-v1");
        listings.put(ctx.clone(), vec![("/a".into(), 1), ("/b".into(), 2)]);
        let run_facts = facts(&[("command", "[\"echo\"]"), ("env V", "1")]);
        assert_eq!(
            first.keyed(
                &from(),
                "[1/3] FROM busybox",
                Some(&key("k1")),
                false,
                false,
                &image,
                &[]
            ),
            Some(vec![Reason::NewStep])
        );
        first.keyed(
            &key("run"),
            "[2/3] RUN echo 1",
            Some(&key("k2")),
            false,
            false,
            &run_facts,
            &[dep("[1/3] FROM busybox", KeyPart::Key(key("k1")))],
        );
        first.keyed(
            &key("copy"),
            "[3/3] COPY . /",
            Some(&key("k3")),
            false,
            false,
            &[],
            &[dep("[internal] load build context", KeyPart::Content(ctx))],
        );
        first.finish(true).expect("a first build has records to save")
    }

    #[test]
    fn a_changed_build_arg_a_file_and_a_base_image_are_named() {
        let listings = Arc::new(Listings::default());
        let saved = first_build(&listings);
        // Second build: new base image, V=2, file /b edited and /c added.
        let args = BTreeMap::from([("V".to_string(), "2".to_string())]);
        let second = Explainer::new("s".into(), args, Some(&saved), listings.clone());
        let image2 = facts(&[
            ("image", "busybox:latest"),
            ("image digest", "sha256:bbbbbbbbbbbbbbbb"),
        ]);
        let from_reasons = second.keyed(
            &from(),
            "[1/3] FROM busybox",
            Some(&key("k1b")),
            false,
            false,
            &image2,
            &[],
        );
        let base = Reason::BaseImage {
            image: "busybox:latest".into(),
            old: "sha256:aaaaaaaaaaaaaaaa".into(),
            new: "sha256:bbbbbbbbbbbbbbbb".into(),
        };
        assert_eq!(from_reasons, Some(vec![base.clone()]));
        assert_eq!(
            base.to_string(),
            "base image busybox:latest changed: sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb"
        );
        let run_facts2 = facts(&[("command", "[\"echo\"]"), ("env V", "2")]);
        let run = second
            .keyed(
                &key("run2"),
                "[2/3] RUN echo 2",
                Some(&key("k2b")),
                false,
                false,
                &run_facts2,
                &[dep("[1/3] FROM busybox", KeyPart::Key(key("k1b")))],
            )
            .unwrap();
        assert_eq!(
            run.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "build arg V changed: \"1\" -> \"2\"".to_string(),
                format!("previous step changed: [1/3] FROM busybox ({base})"),
            ]
        );
        let ctx2 = Digest::of(b"ctx-v2");
        listings.put(
            ctx2.clone(),
            vec![("/a".into(), 1), ("/b".into(), 3), ("/c".into(), 4)],
        );
        let copy = second
            .keyed(
                &key("copy"),
                "[3/3] COPY . /",
                Some(&key("k3b")),
                false,
                false,
                &[],
                &[dep("[internal] load build context", KeyPart::Content(ctx2))],
            )
            .unwrap();
        assert_eq!(
            copy.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["files changed in [internal] load build context: modified b; added c".to_string()]
        );
        third_build(second.finish(true).as_deref(), listings, &image2, &run_facts2);
    }

    /// A cached step is not explained; an unchanged key whose result is gone is "pruned".
    fn third_build(
        previous: Option<&str>,
        listings: Arc<Listings>,
        image: &[(String, String)],
        run_facts: &[(String, String)],
    ) {
        let third = Explainer::new("s".into(), BTreeMap::new(), previous, listings);
        assert_eq!(
            third.keyed(
                &from(),
                "[1/3] FROM busybox",
                Some(&key("k1b")),
                true,
                false,
                image,
                &[]
            ),
            None
        );
        assert_eq!(
            third.keyed(
                &key("run2"),
                "[2/3] RUN echo 2",
                Some(&key("k2b")),
                false,
                false,
                run_facts,
                &[dep("[1/3] FROM busybox", KeyPart::Key(key("k1b")))],
            ),
            Some(vec![Reason::Pruned])
        );
    }

    #[test]
    fn reasons_round_trip_through_json() {
        let reason = Reason::Input {
            input: "[1/2] FROM x".into(),
            because: Some(Box::new(Reason::BuildArg {
                name: "A".into(),
                old: None,
                new: Some("1".into()),
            })),
        };
        let text = serde_json::to_string(&reason).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"input","input":"[1/2] FROM x","because":{"kind":"build-arg","name":"A","old":null,"new":"1"}}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&text).unwrap(), reason);
    }
}
