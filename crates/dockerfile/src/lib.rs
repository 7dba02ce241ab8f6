//! The Dockerfile frontend, as a pure compiler: Dockerfile text in, LLB and an image config out.
//!
//! Layers, each usable on its own:
//! - [`parser`]: text → [`parser::Ast`] (BuildKit's parse-tree shape, diagnostics instead of
//!   failures, line ranges on every node; `kiln debug parse` prints its dump).
//! - [`shell`]: shell-word expansion (`$VAR`, `${VAR:-default}`, …) and word splitting.
//! - [`instructions`]: the tree checked against each instruction's grammar and flags, grouped
//!   into stages.
//! - [`convert`]: stages → LLB ([`compile`]), given build options and an [`ImageResolver`].
//!
//! Invariants: no IO of any kind (base-image metadata arrives through [`ImageResolver`]); every
//! error that concerns a place in the Dockerfile carries its line range ([`Error::location`]).
//!
//! Tests: unit tests beside the code; BuildKit's conformance tables in `tests/`.

#![forbid(unsafe_code)]

pub mod chmod;
pub mod convert;
pub mod dockerignore;
mod error;
pub mod instructions;
pub mod parser;
pub mod shell;

pub use convert::{BuildOptions, Compiled, ImageResolver, OfflineResolver, ResolvedImage, compile};
pub use error::{Error, ErrorKind, Location};
