//! Errors of the Dockerfile frontend. Every error that concerns a place in the Dockerfile
//! carries its line range, so the CLI can show the offending lines.

/// A range of lines in the Dockerfile (1-based, inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// First line.
    pub start_line: usize,
    /// Last line.
    pub end_line: usize,
}

/// A frontend error with its location. It shows as its kind does: the same message, and the
/// kind's cause as its own `source()`.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where, when it concerns a particular instruction.
    pub location: Option<Location>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

impl Error {
    pub(crate) fn at(kind: ErrorKind, location: Location) -> Error {
        Error {
            kind,
            location: Some(location),
        }
    }

    pub(crate) fn global(kind: ErrorKind) -> Error {
        Error { kind, location: None }
    }
}

/// The kinds of frontend errors.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The parser reported an error.
    #[error("dockerfile parse error on line {line}: {message}")]
    Parse {
        /// First line of the problem.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// An instruction keyword that does not exist.
    #[error("unknown instruction: {name}{}", suggestion_text(.suggestion))]
    UnknownInstruction {
        /// As written.
        name: String,
        /// The closest known instruction.
        suggestion: Option<String>,
    },
    /// A flag the instruction does not take.
    #[error("unknown flag: --{flag}{}", suggestion_text(.suggestion))]
    UnknownFlag {
        /// The flag name.
        flag: String,
        /// The closest known flag.
        suggestion: Option<String>,
    },
    /// A flag with a bad value or given twice.
    #[error("{0}")]
    BadFlag(String),
    /// An instruction with wrong arguments.
    #[error("{instruction} {message}")]
    BadArguments {
        /// The instruction, upper-cased.
        instruction: String,
        /// What is wrong.
        message: String,
    },
    /// Variable expansion failed.
    #[error(transparent)]
    Expansion(crate::shell::ShellError),
    /// The whole Dockerfile expands to too much (see `convert::MAX_EXPANDED`).
    #[error(
        "the Dockerfile expands to more than {} MiB (expanded words, step names, and each RUN's environment and arguments, counted in every stage that runs them)",
        .max >> 20
    )]
    TooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// Pattern matching in the Dockerfile's expansions, all together, takes too long (see
    /// `convert::MAX_TOTAL_MATCH_STEPS`).
    #[error("pattern matching in ${{...}} expansions needs more than {max} steps in total")]
    MatchTooCostly {
        /// The limit.
        max: usize,
    },
    /// An instruction appears before the first FROM.
    #[error("{0} instruction is not allowed before the first FROM (only ARG is)")]
    BeforeFrom(String),
    /// No FROM at all.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// `--target` names no stage.
    #[error("target stage {target:?} could not be found{}", suggestion_text(.suggestion))]
    TargetNotFound {
        /// The requested target.
        target: String,
        /// The closest stage name.
        suggestion: Option<String>,
    },
    /// `--no-cache-filter` names no stage.
    #[error("--no-cache-filter: no stage named {name:?}{}", suggestion_text(.suggestion))]
    NoCacheFilterNotFound {
        /// The name given.
        name: String,
        /// The closest stage name.
        suggestion: Option<String>,
    },
    /// A stage refers to one defined later.
    #[error("{what} stage {name:?} needs to be defined before the current stage")]
    StageOrder {
        /// `COPY --from` or `FROM`.
        what: String,
        /// The stage.
        name: String,
    },
    /// A stage name is not valid.
    #[error("invalid name for build stage: {0:?}, name can't start with a number or contain symbols")]
    BadStageName(String),
    /// Two stages share a name.
    #[error("duplicate stage name {0:?}")]
    DuplicateStage(String),
    /// A stage depends on itself.
    #[error("circular dependency detected on stage: {0}")]
    CircularStage(String),
    /// An image reference is invalid. (Shown, not chained: its message already includes its
    /// cause.)
    #[error("{0}")]
    BadReference(oci::ReferenceError),
    /// A FROM whose base name expands to nothing.
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    /// Resolving an image failed.
    #[error("failed to resolve source metadata for {reference}")]
    Resolve {
        /// The image.
        reference: String,
        /// Why.
        #[source]
        source: crate::ResolveError,
    },
    /// A feature kiln does not support yet.
    #[error("{0} is not supported yet")]
    NotSupported(String),
    /// An unsupported `# syntax=` directive.
    #[error(
        "unsupported syntax directive {0:?}: kiln only runs its built-in Dockerfile frontend (docker/dockerfile:1)"
    )]
    Syntax(String),
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let word = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&word, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (distance, candidate) = best?;
    // One typo in short words, two (a swap of two letters is two edits) in longer ones.
    let allowed = if word.chars().count() >= 4 { 2 } else { 1 };
    (distance > 0 && distance <= allowed).then(|| candidate.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("ENTRYPONT", ["CMD", "ENTRYPOINT", "ENV"]).as_deref(),
            Some("ENTRYPOINT")
        );
        assert_eq!(suggest("mont", ["mount", "network"]).as_deref(), Some("mount"));
        assert_eq!(suggest("xyzzy", ["mount", "network"]), None);
    }
}
