//! The store's privileged integration tests: disk accounting and pruning over real snapshots,
//! whose layers are written through overlayfs mounts. They run as root
//! (`testkit::require_privileged`).

#[path = "../common/mod.rs"]
mod common;

mod gc;
