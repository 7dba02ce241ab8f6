//! The sources' integration tests that need no privileges: downloads authenticated by the
//! build's secrets, git checkouts (finished and cancelled), and failures reported with their
//! whole chain of causes.

#[path = "../common/mod.rs"]
mod common;

mod git;
mod http;
mod pull;
