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
    /// `kiln daemon`, with its configuration.
    Daemon(Cli, Box<daemon::Config>),
    /// Every other command.
    Other(Cli),
}

impl Prepared {
    /// Whether this is `kiln daemon`, which stops itself on a signal (gracefully) rather than
    /// being cancelled.
    pub(crate) fn is_daemon(&self) -> bool {
        matches!(self, Prepared::Daemon(..))
    }

    /// Checks the flags of `cli`'s command.
    pub(crate) fn new(cli: Cli) -> Result<Prepared, CliError> {
        Ok(match &cli.command {
            Command::Build(args) => {
                let plan = Plan::new(args)?;
                crate::remote::Remote::of(&cli)?;
                Prepared::Build(cli, Box::new(plan))
            }
            Command::Daemon(args) => {
                let config = crate::serve::config(&cli, args)?;
                Prepared::Daemon(cli, Box::new(config))
            }
            _ => Prepared::Other(cli),
        })
    }

    /// The command's name when it runs builds (and so needs root and a private mount
    /// namespace).
    pub(crate) fn engine_command(&self) -> Option<&'static str> {
        match self {
            Prepared::Build(cli, _) | Prepared::Daemon(cli, _) | Prepared::Other(cli) => cli.engine_command(),
        }
    }

    /// Runs the command; `shutdown` resolves when a daemon must stop (other commands are
    /// cancelled from outside instead).
    pub(crate) async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<ExitCode, CliError> {
        let cli = match self {
            Prepared::Build(cli, plan) => {
                if let Some(remote) = crate::remote::Remote::of(&cli)? {
                    return crate::remote_build::run(*plan, remote).await;
                }
                // Another `kiln build` holds the state directory: build with it, sharing its
                // engine, rather than wait for it.
                if let Some(host) = crate::serve::host_of(&cli.root).await {
                    eprintln!("kiln: joining the build that holds {}", cli.root.display());
                    return crate::remote_build::run(*plan, host).await;
                }
                return plan.run(&cli).await;
            }
            Prepared::Daemon(cli, config) => return crate::serve::run(&cli, *config, shutdown).await,
            Prepared::Other(cli) => cli,
        };
        match &cli.command {
            Command::Build(args) => Plan::new(args)?.run(&cli).await,
            Command::Daemon(_) => Err(CliError::Usage("kiln daemon was not prepared".into())),
            Command::History(args) => crate::history::run(&cli, args).await,
            Command::Debug {
                command: DebugCommand::Ping,
            } => match crate::remote::Remote::of(&cli)? {
                Some(remote) => crate::remote::ping(&remote).await,
                None => Err(CliError::Usage(
                    "kiln debug ping asks a daemon: give --addr or KILN_HOST".into(),
                )),
            },
            Command::Du(args) => crate::disk::du(&cli, args).await,
            Command::Prune(args) => crate::disk::prune(&cli, args).await,
            Command::Logs(args) => crate::logs::run(&cli, args).await,
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
