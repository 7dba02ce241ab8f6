//! Typed instructions: the parse tree checked against each instruction's grammar and flags,
//! and grouped into stages.
//!
//! Nothing is expanded here: values keep their `$VARIABLES` and quotes, because expansion
//! depends on the build arguments and environment at the point of use (see `convert`).

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, ErrorKind, Location, suggest};
use crate::parser::{Arg, Ast, Heredoc, Node};

/// Every instruction of the current stable Dockerfile syntax.
pub const KNOWN_INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A command line in shell form (one string, run through SHELL) or exec form (argv).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandLine {
    /// `RUN echo hi`.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// A `key=value` pair as written (unexpanded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// `ARG name[=default]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// The default, unexpanded.
    pub default: Option<String>,
}

/// `COPY`/`ADD` flags and operands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyArgs {
    /// Sources, unexpanded.
    pub sources: Vec<String>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from`.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// ADD `--unpack`.
    pub unpack: Option<bool>,
    /// Heredoc sources.
    pub heredocs: Vec<Heredoc>,
}

/// `RUN` flags and command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    /// The command.
    pub command: CommandLine,
    /// `--mount` specifications, unparsed.
    pub mounts: Vec<String>,
    /// `--network`.
    pub network: Option<String>,
    /// `--security`.
    pub security: Option<String>,
    /// Heredocs.
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`.
    None,
    /// `HEALTHCHECK [flags] CMD …`.
    Command {
        /// The test command.
        command: CommandLine,
        /// `--interval` and friends, unparsed.
        options: BTreeMap<String, String>,
    },
}

/// A typed instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// ADD.
    Add(CopyArgs),
    /// ARG.
    Arg(Vec<ArgDecl>),
    /// CMD.
    Cmd(CommandLine),
    /// COPY.
    Copy(CopyArgs),
    /// ENTRYPOINT.
    Entrypoint(CommandLine),
    /// ENV.
    Env(Vec<KeyValue>),
    /// EXPOSE.
    Expose(Vec<String>),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// LABEL.
    Label(Vec<KeyValue>),
    /// MAINTAINER (deprecated; sets the image author).
    Maintainer(String),
    /// ONBUILD, with the trigger's text.
    Onbuild(String),
    /// RUN.
    Run(RunArgs),
    /// SHELL.
    Shell(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// USER.
    User(String),
    /// VOLUME.
    Volume(Vec<String>),
    /// WORKDIR.
    Workdir(String),
}

/// An instruction with where it came from.
#[derive(Clone, Debug)]
pub struct Spanned {
    /// The instruction.
    pub instruction: Instruction,
    /// Its lines.
    pub location: Location,
    /// Its text (continuation lines joined), for progress names and history.
    pub original: String,
    /// The keyword, lower-cased.
    pub keyword: String,
}

/// One `FROM … [AS name]` and the instructions that follow it.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Position among the stages.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The base: image reference, stage name or `scratch`, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The FROM line.
    pub location: Location,
    /// The FROM text.
    pub original: String,
    /// The instructions.
    pub instructions: Vec<Spanned>,
}

/// A Dockerfile as stages.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// ARGs before the first FROM.
    pub meta_args: Vec<(ArgDecl, Location)>,
    /// The stages.
    pub stages: Vec<Stage>,
    /// The escape character.
    pub escape: char,
    /// Stage positions by (lower-cased) name, so that finding a stage does not scan them all.
    by_name: HashMap<String, usize>,
}

impl Dockerfile {
    /// The position of the stage named `name` (in any case).
    pub fn stage_by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }
}

/// Checks a parse tree and groups it into stages. Fails on the first parser error.
pub fn from_ast(ast: &Ast) -> Result<Dockerfile, Error> {
    if let Some(d) = ast.first_error() {
        let location = Location {
            start_line: d.start_line,
            end_line: d.end_line,
        };
        let kind = ErrorKind::Parse {
            line: d.start_line,
            message: d.message.clone(),
        };
        return Err(if d.start_line == 0 {
            Error::global(kind)
        } else {
            Error::at(kind, location)
        });
    }
    let mut dockerfile = Dockerfile {
        meta_args: Vec::new(),
        stages: Vec::new(),
        escape: ast.escape,
        by_name: HashMap::new(),
    };
    for node in &ast.nodes {
        let location = Location {
            start_line: node.start_line,
            end_line: node.end_line,
        };
        if node.keyword == "from" {
            let stage = parse_from(node, dockerfile.stages.len(), location)?;
            if let Some(name) = &stage.name {
                if dockerfile.by_name.contains_key(name) {
                    return Err(Error::at(ErrorKind::DuplicateStage(name.clone()), location));
                }
                dockerfile.by_name.insert(name.clone(), stage.index);
            }
            dockerfile.stages.push(stage);
            continue;
        }
        let instruction = parse_node(node, location)?;
        match dockerfile.stages.last_mut() {
            Some(stage) => stage.instructions.push(Spanned {
                instruction,
                location,
                original: node.original.trim().to_string(),
                keyword: node.keyword.clone(),
            }),
            None => match instruction {
                Instruction::Arg(args) => {
                    dockerfile
                        .meta_args
                        .extend(args.into_iter().map(|a| (a, location)));
                }
                _ => {
                    return Err(Error::at(
                        ErrorKind::BeforeFrom(node.keyword.to_ascii_uppercase()),
                        location,
                    ));
                }
            },
        }
    }
    if dockerfile.stages.is_empty() {
        return Err(Error::global(ErrorKind::NoStages));
    }
    Ok(dockerfile)
}

fn bad_args(node: &Node, message: impl Into<String>, location: Location) -> Error {
    Error::at(
        ErrorKind::BadArguments {
            instruction: node.keyword.to_ascii_uppercase(),
            message: message.into(),
        },
        location,
    )
}

fn parse_from(node: &Node, index: usize, location: Location) -> Result<Stage, Error> {
    let mut flags = Flags::parse(node, &[("platform", FlagKind::String)], location)?;
    let values = node.values();
    let (base, name) = match values.as_slice() {
        [base] => (*base, None),
        [base, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => (*base, Some(name.to_ascii_lowercase())),
        _ => return Err(bad_args(node, "requires either one or three arguments", location)),
    };
    if let Some(name) = &name
        && !valid_stage_name(name)
    {
        return Err(Error::at(ErrorKind::BadStageName(name.clone()), location));
    }
    Ok(Stage {
        index,
        name,
        base: base.to_string(),
        platform: flags.string("platform"),
        location,
        original: node.original.trim().to_string(),
        instructions: Vec::new(),
    })
}

/// `^[a-z][a-z0-9-_.]*$`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn command_line(node: &Node) -> CommandLine {
    let values: Vec<String> = node.values().into_iter().map(str::to_string).collect();
    if node.json {
        CommandLine::Exec(values)
    } else {
        CommandLine::Shell(values.into_iter().next().unwrap_or_default())
    }
}

fn key_values(values: &[&str]) -> Vec<KeyValue> {
    values
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].to_string(),
            value: c.get(1).copied().unwrap_or("").to_string(),
        })
        .collect()
}

/// Parses one non-FROM instruction node.
pub fn parse_node(node: &Node, location: Location) -> Result<Instruction, Error> {
    let values = node.values();
    match node.keyword.as_str() {
        "run" => parse_run(node, &values, location),
        "cmd" | "entrypoint" | "shell" => parse_command(node, &values, location),
        "env" | "label" | "arg" | "expose" | "volume" => parse_list(node, &values, location),
        "user" | "workdir" | "stopsignal" | "maintainer" => parse_single(node, &values, location),
        "copy" | "add" => parse_copy(node, location),
        "healthcheck" => parse_healthcheck(node, location),
        "onbuild" => parse_onbuild(node, location),
        other => {
            let upper = other.to_ascii_uppercase();
            let suggestion = suggest(&upper, KNOWN_INSTRUCTIONS);
            Err(Error::at(
                ErrorKind::UnknownInstruction {
                    name: node.keyword_original.clone(),
                    suggestion,
                },
                location,
            ))
        }
    }
}

fn no_flags(node: &Node, location: Location) -> Result<(), Error> {
    Flags::parse(node, &[], location).map(|_| ())
}

fn parse_run(node: &Node, values: &[&str], location: Location) -> Result<Instruction, Error> {
    let mut flags = Flags::parse(
        node,
        &[
            ("mount", FlagKind::StringSlice),
            ("network", FlagKind::String),
            ("security", FlagKind::String),
            ("device", FlagKind::StringSlice),
        ],
        location,
    )?;
    if values.is_empty() {
        return Err(bad_args(node, "requires at least one argument", location));
    }
    if !flags.strings("device").is_empty() {
        return Err(Error::at(
            ErrorKind::NotSupported("RUN --device (a labs feature)".into()),
            location,
        ));
    }
    Ok(Instruction::Run(RunArgs {
        command: command_line(node),
        mounts: flags.strings("mount"),
        network: flags.string("network"),
        security: flags.string("security"),
        heredocs: node.heredocs.clone(),
    }))
}

/// CMD, ENTRYPOINT and SHELL.
fn parse_command(node: &Node, values: &[&str], location: Location) -> Result<Instruction, Error> {
    no_flags(node, location)?;
    match node.keyword.as_str() {
        "cmd" => Ok(Instruction::Cmd(command_line(node))),
        "entrypoint" => Ok(Instruction::Entrypoint(command_line(node))),
        _ => {
            if !node.json {
                return Err(bad_args(
                    node,
                    "requires the arguments to be in JSON form",
                    location,
                ));
            }
            if values.is_empty() {
                return Err(bad_args(node, "requires at least one argument", location));
            }
            Ok(Instruction::Shell(values.iter().map(|s| s.to_string()).collect()))
        }
    }
}

/// ENV, LABEL, ARG, EXPOSE and VOLUME: one or more values.
fn parse_list(node: &Node, values: &[&str], location: Location) -> Result<Instruction, Error> {
    no_flags(node, location)?;
    if values.is_empty() {
        return Err(bad_args(node, "requires at least one argument", location));
    }
    let strings = || values.iter().map(|s| s.to_string()).collect();
    Ok(match node.keyword.as_str() {
        "env" => Instruction::Env(key_values(values)),
        "label" => Instruction::Label(key_values(values)),
        "arg" => Instruction::Arg(values.iter().map(|w| arg_decl(w)).collect()),
        "expose" => Instruction::Expose(strings()),
        _ => Instruction::Volume(strings()),
    })
}

fn arg_decl(word: &str) -> ArgDecl {
    match word.split_once('=') {
        Some((name, default)) => ArgDecl {
            name: name.to_string(),
            default: Some(default.to_string()),
        },
        None => ArgDecl {
            name: word.to_string(),
            default: None,
        },
    }
}

/// USER, WORKDIR, STOPSIGNAL and MAINTAINER: exactly one value.
fn parse_single(node: &Node, values: &[&str], location: Location) -> Result<Instruction, Error> {
    no_flags(node, location)?;
    let Some(value) = values.first() else {
        return Err(bad_args(node, "requires exactly one argument", location));
    };
    let value = value.to_string();
    Ok(match node.keyword.as_str() {
        "user" => Instruction::User(value),
        "workdir" => Instruction::Workdir(value),
        "maintainer" => Instruction::Maintainer(value),
        _ => Instruction::StopSignal(value),
    })
}

fn parse_onbuild(node: &Node, location: Location) -> Result<Instruction, Error> {
    no_flags(node, location)?;
    let Some(Arg::Instruction(inner)) = node.args.first() else {
        return Err(bad_args(node, "requires at least one argument", location));
    };
    match inner.keyword.as_str() {
        "onbuild" => {
            return Err(bad_args(
                node,
                "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                location,
            ));
        }
        "from" | "maintainer" => {
            let keyword = inner.keyword.to_ascii_uppercase();
            let message = format!("{keyword} isn't allowed as an ONBUILD trigger");
            return Err(bad_args(node, message, location));
        }
        _ => {}
    }
    // Validate the trigger now so mistakes are reported where they are written.
    parse_node(inner, location)?;
    let text = node.original.trim();
    let trigger = text[node.keyword_original.len()..].trim_start();
    Ok(Instruction::Onbuild(trigger.to_string()))
}

fn parse_copy(node: &Node, location: Location) -> Result<Instruction, Error> {
    let is_add = node.keyword == "add";
    let mut spec: Vec<(&str, FlagKind)> = vec![
        ("chown", FlagKind::String),
        ("chmod", FlagKind::String),
        ("link", FlagKind::Bool),
        ("exclude", FlagKind::StringSlice),
    ];
    if is_add {
        spec.extend([
            ("checksum", FlagKind::String),
            ("keep-git-dir", FlagKind::Bool),
            ("unpack", FlagKind::Bool),
        ]);
    } else {
        spec.extend([("from", FlagKind::String), ("parents", FlagKind::Bool)]);
    }
    let mut flags = Flags::parse(node, &spec, location)?;
    let mut values: Vec<String> = node.values().into_iter().map(str::to_string).collect();
    let heredoc_count = node.heredocs.len();
    if values.len() < 2 && heredoc_count == 0 {
        return Err(bad_args(
            node,
            "requires at least two arguments, but only one was provided. Destination could not be determined",
            location,
        ));
    }
    if values.is_empty() {
        return Err(bad_args(node, "requires a destination", location));
    }
    let dest = values.pop().unwrap_or_default();
    // Heredoc markers among the sources are replaced by the heredoc bodies.
    let sources: Vec<String> = if heredoc_count > 0 {
        values
            .into_iter()
            .filter(|v| crate::parser::heredoc_from_word(v).is_none())
            .collect()
    } else {
        values
    };
    let args = CopyArgs {
        sources,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
        heredocs: node.heredocs.clone(),
    };
    Ok(if is_add {
        Instruction::Add(args)
    } else {
        Instruction::Copy(args)
    })
}

fn parse_healthcheck(node: &Node, location: Location) -> Result<Instruction, Error> {
    let names = ["interval", "timeout", "start-period", "start-interval", "retries"];
    let spec: Vec<(&str, FlagKind)> = names.iter().map(|n| (*n, FlagKind::String)).collect();
    let mut flags = Flags::parse(node, &spec, location)?;
    let values = node.values();
    let Some(kind) = values.first() else {
        return Err(bad_args(node, "requires at least one argument", location));
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if values.len() > 1 {
                return Err(bad_args(node, "NONE takes no arguments", location));
            }
            Ok(Instruction::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            let rest: Vec<String> = values[1..].iter().map(|s| s.to_string()).collect();
            if rest.is_empty() {
                return Err(bad_args(node, "CMD requires a command", location));
            }
            let command = if node.json {
                CommandLine::Exec(rest)
            } else {
                CommandLine::Shell(rest.into_iter().next().unwrap_or_default())
            };
            let mut options = BTreeMap::new();
            for n in names {
                if let Some(v) = flags.string(n) {
                    options.insert(n.to_string(), v);
                }
            }
            Ok(Instruction::Healthcheck(Healthcheck::Command {
                command,
                options,
            }))
        }
        other => Err(bad_args(
            node,
            format!("unknown type {other:?}: expected CMD or NONE"),
            location,
        )),
    }
}

/// How a flag takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `--name=value`, once.
    String,
    /// `--name` or `--name=true|false`.
    Bool,
    /// `--name=value`, repeatable.
    StringSlice,
}

/// Flags of one instruction, checked against what it accepts.
pub struct Flags {
    values: BTreeMap<String, Vec<Option<String>>>,
}

impl Flags {
    /// Checks `node`'s flags against `spec`.
    pub fn parse(node: &Node, spec: &[(&str, FlagKind)], location: Location) -> Result<Flags, Error> {
        let mut values: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for raw in &node.flags {
            let Some(body) = raw.strip_prefix("--") else {
                return Err(Error::at(
                    ErrorKind::BadFlag(format!("invalid flag {raw:?}")),
                    location,
                ));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let lower = name.to_ascii_lowercase();
            let Some((_, kind)) = spec.iter().find(|(n, _)| *n == lower) else {
                let suggestion = suggest(name, spec.iter().map(|(n, _)| *n)).map(|s| format!("--{s}"));
                return Err(Error::at(
                    ErrorKind::UnknownFlag {
                        flag: name.to_string(),
                        suggestion,
                    },
                    location,
                ));
            };
            let entry = values.entry(lower.clone()).or_default();
            match kind {
                FlagKind::String => {
                    if value.is_none() {
                        return Err(Error::at(
                            ErrorKind::BadFlag(format!("missing a value on flag: --{name}")),
                            location,
                        ));
                    }
                    if !entry.is_empty() {
                        return Err(Error::at(
                            ErrorKind::BadFlag(format!("duplicate flag specified: --{name}")),
                            location,
                        ));
                    }
                }
                FlagKind::Bool => {
                    if let Some(v) = &value
                        && !matches!(v.to_ascii_lowercase().as_str(), "true" | "false")
                    {
                        return Err(Error::at(
                            ErrorKind::BadFlag(format!(
                                "expecting boolean value for flag --{name}, not: {v}"
                            )),
                            location,
                        ));
                    }
                    if !entry.is_empty() {
                        return Err(Error::at(
                            ErrorKind::BadFlag(format!("duplicate flag specified: --{name}")),
                            location,
                        ));
                    }
                }
                FlagKind::StringSlice => {
                    if value.is_none() {
                        return Err(Error::at(
                            ErrorKind::BadFlag(format!("missing a value on flag: --{name}")),
                            location,
                        ));
                    }
                }
            }
            entry.push(value);
        }
        Ok(Flags { values })
    }

    /// A single-valued flag.
    pub fn string(&mut self, name: &str) -> Option<String> {
        self.values
            .remove(name)
            .and_then(|v| v.into_iter().next())
            .flatten()
    }

    /// A repeatable flag, in order.
    pub fn strings(&mut self, name: &str) -> Vec<String> {
        self.values
            .remove(name)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .collect()
    }

    /// A boolean flag: `None` when absent.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        let v = self.values.remove(name)?;
        Some(match v.into_iter().next().flatten() {
            None => true,
            Some(s) => s.eq_ignore_ascii_case("true"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn load(text: &str) -> Result<Dockerfile, Error> {
        from_ast(&parse(text))
    }

    #[test]
    fn groups_stages_and_meta_args() {
        let df = load("ARG V=1\nFROM a:$V AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n").unwrap();
        assert_eq!(df.meta_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build"));
        assert_eq!(df.stages[1].base, "build");
        match &df.stages[1].instructions[0].instruction {
            Instruction::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.sources, vec!["/a"]);
                assert_eq!(c.dest, "/b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_instruction_and_flag_suggest_fixes() {
        let err = load("FROM a\nENTRYPONT x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown instruction: ENTRYPONT (did you mean ENTRYPOINT?)"
        );
        assert_eq!(err.location.unwrap().start_line, 2);
        let err = load("FROM a\nRUN --mont=type=cache,target=/x true\n").unwrap_err();
        assert_eq!(err.to_string(), "unknown flag: --mont (did you mean --mount?)");
        let err = load("FROM a\nCOPY --link=maybe a b\n").unwrap_err();
        assert!(err.to_string().contains("expecting boolean value"));
    }

    #[test]
    fn structure_errors() {
        assert!(matches!(
            load("RUN x\n").unwrap_err().kind,
            ErrorKind::BeforeFrom(_)
        ));
        assert!(matches!(load("ARG x\n").unwrap_err().kind, ErrorKind::NoStages));
        assert!(matches!(
            load("FROM a AS 1x\n").unwrap_err().kind,
            ErrorKind::BadStageName(_)
        ));
        assert!(matches!(
            load("FROM a AS x\nFROM b AS X\n").unwrap_err().kind,
            ErrorKind::DuplicateStage(_)
        ));
        assert!(matches!(
            load("FROM a\nCOPY onlyone\n").unwrap_err().kind,
            ErrorKind::BadArguments { .. }
        ));
        assert!(matches!(
            load("FROM a\nONBUILD ONBUILD RUN x\n").unwrap_err().kind,
            ErrorKind::BadArguments { .. }
        ));
    }
}
