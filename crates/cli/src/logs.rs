//! `kiln logs`: a finished (or running, or killed) build's full log, replayed as `plain`
//! progress or printed as the stored JSON lines (`json`, the form of `kiln build
//! --progress=json`); `--list` shows which builds have logs.
//!
//! Reads the log files directly, without locking the state directory, so it works while
//! another kiln builds.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use engine::logs::{self, LogInfo};
use engine::progress::json::{self, Line};

use crate::args::{Cli, LogsArgs, LogsFormat};
use crate::progress::Display;
use crate::render::CliError;

/// Runs `kiln logs`.
pub(crate) async fn run(cli: &Cli, args: &LogsArgs) -> Result<ExitCode, CliError> {
    if let Some(remote) = crate::remote::Remote::of(cli)? {
        if args.list {
            return Err(CliError::Usage(
                "kiln logs --list through a daemon: use kiln history".into(),
            ));
        }
        let (id, data) = crate::remote::log(&remote, args.build.as_deref()).await?;
        return match args.progress {
            LogsFormat::Json => {
                std::io::stdout()
                    .write_all(&data)
                    .context("failed to write to standard output")?;
                Ok(ExitCode::SUCCESS)
            }
            LogsFormat::Plain => replay(&id, &format!("the log of {id}"), data.as_slice()),
        };
    }
    if args.list {
        return list(cli);
    }
    let log = logs::find(&cli.root, args.build.as_deref()).map_err(|e| CliError::Failed(e.into()))?;
    let file =
        std::fs::File::open(&log.path).with_context(|| format!("failed to read {}", log.path.display()))?;
    let reader = std::io::BufReader::new(file);
    match args.progress {
        LogsFormat::Json => {
            let mut out = std::io::stdout().lock();
            for line in reader.lines() {
                let line = line.with_context(|| format!("failed to read {}", log.path.display()))?;
                writeln!(out, "{line}").context("failed to write to standard output")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LogsFormat::Plain => replay(&log.id, &log.path.display().to_string(), reader),
    }
}

/// Shows a log as `kiln build --progress=plain --explain-cache` showed the build.
fn replay(id: &str, source: &str, reader: impl BufRead) -> Result<ExitCode, CliError> {
    let display = Display::replay();
    let mut finished = false;
    let mut failed = false;
    for (number, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("failed to read {source}"))?;
        if line.is_empty() {
            continue;
        }
        match json::decode(&line) {
            Ok(Line::Build(build)) => {
                eprintln!("build {} started {}", build.id, build.started);
                eprintln!("context {}, Dockerfile {}", build.context, build.dockerfile);
                if let Some(target) = &build.target {
                    eprintln!("target {target}");
                }
                eprintln!();
            }
            Ok(Line::Event(at, event)) => display.event_at(event, at),
            Ok(Line::Result(result)) => {
                finished = true;
                let took = Duration::from_secs_f64(result.time.max(0.0));
                match &result.error {
                    None => eprintln!("build {id} finished in {:.1}s", took.as_secs_f64()),
                    Some(e) => {
                        failed = true;
                        eprintln!("build {id} failed after {:.1}s: {e}", took.as_secs_f64());
                    }
                }
            }
            // A killed build can leave a torn last line; anything else is worth a note.
            Err(e) => eprintln!("WARNING: line {} of {source}: {e}", number + 1),
        }
    }
    if !finished {
        eprintln!("build {id} did not finish: it is still running, or kiln was stopped");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn list(cli: &Cli) -> Result<ExitCode, CliError> {
    let all = logs::list(&cli.root).map_err(|e| {
        CliError::failed(
            format!("failed to list the build logs in {}", cli.root.display()),
            e,
        )
    })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<14} {:<21} {:>9}  {:<9} CONTEXT",
        "BUILD ID", "STARTED", "DURATION", "STATUS"
    );
    for log in all {
        let summary = summarize(&log);
        let _ = writeln!(
            out,
            "{:<14} {:<21} {:>9}  {:<9} {}",
            log.id,
            summary.started,
            summary
                .duration
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_else(|| "-".into()),
            summary.status,
            summary.context
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Summary {
    started: String,
    context: String,
    duration: Option<f64>,
    status: &'static str,
}

/// What the first and last lines of a log say.
fn summarize(log: &LogInfo) -> Summary {
    let mut summary = Summary {
        started: "-".into(),
        context: String::new(),
        duration: None,
        status: "unfinished",
    };
    let Ok(text) = std::fs::read_to_string(&log.path) else {
        summary.status = "unreadable";
        return summary;
    };
    let mut lines = text.lines().filter(|l| !l.is_empty());
    if let Some(Ok(Line::Build(build))) = lines.next().map(json::decode) {
        summary.started = build.started;
        summary.context = build.context;
    }
    if let Some(Ok(Line::Result(result))) = text.lines().rev().find(|l| !l.is_empty()).map(json::decode) {
        summary.duration = Some(result.time);
        summary.status = if result.error.is_none() { "done" } else { "failed" };
    }
    summary
}
