//! RUN: the command (shell, exec or heredoc form), `--mount` (parsed by `mount`, then lowered
//! to exec mounts), `--network`, `--security`, and proxy variables.

use std::collections::BTreeMap;

use llb::{Exec, FileChain, MountKind, MountOptions, Output, pb};

use super::mount::{MountSpec, MountType, parse_mount};
use super::options::CONTEXT_NAME;
use super::paths::clean_path;
use super::plan::Source;
use super::state::{Converter, StageState, chomp, shell_of, workdir_of};
use super::vars::{Ordered, Vars};
use crate::error::{Error, ErrorKind, Location};
use crate::instructions::{CommandLine, RunArgs, Spanned};
use crate::parser::Heredoc;

/// What a RUN runs: its argv before the shell is added, a heredoc script to mount at
/// `/dev/pipes/`, and a summary of the heredoc for the step name.
type RunCommand = (Vec<String>, Option<Output>, Option<String>);

/// A mount lowered for the exec op: where, from what, how.
type LoweredMount = (String, Option<Output>, MountOptions);

/// The mounts of one RUN, lowered, and what they add to the step.
#[derive(Default)]
struct Lowered {
    mounts: Vec<LoweredMount>,
    secret_envs: Vec<pb::SecretEnv>,
    /// Names of secrets exposed as environment variables, hidden in the step name.
    masked: Vec<String>,
    /// The first ssh mount's socket, which the step gets as `SSH_AUTH_SOCK`.
    ssh_socket: Option<String>,
    ssh_count: usize,
}

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
        let network = self.run_network(run, state, location)?;
        let security = self.run_security(run, state, location)?;
        let (mut args, heredoc_mount, summary) = self.run_command(run, location)?;
        let mut display = self.display_text(&spanned.original, state, location)?;
        if let Some(summary) = summary {
            display = format!("{display} ({summary})");
        }
        if let CommandLine::Shell(_) = run.command {
            args = shell_wrap(state, args);
        }
        // Mounts: parse with the stage's environment, then lower.
        let mut mounts = Vec::with_capacity(run.mounts.len());
        for spec in &run.mounts {
            let expand = |word: &str| self.expand(word, state, location);
            mounts.push(parse_mount(spec, Some(&expand)).map_err(|e| e.at(location))?);
        }
        let lowered = self.lower_mounts(stage, index, &mounts, state, location)?;
        let meta = self.run_meta(&args, &lowered, state, location)?;
        let mut exec = Exec::new(meta, network, security);
        self.add_mounts(&mut exec, state, heredoc_mount, lowered.mounts);
        for secret in lowered.secret_envs {
            exec.secret_env(secret);
        }
        let display = mask_secrets(&display, &lowered.masked);
        let options = self.op_options(state, &display, location)?;
        state.fs = self.ops.made(exec.finish(options).into_iter().next());
        let history = format!("RUN {}", run_command_string(&args, &state.build_args, &state.env));
        self.layer_history(state, history, location)
    }

    /// `--network`; without it, the build's `--network` (BuildKit's force-network-mode).
    fn run_network(
        &self,
        run: &RunArgs,
        state: &StageState,
        location: Location,
    ) -> Result<pb::NetMode, Error> {
        let network = match &run.network {
            Some(n) => Some(self.expand(n, state, location)?),
            None => None,
        };
        Ok(match network.as_deref() {
            None | Some("default") => self.options.default_network,
            Some("none") => pb::NetMode::None,
            Some("host") => pb::NetMode::Host,
            Some(other) => {
                let message = format!("unsupported network mode {other:?}: expected default, none or host");
                return Err(Error::at(ErrorKind::BadFlag(message), location));
            }
        })
    }

    fn run_security(
        &self,
        run: &RunArgs,
        state: &StageState,
        location: Location,
    ) -> Result<pb::SecurityMode, Error> {
        let security = match &run.security {
            Some(s) => Some(self.expand(s, state, location)?),
            None => None,
        };
        Ok(match security.as_deref() {
            None | Some("sandbox") => pb::SecurityMode::Sandbox,
            Some("insecure") => pb::SecurityMode::Insecure,
            Some(other) => {
                let message = format!("unsupported security mode {other:?}: expected sandbox or insecure");
                return Err(Error::at(ErrorKind::BadFlag(message), location));
            }
        })
    }

    /// The process: arguments, environment (the stage's, plus `SSH_AUTH_SOCK` for an ssh
    /// mount), working directory, user, proxies, hostname, hosts and limits; counted against
    /// the budget, since every RUN carries the whole environment.
    fn run_meta(
        &self,
        args: &[String],
        lowered: &Lowered,
        state: &StageState,
        location: Location,
    ) -> Result<pb::Meta, Error> {
        let env = match &lowered.ssh_socket {
            Some(socket) => {
                let mut env = state.env.clone();
                env.set("SSH_AUTH_SOCK", socket.clone());
                env.to_strings()
            }
            None => state.env.to_strings(),
        };
        let meta = pb::Meta {
            args: args.to_vec(),
            env,
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
        let strings = meta.args.iter().chain(&meta.env).chain([&meta.cwd, &meta.user]);
        self.budget.texts(strings.map(String::as_str), location)?;
        Ok(meta)
    }

    /// The root, the heredoc script, `/dev/shm` and the step's own mounts, in that order.
    fn add_mounts(
        &self,
        exec: &mut Exec,
        state: &StageState,
        heredoc: Option<Output>,
        mounts: Vec<LoweredMount>,
    ) {
        let root = MountOptions {
            output: true,
            ..Default::default()
        };
        exec.mount("/", state.fs.as_ref(), root);
        if let Some(pipe) = heredoc {
            let options = MountOptions {
                readonly: true,
                ..MountOptions::default()
            };
            exec.mount("/dev/pipes/", Some(&pipe), options);
        }
        // `--shm-size`: a /dev/shm of that size, as BuildKit mounts it (a tmpfs replacing the
        // runtime's), unless the step mounts something there itself.
        if self.options.shm_size > 0 && !mounts.iter().any(|(t, _, _)| t == "/dev/shm") {
            let options = MountOptions {
                kind: MountKind::Tmpfs(pb::TmpfsOpt {
                    size: self.options.shm_size,
                }),
                ..MountOptions::default()
            };
            exec.mount("/dev/shm", None, options);
        }
        for (target, input, options) in mounts {
            exec.mount(&target, input.as_ref(), options);
        }
    }

    fn lower_mounts(
        &mut self,
        stage: usize,
        index: usize,
        mounts: &[MountSpec],
        state: &StageState,
        location: Location,
    ) -> Result<Lowered, Error> {
        let mut lowered = Lowered::default();
        let workdir = workdir_of(state);
        for (m_index, m) in mounts.iter().enumerate() {
            let target = mount_target(m, &workdir);
            if target.as_deref() == Some("/") {
                let message = "invalid mount target \"/\"".into();
                return Err(Error::at(ErrorKind::BadFlag(message), location));
            }
            match m.kind {
                MountType::Bind => {
                    let input = self.mount_source(stage, index, m_index, m)?;
                    let options = MountOptions {
                        selector: selector(m.source.as_deref()),
                        readonly: m.readonly,
                        output: false,
                        kind: MountKind::Bind,
                    };
                    lowered.mounts.push((target.unwrap_or_default(), input, options));
                }
                MountType::Cache => {
                    let mount = self.lower_cache(stage, index, m_index, m, target.unwrap_or_default())?;
                    lowered.mounts.push(mount);
                }
                MountType::Tmpfs => {
                    let options = MountOptions {
                        kind: MountKind::Tmpfs(pb::TmpfsOpt {
                            size: m.size.unwrap_or(0),
                        }),
                        readonly: m.readonly,
                        ..MountOptions::default()
                    };
                    lowered.mounts.push((target.unwrap_or_default(), None, options));
                }
                MountType::Secret => lower_secret(m, target, &mut lowered),
                MountType::Ssh => lower_ssh(m, target, &mut lowered),
            }
        }
        // Targets join the working directory, which can be long; each mount carries its own.
        let paths = lowered
            .mounts
            .iter()
            .flat_map(|(t, _, o)| [t.as_str(), o.selector.as_str()]);
        self.budget.texts(paths, location)?;
        Ok(lowered)
    }

    fn lower_cache(
        &mut self,
        stage: usize,
        index: usize,
        m_index: usize,
        m: &MountSpec,
        target: String,
    ) -> Result<LoweredMount, Error> {
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
            (input, selector(m.source.as_deref()))
        } else if m.mode.is_some() || m.uid.is_some() || m.gid.is_some() {
            // The cache directory is created with the requested owner and mode.
            let id = |n: Option<u32>| pb::UserOpt {
                user: Some(pb::user_opt::User::ById(n.unwrap_or(0))),
            };
            let owner = pb::ChownOpt {
                user: Some(id(m.uid)),
                group: Some(id(m.gid)),
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
            (None, String::new())
        };
        let options = MountOptions {
            selector,
            readonly: m.readonly,
            output: false,
            kind: MountKind::Cache(pb::CacheOpt {
                id,
                sharing: m.sharing as i32,
            }),
        };
        Ok((target, input, options))
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
                Some(self.local(CONTEXT_NAME))
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
                            let kind = ErrorKind::BadArguments {
                                instruction: "RUN".into(),
                                message: "made an empty heredoc file".into(),
                            };
                            return Err(Error::at(kind, location));
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
            if state.build_args.contains(key) {
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
}

/// Where a mount goes: a relative (or missing) target is relative to the working directory;
/// secrets and ssh sockets without a target get a default one later.
fn mount_target(m: &MountSpec, workdir: &str) -> Option<String> {
    match (&m.target, m.kind) {
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
    }
}

/// The part of the mounted filesystem a bind or cache mount shows: `source=`, cleaned; all of
/// it (the empty selector) for `/`.
fn selector(source: Option<&str>) -> String {
    let selector = clean_path(&format!("/{}", source.unwrap_or_default()));
    if selector == "/" { String::new() } else { selector }
}

fn lower_secret(m: &MountSpec, target: Option<String>, lowered: &mut Lowered) {
    let id =
        m.id.clone()
            .or_else(|| m.source.clone())
            .or_else(|| m.target.as_deref().map(base_name))
            .or_else(|| m.env.clone())
            .unwrap_or_default();
    if let Some(name) = &m.env {
        lowered.secret_envs.push(pb::SecretEnv {
            id: id.clone(),
            name: name.clone(),
            optional: !m.required,
        });
        lowered.masked.push(name.clone());
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
        lowered.mounts.push((target, None, options));
    }
}

fn lower_ssh(m: &MountSpec, target: Option<String>, lowered: &mut Lowered) {
    let id =
        m.id.clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "default".into());
    let target = target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{}", lowered.ssh_count));
    if lowered.ssh_count == 0 {
        lowered.ssh_socket = Some(target.clone());
    }
    lowered.ssh_count += 1;
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
    lowered.mounts.push((target, None, options));
}

fn shell_wrap(state: &StageState, args: Vec<String>) -> Vec<String> {
    let mut shell = shell_of(state);
    shell.push(args.join(" "));
    shell
}

/// `RUN |2 a=1 b=2 /bin/sh -c cmd`: the args in scope (their effective values, once each) then
/// the command, as BuildKit writes RUN history.
fn run_command_string(args: &[String], build_args: &Ordered<Option<String>>, env: &Vars) -> String {
    let mut parts = Vec::with_capacity(build_args.len() + 1 + args.len());
    if build_args.len() > 0 {
        parts.push(format!("|{}", build_args.len()));
        for (k, v) in build_args.iter() {
            let value = env.value(k).or(v.as_ref()).map_or("", String::as_str);
            parts.push(format!("{k}={value}"));
        }
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Hides the values of secrets exposed as `$NAME` in a step name: every `${NAME}` and `$NAME`
/// of a masked name becomes `****` (BuildKit's mask). It gives what replacing each name's
/// references in turn would (`${NAME}`, then `$NAME`, then the next name's), in one pass over
/// the text however many secrets there are: at each `$`, the first of those patterns, in that
/// order, that matches there wins. (Replacing in turn could differ only for names containing
/// `$` or `*`, which no variable name does.)
fn mask_secrets(text: &str, names: &[String]) -> String {
    if names.is_empty() {
        return text.to_string();
    }
    let trie = NameTrie::new(names);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match trie.first_match(after) {
            Some(len) => {
                out.push_str("****");
                rest = &after[len..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The masked names, for finding which of them a `$` starts.
struct NameTrie {
    /// Children of each node by character; node 0 is the root.
    children: Vec<BTreeMap<char, usize>>,
    /// The position in the name list of the name ending at each node (its first occurrence).
    rank: Vec<Option<usize>>,
}

impl NameTrie {
    fn new(names: &[String]) -> NameTrie {
        let mut trie = NameTrie {
            children: vec![BTreeMap::new()],
            rank: vec![None],
        };
        for (i, name) in names.iter().enumerate() {
            let mut node = 0;
            for c in name.chars() {
                node = match trie.children[node].get(&c) {
                    Some(&next) => next,
                    None => {
                        trie.children.push(BTreeMap::new());
                        trie.rank.push(None);
                        let next = trie.children.len() - 1;
                        trie.children[node].insert(c, next);
                        next
                    }
                };
            }
            trie.rank[node].get_or_insert(i);
        }
        trie
    }

    /// For the text after a `$`: how much of it the winning pattern covers, if any matches.
    /// Name `i`'s `${NAME}` ranks `2i` and its `$NAME` `2i + 1`.
    fn first_match(&self, after: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        let mut consider = |rank: usize, len: usize| {
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, len));
            }
        };
        // `$NAME`: every name that `after` starts with.
        self.walk(after, |i, len| consider(2 * i + 1, len));
        // `${NAME}`: every name that `after` has between `{` and a `}`.
        if let Some(inner) = after.strip_prefix('{') {
            self.walk(inner, |i, len| {
                if inner[len..].starts_with('}') {
                    consider(2 * i, len + 2);
                }
            });
        }
        best.map(|(_, len)| len)
    }

    /// Calls `found(rank, length)` for every name `text` starts with.
    fn walk(&self, text: &str, mut found: impl FnMut(usize, usize)) {
        let mut node = 0;
        for (offset, c) in text.char_indices() {
            let Some(&next) = self.children[node].get(&c) else {
                return;
            };
            node = next;
            if let Some(rank) = self.rank[node] {
                found(rank, offset + c.len_utf8());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_helpers() {
        assert_eq!(chomp("\t\ta\n\tb\nc\n"), "a\nb\nc\n");
        assert_eq!(summarize("echo one\necho two\n"), "echo one...");
        assert_eq!(summarize("echo one\n"), "echo one");
    }

    /// The one-pass mask against replacing each name's patterns in turn.
    #[test]
    fn masking_matches_replacing_in_turn() {
        fn in_turn(text: &str, names: &[&str]) -> String {
            names.iter().fold(text.to_string(), |t, n| {
                t.replace(&format!("${{{n}}}"), "****")
                    .replace(&format!("${n}"), "****")
            })
        }
        let texts = [
            "RUN echo $TOKEN ${TOKEN}",
            "RUN x $TOKEN2 ${TOKEN2} $TOKENX ${TOKEN}X $T ${T} ${TO} $$TOKEN ${",
            "$A$AB${A}${AB}${ABC}$ABC$",
            "RUN é$É ${É} ${A",
        ];
        let lists: [&[&str]; 5] = [
            &["TOKEN"],
            &["TOKEN", "TOKEN2", "T"],
            &["T", "TOKEN2", "TOKEN"],
            &["A", "AB", "A", "É"],
            &["AB", "ABC", "{A}"],
        ];
        for text in texts {
            for names in lists {
                let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                assert_eq!(
                    mask_secrets(text, &owned),
                    in_turn(text, names),
                    "{text:?} {names:?}"
                );
            }
        }
        assert_eq!(
            mask_secrets("RUN echo $TOKEN ${TOKEN}", &["TOKEN".into()]),
            "RUN echo **** ****"
        );
    }

    #[test]
    fn run_history_lists_args_once() {
        let mut env = Vars::default();
        env.set("a", "2".into());
        let mut args = Ordered::default();
        args.set("a", Some("1".into()));
        args.set("b", None);
        args.set("a", Some("2".into()));
        let s = run_command_string(&["/bin/sh".into(), "-c".into(), "x".into()], &args, &env);
        assert_eq!(s, "|2 a=2 b= /bin/sh -c x");
    }
}
