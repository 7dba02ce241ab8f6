//! `kiln history`: past builds, newest first, from the stored build logs (of this state
//! directory, or of the daemon).

use std::io::Write;
use std::process::ExitCode;

use engine::HistoryEntry;
use serde_json::json;

use crate::args::{Cli, Format, HistoryArgs};
use crate::remote::Remote;
use crate::render::CliError;

/// Runs `kiln history`.
pub(crate) async fn run(cli: &Cli, args: &HistoryArgs) -> Result<ExitCode, CliError> {
    let entries = match Remote::of(cli)? {
        Some(remote) => crate::remote::history(&remote, args.limit).await?,
        None => engine::history(&cli.root, args.limit as usize).map_err(|e| {
            CliError::failed(
                format!("failed to list the build logs in {}", cli.root.display()),
                e,
            )
        })?,
    };
    let text = match args.format {
        Format::Json => format!(
            "{:#}\n",
            serde_json::Value::Array(entries.iter().map(entry_json).collect())
        ),
        Format::Table => table(&entries),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| CliError::failed("failed to write to standard output", e))?;
    Ok(ExitCode::SUCCESS)
}

fn entry_json(e: &HistoryEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "started": e.started,
        "context": e.context,
        "dockerfile": e.dockerfile,
        "target": e.target,
        "status": e.status.as_str(),
        "duration": e.duration,
        "steps": e.steps,
        "cached": e.cached,
        "error": e.error,
    })
}

fn table(entries: &[HistoryEntry]) -> String {
    let mut out = format!(
        "{:<14} {:<21} {:<10} {:>9} {:>11}  CONTEXT\n",
        "BUILD ID", "STARTED", "STATUS", "DURATION", "CACHED"
    );
    for e in entries {
        out.push_str(&format!(
            "{:<14} {:<21} {:<10} {:>9} {:>11}  {}\n",
            e.id,
            e.started,
            e.status.as_str(),
            e.duration
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", e.cached, e.steps),
            e.context
        ));
    }
    out
}
