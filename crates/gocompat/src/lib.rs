//! Go's text formats, as BuildKit, buildx and Docker read and write them, so that kiln accepts
//! exactly what they accept and prints what they print.
//!
//! kiln reimplements tools written in Go; wherever a user-facing value goes through a Go library
//! there (a path cleaned by `path.Clean`, a size read by go-units, a duration read by
//! `time.ParseDuration`, a `--chmod` mode applied by `dchapes/mode`), kiln must agree with it
//! byte for byte. Each grammar lives here once:
//! - [`path`]: Go's `path.Clean`.
//! - [`units`]: go-units' sizes (`RAMInBytes`: `--keep-storage`, `--shm-size`, tmpfs `size=`).
//! - [`duration`]: Go's `time.ParseDuration` and `Duration.String` (HEALTHCHECK flags and
//!   their history text, `prune --keep-duration`, the `until=` filter).
//! - [`chmod`]: symbolic and octal modes (`COPY --chmod`), parsed and applied.
//!
//! Invariants: pure (no IO, clock or environment); depends on no other kiln crate, so every
//! layer can use it. A grammar is Go's, not a friendlier one: where Go refuses an input, so does
//! this crate (days are no duration unit, `1.5` is no size without digits on both sides of the
//! dot). Tests take their cases from Go's documentation and test tables.

#![forbid(unsafe_code)]

pub mod chmod;
pub mod duration;
pub mod path;
pub mod units;
