//! Tests of the `kiln` binary that need no privileges: BuildKit's parser conformance data and
//! the real-world Dockerfile corpus, through `kiln debug parse` and `kiln debug llb --offline`.
//! Everything that runs `kiln build`, which refuses to start without root, is in
//! `tests/privileged`.

mod conformance;
