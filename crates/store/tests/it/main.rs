//! The store's integration tests that need no privileges: cache-mount records and the
//! file-digest cache's persistence, on plain temporary directories.

#[path = "../common/mod.rs"]
mod common;

mod cachemount;
mod hashcache;
