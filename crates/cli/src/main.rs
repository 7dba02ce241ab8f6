//! `kiln`: a container image builder shaped like `docker buildx build`.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod build;
mod check;
mod disk;
mod logs;
mod progress;
mod render;
mod session;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Before any thread exists: mounts kiln makes must die with the process, even on SIGKILL.
    let namespace = if cli.needs_engine() {
        Some(engine::prepare_process())
    } else {
        None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Err(reason)) = namespace
        && std::env::var_os("KILN_DEBUG").is_some()
    {
        eprintln!("kiln: running without a private mount namespace: {reason}");
    }
    // Ctrl-C or SIGTERM drops the running command: running containers are killed and
    // deleted, half-made snapshots removed and mounts undone by their guards.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = build::run(cli) => Some(result),
            () = interrupted() => None,
        }
    });
    // Work already handed to the blocking pool (a file copy, say) finishes or is abandoned.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
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

/// Resolves when the user interrupts (Ctrl-C) or the process is asked to terminate.
async fn interrupted() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
