//! Command-line flags, shaped like `docker buildx build` so users' habits carry over.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    #[arg(long, global = true, env = "KILN_GC_KEEP_STORAGE", value_name = "SIZE", value_parser = crate::disk::size)]
    pub(crate) gc_keep_storage: Option<u64>,
    /// Run at most N build steps at once (default: file work bounded by the cores, RUN steps
    /// and downloads unbounded so that steps which wait overlap).
    #[arg(long, global = true, env = "KILN_MAX_PARALLELISM", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_parallelism: Option<u32>,
    /// The network of RUN steps without --network (BuildKit's oci-worker-net): `none`
    /// (loopback only, the default: there is no bridge) or `host` (the host's network).
    #[arg(long, global = true, env = "KILN_OCI_WORKER_NET", value_enum, default_value_t = WorkerNet::None)]
    pub(crate) oci_worker_net: WorkerNet,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Whether the command runs builds (and so wants a private mount namespace).
    pub(crate) fn needs_engine(&self) -> bool {
        match &self.command {
            Command::Build(_) => true,
            // Disk management and logs mount nothing.
            Command::Du(_) | Command::Prune(_) | Command::Logs(_) => false,
            Command::Debug {
                command: DebugCommand::Llb(a),
            } => !a.offline,
            Command::Debug {
                command: DebugCommand::Parse { .. },
            } => false,
            // Recovery must unmount debris where it is, not in a private copy of the mounts.
            Command::Debug {
                command: DebugCommand::Check,
            } => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile.
    Build(Box<BuildArgs>),
    /// Show what the build cache holds: records, sizes, last use (`--format json` for scripts).
    #[command(after_long_help = crate::disk::JSON_HELP)]
    Du(crate::disk::DuArgs),
    /// Remove build cache: by default every build result not in use; see the flags.
    #[command(after_long_help = crate::disk::JSON_HELP)]
    Prune(crate::disk::PruneArgs),
    /// Show the full log of a build (the last one by default), as it was shown while it ran.
    Logs(LogsArgs),
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
}

/// Flags shared by `build` and `debug llb`.
#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<PathBuf>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// Set the target platform for the build (kiln builds for linux/amd64 only today).
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// Additional build contexts (`NAME=DIR` or `NAME=docker-image://REF`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// Build context directory.
    #[arg(default_value = ".")]
    pub(crate) context: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    /// Output destination: `type=local,dest=DIR` (or just `DIR`), `type=tar,dest=FILE` (`-` for
    /// standard output), `type=oci,dest=FILE[,name=REF]`, `type=docker,dest=FILE[,name=REF]` (for
    /// `docker load`), `type=image,name=REF,push=true` or `type=registry[,name=REF]` (names
    /// default to the `-t` tags). Repeatable.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,
    /// Name of the image, `name:tag` (recorded in OCI outputs; where `--push` and registry
    /// outputs without `name=` push to).
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Push the image to the registry of its `-t` names (short for `--output type=registry`).
    #[arg(long)]
    pub(crate) push: bool,
    /// Set a label on the image (`KEY=VALUE`); wins over the Dockerfile's LABEL. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Always check the registry for newer base images. kiln always does: every build resolves
    /// the tags of its base images again (a digest reference is never re-resolved).
    #[arg(long)]
    pub(crate) pull: bool,
    /// Show no progress; print the image's manifest digest on success.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// Write the image's manifest digest to FILE (empty when no output wrote an image).
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,
    /// Write the build result's metadata (image digests, descriptor and names) to FILE, as JSON.
    #[arg(long, value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Set type of progress output.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub(crate) progress: ProgressMode,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Do not use the cache for the steps of these stages (by name). Repeatable, or
    /// comma-separated.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub(crate) no_cache_filter: Vec<String>,
    /// Expose a secret to RUN --mount=type=secret: `id=ID,src=FILE`, `id=ID,env=VAR`, or `id=ID`
    /// (the variable ID if set, else the file ID); `type=file|env` as in buildx.
    #[arg(long = "secret", value_name = "id=ID[,src=FILE|env=VAR]")]
    pub(crate) secrets: Vec<String>,
    /// Forward an SSH agent to RUN --mount=type=ssh: `default` ($SSH_AUTH_SOCK), `ID=SOCKET`, or
    /// `ID=KEY[,KEY…]` (private key files, served by an agent kiln starts).
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY…]]")]
    pub(crate) ssh: Vec<String>,
    /// Allow extra privileged entitlement: `network.host` (RUN --network=host) or
    /// `security.insecure` (RUN --security=insecure). Repeatable, or comma-separated.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',', value_parser = entitlement)]
    pub(crate) allow: Vec<engine::Entitlement>,
    /// The network of RUN steps that do not set `--network`: `default` (the worker's, see
    /// `--oci-worker-net`), `none` (loopback only) or `host` (implies `--allow network.host`).
    #[arg(long, value_enum, default_value_t = BuildNetwork::Default)]
    pub(crate) network: BuildNetwork,
    /// Size of /dev/shm in RUN steps, e.g. `128m` or `1g` (default 64m).
    #[arg(long, value_name = "SIZE", value_parser = crate::disk::size)]
    pub(crate) shm_size: Option<u64>,
    /// A resource limit of RUN steps: `NAME=SOFT[:HARD]`, e.g. `nofile=1024:2048` (-1 is
    /// unlimited). Repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = ulimit)]
    pub(crate) ulimits: Vec<llb::pb::Ulimit>,
    /// Add a line to the /etc/hosts of every RUN step: `HOST:IP` or `HOST=IP` (an IPv6
    /// address may be written in brackets). Repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = extra_host)]
    pub(crate) add_hosts: Vec<(String, std::net::IpAddr)>,
    /// Say, for each step that ran, why it missed the cache: which file, build arg, base
    /// image or earlier step changed since the last build of this context, Dockerfile and
    /// target (rawjson progress and build logs always include it).
    #[arg(long)]
    pub(crate) explain_cache: bool,
}

/// `kiln build --network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BuildNetwork {
    /// The worker's network.
    Default,
    /// Loopback only.
    None,
    /// The host's network.
    Host,
}

/// Every entitlement `--allow` accepts, in the order the help lists them.
const ENTITLEMENTS: [engine::Entitlement; 2] = [
    engine::Entitlement::NetworkHost,
    engine::Entitlement::SecurityInsecure,
];

/// Parses an `--allow` value; an unknown name is a usage error that lists the valid ones.
/// Parses one `--add-host` value the way docker does: `HOST:IP` (split at the first `:`, so
/// `h:::1` is IPv6), or `HOST=IP`; the address may be in brackets.
pub(crate) fn extra_host(spec: &str) -> Result<(String, std::net::IpAddr), String> {
    let (host, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| format!("invalid --add-host {spec:?}: expected HOST:IP"))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(format!(
            "invalid --add-host {spec:?}: {host:?} is not a host name"
        ));
    }
    if ip == "host-gateway" {
        return Err(format!(
            "--add-host {spec:?}: the special address host-gateway is not supported yet"
        ));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let ip = bare
        .parse()
        .map_err(|_| format!("invalid --add-host {spec:?}: {ip:?} is not an IP address"))?;
    Ok((host.to_string(), ip))
}

/// Parses one `--label KEY=VALUE`.
fn label(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("invalid --label {spec:?}: expected KEY=VALUE")),
    }
}

/// Parses one `--ulimit` value the way docker does: `NAME=SOFT[:HARD]`, the hard limit being the
/// soft one when absent.
pub(crate) fn ulimit(spec: &str) -> Result<llb::pb::Ulimit, String> {
    let (name, limits) = spec
        .split_once('=')
        .ok_or_else(|| format!("invalid --ulimit {spec:?}: expected NAME=SOFT[:HARD]"))?;
    if !engine::ULIMIT_NAMES.contains(&name) {
        return Err(format!(
            "invalid --ulimit {spec:?}: unknown resource {name:?} (known: {})",
            engine::ULIMIT_NAMES.join(", ")
        ));
    }
    let number = |text: &str| -> Result<i64, String> {
        match text.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(n),
            _ => Err(format!("invalid --ulimit {spec:?}: {text:?} is not a limit")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => (number(limits)?, number(limits)?),
    };
    let unlimited = |n: i64| n == -1;
    if !unlimited(hard) && (unlimited(soft) || soft > hard) {
        return Err(format!(
            "invalid --ulimit {spec:?}: the soft limit is above the hard limit"
        ));
    }
    Ok(llb::pb::Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

fn entitlement(name: &str) -> Result<engine::Entitlement, String> {
    engine::Entitlement::parse(name.trim()).ok_or_else(|| {
        let valid: Vec<&str> = ENTITLEMENTS.iter().map(|e| e.name()).collect();
        format!("unknown entitlement (valid: {})", valid.join(", "))
    })
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The build id, or a unique prefix of it (default: the last build).
    pub(crate) build: Option<String>,
    /// List the builds whose logs are kept, newest first.
    #[arg(long, conflicts_with = "build")]
    pub(crate) list: bool,
    /// `plain`: as `kiln build --progress=plain` showed it (with cache-miss explanations);
    /// `rawjson`: the stored JSON lines.
    #[arg(long, value_enum, default_value_t = LogsFormat::Plain)]
    pub(crate) progress: LogsFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogsFormat {
    /// Readable, one line per event.
    Plain,
    /// One JSON object per line (see docs/progress-json.md).
    Rawjson,
}

#[derive(Debug, Args)]
pub(crate) struct LlbArgs {
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    /// Do not resolve base images (an unresolved image contributes an empty config).
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live view of running steps.
    Tty,
    /// One line per event, for logs.
    Plain,
    /// One JSON object per line, for programs (see docs/progress-json.md).
    Rawjson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkerNet {
    /// A network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
}

#[cfg(test)]
mod tests {
    use super::extra_host;

    #[test]
    fn add_host_takes_docker_forms() {
        let parsed = |s: &str| extra_host(s).map(|(h, ip)| (h, ip.to_string()));
        assert_eq!(parsed("db:10.0.0.5"), Ok(("db".into(), "10.0.0.5".into())));
        assert_eq!(parsed("db=10.0.0.5"), Ok(("db".into(), "10.0.0.5".into())));
        assert_eq!(parsed("v6:::1"), Ok(("v6".into(), "::1".into())));
        assert_eq!(parsed("v6=[fd00::1]"), Ok(("v6".into(), "fd00::1".into())));
        assert!(extra_host("db").unwrap_err().contains("expected HOST:IP"));
        assert!(extra_host(":10.0.0.5").unwrap_err().contains("not a host name"));
        assert!(
            extra_host("db:notanip")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            extra_host("db:host-gateway")
                .unwrap_err()
                .contains("not supported yet")
        );
    }

    #[test]
    fn ulimit_takes_docker_forms() {
        let parsed = |s: &str| super::ulimit(s).map(|u| (u.name, u.soft, u.hard));
        assert_eq!(parsed("nofile=1024:2048"), Ok(("nofile".into(), 1024, 2048)));
        assert_eq!(parsed("nproc=512"), Ok(("nproc".into(), 512, 512)));
        assert_eq!(parsed("core=-1"), Ok(("core".into(), -1, -1)));
        assert_eq!(parsed("memlock=64:-1"), Ok(("memlock".into(), 64, -1)));
        assert!(
            super::ulimit("nofile")
                .unwrap_err()
                .contains("expected NAME=SOFT")
        );
        assert!(super::ulimit("files=1").unwrap_err().contains("unknown resource"));
        assert!(
            super::ulimit("nofile=2:1")
                .unwrap_err()
                .contains("above the hard")
        );
        assert!(super::ulimit("nofile=x").unwrap_err().contains("not a limit"));
    }
}
