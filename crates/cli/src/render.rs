//! Errors of the commands and their reports for people: BuildKit's layout for failed builds
//! (the failing step's last output lines, the Dockerfile lines with `>>>` markers, then
//! `ERROR: …`), the whole chain of causes once (joined by `: `, down to the OS error), and a
//! `hint:` where one helps.

use std::sync::Arc;

use engine::{BuildError, SourceSnippet};

use crate::progress::Display;

/// Everything a command can fail with.
pub(crate) enum CliError {
    /// Bad flags, arguments or input, found before anything ran; the message says it all.
    Usage(String),
    /// Something failed; its chain of causes says why.
    Failed(anyhow::Error),
    /// The build failed (with the display that showed it, for the failing step's output).
    Build(Box<BuildError>, Option<Arc<Display>>),
    /// A daemon's build failed (with the display that showed it).
    Remote(Box<RemoteFailure>, Option<Arc<Display>>),
}

/// A failed build as a daemon reports it: what [`BuildError`]'s report shows.
#[derive(Debug)]
pub(crate) struct RemoteFailure {
    /// The whole chain of causes.
    pub(crate) message: String,
    /// The failing step's vertex and name (empty otherwise).
    pub(crate) vertex: String,
    pub(crate) step: String,
    /// The Dockerfile lines of the failure.
    pub(crate) snippets: Vec<SourceSnippet>,
    /// Whether it failed solving (a step or the Dockerfile).
    pub(crate) solve: bool,
}

impl CliError {
    /// `error` with `context` in front, as a [`CliError::Failed`].
    pub(crate) fn failed(
        context: impl std::fmt::Display + Send + Sync + 'static,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> CliError {
        CliError::Failed(anyhow::Error::new(error).context(context))
    }
}

impl std::fmt::Debug for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(message) => write!(f, "Usage({message:?})"),
            CliError::Failed(e) => write!(f, "Failed({e:?})"),
            CliError::Build(e, _) => write!(f, "Build({e:?})"),
            CliError::Remote(e, _) => write!(f, "Remote({e:?})"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> CliError {
        CliError::Failed(error)
    }
}

pub(crate) use oci::error_chain as chain;

/// The message of `error` on one line, with its whole chain of causes.
pub(crate) fn text(error: &CliError) -> String {
    match error {
        CliError::Usage(message) => message.clone(),
        CliError::Failed(e) => chain(e.as_ref()),
        CliError::Build(e, _) => chain(e.as_ref()),
        CliError::Remote(e, _) => e.message.clone(),
    }
}

/// Prints `error` to stderr.
pub(crate) fn error(error: &CliError) {
    match error {
        CliError::Usage(message) => eprintln!("ERROR: {message}"),
        CliError::Failed(e) => {
            let text = chain(e.as_ref());
            eprintln!("ERROR: {text}");
            if let Some(hint) = hint(&text) {
                eprintln!("\nhint: {hint}");
            }
        }
        CliError::Build(e, display) => eprint!("{}", build_report(e, display.as_deref())),
        CliError::Remote(e, display) => eprint!("{}", remote_report(e, display.as_deref())),
    }
}

/// A daemon's failed build, laid out as [`build_report`] lays out one of this process.
fn remote_report(e: &RemoteFailure, display: Option<&Display>) -> String {
    let mut out = String::new();
    if !e.vertex.is_empty()
        && let Some((step, lines)) = display.and_then(|d| d.tail(&e.vertex))
    {
        out.push_str("------\n");
        out.push_str(&format!(
            " > {}:\n",
            if step.is_empty() { &e.step } else { &step }
        ));
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str("------\n");
    }
    for snippet in &e.snippets {
        out.push_str(&snippet_text(snippet));
    }
    if e.solve {
        out.push_str(&format!("ERROR: failed to solve: {}\n", e.message));
    } else {
        out.push_str(&format!("ERROR: {}\n", e.message));
    }
    out
}

/// A failed build's report.
fn build_report(e: &BuildError, display: Option<&Display>) -> String {
    let mut out = String::new();
    match e {
        BuildError::Step(failed) => {
            let name = failed.name();
            if let Some((step, lines)) = display.and_then(|d| d.tail(&failed.vertex().to_string())) {
                out.push_str("------\n");
                out.push_str(&format!(" > {}:\n", if step.is_empty() { name } else { &step }));
                for line in lines {
                    out.push_str(&line);
                    out.push('\n');
                }
                out.push_str("------\n");
            }
            for snippet in &failed.snippets {
                out.push_str(&snippet_text(snippet));
            }
            out.push_str(&format!("ERROR: failed to solve: {}\n", chain(e)));
        }
        BuildError::Dockerfile(failed) => {
            if let Some(s) = &failed.snippet {
                out.push_str(&snippet_text(s));
            }
            out.push_str(&format!("ERROR: failed to solve: {}\n", chain(e)));
        }
        // The message (and its causes) says it all: "failed to export: …", "failed to read …".
        _ => out.push_str(&format!("ERROR: {}\n", chain(e))),
    }
    out
}

/// What to do about a failure whose text shows a common cause.
fn hint(text: &str) -> Option<&'static str> {
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

    #[test]
    fn the_chain_is_printed_once_down_to_the_os_error() {
        let os = std::io::Error::from_raw_os_error(2);
        let e = anyhow::Error::new(os)
            .context("failed to read /x/Dockerfile")
            .context("loading the build");
        let text = chain(e.as_ref());
        assert_eq!(
            text,
            "loading the build: failed to read /x/Dockerfile: No such file or directory (os error 2)"
        );
    }
}
