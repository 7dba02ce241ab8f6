//! Real builds through the `kiln` binary: runc over overlayfs, a registry on loopback serving
//! the busybox fixture image. Every test starts with `testkit::require_privileged` (most
//! through `Harness::start`), so a machine that cannot run them fails them with the reason.

#[path = "../common/mod.rs"]
mod common;

mod buildx_cli;
mod cache;
mod cache_mounts;
mod contexts;
mod copy_add;
mod crash;
mod daemon;
mod disk;
mod e2e;
mod errors;
mod explain;
mod git_context;
mod image_formats;
mod instructions;
mod load;
mod push;
mod remote_cache;
mod run;
mod scheduling;
pub(crate) mod secrets;
mod security;
