//! Loading a received [`pb::Definition`]: decoding, digest checks and structural validation.
//!
//! A definition may come from an untrusted client, so nothing here trusts it: every op is
//! decoded from its bytes, its digest is recomputed over exactly those bytes, every input must
//! name an op of the same definition, and indexes must be in range.

use std::collections::BTreeMap;

use oci::Digest;
use prost::Message;

use crate::pb;

/// Why a definition is invalid.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An op's bytes are not a valid protobuf `Op`.
    #[error("invalid llb definition: op {index} cannot be decoded")]
    Decode {
        /// Position in the definition.
        index: usize,
        /// Decoder error.
        #[source]
        source: prost::DecodeError,
    },
    /// The definition has no terminator op.
    #[error("invalid llb definition: it is empty")]
    Empty,
    /// The last op is not a terminator (it has a body or more than one input).
    #[error("invalid llb definition: the last op must be a terminator with at most one input")]
    BadTerminator,
    /// An input names a digest that is not in the definition.
    #[error("invalid llb definition: op {op} refers to missing input {input}")]
    MissingInput {
        /// The op with the input.
        op: Digest,
        /// The missing digest.
        input: String,
    },
    /// An op other than the last has no body.
    #[error("invalid llb definition: op {0} has no body")]
    MissingBody(Digest),
    /// Any other structural problem.
    #[error("invalid llb definition: op {op}: {reason}")]
    Invalid {
        /// The op.
        op: Digest,
        /// What is wrong.
        reason: String,
    },
}

/// A validated op of a loaded graph.
#[derive(Clone, Debug)]
pub struct Vertex {
    /// The op's digest (sha256 of its bytes).
    pub digest: Digest,
    /// The decoded op.
    pub op: pb::Op,
    /// Its inputs as (vertex digest, output index).
    pub inputs: Vec<(Digest, i64)>,
    /// Metadata from the definition.
    pub metadata: pb::OpMetadata,
}

impl Vertex {
    /// The progress name of the op, if the definition gives one.
    pub fn name(&self) -> Option<&str> {
        self.metadata
            .description
            .get(crate::attr::CUSTOM_NAME)
            .map(String::as_str)
    }

    /// The number of outputs the op has.
    pub fn output_count(&self) -> i64 {
        match &self.op.kind {
            Some(pb::op::Kind::Exec(e)) => e.mounts.iter().filter(|m| m.output >= 0).count() as i64,
            Some(_) => 1,
            None => 0,
        }
    }
}

/// A validated graph.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Vertices in definition order (inputs before users).
    pub vertices: Vec<Vertex>,
    /// Index of each vertex by digest.
    pub by_digest: BTreeMap<Digest, usize>,
    /// The result: an output of a vertex, or `None` for an empty result.
    pub root: Option<(Digest, i64)>,
    /// The source map.
    pub source: Option<pb::Source>,
}

impl Graph {
    /// Decodes and validates `def`.
    pub fn load(def: &pb::Definition) -> Result<Graph, LoadError> {
        let (last, ops) = def.def.split_last().ok_or(LoadError::Empty)?;
        let terminator = pb::Op::decode(last.as_slice()).map_err(|source| LoadError::Decode {
            index: def.def.len() - 1,
            source,
        })?;
        if terminator.kind.is_some() || terminator.inputs.len() > 1 {
            return Err(LoadError::BadTerminator);
        }
        let mut vertices = Vec::with_capacity(ops.len());
        let mut by_digest = BTreeMap::new();
        for (index, bytes) in ops.iter().enumerate() {
            let op =
                pb::Op::decode(bytes.as_slice()).map_err(|source| LoadError::Decode { index, source })?;
            let digest = Digest::of(bytes);
            if op.kind.is_none() {
                return Err(LoadError::MissingBody(digest));
            }
            if by_digest.contains_key(&digest) {
                continue;
            }
            let metadata = def.metadata.get(&digest.to_string()).cloned().unwrap_or_default();
            by_digest.insert(digest.clone(), vertices.len());
            vertices.push(Vertex {
                digest,
                op,
                inputs: Vec::new(),
                metadata,
            });
        }
        // Resolve inputs once all ops are known, so the order of `def` does not matter.
        for i in 0..vertices.len() {
            let mut inputs = Vec::with_capacity(vertices[i].op.inputs.len());
            for input in &vertices[i].op.inputs {
                let digest = resolve_input(&by_digest, &vertices[i].digest, &input.digest)?;
                let producer = &vertices[by_digest[&digest]];
                if input.index < 0 || input.index >= producer.output_count() {
                    return Err(LoadError::Invalid {
                        op: vertices[i].digest.clone(),
                        reason: format!("input {} has no output {}", digest, input.index),
                    });
                }
                inputs.push((digest, input.index));
            }
            validate_body(&vertices[i], inputs.len())?;
            vertices[i].inputs = inputs;
        }
        let root = match terminator.inputs.first() {
            None => None,
            Some(input) => {
                let digest = by_digest
                    .keys()
                    .find(|d| d.to_string() == input.digest)
                    .cloned()
                    .ok_or_else(|| LoadError::Invalid {
                        op: Digest::of(last),
                        reason: format!("result refers to missing op {}", input.digest),
                    })?;
                let count = vertices[by_digest[&digest]].output_count();
                if input.index < 0 || input.index >= count {
                    return Err(LoadError::Invalid {
                        op: digest,
                        reason: format!("result refers to missing output {}", input.index),
                    });
                }
                Some((digest, input.index))
            }
        };
        Ok(Graph {
            vertices,
            by_digest,
            root,
            source: def.source.clone(),
        })
    }

    /// The vertex with `digest`.
    pub fn vertex(&self, digest: &Digest) -> Option<&Vertex> {
        self.by_digest.get(digest).map(|&i| &self.vertices[i])
    }

    /// Source ranges (file name, file data, first line, last line) recorded for `digest`.
    pub fn locations(&self, digest: &Digest) -> Vec<(String, Vec<u8>, i32, i32)> {
        let Some(source) = &self.source else {
            return Vec::new();
        };
        let Some(locations) = source.locations.get(&digest.to_string()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for location in &locations.locations {
            let Some(info) = usize::try_from(location.source_index)
                .ok()
                .and_then(|i| source.infos.get(i))
            else {
                continue;
            };
            for range in &location.ranges {
                let start = range.start.map_or(0, |p| p.line);
                let end = range.end.map_or(start, |p| p.line);
                out.push((info.filename.clone(), info.data.clone(), start, end));
            }
        }
        out
    }
}

fn resolve_input(by_digest: &BTreeMap<Digest, usize>, op: &Digest, input: &str) -> Result<Digest, LoadError> {
    input
        .parse::<Digest>()
        .ok()
        .filter(|d| by_digest.contains_key(d))
        .ok_or_else(|| LoadError::MissingInput {
            op: op.clone(),
            input: input.to_string(),
        })
}

fn validate_body(vertex: &Vertex, n_inputs: usize) -> Result<(), LoadError> {
    let invalid = |reason: String| LoadError::Invalid {
        op: vertex.digest.clone(),
        reason,
    };
    let in_range = |i: i64| i == -1 || (i >= 0 && (i as usize) < n_inputs);
    match &vertex.op.kind {
        Some(pb::op::Kind::Source(s)) => {
            if n_inputs != 0 {
                return Err(invalid("a source op has no inputs".into()));
            }
            if s.identifier.is_empty() {
                return Err(invalid("empty source identifier".into()));
            }
        }
        Some(pb::op::Kind::Exec(e)) => {
            let meta = e
                .meta
                .as_ref()
                .ok_or_else(|| invalid("exec op without meta".into()))?;
            if meta.args.is_empty() {
                return Err(invalid("exec op without arguments".into()));
            }
            if !e.mounts.iter().any(|m| m.dest == "/") {
                return Err(invalid("exec op without a root mount".into()));
            }
            let mut outputs: Vec<i64> = Vec::new();
            for m in &e.mounts {
                if !in_range(m.input) {
                    return Err(invalid(format!(
                        "mount {} uses missing input {}",
                        m.dest, m.input
                    )));
                }
                if !m.dest.starts_with('/') {
                    return Err(invalid(format!("mount destination {:?} is not absolute", m.dest)));
                }
                if m.output >= 0 {
                    outputs.push(m.output);
                }
            }
            outputs.sort_unstable();
            if outputs.iter().enumerate().any(|(i, &o)| o != i as i64) {
                return Err(invalid("exec mount outputs must be numbered 0..n".into()));
            }
        }
        Some(pb::op::Kind::File(f)) => {
            if f.actions.is_empty() {
                return Err(invalid("file op without actions".into()));
            }
            let mut outputs = 0;
            for (i, a) in f.actions.iter().enumerate() {
                // Inputs at or above n_inputs name the result of an earlier action.
                let ok = |x: i64| x == -1 || (x >= 0 && (x as usize) < n_inputs + i);
                if !ok(a.input) || !ok(a.secondary_input) {
                    return Err(invalid(format!("file action {i} uses a missing input")));
                }
                if a.action.is_none() {
                    return Err(invalid(format!("file action {i} has no body")));
                }
                if a.output >= 0 {
                    outputs += 1;
                    if a.output != 0 {
                        return Err(invalid("a file op has a single output 0".into()));
                    }
                }
            }
            if outputs != 1 {
                return Err(invalid("a file op must produce exactly one output".into()));
            }
        }
        Some(pb::op::Kind::Merge(m)) => {
            if m.inputs.is_empty() || !m.inputs.iter().all(|&i| i >= 0 && in_range(i)) {
                return Err(invalid("merge op inputs out of range".into()));
            }
        }
        None => return Err(LoadError::MissingBody(vertex.digest.clone())),
    }
    Ok(())
}
