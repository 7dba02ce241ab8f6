//! `kiln debug check`: verifies the state directory and says what to do about what is wrong.
//!
//! Opening the state directory runs kiln's crash recovery first (debris of killed processes is
//! removed, stale containers are killed), so the report describes the state *after* recovery:
//! what the next build will find. The checks themselves are `store::Store::check`'s.

use std::process::ExitCode;

use crate::args::Cli;
use crate::render::CliError;
use crate::setup::open_engine;

/// Runs the check, prints a summary to stdout and fails (exit code 1) on any problem.
pub(crate) async fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    let engine = open_engine(cli).await?;
    let report = engine
        .store()
        .check()
        .map_err(|e| CliError::failed(format!("failed to check {}", cli.root.display()), e))?;
    println!(
        "state directory {} (checked after start-up recovery)",
        engine.root().display()
    );
    println!(
        "blobs:       {} ({}), hashed and compared with their names",
        report.blobs,
        engine::human_size(report.blob_bytes)
    );
    println!(
        "snapshots:   {} ({} unreferenced: left by interrupted builds, reclaimed by pruning)",
        report.snapshots, report.unreferenced_snapshots
    );
    println!("layer index: {} entries", report.layers);
    println!("cache index: {} records", report.cache_records);
    if report.is_ok() {
        println!("no problems found");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} problem(s) found:", report.problems.len());
    for problem in &report.problems {
        println!("- {problem}\n  what to do: {}", problem.remedy());
    }
    println!("(everything in a state directory is a cache: removing it is always safe)");
    Ok(ExitCode::FAILURE)
}
