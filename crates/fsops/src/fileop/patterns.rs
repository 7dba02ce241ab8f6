//! Path patterns with moby/patternmatcher semantics: `.dockerignore`, `COPY --exclude` and the
//! include patterns of `COPY --parents` all use this one engine.
//!
//! A pattern list is evaluated against slash-separated relative paths (`dir/file.txt`, never
//! with a leading `/` or `./`):
//! - Each pattern is trimmed and cleaned like Go's `filepath.Clean` (`a//b/../c/` is `a/c`).
//!   A leading `!` makes it an *exclusion*: a path it matches is taken back out of the set. A
//!   leading `/` is dropped, since the paths matched are always relative (moby keeps it, which
//!   makes such a pattern match nothing; its `.dockerignore` reader drops it too).
//! - `*` matches any run of characters but `/`, `?` one character but `/`, `[...]` a class
//!   (ranges, `^` negation, `\` escapes, Go `filepath.Match` syntax), `\x` the character `x`.
//!   `**` matches any number of whole path segments, zero included: `**/foo` matches `foo` and
//!   `a/b/foo`, `foo/**` everything below `foo`, `a/**/b` both `a/b` and `a/x/y/b`. As in moby,
//!   a pattern starting with `**` followed by plain text is a suffix test (`**.log` matches
//!   `a/x.log` and also `ax.log`).
//! - Patterns are anchored at both ends, at the root of the tree (unlike gitignore: `foo`
//!   matches `foo`, not `a/foo`).
//! - A pattern matching a directory matches everything below it (moby's
//!   `MatchesOrParentMatches`).
//! - The last pattern that matches a path (or one of its parents) decides: a plain pattern puts
//!   the path in the set, an exclusion takes it out. A path no pattern matches is not in the
//!   set.
//!
//! Walkers keep one [`MatchInfo`] per directory so a child is evaluated against its own path
//! only, with what its parent matched carried over. [`PatternMatcher::can_skip_dir`] tells a
//! walker when a whole directory in the set can be left unvisited, and
//! [`PatternMatcher::may_match_below`] when nothing below a directory can enter the set.
//!
//! Names that are not UTF-8 are matched byte by byte; valid UTF-8 character by character.

use super::error::FileOpError;

/// A compiled, ordered list of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
}

/// What each pattern of a [`PatternMatcher`] matched for one directory: the pattern matched the
/// directory itself or one of its parents. Produced by [`PatternMatcher::matches_with_parent`]
/// and handed back for the directory's children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    matched: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`, as given (for errors and debugging).
    text: String,
    exclusion: bool,
    kind: Kind,
    /// The leading segments made of plain characters only, and whether that is all of it.
    literal_prefix: Vec<Vec<u32>>,
    fully_literal: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    /// moby's suffix test: `**` followed by plain characters only.
    Suffix(Vec<u32>),
    /// Everything else, matched token by token.
    Tokens(Vec<Token>),
}

#[derive(Debug, Clone)]
enum Token {
    /// One given character.
    Char(u32),
    /// `?`: one character, not `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class { negated: bool, ranges: Vec<(u32, u32)> },
    /// `**` (and `**/`) not at the end: nothing, or anything ending in `/`.
    Segments,
    /// `**` at the end: anything.
    Rest,
}

const SLASH: u32 = '/' as u32;

/// A string as matching units: characters when valid UTF-8, otherwise bytes.
fn units(bytes: &[u8]) -> Vec<u32> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().map(u32::from).collect(),
        Err(_) => bytes.iter().map(|&b| u32::from(b)).collect(),
    }
}

impl PatternMatcher {
    /// Compiles `patterns` in order. Empty (or all-blank) patterns are skipped; a lone `!` or a
    /// malformed pattern (bad `[` class, trailing `\`) is [`FileOpError::InvalidPattern`].
    pub fn new<I, S>(patterns: I) -> Result<PatternMatcher, FileOpError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref();
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let invalid = |reason| FileOpError::InvalidPattern {
                pattern: raw.to_owned(),
                reason,
            };
            let cleaned = gocompat::path::clean(trimmed);
            let (exclusion, body) = match cleaned.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, cleaned.as_str()),
            };
            if exclusion && body.is_empty() {
                return Err(invalid("an exclusion needs a pattern after \"!\""));
            }
            let body = gocompat::path::clean(body);
            let body = body.trim_start_matches('/');
            if body.is_empty() {
                // `/` alone: it would have to match the root, which is never matched.
                continue;
            }
            out.push(Pattern::compile(body, exclusion).map_err(invalid)?);
        }
        Ok(PatternMatcher { patterns: out })
    }

    /// Whether there are no patterns (then nothing matches).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exclusion (`!`).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative, slash-separated) is in the set: the last pattern matching it or
    /// one of its parent directories is not an exclusion.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_with_parent(path.as_bytes(), None).0
    }

    /// Like [`matches`](Self::matches), given what matched the parent directory (`None`: check
    /// the parents here). Returns the result and the information to pass for `path`'s children.
    /// The empty path (the root) matches nothing.
    pub fn matches_with_parent(&self, path: &[u8], parent: Option<&MatchInfo>) -> (bool, MatchInfo) {
        let path = trim_slashes(path);
        let mut info = MatchInfo {
            matched: vec![false; self.patterns.len()],
        };
        if path.is_empty() {
            return (false, info);
        }
        let unit_path = units(path);
        // Ends of the parent prefixes (`a`, `a/b` for `a/b/c`), checked without parent info.
        let ancestors: Vec<usize> = match parent {
            Some(_) => Vec::new(),
            None => (0..unit_path.len()).filter(|&i| unit_path[i] == SLASH).collect(),
        };
        let mut result = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let inherited = parent.and_then(|p| p.matched.get(i).copied()).unwrap_or(false);
            let m = inherited
                || pattern.matches(&unit_path)
                || ancestors.iter().any(|&end| pattern.matches(&unit_path[..end]));
            info.matched[i] = m;
            if m {
                result = !pattern.exclusion;
            }
        }
        (result, info)
    }

    /// For a directory `dir` that is in the set: whether everything below it is in the set too,
    /// so a walker may skip it whole. False when an exclusion after the last pattern that puts
    /// `dir` in the set could match something below it. Conservative: a pattern whose leading
    /// segments hold wildcards counts as able to match anywhere.
    pub fn can_skip_dir(&self, dir: &[u8]) -> bool {
        let dir = trim_slashes(dir);
        let (matched, info) = self.matches_with_parent(dir, None);
        if !matched {
            return false;
        }
        let Some(last) = info.matched.iter().rposition(|&m| m) else {
            return false;
        };
        let segments = segments(dir);
        !self.patterns[last + 1..]
            .iter()
            .any(|p| p.exclusion && p.may_match_below(&segments))
    }

    /// Whether a plain (non-`!`) pattern could match some path strictly below directory `dir`.
    /// Conservative in the same way as [`can_skip_dir`](Self::can_skip_dir).
    pub fn may_match_below(&self, dir: &[u8]) -> bool {
        let segments = segments(trim_slashes(dir));
        self.patterns
            .iter()
            .any(|p| !p.exclusion && p.may_match_below(&segments))
    }
}

fn trim_slashes(path: &[u8]) -> &[u8] {
    let start = path.iter().position(|&b| b != b'/').unwrap_or(path.len());
    let end = path.iter().rposition(|&b| b != b'/').map_or(start, |i| i + 1);
    &path[start..end]
}

fn segments(path: &[u8]) -> Vec<Vec<u32>> {
    if path.is_empty() {
        return Vec::new();
    }
    path.split(|&b| b == b'/').map(units).collect()
}

impl Pattern {
    fn compile(text: &str, exclusion: bool) -> Result<Pattern, &'static str> {
        let chars: Vec<u32> = text.chars().map(u32::from).collect();
        let tokens = tokenize(&chars)?;
        let (literal_prefix, fully_literal) = literal_prefix(&chars);
        // moby's suffix test: `**` then plain characters only. With a slash after `**` it
        // agrees with the token form; without one it is a plain suffix (`**.log`).
        let kind = match chars.strip_prefix(&['*' as u32, '*' as u32][..]) {
            Some(rest) if !rest.is_empty() && rest[0] != SLASH && !rest.iter().any(|&c| is_special(c)) => {
                Kind::Suffix(rest.to_vec())
            }
            _ => Kind::Tokens(tokens),
        };
        Ok(Pattern {
            text: text.to_owned(),
            exclusion,
            kind,
            literal_prefix,
            fully_literal,
        })
    }

    fn matches(&self, path: &[u32]) -> bool {
        match &self.kind {
            Kind::Suffix(suffix) => path.ends_with(suffix),
            Kind::Tokens(tokens) => match_tokens(tokens, path),
        }
    }

    /// Whether this pattern could match a path with more segments than `dir` that starts with
    /// `dir`'s segments.
    fn may_match_below(&self, dir: &[Vec<u32>]) -> bool {
        let shared = self.literal_prefix.len().min(dir.len());
        if self.literal_prefix[..shared] != dir[..shared] {
            return false;
        }
        !self.fully_literal || self.literal_prefix.len() > dir.len()
    }
}

fn is_special(c: u32) -> bool {
    matches!(char::from_u32(c), Some('*' | '?' | '[' | ']' | '\\'))
}

/// The leading segments of a pattern that hold no special character, and whether they are the
/// whole pattern.
fn literal_prefix(chars: &[u32]) -> (Vec<Vec<u32>>, bool) {
    let mut out = Vec::new();
    for segment in chars.split(|&c| c == SLASH) {
        if segment.iter().any(|&c| is_special(c)) {
            return (out, false);
        }
        out.push(segment.to_vec());
    }
    (out, true)
}

fn tokenize(p: &[u32]) -> Result<Vec<Token>, &'static str> {
    let star = '*' as u32;
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        match char::from_u32(c) {
            Some('*') if p.get(i + 1) == Some(&star) => {
                i += 2;
                // `**/` is `**`: the slash is part of the segments it stands for.
                if p.get(i) == Some(&SLASH) {
                    i += 1;
                }
                tokens.push(if i >= p.len() {
                    Token::Rest
                } else {
                    Token::Segments
                });
                continue;
            }
            Some('*') => tokens.push(Token::Star),
            Some('?') => tokens.push(Token::One),
            Some('\\') => {
                let escaped = *p.get(i + 1).ok_or("trailing backslash")?;
                tokens.push(Token::Char(escaped));
                i += 2;
                continue;
            }
            Some('[') => {
                let (token, next) = class(p, i + 1)?;
                tokens.push(token);
                i = next;
                continue;
            }
            _ => tokens.push(Token::Char(c)),
        }
        i += 1;
    }
    Ok(tokens)
}

/// Parses a class starting after `[` at `i` (Go `filepath.Match` syntax); returns the token and
/// the index after `]`.
fn class(p: &[u32], mut i: usize) -> Result<(Token, usize), &'static str> {
    const BAD: &str = "malformed character class";
    let negated = p.get(i) == Some(&('^' as u32));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *p.get(i).ok_or(BAD)?;
        if c == ']' as u32 && !ranges.is_empty() {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        let (lo, next) = class_char(p, i).ok_or(BAD)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&('-' as u32)) {
            (hi, i) = class_char(p, i + 1).ok_or(BAD)?;
            if hi < lo {
                return Err(BAD);
            }
        }
        ranges.push((lo, hi));
    }
}

fn class_char(p: &[u32], i: usize) -> Option<(u32, usize)> {
    match char::from_u32(*p.get(i)?)? {
        '-' | ']' => None,
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((u32::from(c), i + 1)),
    }
}

/// Anchored match of `tokens` against `path`: the set of path positions reachable after each
/// token, so stars never backtrack exponentially.
fn match_tokens(tokens: &[Token], path: &[u32]) -> bool {
    let n = path.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; n + 1];
        for p in (0..=n).filter(|&p| reach[p]) {
            match token {
                Token::Char(c) => {
                    if path.get(p) == Some(c) {
                        next[p + 1] = true;
                    }
                }
                Token::One => {
                    if path.get(p).is_some_and(|&c| c != SLASH) {
                        next[p + 1] = true;
                    }
                }
                Token::Class { negated, ranges } => {
                    if let Some(&c) = path.get(p) {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if inside != *negated {
                            next[p + 1] = true;
                        }
                    }
                }
                Token::Star => {
                    next[p] = true;
                    for q in p..n {
                        if path[q] == SLASH {
                            break;
                        }
                        next[q + 1] = true;
                    }
                }
                Token::Segments => {
                    next[p] = true;
                    for q in p..n {
                        if path[q] == SLASH {
                            next[q + 1] = true;
                        }
                    }
                }
                Token::Rest => next[p..].iter_mut().for_each(|r| *r = true),
            }
        }
        reach = next;
        if !reach.iter().any(|&r| r) {
            return false;
        }
    }
    reach[n]
}

impl std::fmt::Display for PatternMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<String> = self
            .patterns
            .iter()
            .map(|p| format!("{}{}", if p.exclusion { "!" } else { "" }, p.text))
            .collect();
        write!(f, "{}", texts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_like_moby_regexps() {
        let m = |p: &str, path: &str| {
            PatternMatcher::new([p])
                .unwrap()
                .matches_with_parent(path.as_bytes(), Some(&MatchInfo { matched: vec![false] }))
                .0
        };
        assert!(m("a**b", "ab"));
        assert!(m("a**b", "ax/b"));
        assert!(!m("a**b", "axb"));
        assert!(m("**", "anything/at/all"));
        assert!(m("**.log", "ax.log"));
        assert!(m("**/x", "x"));
        assert!(m("a/**", "a/b"));
        assert!(!m("a/**", "a"));
        // Classes follow the regexp moby builds: a negated class matches `/` too.
        assert!(m("a[^b]c", "a/c"));
    }

    #[test]
    fn literal_prefixes() {
        let p = Pattern::compile("a/b*/c", false).unwrap();
        assert_eq!(p.literal_prefix, vec![units(b"a")]);
        assert!(!p.fully_literal);
        assert!(p.may_match_below(&segments(b"a/bx")));
        assert!(!p.may_match_below(&segments(b"x")));
        let q = Pattern::compile("a/b", false).unwrap();
        assert!(q.may_match_below(&segments(b"a")));
        assert!(!q.may_match_below(&segments(b"a/b")));
    }
}
