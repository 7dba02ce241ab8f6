//! Error reports for people: BuildKit's layout (the failing step's last output lines, the
//! Dockerfile lines with `>>>` markers, then `ERROR: …`), with a `hint:` where one helps.

use std::sync::Arc;

use engine::{BuildError, SourceSnippet};

use crate::progress::Display;

/// Everything a command can fail with.
pub(crate) enum CliError {
    /// Bad flags or arguments.
    Usage(String),
    /// The engine could not be set up.
    Setup(anyhow::Error),
    /// The build failed.
    Build(BuildError, Option<Arc<Display>>),
}

impl CliError {
    pub(crate) fn build(error: BuildError, display: Option<Arc<Display>>) -> CliError {
        CliError::Build(error, display)
    }
}

/// Prints `error` to stderr.
pub(crate) fn error(error: &CliError) {
    match error {
        CliError::Usage(message) => eprintln!("ERROR: {message}"),
        CliError::Setup(e) => {
            eprintln!("ERROR: {e:#}");
            if let Some(hint) = setup_hint(e) {
                eprintln!("\nhint: {hint}");
            }
        }
        CliError::Build(e, display) => {
            let mut out = String::new();
            match e {
                BuildError::Step {
                    vertex,
                    name,
                    message,
                    snippets,
                } => {
                    if let Some((step, lines)) = display.as_ref().and_then(|d| d.tail(&vertex.to_string())) {
                        out.push_str("------\n");
                        out.push_str(&format!(" > {}:\n", if step.is_empty() { name } else { &step }));
                        for line in lines {
                            out.push_str(&line);
                            out.push('\n');
                        }
                        out.push_str("------\n");
                    }
                    for snippet in snippets {
                        out.push_str(&snippet_text(snippet));
                    }
                    out.push_str(&format!("ERROR: failed to solve: {message}\n"));
                }
                BuildError::Dockerfile { error, snippet } => {
                    if let Some(s) = snippet {
                        out.push_str(&snippet_text(s));
                    }
                    out.push_str(&format!("ERROR: failed to solve: {error}\n"));
                }
                BuildError::Request(message) => out.push_str(&format!("ERROR: {message}\n")),
                BuildError::Export(message) => out.push_str(&format!("ERROR: failed to export: {message}\n")),
            }
            eprint!("{out}");
        }
    }
}

fn setup_hint(e: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{e:#}");
    if text.contains("Permission denied") || text.contains("permission denied") {
        return Some("kiln runs builds as root: try `sudo kiln …`, or pass --root to a writable directory");
    }
    if text.contains("runc") && text.contains("not found") {
        return Some("install runc (`apt-get install runc`) or point --runtime / KILN_RUNTIME at it");
    }
    None
}

/// The source lines of `snippet`, BuildKit style: a few lines of context, `>>>` on the range.
pub(crate) fn snippet_text(snippet: &SourceSnippet) -> String {
    let lines: Vec<&str> = snippet.data.lines().collect();
    let mut out = format!("{}:{}\n", snippet.filename, snippet.start_line);
    if lines.is_empty() || snippet.start_line == 0 {
        return out;
    }
    let start = snippet.start_line.max(1);
    let end = snippet.end_line.max(start).min(lines.len());
    let from = start.saturating_sub(3).max(1);
    let to = (end + 1).min(lines.len());
    out.push_str("--------------------\n");
    for n in from..=to {
        let marker = if n >= start && n <= end { ">>>" } else { "   " };
        let text = lines.get(n - 1).copied().unwrap_or("");
        out.push_str(&format!(" {n:>3} | {marker} {text}\n"));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_marks_the_failing_lines() {
        let s = SourceSnippet {
            filename: "Dockerfile".into(),
            data: "FROM a\nRUN b\nRUN c \\\n  d\nCMD e\n".into(),
            start_line: 3,
            end_line: 4,
        };
        assert_eq!(
            snippet_text(&s),
            "Dockerfile:3\n--------------------\n   1 |     FROM a\n   2 |     RUN b\n   3 | >>> RUN c \\\n   4 | >>>   d\n   5 |     CMD e\n--------------------\n"
        );
    }
}
