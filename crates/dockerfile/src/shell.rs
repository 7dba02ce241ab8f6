//! Shell-word expansion for Dockerfile instruction arguments.
//!
//! This is the lexer BuildKit's Dockerfile frontend runs over the arguments of
//! ADD, COPY, ENV, EXPOSE, FROM, LABEL, USER, VOLUME, WORKDIR, ARG defaults and
//! similar: it removes quotes, applies the escape character and substitutes
//! variables. [`Lexer::process_word`] produces one string (no word splitting);
//! [`Lexer::process_words`] additionally splits the unquoted results of
//! variable expansion, and unquoted literal text, on whitespace;
//! [`Lexer::process_word_with_matches`] also reports which variable names were
//! looked up and found ("matched") or not found ("unmatched"), which the
//! linter's UndefinedVar rule consumes.
//!
//! Supported forms: `$NAME`, `${NAME}`, `${NAME:-w}` `${NAME-w}` `${NAME:+w}`
//! `${NAME+w}` `${NAME:?msg}` `${NAME?msg}`, prefix/suffix removal
//! `${NAME#p}` `${NAME##p}` `${NAME%p}` `${NAME%%p}` and substitution
//! `${NAME/p/r}` `${NAME//p/r}`. Patterns know `*`, `?` and `\` escapes (no
//! bracket expressions), and `*`/`?` never match a newline. Positional and
//! special parameters (`$1`, `$@`, `$#`, ...) are looked up like any other name,
//! so they expand to nothing unless the environment defines them. Names follow
//! BuildKit: a run of Unicode letters, digits and `_` (approximated with
//! [`char::is_alphabetic`] and [`char::is_numeric`]).
//!
//! The module is pure: it performs no IO and reads variables only through the
//! [`Env`] trait. Input never causes a panic; every problem is a [`ShellError`]
//! whose message matches BuildKit's wording and whose `offset` field is the
//! byte offset of the offending `$` or quote in the input word. BuildKit wraps
//! these messages as `failed to process "<word>": <message>`; callers that want
//! that wording add the prefix themselves.
//!
//! [`LexerOptions`] reproduces BuildKit's special modes (raw quotes, raw
//! escapes, quotes not special, unset variables left as written), which its
//! converter uses for instruction words, heredocs and step names.
//!
//! Deliberately different from BuildKit, all on inputs it mishandles:
//! `${NAME//p/r}` inserts `r` literally (Go's replace-all would expand `$1`
//! style templates in it); `${NAME` at the end of input reports "missing '}'"
//! rather than an odd "unsupported modifier"; the skip-unset mode keeps both
//! slashes of `${NAME//p/r}`; empty names are never recorded as unmatched;
//! fields keep the text before a `${NAME:-w}` (recent BuildKit shares one
//! buffer between nested words and loses it); and nesting `${...}` deeper
//! than [`MAX_NESTING`] is an error rather than a risk of stack exhaustion.
//! Pattern replacement inserts its (expanded) replacement once per match, so
//! nesting it multiplies lengths: `${a//?/${a//?/…}}` grows as len(a) to the
//! power of the depth. The total text replacements produce while expanding one
//! word is capped at [`MAX_REPLACED`] bytes, so a few dozen bytes of Dockerfile
//! cannot ask for gigabytes; and a pattern longer than the text it is matched
//! against is rejected before the scan, so a huge expanded pattern costs no
//! more than the text's length.
//!
//! Bounds on one word, so that no input can make an expansion cost more than
//! a few megabytes and a fraction of a second:
//! - the text `$` expansions put into a word, counted at every level of
//!   `${...}` nesting it passes through (so also in words that end up unused,
//!   like the `w` of `${SET:-w}`), is at most [`MAX_EXPANSION`] bytes; without
//!   it, `ARG B=$A$A$A$A` lines double or quadruple a value per line and ten
//!   lines ask for gigabytes;
//! - pattern replacements produce at most [`MAX_REPLACED`] bytes;
//! - matching patterns (`#`, `%`, `/`) takes at most [`MAX_MATCH_STEPS`]
//!   steps (characters scanned times pattern length).
//!
//! [`ProcessResult::match_steps`] reports the matching work, so that a caller
//! expanding many words can bound their total as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasher;

/// Deepest allowed nesting of `${...}` inside the word of another `${...}`.
pub const MAX_NESTING: usize = 128;

/// Most bytes that `${NAME/pattern/replacement}` expansions may produce, in
/// total, while expanding one word (see the module docs for why).
pub const MAX_REPLACED: usize = 1 << 20;

/// Most bytes that `$` expansions may put into one word, counted at each
/// level of `${...}` nesting (see the module docs). 4 MiB: far more than any
/// real word (Linux refuses a single argument or environment string over
/// 128 KiB), and more than [`MAX_REPLACED`] so a replacement can use all of
/// its own allowance.
pub const MAX_EXPANSION: usize = 4 << 20;

/// Most pattern-matching steps (characters scanned times pattern length) the
/// expansion of one word may take: about 50 ms of work.
pub const MAX_MATCH_STEPS: usize = 1 << 24;

/// Read-only view of the variables available to an expansion.
pub trait Env {
    /// Returns the value of `name`, or `None` when the variable is unset.
    /// A variable set to the empty string returns `Some("")`.
    fn get(&self, name: &str) -> Option<&str>;
}

impl<T: Env + ?Sized> Env for &T {
    fn get(&self, name: &str) -> Option<&str> {
        (**self).get(name)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// Key/value pairs; when a name occurs more than once the last entry wins.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// `KEY=VALUE` strings as in an image config; the last entry for a name wins
/// and an entry without `=` sets the name to the empty string (as BuildKit).
impl Env for [String] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            (key == name).then_some(value)
        })
    }
}

impl Env for Vec<String> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// Variables looked up without regard to letter case, as on Windows where
/// `$pwd` and `$PWD` are the same variable. Later inserts win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseInsensitiveEnv {
    /// Values keyed by the upper-cased name.
    vars: BTreeMap<String, String>,
}

impl CaseInsensitiveEnv {
    /// Creates an empty environment.
    pub fn new() -> CaseInsensitiveEnv {
        CaseInsensitiveEnv::default()
    }

    /// Sets `name` (in any case) to `value`, replacing an earlier value.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(fold_case(name), value.into());
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for CaseInsensitiveEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = CaseInsensitiveEnv::new();
        for (name, value) in iter {
            env.insert(name.as_ref(), value);
        }
        env
    }
}

impl Env for CaseInsensitiveEnv {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(&fold_case(name)).map(String::as_str)
    }
}

fn fold_case(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

/// Which quote an [`ShellError::UnterminatedQuote`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteKind {
    /// `'...'`
    Single,
    /// `"..."`
    Double,
}

impl fmt::Display for QuoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuoteKind::Single => "single-quote",
            QuoteKind::Double => "double-quote",
        })
    }
}

/// Why a word could not be expanded. Every variant carries `offset`, the byte
/// offset in the input word of the `$` or quote that starts the bad construct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A `${` was not closed by `}` before the end of the word.
    #[error("syntax error: missing '}}'")]
    MissingBrace {
        /// Offset of the `$`.
        offset: usize,
    },
    /// `${NAME/pattern` ended before the `/` that starts the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash {
        /// Offset of the `$`.
        offset: usize,
    },
    /// `${}`, `${{...}` or `${:...}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution {
        /// Offset of the `$`.
        offset: usize,
    },
    /// An operator after the name that is not supported, such as `:=`, `=`,
    /// `:#` or any other character (`${NAME.}`).
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The operator as written, e.g. `:=`.
        modifier: String,
        /// Offset of the `$`.
        offset: usize,
    },
    /// A quote was opened but never closed.
    #[error("unexpected end of statement while looking for matching {quote}")]
    UnterminatedQuote {
        /// Which quote.
        quote: QuoteKind,
        /// Offset of the opening quote.
        offset: usize,
    },
    /// `${NAME?msg}` with NAME unset, or `${NAME:?msg}` with NAME unset or
    /// empty. `message` is the expanded `msg`, or a default text.
    #[error("{name}: {message}")]
    Required {
        /// The variable name.
        name: String,
        /// The expanded message.
        message: String,
        /// Offset of the `$`.
        offset: usize,
    },
    /// The pattern of `#`, `%` or `/` has a bad escape.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after expansion.
        pattern: String,
        /// What is wrong with it.
        reason: String,
        /// Offset of the `$`.
        offset: usize,
    },
    /// Pattern replacements in one word produced more than [`MAX_REPLACED`]
    /// bytes.
    #[error("substitution result longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
        /// Offset of the `$` of the replacement that went over the limit.
        offset: usize,
    },
    /// `$` expansions put more than [`MAX_EXPANSION`] bytes into one word.
    #[error("variable expansion produces more than {max} bytes in one word")]
    ExpansionTooLong {
        /// The limit.
        max: usize,
        /// Offset of the `$` whose expansion went over the limit.
        offset: usize,
    },
    /// Pattern matching in one word took more than [`MAX_MATCH_STEPS`] steps.
    #[error("pattern matching needs more than {max} steps in one word")]
    MatchTooCostly {
        /// The limit.
        max: usize,
        /// Offset of the `$` of the pattern operation that went over the limit.
        offset: usize,
    },
    /// `${...}` nested more than [`MAX_NESTING`] levels deep.
    #[error("syntax error: substitutions nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Offset of the `$` that went over the limit.
        offset: usize,
    },
}

impl ShellError {
    /// Byte offset in the input word where the failing construct starts.
    pub fn offset(&self) -> usize {
        match self {
            ShellError::MissingBrace { offset }
            | ShellError::MissingSlash { offset }
            | ShellError::BadSubstitution { offset }
            | ShellError::UnsupportedModifier { offset, .. }
            | ShellError::UnterminatedQuote { offset, .. }
            | ShellError::Required { offset, .. }
            | ShellError::InvalidPattern { offset, .. }
            | ShellError::TooDeep { offset, .. }
            | ShellError::TooLong { offset, .. }
            | ShellError::ExpansionTooLong { offset, .. }
            | ShellError::MatchTooCostly { offset, .. } => *offset,
        }
    }
}

/// Output of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessResult {
    /// The whole word after quote removal and expansion (as `process_word`).
    pub result: String,
    /// The word split into fields (as `process_words`).
    pub words: Vec<String>,
    /// Names that were looked up and are set (possibly to "").
    pub matched: BTreeSet<String>,
    /// Names that were looked up and are unset.
    pub unmatched: BTreeSet<String>,
    /// Pattern-matching steps the expansion took (at most [`MAX_MATCH_STEPS`]).
    pub match_steps: usize,
}

/// Switches for BuildKit's special lexing modes; all off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LexerOptions {
    /// Keep quote characters in the output (quotes still group and protect).
    pub raw_quotes: bool,
    /// Keep escape characters in the output at top level and inside double
    /// quotes (the escaped character is still protected).
    pub raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters (used for heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X:-w}`, ...)
    /// instead of expanding them; the `?` check is skipped for them too.
    pub skip_unset_env: bool,
}

/// Expands shell words the way BuildKit's Dockerfile frontend does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    options: LexerOptions,
}

impl Lexer {
    /// Creates a lexer with the given escape character (`\` by default in
    /// Dockerfiles, `` ` `` after `# escape=``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            options: LexerOptions::default(),
        }
    }

    /// Returns this lexer with the given mode switches.
    pub fn with_options(self, options: LexerOptions) -> Lexer {
        Lexer { options, ..self }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// The mode switches.
    pub fn options(&self) -> LexerOptions {
        self.options
    }

    /// Expands one word: quotes removed, variables substituted, no splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process_word_with_matches(word, env)
            .map(|processed| processed.result)
    }

    /// Expands a word and splits it into fields: unquoted whitespace, including
    /// whitespace produced by unquoted expansions, separates fields; quoted and
    /// escaped text never does, and adjacent pieces glue into one field.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.process_word_with_matches(word, env)
            .map(|processed| processed.words)
    }

    /// Like [`Lexer::process_word`], also returning the fields and the sets of
    /// variable names that were found and not found.
    pub fn process_word_with_matches(&self, word: &str, env: &dyn Env) -> Result<ProcessResult, ShellError> {
        let mut expander = Expander {
            lexer: *self,
            src: word,
            pos: 0,
            env,
            depth: 0,
            replaced: 0,
            expanded: 0,
            match_steps: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        // Without a stop character the scan always ends at the end of input,
        // so `None` (stop character not found) cannot come back here.
        let (result, words) = expander.scan(None, self.options.raw_escapes)?.unwrap_or_default();
        Ok(ProcessResult {
            result,
            words: words.finish(),
            matched: expander.matched,
            unmatched: expander.unmatched,
            match_steps: expander.match_steps,
        })
    }
}

/// Accumulates fields for `process_words`.
#[derive(Default)]
struct Fields {
    done: Vec<String>,
    current: String,
}

impl Fields {
    /// Adds unprotected text: whitespace ends the current field.
    fn push_splitting(&mut self, text: &str) {
        for c in text.chars() {
            self.push_splitting_char(c);
        }
    }

    fn push_splitting_char(&mut self, c: char) {
        if c.is_whitespace() {
            if !self.current.is_empty() {
                self.done.push(std::mem::take(&mut self.current));
            }
        } else {
            self.current.push(c);
        }
    }

    /// Adds protected (quoted or escaped) text to the current field.
    fn push_protected(&mut self, text: &str) {
        self.current.push_str(text);
    }

    fn push_protected_char(&mut self, c: char) {
        self.current.push(c);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// State of one expansion: a cursor over the input plus the name sets.
struct Expander<'a> {
    lexer: Lexer,
    src: &'a str,
    /// Byte offset of the next character; always on a char boundary because
    /// it only ever advances by whole characters.
    pos: usize,
    env: &'a dyn Env,
    depth: usize,
    /// Bytes produced so far by pattern replacements, against [`MAX_REPLACED`].
    replaced: usize,
    /// Bytes `$` expansions put into words so far, against [`MAX_EXPANSION`].
    expanded: usize,
    /// Pattern-matching steps so far, against [`MAX_MATCH_STEPS`].
    match_steps: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Expander<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Expands text until `stop` (consumed, not part of the result) or the end
    /// of input. Returns `None` when `stop` was given but not found.
    fn scan(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<Option<(String, Fields)>, ShellError> {
        let mut text = String::new();
        let mut fields = Fields::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.bump();
                return Ok(Some((text, fields)));
            }
            if c == '$' {
                let value = self.expansion()?;
                fields.push_splitting(&value);
                text.push_str(&value);
                continue;
            }
            if (c == '\'' || c == '"') && !self.lexer.options.skip_process_quotes {
                let quoted = if c == '\'' {
                    self.single_quoted()?
                } else {
                    self.double_quoted(raw_escapes)?
                };
                fields.push_protected(&quoted);
                text.push_str(&quoted);
                continue;
            }
            self.bump();
            if c == self.lexer.escape {
                if raw_escapes {
                    text.push(c);
                    fields.push_protected_char(c);
                }
                // An escape character at the very end is dropped.
                let Some(escaped) = self.bump() else { break };
                text.push(escaped);
                fields.push_protected_char(escaped);
            } else {
                text.push(c);
                fields.push_splitting_char(c);
            }
        }
        Ok(stop.is_none().then_some((text, fields)))
    }

    /// Expands the word of a `${...}` up to `stop`. Like BuildKit, any failure
    /// that leaves the input exhausted is reported as `eof_error`.
    fn nested(&mut self, stop: char, raw_escapes: bool, eof_error: ShellError) -> Result<String, ShellError> {
        match self.scan(Some(stop), raw_escapes) {
            Ok(Some((text, _))) => Ok(text),
            Ok(None) => Err(eof_error),
            Err(_) if self.at_end() => Err(eof_error),
            Err(err) => Err(err),
        }
    }

    /// Single quotes: everything up to the next `'` is literal.
    fn single_quoted(&mut self) -> Result<String, ShellError> {
        let offset = self.pos;
        let raw = self.lexer.options.raw_quotes;
        self.bump();
        let mut out = String::new();
        if raw {
            out.push('\'');
        }
        loop {
            match self.bump() {
                None => {
                    return Err(ShellError::UnterminatedQuote {
                        quote: QuoteKind::Single,
                        offset,
                    });
                }
                Some('\'') => {
                    if raw {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// Double quotes: `$` expands; the escape character protects only `"`,
    /// `$` and itself and is kept literally before anything else.
    fn double_quoted(&mut self, raw_escapes: bool) -> Result<String, ShellError> {
        let offset = self.pos;
        let raw = self.lexer.options.raw_quotes;
        self.bump();
        let mut out = String::new();
        if raw {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::UnterminatedQuote {
                        quote: QuoteKind::Double,
                        offset,
                    });
                }
                Some('"') => {
                    self.bump();
                    if raw {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.expansion()?;
                    out.push_str(&value);
                }
                Some(c) => {
                    self.bump();
                    let mut literal = c;
                    if c == self.lexer.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // Nothing follows; the missing quote is reported next.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == c => {
                                self.bump();
                                literal = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(literal);
                }
            }
        }
    }

    /// Looks `name` up and records it as matched or unmatched.
    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let env: &'a dyn Env = self.env;
        let value = env.get(name);
        if !name.is_empty() {
            let set = if value.is_some() {
                &mut self.matched
            } else {
                &mut self.unmatched
            };
            set.insert(name.to_owned());
        }
        value
    }

    /// Reads a parameter name: a run of digits (positional), one special
    /// parameter character, or letters/digits/underscores. May be empty.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_numeric() => {
                while let Some(c) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(c);
                    self.bump();
                }
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                name.push(c);
                self.bump();
            }
            _ => {
                while let Some(c) = self
                    .peek()
                    .filter(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
                {
                    name.push(c);
                    self.bump();
                }
            }
        }
        name
    }

    /// Expands the `$...` at the cursor and counts what it produced against
    /// [`MAX_EXPANSION`], before the caller copies it into its word.
    fn expansion(&mut self) -> Result<String, ShellError> {
        let offset = self.pos;
        let value = self.dollar()?;
        self.expanded += value.len();
        if self.expanded > MAX_EXPANSION {
            return Err(ShellError::ExpansionTooLong {
                max: MAX_EXPANSION,
                offset,
            });
        }
        Ok(value)
    }

    /// Counts `steps` pattern-matching steps against [`MAX_MATCH_STEPS`].
    fn count_steps(&mut self, steps: usize, offset: usize) -> Result<(), ShellError> {
        self.match_steps = self.match_steps.saturating_add(steps);
        if self.match_steps > MAX_MATCH_STEPS {
            return Err(ShellError::MatchTooCostly {
                max: MAX_MATCH_STEPS,
                offset,
            });
        }
        Ok(())
    }

    /// What is left of the matching allowance.
    fn steps_left(&self) -> usize {
        MAX_MATCH_STEPS - self.match_steps
    }

    /// Expands the `$...` at the cursor.
    fn dollar(&mut self) -> Result<String, ShellError> {
        let offset = self.pos;
        let skip_unset = self.lexer.options.skip_unset_env;
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.bump();
        match self.peek() {
            None => return Err(ShellError::MissingBrace { offset }),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution { offset }),
            Some(_) => {}
        }
        if self.depth >= MAX_NESTING {
            return Err(ShellError::TooDeep {
                max: MAX_NESTING,
                offset,
            });
        }
        self.depth += 1;
        let result = self.braced(offset);
        self.depth -= 1;
        result
    }

    /// The part of `${...}` after the `{`.
    fn braced(&mut self, offset: usize) -> Result<String, ShellError> {
        let name = self.name();
        match self.bump() {
            None => Err(ShellError::MissingBrace { offset }),
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.options.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some('/') => self.replace(offset, &name),
            Some(op @ (':' | '-' | '+' | '?' | '#' | '%')) => self.modifier(offset, &name, op),
            Some(other) => Err(ShellError::UnsupportedModifier {
                modifier: other.to_string(),
                offset,
            }),
        }
    }

    /// `${NAME[:]op word}` for the operators `-`, `+`, `?`, `#` and `%`.
    fn modifier(&mut self, offset: usize, name: &str, first: char) -> Result<String, ShellError> {
        let (colon, op) = if first == ':' {
            match self.bump() {
                Some(op) => (true, op),
                None => return Err(ShellError::MissingBrace { offset }),
            }
        } else {
            (false, first)
        };
        let spelled = if colon { format!(":{op}") } else { op.to_string() };
        let unsupported = |modifier: String| ShellError::UnsupportedModifier { modifier, offset };
        // Patterns keep their escapes so `\*` can mean a literal star.
        let is_pattern = op == '#' || op == '%';
        if colon && is_pattern {
            return Err(unsupported(spelled));
        }
        let word = self.nested('}', is_pattern, ShellError::MissingBrace { offset })?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.options.skip_unset_env {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        // With a colon, an empty value counts as unset.
        let usable = value.filter(|v| !(colon && v.is_empty()));
        match op {
            '-' => Ok(usable.map_or(word, str::to_owned)),
            '+' => Ok(if usable.is_some() { word } else { String::new() }),
            '?' => match usable {
                Some(v) => Ok(v.to_owned()),
                None => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    Err(ShellError::Required {
                        name: name.to_owned(),
                        message,
                        offset,
                    })
                }
            },
            '#' | '%' => self.trim(value.unwrap_or(""), &word, op, offset),
            _ => Err(unsupported(spelled)),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn replace(&mut self, offset: usize, name: &str) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let pattern = self.nested('/', true, ShellError::MissingSlash { offset })?;
        let replacement = self.nested('}', true, ShellError::MissingBrace { offset })?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.options.skip_unset_env {
            let slashes = if all { "//" } else { "/" };
            return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
        }
        let glob = compile_glob(&pattern, offset)?;
        let text: Vec<char> = value.unwrap_or("").chars().collect();
        self.count_steps(text.len(), offset)?;
        let mut out = String::new();
        let mut copied = 0;
        let mut search = 0;
        while search <= text.len() {
            let Some((start, _, end)) = self.find(&glob, &text, search, false, offset)? else {
                break;
            };
            out.extend(text.get(copied..start).unwrap_or_default());
            // Like Go's regexp: no second replacement for an empty match
            // right after the previous match.
            if !all || end > copied || start == 0 {
                self.replaced += replacement.len();
                if self.replaced > MAX_REPLACED {
                    return Err(ShellError::TooLong {
                        max: MAX_REPLACED,
                        offset,
                    });
                }
                out.push_str(&replacement);
            }
            copied = end;
            if !all {
                break;
            }
            search = if search + 1 > end { search + 1 } else { end };
        }
        out.extend(text.get(copied..).unwrap_or_default());
        Ok(out)
    }

    /// Removes the shortest (`#`, `%`) or longest (`##`, `%%`) prefix (`#`)
    /// or suffix (`%`) of `value` that matches the pattern in `word`.
    fn trim(&mut self, value: &str, word: &str, op: char, offset: usize) -> Result<String, ShellError> {
        // As in BuildKit the doubled operator is recognised after expansion.
        let (longest, pattern) = match word.strip_prefix(op) {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        let mut glob = compile_glob(pattern, offset)?;
        let mut text: Vec<char> = value.chars().collect();
        self.count_steps(text.len(), offset)?;
        if op == '%' {
            // A suffix match is a prefix match of the reversed pattern on the
            // reversed text.
            glob.reverse();
            text.reverse();
        }
        let Some((_, shortest_end, longest_end)) = self.find(&glob, &text, 0, true, offset)? else {
            return Ok(value.to_owned());
        };
        let cut = if longest { longest_end } else { shortest_end };
        let kept = text.len().saturating_sub(cut);
        Ok(if op == '%' {
            text.iter().rev().take(kept).collect()
        } else {
            text.iter().skip(cut).collect()
        })
    }

    /// [`find_match`] within what is left of the word's matching allowance.
    fn find(
        &mut self,
        glob: &[Glob],
        text: &[char],
        from: usize,
        anchored: bool,
        offset: usize,
    ) -> Result<Option<(usize, usize, usize)>, ShellError> {
        let mut left = self.steps_left();
        let found = find_match(glob, text, from, anchored, &mut left);
        self.match_steps = MAX_MATCH_STEPS - left;
        found.map_err(|OutOfSteps| ShellError::MatchTooCostly {
            max: MAX_MATCH_STEPS,
            offset,
        })
    }
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glob {
    Literal(char),
    /// `?`: any one character except newline.
    One,
    /// `*`: any run of characters without a newline.
    Many,
}

impl Glob {
    /// Whether this element consumes `c` and moves on to the next element.
    fn steps_over(self, c: char) -> bool {
        match self {
            Glob::Literal(l) => l == c,
            Glob::One => c != '\n',
            Glob::Many => false,
        }
    }
}

fn compile_glob(pattern: &str, offset: usize) -> Result<Vec<Glob>, ShellError> {
    let invalid = |reason: String| ShellError::InvalidPattern {
        pattern: pattern.to_owned(),
        reason,
        offset,
    };
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // `**` matches what `*` does; one state instead of a run of them
            // keeps the matcher's state count within twice the non-star length.
            '*' if out.last() == Some(&Glob::Many) => {}
            '*' => out.push(Glob::Many),
            '?' => out.push(Glob::One),
            '\\' => match chars.peek().copied() {
                // The backslash only kept `}` or `/` from ending the ${...}
                // part; the character itself is read next as a literal.
                Some('}' | '/') => {}
                Some(next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Glob::Literal(next));
                }
                Some(next) => return Err(invalid(format!("invalid escape '\\{next}'"))),
                None => return Err(invalid("invalid escape '\\' at end of pattern".to_owned())),
            },
            c => out.push(Glob::Literal(c)),
        }
    }
    Ok(out)
}

/// Finds the leftmost match of `glob` in `text` that starts at or after
/// `from` (exactly at `from` when `anchored`), as `(start, shortest end,
/// longest end)` in chars. For these patterns the longest end is what Go's
/// greedy regexp picks and the shortest what its lazy form picks. All
/// candidate starts run at once; each pattern state keeps its earliest start,
/// since two threads in the same state have the same future.
///
/// Each character scanned costs `glob.len() + 1` steps, taken from
/// `steps_left`; when they run out the search stops with [`OutOfSteps`].
fn find_match(
    glob: &[Glob],
    text: &[char],
    from: usize,
    anchored: bool,
    steps_left: &mut usize,
) -> Result<Option<(usize, usize, usize)>, OutOfSteps> {
    fn keep_earliest(slot: &mut Option<usize>, start: usize) {
        if slot.is_none_or(|s| start < s) {
            *slot = Some(start);
        }
    }
    // Every element but `*` consumes a character: if fewer are left, no match
    // can start at or after `from`. Besides saving the scan, this bounds the
    // work on a huge pattern produced by nested expansion to the text's length.
    let needed = glob.iter().filter(|g| **g != Glob::Many).count();
    if needed > text.len().saturating_sub(from) {
        return Ok(None);
    }
    // states[i] = earliest start of a thread about to match glob[i].
    let accept = glob.len();
    let mut states: Vec<Option<usize>> = vec![None; accept + 1];
    let mut next: Vec<Option<usize>> = vec![None; accept + 1];
    let mut best: Option<(usize, usize, usize)> = None;
    let mut pos = from;
    loop {
        *steps_left = steps_left.checked_sub(accept + 1).ok_or(OutOfSteps)?;
        if best.is_none() && (!anchored || pos == from) {
            keep_earliest(&mut states[0], pos);
        }
        // `*` may match nothing.
        for (i, g) in glob.iter().enumerate() {
            if let (Glob::Many, Some(start)) = (g, states[i]) {
                keep_earliest(&mut states[i + 1], start);
            }
        }
        if let Some(start) = states[accept] {
            best = match best {
                Some((s, first, _)) if s == start => Some((s, first, pos)),
                Some(found) if found.0 < start => Some(found),
                _ => Some((start, pos, pos)),
            };
        }
        if let Some((best_start, _, _)) = best {
            for slot in states.iter_mut() {
                if slot.is_some_and(|s| s > best_start) {
                    *slot = None;
                }
            }
        }
        let Some(&c) = text.get(pos) else { break };
        if states.iter().all(Option::is_none) && (best.is_some() || anchored) {
            break;
        }
        next.fill(None);
        for (i, g) in glob.iter().enumerate() {
            let Some(start) = states[i] else { continue };
            if g.steps_over(c) {
                keep_earliest(&mut next[i + 1], start);
            } else if *g == Glob::Many && c != '\n' {
                keep_earliest(&mut next[i], start);
            }
        }
        std::mem::swap(&mut states, &mut next);
        pos += 1;
    }
    Ok(best)
}

/// [`find_match`] used up its steps.
struct OutOfSteps;

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// (input, env, expected result or None for an error, matched, unmatched)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a [&'a str],
        &'a [&'a str],
    );

    fn check(cases: &[Case<'_>]) {
        let lexer = Lexer::new('\\');
        for (input, env, expected, matched, unmatched) in cases {
            let got = lexer.process_word_with_matches(input, &map(env));
            match expected {
                None => assert!(got.is_err(), "{input:?} should fail, got {got:?}"),
                Some(want) => {
                    let got = got.unwrap_or_else(|e| panic!("{input:?} failed: {e}"));
                    assert_eq!(got.result, *want, "result of {input:?}");
                    assert_eq!(got.matched, set(matched), "matched of {input:?}");
                    assert_eq!(got.unmatched, set(unmatched), "unmatched of {input:?}");
                }
            }
        }
    }

    #[test]
    fn defaults_alternatives_and_name_sets() {
        let two: &[(&str, &str)] = &[("A", "val"), ("E", "")];
        check(&[
            ("plain", &[("X", "x")], Some("plain"), &[], &[]),
            ("p ${MISSING}", &[("X", "x")], Some("p "), &[], &["MISSING"]),
            ("p ${A}", two, Some("p val"), &["A"], &[]),
            ("${A-1} ${E-2} ${U-3}", two, Some("val  3"), &["A", "E"], &["U"]),
            (
                "${A:-1} ${E:-2} ${U:-3}",
                two,
                Some("val 2 3"),
                &["A", "E"],
                &["U"],
            ),
            ("${A:-}", two, Some("val"), &["A"], &[]),
            ("${A:-}", &[], Some(""), &[], &["A"]),
            ("${A+1} ${E+2} ${U+3}", two, Some("1 2 "), &["A", "E"], &["U"]),
            ("${A:+1} ${E:+2} ${U:+3}", two, Some("1  "), &["A", "E"], &["U"]),
            ("${A?no}", two, Some("val"), &["A"], &[]),
            ("${E?no}", two, Some(""), &["E"], &[]),
            ("${U?no}", two, None, &[], &[]),
            ("${A:?no}", two, Some("val"), &["A"], &[]),
            ("${E:?no}", two, None, &[], &[]),
            ("${U:?}", two, None, &[], &[]),
            ("${A=x}", two, None, &[], &[]),
            ("${A=:x}", two, None, &[], &[]),
            ("${A=}", &[], None, &[], &[]),
            ("${A:=x}", two, None, &[], &[]),
            ("$1 ${@}", &[], Some(" "), &[], &["1", "@"]),
        ]);
    }

    #[test]
    fn prefix_and_suffix_removal() {
        let v: &[(&str, &str)] = &[("V", "aabb")];
        check(&[
            // Regex metacharacters are plain characters in patterns.
            (
                r"${V#()[]{\}^$.\*\?|\\}",
                &[("V", r"()[]{}^$.*?|\z")],
                Some("z"),
                &["V"],
                &[],
            ),
            (r"${V%%\**}", &[("V", "aa**")], Some("aa"), &["V"], &[]),
            ("${V#*a*b}", v, Some("b"), &["V"], &[]),
            ("${V##*a*b}", v, Some(""), &["V"], &[]),
            ("${V#*}", v, Some("aabb"), &["V"], &[]),
            ("${V##*}", v, Some(""), &["V"], &[]),
            (
                "${V#$P}",
                &[("V", "aabb"), ("P", "a")],
                Some("abb"),
                &["P", "V"],
                &[],
            ),
            (
                "${V#$P}",
                &[("V", "aabb"), ("P", "")],
                Some("aabb"),
                &["P", "V"],
                &[],
            ),
            ("${V#}", v, Some("aabb"), &["V"], &[]),
            ("${V##}", v, Some("aabb"), &["V"], &[]),
            ("${V##*a}", v, Some("bb"), &["V"], &[]),
            (r"${V#?\?}", &[("V", "???z")], Some("?z"), &["V"], &[]),
            ("${N:-.}${V%a}${N:-.}", v, Some(".aabb."), &["V"], &["N"]),
            ("${V%b*}", v, Some("aab"), &["V"], &[]),
            ("${V%%b*}", v, Some("aa"), &["V"], &[]),
            (r"${V%%\**\*}", &[("V", "q***zz*")], Some("q"), &["V"], &[]),
            ("${V%}", v, Some("aabb"), &["V"], &[]),
            (
                "${V%%$P}",
                &[("V", "aabb"), ("P", "")],
                Some("aabb"),
                &["P", "V"],
                &[],
            ),
            ("${V#한}", &[("V", "한국어")], Some("국어"), &["V"], &[]),
            ("${V%?}", &[("V", "한국어")], Some("한국"), &["V"], &[]),
            ("${U#a}", &[], Some(""), &[], &["U"]),
            // `*` and `?` do not cross newlines.
            ("${V#*b}", &[("V", "a\nb")], Some("a\nb"), &["V"], &[]),
            (r"${V#\x}", v, None, &[], &[]),
            ("${V:#a}", v, None, &[], &[]),
            ("${V:%a}", v, None, &[], &[]),
        ]);
    }

    #[test]
    fn pattern_substitution() {
        check(&[
            (
                "${V/$N/.} - ${V//$N/.}",
                &[("V", "/foo*/*/*.txt"), ("N", r"\*/")],
                Some("/foo.*/*.txt - /foo..*.txt"),
                &["N", "V"],
                &[],
            ),
            (
                "${V/$N/} - ${V//$N/}",
                &[("V", "/tmp/tmp/bar.txt"), ("N", "/tmp")],
                Some("/tmp/bar.txt - /bar.txt"),
                &["N", "V"],
                &[],
            ),
            (
                "${V/$N/$R} - ${V//$N/$R}",
                &[("V", "/a/foo/b/c.txt"), ("N", "/?/"), ("R", "/")],
                Some("/foo/b/c.txt - /foo/c.txt"),
                &["N", "R", "V"],
                &[],
            ),
            (
                "${V/$N/$R}",
                &[("V", "http://x.de"), ("N", "http://"), ("R", "https://")],
                Some("https://x.de"),
                &["N", "R", "V"],
                &[],
            ),
            // Escaped slashes: the replacement keeps its backslash.
            (r"${V//\//\/}", &[("V", "/a/b")], Some(r"\/a\/b"), &["V"], &[]),
            ("${V/a*/X}", &[("V", "baab")], Some("bX"), &["V"], &[]),
            ("${V//?/-}", &[("V", "한국")], Some("--"), &["V"], &[]),
            (
                "${V/$E/ww}",
                &[("V", "aabb"), ("E", "")],
                Some("wwaabb"),
                &["E", "V"],
                &[],
            ),
            (
                "${V//$E/-}",
                &[("V", "ab"), ("E", "")],
                Some("-a-b-"),
                &["E", "V"],
                &[],
            ),
            ("${V//b*/-}", &[("V", "abab")], Some("a-"), &["V"], &[]),
            ("${V///}", &[("V", "aabb")], Some("aabb"), &["V"], &[]),
            ("${V///}", &[], Some(""), &[], &["V"]),
            ("${V//ww}", &[("V", "aabb")], None, &[], &[]),
            ("${V//}", &[("V", "aabb")], None, &[], &[]),
        ]);
    }

    #[test]
    fn error_messages() {
        let lexer = Lexer::new('\\');
        let env = vec!["VAR=".to_string(), "ARG=x".to_string()];
        let message = |word: &str| match lexer.process_word(word, &env) {
            Ok(v) => panic!("{word:?} should fail, got {v:?}"),
            Err(e) => (e.to_string(), e.offset()),
        };
        assert_eq!(message("${VAR:?message here$ARG}").0, "VAR: message herex");
        assert_eq!(message("${NOPE?}").0, "NOPE: is not allowed to be unset");
        assert_eq!(message("a${VAR:?}").0, "VAR: is not allowed to be empty");
        assert_eq!(message("a${VAR:?}").1, 1);
        assert_eq!(message("ab${x").0, "syntax error: missing '}'");
        assert_eq!(message("${x:-${y}").0, "syntax error: missing '}'");
        assert_eq!(message("${x/a").0, "syntax error: missing '/' in ${}");
        assert_eq!(message("${}").0, "syntax error: bad substitution");
        assert_eq!(message("${x:=1}").0, "unsupported modifier (:=) in substitution");
        assert_eq!(message("${x.}").0, "unsupported modifier (.) in substitution");
        assert_eq!(
            message("x 'abc").0,
            "unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(message("x 'abc").1, 2);
        assert_eq!(
            message("\"abc").0,
            "unexpected end of statement while looking for matching double-quote"
        );
        assert_eq!(
            message(r"${ARG#\q}").0,
            r"invalid pattern (\q) in substitution: invalid escape '\q'"
        );
        let deep = "${a:-".repeat(MAX_NESTING + 5) + &"}".repeat(MAX_NESTING + 5);
        assert!(matches!(
            lexer.process_word(&deep, &env),
            Err(ShellError::TooDeep { .. })
        ));
        let fine = "${a:-".repeat(20) + "z" + &"}".repeat(20);
        assert_eq!(lexer.process_word(&fine, &env).ok().as_deref(), Some("z"));
    }

    #[test]
    fn backtick_escape() {
        let lexer = Lexer::new('`');
        let env = map(&[("PWD", "/home"), ("S", "*x")]);
        for (input, want) in [
            (r"C:\dir\file", r"C:\dir\file"),
            ("`$PWD", "$PWD"),
            (r"\$PWD", r"\/home"),
            ("a` b", "a b"),
            ("\"a`\"b\"", "a\"b"),
            ("\"a`tb\"", "a`tb"),
            ("\"a``b\"", "a`b"),
            ("end`", "end"),
            // Patterns always use `\`, whatever the escape character.
            (r"${S#\*}", "x"),
            (r"${X:-\}", "\\"),
        ] {
            assert_eq!(
                lexer.process_word(input, &env).ok().as_deref(),
                Some(want),
                "{input:?}"
            );
        }
        let words = lexer.process_words("a` b c", &env).unwrap();
        assert_eq!(words, ["a b", "c"]);
    }

    #[test]
    fn lexer_modes() {
        let env = map(&[("SET", "v"), ("SP", "a b")]);
        let with = |options: LexerOptions| Lexer::new('\\').with_options(options);
        let skip = with(LexerOptions {
            skip_unset_env: true,
            ..LexerOptions::default()
        });
        let got = skip
            .process_word("$SET $UN ${UN} ${UN:-d} ${UN?m} ${UN//a/b} $1", &env)
            .unwrap();
        assert_eq!(got, "v $UN ${UN} ${UN:-d} ${UN?m} ${UN//a/b} $1");
        let raw = with(LexerOptions {
            raw_quotes: true,
            raw_escapes: true,
            ..LexerOptions::default()
        });
        assert_eq!(
            raw.process_words(r#"<<"EOF" 'a b' c\ d "$SP""#, &env).unwrap(),
            [r#"<<"EOF""#, "'a b'", r"c\ d", "\"a b\""]
        );
        let no_quotes = with(LexerOptions {
            skip_process_quotes: true,
            ..LexerOptions::default()
        });
        assert_eq!(
            no_quotes.process_word(r#"say "$SET" 'x' \n"#, &env).unwrap(),
            r#"say "v" 'x' n"#
        );
    }

    #[test]
    fn splitting_and_platform_names() {
        let lexer = Lexer::new('\\');
        let env = map(&[("SP", " x  y ")]);
        let words = lexer.process_words(r#"a${SP}b "${SP}" x${U:-c d}e '' \ "#, &env);
        assert_eq!(words.unwrap(), ["a", "x", "y", "b", " x  y ", "xc", "de", " "]);
        let release = "pkg-${V}.${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tgz";
        let base = [("V", "1.2"), ("OS", "linux"), ("ARCH", "arm")];
        let with = |variant: Option<&str>| {
            let mut env = map(&base);
            env.extend(variant.map(|v| ("VARIANT".to_string(), v.to_string())));
            lexer.process_word(release, &env).unwrap()
        };
        assert_eq!(with(Some("v7")), "pkg-1.2.linux-arm-v7.tgz");
        assert_eq!(with(Some("")), "pkg-1.2.linux-arm.tgz");
        assert_eq!(with(None), "pkg-1.2.linux-arm.tgz");
    }

    /// Checks `find_match` against a brute-force search over all spans.
    #[test]
    fn matcher_agrees_with_brute_force() {
        fn full(glob: &[Glob], t: &[char]) -> bool {
            match glob.split_first() {
                None => t.is_empty(),
                Some((Glob::Many, rest)) => (0..=t.len())
                    .take_while(|&k| k == 0 || t[k - 1] != '\n')
                    .any(|k| full(rest, &t[k..])),
                Some((g, rest)) => t.first().is_some_and(|&c| g.steps_over(c)) && full(rest, &t[1..]),
            }
        }
        let parts = [Glob::Literal('a'), Glob::Literal('b'), Glob::One, Glob::Many];
        let letters = ['a', 'b', '\n'];
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize % n
        };
        for _ in 0..3000 {
            let glob: Vec<Glob> = (0..next(5)).map(|_| parts[next(4)]).collect();
            let text: Vec<char> = (0..next(8)).map(|_| letters[next(3)]).collect();
            for anchored in [true, false] {
                for from in 0..=text.len() {
                    let starts = if anchored { from..=from } else { from..=text.len() };
                    let expected = starts.into_iter().find_map(|s| {
                        let ends: Vec<usize> =
                            (s..=text.len()).filter(|&e| full(&glob, &text[s..e])).collect();
                        Some((s, *ends.first()?, *ends.last()?))
                    });
                    let mut steps = usize::MAX;
                    let Ok(got) = find_match(&glob, &text, from, anchored, &mut steps) else {
                        panic!("the matcher ran out of unlimited steps");
                    };
                    assert_eq!(got, expected, "{glob:?} {text:?} from {from} anchored {anchored}");
                }
            }
        }
    }

    #[test]
    fn environment_kinds() {
        let lexer = Lexer::new('\\');
        let list = vec!["A=1".to_string(), "B".to_string(), "A=2".to_string()];
        assert_eq!(lexer.process_word("$A-${B-unset}", &list).unwrap(), "2-");
        let pairs = vec![
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "3".to_string()),
        ];
        assert_eq!(lexer.process_word("$A", &pairs).unwrap(), "3");
        let slice: &[(String, String)] = &pairs;
        assert_eq!(lexer.process_word("$A", &slice).unwrap(), "3");
        let windows: CaseInsensitiveEnv = [("Path", "c:/x"), ("PATH", "c:/y")].into_iter().collect();
        let got = lexer.process_word_with_matches("$path", &windows).unwrap();
        assert_eq!(got.result, "c:/y");
        assert_eq!(got.matched, set(&["path"]));
    }
}
