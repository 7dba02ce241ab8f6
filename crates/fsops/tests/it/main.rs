//! The file-operation tests that need no privileges: copy selection (patterns, excludes,
//! include patterns, symbolic modes) and the file-digest cache, on temporary directories.

#[path = "../common/mod.rs"]
mod common;

mod fileop_select;
mod hashcache;
