//! `kiln build`: flags checked and turned into an engine request before anything runs
//! ([`Plan::new`]), then the build with its progress display and what buildx leaves after one
//! (image ID, metadata, warnings).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use engine::{BuildRequest, Destination, OutputSpec};

use crate::args::Cli;
use crate::build_args::{BuildArgs, BuildNetwork, CompileArgs, ProgressMode};
use crate::context::{self, Source};
use crate::outputs::parse_output;
use crate::progress::{Display, Style};
use crate::render::CliError;
use crate::setup::open_engine;

/// A `kiln build` whose flags are valid: what to build and how to show and report it.
pub(crate) struct Plan {
    pub(crate) request: BuildRequest,
    /// Where the context comes from (read when the build runs).
    pub(crate) source: Source,
    /// `-f`, as given.
    pub(crate) file: Option<String>,
    pub(crate) style: Style,
    /// Print the image ID on standard output at the end (`-q`, `--progress=quiet`).
    pub(crate) print_id: bool,
    pub(crate) explain: bool,
    pub(crate) debug: bool,
    pub(crate) iidfile: Option<PathBuf>,
    pub(crate) metadata_file: Option<PathBuf>,
    /// Whether an output writes to standard output (the image ID is then not printed).
    pub(crate) stdout_taken: bool,
    /// Warnings to give before the build.
    pub(crate) warnings: Vec<String>,
}

impl Plan {
    /// Checks every flag and builds the request; nothing is read or written yet except that
    /// `--secret` and `--ssh` files must exist.
    pub(crate) fn new(args: &BuildArgs) -> Result<Plan, CliError> {
        let mut warnings: Vec<String> = args
            .compat
            .check()
            .map_err(CliError::Usage)?
            .into_iter()
            .map(str::to_string)
            .collect();
        let (style, print_id) = progress_style(args.progress, args.quiet)?;
        for tag in &args.tags {
            oci::Reference::parse(tag)
                .map_err(|e| CliError::Usage(format!("invalid tag {tag:?} (-t): {e}")))?;
        }
        let mut request = compile_request(&args.compile)?;
        run_options(&mut request, args)?;
        request.outputs = outputs(args)?;
        if args.outputs.is_empty() && !args.push && args.load != Some(true) {
            warnings.push(
                "No output specified: the build result will only remain in the build cache. Use --output to export it."
                    .into(),
            );
        }
        let stdout_taken = request.outputs.iter().any(writes_to_stdout);
        let file = args.compile.file.clone();
        let source = context::classify(&args.compile.context, file.as_deref()).map_err(CliError::Usage)?;
        Ok(Plan {
            request,
            source,
            file,
            style,
            print_id,
            explain: args.explain_cache,
            debug: crate::setup::debug_notes(args.debug),
            iidfile: args.iidfile.clone(),
            metadata_file: args.metadata_file.clone(),
            stdout_taken,
            warnings,
        })
    }

    /// Runs the build.
    pub(crate) async fn run(mut self, cli: &Cli) -> Result<ExitCode, CliError> {
        if let Some(path) = &self.iidfile {
            crate::results::remove_old(path)?;
        }
        // Kept until the build ends: a context from standard input lives in its directory.
        let _inputs = load_inputs(&mut self.request, &self.source, self.file.as_deref()).await?;
        let engine = std::sync::Arc::new(open_engine(cli).await?);
        // Another `kiln build` on this state directory joins this engine meanwhile.
        let host = crate::serve::Host::start(engine.clone(), &cli.root);
        let display = Display::new(self.style, self.explain);
        for warning in &self.warnings {
            display.warn(warning);
        }
        let result = engine.build(&self.request, display.clone()).await;
        display.finish();
        if let Some(host) = host {
            host.finish().await;
        }
        let outcome = result.map_err(|e| CliError::Build(Box::new(e), Some(display.clone())))?;
        crate::disk::report_gc(&outcome.gc, self.debug, |w| display.warn(w));
        self.report(
            &display,
            &outcome.warnings,
            &outcome.unused_build_args,
            outcome.image.as_ref(),
        )
    }

    /// What a successful build leaves: its warnings, `--iidfile`, `--metadata-file`, the image ID.
    pub(crate) fn report(
        &self,
        display: &Display,
        warnings: &[String],
        unused_build_args: &[String],
        image: Option<&engine::ExportedImage>,
    ) -> Result<ExitCode, CliError> {
        for warning in warnings {
            display.warn(warning);
        }
        if !unused_build_args.is_empty() {
            display.warn(&format!(
                "one or more build-args [{}] were not consumed",
                unused_build_args.join(" ")
            ));
        }
        crate::results::write(self.iidfile.as_deref(), self.metadata_file.as_deref(), image)?;
        if self.print_id && !self.stdout_taken {
            println!("{}", crate::results::image_id(image));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The display style for `--progress` and `-q`, and whether to print the image ID, as buildx
/// decides them.
fn progress_style(mode: ProgressMode, quiet: bool) -> Result<(Style, bool), CliError> {
    if quiet && !matches!(mode, ProgressMode::Auto | ProgressMode::Quiet) {
        let name = clap::ValueEnum::to_possible_value(&mode).map(|v| v.get_name().to_string());
        return Err(CliError::Usage(format!(
            "progress={} and quiet cannot be used together",
            name.unwrap_or_default()
        )));
    }
    Ok(match mode {
        _ if quiet => (Style::Quiet, true),
        ProgressMode::Quiet => (Style::Quiet, true),
        ProgressMode::None => (Style::Quiet, false),
        ProgressMode::Auto => (Style::auto(), false),
        ProgressMode::Tty => (Style::Tty, false),
        ProgressMode::Plain => (Style::Plain, false),
        ProgressMode::Rawjson => (Style::RawJson, false),
        ProgressMode::Json => (Style::Json, false),
    })
}

/// Reads the context and Dockerfile `source` and `file` name into `request` (on the blocking
/// pool: standard input may be read and an archive unpacked), and unpacks the OCI layout
/// tarballs of `--build-context NAME=oci-layout://FILE`. The returned inputs must live as long
/// as the build.
pub(crate) async fn load_inputs(
    request: &mut BuildRequest,
    source: &Source,
    file: Option<&str>,
) -> Result<(context::Inputs, Vec<tempfile::TempDir>), CliError> {
    let (source, file) = (source.clone(), file.map(str::to_string));
    let contexts = request.named_contexts.clone();
    let (inputs, layouts) = tokio::task::spawn_blocking(move || {
        let inputs = context::load(&source, file.as_deref())?;
        let mut layouts = Vec::new();
        let mut unpacked = BTreeMap::new();
        for (name, value) in &contexts {
            if let Some((value, temp)) = context::unpack_layout(value)? {
                unpacked.insert(name.clone(), value);
                layouts.push(temp);
            }
        }
        Ok::<_, CliError>((inputs, (layouts, unpacked)))
    })
    .await
    .map_err(|e| CliError::failed("reading the build context stopped", e))??;
    let (temps, unpacked) = layouts;
    request.named_contexts.extend(unpacked);
    request.context = inputs.context.clone();
    request.dockerfile = inputs.dockerfile.clone();
    request.dockerfile_text = inputs.dockerfile_text.clone();
    request.git_context = inputs.git.clone();
    Ok((inputs, temps))
}

/// The engine request for the flags `build` and `debug llb` share, without the context and
/// Dockerfile (see [`load_inputs`]).
pub(crate) fn compile_request(args: &CompileArgs) -> Result<BuildRequest, CliError> {
    check_platforms(&args.platform)?;
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some(("", _)) => {
                return Err(CliError::Usage(format!(
                    "invalid --build-arg {arg:?}: the name before = is empty"
                )));
            }
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None if arg.is_empty() => {
                return Err(CliError::Usage(
                    "invalid --build-arg \"\": expected KEY[=VALUE]".into(),
                ));
            }
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    // As buildx does: the client's SOURCE_DATE_EPOCH is a build arg unless one was given.
    if !build_args.contains_key("SOURCE_DATE_EPOCH")
        && let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        && !epoch.is_empty()
    {
        build_args.insert("SOURCE_DATE_EPOCH".into(), epoch);
    }
    if let Some(epoch) = build_args.get("SOURCE_DATE_EPOCH")
        && !epoch.trim().parse::<i64>().is_ok_and(|n| n >= 0)
    {
        return Err(CliError::Usage(format!(
            "invalid SOURCE_DATE_EPOCH {epoch:?}: it must be a number of seconds since 1970-01-01"
        )));
    }
    let mut named_contexts = BTreeMap::new();
    for spec in &args.build_contexts {
        let (name, value) = spec
            .split_once('=')
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .ok_or_else(|| {
                CliError::Usage(format!("invalid --build-context {spec:?}: expected NAME=VALUE"))
            })?;
        named_contexts.insert(name.to_string(), value.to_string());
    }
    Ok(BuildRequest {
        target: args.target.clone(),
        build_args,
        named_contexts,
        ..BuildRequest::default()
    })
}

/// `--platform` (or `$DOCKER_DEFAULT_PLATFORM`): kiln builds for linux/amd64 only.
fn check_platforms(given: &[String]) -> Result<(), CliError> {
    let from_env = std::env::var("DOCKER_DEFAULT_PLATFORM")
        .ok()
        .filter(|v| !v.is_empty());
    let values: Vec<String> = if given.is_empty() {
        from_env
            .into_iter()
            .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect()
    } else {
        given.to_vec()
    };
    let mut platforms = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let platform = normalize_platform(value).ok_or_else(|| {
            CliError::Usage(format!(
                "invalid --platform {value:?}: expected OS/ARCH[/VARIANT]"
            ))
        })?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    let kiln = oci::Platform::linux_amd64();
    match platforms.as_slice() {
        [] => Ok(()),
        [one] if one.matches(&kiln) && one.variant.is_none() => Ok(()),
        [one] => Err(CliError::Usage(format!(
            "--platform={one} is not supported yet: kiln builds for {kiln} only"
        ))),
        many => Err(CliError::Usage(format!(
            "multi-platform builds (--platform={}) are not supported yet: kiln builds for {kiln} only",
            many.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        ))),
    }
}

/// A platform as containerd's `platforms.Parse` reads it: `local` is the host, a lone
/// architecture or OS is completed with the host's, and common aliases are normalized.
fn normalize_platform(value: &str) -> Option<oci::Platform> {
    let host = oci::Platform::host();
    if value == "local" {
        return Some(host);
    }
    let mut platform = if value.contains('/') {
        oci::Platform::parse(value)?
    } else if value.eq_ignore_ascii_case("linux") {
        host
    } else {
        oci::Platform::parse(&format!("linux/{value}"))?
    };
    platform.architecture = match platform.architecture.as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        "i386" | "i686" => "386".into(),
        other => other.to_string(),
    };
    if platform.architecture == "amd64" && platform.variant.as_deref() == Some("v1") {
        platform.variant = None;
    }
    Some(platform)
}

/// The flags that shape RUN steps and the session: secrets, ssh, entitlements, network, hosts,
/// limits, labels, cache.
fn run_options(request: &mut BuildRequest, args: &BuildArgs) -> Result<(), CliError> {
    request.no_cache = args.no_cache;
    request.no_cache_filter = args.no_cache_filter.iter().cloned().collect();
    request.cache_from = args
        .cache_from
        .iter()
        .map(|spec| crate::cache_specs::parse_cache_from(spec))
        .collect::<Result<_, _>>()
        .map_err(CliError::Usage)?;
    request.cache_to = args
        .cache_to
        .iter()
        .map(|spec| crate::cache_specs::parse_cache_to(spec))
        .collect::<Result<_, _>>()
        .map_err(CliError::Usage)?;
    request.secrets = crate::session::secrets(&args.secrets).map_err(CliError::Usage)?;
    request.ssh = crate::session::ssh(&args.ssh).map_err(CliError::Usage)?;
    request.entitlements = args.allow.iter().copied().collect();
    request.extra_hosts = args.add_hosts.clone();
    request.ulimits = args.ulimits.clone();
    request.labels = args.labels.iter().cloned().collect();
    request.shm_size = match args.shm_size {
        None => 0,
        Some(size) => {
            i64::try_from(size).map_err(|_| CliError::Usage(format!("--shm-size {size} is too large")))?
        }
    };
    request.default_network = match args.network {
        BuildNetwork::Default => llb::pb::NetMode::Unset,
        BuildNetwork::None => llb::pb::NetMode::None,
        // As buildx does, asking for the host network on the command line grants it.
        BuildNetwork::Host => {
            request.entitlements.insert(engine::Entitlement::NetworkHost);
            llb::pb::NetMode::Host
        }
    };
    Ok(())
}

/// The `--output`s, with `--push` as buildx's shorthand for a registry output (unless one was
/// given already).
fn outputs(args: &BuildArgs) -> Result<Vec<OutputSpec>, CliError> {
    let mut outputs = Vec::new();
    for spec in &args.outputs {
        let output =
            parse_output(spec, &args.tags).map_err(|e| CliError::Usage(format!("--output {spec}: {e}")))?;
        outputs.extend(output);
    }
    if args.push && !outputs.iter().any(|o| matches!(o, OutputSpec::Registry { .. })) {
        let output =
            parse_output("type=registry", &args.tags).map_err(|e| CliError::Usage(format!("--push: {e}")))?;
        outputs.extend(output);
    }
    if args.load == Some(true) && !outputs.iter().any(|o| matches!(o, OutputSpec::Docker { .. })) {
        let output =
            parse_output("type=docker", &args.tags).map_err(|e| CliError::Usage(format!("--load: {e}")))?;
        outputs.extend(output);
    }
    if outputs.iter().filter(|o| writes_to_stdout(o)).count() > 1 {
        return Err(CliError::Usage(
            "multiple outputs configured to write to stdout".into(),
        ));
    }
    Ok(outputs)
}

/// Whether an output writes to standard output.
fn writes_to_stdout(output: &OutputSpec) -> bool {
    matches!(
        output,
        OutputSpec::Tar {
            dest: Destination::Stdout
        } | OutputSpec::Oci {
            dest: Destination::Stdout,
            ..
        } | OutputSpec::Docker {
            dest: Destination::Stdout,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_normalized() {
        assert!(check_platforms(&["linux/amd64".into()]).is_ok());
        assert!(check_platforms(&["linux/x86_64".into(), "amd64".into()]).is_ok());
        let err = |p: &[&str]| match check_platforms(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()) {
            Err(CliError::Usage(m)) => m,
            _ => panic!("{p:?} accepted"),
        };
        assert!(err(&["linux/arm64"]).contains("--platform=linux/arm64 is not supported yet"));
        assert!(err(&["linux/amd64", "linux/arm64"]).contains("multi-platform builds"));
        assert!(err(&["a/b/c/d"]).contains("invalid --platform"));
    }

    #[test]
    fn quiet_goes_with_auto_and_quiet_progress_only() {
        assert!(matches!(
            progress_style(ProgressMode::Auto, true),
            Ok((Style::Quiet, true))
        ));
        assert!(matches!(
            progress_style(ProgressMode::Quiet, false),
            Ok((Style::Quiet, true))
        ));
        assert!(matches!(
            progress_style(ProgressMode::None, false),
            Ok((Style::Quiet, false))
        ));
        assert!(matches!(
            progress_style(ProgressMode::Rawjson, false),
            Ok((Style::RawJson, false))
        ));
        match progress_style(ProgressMode::Plain, true) {
            Err(CliError::Usage(m)) => assert_eq!(m, "progress=plain and quiet cannot be used together"),
            _ => panic!("plain and quiet accepted"),
        }
    }
}
