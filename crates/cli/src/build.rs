//! The commands: turning flags into engine requests and running them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use engine::{BuildRequest, Destination, Engine, EngineConfig, OutputSpec};

use crate::args::{BuildArgs, BuildNetwork, Cli, Command, CompileArgs, DebugCommand, ProgressMode};
use crate::progress::Display;
use crate::render::CliError;

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match &cli.command {
        Command::Build(args) => build(&cli, args).await,
        Command::Du(args) => crate::disk::du(&cli, args),
        Command::Prune(args) => crate::disk::prune(&cli, args),
        Command::Logs(args) => crate::logs::run(&cli, args),
        Command::Debug {
            command: DebugCommand::Parse { file },
        } => debug_parse(file),
        Command::Debug {
            command: DebugCommand::Check,
        } => crate::check::run(&cli),
        Command::Debug {
            command: DebugCommand::Llb(args),
        } => {
            let request = request(&args.compile)?;
            let definition = if args.offline {
                engine::compile_offline(&request)
                    .await
                    .map_err(|e| CliError::build(e, None))?
            } else {
                let engine = open_engine(&cli)?;
                let display = Display::new(ProgressMode::Plain, false, false);
                let result = engine.compile(&request, false, display.clone()).await;
                display.finish();
                result.map_err(|e| CliError::build(e, None))?
            };
            let graph = llb::Graph::load(&definition.pb).map_err(|e| CliError::Usage(e.to_string()))?;
            print!("{}", llb::dump(&graph));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn debug_parse(file: &PathBuf) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Usage(format!("failed to read {}: {e}", file.display())))?;
    let ast = dockerfile::parser::parse(&text);
    if let Some(d) = ast.first_error() {
        return Err(CliError::Usage(format!(
            "{}:{}: {}",
            file.display(),
            d.start_line,
            d.message
        )));
    }
    print!("{}", ast.dump());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn open_engine(cli: &Cli) -> Result<Engine, CliError> {
    let mut config = EngineConfig::new(&cli.root);
    config.runtime = cli.runtime.clone();
    config.gc_keep_storage = cli.gc_keep_storage;
    config.max_parallelism = cli.max_parallelism.map(|n| n as usize);
    config.default_network = match cli.oci_worker_net {
        crate::args::WorkerNet::None => engine::NetworkMode::None,
        crate::args::WorkerNet::Host => engine::NetworkMode::Host,
    };
    let root = cli.root.clone();
    Engine::open(&config, || {
        eprintln!("waiting for another kiln process to release {}", root.display());
    })
    .map_err(|e| {
        CliError::Setup(anyhow::Error::new(e).context(format!("state directory {}", cli.root.display())))
    })
}

/// Builds the engine request for the compile flags.
fn request(args: &CompileArgs) -> Result<BuildRequest, CliError> {
    if let Some(platform) = &args.platform {
        let host = "linux/amd64";
        if platform.split(',').any(|p| p.trim() != host) {
            return Err(CliError::Usage(format!(
                "--platform={platform} is not supported yet: kiln builds for {host} only"
            )));
        }
    }
    let mut build_args = BTreeMap::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.insert(arg.clone(), v);
                }
            }
        }
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
        context: args.context.clone(),
        dockerfile: args.file.clone(),
        target: args.target.clone(),
        build_args,
        no_cache: false,
        outputs: Vec::new(),
        named_contexts,
        ..BuildRequest::default()
    })
}

/// Parses one `--output` value the way buildx does.
pub(crate) fn parse_output(spec: &str, tags: &[String]) -> Result<Option<OutputSpec>, String> {
    if spec == "-" {
        return Ok(Some(OutputSpec::Tar {
            dest: Destination::Stdout,
        }));
    }
    if !spec.contains('=') {
        return Ok(Some(OutputSpec::Local {
            dest: PathBuf::from(spec),
        }));
    }
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid output option {part:?}: expected key=value"))?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let kind = fields.remove("type").unwrap_or_else(|| "local".into());
    let dest = fields.remove("dest");
    let to_dest = |dest: Option<String>, what: &str| -> Result<Destination, String> {
        match dest.as_deref() {
            None => Err(format!(
                "dest is required for {what} output (use dest=- for standard output)"
            )),
            Some("-") => Ok(Destination::Stdout),
            Some(path) => Ok(Destination::File(PathBuf::from(path))),
        }
    };
    let output = match kind.as_str() {
        "local" => {
            let dest = dest.ok_or("dest is required for local output")?;
            OutputSpec::Local {
                dest: PathBuf::from(dest),
            }
        }
        "tar" => OutputSpec::Tar {
            dest: to_dest(dest, "tar")?,
        },
        "oci" => {
            let name = fields.remove("name").or_else(|| tags.first().cloned());
            if let Some(tar) = fields.remove("tar")
                && tar != "true"
            {
                return Err(
                    "oci output with tar=false (an image layout directory) is not supported yet".into(),
                );
            }
            OutputSpec::Oci {
                dest: to_dest(dest, "oci")?,
                name,
            }
        }
        "cacheonly" => return Ok(None),
        "image" | "registry" => {
            let push = match fields.remove("push").as_deref() {
                None => kind == "registry",
                Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(format!("invalid push={other}: expected true or false")),
            };
            if !push {
                return Err(
                    "output type \"image\" without push=true is not supported yet: kiln has no local image store \
                     (add push=true, or use type=oci)"
                        .into(),
                );
            }
            let names = match fields.remove("name") {
                Some(name) => vec![name],
                None => tags.to_vec(),
            };
            if names.is_empty() {
                return Err(format!(
                    "{kind} output needs an image name: add name=NAME, or -t NAME"
                ));
            }
            OutputSpec::Registry { names }
        }
        "docker" => {
            if dest.is_none() {
                return Err(
                    "output type \"docker\" without dest (loading into a Docker daemon) is not supported yet: \
                     add dest=FILE (or dest=- to pipe into `docker load`)"
                        .into(),
                );
            }
            let names = match fields.remove("name") {
                Some(name) => vec![name],
                None => tags.to_vec(),
            };
            OutputSpec::Docker {
                dest: to_dest(dest, "docker")?,
                names,
            }
        }
        other => {
            return Err(format!(
                "unknown output type {other:?} (supported: local, tar, oci, docker, image, registry)"
            ));
        }
    };
    if let Some(key) = fields.keys().next() {
        return Err(format!("unknown option {key:?} for {kind} output"));
    }
    Ok(Some(output))
}

async fn build(cli: &Cli, args: &BuildArgs) -> Result<ExitCode, CliError> {
    let mut request = request(&args.compile)?;
    request.no_cache = args.no_cache;
    request.no_cache_filter = args.no_cache_filter.iter().cloned().collect();
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
    for spec in &args.outputs {
        if let Some(output) = parse_output(spec, &args.tags).map_err(CliError::Usage)? {
            request.outputs.push(output);
        }
    }
    // `--push` is buildx's shorthand for a registry output (unless one was given already).
    if args.push
        && !request
            .outputs
            .iter()
            .any(|o| matches!(o, OutputSpec::Registry { .. }))
    {
        let output = parse_output("type=registry", &args.tags).map_err(CliError::Usage)?;
        request.outputs.extend(output);
    }
    let stdout_outputs = request
        .outputs
        .iter()
        .filter(|o| {
            matches!(
                o,
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
        })
        .count();
    if stdout_outputs > 1 {
        return Err(CliError::Usage(
            "only one output can be written to standard output".into(),
        ));
    }
    // As buildx does: a failed build must not leave the previous build's image id behind.
    if let Some(path) = &args.iidfile {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "failed to remove the old --iidfile {}: {e}",
                    path.display()
                )));
            }
        }
    }
    let engine = open_engine(cli)?;
    let display = Display::new(args.progress, args.quiet, args.explain_cache);
    if args.outputs.is_empty() && !args.push {
        display.warn("No output specified: the build result will only remain in the build cache. Use --output to export it.");
    }
    let result = engine.build(&request, display.clone()).await;
    display.finish();
    match result {
        Ok(outcome) => {
            for warning in &outcome.warnings {
                eprintln!("WARNING: {warning}");
            }
            crate::disk::report_gc(&outcome.gc);
            if !outcome.unused_build_args.is_empty() {
                eprintln!(
                    "WARNING: one or more build-args [{}] were not consumed",
                    outcome.unused_build_args.join(" ")
                );
            }
            write_result_files(args, outcome.image.as_ref())?;
            // `--quiet` prints the image id, unless an output already took standard output.
            if args.quiet
                && stdout_outputs == 0
                && let Some(image) = &outcome.image
            {
                println!("{}", image.manifest.digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError::build(e, Some(display))),
    }
}

/// Writes `--iidfile` (the manifest digest) and `--metadata-file` (buildx's keys for the image)
/// after a successful build.
fn write_result_files(args: &BuildArgs, image: Option<&engine::ExportedImage>) -> Result<(), CliError> {
    let write = |path: &PathBuf, what: &str, bytes: Vec<u8>| {
        std::fs::write(path, bytes)
            .map_err(|e| CliError::Usage(format!("failed to write the {what} {}: {e}", path.display())))
    };
    if let Some(path) = &args.iidfile {
        let digest = image.map(|i| i.manifest.digest.to_string()).unwrap_or_default();
        write(path, "--iidfile", digest.into_bytes())?;
    }
    if let Some(path) = &args.metadata_file {
        let text = serde_json::to_vec_pretty(&metadata(image))
            .map_err(|e| CliError::Usage(format!("failed to encode the --metadata-file: {e}")))?;
        write(path, "--metadata-file", text)?;
    }
    Ok(())
}

/// The `--metadata-file` document: buildx's `containerimage.*` and `image.name` keys.
fn metadata(image: Option<&engine::ExportedImage>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    if let Some(image) = image {
        map.insert(
            "containerimage.config.digest".into(),
            image.config.to_string().into(),
        );
        map.insert(
            "containerimage.descriptor".into(),
            serde_json::to_value(&image.manifest).unwrap_or_default(),
        );
        map.insert(
            "containerimage.digest".into(),
            image.manifest.digest.to_string().into(),
        );
        if !image.names.is_empty() {
            map.insert("image.name".into(), image.names.join(",").into());
        }
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(
            parse_output("out", &[]).unwrap(),
            Some(OutputSpec::Local { dest: "out".into() })
        );
        assert_eq!(
            parse_output("-", &[]).unwrap(),
            Some(OutputSpec::Tar {
                dest: Destination::Stdout
            })
        );
        assert_eq!(
            parse_output("type=oci,dest=a.tar,name=x:1", &[]).unwrap(),
            Some(OutputSpec::Oci {
                dest: Destination::File("a.tar".into()),
                name: Some("x:1".into())
            })
        );
        assert_eq!(
            parse_output("type=oci,dest=a.tar", &["t:2".into()]).unwrap(),
            Some(OutputSpec::Oci {
                dest: Destination::File("a.tar".into()),
                name: Some("t:2".into())
            })
        );
        assert_eq!(parse_output("type=cacheonly", &[]).unwrap(), None);
        assert!(
            parse_output("type=oci", &[])
                .unwrap_err()
                .contains("dest is required")
        );
        assert!(
            parse_output("type=docker", &[])
                .unwrap_err()
                .contains("not supported yet")
        );
        assert_eq!(
            parse_output("type=docker,dest=x.tar", &["a:1".into(), "b:2".into()]).unwrap(),
            Some(OutputSpec::Docker {
                dest: Destination::File("x.tar".into()),
                names: vec!["a:1".into(), "b:2".into()]
            })
        );
        assert!(
            parse_output("type=image,name=r/a:1", &[])
                .unwrap_err()
                .contains("not supported yet")
        );
        assert_eq!(
            parse_output("type=image,name=r/a:1,push=true", &["t:2".into()]).unwrap(),
            Some(OutputSpec::Registry {
                names: vec!["r/a:1".into()]
            })
        );
        assert_eq!(
            parse_output("type=registry", &["t:2".into(), "t:3".into()]).unwrap(),
            Some(OutputSpec::Registry {
                names: vec!["t:2".into(), "t:3".into()]
            })
        );
        assert!(
            parse_output("type=registry", &[])
                .unwrap_err()
                .contains("needs an image name")
        );
        assert!(
            parse_output("type=local,dest=x,bogus=1", &[])
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            parse_output("type=weird", &[])
                .unwrap_err()
                .contains("unknown output type")
        );
    }
}
