//! Wildcard source paths: Go `filepath.Match` semantics, one path component at a time.
//!
//! `*` matches any run of characters and `?` one character (a `/` never, as components are
//! matched separately), `[...]` a class with ranges and `^` negation, `\x` the character `x`.
//! Malformed patterns match nothing. As in BuildKit, the path is split at the first component
//! holding a wildcard: the prefix is resolved as a directory (within the root), the rest is
//! matched level by level, descending only into real directories (not symlinks to them).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use crate::inroot::{errno_is, open_dir, read_names};

/// Whether a path component contains an unescaped wildcard character.
pub(super) fn has_wildcards(comp: &[u8]) -> bool {
    let mut bytes = comp.iter();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                bytes.next();
            }
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
    }
    false
}

/// The paths under `root` matching the clean components `comps`, relative and sorted as a
/// depth-first walk in name order yields them. A missing prefix directory matches nothing.
pub(super) fn expand(root: BorrowedFd<'_>, comps: &[&[u8]]) -> io::Result<Vec<Vec<u8>>> {
    let first = comps.iter().position(|c| has_wildcards(c)).unwrap_or(comps.len());
    let prefix = comps[..first].join(&b'/');
    let dir = match open_dir(root, &prefix, None) {
        Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => return Ok(Vec::new()),
        other => other?,
    };
    let mut out = Vec::new();
    walk(dir.as_fd(), &prefix, &comps[first..], &mut out)?;
    Ok(out)
}

fn walk(dir: BorrowedFd<'_>, path: &[u8], patterns: &[&[u8]], out: &mut Vec<Vec<u8>>) -> io::Result<()> {
    let Some((pattern, rest)) = patterns.split_first() else {
        return Ok(());
    };
    for name in read_names(dir)? {
        if !glob_match(pattern, &name) {
            continue;
        }
        let child = if path.is_empty() {
            name.clone()
        } else {
            [path, b"/", &name].concat()
        };
        if rest.is_empty() {
            out.push(child);
            continue;
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(dir, name.as_slice(), flags, Mode::empty()) {
            Ok(fd) => walk(fd.as_fd(), &child, rest, out)?,
            // Not a directory, a symlink, or gone: nothing below it can match.
            Err(e) if e == Errno::NOTDIR || e == Errno::LOOP || e == Errno::NOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether `name` matches `pattern` (one component). Both are compared as Unicode characters
/// when valid UTF-8, as bytes otherwise.
pub(super) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    fn units(b: &[u8]) -> Vec<u32> {
        match std::str::from_utf8(b) {
            Ok(s) => s.chars().map(u32::from).collect(),
            Err(_) => b.iter().map(|&c| u32::from(c)).collect(),
        }
    }
    matches(&units(pattern), &units(name)).unwrap_or(false)
}

const STAR: u32 = '*' as u32;
const QUESTION: u32 = '?' as u32;
const OPEN: u32 = '[' as u32;
const CLOSE: u32 = ']' as u32;
const ESCAPE: u32 = '\\' as u32;
const CARET: u32 = '^' as u32;
const DASH: u32 = '-' as u32;

/// Matches with backtracking to the last `*`; `None` for a malformed pattern.
fn matches(p: &[u32], n: &[u32]) -> Option<bool> {
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: pattern index after it, and name index it covers to.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            let step = match p[pi] {
                STAR => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                QUESTION => (ni < n.len()).then_some(pi + 1),
                OPEN => match (ni < n.len(), class(p, pi + 1, n.get(ni).copied())?) {
                    (true, (true, next)) => Some(next),
                    _ => None,
                },
                ESCAPE => {
                    let c = *p.get(pi + 1)?;
                    (n.get(ni) == Some(&c)).then_some(pi + 2)
                }
                c => (n.get(ni) == Some(&c)).then_some(pi + 1),
            };
            if let Some(next) = step {
                pi = next;
                ni += 1;
                continue;
            }
        } else if ni == n.len() {
            return Some(true);
        }
        match star {
            Some((sp, sn)) if sn < n.len() => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return Some(false),
        }
    }
}

/// Parses the class starting after `[` at `i` and tests `c` (if any) against it. Returns
/// whether it matched and the index after `]`; `None` when malformed.
fn class(p: &[u32], mut i: usize, c: Option<u32>) -> Option<(bool, usize)> {
    let negated = p.get(i) == Some(&CARET);
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut ranges = 0;
    loop {
        if *p.get(i)? == CLOSE && ranges > 0 {
            return Some((c.is_some() && matched != negated, i + 1));
        }
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&DASH) {
            (hi, i) = class_char(p, i + 1)?;
        }
        matched |= c.is_some_and(|c| lo <= c && c <= hi);
        ranges += 1;
    }
}

fn class_char(p: &[u32], i: usize) -> Option<(u32, usize)> {
    match *p.get(i)? {
        DASH | CLOSE => None,
        ESCAPE => Some((*p.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_semantics() {
        let m = |p: &str, n: &str| glob_match(p.as_bytes(), n.as_bytes());
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", ".txt"));
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("f?o", "foo"));
        assert!(m("f?o", "fäo"));
        assert!(!m("f?o", "fo"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(!m("[^a-c]x", "ax"));
        assert!(m("[\\]]", "]"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*", ""));
        // Malformed patterns match nothing.
        assert!(!m("[]", "]"));
        assert!(!m("[a-", "a"));
        assert!(!m("a\\", "a"));
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcards(b"*.go"));
        assert!(has_wildcards(b"f[ab]"));
        assert!(has_wildcards(b"a?"));
        assert!(!has_wildcards(b"plain"));
        assert!(!has_wildcards(b"esc\\*aped"));
    }
}
