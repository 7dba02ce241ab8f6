//! Command-line flags of every command but `build` (whose flags are in [`crate::build_args`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use engine::Filter;

use crate::build_args::{BuildArgs, CompileArgs};
use crate::parse::{duration, filter, size};

/// kiln builds container images from Dockerfiles.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// State directory (cache, images, snapshots).
    #[arg(long, global = true, env = "KILN_ROOT", default_value = "/var/lib/kiln")]
    pub(crate) root: PathBuf,
    /// OCI runtime used to run build steps.
    #[arg(long, global = true, env = "KILN_RUNTIME", default_value = "runc")]
    pub(crate) runtime: PathBuf,
    /// After each build, prune least recently used cache down to SIZE (0 = never; default: 10%
    /// of the disk holding the state directory, at most 10GB).
    #[arg(long, global = true, env = "KILN_GC_KEEP_STORAGE", value_name = "SIZE", value_parser = size)]
    pub(crate) gc_keep_storage: Option<u64>,
    /// Run at most N build steps at once (default: file work bounded by the cores, RUN steps
    /// and downloads unbounded so that steps which wait overlap).
    #[arg(long, global = true, env = "KILN_MAX_PARALLELISM", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_parallelism: Option<u32>,
    /// The network of RUN steps without --network (BuildKit's oci-worker-net): `none`
    /// (loopback only, the default: there is no bridge) or `host` (the host's network).
    #[arg(long, global = true, env = "KILN_OCI_WORKER_NET", value_enum, default_value_t = WorkerNet::None)]
    pub(crate) oci_worker_net: WorkerNet,
    /// The daemon(s) to use: unix:///PATH or tcp://HOST:PORT, repeatable or comma-separated for
    /// a fleet (each build goes to one of them by its project); without it, builds run in this
    /// process. For `kiln daemon`: where to listen (default unix:///run/kiln/kiln.sock).
    #[arg(long = "addr", global = true, env = "KILN_HOST", value_name = "ADDR[,ADDR…]")]
    pub(crate) host: Vec<String>,
    /// CA certificate (PEM) that signs the other side's certificate (mutual TLS over TCP).
    #[arg(long, global = true, env = "KILN_TLS_CACERT", value_name = "FILE")]
    pub(crate) tlscacert: Option<PathBuf>,
    /// This side's certificate (PEM).
    #[arg(long, global = true, env = "KILN_TLS_CERT", value_name = "FILE")]
    pub(crate) tlscert: Option<PathBuf>,
    /// This side's private key (PEM).
    #[arg(long, global = true, env = "KILN_TLS_KEY", value_name = "FILE")]
    pub(crate) tlskey: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// The command's name when it runs builds, and so needs root and a private mount namespace.
    pub(crate) fn engine_command(&self) -> Option<&'static str> {
        match &self.command {
            Command::Daemon(_) => Some("kiln daemon"),
            // A client of a daemon runs nothing itself.
            Command::Build(_) if !self.host.is_empty() => None,
            Command::Build(_) => Some("kiln build"),
            Command::Debug {
                command: DebugCommand::Llb(a),
            } if !a.offline => Some("kiln debug llb"),
            // Disk management, logs and parsing mount nothing; recovery (`debug check`) must
            // unmount debris where it is, not in a private copy of the mounts.
            Command::Du(_)
            | Command::Prune(_)
            | Command::Logs(_)
            | Command::History(_)
            | Command::Debug { .. } => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Show what the build cache and the stored build logs hold: records, sizes, last use
    /// (`--format json` for scripts).
    #[command(after_long_help = JSON_HELP)]
    Du(DuArgs),
    /// Remove build cache: by default every build result not in use; `--all` also base-image
    /// layers and the build logs but the newest; see the flags.
    #[command(after_long_help = JSON_HELP)]
    Prune(PruneArgs),
    /// Show the full log of a build (the last one by default), as it was shown while it ran.
    Logs(LogsArgs),
    /// List past builds, newest first: id, start, status, duration, steps and cache hits,
    /// context.
    History(HistoryArgs),
    /// Serve the engine to `kiln` clients over gRPC (see docs/daemon.md).
    Daemon(DaemonArgs),
    /// Inspect what kiln would do.
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// Print the LLB graph a Dockerfile compiles to, one op per line.
    Llb(LlbArgs),
    /// Print the parse tree of a Dockerfile in BuildKit's test dump format.
    Parse {
        /// The Dockerfile.
        file: PathBuf,
    },
    /// Verify the state directory (after the crash recovery that opening it runs); exits
    /// non-zero if anything is inconsistent.
    Check,
    /// Ask the daemon(s) of --addr / KILN_HOST whether they answer; exits non-zero if one does
    /// not (a health check).
    Ping,
}

/// Flags of `kiln history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Show at most N builds.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

/// Flags of `kiln daemon` (where it listens is `--addr`; the state directory, runtime and worker
/// flags are the global ones; --tlscacert, --tlscert and --tlskey give mutual TLS to TCP
/// listeners).
#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Serve TCP without TLS: anyone who reaches the port can build as root.
    #[arg(long)]
    pub(crate) insecure_tcp: bool,
    /// The group that may use the unix sockets (mode 0660; default root's).
    #[arg(long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// A cache every build reads unless it names its own (as `kiln build --cache-from`).
    #[arg(long, value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// A cache every build exports to unless it names its own (as `kiln build --cache-to`).
    #[arg(long, value_name = "SPEC")]
    pub(crate) cache_to: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LlbArgs {
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    /// Do not resolve base images (an unresolved image contributes an empty config).
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The build id, or a unique prefix of it (default: the last build).
    pub(crate) build: Option<String>,
    /// List the builds whose logs are kept, newest first.
    #[arg(long, conflicts_with = "build")]
    pub(crate) list: bool,
    /// `plain`: as `kiln build --progress=plain` showed it (with cache-miss explanations);
    /// `json`: the stored JSON lines (as `kiln build --progress=json`).
    #[arg(long, value_enum, default_value_t = LogsFormat::Plain)]
    pub(crate) progress: LogsFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogsFormat {
    /// Readable, one line per event.
    Plain,
    /// One JSON object per line (see docs/progress-json.md).
    Json,
}

/// Flags of `kiln du`.
#[derive(Debug, Args)]
pub(crate) struct DuArgs {
    #[command(flatten)]
    pub(crate) records: RecordArgs,
}

/// Flags of `kiln prune`.
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Include pulled base-image layers and build logs, all but the newest (by default only
    /// build results and unused cache mounts go; --keep-storage also takes the oldest logs).
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Remove least recently used records only until the cache is at most SIZE (2GB, 512MiB,
    /// 1.5g, plain bytes; units are binary, as docker's).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) keep_storage: Option<u64>,
    /// Keep records used within DURATION (24h, 90m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub(crate) keep_duration: Option<Duration>,
    #[command(flatten)]
    pub(crate) records: RecordArgs,
}

/// The flags `kiln du` and `kiln prune` share: which records they show or remove, and how they
/// print them.
#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// Only matching records: type=regular|layer|exec.cachemount|build.log, id=N (or a build
    /// id), description=TEXT, description~=SUBSTRING, until=DURATION (not used within);
    /// repeatable, all must match.
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE", value_parser = filter)]
    pub(crate) filters: Vec<Filter>,
    /// Print every field of every record shown (du) or removed (prune).
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

/// How `du` and `prune` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable rows (or blocks with `--verbose`) and totals.
    Table,
    /// One JSON object (fields: see `kiln du --help`).
    Json,
}

/// The JSON output of `du` and `prune`, for `--help`.
const JSON_HELP: &str = "\
JSON output (--format json): du prints {records, other_content, total, reclaimable, shared, private}; \
prune prints {removed, other_content, blobs_removed, reclaimed}. A record is {id (a number; a build \
id string for a build log), parent, type (regular: a build result, layer: a pulled image layer, \
exec.cachemount: a RUN --mount=type=cache directory, build.log: a stored build log), description, size \
(bytes), created, last_used (Unix seconds), usage_count, in_use, shared, reclaimable, blob}; \
other_content is {blobs, size}: blobs that are no snapshot's layer (image manifests and configs, \
downloads). All sizes are in bytes.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkerNet {
    /// A network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}
