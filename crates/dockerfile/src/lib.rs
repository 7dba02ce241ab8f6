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
//! Cost: compile time is linear in the size of the Dockerfile and of what it expands to; no
//! instruction costs more because many came before it (`benches/instructions.rs` measures
//! 1 000 to 20 000 lines of each kind). What it expands to is bounded, so that no input can ask
//! for unbounded memory or time; the limits are far above real Dockerfiles and going over fails
//! on the offending line:
//! - one word may grow by at most [`shell::MAX_EXPANSION`] (4 MiB) through `$` expansions
//!   (counted at each level of `${…}` nesting), produce at most [`shell::MAX_REPLACED`] (1 MiB)
//!   of pattern replacements, and take at most [`shell::MAX_MATCH_STEPS`] (16 Mi) steps of
//!   pattern matching;
//! - the whole Dockerfile may expand to at most [`convert::MAX_EXPANDED`] (256 MiB): every
//!   expanded word, step name and history entry, each RUN's arguments and environment, COPY
//!   paths, ONBUILD triggers in every stage that inherits them, and stage states copied for
//!   other stages, each string counting [`convert::STRING_COST`] bytes more; and take at most
//!   [`convert::MAX_TOTAL_MATCH_STEPS`] (256 Mi) steps of pattern matching.
//!
//! Tests: unit tests beside the code; BuildKit's conformance tables in `tests/`.

#![forbid(unsafe_code)]

pub mod convert;
pub mod dockerignore;
mod error;
pub mod instructions;
pub mod parser;
pub mod shell;

pub use convert::{
    BuildOptions, Compiled, ImageResolver, OfflineResolver, ResolveError, ResolvedImage, compile,
};
pub use error::{Error, ErrorKind, Location};
