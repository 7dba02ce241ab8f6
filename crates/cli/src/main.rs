//! `kiln`: a container image builder shaped like `docker buildx build`.
//!
//! Modules, each importing only those listed before it: `parse` (flag values), `compat`
//! (buildx flags kiln refuses or ignores), `build_args` and `args` (the flags), `outputs`
//! (`--output`), `cache_specs` (`--cache-from`, `--cache-to`), `privileges`, `rawjson` and `progress` (displays), `render` (errors),
//! `context`, `session`, `results`, `setup`, `remote` (daemons), the commands (`disk`, `logs`,
//! `history`, `check`, `build`, `debug`), a build through a daemon (`remote_wire`,
//! `remote_build`, `remote_session`), `kiln daemon` (`serve`) and `commands`, which dispatches
//! them.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{Signal, SignalKind, signal};

mod args;
mod build;
mod build_args;
mod cache_specs;
mod check;
mod commands;
mod compat;
mod context;
mod debug;
mod disk;
mod history;
mod logs;
mod outputs;
mod parse;
mod privileges;
mod progress;
mod rawjson;
mod remote;
mod remote_build;
mod remote_session;
mod remote_wire;
mod render;
mod results;
mod serve;
mod session;
mod setup;

use commands::Prepared;
use render::CliError;

/// How long an interrupted command may take to stop its containers and release what it holds
/// before kiln exits anyway (a second signal stops the wait at once).
const UNWIND_LIMIT: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let prepared = match Prepared::new(cli) {
        Ok(p) => p,
        Err(e) => {
            render::error(&e);
            return ExitCode::FAILURE;
        }
    };
    if let Some(command) = prepared.engine_command() {
        if let Err(message) = privileges::require_root(command) {
            render::error(&CliError::Usage(message));
            return ExitCode::FAILURE;
        }
        // Before any thread exists: mounts kiln makes must die with the process, even on SIGKILL.
        if let Err(e) = engine::prepare_process() {
            render::error(&CliError::Failed(anyhow::Error::new(e)));
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            render::error(&CliError::failed("failed to start the async runtime", e));
            return ExitCode::FAILURE;
        }
    };
    let outcome = if prepared.is_daemon() {
        // A daemon stops itself on a signal: it cancels its builds and releases everything.
        runtime.block_on(async {
            let mut signals = Signals::listen();
            Some(prepared.run(async move { signals.next().await }).await)
        })
    } else {
        runtime.block_on(run_interruptibly(prepared))
    };
    // Work already handed to the blocking pool (a file copy, say) finishes or is abandoned;
    // after an interruption, what is left is abandoned sooner (the state directory is
    // consistent at any moment).
    let grace = if outcome.is_some() { 10 } else { 2 };
    runtime.shutdown_timeout(Duration::from_secs(grace));
    match outcome {
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            render::error(&e);
            ExitCode::FAILURE
        }
        None => {
            eprintln!("ERROR: interrupted: the build was cancelled and its containers stopped");
            ExitCode::from(130)
        }
    }
}

/// Runs the command as a task of its own while this one waits for Ctrl-C or SIGTERM, so a
/// signal is seen at any moment, even while the command is busy with synchronous work; the
/// command is then cancelled at its next await: dropping it kills and deletes its containers,
/// removes half-made snapshots and undoes mounts. `None` when interrupted.
async fn run_interruptibly(prepared: Prepared) -> Option<Result<ExitCode, CliError>> {
    // Listening starts before the command does, so no signal takes its default action.
    let mut signals = Signals::listen();
    let mut task = tokio::spawn(prepared.run(std::future::pending()));
    tokio::select! {
        joined = &mut task => {
            Some(joined.unwrap_or_else(|e| Err(CliError::failed("the command stopped unexpectedly", e))))
        }
        () = signals.next() => {
            task.abort();
            tokio::select! {
                _ = &mut task => {}
                () = signals.next() => {}
                () = tokio::time::sleep(UNWIND_LIMIT) => {
                    eprintln!("kiln: the build did not stop within {}s; exiting anyway", UNWIND_LIMIT.as_secs());
                }
            }
            None
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    fn listen() -> Signals {
        let listen = |kind| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("WARNING: cannot handle signals ({e}): interrupting kills kiln outright");
                None
            }
        };
        Signals {
            interrupt: listen(SignalKind::interrupt()),
            terminate: listen(SignalKind::terminate()),
        }
    }

    /// Resolves at the next signal.
    async fn next(&mut self) {
        async fn recv(signal: &mut Option<Signal>) {
            match signal {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.interrupt) => {}
            () = recv(&mut self.terminate) => {}
        }
    }
}
