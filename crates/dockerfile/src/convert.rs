//! Dockerfile → LLB: the compiler proper.
//!
//! [`compile`] checks the Dockerfile, works out which stages the target needs (an unreachable
//! stage is never resolved or converted, even if broken), asks the [`ImageResolver`] for the
//! configs of the base images those stages use, and converts each needed stage instruction by
//! instruction into LLB ops plus an image config, the way BuildKit's `dockerfile2llb` does.
//!
//! Two environments are tracked per stage, as in BuildKit: the image config's `Env` (what ENV
//! sets; it ends up in the image) and the build environment of RUN steps (image ENV plus the
//! ARGs in scope; ARG values never reach the image config).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use llb::{Exec, FileChain, MountOptions, OpOptions, Output, SourceRange, pb};
use oci::{ContainerConfig, HealthConfig, History, ImageConfig, Platform, Reference};

use crate::error::{Error, ErrorKind, Location, suggest};
use crate::instructions::{
    self, ArgDecl, CommandLine, CopyArgs, Dockerfile, Healthcheck, Instruction, KeyValue, RunArgs, Spanned,
    Stage,
};
use crate::parser;
use crate::shell::{self, Lexer};

/// The `PATH` a `FROM scratch` stage (and any image without one) gets on Linux.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The history comment BuildKit writes on every entry it creates.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Name of the local source holding the build context.
pub const CONTEXT_NAME: &str = "context";

/// What a build asks of the compiler.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The platform to build for.
    pub target_platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// The Dockerfile's name, for the source map.
    pub dockerfile_name: String,
    /// Patterns of context paths to leave out (from `.dockerignore`).
    pub context_excludes: Vec<String>,
    /// Never use cached results (`--no-cache`).
    pub no_cache: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
            dockerfile_name: "Dockerfile".into(),
            context_excludes: Vec::new(),
            no_cache: false,
        }
    }
}

/// The result of resolving a base image.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference to build from, pinned to the manifest digest when it is known.
    pub reference: Reference,
    /// The image config (an empty default when unknown, e.g. offline).
    pub config: ImageConfig,
}

/// Supplies base-image metadata to the compiler. The compiler never does IO itself.
pub trait ImageResolver: Sync {
    /// Resolves `reference` for `platform`. The error is a message for people.
    fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> impl Future<Output = Result<ResolvedImage, String>> + Send;
}

/// A resolver that resolves nothing: every image gets an empty config and stays unpinned
/// (`kiln debug llb --offline`).
pub struct OfflineResolver;

impl ImageResolver for OfflineResolver {
    async fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<ResolvedImage, String> {
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            ..ImageConfig::default()
        };
        Ok(ResolvedImage {
            reference: reference.clone(),
            config,
        })
    }
}

/// A compiled build.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The build graph; its result is the target stage's filesystem.
    pub definition: llb::Definition,
    /// The image config of the target stage, with history. Layer diff IDs are left for the
    /// exporter to fill in.
    pub image: ImageConfig,
    /// The target stage's display name.
    pub target: String,
    /// Build arguments given but never declared.
    pub unused_build_args: Vec<String>,
}

/// Compiles `text` (the Dockerfile) into LLB.
pub async fn compile<R: ImageResolver>(
    text: &str,
    options: &BuildOptions,
    resolver: &R,
) -> Result<Compiled, Error> {
    let ast = parser::parse(text);
    if let Some((syntax, line)) = &ast.directives.syntax
        && !is_builtin_syntax(syntax)
    {
        return Err(Error::at(
            ErrorKind::Syntax(syntax.clone()),
            Location {
                start_line: *line,
                end_line: *line,
            },
        ));
    }
    let dockerfile = instructions::from_ast(&ast)?;
    let plan = Plan::new(&dockerfile, options)?;
    let mut images: BTreeMap<Reference, ResolvedImage> = BTreeMap::new();
    for (reference, location) in &plan.images {
        if images.contains_key(reference) {
            continue;
        }
        let resolved = resolver
            .resolve(reference, &options.target_platform)
            .await
            .map_err(|message| {
                Error::at(
                    ErrorKind::Resolve {
                        reference: reference.to_string(),
                        message,
                    },
                    *location,
                )
            })?;
        images.insert(reference.clone(), resolved);
    }
    let mut converter = Converter::new(&dockerfile, &plan, &images, options, text);
    converter.run()
}

/// Whether a `# syntax=` value names the Dockerfile frontend kiln has built in.
fn is_builtin_syntax(syntax: &str) -> bool {
    let name = syntax.split('@').next().unwrap_or(syntax);
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    };
    let repo = repo.trim_start_matches("docker.io/");
    repo == "docker/dockerfile"
        && (tag == "latest" || tag == "1" || tag.starts_with("1.") || tag.starts_with("1-"))
}

/// Where a stage's filesystem comes from.
#[derive(Clone, Debug)]
enum Base {
    Scratch,
    Stage(usize),
    Image(Reference),
}

/// What `COPY --from` names.
#[derive(Clone, Debug)]
enum CopySource {
    Stage(usize),
    Image(Reference),
}

/// The analysis done before conversion: bases, dependencies, reachability, images to resolve.
struct Plan {
    target: usize,
    bases: Vec<Base>,
    /// Meta (global) ARGs after build-arg overrides, in declaration order.
    meta_args: Vec<(String, Option<String>)>,
    /// `COPY --from` targets, per (stage, instruction index).
    copy_sources: BTreeMap<(usize, usize), CopySource>,
    reachable: BTreeSet<usize>,
    images: Vec<(Reference, Location)>,
    used_args: BTreeSet<String>,
}

fn platform_args(options: &BuildOptions) -> Vec<(String, Option<String>)> {
    let p = |k: &str, v: String| (k.to_string(), Some(v));
    let t = &options.target_platform;
    let b = &options.build_platform;
    vec![
        p("TARGETPLATFORM", t.to_string()),
        p("TARGETOS", t.os.clone()),
        p("TARGETARCH", t.architecture.clone()),
        p("TARGETVARIANT", t.variant.clone().unwrap_or_default()),
        p("BUILDPLATFORM", b.to_string()),
        p("BUILDOS", b.os.clone()),
        p("BUILDARCH", b.architecture.clone()),
        p("BUILDVARIANT", b.variant.clone().unwrap_or_default()),
    ]
}

/// An ordered environment with add-or-replace semantics (last definition wins).
#[derive(Clone, Debug, Default)]
struct Vars(Vec<(String, String)>);

impl Vars {
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    fn from_strings(list: &[String]) -> Vars {
        let mut vars = Vars::default();
        for entry in list {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            vars.set(k, v);
        }
        vars
    }
}

impl shell::Env for Vars {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn meta_env(meta_args: &[(String, Option<String>)]) -> Vars {
    let mut vars = Vars::default();
    for (k, v) in meta_args {
        if let Some(v) = v {
            vars.set(k, v);
        }
    }
    vars
}

fn expansion_error(e: shell::ShellError, location: Location) -> Error {
    Error::at(ErrorKind::Expansion(e.to_string()), location)
}

impl Plan {
    fn new(df: &Dockerfile, options: &BuildOptions) -> Result<Plan, Error> {
        let lexer = Lexer::new(df.escape);
        let mut used_args = BTreeSet::new();
        // Global ARGs: build-arg values override defaults; defaults may use earlier globals.
        let mut meta_args = platform_args(options);
        for (decl, location) in &df.meta_args {
            used_args.insert(decl.name.clone());
            let value = match options.build_args.get(&decl.name) {
                Some(v) => Some(v.clone()),
                None => match &decl.default {
                    Some(d) => Some(
                        lexer
                            .process_word(d, &meta_env(&meta_args))
                            .map_err(|e| expansion_error(e, *location))?,
                    ),
                    None => None,
                },
            };
            match meta_args.iter_mut().find(|(k, _)| *k == decl.name) {
                Some(entry) => entry.1 = value,
                None => meta_args.push((decl.name.clone(), value)),
            }
        }
        let env = meta_env(&meta_args);

        let target = match &options.target {
            None => df.stages.len() - 1,
            Some(t) => {
                let t = t.to_ascii_lowercase();
                df.stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(t.as_str()))
                    .ok_or_else(|| {
                        let names = df.stages.iter().filter_map(|s| s.name.as_deref());
                        Error::global(ErrorKind::TargetNotFound {
                            target: t.clone(),
                            suggestion: suggest(&t, names),
                        })
                    })?
            }
        };

        let stage_by_name = |name: &str| -> Option<usize> {
            let lower = name.to_ascii_lowercase();
            df.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
        };

        let mut bases = Vec::with_capacity(df.stages.len());
        let mut copy_sources = BTreeMap::new();
        for stage in &df.stages {
            let base_name = lexer
                .process_word(&stage.base, &env)
                .map_err(|e| expansion_error(e, stage.location))?;
            let base = if base_name.eq_ignore_ascii_case("scratch") {
                Base::Scratch
            } else if let Some(i) = stage_by_name(&base_name) {
                if i >= stage.index {
                    return Err(Error::at(
                        if i == stage.index {
                            ErrorKind::CircularStage(base_name)
                        } else {
                            ErrorKind::StageOrder {
                                what: "FROM".into(),
                                name: base_name,
                            }
                        },
                        stage.location,
                    ));
                }
                Base::Stage(i)
            } else {
                if base_name.is_empty() {
                    return Err(Error::at(
                        ErrorKind::BadReference(format!("base name ({}) should not be blank", stage.base)),
                        stage.location,
                    ));
                }
                let reference = Reference::parse(&base_name)
                    .map_err(|e| Error::at(ErrorKind::BadReference(e.to_string()), stage.location))?;
                Base::Image(reference)
            };
            bases.push(base);
            for (i, spanned) in stage.instructions.iter().enumerate() {
                let Instruction::Copy(CopyArgs { from: Some(from), .. }) = &spanned.instruction else {
                    continue;
                };
                if from.contains('$') {
                    return Err(Error::at(
                        ErrorKind::NotSupported(
                            "variable expansion in --from (define a new stage with FROM using an ARG from the global scope instead)"
                                .into(),
                        ),
                        spanned.location,
                    ));
                }
                let source = if let Some(s) = stage_by_name(from) {
                    if s >= stage.index {
                        return Err(Error::at(
                            ErrorKind::StageOrder {
                                what: "COPY --from".into(),
                                name: from.clone(),
                            },
                            spanned.location,
                        ));
                    }
                    CopySource::Stage(s)
                } else if let Ok(n) = from.parse::<usize>() {
                    if n >= stage.index {
                        return Err(Error::at(
                            ErrorKind::StageOrder {
                                what: "COPY --from".into(),
                                name: from.clone(),
                            },
                            spanned.location,
                        ));
                    }
                    CopySource::Stage(n)
                } else {
                    let reference = Reference::parse(from)
                        .map_err(|e| Error::at(ErrorKind::BadReference(e.to_string()), spanned.location))?;
                    CopySource::Image(reference)
                };
                copy_sources.insert((stage.index, i), source);
            }
            for spanned in &stage.instructions {
                if let Instruction::Arg(args) = &spanned.instruction {
                    used_args.extend(args.iter().map(|a| a.name.clone()));
                }
            }
        }

        // Walk dependencies from the target.
        let mut reachable = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if !reachable.insert(s) {
                continue;
            }
            if let Base::Stage(b) = &bases[s] {
                todo.push(*b);
            }
            for ((stage, _), source) in copy_sources.range((s, 0)..(s + 1, 0)) {
                debug_assert_eq!(*stage, s);
                if let CopySource::Stage(d) = source {
                    todo.push(*d);
                }
            }
        }

        let mut images = Vec::new();
        for &s in &reachable {
            if let Base::Image(r) = &bases[s] {
                images.push((r.clone(), df.stages[s].location));
            }
            for ((_, i), source) in copy_sources.range((s, 0)..(s + 1, 0)) {
                if let CopySource::Image(r) = source {
                    images.push((r.clone(), df.stages[s].instructions[*i].location));
                }
            }
        }
        Ok(Plan {
            target,
            bases,
            meta_args,
            copy_sources,
            reachable,
            images,
            used_args,
        })
    }
}

/// The state of one stage while it is converted.
#[derive(Clone)]
struct StageState {
    fs: Option<Output>,
    image: ImageConfig,
    /// The build environment: image ENV plus ARGs in scope.
    env: Vars,
    /// Declared ARGs with their values, in order (for RUN history and inheritance).
    build_args: Vec<(String, Option<String>)>,
    cmd_set: bool,
    display_name: Option<String>,
    step: usize,
    steps: usize,
}

struct Converter<'a> {
    df: &'a Dockerfile,
    plan: &'a Plan,
    images: &'a BTreeMap<Reference, ResolvedImage>,
    options: &'a BuildOptions,
    text: &'a str,
    lexer: Lexer,
    context: Option<Output>,
    stages: BTreeMap<usize, StageState>,
    image_stages: BTreeMap<Reference, Output>,
}

impl<'a> Converter<'a> {
    fn new(
        df: &'a Dockerfile,
        plan: &'a Plan,
        images: &'a BTreeMap<Reference, ResolvedImage>,
        options: &'a BuildOptions,
        text: &'a str,
    ) -> Self {
        Converter {
            df,
            plan,
            images,
            options,
            text,
            lexer: Lexer::new(df.escape),
            context: None,
            stages: BTreeMap::new(),
            image_stages: BTreeMap::new(),
        }
    }

    fn run(&mut self) -> Result<Compiled, Error> {
        let reachable: Vec<usize> = self.plan.reachable.iter().copied().collect();
        for s in reachable {
            let state = self.convert_stage(&self.df.stages[s])?;
            self.stages.insert(s, state);
        }
        let target = &self.stages[&self.plan.target];
        let mut image = target.image.clone();
        image.architecture = self.options.target_platform.architecture.clone();
        image.os = self.options.target_platform.os.clone();
        image.variant = self.options.target_platform.variant.clone();
        let source = pb::SourceInfo {
            filename: self.options.dockerfile_name.clone(),
            data: self.text.as_bytes().to_vec(),
            language: "Dockerfile".into(),
        };
        let definition = llb::Definition::marshal(target.fs.as_ref(), vec![source]);
        let stage = &self.df.stages[self.plan.target];
        let unused_build_args = self
            .options
            .build_args
            .keys()
            .filter(|k| !self.plan.used_args.contains(*k) && !is_builtin_arg(k))
            .cloned()
            .collect();
        Ok(Compiled {
            definition,
            image,
            target: stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index)),
            unused_build_args,
        })
    }

    fn op_options(&self, state: &mut StageState, text: &str, location: Option<Location>) -> OpOptions {
        state.step += 1;
        let width = state.steps.to_string().len();
        let prefix = match &state.display_name {
            Some(n) => format!("[{n} {:>width$}/{}]", state.step, state.steps),
            None => format!("[{:>width$}/{}]", state.step, state.steps),
        };
        OpOptions {
            description: Some(format!("{prefix} {text}")),
            ignore_cache: self.options.no_cache,
            locations: location
                .map(|l| SourceRange {
                    source_index: 0,
                    start_line: l.start_line as i32,
                    end_line: l.end_line as i32,
                })
                .into_iter()
                .collect(),
            platform: Some(self.options.target_platform.clone()),
        }
    }

    fn convert_stage(&mut self, stage: &Stage) -> Result<StageState, Error> {
        let display_name = (self.df.stages.len() > 1).then(|| {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index))
        });
        let steps = stage.instructions.len() + 1;
        self.check_platform(stage)?;
        let mut state = match &self.plan.bases[stage.index] {
            Base::Scratch => StageState {
                fs: None,
                image: empty_image(&self.options.target_platform),
                env: Vars::from_strings(&[format!("PATH={DEFAULT_PATH}")]),
                build_args: Vec::new(),
                cmd_set: false,
                display_name,
                step: 1,
                steps,
            },
            Base::Stage(b) => {
                let base = &self.stages[b];
                StageState {
                    cmd_set: false,
                    display_name,
                    step: 1,
                    steps,
                    ..base.clone()
                }
            }
            Base::Image(reference) => {
                let resolved = &self.images[reference];
                let mut state = StageState {
                    fs: None,
                    image: resolved.config.clone(),
                    env: Vars::default(),
                    build_args: Vec::new(),
                    cmd_set: false,
                    display_name,
                    step: 0,
                    steps,
                };
                let env = resolved.config.config.env.clone().unwrap_or_default();
                state.env = Vars::from_strings(&env);
                if state.env.0.iter().all(|(k, _)| k != "PATH") {
                    state.env.set("PATH", DEFAULT_PATH);
                }
                let options = self.op_options(
                    &mut state,
                    &format!("FROM {}", resolved.reference),
                    Some(stage.location),
                );
                state.fs = Some(image_source(&resolved.reference, options));
                if let Some(triggers) = &resolved.config.config.on_build
                    && !triggers.is_empty()
                {
                    return Err(Error::at(
                        ErrorKind::NotSupported(format!(
                            "running the ONBUILD triggers of base image {reference}"
                        )),
                        stage.location,
                    ));
                }
                state
            }
        };
        for (i, spanned) in stage.instructions.iter().enumerate() {
            self.dispatch(stage, i, spanned, &mut state)?;
        }
        Ok(state)
    }

    fn check_platform(&self, stage: &Stage) -> Result<(), Error> {
        let Some(platform) = &stage.platform else {
            return Ok(());
        };
        let value = self
            .lexer
            .process_word(platform, &meta_env(&self.plan.meta_args))
            .map_err(|e| expansion_error(e, stage.location))?;
        let parsed = Platform::parse(&value).ok_or_else(|| {
            Error::at(
                ErrorKind::BadFlag(format!("invalid platform {value:?}: expected os/arch[/variant]")),
                stage.location,
            )
        })?;
        if !parsed.matches(&self.options.target_platform) {
            return Err(Error::at(
                ErrorKind::NotSupported(format!(
                    "FROM --platform={value} (kiln builds for {} only)",
                    self.options.target_platform
                )),
                stage.location,
            ));
        }
        Ok(())
    }

    fn expand(&self, word: &str, state: &StageState, location: Location) -> Result<String, Error> {
        self.lexer
            .process_word(word, &state.env)
            .map_err(|e| expansion_error(e, location))
    }

    fn expand_words(&self, word: &str, state: &StageState, location: Location) -> Result<Vec<String>, Error> {
        self.lexer
            .process_words(word, &state.env)
            .map_err(|e| expansion_error(e, location))
    }

    fn dispatch(
        &mut self,
        stage: &Stage,
        index: usize,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        match &spanned.instruction {
            Instruction::Run(run) => self.dispatch_run(run, spanned, state),
            Instruction::Copy(copy) => self.dispatch_copy(stage, index, copy, spanned, state),
            Instruction::Add(_) => Err(Error::at(ErrorKind::NotSupported("ADD".into()), location)),
            Instruction::Env(pairs) => {
                let expanded = self.expand_pairs(pairs, state, location)?;
                let mut env = Vars::from_strings(&state.image.config.env.clone().unwrap_or_default());
                for (k, v) in &expanded {
                    env.set(k, v);
                    state.env.set(k, v);
                }
                state.image.config.env = Some(env.to_strings());
                let text = expanded
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.metadata_step(state, format!("ENV {text}"));
                Ok(())
            }
            Instruction::Arg(decls) => self.dispatch_arg(decls, state, location),
            Instruction::Label(pairs) => {
                let expanded = self.expand_pairs(pairs, state, location)?;
                let labels = state.image.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in &expanded {
                    labels.insert(k.clone(), v.clone());
                }
                let text = expanded
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.metadata_step(state, format!("LABEL {text}"));
                Ok(())
            }
            Instruction::Maintainer(name) => {
                state.image.author = Some(name.clone());
                self.metadata_step(state, format!("MAINTAINER {name}"));
                Ok(())
            }
            Instruction::User(user) => {
                let user = self.expand(user, state, location)?;
                state.image.config.user = Some(user.clone());
                self.metadata_step(state, format!("USER {user}"));
                Ok(())
            }
            Instruction::Workdir(dir) => self.dispatch_workdir(dir, spanned, state),
            Instruction::Cmd(cmd) => {
                let args = self.with_shell(cmd, state);
                state.image.config.cmd = Some(args.clone());
                state.image.config.args_escaped = Some(true);
                state.cmd_set = true;
                self.metadata_step(state, format!("CMD {}", go_quote_list(&args)));
                Ok(())
            }
            Instruction::Entrypoint(cmd) => {
                let args = self.with_shell(cmd, state);
                state.image.config.entrypoint = Some(args.clone());
                if !state.cmd_set {
                    state.image.config.cmd = None;
                }
                self.metadata_step(state, format!("ENTRYPOINT {}", go_quote_list(&args)));
                Ok(())
            }
            Instruction::Shell(shell) => {
                state.image.config.shell = Some(shell.clone());
                self.metadata_step(state, format!("SHELL {}", go_quote_list(shell)));
                Ok(())
            }
            Instruction::Expose(ports) => {
                let mut all = Vec::new();
                for p in ports {
                    for word in self.expand_words(p, state, location)? {
                        all.extend(parse_port(&word).map_err(|m| {
                            Error::at(
                                ErrorKind::BadArguments {
                                    instruction: "EXPOSE".into(),
                                    message: m,
                                },
                                location,
                            )
                        })?);
                    }
                }
                let exposed = state.image.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &all {
                    exposed.insert(p.clone(), serde_json::Map::new());
                }
                self.metadata_step(
                    state,
                    format!(
                        "EXPOSE map[{}]",
                        all.iter()
                            .map(|p| format!("{p}:{{}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
                Ok(())
            }
            Instruction::Volume(volumes) => {
                let mut expanded = Vec::new();
                for v in volumes {
                    let v = self.expand(v, state, location)?;
                    if v.trim().is_empty() {
                        return Err(Error::at(
                            ErrorKind::BadArguments {
                                instruction: "VOLUME".into(),
                                message: "specified can not be an empty string".into(),
                            },
                            location,
                        ));
                    }
                    expanded.push(v);
                }
                let map = state.image.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &expanded {
                    map.insert(v.clone(), serde_json::Map::new());
                }
                self.metadata_step(state, format!("VOLUME [{}]", expanded.join(" ")));
                Ok(())
            }
            Instruction::StopSignal(signal) => {
                let signal = self.expand(signal, state, location)?;
                if !valid_signal(&signal) {
                    return Err(Error::at(
                        ErrorKind::BadArguments {
                            instruction: "STOPSIGNAL".into(),
                            message: format!("invalid signal: {signal}"),
                        },
                        location,
                    ));
                }
                state.image.config.stop_signal = Some(signal.clone());
                self.metadata_step(state, format!("STOPSIGNAL {signal}"));
                Ok(())
            }
            Instruction::Healthcheck(check) => {
                let config = healthcheck(check, state).map_err(|m| {
                    Error::at(
                        ErrorKind::BadArguments {
                            instruction: "HEALTHCHECK".into(),
                            message: m,
                        },
                        location,
                    )
                })?;
                state.image.config.healthcheck = Some(config);
                self.metadata_step(state, spanned.original.clone());
                Ok(())
            }
            Instruction::Onbuild(trigger) => {
                state
                    .image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.clone());
                self.metadata_step(state, format!("ONBUILD {trigger}"));
                Ok(())
            }
        }
    }

    /// Records a metadata-only step: no op, a history entry without a layer.
    fn metadata_step(&self, state: &mut StageState, created_by: String) {
        state.step += 1;
        state.image.history.push(History {
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: true,
            ..History::default()
        });
    }

    fn layer_history(&self, state: &mut StageState, created_by: String) {
        state.image.history.push(History {
            created_by: Some(format!("{created_by} # buildkit")),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: false,
            ..History::default()
        });
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

    fn dispatch_arg(
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
                self.plan
                    .meta_args
                    .iter()
                    .find(|(k, _)| *k == decl.name)
                    .and_then(|(_, v)| v.clone())
            };
            if let Some(v) = &value {
                state.env.set(&decl.name, v);
                texts.push(format!("{}={v}", decl.name));
            } else {
                texts.push(decl.name.clone());
            }
            state.build_args.push((decl.name.clone(), value));
        }
        self.metadata_step(state, format!("ARG {}", texts.join(" ")));
        Ok(())
    }

    fn with_shell(&self, cmd: &CommandLine, state: &StageState) -> Vec<String> {
        match cmd {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(line) => {
                let mut args = shell_of(state);
                args.push(line.clone());
                args
            }
        }
    }

    fn dispatch_run(
        &mut self,
        run: &RunArgs,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        if !run.mounts.is_empty() {
            return Err(Error::at(ErrorKind::NotSupported("RUN --mount".into()), location));
        }
        if !run.heredocs.is_empty() {
            return Err(Error::at(
                ErrorKind::NotSupported("RUN with a heredoc".into()),
                location,
            ));
        }
        let network = match run
            .network
            .as_deref()
            .map(|n| self.expand(n, state, location))
            .transpose()?
            .as_deref()
        {
            None | Some("default") => pb::NetMode::Unset,
            Some("none") => pb::NetMode::None,
            Some("host") => {
                return Err(Error::at(
                    ErrorKind::NotSupported("RUN --network=host".into()),
                    location,
                ));
            }
            Some(other) => {
                return Err(Error::at(
                    ErrorKind::BadFlag(format!(
                        "unsupported network mode {other:?}: expected default, none or host"
                    )),
                    location,
                ));
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
            Some("insecure") => {
                return Err(Error::at(
                    ErrorKind::NotSupported("RUN --security=insecure".into()),
                    location,
                ));
            }
            Some(other) => {
                return Err(Error::at(
                    ErrorKind::BadFlag(format!(
                        "unsupported security mode {other:?}: expected sandbox or insecure"
                    )),
                    location,
                ));
            }
        };
        let args = self.with_shell(&run.command, state);
        let meta = pb::Meta {
            args: args.clone(),
            env: state.env.to_strings(),
            cwd: workdir_of(state),
            user: state.image.config.user.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut exec = Exec::new(meta, network, security);
        exec.mount(
            "/",
            state.fs.as_ref(),
            MountOptions {
                output: true,
                ..Default::default()
            },
        );
        let options = self.op_options(state, &spanned.original, Some(location));
        state.fs = exec.finish(options).into_iter().next();
        let history = format!("RUN {}", run_command_string(&args, &state.build_args, &state.env));
        self.layer_history(state, history);
        Ok(())
    }

    fn context(&mut self) -> Output {
        if let Some(c) = &self.context {
            return c.clone();
        }
        let mut attrs = BTreeMap::new();
        attrs.insert(
            llb::attr::LOCAL_SHARED_KEY_HINT.to_string(),
            CONTEXT_NAME.to_string(),
        );
        if !self.options.context_excludes.is_empty() {
            attrs.insert(
                llb::attr::LOCAL_EXCLUDE_PATTERNS.to_string(),
                serde_json::to_string(&self.options.context_excludes).unwrap_or_default(),
            );
        }
        let options = OpOptions {
            description: Some("[internal] load build context".into()),
            ignore_cache: self.options.no_cache,
            ..OpOptions::default()
        };
        let output = Output::source(
            format!("{}{CONTEXT_NAME}", llb::attr::SCHEME_LOCAL),
            attrs,
            options,
        );
        self.context = Some(output.clone());
        output
    }

    fn copy_source(&mut self, stage: &Stage, index: usize) -> Option<Output> {
        match self.plan.copy_sources.get(&(stage.index, index))? {
            CopySource::Stage(s) => self.stages.get(s).and_then(|s| s.fs.clone()).or(None),
            CopySource::Image(reference) => {
                if let Some(o) = self.image_stages.get(reference) {
                    return Some(o.clone());
                }
                let resolved = &self.images[reference];
                let options = OpOptions {
                    description: Some(format!("[internal] load image {}", resolved.reference)),
                    ignore_cache: self.options.no_cache,
                    platform: Some(self.options.target_platform.clone()),
                    ..OpOptions::default()
                };
                let output = image_source(&resolved.reference, options);
                self.image_stages.insert(reference.clone(), output.clone());
                Some(output)
            }
        }
    }

    fn dispatch_copy(
        &mut self,
        stage: &Stage,
        index: usize,
        copy: &CopyArgs,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        let unsupported = |what: &str| {
            Err(Error::at(
                ErrorKind::NotSupported(format!("COPY {what}")),
                location,
            ))
        };
        if copy.link {
            return unsupported("--link");
        }
        if copy.parents {
            return unsupported("--parents");
        }
        if !copy.exclude.is_empty() {
            return unsupported("--exclude");
        }
        if !copy.heredocs.is_empty() {
            return unsupported("with a heredoc");
        }
        let owner = match &copy.chown {
            Some(chown) => Some(parse_chown(&self.expand(chown, state, location)?)),
            None => None,
        };
        let mode = match &copy.chmod {
            Some(chmod) => {
                let value = self.expand(chmod, state, location)?;
                match u32::from_str_radix(&value, 8) {
                    Ok(m) if m <= 0o7777 && !value.is_empty() => m as i32,
                    _ => {
                        return unsupported(&format!("--chmod={value} (only octal modes are supported yet)"));
                    }
                }
            }
            None => -1,
        };
        let from_context = copy.from.is_none();
        let source = if from_context {
            Some(self.context())
        } else {
            self.copy_source(stage, index)
        };
        let mut sources = Vec::with_capacity(copy.sources.len());
        for s in &copy.sources {
            sources.push(self.expand(s, state, location)?);
        }
        let dest_raw = self.expand(&copy.dest, state, location)?;
        let dest = path_relative_to_workdir(&workdir_of(state), &dest_raw);
        let wildcard = sources.iter().any(|s| s.contains(['*', '?', '[']));
        if (sources.len() > 1 || wildcard) && !dest.ends_with('/') && sources.len() > 1 {
            return Err(Error::at(
                ErrorKind::BadArguments {
                    instruction: "COPY".into(),
                    message:
                        "with more than one source file, the destination must be a directory and end with a /"
                            .into(),
                },
                location,
            ));
        }
        let mut chain = FileChain::new(state.fs.as_ref());
        for src in &sources {
            let src_path = clean_path(&format!("/{src}"));
            chain = chain.copy(
                source.as_ref(),
                pb::FileActionCopy {
                    src: src_path,
                    dest: dest.clone(),
                    owner: owner.clone(),
                    mode,
                    follow_symlink: true,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: sources.len() > 1,
                    timestamp: -1,
                    ..Default::default()
                },
            );
        }
        let options = self.op_options(state, &spanned.original, Some(location));
        state.fs = chain.finish(options);
        let mut message = String::from("COPY");
        if let Some(from) = &copy.from {
            message.push_str(&format!(" --from={from}"));
        }
        for s in &sources {
            message.push(' ');
            message.push_str(s);
        }
        message.push(' ');
        message.push_str(&dest_raw);
        self.layer_history(state, message);
        Ok(())
    }

    fn dispatch_workdir(
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
        state.image.config.working_dir = Some(path.clone());
        let owner = state
            .image
            .config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(parse_chown);
        let options = self.op_options(state, &spanned.original, Some(location));
        state.fs = FileChain::new(state.fs.as_ref())
            .mkdir(pb::FileActionMkDir {
                path: path.clone(),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: -1,
            })
            .finish(options);
        self.layer_history(state, format!("WORKDIR {path}"));
        Ok(())
    }
}

fn image_source(reference: &Reference, options: OpOptions) -> Output {
    Output::source(
        format!("{}{reference}", llb::attr::SCHEME_IMAGE),
        BTreeMap::new(),
        options,
    )
}

fn empty_image(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: ContainerConfig {
            env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
            working_dir: Some("/".into()),
            ..ContainerConfig::default()
        },
        ..ImageConfig::default()
    }
}

fn shell_of(state: &StageState) -> Vec<String> {
    match &state.image.config.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

fn workdir_of(state: &StageState) -> String {
    match state.image.config.working_dir.as_deref() {
        Some(d) if !d.is_empty() => d.to_string(),
        _ => "/".into(),
    }
}

/// Build args that BuildKit defines itself and never reports as unused.
fn is_builtin_arg(name: &str) -> bool {
    name.starts_with("BUILDKIT_")
        || matches!(
            name.to_ascii_uppercase().as_str(),
            "HTTP_PROXY" | "HTTPS_PROXY" | "FTP_PROXY" | "NO_PROXY" | "ALL_PROXY" | "SOURCE_DATE_EPOCH"
        )
}

/// `RUN |2 a=1 b=2 /bin/sh -c cmd`: the args in scope (their effective values, once each) then
/// the command, as BuildKit writes RUN history.
fn run_command_string(args: &[String], build_args: &[(String, Option<String>)], env: &Vars) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in build_args {
        let value = shell::Env::get(env, k)
            .map(str::to_string)
            .or_else(|| v.clone())
            .unwrap_or_default();
        match pairs.iter_mut().find(|(pk, _)| pk == k) {
            Some(p) => p.1 = value,
            None => pairs.push((k.clone(), value)),
        }
    }
    let mut parts = Vec::new();
    if !pairs.is_empty() {
        parts.push(format!("|{}", pairs.len()));
        parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|s| parser::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Lexically cleans an absolute path: no `.`, `..` or repeated slashes.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Resolves a COPY destination against the working directory, keeping a trailing `/` (which
/// says the destination is a directory).
fn path_relative_to_workdir(workdir: &str, dest: &str) -> String {
    if dest.is_empty() {
        return format!("{}/", clean_path(workdir)).replace("//", "/");
    }
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut cleaned = clean_path(&joined);
    let wants_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    if wants_dir && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

/// Parses `user[:group]` into an owner; numbers are ids, anything else a name resolved in the
/// destination filesystem.
fn parse_chown(spec: &str) -> pb::ChownOpt {
    let one = |s: &str| -> pb::UserOpt {
        let user = match s.parse::<u32>() {
            Ok(id) => pb::user_opt::User::ById(id),
            Err(_) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: s.to_string(),
                input: 0,
            }),
        };
        pb::UserOpt { user: Some(user) }
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    pb::ChownOpt {
        user: Some(one(user)),
        group: group.filter(|g| !g.is_empty()).map(one),
    }
}

/// Expands `80`, `80/udp` or `8000-8002/tcp` into `port/proto` keys.
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

/// Parses a Go duration (`1m30s`, `500ms`) into nanoseconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {text:?}");
    if text == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

fn healthcheck(check: &Healthcheck, state: &StageState) -> Result<HealthConfig, String> {
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
            let _ = state;
            let duration = |name: &str| -> Result<i64, String> {
                match options.get(name) {
                    None => Ok(0),
                    Some(v) => {
                        let d = parse_duration(v)?;
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
    fn paths() {
        assert_eq!(clean_path("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(path_relative_to_workdir("/app", "sub/"), "/app/sub/");
        assert_eq!(path_relative_to_workdir("/app", "."), "/app/");
        assert_eq!(path_relative_to_workdir("/app", "/abs"), "/abs");
        assert_eq!(path_relative_to_workdir("/app", "f"), "/app/f");
    }

    #[test]
    fn ports_and_durations() {
        assert_eq!(parse_port("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_port("1-3/tcp").unwrap(), vec!["1/tcp", "2/tcp", "3/tcp"]);
        assert!(parse_port("x").is_err());
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn syntax_directive() {
        assert!(is_builtin_syntax("docker/dockerfile:1"));
        assert!(is_builtin_syntax("docker/dockerfile:1.7-labs"));
        assert!(is_builtin_syntax("docker.io/docker/dockerfile:1.4"));
        assert!(is_builtin_syntax("docker/dockerfile"));
        assert!(!is_builtin_syntax("example.com/my/frontend:2"));
    }

    #[test]
    fn run_history_lists_args_once() {
        let mut env = Vars::default();
        env.set("a", "2");
        let args = vec![
            ("a".into(), Some("1".into())),
            ("b".into(), None),
            ("a".into(), Some("2".into())),
        ];
        let s = run_command_string(&["/bin/sh".into(), "-c".into(), "x".into()], &args, &env);
        assert_eq!(s, "|2 a=2 b= /bin/sh -c x");
    }
}
