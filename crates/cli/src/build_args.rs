//! The flags of `kiln build`, shaped like `docker buildx build` so users' habits carry over:
//! every buildx flag parses (see docs/cli.md), those of features kiln lacks live in
//! [`crate::compat`] and are refused before anything runs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::compat::CompatFlags;
use crate::parse::{entitlement, extra_host, go_bool, label, size, ulimit};

/// Flags shared by `build` and `debug llb`.
#[derive(Debug, Args)]
pub(crate) struct CompileArgs {
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile; `-` reads it from standard input;
    /// with a context archive, a path inside the archive).
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Option<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Set build-time variables (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// Set the target platform for the build (kiln builds for linux/amd64 only today; `local`
    /// is the host's). Repeatable, or comma-separated; defaults to $DOCKER_DEFAULT_PLATFORM.
    #[arg(long, value_delimiter = ',')]
    pub(crate) platform: Vec<String>,
    /// Additional build contexts (`NAME=DIR` or `NAME=docker-image://REF`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// The build context: a directory, `-` (a Dockerfile or a context archive, plain or
    /// compressed, on standard input), or a git or HTTP URL (not supported yet).
    #[arg(default_value = ".", value_name = "PATH | URL | -")]
    pub(crate) context: String,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) compile: CompileArgs,
    /// Output destination: `type=local,dest=DIR` (or just `DIR`), `type=tar[,dest=FILE]`
    /// (standard output by default), `type=oci[,dest=FILE][,name=REF]`, `type=docker,dest=FILE`
    /// (for `docker load`), `type=image,name=REF,push=true`, `type=registry[,name=REF]` or
    /// `type=cacheonly` (names default to the `-t` tags). Repeatable. See docs/cli.md for every
    /// exporter option.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,
    /// Image identifier, `[registry/]repository[:tag]`: the names of image outputs (replacing
    /// their `name=`) and where `--push` pushes. Repeatable.
    #[arg(short = 't', long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Push the image to the registry of its `-t` names (short for `--output type=registry`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) push: bool,
    /// Set a label on the image (`KEY=VALUE`); wins over the Dockerfile's LABEL. Repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Always check the registry for newer base images. kiln always does: every build resolves
    /// the tags of its base images again (a digest reference is never re-resolved).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) pull: bool,
    /// Show no progress; print the image ID (its config digest) on success.
    #[arg(short = 'q', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) quiet: bool,
    /// Write the image ID (the config digest of the exported image; empty when no output wrote an
    /// image) to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,
    /// Write the build result's metadata (image digests, descriptor and names) to FILE, as JSON.
    #[arg(long, value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Set type of progress output.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub(crate) progress: ProgressMode,
    /// Do not use cache when building the image.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) no_cache: bool,
    /// Do not use the cache for the steps of these stages (by name). Repeatable, or
    /// comma-separated.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub(crate) no_cache_filter: Vec<String>,
    /// Shorthand for `--output=type=docker`: load the image into the Docker daemon at
    /// `DOCKER_HOST` (default `unix:///var/run/docker.sock`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::parse::go_bool)]
    pub(crate) load: Option<bool>,
    /// Use a cache exported earlier: `REF` (a registry cache), `type=registry,ref=REF` or
    /// `type=local,src=DIR[,tag=TAG]`. Repeatable. See docs/cli.md for every option.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// Export the build cache: `type=registry,ref=REF` or `type=local,dest=DIR[,tag=TAG]`, with
    /// `mode=min|max`, `ignore-error=`, `image-manifest=`, `oci-mediatypes=`, `compression=`.
    /// Repeatable.
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub(crate) cache_to: Vec<String>,
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
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub(crate) shm_size: Option<u64>,
    /// A resource limit of RUN steps: `NAME=SOFT[:HARD]`, e.g. `nofile=1024:2048` (-1 is
    /// unlimited). Repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = ulimit)]
    pub(crate) ulimits: Vec<llb::pb::Ulimit>,
    /// Add a line to the /etc/hosts of every RUN step: `HOST:IP` or `HOST=IP` (an IPv6
    /// address may be written in brackets). Repeatable, or comma-separated.
    #[arg(long = "add-host", value_name = "HOST:IP", value_delimiter = ',', value_parser = extra_host)]
    pub(crate) add_hosts: Vec<(String, std::net::IpAddr)>,
    /// Say, for each step that ran, why it missed the cache: which file, build arg, base
    /// image or earlier step changed since the last build of this context, Dockerfile and
    /// target (json progress and build logs always include it).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) explain_cache: bool,
    /// Enable debug logging: kiln's notes on what it does besides the build (as KILN_DEBUG=1).
    #[arg(short = 'D', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub(crate) debug: bool,
    #[command(flatten)]
    pub(crate) compat: CompatFlags,
}

/// `kiln build --network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BuildNetwork {
    /// The worker's network.
    Default,
    /// Loopback only.
    None,
    /// The host's network.
    Host,
}

/// `kiln build --progress`: buildx's modes, and kiln's own JSON events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live view of running steps.
    Tty,
    /// One line per event, for logs.
    Plain,
    /// No progress; print the image ID on success (as `-q`).
    Quiet,
    /// No progress, and no image ID.
    None,
    /// buildx's stream of BuildKit `SolveStatus` objects, one JSON object per line.
    Rawjson,
    /// kiln's events as JSON lines, with cache-miss explanations (see docs/progress-json.md).
    Json,
}
