//! The instructions that change only the image config (ENV, ARG, LABEL, USER, CMD,
//! ENTRYPOINT, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK) and WORKDIR, which also creates the
//! directory.

use std::collections::BTreeMap;

use llb::{FileChain, pb};
use oci::HealthConfig;

use super::gofmt::{go_health, go_quote_list};
use super::paths::clean_path;
use super::state::{Converter, StageState, parse_chown, shell_of, workdir_of};
use super::vars::Vars;
use crate::error::{Error, ErrorKind, Location};
use crate::instructions::{ArgDecl, CommandLine, Healthcheck, KeyValue, Spanned};

fn bad(instruction: &str, message: String, location: Location) -> Error {
    Error::at(
        ErrorKind::BadArguments {
            instruction: instruction.into(),
            message,
        },
        location,
    )
}

impl Converter<'_> {
    pub(super) fn dispatch_env(
        &mut self,
        pairs: &[KeyValue],
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let expanded = self.expand_pairs(pairs, state, location)?;
        let image_env = state
            .image_env
            .get_or_insert_with(|| Vars::from_strings(state.image.config.env.as_deref().unwrap_or_default()));
        for (k, v) in &expanded {
            image_env.set(k, v.clone());
            state.env.set(k, v.clone());
        }
        let text = expanded
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.metadata_step(state, format!("ENV {text}"), location)
    }

    pub(super) fn dispatch_label(
        &mut self,
        pairs: &[KeyValue],
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let expanded = self.expand_pairs(pairs, state, location)?;
        let labels = state.image.config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &expanded {
            labels.insert(k.clone(), v.clone());
        }
        let text = expanded
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect::<String>();
        self.metadata_step(state, format!("LABEL{text}"), location)
    }

    fn expand_pairs(
        &self,
        pairs: &[KeyValue],
        state: &StageState,
        location: Location,
    ) -> Result<Vec<(String, String)>, Error> {
        // Every value sees the environment from before the instruction.
        pairs
            .iter()
            .map(|kv| {
                Ok((
                    self.expand(&kv.key, state, location)?,
                    self.expand(&kv.value, state, location)?,
                ))
            })
            .collect()
    }

    pub(super) fn dispatch_arg(
        &mut self,
        decls: &[ArgDecl],
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let mut texts = Vec::new();
        for decl in decls {
            let value = if let Some(v) = self.options.build_args.get(&decl.name) {
                Some(v.clone())
            } else if let Some(default) = &decl.default {
                Some(self.expand(default, state, location)?)
            } else {
                // `ARG NAME` inside a stage imports the global value.
                self.plan.meta_args.value(&decl.name).cloned().flatten()
            };
            if let Some(v) = &value {
                state.env.set(&decl.name, v.clone());
                texts.push(format!("{}={v}", decl.name));
            } else {
                texts.push(decl.name.clone());
            }
            state.build_args.set(&decl.name, value);
        }
        self.metadata_step(state, format!("ARG {}", texts.join(" ")), location)
    }

    pub(super) fn dispatch_cmd(
        &mut self,
        cmd: &CommandLine,
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let args = with_shell(cmd, state);
        state.image.config.cmd = Some(args.clone());
        state.image.config.args_escaped = Some(true);
        state.cmd_set = true;
        self.metadata_step(state, format!("CMD {}", go_quote_list(&args)), location)
    }

    pub(super) fn dispatch_entrypoint(
        &mut self,
        cmd: &CommandLine,
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let args = with_shell(cmd, state);
        state.image.config.entrypoint = Some(args.clone());
        if !state.cmd_set {
            state.image.config.cmd = None;
        }
        self.metadata_step(state, format!("ENTRYPOINT {}", go_quote_list(&args)), location)
    }

    pub(super) fn dispatch_expose(
        &mut self,
        ports: &[String],
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let mut all = Vec::new();
        for p in ports {
            for word in self.expand_words(p, state, location)? {
                let ports = parse_port(&word).map_err(|m| bad("EXPOSE", m, location))?;
                // A range names many ports from a few bytes.
                self.budget.texts(ports.iter().map(String::as_str), location)?;
                all.extend(ports);
            }
        }
        add_to_set(&mut state.image.config.exposed_ports, &all);
        self.metadata_step(state, format!("EXPOSE [{}]", all.join(" ")), location)
    }

    pub(super) fn dispatch_volume(
        &mut self,
        volumes: &[String],
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let mut expanded = Vec::new();
        for v in volumes {
            let v = self.expand(v, state, location)?;
            if v.trim().is_empty() {
                let message = "specified can not be an empty string".into();
                return Err(bad("VOLUME", message, location));
            }
            expanded.push(v);
        }
        add_to_set(&mut state.image.config.volumes, &expanded);
        self.metadata_step(state, format!("VOLUME [{}]", expanded.join(" ")), location)
    }

    pub(super) fn dispatch_stopsignal(
        &mut self,
        signal: &str,
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let signal = self.expand(signal, state, location)?;
        if !valid_signal(&signal) {
            return Err(bad("STOPSIGNAL", format!("invalid signal: {signal}"), location));
        }
        state.image.config.stop_signal = Some(signal.clone());
        self.metadata_step(state, format!("STOPSIGNAL {signal}"), location)
    }

    pub(super) fn dispatch_healthcheck(
        &mut self,
        check: &Healthcheck,
        state: &mut StageState,
        location: Location,
    ) -> Result<(), Error> {
        let config = healthcheck(check).map_err(|m| bad("HEALTHCHECK", m, location))?;
        let text = format!("HEALTHCHECK {}", go_health(&config));
        state.image.config.healthcheck = Some(config);
        self.metadata_step(state, text, location)
    }

    pub(super) fn dispatch_workdir(
        &mut self,
        dir: &str,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        let dir = self.expand(dir, state, location)?;
        let path = if dir.starts_with('/') {
            clean_path(&dir)
        } else {
            clean_path(&format!("{}/{dir}", workdir_of(state)))
        };
        // A relative WORKDIR after another makes the path grow; every later step carries it.
        self.budget.text(&path, location)?;
        state.image.config.working_dir = Some(path.clone());
        if path == "/" {
            return self.metadata_step(state, "WORKDIR /".into(), location);
        }
        // The directory is created, owned by the current user, even if nothing uses it.
        let owner = state
            .image
            .config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(parse_chown);
        let display = self.display_text(&spanned.original, state, location)?;
        let options = self.op_options(state, &display, location)?;
        let mkdir = FileChain::new(state.fs.as_ref())
            .mkdir(pb::FileActionMkDir {
                path: path.clone(),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: -1,
            })
            .finish(options);
        state.fs = self.ops.made(mkdir);
        self.history(state, format!("WORKDIR {path}"), false, location)
    }
}

/// CMD and ENTRYPOINT: exec form as written, shell form through the stage's SHELL.
/// Adds `items` to one of the image config's sets, which Docker writes as maps from each item to
/// `{}` (exposed ports, volumes).
fn add_to_set(
    set: &mut Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    items: &[String],
) {
    let set = set.get_or_insert_with(BTreeMap::new);
    for item in items {
        set.insert(item.clone(), serde_json::Map::new());
    }
}

fn with_shell(cmd: &CommandLine, state: &StageState) -> Vec<String> {
    match cmd {
        CommandLine::Exec(args) => args.clone(),
        CommandLine::Shell(line) => {
            let mut args = shell_of(state);
            args.push(line.clone());
            args
        }
    }
}

/// The ports one EXPOSE word names (`80`, `53/udp`, `8000-8002/tcp`).
fn parse_port(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |p: &str| p.parse::<u16>().map_err(|_| format!("invalid port: {spec}"));
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!("invalid range: {spec}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// A signal STOPSIGNAL accepts: a number from 1 to 64 or a name, with or without `SIG`.
fn valid_signal(signal: &str) -> bool {
    if let Ok(n) = signal.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    const NAMES: [&str; 33] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    NAMES.contains(&name) || name == "XFSZ" || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

/// The health check config HEALTHCHECK describes.
fn healthcheck(check: &Healthcheck) -> Result<HealthConfig, String> {
    match check {
        Healthcheck::None => Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        }),
        Healthcheck::Command { command, options } => {
            let test = match command {
                CommandLine::Exec(args) => std::iter::once("CMD".to_string())
                    .chain(args.iter().cloned())
                    .collect(),
                CommandLine::Shell(line) => vec!["CMD-SHELL".to_string(), line.clone()],
            };
            let duration = |name: &str| -> Result<i64, String> {
                match options.get(name) {
                    None => Ok(0),
                    Some(v) => {
                        let d = gocompat::duration::parse(v).map_err(|e| e.to_string())?;
                        if d != 0 && d < 1_000_000 {
                            return Err(format!("--{name} cannot be less than 1ms"));
                        }
                        Ok(d)
                    }
                }
            };
            let retries = match options.get("retries") {
                None => 0,
                Some(v) => v
                    .parse::<i64>()
                    .map_err(|_| format!("invalid --retries value {v:?}"))?,
            };
            if retries < 0 {
                return Err("--retries cannot be negative".into());
            }
            Ok(HealthConfig {
                test: Some(test),
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_port("1-3/tcp").unwrap(), vec!["1/tcp", "2/tcp", "3/tcp"]);
        assert!(parse_port("x").is_err());
    }
}
