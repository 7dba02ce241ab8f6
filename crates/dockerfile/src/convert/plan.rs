//! Before converting anything: which stage is the target, where each stage's filesystem comes
//! from, what every `--from` names, which stages the target needs, and which images they use.
//!
//! Only stages reachable from the target are ever resolved or converted, so a broken stage
//! nobody uses does not break the build (BuildKit's `testEagerNamedContextLookup`).

use std::collections::{BTreeMap, BTreeSet};

use oci::Reference;

use super::run::parse_mount;
use super::{BuildOptions, NamedContext, Vars, expansion_error, meta_env, platform_args};
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

/// The result of the analysis.
pub(super) struct Plan {
    pub(super) target: usize,
    pub(super) bases: Vec<Source>,
    /// Global ARGs after build-arg overrides, in declaration order (platform ARGs first).
    pub(super) meta_args: Vec<(String, Option<String>)>,
    /// What each `COPY --from` / `RUN --mount from=` names.
    pub(super) refs: BTreeMap<RefKey, Source>,
    /// ONBUILD triggers to run at the start of a stage, already parsed.
    pub(super) triggers: BTreeMap<usize, Vec<Spanned>>,
    pub(super) reachable: BTreeSet<usize>,
    pub(super) used_args: BTreeSet<String>,
    /// Stages replaced by the named context of their name (`--build-context NAME=…`): their
    /// base is that context and none of their instructions run, as in BuildKit.
    pub(super) replaced: BTreeSet<usize>,
}

impl Plan {
    pub(super) fn new(df: &Dockerfile, options: &BuildOptions) -> Result<Plan, Error> {
        let lexer = Lexer::new(df.escape);
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
        for name in &options.no_cache_filter {
            if !df.stages.iter().any(|s| s.name.as_deref() == Some(name.as_str())) {
                let names = df.stages.iter().filter_map(|s| s.name.as_deref());
                return Err(Error::global(ErrorKind::NoCacheFilterNotFound {
                    name: name.clone(),
                    suggestion: suggest(name, names),
                }));
            }
        }
        let target_name = df.stages[target].name.clone().unwrap_or_else(|| "default".into());
        let mut used_args = BTreeSet::new();
        // Global ARGs: build-arg values override defaults; defaults may use earlier globals.
        let mut meta_args = platform_args(options);
        meta_args.push(("TARGETSTAGE".into(), Some(target_name)));
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
                    None => meta_args
                        .iter()
                        .find(|(k, _)| *k == decl.name)
                        .and_then(|(_, v)| v.clone()),
                },
            };
            match meta_args.iter_mut().find(|(k, _)| *k == decl.name) {
                Some(entry) => entry.1 = value,
                None => meta_args.push((decl.name.clone(), value)),
            }
        }
        let env = meta_env(&meta_args);
        let mut plan = Plan {
            target,
            bases: Vec::with_capacity(df.stages.len()),
            meta_args,
            refs: BTreeMap::new(),
            triggers: BTreeMap::new(),
            reachable: BTreeSet::new(),
            used_args,
            replaced: BTreeSet::new(),
        };
        for stage in &df.stages {
            if let Some(named) = stage.name.as_deref().and_then(|n| named_context(options, n)) {
                plan.bases.push(named);
                plan.replaced.insert(stage.index);
                continue;
            }
            let base = plan.base_of(df, options, stage, &lexer, &env)?;
            plan.bases.push(base);
            for (i, spanned) in stage.instructions.iter().enumerate() {
                plan.add_refs(df, options, stage.index, i, spanned)?;
                if let Instruction::Arg(args) = &spanned.instruction {
                    plan.used_args.extend(args.iter().map(|a| a.name.clone()));
                }
            }
        }
        // A stage built on another stage runs that stage's ONBUILD triggers first.
        for stage in &df.stages {
            if plan.replaced.contains(&stage.index) {
                continue;
            }
            if let Source::Stage(b) = plan.bases[stage.index] {
                let triggers = stage_triggers(&df.stages[b].instructions)?;
                plan.set_triggers(df, options, stage.index, triggers)?;
            }
        }
        Ok(plan)
    }

    /// Records the triggers of `stage` and what they refer to.
    pub(super) fn set_triggers(
        &mut self,
        df: &Dockerfile,
        options: &BuildOptions,
        stage: usize,
        triggers: Vec<Spanned>,
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
        env: &Vars,
    ) -> Result<Source, Error> {
        let name = lexer
            .process_word(&stage.base, env)
            .map_err(|e| expansion_error(e, stage.location))?;
        if name.is_empty() {
            return Err(Error::at(
                ErrorKind::BadReference(format!("base name ({}) should not be blank", stage.base)),
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
        if let Some(i) = stage_by_name(df, &name)
            && i < stage.index
        {
            return Ok(Source::Stage(i));
        }
        let reference = Reference::parse(&name)
            .map_err(|e| Error::at(ErrorKind::BadReference(e.to_string()), stage.location))?;
        Ok(Source::Image(reference))
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
        let later = || {
            Error::at(
                ErrorKind::StageOrder {
                    what: what.into(),
                    name: from.to_string(),
                },
                location,
            )
        };
        // A stage reading from itself is a cycle (BuildKit's message); a later stage is not
        // built yet.
        let circular = |s: usize| {
            let name = df.stages[s].name.clone().unwrap_or_else(|| format!("stage-{s}"));
            Error::at(ErrorKind::CircularStage(name), location)
        };
        let stage = stage_by_name(df, from).or_else(|| from.parse::<usize>().ok());
        if let Some(s) = stage {
            return match s.cmp(&current) {
                std::cmp::Ordering::Less => Ok(Source::Stage(s)),
                std::cmp::Ordering::Equal => Err(circular(s)),
                std::cmp::Ordering::Greater => Err(later()),
            };
        }
        if from.eq_ignore_ascii_case("scratch") {
            return Ok(Source::Scratch);
        }
        let reference = Reference::parse(from)
            .map_err(|e| Error::at(ErrorKind::BadReference(e.to_string()), location))?;
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
                let source = Self::resolve_from(df, options, stage, from, "COPY --from", spanned.location)?;
                self.refs.insert((stage, index, 0), source);
            }
            Instruction::Run(run) => {
                for (m, spec) in run.mounts.iter().enumerate() {
                    let mount = parse_mount(spec, None)
                        .map_err(|e| Error::at(ErrorKind::BadFlag(e), spanned.location))?;
                    if let Some(from) = &mount.from {
                        let source = Self::resolve_from(
                            df,
                            options,
                            stage,
                            from,
                            "RUN --mount from",
                            spanned.location,
                        )?;
                        self.refs.insert((stage, index, m), source);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Recomputes which stages the target needs. Returns the images they use, each with the
    /// place that first needs it.
    pub(super) fn reach(&mut self, df: &Dockerfile) -> Vec<(Reference, Location)> {
        let mut reachable = BTreeSet::new();
        let mut todo = vec![self.target];
        while let Some(s) = todo.pop() {
            if !reachable.insert(s) {
                continue;
            }
            if let Source::Stage(b) = &self.bases[s] {
                todo.push(*b);
            }
            for (_, source) in self.refs.range((s, 0, 0)..(s + 1, 0, 0)) {
                if let Source::Stage(d) = source {
                    todo.push(*d);
                }
            }
        }
        let mut images = Vec::new();
        for &s in &reachable {
            if let Source::Image(r) = &self.bases[s] {
                images.push((r.clone(), df.stages[s].location));
            }
            for ((_, i, _), source) in self.refs.range((s, 0, 0)..(s + 1, 0, 0)) {
                if let Source::Image(r) = source {
                    images.push((r.clone(), self.location_of(df, s, *i)));
                }
            }
        }
        self.reachable = reachable;
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

/// The ONBUILD instructions of a stage, parsed as triggers (located at their ONBUILD line).
fn stage_triggers(instructions: &[Spanned]) -> Result<Vec<Spanned>, Error> {
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

fn stage_by_name(df: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
}

fn named_context(options: &BuildOptions, name: &str) -> Option<Source> {
    let context = options.named_contexts.get(&name.to_ascii_lowercase())?;
    Some(match context {
        NamedContext::Local(local) => Source::Local(local.clone()),
        NamedContext::Image(reference) => Source::Image(reference.clone()),
    })
}
