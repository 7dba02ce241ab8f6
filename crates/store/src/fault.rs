//! Fault injection for crash tests: kills the process at a named point.
//!
//! kiln promises that a state directory is consistent after `kill -9` at any moment. The crash
//! test (`crates/cli/tests/privileged/crash.rs`) proves it by killing kiln at the moments that
//! matter: a blob written but not yet renamed into place, a snapshot committed but not yet
//! recorded in the cache index, a layer half applied, and so on. Each such moment calls [`point`] with a name.
//!
//! When the environment variable `KILN_FAULT` is `<name>`, the first call of [`point`] with that
//! name aborts the process; with `<name>:<n>`, the n-th call does (counting from 1), so a test
//! can stop a layer apply after some entries or an export after some blobs. Just before
//! aborting, it writes `kiln: fault point <name> hit, aborting` to stderr, so a test can tell
//! that the point was reached rather than the process dying of something else.
//!
//! This is for tests only, and only test builds have it: the code is behind the `store` crate's
//! `fault-injection` feature, which the `cli` crate turns on in its `[dev-dependencies]`, so
//! `cargo test` and `cargo nextest run` build a `kiln` binary that honours `KILN_FAULT` while
//! `cargo build --release` builds one where [`point`] is an empty inline function and the
//! variable is never read. With the feature, [`std::process::abort`] ends the process at once:
//! no destructor runs, no guard unmounts or deletes anything, no buffer is flushed, exactly as
//! with `SIGKILL`. The variable is read once (the first time any point is reached); without it,
//! a point costs one atomic load.
//!
//! Points are one-line calls placed across the crates that write state (store, exporter,
//! engine); the names are listed in ARCHITECTURE.md under "Crash safety".

#[cfg(feature = "fault-injection")]
use std::sync::OnceLock;
#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point to abort at: `<name>` or `<name>:<n>` (read only
/// when the `fault-injection` feature is on).
pub const ENV: &str = "KILN_FAULT";

/// The point to abort at and how many times it has been reached.
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
struct Target {
    name: String,
    /// Abort on this hit (1 = the first).
    nth: u64,
    hits: AtomicU64,
}

#[cfg(feature = "fault-injection")]
static TARGET: OnceLock<Option<Target>> = OnceLock::new();

/// Aborts the process if `KILN_FAULT` names this point (and this is the hit it asks for).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    let target = TARGET.get_or_init(|| std::env::var(ENV).ok().as_deref().and_then(parse));
    if let Some(target) = target
        && target.name == name
        && target.hits.fetch_add(1, Ordering::SeqCst) + 1 == target.nth
    {
        eprintln!("kiln: fault point {name} hit, aborting");
        std::process::abort();
    }
}

/// Does nothing: this build has no fault injection (the `fault-injection` feature is off).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}

/// Parses `<name>` or `<name>:<n>`; anything unusable (empty name, `n` not a positive number)
/// disables fault injection rather than aborting somewhere unexpected.
#[cfg(feature = "fault-injection")]
fn parse(spec: &str) -> Option<Target> {
    let (name, nth) = match spec.rsplit_once(':') {
        Some((name, n)) => (name, n.parse::<u64>().ok().filter(|n| *n > 0)?),
        None => (spec, 1),
    };
    if name.is_empty() {
        return None;
    }
    Some(Target {
        name: name.to_string(),
        nth,
        hits: AtomicU64::new(0),
    })
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;

    fn parsed(spec: &str) -> Option<(String, u64)> {
        parse(spec).map(|t| (t.name, t.nth))
    }

    #[test]
    fn specs_name_a_point_and_a_hit() {
        assert_eq!(parsed("snapshot.prepared"), Some(("snapshot.prepared".into(), 1)));
        assert_eq!(
            parsed("layer.apply.entry:40"),
            Some(("layer.apply.entry".into(), 40))
        );
        assert_eq!(parsed(""), None);
        assert_eq!(parsed(":3"), None);
        assert_eq!(parsed("x:0"), None);
        assert_eq!(parsed("x:many"), None);
    }

    #[test]
    fn points_not_named_do_nothing() {
        // The variable is not set in unit tests, so every point is a no-op.
        point("snapshot.prepared");
        point("anything");
    }
}
