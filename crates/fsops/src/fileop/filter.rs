//! Which entries of a copy source are taken: include patterns, exclude patterns and the build
//! context's excludes, shared by [`copy`](fn@super::copy) and
//! [`content_digest`](super::content_digest) so both always see the same entries.
//!
//! Two frames of reference, as in BuildKit:
//! - `include_patterns` and `exclude_patterns` (fsutil's copy) are matched against the path
//!   relative to each *matched source* (`COPY --exclude=*.log dir/ /d/` tests `x.log`, not
//!   `dir/x.log`). The matched source itself is never tested: it is always taken.
//! - `context_excludes` (`.dockerignore`) are matched against the path relative to the source
//!   root. An excluded path is treated as absent, as if the build context had been sent
//!   without it: a directory stays only while something below it is re-included.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::error::FileOpError;
use super::options::CopyOptions;
use super::patterns::{MatchInfo, PatternMatcher};
use crate::inroot::{is_dir, read_names};

/// The compiled patterns of one copy.
#[derive(Debug, Default)]
pub(super) struct Filters {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    context: Option<PatternMatcher>,
}

/// What each matcher matched for a directory, handed to its children.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    include: MatchInfo,
    exclude: MatchInfo,
    context: MatchInfo,
}

/// The decision for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Taken (a directory with everything below it that is taken in turn).
    Take,
    /// A directory that is not taken itself but must be walked: something below it may be. It
    /// appears in the result (with its source metadata) only once something below it is taken.
    Walk,
    /// Left out, with everything below it.
    Skip,
}

fn compile(patterns: &[String]) -> Result<Option<PatternMatcher>, FileOpError> {
    let matcher = PatternMatcher::new(patterns)?;
    Ok((!matcher.is_empty()).then_some(matcher))
}

impl Filters {
    /// Compiles the three pattern lists of `options`.
    pub(super) fn new(options: &CopyOptions) -> Result<Filters, FileOpError> {
        Ok(Filters {
            include: compile(&options.include_patterns)?,
            exclude: compile(&options.exclude_patterns)?,
            context: compile(&options.context_excludes)?,
        })
    }

    /// Whether any filtering happens at all (walkers take a faster path otherwise).
    pub(super) fn is_active(&self) -> bool {
        self.include.is_some() || self.exclude.is_some() || self.context.is_some()
    }

    /// The state for a matched source at `root_rel` (relative to the source root): the match is
    /// always taken by the copy's own patterns, so only the context excludes look at it.
    /// Returns whether the context excludes hide it (then it exists only as a directory with
    /// something visible below it, see [`Filters::visible`]).
    pub(super) fn top(&self, root_rel: &[u8]) -> (bool, State) {
        let mut state = State::default();
        let mut hidden = false;
        if let Some(context) = &self.context {
            (hidden, state.context) = context.matches_with_parent(root_rel, None);
        }
        (hidden, state)
    }

    /// Decides on the entry at `rel` (relative to the match) and `root_rel` (relative to the
    /// source root), a child of a directory whose state is `parent`. The state returned is for
    /// the entry's own children.
    pub(super) fn check(&self, rel: &[u8], root_rel: &[u8], dir: bool, parent: &State) -> (Verdict, State) {
        let mut state = State::default();
        let mut included = true;
        let mut walk = true;
        if let Some(include) = &self.include {
            let (m, info) = include.matches_with_parent(rel, Some(&parent.include));
            state.include = info;
            if !m {
                included = false;
                walk &= include.may_match_below(rel);
            }
        }
        if let Some(exclude) = &self.exclude {
            let (m, info) = exclude.matches_with_parent(rel, Some(&parent.exclude));
            state.exclude = info;
            if m {
                included = false;
                walk &= !exclude.can_skip_dir(rel);
            }
        }
        if let Some(context) = &self.context {
            let (m, info) = context.matches_with_parent(root_rel, Some(&parent.context));
            state.context = info;
            if m {
                included = false;
                walk &= !context.can_skip_dir(root_rel);
            }
        }
        let verdict = match (included, dir && walk) {
            (true, _) => Verdict::Take,
            (false, true) => Verdict::Walk,
            (false, false) => Verdict::Skip,
        };
        (verdict, state)
    }

    /// Whether the path `root_rel` is visible through the context excludes: not excluded, or a
    /// directory (open as `dir`, when it is one) with a visible entry somewhere below it.
    pub(super) fn visible(&self, root_rel: &[u8], dir: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        let Some(context) = &self.context else {
            return Ok(true);
        };
        let (hidden, info) = context.matches_with_parent(root_rel, None);
        if !hidden {
            return Ok(true);
        }
        let Some(dir) = dir else { return Ok(false) };
        if context.can_skip_dir(root_rel) {
            return Ok(false);
        }
        // Depth-first search for any visible entry, skipping subtrees that cannot have one.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut stack = vec![(
            rfs::openat(dir, c".", flags, Mode::empty())?,
            root_rel.to_vec(),
            info,
        )];
        while let Some((fd, path, info)) = stack.pop() {
            for name in read_names(fd.as_fd())? {
                let child = join(&path, &name);
                let (hidden, child_info) = context.matches_with_parent(&child, Some(&info));
                if !hidden {
                    return Ok(true);
                }
                let st = match rfs::statat(&fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) => continue,
                    other => other?,
                };
                if is_dir(&st) && !context.can_skip_dir(&child) {
                    let sub = rfs::openat(&fd, name.as_slice(), flags, Mode::empty())?;
                    stack.push((sub, child, child_info));
                }
            }
        }
        Ok(false)
    }
}

/// `base/name`, or `name` when `base` is empty.
pub(super) fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    if base.is_empty() {
        name.to_vec()
    } else {
        [base, b"/", name].concat()
    }
}
