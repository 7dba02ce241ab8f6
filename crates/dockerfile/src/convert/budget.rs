//! Bounds on what a whole Dockerfile may expand to.
//!
//! Each word is bounded by the shell module ([`shell::MAX_EXPANSION`] and friends), but a
//! Dockerfile has many words, and some of what it produces is repeated by design: every RUN
//! carries the whole environment, every step of a stage carries the stage's working directory
//! and name, ONBUILD triggers run again in every stage built on theirs, a stage built on
//! another starts from a copy of its state. So a small Dockerfile can still ask for gigabytes
//! (a thousand 1 MiB variables, then a thousand RUNs).
//!
//! The compiler therefore counts what it writes, in one [`Budget`] per compile, and fails on
//! the instruction that goes over, naming its lines:
//! - [`MAX_EXPANDED`] bytes of expanded text: every expanded word, every step's name and
//!   history entry, each RUN's arguments, environment, user and working directory, each COPY's
//!   paths, each ONBUILD trigger in every stage that inherits it, and the state (environment,
//!   config, history) of a stage copied for another stage; every string also counts
//!   [`STRING_COST`] bytes, so a flood of tiny strings is bounded too;
//! - [`MAX_TOTAL_MATCH_STEPS`] steps of `${…}` pattern matching.
//!
//! Real Dockerfiles stay far below both (a 20 000-line one expands to a few MiB).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind, Location};
use crate::shell::{self, Lexer};

/// Most bytes a Dockerfile may expand to (see the module docs for what counts).
pub const MAX_EXPANDED: usize = 256 << 20;

/// Most `${…}` pattern-matching steps (characters scanned times pattern length) a whole
/// Dockerfile may take: about a second of work.
pub const MAX_TOTAL_MATCH_STEPS: usize = 1 << 28;

/// What each string counts on top of its length: about what it costs to keep it.
pub const STRING_COST: usize = 32;

/// What one compile has produced so far. The counters are atomics so that the converter's
/// shared (`&self`) helpers can count too, and the compile future, which holds the budget
/// across the resolver's awaits, stays `Send`.
#[derive(Debug, Default)]
pub(super) struct Budget {
    expanded: AtomicUsize,
    match_steps: AtomicUsize,
}

/// Adds `n` to `counter` (saturating) and returns the new total. A compile runs on one task
/// at a time, so a load and a store need no stronger ordering.
fn add(counter: &AtomicUsize, n: usize) -> usize {
    let total = counter.load(Ordering::Relaxed).saturating_add(n);
    counter.store(total, Ordering::Relaxed);
    total
}

impl Budget {
    /// Counts `bytes` of output produced for the instruction at `location`.
    pub(super) fn charge(&self, bytes: usize, location: Location) -> Result<(), Error> {
        if add(&self.expanded, bytes) > MAX_EXPANDED {
            return Err(Error::at(ErrorKind::TooLarge { max: MAX_EXPANDED }, location));
        }
        Ok(())
    }

    /// Counts one string.
    pub(super) fn text(&self, text: &str, location: Location) -> Result<(), Error> {
        self.charge(text.len().saturating_add(STRING_COST), location)
    }

    /// Counts strings.
    pub(super) fn texts<'s>(
        &self,
        texts: impl IntoIterator<Item = &'s str>,
        location: Location,
    ) -> Result<(), Error> {
        texts.into_iter().try_for_each(|t| self.text(t, location))
    }

    /// Counts the matching work of one expansion.
    fn match_steps(&self, steps: usize, location: Location) -> Result<(), Error> {
        if add(&self.match_steps, steps) > MAX_TOTAL_MATCH_STEPS {
            let kind = ErrorKind::MatchTooCostly {
                max: MAX_TOTAL_MATCH_STEPS,
            };
            return Err(Error::at(kind, location));
        }
        Ok(())
    }

    /// Expands `word` and counts the result.
    pub(super) fn expand(
        &self,
        lexer: &Lexer,
        word: &str,
        env: &dyn shell::Env,
        location: Location,
    ) -> Result<String, Error> {
        let processed = self.process(lexer, word, env, location)?;
        self.text(&processed.result, location)?;
        Ok(processed.result)
    }

    /// Expands `word` into fields and counts them.
    pub(super) fn expand_words(
        &self,
        lexer: &Lexer,
        word: &str,
        env: &dyn shell::Env,
        location: Location,
    ) -> Result<Vec<String>, Error> {
        let processed = self.process(lexer, word, env, location)?;
        self.texts(processed.words.iter().map(String::as_str), location)?;
        Ok(processed.words)
    }

    /// Expands `word`, or gives `word` back as it is when it does not expand (BuildKit's
    /// `processCmdEnv`, for step names); counts the result either way.
    pub(super) fn expand_or_keep(
        &self,
        lexer: &Lexer,
        word: &str,
        env: &dyn shell::Env,
        location: Location,
    ) -> Result<String, Error> {
        let text = match lexer.process_word_with_matches(word, env) {
            Ok(processed) => {
                self.match_steps(processed.match_steps, location)?;
                processed.result
            }
            Err(_) => word.to_string(),
        };
        self.text(&text, location)?;
        Ok(text)
    }

    fn process(
        &self,
        lexer: &Lexer,
        word: &str,
        env: &dyn shell::Env,
        location: Location,
    ) -> Result<shell::ProcessResult, Error> {
        let processed = lexer
            .process_word_with_matches(word, env)
            .map_err(|e| Error::at(ErrorKind::Expansion(e), location))?;
        self.match_steps(processed.match_steps, location)?;
        Ok(processed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn going_over_names_the_instruction() {
        let budget = Budget::default();
        let here = Location {
            start_line: 7,
            end_line: 8,
        };
        assert!(budget.charge(MAX_EXPANDED - STRING_COST - 3, here).is_ok());
        assert!(budget.text("abc", here).is_ok());
        let err = budget.text("", here).unwrap_err();
        assert_eq!(err.location, Some(here));
        assert!(matches!(err.kind, ErrorKind::TooLarge { max: MAX_EXPANDED }));
    }
}
