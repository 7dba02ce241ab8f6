//! The file-operation tests that run as root (`testkit::require_privileged`): copies and
//! archive extraction that chown and make device nodes, and layers applied and written,
//! also through overlayfs.

#[path = "../common/mod.rs"]
mod common;

mod fileop;
mod fileop_unpack;
mod layer;
