//! The line-level Dockerfile parser.
//!
//! It turns text into a list of [`Node`]s, one per instruction, in the same shape as BuildKit's
//! parse tree (`frontend/dockerfile/parser`): a lower-cased keyword, the `--flags` written
//! before the arguments, the arguments split according to the instruction, heredoc bodies, and
//! the range of lines the instruction spans. [`Node::dump`] prints exactly BuildKit's test dump
//! format, which the conformance tests compare byte for byte.
//!
//! The parser never stops at an error: a bad line becomes a [`Diagnostic`] and parsing goes on,
//! so a single run reports every problem. Callers refuse to build when any diagnostic is an error.
//!
//! Handled here: parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of the
//! file, comments, line continuations (with comments and blank lines inside them), exec (JSON)
//! versus shell form, per-instruction argument shapes, instruction flags, and heredocs.

use std::fmt::Write as _;

/// Lines longer than this are rejected, as BuildKit's scanner does.
pub const MAX_LINE_LENGTH: usize = 65535;

/// Instructions whose arguments may contain heredocs.
const HEREDOC_INSTRUCTIONS: [&str; 3] = ["add", "copy", "run"];

/// One parsed instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The keyword, lower-cased (`from`, `run`, …).
    pub keyword: String,
    /// The keyword as written.
    pub keyword_original: String,
    /// `--flag[=value]` words written before the arguments, as written (quotes removed).
    pub flags: Vec<String>,
    /// Arguments; their shape depends on the instruction (see the module docs of BuildKit's
    /// `line_parsers.go`, reproduced by [`parse_arguments`]).
    pub args: Vec<Arg>,
    /// The arguments were written in JSON (exec) form.
    pub json: bool,
    /// Heredoc bodies attached to the instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// The instruction's text after joining continuation lines.
    pub original: String,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line (1-based, inclusive), including heredoc bodies.
    pub end_line: usize,
    /// Comment lines directly above the instruction.
    pub prev_comment: Vec<String>,
}

/// One argument of a [`Node`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A plain value.
    Value(String),
    /// A nested instruction (the argument of `ONBUILD`).
    Instruction(Box<Node>),
}

impl Arg {
    /// The value, if this is a plain value.
    pub fn value(&self) -> Option<&str> {
        match self {
            Arg::Value(v) => Some(v),
            Arg::Instruction(_) => None,
        }
    }
}

/// A heredoc: `<<[-]NAME` in the instruction and its body on the following lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted.
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 if none.
    pub file_descriptor: u32,
    /// Variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines.
    pub chomp: bool,
    /// The body, with line endings.
    pub content: String,
}

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The file cannot be built.
    Error,
    /// Suspicious but accepted.
    Warning,
}

/// A problem found while parsing, with the lines it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// First line (1-based; 0 when the problem concerns the whole file).
    pub start_line: usize,
    /// Last line (1-based, inclusive).
    pub end_line: usize,
}

/// Parser directives found at the top of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` value.
    pub syntax: Option<(String, usize)>,
    /// `# escape=` value.
    pub escape: Option<char>,
    /// `# check=` value.
    pub check: Option<String>,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Ast {
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// Parser directives.
    pub directives: Directives,
    /// Every problem found; see [`Ast::has_errors`].
    pub diagnostics: Vec<Diagnostic>,
}

impl Ast {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// The first error, if any.
    pub fn first_error(&self) -> Option<&Diagnostic> {
        self.diagnostics.iter().find(|d| d.severity == Severity::Error)
    }

    /// BuildKit's test dump of the whole file: one `(instruction …)` line per instruction.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }
}

impl Node {
    /// BuildKit's dump of one instruction, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut out = self.keyword.clone();
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&go_quote(flag));
            }
            out.push(']');
        }
        for arg in &self.args {
            match arg {
                Arg::Value(v) => {
                    out.push(' ');
                    out.push_str(&go_quote(v));
                }
                Arg::Instruction(node) => {
                    let _ = write!(out, " ({})", node.dump());
                }
            }
        }
        out.trim().to_string()
    }

    /// The plain values of the arguments.
    pub fn values(&self) -> Vec<&str> {
        self.args.iter().filter_map(Arg::value).collect()
    }
}

/// Quotes `s` as Go's `strconv.Quote` does, so dumps compare byte for byte with BuildKit's.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` for non-ASCII characters: control characters,
/// separators other than the ASCII space, and private-use or special code points are escaped.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(matches!(u, 0x80..=0xa0 | 0xad | 0x2028 | 0x2029 | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f)
        || (0xe000..=0xf8ff).contains(&u)
        || u == 0xfeff
        || (0xfff0..=0xffff).contains(&u)
        || c.is_whitespace())
}

struct DirectiveState {
    done: bool,
    escape: char,
    directives: Directives,
}

impl DirectiveState {
    /// Looks at a line at the top of the file. Returns an error message for a bad directive.
    fn look(&mut self, line: &str, line_no: usize) -> Option<String> {
        if self.done {
            return None;
        }
        let Some((key, value)) = parse_directive(line) else {
            self.done = true;
            return None;
        };
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "escape" => {
                if self.directives.escape.is_some() {
                    return Some("only one escape parser directive can be used".into());
                }
                match value.as_str() {
                    "\\" | "`" => {
                        let c = value.chars().next().unwrap_or('\\');
                        self.directives.escape = Some(c);
                        self.escape = c;
                        None
                    }
                    _ => Some(format!("invalid escape token '{value}' does not match ` or \\")),
                }
            }
            "syntax" => {
                if self.directives.syntax.is_some() {
                    return Some("only one syntax parser directive can be used".into());
                }
                self.directives.syntax = Some((value, line_no));
                None
            }
            "check" => {
                if self.directives.check.is_some() {
                    return Some("only one check parser directive can be used".into());
                }
                self.directives.check = Some(value);
                None
            }
            _ => {
                self.done = true;
                None
            }
        }
    }
}

/// Matches `# key = value` (BuildKit: `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`).
fn parse_directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if key.is_empty() || !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    if rest.is_empty() {
        return None;
    }
    Some((key.to_string(), rest.to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing continuation escape. Returns the line and whether the instruction ends.
///
/// BuildKit: the escape character followed only by blanks at the end of a line continues the
/// instruction, unless it is itself escaped (preceded by another escape character); an escape
/// character alone on a line also continues.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

/// Splits the input into lines, keeping each line's terminator (like BuildKit's scanner).
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            lines.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Parses a Dockerfile. Never fails: problems are reported in [`Ast::diagnostics`].
pub fn parse(text: &str) -> Ast {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = LineParser {
        lines: split_lines(text),
        next: 0,
        state: DirectiveState {
            done: false,
            escape: '\\',
            directives: Directives::default(),
        },
        nodes: Vec::new(),
        diagnostics: Vec::new(),
        comments: Vec::new(),
    };
    while parser.next < parser.lines.len() {
        parser.instruction();
    }
    let mut diagnostics = parser.diagnostics;
    if parser.nodes.is_empty() && !diagnostics.iter().any(|d| d.severity == Severity::Error) {
        diagnostics.push(error("file with no instructions".into(), 0, 0));
    }
    Ast {
        nodes: parser.nodes,
        escape: parser.state.escape,
        directives: parser.state.directives,
        diagnostics,
    }
}

fn error(message: String, start_line: usize, end_line: usize) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        message,
        start_line,
        end_line,
    }
}

/// The parser's progress through the lines of a file.
struct LineParser<'t> {
    lines: Vec<&'t str>,
    /// Index of the next line to read.
    next: usize,
    state: DirectiveState,
    nodes: Vec<Node>,
    diagnostics: Vec<Diagnostic>,
    /// Comment lines since the last instruction.
    comments: Vec<String>,
}

impl LineParser<'_> {
    /// Reads the next instruction (with its continuation lines and heredocs), or a line that
    /// holds none.
    fn instruction(&mut self) {
        let raw = trim_newline(self.lines[self.next]);
        self.next += 1;
        let start_line = self.next;
        if raw.len() > MAX_LINE_LENGTH {
            let message = format!("dockerfile line greater than max allowed size of {MAX_LINE_LENGTH}");
            self.diagnostics.push(error(message, start_line, start_line));
            return;
        }
        let stripped = raw.trim_start();
        if is_comment(stripped) {
            self.comments.push(stripped[1..].trim().to_string());
        }
        if let Some(message) = self.state.look(stripped, start_line) {
            self.diagnostics.push(error(message, start_line, start_line));
        }
        let content = if is_comment(stripped) { "" } else { stripped };
        let (joined, ended) = trim_continuation(content, self.state.escape);
        if ended && joined.is_empty() {
            return;
        }
        let joined = self.continuation(joined, ended, start_line);
        self.state.done = true;
        let end_line = self.next;
        let mut node = match parse_instruction(&joined, self.state.escape) {
            Ok(node) => node,
            Err(message) => {
                self.diagnostics.push(error(message, start_line, end_line));
                self.comments.clear();
                return;
            }
        };
        node.start_line = start_line;
        node.end_line = end_line;
        if node.can_contain_heredoc() {
            self.heredocs(&mut node, &joined);
        }
        node.prev_comment = std::mem::take(&mut self.comments);
        self.nodes.push(node);
    }

    /// Appends the continuation lines of an instruction whose first line is `joined` (which
    /// `ended` says whether it ends there), skipping comments and blank lines (with a warning
    /// for blank ones, as BuildKit).
    fn continuation(&mut self, mut joined: String, mut ended: bool, start_line: usize) -> String {
        let mut empty_continuation = false;
        while !ended && self.next < self.lines.len() {
            let raw = trim_newline(self.lines[self.next]);
            self.next += 1;
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(raw, self.state.escape);
            joined.push_str(&part);
            ended = end;
        }
        if empty_continuation {
            self.diagnostics.push(Diagnostic {
                severity: Severity::Warning,
                message: "empty continuation line found".into(),
                start_line,
                end_line: self.next,
            });
        }
        joined
    }

    /// Reads the bodies of the heredocs `line` names, extending the node to their last line.
    fn heredocs(&mut self, node: &mut Node, line: &str) {
        for mut heredoc in heredocs_in_line(line, self.state.escape) {
            let mut terminated = false;
            while self.next < self.lines.len() {
                let body_line = self.lines[self.next];
                self.next += 1;
                let mut candidate = trim_newline(body_line);
                if heredoc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == heredoc.name {
                    terminated = true;
                    break;
                }
                heredoc.content.push_str(body_line);
            }
            node.end_line = self.next;
            if !terminated {
                let message = format!(
                    "unterminated heredoc {:?}: no line with its closing delimiter",
                    heredoc.name
                );
                self.diagnostics
                    .push(error(message, node.start_line, node.end_line));
                break;
            }
            node.heredocs.push(heredoc);
        }
    }
}

impl Node {
    fn can_contain_heredoc(&self) -> bool {
        let node = if self.keyword == "onbuild" {
            match self.args.first() {
                Some(Arg::Instruction(inner)) => inner.as_ref(),
                _ => return false,
            }
        } else {
            self
        };
        HEREDOC_INSTRUCTIONS.contains(&node.keyword.as_str()) && !node.json
    }
}

/// Parses one (joined) instruction line into a node without line information.
pub fn parse_instruction(line: &str, escape: char) -> Result<Node, String> {
    parse_nested(line, escape, 0)
}

/// How deep ONBUILD triggers may nest in the tree: `ONBUILD ONBUILD RUN x` still parses (for
/// the instruction layer to refuse with its own message), a third ONBUILD is refused here, so
/// that a line of a hundred thousand ONBUILDs cannot nest a tree that deep (parsing, dumping
/// and freeing it would each overflow the stack).
const MAX_ONBUILD_NESTING: usize = 2;

/// [`parse_instruction`] for an instruction nested `depth` ONBUILDs deep.
fn parse_nested(line: &str, escape: char, depth: usize) -> Result<Node, String> {
    let trimmed = line.trim();
    let (keyword, rest) = match trimmed.find(char::is_whitespace) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim_start()),
        None => (trimmed, ""),
    };
    let (args_text, flags) = extract_flags(rest);
    let args_text = args_text.trim();
    let lower = keyword.to_ascii_lowercase();
    let (args, json) = arguments(&lower, args_text, escape, depth)?;
    Ok(Node {
        keyword: lower,
        keyword_original: keyword.to_string(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        prev_comment: Vec::new(),
    })
}

/// Splits leading `--flag[=value]` words off `line`. Quotes inside flag words are removed and
/// backslashes escape the next character; `--` alone ends the flags.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let bytes = line.as_bytes();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && (bytes[pos] as char).is_ascii_whitespace() {
            pos += 1;
        }
        if pos + 1 >= bytes.len() || bytes[pos] != b'-' || bytes[pos + 1] != b'-' {
            return (&line[pos..], flags);
        }
        // Read one word, honouring quotes and backslash escapes.
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        let mut chars = line[pos..].char_indices().peekable();
        let mut end = line.len();
        while let Some((off, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = pos + off;
                    break;
                }
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => match chars.next() {
                    Some((_, n)) => word.push(n),
                    None => {
                        quote = None;
                    }
                },
                _ => word.push(c),
            }
        }
        pos = end;
        if word == "--" {
            return (&line[pos..], flags);
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
    }
}

/// Splits instruction arguments according to the instruction, as BuildKit's dispatch table does.
/// Returns the arguments and whether they were written in JSON form.
pub fn parse_arguments(keyword: &str, rest: &str, escape: char) -> Result<(Vec<Arg>, bool), String> {
    arguments(keyword, rest, escape, 0)
}

/// [`parse_arguments`] for an instruction nested `depth` ONBUILDs deep.
fn arguments(keyword: &str, rest: &str, escape: char, depth: usize) -> Result<(Vec<Arg>, bool), String> {
    let values = |v: Vec<String>| v.into_iter().map(Arg::Value).collect::<Vec<_>>();
    match keyword {
        "add" | "copy" | "volume" => match parse_json(rest)? {
            Some(list) => Ok((values(list), true)),
            None => Ok((values(split_whitespace(rest)), false)),
        },
        "arg" => Ok((values(parse_words(rest, escape)), false)),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(rest).map(|(v, json)| (values(v), json)),
        "env" => parse_name_value(rest, "ENV", escape).map(|v| (values(v), false)),
        "label" => parse_name_value(rest, "LABEL", escape).map(|v| (values(v), false)),
        "expose" | "from" => Ok((values(split_whitespace(rest)), false)),
        "healthcheck" => parse_health(rest),
        "onbuild" => {
            if rest.is_empty() {
                return Ok((Vec::new(), false));
            }
            if depth >= MAX_ONBUILD_NESTING {
                return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
            }
            let inner = parse_nested(rest, escape, depth + 1)?;
            Ok((vec![Arg::Instruction(Box::new(inner))], false))
        }
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if rest.is_empty() {
                Ok((Vec::new(), false))
            } else {
                Ok((vec![Arg::Value(rest.to_string())], false))
            }
        }
        // Unknown instructions keep no arguments; the instruction layer reports them.
        _ => Ok((Vec::new(), false)),
    }
}

/// Splits on runs of blanks (`[\t\v\f\r ]+`).
fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(['\t', '\u{b}', '\u{c}', '\r', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// Parses a JSON array of strings. `Ok(None)` when the text is not a JSON array at all (callers
/// then fall back to the shell or list form); an error when it is an array with non-strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let text = rest.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest)? {
        Some(list) => Ok((list, true)),
        None => Ok((vec![rest.to_string()], false)),
    }
}

fn parse_health(rest: &str) -> Result<(Vec<Arg>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let kind = &rest[..sep];
    let (cmd, json) = parse_maybe_json(rest[sep..].trim_start())?;
    let mut args = vec![Arg::Value(kind.to_string())];
    args.extend(cmd.into_iter().map(Arg::Value));
    Ok((args, json))
}

/// Splits words on blanks, keeping quotes and escapes in the words (they are removed later by
/// the shell lexer).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if quote.is_none() && !in_word {
            if c.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    match chars.next() {
                        // An escape at the very end of the input is dropped.
                        None => continue,
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some(n) => {
                            word.push(c);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV/LABEL arguments as flat triples `key, value, separator`: separator `=` for `k=v` pairs,
/// empty for the legacy `KEY value` form.
fn parse_name_value(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, ['\t', '\u{b}', '\u{c}', '\r', ' ']);
        let key = parts.next().unwrap_or_default();
        let value = parts
            .next()
            .map(|v| v.trim_start_matches(['\t', '\u{b}', '\u{c}', '\r', ' ']))
            .unwrap_or("");
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(vec![key.to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        out.push(key.to_string());
        out.push(value.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

/// Finds the heredocs (`[n]<<[-]WORD`) named in an instruction line.
fn heredocs_in_line(line: &str, escape: char) -> Vec<Heredoc> {
    parse_words(line, escape)
        .iter()
        .filter_map(|w| heredoc_from_word(w))
        .collect()
}

/// Interprets one word as a heredoc marker (`^(\d*)<<(-?)([^<]*)$`).
pub fn heredoc_from_word(word: &str) -> Option<Heredoc> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let file_descriptor = if digits == 0 {
        0
    } else {
        word[..digits].parse().ok()?
    };
    // Remove quotes; any quoting of the delimiter turns expansion off.
    let mut name = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            None if c == '\\' => {
                if let Some(n) = chars.next() {
                    name.push(n);
                }
            }
            None if c.is_whitespace() => return None,
            None => name.push(c),
            Some(q) if c == q => quote = None,
            Some(_) => name.push(c),
        }
    }
    if name.is_empty() {
        return None;
    }
    Some(Heredoc {
        name,
        file_descriptor,
        expand: !quoted,
        chomp,
        content: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(text: &str) -> String {
        let ast = parse(text);
        assert!(!ast.has_errors(), "{:?}", ast.diagnostics);
        ast.dump()
    }

    #[test]
    fn continuation_keeps_indentation_and_drops_comments() {
        assert_eq!(dump("RUN a && \\\n    # note\n    b\n"), "(run \"a &&     b\")\n");
    }

    #[test]
    fn json_versus_shell_form() {
        assert_eq!(dump("CMD [\"a\", \"b\"]\n"), "(cmd \"a\" \"b\")\n");
        assert_eq!(dump("CMD ['a']\n"), "(cmd \"['a']\")\n");
        assert_eq!(
            dump("RUN [\"echo\", \"hi\"]this is invalid\n"),
            "(run \"[\\\"echo\\\", \\\"hi\\\"]this is invalid\")\n"
        );
        let ast = parse("CMD [1]\n");
        assert!(ast.has_errors());
    }

    #[test]
    fn heredocs_are_attached_with_their_lines() {
        let ast = parse("FROM x\nRUN <<EOF cat >/a && <<-'B' cat >/b\nhello $X\nEOF\n\tworld\n\tB\nCMD y\n");
        assert!(!ast.has_errors(), "{:?}", ast.diagnostics);
        let run = &ast.nodes[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].name, "EOF");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[0].content, "hello $X\n");
        assert_eq!(run.heredocs[1].name, "B");
        assert!(!run.heredocs[1].expand);
        assert!(run.heredocs[1].chomp);
        assert_eq!(run.heredocs[1].content, "\tworld\n");
        assert_eq!((run.start_line, run.end_line), (2, 6));
        assert_eq!(ast.nodes[2].start_line, 7);
    }

    #[test]
    fn unterminated_heredoc_is_an_error() {
        let ast = parse("FROM x\nCOPY <<EOF /a\nbody\n");
        assert!(ast.has_errors());
        assert!(
            ast.first_error()
                .unwrap()
                .message
                .contains("unterminated heredoc")
        );
    }

    #[test]
    fn directives_only_at_the_top() {
        let ast = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN b `\n c\n");
        assert_eq!(ast.escape, '`');
        assert_eq!(ast.directives.syntax.as_ref().unwrap().0, "docker/dockerfile:1");
        assert_eq!(ast.nodes[1].dump(), "run \"b  c\"");
        let ast = parse("# comment\n# escape=`\nFROM a\n");
        assert_eq!(ast.escape, '\\');
        let ast = parse("# escape=\\\n# escape=`\nFROM a\n");
        assert!(ast.has_errors());
    }

    #[test]
    fn diagnostics_do_not_stop_parsing() {
        let ast = parse("FROM a\nENV X\nCMD [1]\nRUN ok\n");
        let errors: Vec<_> = ast
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].start_line, 2);
        assert_eq!(errors[1].start_line, 3);
        assert_eq!(ast.nodes.last().unwrap().keyword, "run");
    }

    #[test]
    fn go_quote_matches_go() {
        assert_eq!(go_quote("a\"b\\c\u{0}\u{8}♥"), "\"a\\\"b\\\\c\\x00\\b♥\"");
    }

    #[test]
    fn onbuild_nests_two_deep_at_most() {
        let ast = parse("FROM a\nONBUILD ONBUILD RUN x\n");
        assert_eq!(ast.nodes[1].dump(), "onbuild (onbuild (run \"x\"))");
        let deep = format!("FROM a\n{}RUN x\n", "ONBUILD \\\n".repeat(100_000));
        let ast = parse(&deep);
        let error = ast.first_error().unwrap();
        assert_eq!(
            error.message,
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!((error.start_line, error.end_line), (2, 100_002));
    }

    #[test]
    fn long_lines_are_rejected() {
        let long = format!("RUN {}\n", "x".repeat(MAX_LINE_LENGTH + 1));
        let ast = parse(&format!("FROM a\n{long}"));
        assert!(ast.first_error().unwrap().message.contains("max allowed size"));
    }
}
