//! Before converting anything: which stage is the target, where each stage's filesystem comes
//! from, what every `--from` names, which stages the target needs, and which images they use.
//!
//! Only stages reachable from the target are ever resolved or converted, so a broken stage
//! nobody uses does not break the build (BuildKit's `testEagerNamedContextLookup`).
//!
//! Everything here is linear in the Dockerfile: stages are found by name through the
//! Dockerfile's index, global ARGs live in indexed maps, the ONBUILD triggers of a stage are
//! parsed once however many stages build on it, and reachability grows incrementally as
//! triggers of base images reveal more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use oci::Reference;

use super::budget::Budget;
use super::mount::parse_mount;
use super::options::{BuildOptions, NamedContext};
use super::vars::{Ordered, Vars};
use crate::error::{Error, ErrorKind, Location, suggest};
use crate::instructions::{self, CopyArgs, Dockerfile, Instruction, Spanned};
use crate::shell::Lexer;

/// Where a filesystem comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// The empty filesystem.
    Scratch,
    /// An earlier stage.
    Stage(usize),
    /// An image.
    Image(Reference),
    /// A local directory (a named build context).
    Local(String),
}

/// Identifies a `--from` inside an instruction: (stage, instruction index, position), where
/// triggers of a stage are numbered after its own instructions (see [`Plan::triggers`]).
pub(super) type RefKey = (usize, usize, usize);

/// ONBUILD triggers, parsed; shared by every stage that runs them.
pub(super) type Triggers = Arc<[Spanned]>;

/// The result of the analysis.
pub(super) struct Plan {
    pub(super) target: usize,
    pub(super) bases: Vec<Source>,
    /// Global ARGs after build-arg overrides, in declaration order (platform ARGs first).
    pub(super) meta_args: Ordered<Option<String>>,
    /// The global ARGs that have a value: what FROM lines and `--platform` expand with.
    pub(super) meta_env: Vars,
    /// What each `COPY --from` / `RUN --mount from=` names.
    pub(super) refs: BTreeMap<RefKey, Source>,
    /// ONBUILD triggers to run at the start of a stage, already parsed.
    pub(super) triggers: BTreeMap<usize, Triggers>,
    pub(super) reachable: BTreeSet<usize>,
    pub(super) used_args: BTreeSet<String>,
    /// Stages replaced by the named context of their name (`--build-context NAME=…`): their
    /// base is that context and none of their instructions run, as in BuildKit.
    pub(super) replaced: BTreeSet<usize>,
}

impl Plan {
    pub(super) fn new(df: &Dockerfile, options: &BuildOptions, budget: &Budget) -> Result<Plan, Error> {
        let lexer = Lexer::new(df.escape);
        let target = target_stage(df, options)?;
        for name in &options.no_cache_filter {
            if df.stage_by_name(name).is_none() {
                let names = df.stages.iter().filter_map(|s| s.name.as_deref());
                return Err(Error::global(ErrorKind::NoCacheFilterNotFound {
                    name: name.clone(),
                    suggestion: suggest(name, names),
                }));
            }
        }
        let mut plan = Plan {
            target,
            bases: Vec::with_capacity(df.stages.len()),
            meta_args: Ordered::default(),
            meta_env: Vars::default(),
            refs: BTreeMap::new(),
            triggers: BTreeMap::new(),
            reachable: BTreeSet::new(),
            used_args: BTreeSet::new(),
            replaced: BTreeSet::new(),
        };
        plan.global_args(df, options, &lexer, budget)?;
        for stage in &df.stages {
            if let Some(named) = stage.name.as_deref().and_then(|n| named_context(options, n)) {
                plan.bases.push(named);
                plan.replaced.insert(stage.index);
                continue;
            }
            let base = plan.base_of(df, options, stage, &lexer, budget)?;
            plan.bases.push(base);
            for (i, spanned) in stage.instructions.iter().enumerate() {
                plan.add_refs(df, options, stage.index, i, spanned)?;
                if let Instruction::Arg(args) = &spanned.instruction {
                    plan.used_args.extend(args.iter().map(|a| a.name.clone()));
                }
            }
        }
        plan.stage_triggers(df, options, budget)?;
        Ok(plan)
    }

    /// Global ARGs: build-arg values override defaults; defaults may use earlier globals.
    fn global_args(
        &mut self,
        df: &Dockerfile,
        options: &BuildOptions,
        lexer: &Lexer,
        budget: &Budget,
    ) -> Result<(), Error> {
        let target_name = df.stages[self.target]
            .name
            .clone()
            .unwrap_or_else(|| "default".into());
        for (name, value) in platform_args(options) {
            self.set_meta_arg(&name, Some(value));
        }
        self.set_meta_arg("TARGETSTAGE", Some(target_name));
        for (decl, location) in &df.meta_args {
            self.used_args.insert(decl.name.clone());
            let value = match options.build_args.get(&decl.name) {
                Some(v) => Some(v.clone()),
                None => match &decl.default {
                    Some(d) => Some(budget.expand(lexer, d, &self.meta_env, *location)?),
                    None => self.meta_args.value(&decl.name).cloned().flatten(),
                },
            };
            self.set_meta_arg(&decl.name, value);
        }
        Ok(())
    }

    fn set_meta_arg(&mut self, name: &str, value: Option<String>) {
        // A global ARG only loses its value if it never had one, so `meta_env` never needs an
        // entry removed.
        if let Some(v) = &value {
            self.meta_env.set(name, v.clone());
        }
        self.meta_args.set(name, value);
    }

    /// A stage built on another stage runs that stage's ONBUILD triggers first.
    fn stage_triggers(
        &mut self,
        df: &Dockerfile,
        options: &BuildOptions,
        budget: &Budget,
    ) -> Result<(), Error> {
        let mut parsed: HashMap<usize, Triggers> = HashMap::new();
        for stage in &df.stages {
            if self.replaced.contains(&stage.index) {
                continue;
            }
            let Source::Stage(b) = self.bases[stage.index] else {
                continue;
            };
            let triggers = match parsed.get(&b) {
                Some(t) => t.clone(),
                None => {
                    let t: Triggers = onbuild_triggers(&df.stages[b].instructions)?.into();
                    parsed.insert(b, t.clone());
                    t
                }
            };
            // Every stage that inherits the triggers runs them again.
            budget.texts(triggers.iter().map(|t| t.original.as_str()), stage.location)?;
            self.set_triggers(df, options, stage.index, triggers)?;
        }
        Ok(())
    }

    /// Records the triggers of `stage` and what they refer to.
    pub(super) fn set_triggers(
        &mut self,
        df: &Dockerfile,
        options: &BuildOptions,
        stage: usize,
        triggers: Triggers,
    ) -> Result<(), Error> {
        let offset = df.stages[stage].instructions.len();
        for (i, spanned) in triggers.iter().enumerate() {
            self.add_refs(df, options, stage, offset + i, spanned)?;
        }
        if !triggers.is_empty() {
            self.triggers.insert(stage, triggers);
        }
        Ok(())
    }

    fn base_of(
        &self,
        df: &Dockerfile,
        options: &BuildOptions,
        stage: &instructions::Stage,
        lexer: &Lexer,
        budget: &Budget,
    ) -> Result<Source, Error> {
        let name = budget.expand(lexer, &stage.base, &self.meta_env, stage.location)?;
        if name.is_empty() {
            return Err(Error::at(
                ErrorKind::BlankBaseName(stage.base.clone()),
                stage.location,
            ));
        }
        if let Some(named) = named_context(options, &name) {
            return Ok(named);
        }
        if name.eq_ignore_ascii_case("scratch") {
            return Ok(Source::Scratch);
        }
        // As in BuildKit, a base name is looked up among the stages defined before this one
        // only: in `FROM nginx AS nginx` (or when only a later stage has the name) it is an image.
        if let Some(i) = df.stage_by_name(&name)
            && i < stage.index
        {
            return Ok(Source::Stage(i));
        }
        let reference =
            Reference::parse(&name).map_err(|e| Error::at(ErrorKind::BadReference(e), stage.location))?;
        Ok(Source::Image(reference))
    }

    fn add_refs(
        &mut self,
        df: &Dockerfile,
        options: &BuildOptions,
        stage: usize,
        index: usize,
        spanned: &Spanned,
    ) -> Result<(), Error> {
        match &spanned.instruction {
            Instruction::Copy(CopyArgs { from: Some(from), .. }) => {
                let source = resolve_from(df, options, stage, from, "COPY --from", spanned.location)?;
                self.refs.insert((stage, index, 0), source);
            }
            Instruction::Run(run) => {
                for (m, spec) in run.mounts.iter().enumerate() {
                    let mount = parse_mount(spec, None).map_err(|e| e.at(spanned.location))?;
                    if let Some(from) = &mount.from {
                        let what = "RUN --mount from";
                        let source = resolve_from(df, options, stage, from, what, spanned.location)?;
                        self.refs.insert((stage, index, m), source);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Marks `roots`, and everything they need, reachable; `roots` that already were are
    /// looked at again (their triggers may have added references). Returns the stages that
    /// were not reachable before, in order.
    pub(super) fn reach(&mut self, roots: &[usize]) -> Vec<usize> {
        let mut new = Vec::new();
        let mut todo = Vec::new();
        for &root in roots {
            if self.reachable.insert(root) {
                new.push(root);
            }
            todo.push(root);
        }
        while let Some(s) = todo.pop() {
            let mut needs: Vec<usize> = Vec::new();
            if let Source::Stage(b) = &self.bases[s] {
                needs.push(*b);
            }
            for (_, source) in self.refs.range((s, 0, 0)..(s + 1, 0, 0)) {
                if let Source::Stage(d) = source {
                    needs.push(*d);
                }
            }
            for d in needs {
                if self.reachable.insert(d) {
                    new.push(d);
                    todo.push(d);
                }
            }
        }
        new.sort_unstable();
        new
    }

    /// The images `stages` use, in stage order, each with the place that needs it.
    pub(super) fn images_of(&self, df: &Dockerfile, stages: &[usize]) -> Vec<(Reference, Location)> {
        let mut images = Vec::new();
        for &s in stages {
            if let Source::Image(r) = &self.bases[s] {
                images.push((r.clone(), df.stages[s].location));
            }
            for ((_, i, _), source) in self.refs.range((s, 0, 0)..(s + 1, 0, 0)) {
                if let Source::Image(r) = source {
                    images.push((r.clone(), self.location_of(df, s, *i)));
                }
            }
        }
        images
    }

    fn location_of(&self, df: &Dockerfile, stage: usize, index: usize) -> Location {
        let own = &df.stages[stage].instructions;
        match own.get(index) {
            Some(s) => s.location,
            None => self
                .triggers
                .get(&stage)
                .and_then(|t| t.get(index - own.len()))
                .map_or(df.stages[stage].location, |s| s.location),
        }
    }
}

/// The stage `--target` names, or the last one.
fn target_stage(df: &Dockerfile, options: &BuildOptions) -> Result<usize, Error> {
    let Some(t) = &options.target else {
        return Ok(df.stages.len() - 1);
    };
    let t = t.to_ascii_lowercase();
    df.stage_by_name(&t).ok_or_else(|| {
        let names = df.stages.iter().filter_map(|s| s.name.as_deref());
        Error::global(ErrorKind::TargetNotFound {
            suggestion: suggest(&t, names),
            target: t,
        })
    })
}

/// BuildKit's automatic platform ARGs.
fn platform_args(options: &BuildOptions) -> [(String, String); 8] {
    let t = &options.target_platform;
    let b = &options.build_platform;
    [
        ("TARGETPLATFORM".into(), t.to_string()),
        ("TARGETOS".into(), t.os.clone()),
        ("TARGETARCH".into(), t.architecture.clone()),
        ("TARGETVARIANT".into(), t.variant.clone().unwrap_or_default()),
        ("BUILDPLATFORM".into(), b.to_string()),
        ("BUILDOS".into(), b.os.clone()),
        ("BUILDARCH".into(), b.architecture.clone()),
        ("BUILDVARIANT".into(), b.variant.clone().unwrap_or_default()),
    ]
}

/// Resolves what a `--from` value names, as seen from stage `current`.
fn resolve_from(
    df: &Dockerfile,
    options: &BuildOptions,
    current: usize,
    from: &str,
    what: &str,
    location: Location,
) -> Result<Source, Error> {
    if from.contains('$') {
        return Err(Error::at(
            ErrorKind::NotSupported(format!(
                "variable expansion in {what} (define a new stage with FROM using an ARG from the global scope instead)"
            )),
            location,
        ));
    }
    if let Some(named) = named_context(options, from) {
        return Ok(named);
    }
    let stage = df.stage_by_name(from).or_else(|| from.parse::<usize>().ok());
    if let Some(s) = stage {
        return match s.cmp(&current) {
            std::cmp::Ordering::Less => Ok(Source::Stage(s)),
            // A stage reading from itself is a cycle (BuildKit's message).
            std::cmp::Ordering::Equal => {
                let name = df.stages[s].name.clone().unwrap_or_else(|| format!("stage-{s}"));
                Err(Error::at(ErrorKind::CircularStage(name), location))
            }
            // A later stage is not built yet.
            std::cmp::Ordering::Greater => {
                let kind = ErrorKind::StageOrder {
                    what: what.into(),
                    name: from.to_string(),
                };
                Err(Error::at(kind, location))
            }
        };
    }
    if from.eq_ignore_ascii_case("scratch") {
        return Ok(Source::Scratch);
    }
    let reference = Reference::parse(from).map_err(|e| Error::at(ErrorKind::BadReference(e), location))?;
    Ok(Source::Image(reference))
}

/// The ONBUILD instructions of a stage, parsed as triggers (located at their ONBUILD line).
fn onbuild_triggers(instructions: &[Spanned]) -> Result<Vec<Spanned>, Error> {
    instructions
        .iter()
        .filter_map(|s| match &s.instruction {
            Instruction::Onbuild(text) => Some(parse_trigger(text, s.location)),
            _ => None,
        })
        .collect()
}

/// Parses one ONBUILD trigger (the text after `ONBUILD`).
pub(super) fn parse_trigger(text: &str, location: Location) -> Result<Spanned, Error> {
    let node = crate::parser::parse_instruction(text, '\\').map_err(|message| {
        Error::at(
            ErrorKind::Parse {
                line: location.start_line,
                message,
            },
            location,
        )
    })?;
    let instruction = instructions::parse_node(&node, location)?;
    Ok(Spanned {
        instruction,
        location,
        original: text.trim().to_string(),
        keyword: node.keyword,
    })
}

fn named_context(options: &BuildOptions, name: &str) -> Option<Source> {
    let context = options.named_contexts.get(&name.to_ascii_lowercase())?;
    Some(match context {
        NamedContext::Local(local) => Source::Local(local.clone()),
        NamedContext::Image(reference) => Source::Image(reference.clone()),
    })
}
