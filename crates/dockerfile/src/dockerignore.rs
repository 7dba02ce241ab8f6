//! `.dockerignore` files: the build context's exclude patterns, read as moby's
//! `patternmatcher/ignorefile` reads them.
//!
//! [`parse`] turns the file's text into the pattern list that the file operations match with
//! moby's pattern semantics (`fsops::fileop::PatternMatcher`): one pattern per line, relative to
//! the context root, a leading `!` re-including what earlier patterns excluded.
//!
//! Rules, line by line (lines end at `\n`, a `\r` before it is dropped):
//! - A UTF-8 byte-order mark at the start of the file is ignored.
//! - A line whose first character is `#` is a comment; `#` after leading spaces is part of a
//!   pattern, as in moby.
//! - Surrounding whitespace is trimmed; empty lines are skipped.
//! - A leading `!` marks an exclusion; what follows it is trimmed again.
//! - The pattern is cleaned like Go's `filepath.Clean` (`./a//b/../c/` is `a/c`) and a leading
//!   `/` is removed (`/foo` means `foo` in the context).
//! - A lone `!`, and a pattern that is empty once cleaned and stripped (`/`), are errors naming
//!   the line (moby keeps them and fails later, or lets them match nothing).
//!
//! Pure: no IO, the caller reads the file.

/// Errors of [`parse`]; `line` is 1-based and counts every line of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerignoreError {
    /// A `!` with no pattern after it.
    #[error(".dockerignore line {line}: exclusion \"!\" without a pattern")]
    LoneExclusion {
        /// The line.
        line: usize,
    },
    /// A pattern that cleans to nothing, such as `/`.
    #[error(".dockerignore line {line}: pattern {pattern:?} names the context root itself")]
    EmptyPattern {
        /// The line.
        line: usize,
        /// The pattern as written.
        pattern: String,
    },
}

/// Parses the text of a `.dockerignore` file into patterns, in order, `!` kept as a prefix.
pub fn parse(text: &str) -> Result<Vec<String>, DockerignoreError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with('#') {
            continue;
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (invert, body) = match trimmed.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, trimmed),
        };
        if invert && body.is_empty() {
            return Err(DockerignoreError::LoneExclusion { line });
        }
        let cleaned = gocompat::path::clean(body);
        let cleaned = cleaned.strip_prefix('/').unwrap_or(&cleaned);
        if cleaned.is_empty() {
            return Err(DockerignoreError::EmptyPattern {
                line,
                pattern: trimmed.to_owned(),
            });
        }
        patterns.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned.to_owned()
        });
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moby_reader_table() {
        // moby's own example file, less its lone `!` lines (errors here, see below).
        let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n";
        assert_eq!(
            parse(text).unwrap(),
            ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path"]
        );
    }

    #[test]
    fn comments_whitespace_and_cleaning() {
        let text = "\u{feff}# comment\n  # not a comment\n\t node_modules/ \r\n./a//b/../c\n!  ./keep/./me\n*.log\n\n**/tmp\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                "# not a comment",
                "node_modules",
                "a/c",
                "!keep/me",
                "*.log",
                "**/tmp"
            ]
        );
        // A byte-order mark only counts at the very start.
        assert_eq!(parse("x\n\u{feff}y").unwrap(), ["x", "\u{feff}y"]);
        assert_eq!(parse("..\n/../x").unwrap(), ["..", "x"]);
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("a\n# c\n!\n"),
            Err(DockerignoreError::LoneExclusion { line: 3 })
        );
        assert_eq!(parse("! \t"), Err(DockerignoreError::LoneExclusion { line: 1 }));
        assert_eq!(
            parse("a\n/\n"),
            Err(DockerignoreError::EmptyPattern {
                line: 2,
                pattern: "/".into()
            })
        );
        assert!(matches!(
            parse("!/.."),
            Err(DockerignoreError::EmptyPattern { line: 1, .. })
        ));
        let message = parse("\n\n!").unwrap_err().to_string();
        assert!(message.contains("line 3"), "{message}");
    }
}
