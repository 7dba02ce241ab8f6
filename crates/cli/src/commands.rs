//! The commands: checked first ([`Prepared::new`], before any thread, namespace or state
//! directory exists), then run.

use std::process::ExitCode;

use crate::args::{Cli, Command, DebugCommand};
use crate::build::Plan;
use crate::render::CliError;

/// A command line whose flags have been checked.
pub(crate) enum Prepared {
    /// `kiln build`, with its plan.
    Build(Cli, Box<Plan>),
    /// Every other command.
    Other(Cli),
}

impl Prepared {
    /// Checks the flags of `cli`'s command.
    pub(crate) fn new(cli: Cli) -> Result<Prepared, CliError> {
        Ok(match &cli.command {
            Command::Build(args) => {
                let plan = Plan::new(args)?;
                Prepared::Build(cli, Box::new(plan))
            }
            _ => Prepared::Other(cli),
        })
    }

    /// The command's name when it runs builds (and so needs root and a private mount
    /// namespace).
    pub(crate) fn engine_command(&self) -> Option<&'static str> {
        match self {
            Prepared::Build(cli, _) | Prepared::Other(cli) => cli.engine_command(),
        }
    }

    /// Runs the command.
    pub(crate) async fn run(self) -> Result<ExitCode, CliError> {
        let cli = match self {
            Prepared::Build(cli, plan) => return plan.run(&cli).await,
            Prepared::Other(cli) => cli,
        };
        match &cli.command {
            Command::Build(args) => Plan::new(args)?.run(&cli).await,
            Command::Du(args) => crate::disk::du(&cli, args).await,
            Command::Prune(args) => crate::disk::prune(&cli, args).await,
            Command::Logs(args) => crate::logs::run(&cli, args),
            Command::Debug {
                command: DebugCommand::Parse { file },
            } => crate::debug::parse(file),
            Command::Debug {
                command: DebugCommand::Check,
            } => crate::check::run(&cli).await,
            Command::Debug {
                command: DebugCommand::Llb(args),
            } => crate::debug::llb(&cli, args).await,
        }
    }
}
