//! `kiln`: a container image builder shaped like `docker buildx build`.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod build;
mod progress;
mod render;

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
    match runtime.block_on(build::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            render::error(&e);
            ExitCode::FAILURE
        }
    }
}
