//! `kiln build` through a daemon: the request, the routing over a fleet (consistent hashing of
//! the project's stable key, failing over along the ring when a daemon cannot be reached), the
//! client's half of the session (its directories, listed after `.dockerignore` and sent only as
//! far as the daemon asks; secret values and registry credentials on request; outputs written
//! here as their bytes arrive) and the same report as a build in this process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use api::pb::{self, client_message};
use api::{Address, Ring};
use engine::BuildRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::build::Plan;
use crate::progress::Display;
use crate::remote::{Remote, status_text};
use crate::remote_session::Local;
use crate::render::CliError;

/// Runs the build of `plan` on a daemon of `remote`.
pub(crate) async fn run(mut plan: Plan, remote: Remote) -> Result<ExitCode, CliError> {
    if let Some(path) = &plan.iidfile {
        crate::results::remove_old(path)?;
    }
    let _inputs = crate::build::load_inputs(&mut plan.request, &plan.source, plan.file.as_deref()).await?;
    let _agents = start_key_agents(&mut plan.request).await?;
    let request = plan.request.clone();
    let (start, locals) = tokio::task::spawn_blocking(move || prepare(&request))
        .await
        .map_err(|e| CliError::failed("reading the build context stopped", e))??;
    let display = Display::new(plan.style, plan.explain);
    for warning in &plan.warnings {
        display.warn(warning);
    }
    let key = routing_key(&plan.request);
    let ring = Ring::new(&remote.addresses);
    let route = ring.route(&key);
    let mut tried = Vec::new();
    let mut session = None;
    for address in route {
        if remote.addresses.len() > 1 {
            eprintln!("kiln: building on {address}");
        }
        match open(&remote, address, &start, &file_outputs(&plan.request)).await {
            Ok(opened) => {
                session = Some((address.clone(), opened));
                break;
            }
            Err(OpenError::Unreachable(why)) => {
                eprintln!("kiln: daemon {address} is unreachable ({why}); trying the next one");
                tried.push(format!("{address}: {why}"));
            }
            Err(OpenError::Refused(status)) => return Err(crate::remote::call_failed(address, status)),
        }
    }
    // `_connection` keeps the connection open until the session ends.
    let Some((address, (tx, inbound, _connection, handed))) = session else {
        return Err(CliError::Failed(anyhow::anyhow!(
            "no daemon could be reached: {}",
            tried.join("; ")
        )));
    };
    let listed: usize = locals.iter().map(|l| l.listing.entries.len()).sum();
    let listing_bytes: usize = locals.iter().map(|l| l.listing.wire_size()).sum();
    let mut client = crate::remote_session::Client::new(&plan.request, display.clone(), tx);
    if let (Some(socket), false) = (handed.0, handed.1.is_empty()) {
        client.hand_over(&socket, &handed.1)?;
    }
    let outcome = client.serve(&address, inbound, locals).await;
    display.finish();
    let outcome = outcome?;
    if let Some(f) = outcome.failure {
        return Err(CliError::Remote(
            Box::new(crate::remote_wire::failure(f)),
            Some(display),
        ));
    }
    if crate::setup::debug_notes(plan.debug) {
        eprintln!(
            "kiln: context transfer: listing of {listed} entries ({}), {} files ({}) (build {} on {address})",
            engine::human_size(listing_bytes as u64),
            outcome.files_sent,
            engine::human_size(outcome.bytes_sent),
            outcome.build_id
        );
    }
    let image = outcome
        .image
        .map(crate::remote_wire::exported_image)
        .transpose()?;
    plan.report(
        &display,
        &outcome.warnings,
        &outcome.unused_build_args,
        image.as_ref(),
    )
}

/// The `ssh-agent`s serving `--ssh ID=KEY…` through a daemon, and their sockets' directory.
struct KeyAgents {
    _agents: Vec<tokio::process::Child>,
    _dir: tempfile::TempDir,
}

/// `--ssh ID=KEY…` through a daemon: the keys stay on this machine, in an `ssh-agent` this
/// process starts for the build (its socket in a directory only this user can enter); the
/// daemon tunnels the steps' connections to it as to any other agent of the client.
async fn start_key_agents(request: &mut BuildRequest) -> Result<Option<KeyAgents>, CliError> {
    let keyed: Vec<(String, Vec<PathBuf>)> = request
        .ssh
        .iter()
        .filter_map(|(id, source)| match source {
            engine::SshSource::Keys(keys) => Some((id.clone(), keys.clone())),
            engine::SshSource::Socket(_) => None,
        })
        .collect();
    if keyed.is_empty() {
        return Ok(None);
    }
    let dir = tempfile::Builder::new()
        .prefix("kiln-ssh-")
        .tempdir()
        .map_err(|e| CliError::failed("failed to make a directory for the ssh agents", e))?;
    let mut agents = Vec::new();
    for (n, (id, keys)) in keyed.into_iter().enumerate() {
        let socket = dir.path().join(format!("agent-{n}.sock"));
        let agent = engine::start_key_agent(&socket, &keys)
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("--ssh {id}: {e}")))?;
        agents.push(agent);
        request.ssh.insert(id, engine::SshSource::Socket(socket));
    }
    Ok(Some(KeyAgents {
        _agents: agents,
        _dir: dir,
    }))
}

/// The request as the daemon takes it, and the directories to send.
fn prepare(request: &BuildRequest) -> Result<(pb::BuildStart, Vec<Local>), CliError> {
    let mut cache_dirs = crate::remote_wire::CacheDirs::default();
    let mut start = pb::BuildStart {
        client_id: client_id()?,
        target: request.target.clone(),
        build_args: request.build_args.clone(),
        no_cache: request.no_cache,
        no_cache_filter: request.no_cache_filter.iter().cloned().collect(),
        secrets: request.secrets.keys().cloned().collect(),
        ssh: request.ssh.keys().cloned().collect(),
        entitlements: request
            .entitlements
            .iter()
            .map(|e| e.name().to_string())
            .collect(),
        extra_hosts: request
            .extra_hosts
            .iter()
            .map(|(host, ip)| pb::HostIp {
                host: host.clone(),
                ip: ip.to_string(),
            })
            .collect(),
        default_network: request.default_network as i32,
        ulimits: request
            .ulimits
            .iter()
            .map(|u| pb::Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        shm_size: request.shm_size,
        labels: request.labels.clone(),
        outputs: request.outputs.iter().map(crate::remote_wire::output).collect(),
        cache_from: request
            .cache_from
            .iter()
            .map(|b| crate::remote_wire::backend(b, &mut cache_dirs))
            .collect::<Result<_, _>>()
            .map_err(CliError::Usage)?,
        cache_to: request
            .cache_to
            .iter()
            .map(|e| crate::remote_wire::export(e, &mut cache_dirs))
            .collect::<Result<_, _>>()
            .map_err(CliError::Usage)?,
        ..pb::BuildStart::default()
    };
    let mut locals = Vec::new();
    if let Some(git) = &request.git_context {
        start.git_context = git.identifier();
        start.dockerfile_name = request
            .dockerfile
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
    } else {
        let dockerfile = request
            .dockerfile
            .clone()
            .unwrap_or_else(|| request.context.join("Dockerfile"));
        start.dockerfile_text = match &request.dockerfile_text {
            Some(text) => text.clone(),
            None => std::fs::read_to_string(&dockerfile)
                .map_err(|e| CliError::failed(format!("failed to read {}", dockerfile.display()), e))?,
        };
        start.dockerfile_name = dockerfile
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into());
        let specific = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
        let ignore = if request.dockerfile_text.is_none() && specific.is_file() {
            specific
        } else {
            request.context.join(".dockerignore")
        };
        start.context_excludes = ignore_patterns(&ignore)?;
        locals.push(list(api::CONTEXT, &request.context, &start.context_excludes)?);
    }
    named_contexts(request, &mut start, &mut locals)?;
    cache_locals(&cache_dirs, &mut locals)?;
    start.locals = locals
        .iter()
        .map(|l| pb::LocalDir {
            name: l.name.clone(),
            path: l.path.display().to_string(),
        })
        .collect();
    start.context_display = locals
        .iter()
        .find(|l| l.name == api::CONTEXT)
        .map(|l| l.path.display().to_string())
        .unwrap_or_default();
    Ok((start, locals))
}

/// `--build-context` values: images named as they are, directories (and OCI layouts' directories)
/// among the local directories to send.
fn named_contexts(
    request: &BuildRequest,
    start: &mut pb::BuildStart,
    locals: &mut Vec<Local>,
) -> Result<(), CliError> {
    for (name, value) in &request.named_contexts {
        if value.starts_with("docker-image://") {
            start.named_images.insert(name.clone(), value.clone());
        } else if let Some(layout) = value.strip_prefix("oci-layout://") {
            // The layout directory travels as a local directory; the daemon puts its copy's
            // path back in front of the tag or digest.
            let (dir, pick) = engine::split_layout_context(layout)
                .map_err(|e| CliError::Usage(format!("invalid build context {name}={value}: {e}")))?;
            if !dir.join("index.json").is_file() {
                return Err(CliError::Usage(format!(
                    "invalid build context {name}={value}: {} is no OCI image layout (no index.json)",
                    dir.display()
                )));
            }
            start
                .named_images
                .insert(name.clone(), format!("oci-layout://{pick}"));
            locals.push(list(&api::layout_local(name), &dir, &[])?);
        } else if value.contains("://") {
            return Err(CliError::Usage(format!(
                "--build-context {name}={value} is not supported through a daemon yet: use a directory, docker-image://REF or oci-layout://DIR"
            )));
        } else {
            let dir = PathBuf::from(value);
            let excludes = ignore_patterns(&dir.join(".dockerignore"))?;
            locals.push(list(
                &format!("named-{}", name.to_ascii_lowercase()),
                &dir,
                &excludes,
            )?);
        }
    }
    Ok(())
}

/// The directories of `type=local` caches, as `cache-N`.
fn cache_locals(cache_dirs: &crate::remote_wire::CacheDirs, locals: &mut Vec<Local>) -> Result<(), CliError> {
    for (index, dir) in cache_dirs.0.iter().enumerate() {
        let name = format!("cache-{index}");
        // A cache directory that does not exist yet is sent empty: an import finds no cache
        // there (a warning), an export's files come back and create it.
        locals.push(if dir.exists() {
            list(&name, dir, &[])?
        } else {
            Local {
                name,
                path: dir.clone(),
                listing: api::walk::Listing::default(),
            }
        });
    }
    Ok(())
}

fn ignore_patterns(path: &Path) -> Result<Vec<String>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => dockerfile::dockerignore::parse(&text)
            .map_err(|e| CliError::failed(format!("invalid {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CliError::failed(format!("failed to read {}", path.display()), e)),
    }
}

fn list(name: &str, dir: &Path, excludes: &[String]) -> Result<Local, CliError> {
    let path = std::fs::canonicalize(dir)
        .map_err(|e| CliError::failed(format!("build context {}", dir.display()), e))?;
    let listing = api::walk::list(&path, excludes)
        .map_err(|e| CliError::failed(format!("build context {}", dir.display()), e))?;
    Ok(Local {
        name: name.to_string(),
        path,
        listing,
    })
}

/// This client's id, kept in `~/.kiln/client-id` (mode 0600): the daemon keeps one copy of each
/// directory per client id and path, so the next build sends only what changed. The id is a
/// secret (128 random bits): whoever presents it gets that copy. Without a home directory to
/// keep it in, each process gets a new one (nothing is reused, nothing shared).
fn client_id() -> Result<String, CliError> {
    let fresh = random_hex()?;
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Ok(fresh);
    };
    let path = home.join(".kiln").join("client-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && id.trim().len() >= 32
    {
        return Ok(id.trim().to_string());
    }
    let written = std::fs::create_dir_all(home.join(".kiln")).and_then(|()| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?
            .write_all(fresh.as_bytes())
    });
    if written.is_err() && crate::setup::debug_notes(false) {
        eprintln!(
            "kiln: cannot keep a client id in {}: every build sends its whole context",
            path.display()
        );
    }
    Ok(fresh)
}

/// 128 random bits in hex.
fn random_hex() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::failed("failed to read /dev/urandom", e))?;
    Ok(hex(&bytes))
}

/// The outputs written to a file (or standard output) on this side: those a daemon on this
/// machine can write into directly.
fn file_outputs(request: &BuildRequest) -> Vec<usize> {
    use crate::remote_wire::Target;
    (request.outputs.iter().enumerate())
        .filter(|(_, o)| {
            matches!(
                crate::remote_wire::target(o),
                Some(Target::File(_) | Target::Stdout)
            )
        })
        .map(|(index, _)| index)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stable key that routes a project to its daemon: the git remote of the repository holding
/// the context and the context's path inside it (else the context's absolute path), and the
/// Dockerfile's path inside the context.
pub(crate) fn routing_key(request: &BuildRequest) -> String {
    if let Some(git) = &request.git_context {
        return format!("{}|{}", git.identifier(), display(request.dockerfile.as_deref()));
    }
    let context = std::fs::canonicalize(&request.context).unwrap_or_else(|_| request.context.clone());
    let dockerfile = request
        .dockerfile
        .as_ref()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .map(|d| d.strip_prefix(&context).map(Path::to_path_buf).unwrap_or(d))
        .unwrap_or_else(|| PathBuf::from("Dockerfile"));
    let project = match git_remote(&context) {
        Some((root, remote)) => format!(
            "{remote}|{}",
            context.strip_prefix(&root).unwrap_or(Path::new("")).display()
        ),
        None => context.display().to_string(),
    };
    format!("{project}|{}", dockerfile.display())
}

fn display(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

/// The repository holding `dir` and its `origin` remote (else its first remote).
fn git_remote(dir: &Path) -> Option<(PathBuf, String)> {
    let root = dir.ancestors().find(|d| d.join(".git").exists())?;
    let config = std::fs::read_to_string(root.join(".git").join("config")).ok()?;
    let mut remotes = Vec::new();
    let mut section = String::new();
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some(url) = line
            .strip_prefix("url")
            .map(str::trim)
            .and_then(|l| l.strip_prefix('='))
            && section.starts_with("[remote ")
        {
            remotes.push((section.contains("\"origin\""), url.trim().to_string()));
        }
    }
    remotes.sort_by_key(|(origin, _)| !origin);
    Some((root.to_path_buf(), remotes.into_iter().next()?.1))
}

/// Why a build stream could not be opened.
enum OpenError {
    /// The daemon could not be reached: the next on the ring is tried.
    Unreachable(String),
    /// The daemon refused the request.
    Refused(tonic::Status),
}

/// An open build stream: what to send on, what arrives, the client whose connection carries
/// them (dropping it closes the connection, mid-build), and the outputs whose files go to the
/// daemon directly (its socket for them, and each output's index and token).
type Opened = (
    mpsc::Sender<pb::ClientMessage>,
    tonic::Streaming<pb::ServerMessage>,
    pb::control_client::ControlClient<tonic::transport::Channel>,
    (Option<PathBuf>, Vec<(usize, String)>),
);

/// Opens a build stream on `address`, sending `start`. A daemon on this machine (a unix
/// socket with its `.fds` socket beside it) gets the files of outputs written to files or
/// standard output handed over, with a token each.
async fn open(
    remote: &Remote,
    address: &Address,
    start: &pb::BuildStart,
    files: &[usize],
) -> Result<Opened, OpenError> {
    let mut client = remote
        .client(address)
        .map_err(|e| OpenError::Unreachable(crate::render::text(&e)))?;
    let (tx, rx) = mpsc::channel(16);
    let mut start = start.clone();
    let mut handed = (None, Vec::new());
    if let Address::Unix(path) = address
        && api::fds::socket_of(path).exists()
    {
        for (index, output) in start.outputs.iter_mut().enumerate() {
            if output.fd_token.is_empty() && files.contains(&index) {
                output.fd_token =
                    random_hex().map_err(|e| OpenError::Unreachable(crate::render::text(&e)))?;
                handed.1.push((index, output.fd_token.clone()));
            }
        }
        handed.0 = Some(api::fds::socket_of(path));
    }
    let first = pb::ClientMessage {
        message: Some(client_message::Message::Start(start)),
    };
    tx.send(first)
        .await
        .map_err(|_| OpenError::Unreachable("the request stream closed".into()))?;
    match client.build(ReceiverStream::new(rx)).await {
        Ok(response) => Ok((tx, response.into_inner(), client, handed)),
        Err(status) if status.code() == tonic::Code::Unavailable => {
            Err(OpenError::Unreachable(status_text(&status)))
        }
        Err(status) => Err(OpenError::Refused(status)),
    }
}
