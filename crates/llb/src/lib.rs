//! LLB, the low-level build graph: what a build does, as a content-addressed DAG of ops.
//!
//! Main types:
//! - [`pb`]: the wire schema (prost messages): [`pb::Op`], [`pb::Definition`].
//! - [`Output`], [`Exec`], [`FileChain`]: a builder for graphs, used by frontends.
//! - [`Definition`]: a marshalled graph (ops as canonical bytes plus metadata and source map).
//! - [`Graph`]: a received definition, decoded and validated, ready for the solver.
//! - [`dump`]: a stable text rendering, one op per line; [`facts`]: an op as (field, value)
//!   pairs, for explaining what changed between two builds.
//!
//! An op's digest is the sha256 of its canonical protobuf bytes. Because an op's inputs are
//! named by their digests, a digest covers the whole sub-graph below the op (a Merkle hash).
//!
//! Invariants: pure (no IO, no clock, no randomness); the same graph always encodes to the same
//! bytes and digests (prost writes fields in tag order, maps are `BTreeMap`s). Golden digests
//! in the tests pin the encoding; changing them means bumping [`FORMAT_VERSION`].
//!
//! This crate does not execute anything and does not know about Dockerfiles.

#![forbid(unsafe_code)]

pub mod attr;
mod builder;
mod dump;
mod facts;
mod graph;
pub mod pb;

pub use builder::{
    Definition, Exec, FileChain, MountKind, MountOptions, OpOptions, Output, SourceRange, platform_to_pb,
};
pub use dump::dump;
pub use facts::facts;
pub use graph::{Graph, LoadError, Vertex};

/// Version of the LLB encoding. Persistent caches key on it, so bump it whenever an encoding
/// change alters digests.
pub const FORMAT_VERSION: u32 = 1;

#[cfg(test)]
mod tests;
