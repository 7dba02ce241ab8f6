//! The sources' privileged integration tests: pulls whose layers are applied through overlayfs
//! mounts, and a download onto a full tmpfs. They run as root (`testkit::require_privileged`).

#[path = "../common/mod.rs"]
mod common;

mod http;
mod pull;
