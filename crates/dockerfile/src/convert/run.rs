//! RUN: the command (shell, exec or heredoc form), `--mount` (parsed and validated as BuildKit
//! does, then lowered to exec mounts), `--network`, `--security`, and proxy variables.

use llb::{Exec, FileChain, MountKind, MountOptions, OpOptions, Output, pb};

use super::plan::Source;
use super::{Converter, StageState, clean_path, run_command_string, workdir_of};
use crate::error::{Error, ErrorKind, Location, suggest};
use crate::instructions::{CommandLine, RunArgs, Spanned};
use crate::parser::Heredoc;

/// The kinds of `RUN --mount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// One `--mount` flag, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountSpec {
    pub(crate) kind: MountType,
    pub(crate) from: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) readonly: bool,
    pub(crate) id: Option<String>,
    pub(crate) sharing: pb::CacheSharing,
    pub(crate) sharing_set: bool,
    pub(crate) required: bool,
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) size: Option<i64>,
    pub(crate) env: Option<String>,
}

/// Splits one CSV record the way Go's `encoding/csv` does: fields separated by commas, a field
/// may be double-quoted, `""` inside quotes is a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("failed to parse csv mounts: extraneous or missing \" in quoted-field".into());
    }
    fields.push(field);
    Ok(fields)
}

const MOUNT_KEYS: [&str; 18] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "ro",
    "rw",
    "readwrite",
    "size",
    "env",
];

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

/// Parses one `--mount` value. Values are expanded with `expand` (not `from`, which never is);
/// with no expander only the structure is checked (used to find `from=` stages early).
pub(crate) fn parse_mount(spec: &str, expand: Option<&Expander<'_>>) -> Result<MountSpec, String> {
    let mut m = MountSpec {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: true,
        id: None,
        sharing: pb::CacheSharing::Shared,
        sharing_set: false,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
    };
    let mut readonly_set = false;
    for field in csv_fields(spec)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    readonly_set = true;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    readonly_set = true;
                }
                "required" => {
                    if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        return Err(format!(
                            "unexpected key 'required' for mount type '{}'",
                            m.kind.name()
                        ));
                    }
                    m.required = true;
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        if key == "from" {
            if value.contains('$') {
                return Err("'from' doesn't support variable expansion, define alias stage instead".into());
            }
            m.from = Some(value);
            continue;
        }
        let value = match expand {
            Some(expand) => expand(&value)?,
            None => value,
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let hint = suggest(&value, ["bind", "cache", "tmpfs", "secret", "ssh"])
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                        return Err(format!("unsupported mount type {value:?}{hint}"));
                    }
                };
            }
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                readonly_set = true;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                readonly_set = true;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(format!(
                        "unexpected key 'required' for mount type '{}'",
                        m.kind.name()
                    ));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(format!(
                        "unexpected key 'size' for mount type '{}'",
                        m.kind.name()
                    ));
                }
                m.size = Some(
                    oci::units::ram_in_bytes(&value)
                        .and_then(|n| i64::try_from(n).ok())
                        .ok_or_else(|| format!("invalid value for size: {value}"))?,
                );
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = match value.to_ascii_lowercase().as_str() {
                    "shared" => pb::CacheSharing::Shared,
                    "private" => pb::CacheSharing::Private,
                    "locked" => pb::CacheSharing::Locked,
                    _ => {
                        let hint = suggest(&value, ["shared", "private", "locked"])
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                        return Err(format!("unsupported sharing value {value:?}{hint}"));
                    }
                };
                m.sharing_set = true;
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| format!("invalid value {value} for mode"))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                let hint = suggest(&key, MOUNT_KEYS)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!("unexpected key '{key}' in '{field}'{hint}"));
            }
        }
    }
    validate(&mut m, readonly_set)?;
    Ok(m)
}

fn validate(m: &mut MountSpec, readonly_set: bool) -> Result<(), String> {
    let file_info_allowed = matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache);
    if !file_info_allowed {
        for (set, name) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!("{name} not allowed for {:?} type mounts", m.kind.name()));
            }
        }
    }
    if !readonly_set {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.env.is_some() && m.kind != MountType::Secret {
        return Err(format!("unexpected key 'env' for mount type '{}'", m.kind.name()));
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing_set {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.kind == MountType::Ssh && m.source.is_some() {
        return Err("ssh mount does not support source".into());
    }
    if m.sharing_set && m.kind != MountType::Cache {
        return Err(format!("invalid cache sharing set for {} mount", m.kind.name()));
    }
    Ok(())
}

/// Expands a mount option value (the stage's variables).
pub(crate) type Expander<'a> = dyn Fn(&str) -> Result<String, String> + 'a;

/// What a RUN runs: its argv before the shell is added, a heredoc script to mount at
/// `/dev/pipes/`, and a summary of the heredoc for the step name.
type RunCommand = (Vec<String>, Option<Output>, Option<String>);

/// The last path component (BuildKit: `path.Base`).
fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// A one-line summary of a heredoc for step names: its first line, `...` if there are more.
fn summarize(doc: &str) -> String {
    let doc = doc.trim();
    let mut lines = doc.lines();
    let first = lines.next().unwrap_or("").to_string();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// Removes leading tabs from every line (`<<-`).
pub(crate) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

impl Converter<'_> {
    pub(super) fn dispatch_run(
        &mut self,
        stage: usize,
        index: usize,
        run: &RunArgs,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        let bad_flag = |message: String| Error::at(ErrorKind::BadFlag(message), location);
        let network = match run
            .network
            .as_deref()
            .map(|n| self.expand(n, state, location))
            .transpose()?
            .as_deref()
        {
            // The build's `--network` when the step does not choose, as BuildKit's
            // force-network-mode.
            None | Some("default") => self.options.default_network,
            Some("none") => pb::NetMode::None,
            Some("host") => pb::NetMode::Host,
            Some(other) => {
                return Err(bad_flag(format!(
                    "unsupported network mode {other:?}: expected default, none or host"
                )));
            }
        };
        let security = match run
            .security
            .as_deref()
            .map(|s| self.expand(s, state, location))
            .transpose()?
            .as_deref()
        {
            None | Some("sandbox") => pb::SecurityMode::Sandbox,
            Some("insecure") => pb::SecurityMode::Insecure,
            Some(other) => {
                return Err(bad_flag(format!(
                    "unsupported security mode {other:?}: expected sandbox or insecure"
                )));
            }
        };

        let (mut args, heredoc_mount, summary) = self.run_command(run, location)?;
        let mut display = self.display_text(&spanned.original, state);
        if let Some(summary) = summary {
            display = format!("{display} ({summary})");
        }
        if let CommandLine::Shell(_) = run.command {
            args = shell_wrap(state, args);
        }
        let mut env = state.env.clone();
        let mut meta = pb::Meta {
            args: args.clone(),
            env: Vec::new(),
            cwd: workdir_of(state),
            user: state.image.config.user.clone().unwrap_or_default(),
            proxy_env: self.proxy_env(state),
            // BuildKit's built-in arg for the hostname steps see (default `buildkitsandbox`).
            hostname: self
                .options
                .build_args
                .get("BUILDKIT_SANDBOX_HOSTNAME")
                .cloned()
                .unwrap_or_default(),
            extra_hosts: self.options.extra_hosts.clone(),
            ulimit: self.options.ulimits.clone(),
        };

        // Mounts: parse with the stage's environment, then lower.
        let mut mounts = Vec::with_capacity(run.mounts.len());
        for spec in &run.mounts {
            let expand = |word: &str| -> Result<String, String> {
                self.lexer
                    .process_word(word, &state.env)
                    .map_err(|e| e.to_string())
            };
            mounts.push(parse_mount(spec, Some(&expand)).map_err(bad_flag)?);
        }
        let mut masked_secrets: Vec<String> = Vec::new();
        let mut ssh_count = 0;
        let mut secret_envs = Vec::new();
        let mut lowered: Vec<(String, Option<Output>, MountOptions)> = Vec::new();
        let workdir = workdir_of(state);
        for (m_index, m) in mounts.iter().enumerate() {
            // A relative (or missing) target is relative to the working directory.
            let target = match (&m.target, m.kind) {
                (None, MountType::Secret | MountType::Ssh) => None,
                (t, _) => {
                    let t = t.clone().unwrap_or_default();
                    let joined = if t.starts_with('/') {
                        t
                    } else {
                        format!("{workdir}/{t}")
                    };
                    Some(clean_path(&joined))
                }
            };
            if target.as_deref() == Some("/") {
                return Err(bad_flag("invalid mount target \"/\"".into()));
            }
            match m.kind {
                MountType::Bind => {
                    let input = self.mount_source(stage, index, m_index, m)?;
                    let selector = clean_path(&format!("/{}", m.source.clone().unwrap_or_default()));
                    let options = MountOptions {
                        selector: if selector == "/" { String::new() } else { selector },
                        readonly: m.readonly,
                        output: false,
                        kind: MountKind::Bind,
                    };
                    lowered.push((target.unwrap_or_default(), input, options));
                }
                MountType::Cache => {
                    let target = target.unwrap_or_default();
                    let id =
                        m.id.clone()
                            .filter(|i| !i.is_empty())
                            .unwrap_or_else(|| target.clone());
                    // BuildKit's built-in arg that puts every cache id of a build in a namespace.
                    let id = match self.options.build_args.get("BUILDKIT_CACHE_MOUNT_NS") {
                        Some(ns) if !ns.is_empty() => format!("{ns}/{id}"),
                        _ => id,
                    };
                    let (input, selector) = if m.from.is_some() {
                        let input = self.mount_source(stage, index, m_index, m)?;
                        (
                            input,
                            clean_path(&format!("/{}", m.source.clone().unwrap_or_default())),
                        )
                    } else if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
                        // The cache directory is created with the requested owner and mode.
                        let owner = pb::ChownOpt {
                            user: Some(pb::UserOpt {
                                user: Some(pb::user_opt::User::ById(m.uid.unwrap_or(0))),
                            }),
                            group: Some(pb::UserOpt {
                                user: Some(pb::user_opt::User::ById(m.gid.unwrap_or(0))),
                            }),
                        };
                        let dir = FileChain::new(None)
                            .mkdir(pb::FileActionMkDir {
                                path: "/cache".into(),
                                mode: m.mode.unwrap_or(0o755) as i32,
                                make_parents: true,
                                owner: Some(owner),
                                timestamp: -1,
                            })
                            .finish(self.internal_options("preparing cache directory"));
                        (dir, "/cache".to_string())
                    } else {
                        (None, "/".to_string())
                    };
                    let options = MountOptions {
                        selector: if selector == "/" { String::new() } else { selector },
                        readonly: m.readonly,
                        output: false,
                        kind: MountKind::Cache(pb::CacheOpt {
                            id,
                            sharing: m.sharing as i32,
                        }),
                    };
                    lowered.push((target, input, options));
                }
                MountType::Tmpfs => {
                    let options = MountOptions {
                        kind: MountKind::Tmpfs(pb::TmpfsOpt {
                            size: m.size.unwrap_or(0),
                        }),
                        readonly: m.readonly,
                        ..MountOptions::default()
                    };
                    lowered.push((target.unwrap_or_default(), None, options));
                }
                MountType::Secret => {
                    let id =
                        m.id.clone()
                            .or_else(|| m.source.clone())
                            .or_else(|| m.target.as_deref().map(base_name))
                            .or_else(|| m.env.clone())
                            .unwrap_or_default();
                    if let Some(name) = &m.env {
                        secret_envs.push(pb::SecretEnv {
                            id: id.clone(),
                            name: name.clone(),
                            optional: !m.required,
                        });
                        masked_secrets.push(name.clone());
                    }
                    // With only env=, the secret is not a file.
                    if m.env.is_none() || m.target.is_some() {
                        let target = target.unwrap_or_else(|| format!("/run/secrets/{}", base_name(&id)));
                        let options = MountOptions {
                            kind: MountKind::Secret(pb::SecretOpt {
                                id,
                                uid: m.uid.unwrap_or(0),
                                gid: m.gid.unwrap_or(0),
                                mode: m.mode.unwrap_or(0o400),
                                optional: !m.required,
                            }),
                            readonly: true,
                            ..MountOptions::default()
                        };
                        lowered.push((target, None, options));
                    }
                }
                MountType::Ssh => {
                    let id =
                        m.id.clone()
                            .filter(|i| !i.is_empty())
                            .unwrap_or_else(|| "default".into());
                    let target = target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_count}"));
                    if ssh_count == 0 {
                        env.set("SSH_AUTH_SOCK", &target);
                    }
                    ssh_count += 1;
                    let options = MountOptions {
                        kind: MountKind::Ssh(pb::SshOpt {
                            id,
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                            mode: m.mode.unwrap_or(0o600),
                            optional: !m.required,
                        }),
                        readonly: true,
                        ..MountOptions::default()
                    };
                    lowered.push((target, None, options));
                }
            }
        }
        meta.env = env.to_strings();
        let mut exec = Exec::new(meta, network, security);
        exec.mount(
            "/",
            state.fs.as_ref(),
            MountOptions {
                output: true,
                ..Default::default()
            },
        );
        if let Some(pipe) = heredoc_mount {
            exec.mount(
                "/dev/pipes/",
                Some(&pipe),
                MountOptions {
                    readonly: true,
                    ..MountOptions::default()
                },
            );
        }
        // `--shm-size`: a /dev/shm of that size, as BuildKit mounts it (a tmpfs replacing the
        // runtime's), unless the step mounts something there itself.
        if self.options.shm_size > 0 && !lowered.iter().any(|(t, _, _)| t == "/dev/shm") {
            exec.mount(
                "/dev/shm",
                None,
                MountOptions {
                    kind: MountKind::Tmpfs(pb::TmpfsOpt {
                        size: self.options.shm_size,
                    }),
                    ..MountOptions::default()
                },
            );
        }
        for (target, input, options) in lowered {
            exec.mount(&target, input.as_ref(), options);
        }
        for secret in secret_envs {
            exec.secret_env(secret);
        }
        for name in &masked_secrets {
            display = mask_secret(&display, name);
        }
        let options = self.op_options(state, &display, Some(location));
        state.fs = exec.finish(options).into_iter().next();
        let history = format!("RUN {}", run_command_string(&args, &state.build_args, &state.env));
        self.layer_history(state, history);
        Ok(())
    }

    /// The filesystem a bind or cache mount takes from `from=` (default: the build context).
    fn mount_source(
        &mut self,
        stage: usize,
        index: usize,
        m_index: usize,
        m: &MountSpec,
    ) -> Result<Option<Output>, Error> {
        if m.from.is_none() {
            return Ok(if m.kind == MountType::Bind {
                Some(self.local(super::CONTEXT_NAME))
            } else {
                None
            });
        }
        let source = self
            .plan
            .refs
            .get(&(stage, index, m_index))
            .cloned()
            .unwrap_or(Source::Scratch);
        Ok(self.source_state(&source))
    }

    /// The argv of the RUN (before the shell is added), a heredoc file to mount at
    /// `/dev/pipes/` when the heredoc is a script with a shebang, and a summary of the heredoc
    /// for the step's name.
    fn run_command(&mut self, run: &RunArgs, location: Location) -> Result<RunCommand, Error> {
        match &run.command {
            CommandLine::Exec(args) => Ok((args.clone(), None, None)),
            CommandLine::Shell(line) if run.heredocs.is_empty() => Ok((vec![line.clone()], None, None)),
            CommandLine::Shell(line) => {
                let first: &Heredoc = &run.heredocs[0];
                let only_heredoc = run.heredocs.len() == 1
                    && crate::parser::heredoc_from_word(line.trim()).is_some_and(|h| h.name == first.name);
                if only_heredoc {
                    let data = if first.chomp {
                        chomp(&first.content)
                    } else {
                        first.content.clone()
                    };
                    let summary = Some(summarize(&first.content));
                    if data.starts_with("#!") {
                        // A script with an interpreter: run it as a file.
                        let file = FileChain::new(None)
                            .mkfile(pb::FileActionMkFile {
                                path: format!("/{}", first.name),
                                mode: 0o755,
                                data: data.into_bytes(),
                                owner: None,
                                timestamp: -1,
                            })
                            .finish(self.internal_options("preparing inline document"));
                        let Some(file) = file else {
                            return Err(Error::at(
                                ErrorKind::Expansion("empty heredoc file".into()),
                                location,
                            ));
                        };
                        return Ok((vec![format!("/dev/pipes/{}", first.name)], Some(file), summary));
                    }
                    return Ok((vec![data], None, summary));
                }
                // Several heredocs, or one fed to a command: hand the whole text to the shell.
                let mut full = line.clone();
                for doc in &run.heredocs {
                    full.push('\n');
                    full.push_str(&doc.content);
                    full.push_str(&doc.name);
                }
                Ok((vec![full], None, None))
            }
        }
    }

    /// Proxy variables given as build args reach every RUN without being declared, outside the
    /// cache key and the history (unless declared with ARG, which makes them ordinary args).
    fn proxy_env(&self, state: &StageState) -> Option<pb::ProxyEnv> {
        let mut proxy = pb::ProxyEnv::default();
        let mut any = false;
        for (key, value) in &self.options.build_args {
            if state.build_args.iter().any(|(k, _)| k == key) {
                continue;
            }
            let slot = match key.to_ascii_lowercase().as_str() {
                "http_proxy" => &mut proxy.http_proxy,
                "https_proxy" => &mut proxy.https_proxy,
                "ftp_proxy" => &mut proxy.ftp_proxy,
                "no_proxy" => &mut proxy.no_proxy,
                "all_proxy" => &mut proxy.all_proxy,
                _ => continue,
            };
            *slot = value.clone();
            any = true;
        }
        any.then_some(proxy)
    }

    pub(super) fn internal_options(&self, name: &str) -> OpOptions {
        OpOptions {
            description: Some(format!("[internal] {name}")),
            ignore_cache: self.options.no_cache,
            locations: Vec::new(),
            platform: Some(self.options.target_platform.clone()),
        }
    }
}

fn shell_wrap(state: &StageState, args: Vec<String>) -> Vec<String> {
    let mut shell = super::shell_of(state);
    shell.push(args.join(" "));
    shell
}

/// Hides the value of a secret exposed as `$NAME` in a step name (BuildKit shows `****`).
fn mask_secret(text: &str, name: &str) -> String {
    text.replace(&format!("${{{name}}}"), "****")
        .replace(&format!("${name}"), "****")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<MountSpec, String> {
        parse_mount(spec, Some(&|w: &str| Ok(w.to_string())))
    }

    #[test]
    fn defaults_follow_buildkit() {
        let m = parse("target=/x").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, true));
        let m = parse("type=cache,target=/c").unwrap();
        assert!(!m.readonly);
        let m = parse("type=cache,target=/c,ro").unwrap();
        assert!(m.readonly);
        let m = parse("type=secret,id=tok,required").unwrap();
        assert!(m.required && m.readonly);
        let m = parse("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 * 1024 * 1024));
        let m = parse(r#"type=bind,"source=a,b",target=/x"#).unwrap();
        assert_eq!(m.source.as_deref(), Some("a,b"));
    }

    #[test]
    fn errors_match_buildkit() {
        assert_eq!(
            parse("typ=cache").unwrap_err(),
            "unexpected key 'typ' in 'typ=cache' (did you mean type?)"
        );
        assert_eq!(
            parse("type=cahce,target=/x").unwrap_err(),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            parse("type=bind,target=/x,mode=0644").unwrap_err(),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            parse("type=cache,target=/x,mode=999").unwrap_err(),
            "invalid value 999 for mode"
        );
        assert_eq!(
            parse("type=secret,from=x,id=a").unwrap_err(),
            "secret mount should not have a from"
        );
        assert_eq!(
            parse("type=secret").unwrap_err(),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            parse("type=bind,target=/x,sharing=locked").unwrap_err(),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            parse("type=bind,target=/x,required").unwrap_err(),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            parse("from=$X,target=/x").unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert!(parse("bogus").unwrap_err().contains("must be a key=value pair"));
    }

    #[test]
    fn heredoc_helpers() {
        assert_eq!(chomp("\t\ta\n\tb\nc\n"), "a\nb\nc\n");
        assert_eq!(summarize("echo one\necho two\n"), "echo one...");
        assert_eq!(summarize("echo one\n"), "echo one");
        assert_eq!(
            mask_secret("RUN echo $TOKEN ${TOKEN}", "TOKEN"),
            "RUN echo **** ****"
        );
    }
}
