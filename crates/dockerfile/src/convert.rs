//! Dockerfile → LLB: the compiler proper.
//!
//! [`compile`] checks the Dockerfile, works out which stages the target needs (`plan`: an
//! unreachable stage is never resolved or converted, even if broken), asks the
//! [`ImageResolver`] for the configs of the images those stages use (and, when a base image
//! carries ONBUILD triggers, for what the triggers use), then converts each needed stage
//! instruction by instruction into LLB ops plus an image config, the way BuildKit's
//! `dockerfile2llb` does.
//!
//! The compiler lowers every feature of the Dockerfile into LLB; whether the engine can run a
//! given op (say a cache mount) is the engine's business, so `kiln debug llb` works for any
//! valid Dockerfile.
//!
//! Cost: every instruction costs about the same however many came before it (environments
//! and argument lists are indexed, a stage built on another takes its state rather than
//! copying it when nothing else needs it), so compile time is linear in the Dockerfile plus
//! what it expands to; and what it expands to is bounded (`budget`: [`MAX_EXPANDED`] bytes,
//! [`MAX_TOTAL_MATCH_STEPS`] pattern-matching steps, on top of the per-word bounds of
//! [`crate::shell`]).
//!
//! Modules, each using only those listed before it: `options` (what goes in and comes out),
//! `vars` (ordered, indexed variables), `budget`, `paths`, `gofmt` (Go's formatting for
//! history), `mount` (`RUN --mount` values), `plan`, `state` (the converter and a stage's
//! state, with the helpers every instruction uses), `metadata` (instructions that only change
//! the config, and WORKDIR), `run`, `copy` (COPY and ADD), `stage` (stages in order, and the
//! result).

mod budget;
mod copy;
mod gofmt;
mod metadata;
mod mount;
mod options;
mod paths;
mod plan;
mod run;
mod stage;
mod state;
mod vars;

/// Git URLs as BuildKit tells them from paths (`https://host/repo.git#ref:subdir`,
/// `git@host:repo.git`, `git://…`): for `ADD`, and for clients telling a git build context.
pub use copy::{GitRef, parse_git_ref};

use std::collections::{BTreeMap, BTreeSet};

use oci::Reference;

use crate::error::{Error, ErrorKind, Location};
use crate::instructions::{self, Dockerfile};
use crate::parser::{self, Ast};
use budget::Budget;
pub use budget::{MAX_EXPANDED, MAX_TOTAL_MATCH_STEPS, STRING_COST};
pub use options::{
    BuildOptions, CONTEXT_NAME, Compiled, DEFAULT_PATH, HISTORY_COMMENT, ImageResolver, NamedContext,
    OfflineResolver, ResolveError, ResolvedImage,
};
pub use paths::clean_path;
use plan::{Plan, Source};
use state::Converter;

/// Compiles `text` (the Dockerfile) into LLB.
pub async fn compile<R: ImageResolver>(
    text: &str,
    options: &BuildOptions,
    resolver: &R,
) -> Result<Compiled, Error> {
    let ast = parser::parse(text);
    check_syntax(&ast, options)?;
    unsupported_builtin_args(&options.build_args)?;
    let dockerfile = instructions::from_ast(&ast)?;
    let budget = Budget::default();
    let mut plan = Plan::new(&dockerfile, options, &budget)?;
    let images = resolve_images(&dockerfile, &mut plan, options, resolver, &budget).await?;
    Converter::new(&dockerfile, &plan, &images, options, text, budget).convert()
}

/// Refuses a frontend other than the built-in one: the `BUILDKIT_SYNTAX` build arg chooses
/// before the `# syntax=` directive does.
fn check_syntax(ast: &Ast, options: &BuildOptions) -> Result<(), Error> {
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
    Ok(())
}

/// Resolves what the reachable stages use. ONBUILD triggers of resolved base images can reach
/// further stages and images, so this goes on, round by round, with the stages that are new or
/// got triggers, until nothing new appears.
async fn resolve_images<R: ImageResolver>(
    df: &Dockerfile,
    plan: &mut Plan,
    options: &BuildOptions,
    resolver: &R,
    budget: &Budget,
) -> Result<BTreeMap<Reference, ResolvedImage>, Error> {
    let mut images: BTreeMap<Reference, ResolvedImage> = BTreeMap::new();
    let mut triggers_read: BTreeSet<usize> = BTreeSet::new();
    let mut scan = plan.reach(&[plan.target]);
    loop {
        for (reference, location) in plan.images_of(df, &scan) {
            if images.contains_key(&reference) {
                continue;
            }
            let resolved = resolver
                .resolve(&reference, &options.target_platform)
                .await
                .map_err(|source| {
                    let kind = ErrorKind::Resolve {
                        reference: reference.to_string(),
                        source,
                    };
                    Error::at(kind, location)
                })?;
            images.insert(reference, resolved);
        }
        let grown = image_triggers(df, plan, options, &images, &scan, &mut triggers_read, budget)?;
        if grown.is_empty() {
            return Ok(images);
        }
        scan = plan.reach(&grown);
        scan.extend(grown);
        scan.sort_unstable();
        scan.dedup();
    }
}

/// Records the ONBUILD triggers of the base images of `stages` (each stage once). Returns the
/// stages that got triggers.
fn image_triggers(
    df: &Dockerfile,
    plan: &mut Plan,
    options: &BuildOptions,
    images: &BTreeMap<Reference, ResolvedImage>,
    stages: &[usize],
    triggers_read: &mut BTreeSet<usize>,
    budget: &Budget,
) -> Result<Vec<usize>, Error> {
    let mut grown = Vec::new();
    for &s in stages {
        if plan.replaced.contains(&s) {
            continue;
        }
        let Source::Image(reference) = &plan.bases[s] else {
            continue;
        };
        if !triggers_read.insert(s) {
            continue;
        }
        let on_build = images
            .get(reference)
            .and_then(|r| r.config.config.on_build.as_deref())
            .unwrap_or_default();
        if on_build.is_empty() {
            continue;
        }
        let location = df.stages[s].location;
        budget.texts(on_build.iter().map(String::as_str), location)?;
        let triggers = on_build
            .iter()
            .map(|t| plan::parse_trigger(t, location))
            .collect::<Result<Vec<_>, _>>()?;
        plan.set_triggers(df, options, s, triggers.into())?;
        grown.push(s);
    }
    Ok(grown)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
