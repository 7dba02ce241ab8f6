//! Converting the needed stages in order, instruction by instruction, and putting the result
//! together: the target's filesystem as an LLB definition and its image config.

use std::collections::BTreeMap;

use llb::pb;
use oci::Platform;

use super::options::{Compiled, DEFAULT_PATH};
use super::plan::Source;
use super::state::{Converter, StageState, config_cost, empty_image, image_source};
use super::vars::{Ordered, Vars};
use crate::error::{Error, ErrorKind};
use crate::instructions::{Instruction, Spanned, Stage};

impl Converter<'_> {
    /// Converts the stages the target needs and returns the compiled build.
    pub(super) fn convert(mut self) -> Result<Compiled, Error> {
        let plan = self.plan;
        for &s in &plan.reachable {
            if let Source::Stage(b) = plan.bases[s] {
                *self.base_uses.entry(b).or_default() += 1;
            }
        }
        for &s in &plan.reachable {
            let state = self.convert_stage(&self.df.stages[s])?;
            self.outputs.insert(s, state.fs.clone());
            if s == plan.target || self.base_uses.get(&s).is_some_and(|n| *n > 0) {
                self.states.insert(s, state);
            }
        }
        let target = &self.states[&plan.target];
        let mut image = target.image_config();
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
        let stage = &self.df.stages[plan.target];
        let unused_build_args = self
            .options
            .build_args
            .keys()
            .filter(|k| !plan.used_args.contains(*k) && !is_builtin_arg(k))
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

    fn convert_stage(&mut self, stage: &Stage) -> Result<StageState, Error> {
        let triggers: &[Spanned] = self.plan.triggers.get(&stage.index).map_or(&[], |t| t);
        self.check_platform(stage)?;
        let mut state = self.start_stage(stage, stage.instructions.len() + triggers.len() + 1)?;
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

    /// The state a stage starts from: nothing, a local context, an earlier stage or an image.
    fn start_stage(&mut self, stage: &Stage, steps: usize) -> Result<StageState, Error> {
        let display_name = (self.df.stages.len() > 1).then(|| {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index))
        });
        let ignore_cache = stage
            .name
            .as_ref()
            .is_some_and(|name| self.options.no_cache_filter.contains(&name.to_ascii_lowercase()));
        let fresh = |platform: &Platform| StageState {
            fs: None,
            image: empty_image(platform),
            image_env: None,
            env: Vars::from_strings(&[format!("PATH={DEFAULT_PATH}")]),
            build_args: Ordered::default(),
            cmd_set: false,
            display_name: display_name.clone(),
            step: 1,
            steps,
            in_trigger: false,
            ignore_cache,
        };
        Ok(match &self.plan.bases[stage.index] {
            Source::Scratch => fresh(&self.options.target_platform),
            Source::Local(name) => {
                let mut state = fresh(&self.options.target_platform);
                state.fs = Some(self.local(name));
                state
            }
            Source::Stage(b) => StageState {
                cmd_set: false,
                display_name,
                step: 1,
                steps,
                in_trigger: false,
                ignore_cache,
                ..self.take_base(*b, stage)?
            },
            Source::Image(reference) => {
                let resolved = &self.images[reference];
                self.budget
                    .charge(config_cost(&resolved.config), stage.location)?;
                let mut env = Vars::from_strings(resolved.config.config.env.as_deref().unwrap_or_default());
                if !env.contains("PATH") {
                    env.set("PATH", DEFAULT_PATH.to_string());
                }
                let mut state = StageState {
                    fs: None,
                    image: resolved.config.clone(),
                    image_env: None,
                    env,
                    build_args: Ordered::default(),
                    cmd_set: false,
                    display_name,
                    step: 0,
                    steps,
                    in_trigger: false,
                    ignore_cache,
                };
                let name = format!("FROM {}", resolved.reference);
                let options = self.op_options(&mut state, &name, stage.location)?;
                state.fs = Some(image_source(&resolved.reference, options));
                state
            }
        })
    }

    /// The state of stage `b` for a stage built on it: taken by the last such stage (unless `b`
    /// is the target, which is needed at the end), copied for the others.
    fn take_base(&mut self, b: usize, stage: &Stage) -> Result<StageState, Error> {
        let uses = self.base_uses.entry(b).or_default();
        *uses = uses.saturating_sub(1);
        let last = *uses == 0 && b != self.plan.target;
        // Stage `b` was converted before the stages built on it, and kept for them.
        if last && let Some(state) = self.states.remove(&b) {
            return Ok(state);
        }
        let base = &self.states[&b];
        self.budget.charge(base.copy_cost(), stage.location)?;
        Ok(base.clone())
    }

    fn check_platform(&self, stage: &Stage) -> Result<(), Error> {
        let Some(platform) = &stage.platform else {
            return Ok(());
        };
        let value = self
            .budget
            .expand(&self.lexer, platform, &self.plan.meta_env, stage.location)?;
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

    fn dispatch(
        &mut self,
        stage: usize,
        index: usize,
        spanned: &Spanned,
        state: &mut StageState,
    ) -> Result<(), Error> {
        let location = spanned.location;
        match &spanned.instruction {
            Instruction::Run(run) => self.dispatch_run(stage, index, run, spanned, state),
            Instruction::Copy(copy) => self.dispatch_copy(stage, index, copy, false, spanned, state),
            Instruction::Add(copy) => self.dispatch_copy(stage, index, copy, true, spanned, state),
            Instruction::Env(pairs) => self.dispatch_env(pairs, state, location),
            Instruction::Arg(decls) => self.dispatch_arg(decls, state, location),
            Instruction::Label(pairs) => self.dispatch_label(pairs, state, location),
            Instruction::Maintainer(name) => {
                state.image.author = Some(name.clone());
                self.metadata_step(state, format!("MAINTAINER {name}"), location)
            }
            Instruction::User(user) => {
                let user = self.expand(user, state, location)?;
                state.image.config.user = Some(user.clone());
                self.metadata_step(state, format!("USER {user}"), location)
            }
            Instruction::Workdir(dir) => self.dispatch_workdir(dir, spanned, state),
            Instruction::Cmd(cmd) => self.dispatch_cmd(cmd, state, location),
            Instruction::Entrypoint(cmd) => self.dispatch_entrypoint(cmd, state, location),
            Instruction::Shell(shell) => {
                state.image.config.shell = Some(shell.clone());
                self.metadata_step(state, format!("SHELL [{}]", shell.join(" ")), location)
            }
            Instruction::Expose(ports) => self.dispatch_expose(ports, state, location),
            Instruction::Volume(volumes) => self.dispatch_volume(volumes, state, location),
            Instruction::StopSignal(signal) => self.dispatch_stopsignal(signal, state, location),
            Instruction::Healthcheck(check) => self.dispatch_healthcheck(check, state, location),
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
}

/// Build args that BuildKit defines itself and never reports as unused.
fn is_builtin_arg(name: &str) -> bool {
    name.starts_with("BUILDKIT_")
        || matches!(
            name.to_ascii_uppercase().as_str(),
            "HTTP_PROXY" | "HTTPS_PROXY" | "FTP_PROXY" | "NO_PROXY" | "ALL_PROXY" | "SOURCE_DATE_EPOCH"
        )
}
