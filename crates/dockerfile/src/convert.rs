//! Dockerfile → LLB: the compiler proper.
//!
//! [`compile`] checks the Dockerfile, works out which stages the target needs (`plan`: an
//! unreachable stage is never resolved or converted, even if broken), asks the
//! [`ImageResolver`] for the configs of the images those stages use (and, when a base image
//! carries ONBUILD triggers, for what the triggers use), then converts each needed stage
//! instruction by instruction into LLB ops plus an image config, the way BuildKit's
//! `dockerfile2llb` does. RUN lives in `run`, COPY and ADD in `copy`.
//!
//! Two environments are tracked per stage, as in BuildKit: the image config's `Env` (what ENV
//! sets; it ends up in the image) and the build environment of RUN steps (image ENV plus the
//! ARGs in scope; ARG values never reach the image config).
//!
//! The compiler lowers every feature of the Dockerfile into LLB; whether the engine can run a
//! given op (say a cache mount) is the engine's business, so `kiln debug llb` works for any
//! valid Dockerfile.

mod copy;
mod plan;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use llb::{FileChain, OpOptions, Output, SourceRange, pb};
use oci::{ContainerConfig, HealthConfig, History, ImageConfig, Platform, Reference};

use crate::error::{Error, ErrorKind, Location};
use crate::instructions::{
    self, ArgDecl, CommandLine, Dockerfile, Healthcheck, Instruction, KeyValue, Spanned, Stage,
};
use crate::parser;
use crate::shell::{self, Lexer, LexerOptions};
use plan::{Plan, Source};

/// The `PATH` a `FROM scratch` stage (and any image without one) gets on Linux.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The history comment BuildKit writes on every entry it creates.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Name of the local source holding the build context.
pub const CONTEXT_NAME: &str = "context";

/// A named build context (`--build-context NAME=…`): what FROM, `COPY --from` and
/// `RUN --mount from=` mean when they use NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory, transferred as the local source of this name.
    Local(String),
    /// An image.
    Image(Reference),
}

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
    /// Patterns of paths to leave out of local sources (from `.dockerignore`), by local name.
    pub local_excludes: BTreeMap<String, Vec<String>>,
    /// Named build contexts, by lower-cased name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// Identifies the client session local sources belong to, so that identical local sources
    /// of different clients never share a vertex. `None` for offline compiles.
    pub session: Option<String>,
    /// Never use cached results (`--no-cache`).
    pub no_cache: bool,
    /// `--add-host` entries every RUN gets in its `/etc/hosts`.
    pub extra_hosts: Vec<llb::pb::HostIp>,
    /// `--network`: the network of RUN steps that do not choose one (`Unset`: the worker's).
    pub default_network: llb::pb::NetMode,
    /// `--ulimit`s of every RUN step.
    pub ulimits: Vec<llb::pb::Ulimit>,
    /// `--shm-size` in bytes: every RUN step gets a `/dev/shm` of this size (0: the runtime's).
    pub shm_size: i64,
    /// `--label`s of the result image; they win over the Dockerfile's `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache-filter`: lower-cased names of the stages whose steps never use the cache.
    pub no_cache_filter: BTreeSet<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
            dockerfile_name: "Dockerfile".into(),
            local_excludes: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
            session: None,
            no_cache: false,
            extra_hosts: Vec::new(),
            default_network: llb::pb::NetMode::Unset,
            ulimits: Vec::new(),
            shm_size: 0,
            labels: BTreeMap::new(),
            no_cache_filter: BTreeSet::new(),
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
    /// Names of the local sources the build reads (the build context and named local contexts).
    pub locals: BTreeSet<String>,
}

/// Compiles `text` (the Dockerfile) into LLB.
pub async fn compile<R: ImageResolver>(
    text: &str,
    options: &BuildOptions,
    resolver: &R,
) -> Result<Compiled, Error> {
    let ast = parser::parse(text);
    // The `BUILDKIT_SYNTAX` build arg chooses the frontend before the directive does.
    if let Some(syntax) = options.build_args.get("BUILDKIT_SYNTAX") {
        if !is_builtin_syntax(syntax) {
            return Err(Error::global(ErrorKind::Syntax(syntax.clone())));
        }
    } else if let Some((syntax, line)) = &ast.directives.syntax
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
    unsupported_builtin_args(&options.build_args)?;
    let dockerfile = instructions::from_ast(&ast)?;
    let mut plan = Plan::new(&dockerfile, options)?;
    let mut images: BTreeMap<Reference, ResolvedImage> = BTreeMap::new();
    let mut triggers_read: BTreeSet<usize> = BTreeSet::new();
    // Resolve what the reachable stages use; ONBUILD triggers of resolved base images can
    // reach further stages and images, so repeat until nothing new appears.
    loop {
        for (reference, location) in plan.reach(&dockerfile) {
            if images.contains_key(&reference) {
                continue;
            }
            let resolved = resolver
                .resolve(&reference, &options.target_platform)
                .await
                .map_err(|message| {
                    Error::at(
                        ErrorKind::Resolve {
                            reference: reference.to_string(),
                            message,
                        },
                        location,
                    )
                })?;
            images.insert(reference, resolved);
        }
        let mut changed = false;
        let reachable: Vec<usize> = plan
            .reachable
            .iter()
            .copied()
            .filter(|s| !plan.replaced.contains(s))
            .collect();
        for s in reachable {
            let Source::Image(reference) = &plan.bases[s] else {
                continue;
            };
            if !triggers_read.insert(s) {
                continue;
            }
            let on_build = images
                .get(reference)
                .and_then(|r| r.config.config.on_build.clone())
                .unwrap_or_default();
            if on_build.is_empty() {
                continue;
            }
            let location = dockerfile.stages[s].location;
            let triggers = on_build
                .iter()
                .map(|t| plan::parse_trigger(t, location))
                .collect::<Result<Vec<_>, _>>()?;
            plan.set_triggers(&dockerfile, options, s, triggers)?;
            changed = true;
        }
        if !changed {
            break;
        }
    }
    let mut converter = Converter::new(&dockerfile, &plan, &images, options, text);
    converter.run()
}

/// BuildKit's built-in args that change what a build exports and that kiln does not implement
/// yet: turned on, they fail the build rather than being ignored. (As in BuildKit, a value that
/// is not a boolean leaves them off.)
fn unsupported_builtin_args(build_args: &BTreeMap<String, String>) -> Result<(), Error> {
    const UNSUPPORTED: [(&str, &str); 2] = [
        (
            "BUILDKIT_INLINE_CACHE",
            "embedding build cache metadata in the image",
        ),
        (
            "BUILDKIT_MULTI_PLATFORM",
            "exporting a multi-platform image index",
        ),
    ];
    for (name, what) in UNSUPPORTED {
        if let Some(value) = build_args.get(name)
            && parse_bool(value) == Some(true)
        {
            return Err(Error::global(ErrorKind::NotSupported(format!(
                "build arg {name}={value} ({what})"
            ))));
        }
    }
    Ok(())
}

/// A boolean the way Go's `strconv.ParseBool` (and so BuildKit) reads one.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Whether a `# syntax=` value names a Dockerfile frontend kiln implements itself: BuildKit's
/// own `docker/dockerfile` and `docker/dockerfile-upstream`, any tag or digest.
fn is_builtin_syntax(syntax: &str) -> bool {
    let name = syntax.split('@').next().unwrap_or(syntax);
    let repo = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => r,
        _ => name,
    };
    let repo = repo.trim_start_matches("docker.io/");
    matches!(repo, "docker/dockerfile" | "docker/dockerfile-upstream")
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
    /// Step names get `ONBUILD ` after the counter while triggers run.
    in_trigger: bool,
    /// The stage is named in `--no-cache-filter`: its steps never use the cache.
    ignore_cache: bool,
}

struct Converter<'a> {
    df: &'a Dockerfile,
    plan: &'a Plan,
    images: &'a BTreeMap<Reference, ResolvedImage>,
    options: &'a BuildOptions,
    text: &'a str,
    lexer: Lexer,
    locals: BTreeMap<String, Output>,
    stages: BTreeMap<usize, StageState>,
    image_sources: BTreeMap<Reference, Output>,
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
            locals: BTreeMap::new(),
            stages: BTreeMap::new(),
            image_sources: BTreeMap::new(),
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
        if !self.options.labels.is_empty() {
            let labels = image.config.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(self.options.labels.clone());
        }
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
            locals: self.locals.keys().cloned().collect(),
        })
    }

    fn op_options(&self, state: &mut StageState, text: &str, location: Option<Location>) -> OpOptions {
        state.step += 1;
        let width = state.steps.to_string().len();
        let onbuild = if state.in_trigger { "ONBUILD " } else { "" };
        let prefix = match &state.display_name {
            Some(n) => format!("[{n} {:>width$}/{}] {onbuild}", state.step, state.steps),
            None => format!("[{:>width$}/{}] {onbuild}", state.step, state.steps),
        };
        OpOptions {
            description: Some(format!("{prefix}{text}")),
            ignore_cache: self.options.no_cache || state.ignore_cache,
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

    /// The step name of an instruction: its text with variables expanded where they are set
    /// and the keyword upper-cased, as BuildKit shows it.
    fn display_text(&self, original: &str, state: &StageState) -> String {
        let lexer = self.lexer.with_options(LexerOptions {
            raw_quotes: true,
            skip_unset_env: true,
            ..LexerOptions::default()
        });
        let expanded = lexer
            .process_word(original, &state.env)
            .unwrap_or_else(|_| original.to_string());
        match expanded.split_once(' ') {
            Some((keyword, rest)) => format!("{} {rest}", keyword.to_ascii_uppercase()),
            None => expanded.to_ascii_uppercase(),
        }
    }

    /// The filesystem a [`Source`] stands for.
    fn source_state(&mut self, source: &Source) -> Option<Output> {
        match source {
            Source::Scratch => None,
            Source::Stage(s) => self.stages.get(s).and_then(|s| s.fs.clone()),
            Source::Local(name) => Some(self.local(name)),
            Source::Image(reference) => {
                if let Some(o) = self.image_sources.get(reference) {
                    return Some(o.clone());
                }
                let pinned = self
                    .images
                    .get(reference)
                    .map_or_else(|| reference.clone(), |r| r.reference.clone());
                let options = OpOptions {
                    description: Some(format!("[internal] load image {pinned}")),
                    ignore_cache: self.options.no_cache,
                    platform: Some(self.options.target_platform.clone()),
                    ..OpOptions::default()
                };
                let output = image_source(&pinned, options);
                self.image_sources.insert(reference.clone(), output.clone());
                Some(output)
            }
        }
    }

    /// The local source `name` (the build context or a named local context), made once.
    fn local(&mut self, name: &str) -> Output {
        if let Some(c) = self.locals.get(name) {
            return c.clone();
        }
        let mut attrs = BTreeMap::new();
        attrs.insert(llb::attr::LOCAL_SHARED_KEY_HINT.to_string(), name.to_string());
        if let Some(excludes) = self.options.local_excludes.get(name).filter(|e| !e.is_empty()) {
            attrs.insert(
                llb::attr::LOCAL_EXCLUDE_PATTERNS.to_string(),
                serde_json::to_string(excludes).unwrap_or_default(),
            );
        }
        if let Some(session) = &self.options.session {
            attrs.insert(llb::attr::LOCAL_SESSION.to_string(), session.clone());
        }
        let description = if name == CONTEXT_NAME {
            "[internal] load build context".to_string()
        } else {
            format!("[context {name}] load from client")
        };
        let options = OpOptions {
            description: Some(description),
            ignore_cache: self.options.no_cache,
            ..OpOptions::default()
        };
        let output = Output::source(format!("{}{name}", llb::attr::SCHEME_LOCAL), attrs, options);
        self.locals.insert(name.to_string(), output.clone());
        output
    }

    fn convert_stage(&mut self, stage: &Stage) -> Result<StageState, Error> {
        let display_name = (self.df.stages.len() > 1).then(|| {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index))
        });
        let triggers = self.plan.triggers.get(&stage.index).cloned().unwrap_or_default();
        let steps = stage.instructions.len() + triggers.len() + 1;
        self.check_platform(stage)?;
        let ignore_cache = stage
            .name
            .as_ref()
            .is_some_and(|name| self.options.no_cache_filter.contains(&name.to_ascii_lowercase()));
        let fresh = |display_name: Option<String>| StageState {
            fs: None,
            image: empty_image(&self.options.target_platform),
            env: Vars::from_strings(&[format!("PATH={DEFAULT_PATH}")]),
            build_args: Vec::new(),
            cmd_set: false,
            display_name,
            step: 1,
            steps,
            in_trigger: false,
            ignore_cache,
        };
        let mut state = match &self.plan.bases[stage.index] {
            Source::Scratch => fresh(display_name),
            Source::Local(name) => {
                let mut state = fresh(display_name);
                state.fs = Some(self.local(name));
                state
            }
            Source::Stage(b) => {
                let base = &self.stages[b];
                StageState {
                    cmd_set: false,
                    display_name,
                    step: 1,
                    steps,
                    in_trigger: false,
                    ignore_cache,
                    ..base.clone()
                }
            }
            Source::Image(reference) => {
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
                    in_trigger: false,
                    ignore_cache,
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
                state
            }
        };
        // A stage replaced by a named context is that context, nothing more.
        if self.plan.replaced.contains(&stage.index) {
            return Ok(state);
        }
        // ONBUILD triggers of the base run first, and are not passed on to later stages.
        if !triggers.is_empty() {
            state.image.config.on_build = None;
            state.in_trigger = true;
            let offset = stage.instructions.len();
            for (i, spanned) in triggers.iter().enumerate() {
                self.dispatch(stage.index, offset + i, spanned, &mut state)?;
            }
            state.in_trigger = false;
        }
        for (i, spanned) in stage.instructions.iter().enumerate() {
            self.dispatch(stage.index, i, spanned, &mut state)?;
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
        stage: usize,
        index: usize,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        let bad = |instruction: &str, message: String| {
            Error::at(
                ErrorKind::BadArguments {
                    instruction: instruction.into(),
                    message,
                },
                location,
            )
        };
        match &spanned.instruction {
            Instruction::Run(run) => self.dispatch_run(stage, index, run, spanned, state),
            Instruction::Copy(copy) => self.dispatch_copy(stage, index, copy, false, spanned, state),
            Instruction::Add(copy) => self.dispatch_copy(stage, index, copy, true, spanned, state),
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
                    .map(|(k, v)| format!(" {k}={v}"))
                    .collect::<String>();
                self.metadata_step(state, format!("LABEL{text}"));
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
                self.metadata_step(state, format!("SHELL [{}]", shell.join(" ")));
                Ok(())
            }
            Instruction::Expose(ports) => {
                let mut all = Vec::new();
                for p in ports {
                    for word in self.expand_words(p, state, location)? {
                        all.extend(parse_port(&word).map_err(|m| bad("EXPOSE", m))?);
                    }
                }
                let exposed = state.image.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in &all {
                    exposed.insert(p.clone(), serde_json::Map::new());
                }
                self.metadata_step(state, format!("EXPOSE [{}]", all.join(" ")));
                Ok(())
            }
            Instruction::Volume(volumes) => {
                let mut expanded = Vec::new();
                for v in volumes {
                    let v = self.expand(v, state, location)?;
                    if v.trim().is_empty() {
                        return Err(bad("VOLUME", "specified can not be an empty string".into()));
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
                    return Err(bad("STOPSIGNAL", format!("invalid signal: {signal}")));
                }
                state.image.config.stop_signal = Some(signal.clone());
                self.metadata_step(state, format!("STOPSIGNAL {signal}"));
                Ok(())
            }
            Instruction::Healthcheck(check) => {
                let config = healthcheck(check).map_err(|m| bad("HEALTHCHECK", m))?;
                let text = format!("HEALTHCHECK {}", go_health(&config));
                state.image.config.healthcheck = Some(config);
                self.metadata_step(state, text);
                Ok(())
            }
            Instruction::Onbuild(trigger) => {
                // Recorded for whoever builds on this image; no history entry, as in BuildKit.
                state
                    .image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.clone());
                state.step += 1;
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

    /// Records a step that made a layer.
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
        if path == "/" {
            self.metadata_step(state, "WORKDIR /".into());
            return Ok(());
        }
        // The directory is created, owned by the current user, even if nothing uses it.
        let owner = state
            .image
            .config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(parse_chown);
        let display = self.display_text(&spanned.original, state);
        let options = self.op_options(state, &display, Some(location));
        state.fs = FileChain::new(state.fs.as_ref())
            .mkdir(pb::FileActionMkDir {
                path: path.clone(),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: -1,
            })
            .finish(options);
        state.image.history.push(History {
            created_by: Some(format!("WORKDIR {path}")),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer: false,
            ..History::default()
        });
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

/// Go's `%q` of BuildKit's health check struct, as it appears in history:
/// `&{["CMD-SHELL" "x"] "30s" "5s" "0s" "0s" '\x03'}`.
fn go_health(h: &HealthConfig) -> String {
    let retries = u32::try_from(h.retries)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\0');
    format!(
        "&{{{} {} {} {} {} {}}}",
        go_quote_list(h.test.as_deref().unwrap_or(&[])),
        parser::go_quote(&go_duration(h.interval)),
        parser::go_quote(&go_duration(h.timeout)),
        parser::go_quote(&go_duration(h.start_period)),
        parser::go_quote(&go_duration(h.start_interval)),
        go_rune(retries),
    )
}

/// Go's `%q` of a rune.
fn go_rune(c: char) -> String {
    let inner = parser::go_quote(&c.to_string());
    let inner = &inner[1..inner.len() - 1];
    let inner = if inner == "\\\"" {
        "\""
    } else if inner == "'" {
        "\\'"
    } else {
        inner
    };
    format!("'{inner}'")
}

/// Go's `time.Duration.String()`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let negative = nanos < 0;
    let n = nanos.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", trim_fraction(n as f64 / 1e3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", trim_fraction(n as f64 / 1e6));
    }
    let total_seconds = n / 1_000_000_000;
    let fraction = n % 1_000_000_000;
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = total_seconds % 60;
    let mut out = String::from(sign);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let frac = if fraction == 0 {
        String::new()
    } else {
        format!(".{:09}", fraction).trim_end_matches('0').to_string()
    };
    out.push_str(&format!("{seconds}{frac}s"));
    out
}

fn trim_fraction(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Lexically cleans a path into an absolute one: no `.`, `..` or repeated slashes.
pub fn clean_path(path: &str) -> String {
    oci::path::clean(&format!("/{path}"))
}

/// Resolves a COPY destination against the working directory, keeping a trailing `/` (which
/// says the destination is a directory); `.` and the empty destination mean the directory.
fn path_relative_to_workdir(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut cleaned = clean_path(&joined);
    let wants_dir = dest.ends_with('/') || dest.ends_with("/.");
    if wants_dir && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}
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
        assert_eq!(path_relative_to_workdir("/app", ""), "/app/");
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
    fn go_formatting() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_rune('\u{3}'), r"'\x03'");
        let h = HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            interval: 5_000_000_000,
            timeout: 3_000_000_000,
            retries: 3,
            ..HealthConfig::default()
        };
        assert_eq!(
            go_health(&h),
            r#"&{["CMD-SHELL" "true"] "5s" "3s" "0s" "0s" '\x03'}"#
        );
    }

    #[test]
    fn builtin_args_that_change_exports_fail_when_on() {
        let args = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(unsupported_builtin_args(&args("BUILDKIT_INLINE_CACHE", "0")).is_ok());
        assert!(unsupported_builtin_args(&args("BUILDKIT_INLINE_CACHE", "yes")).is_ok());
        let err = unsupported_builtin_args(&args("BUILDKIT_INLINE_CACHE", "1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "build arg BUILDKIT_INLINE_CACHE=1 (embedding build cache metadata in the image) is not supported yet"
        );
        assert!(unsupported_builtin_args(&args("BUILDKIT_MULTI_PLATFORM", "true")).is_err());
        assert!(unsupported_builtin_args(&args("BUILDKIT_BUILD_NAME", "x")).is_ok());
    }

    #[test]
    fn syntax_directive() {
        assert!(is_builtin_syntax("docker/dockerfile:1"));
        assert!(is_builtin_syntax("docker/dockerfile:1.7-labs"));
        assert!(is_builtin_syntax("docker.io/docker/dockerfile:1.4"));
        assert!(is_builtin_syntax("docker/dockerfile"));
        assert!(is_builtin_syntax("docker/dockerfile:experimental"));
        assert!(is_builtin_syntax("docker/dockerfile-upstream:master"));
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
