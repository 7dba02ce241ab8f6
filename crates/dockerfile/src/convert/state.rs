//! The converter and the state of a stage while it is converted, with the helpers every
//! instruction uses: expanding words, naming steps, recording history, finding sources.
//!
//! Two environments are tracked per stage, as in BuildKit: the image config's `Env` (what ENV
//! sets; it ends up in the image) and the build environment of RUN steps (image ENV plus the
//! ARGs in scope; ARG values never reach the image config).

use std::collections::BTreeMap;

use llb::{OpOptions, Output, SourceRange, pb};
use oci::{ContainerConfig, History, ImageConfig, Platform, Reference};

use super::budget::{Budget, STRING_COST};
use super::options::{BuildOptions, CONTEXT_NAME, DEFAULT_PATH, HISTORY_COMMENT, ResolvedImage};
use super::plan::{Plan, Source};
use super::vars::{Ordered, Vars};
use crate::error::{Error, Location};
use crate::instructions::Dockerfile;
use crate::shell::{Lexer, LexerOptions};

/// The state of one stage while it is converted.
#[derive(Clone)]
pub(super) struct StageState {
    pub(super) fs: Option<Output>,
    /// The image config, except for `Env` once an ENV has changed it (see `image_env`).
    pub(super) image: ImageConfig,
    /// The image config's `Env` once an ENV has set something, kept indexed so each ENV costs
    /// what it sets rather than the size of the environment; `None` while `image.config.env`
    /// is still exactly what the stage started from.
    pub(super) image_env: Option<Vars>,
    /// The build environment: image ENV plus ARGs in scope.
    pub(super) env: Vars,
    /// Declared ARGs with their values, in order of first declaration (for RUN history and
    /// inheritance).
    pub(super) build_args: Ordered<Option<String>>,
    pub(super) cmd_set: bool,
    pub(super) display_name: Option<String>,
    pub(super) step: usize,
    pub(super) steps: usize,
    /// Step names get `ONBUILD ` after the counter while triggers run.
    pub(super) in_trigger: bool,
    /// The stage is named in `--no-cache-filter`: its steps never use the cache.
    pub(super) ignore_cache: bool,
}

impl StageState {
    /// The image config as it stands, `Env` included.
    pub(super) fn image_config(&self) -> ImageConfig {
        let mut image = self.image.clone();
        if let Some(env) = &self.image_env {
            image.config.env = Some(env.to_strings());
        }
        image
    }

    /// About how many bytes a copy of this state holds, for the [`Budget`].
    pub(super) fn copy_cost(&self) -> usize {
        let vars = |v: &Vars| v.text_len() + v.len() * STRING_COST;
        let image_env = self.image_env.as_ref().map_or(0, vars);
        let args: usize = self
            .build_args
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, String::len) + STRING_COST)
            .sum();
        config_cost(&self.image) + image_env + vars(&self.env) + args
    }
}

/// About how many bytes a copy of an image config holds: its lists and maps, which can grow.
pub(super) fn config_cost(image: &ImageConfig) -> usize {
    let strings = |list: &[String]| list.iter().map(|s| s.len() + STRING_COST).sum::<usize>();
    let c = &image.config;
    let keys = |map: Option<&BTreeMap<String, serde_json::Map<String, serde_json::Value>>>| {
        map.map_or(0, |m| m.keys().map(|k| k.len() + STRING_COST).sum::<usize>())
    };
    let history: usize = image
        .history
        .iter()
        .map(|h| h.created_by.as_ref().map_or(0, String::len) + STRING_COST)
        .sum();
    let labels: usize = c
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len() + STRING_COST)
        .sum();
    history
        + labels
        + [&c.env, &c.cmd, &c.entrypoint, &c.shell, &c.on_build]
            .into_iter()
            .map(|list| list.as_deref().map_or(0, strings))
            .sum::<usize>()
        + keys(c.exposed_ports.as_ref())
        + keys(c.volumes.as_ref())
}

pub(super) struct Converter<'a> {
    pub(super) df: &'a Dockerfile,
    pub(super) plan: &'a Plan,
    pub(super) images: &'a BTreeMap<Reference, ResolvedImage>,
    pub(super) options: &'a BuildOptions,
    pub(super) text: &'a str,
    pub(super) lexer: Lexer,
    pub(super) budget: Budget,
    pub(super) locals: BTreeMap<String, Output>,
    /// The filesystem of every converted stage (what `--from` and later stages read).
    pub(super) outputs: BTreeMap<usize, Option<Output>>,
    /// The whole state of converted stages that are still needed: as the base of a stage not
    /// converted yet, or as the target.
    pub(super) states: BTreeMap<usize, StageState>,
    /// How many stages not converted yet are built on each stage: the last one takes the
    /// state instead of copying it, so a chain of stages costs no copies.
    pub(super) base_uses: BTreeMap<usize, usize>,
    pub(super) image_sources: BTreeMap<Reference, Output>,
    /// Every op with inputs made so far; declared last, so it is dropped last.
    pub(super) ops: Ops,
}

/// The ops with inputs the converter made, oldest first. Ops hold their inputs, so a stage of
/// 100 000 RUNs is a chain 100 000 deep, and both computing an op's digest (which needs its
/// inputs' digests) and freeing it (which frees its inputs) would recurse down the chain and
/// overflow the stack. So each op's digest is computed as it is made, when its inputs already
/// have theirs, and the ops are dropped newest first, each freeing only itself.
#[derive(Default)]
pub(super) struct Ops(Vec<Output>);

impl Ops {
    /// Records an op just made.
    pub(super) fn made(&mut self, op: Option<Output>) -> Option<Output> {
        if let Some(op) = &op {
            op.digest();
            self.0.push(op.clone());
        }
        op
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        while let Some(op) = self.0.pop() {
            drop(op);
        }
    }
}

impl<'a> Converter<'a> {
    pub(super) fn new(
        df: &'a Dockerfile,
        plan: &'a Plan,
        images: &'a BTreeMap<Reference, ResolvedImage>,
        options: &'a BuildOptions,
        text: &'a str,
        budget: Budget,
    ) -> Self {
        Converter {
            df,
            plan,
            images,
            options,
            text,
            lexer: Lexer::new(df.escape),
            budget,
            locals: BTreeMap::new(),
            outputs: BTreeMap::new(),
            states: BTreeMap::new(),
            base_uses: BTreeMap::new(),
            image_sources: BTreeMap::new(),
            ops: Ops::default(),
        }
    }

    /// The options of the op for the next step: its name (counted against the budget), cache
    /// policy, source lines and platform.
    pub(super) fn op_options(
        &self,
        state: &mut StageState,
        text: &str,
        location: Location,
    ) -> Result<OpOptions, Error> {
        state.step += 1;
        let width = state.steps.to_string().len();
        let onbuild = if state.in_trigger { "ONBUILD " } else { "" };
        let prefix = match &state.display_name {
            Some(n) => format!("[{n} {:>width$}/{}] {onbuild}", state.step, state.steps),
            None => format!("[{:>width$}/{}] {onbuild}", state.step, state.steps),
        };
        let description = format!("{prefix}{text}");
        self.budget.text(&description, location)?;
        Ok(OpOptions {
            description: Some(description),
            ignore_cache: self.options.no_cache || state.ignore_cache,
            locations: vec![SourceRange {
                source_index: 0,
                start_line: location.start_line as i32,
                end_line: location.end_line as i32,
            }],
            platform: Some(self.options.target_platform.clone()),
        })
    }

    /// Options of an internal op (`[internal] …`).
    pub(super) fn internal_options(&self, name: &str) -> OpOptions {
        OpOptions {
            description: Some(format!("[internal] {name}")),
            ignore_cache: self.options.no_cache,
            locations: Vec::new(),
            platform: Some(self.options.target_platform.clone()),
        }
    }

    /// The step name of an instruction: its text with variables expanded where they are set
    /// and the keyword upper-cased, as BuildKit shows it.
    pub(super) fn display_text(
        &self,
        original: &str,
        state: &StageState,
        location: Location,
    ) -> Result<String, Error> {
        let lexer = self.lexer.with_options(LexerOptions {
            raw_quotes: true,
            skip_unset_env: true,
            ..LexerOptions::default()
        });
        let expanded = self
            .budget
            .expand_or_keep(&lexer, original, &state.env, location)?;
        Ok(match expanded.split_once(' ') {
            Some((keyword, rest)) => format!("{} {rest}", keyword.to_ascii_uppercase()),
            None => expanded.to_ascii_uppercase(),
        })
    }

    pub(super) fn expand(&self, word: &str, state: &StageState, location: Location) -> Result<String, Error> {
        self.budget.expand(&self.lexer, word, &state.env, location)
    }

    pub(super) fn expand_words(
        &self,
        word: &str,
        state: &StageState,
        location: Location,
    ) -> Result<Vec<String>, Error> {
        self.budget.expand_words(&self.lexer, word, &state.env, location)
    }

    /// Records a metadata-only step: no op, a history entry without a layer.
    pub(super) fn metadata_step(
        &self,
        state: &mut StageState,
        created_by: String,
        location: Location,
    ) -> Result<(), Error> {
        state.step += 1;
        self.history(state, created_by, true, location)
    }

    /// Records a step that made a layer.
    pub(super) fn layer_history(
        &self,
        state: &mut StageState,
        created_by: String,
        location: Location,
    ) -> Result<(), Error> {
        self.history(state, format!("{created_by} # buildkit"), false, location)
    }

    /// Adds a history entry (counted against the budget).
    pub(super) fn history(
        &self,
        state: &mut StageState,
        created_by: String,
        empty_layer: bool,
        location: Location,
    ) -> Result<(), Error> {
        self.budget.text(&created_by, location)?;
        state.image.history.push(History {
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
            ..History::default()
        });
        Ok(())
    }

    /// The filesystem a [`Source`] stands for.
    pub(super) fn source_state(&mut self, source: &Source) -> Option<Output> {
        match source {
            Source::Scratch => None,
            Source::Stage(s) => self.outputs.get(s).cloned().flatten(),
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
    pub(super) fn local(&mut self, name: &str) -> Output {
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
}

pub(super) fn image_source(reference: &Reference, options: OpOptions) -> Output {
    Output::source(
        format!("{}{reference}", llb::attr::SCHEME_IMAGE),
        BTreeMap::new(),
        options,
    )
}

/// The config of a stage that starts from nothing.
pub(super) fn empty_image(platform: &Platform) -> ImageConfig {
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

pub(super) fn shell_of(state: &StageState) -> Vec<String> {
    match &state.image.config.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

pub(super) fn workdir_of(state: &StageState) -> String {
    match state.image.config.working_dir.as_deref() {
        Some(d) if !d.is_empty() => d.to_string(),
        _ => "/".into(),
    }
}

/// `--chown` (and WORKDIR's owner): `user[:group]`, each a number or a name.
pub(super) fn parse_chown(spec: &str) -> pb::ChownOpt {
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

/// Removes leading tabs from every line (`<<-`).
pub(super) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}
