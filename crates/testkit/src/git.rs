//! Running the git CLI in test fixtures, the same way everywhere.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir` with a fixed identity and dates, `main` as the default branch and
/// no user or system configuration; returns its standard output, trimmed. Panics with git's
/// standard error when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=kiln tests",
            "-c",
            "user.email=tests@kiln.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?} could not start: {e}"));
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
