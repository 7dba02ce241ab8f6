//! The Dockerfile frontend's integration tests, one binary: BuildKit's parser and shell
//! conformance data, the real-world corpus, LLB snapshots and the regressions fuzzing found.

mod corpus;
mod fuzz_regressions;
mod llb_snapshots;
mod parser_conformance;
mod shell_conformance;
