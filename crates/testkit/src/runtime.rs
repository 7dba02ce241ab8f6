//! A runc wrapper that logs its invocations, so tests can count container executions (a cache
//! hit must run nothing).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// runc's global options that take a value, in either `--flag value` or `--flag=value` form.
const VALUE_FLAGS: &[&str] = &["--root", "--log", "--log-format", "--criu", "--rootless"];
/// Separates arguments in the log, so arguments containing spaces survive.
const SEPARATOR: char = '\t';

/// A shell script that appends its arguments as one line to a log and then `exec`s the real
/// runc with the same arguments. Pass [`CountingRuntime::path`] to kiln as its runtime.
///
/// The script and the log live in a temporary directory removed on drop. Arguments are
/// tab-separated in the log; an argument containing a newline would split a line.
#[derive(Debug)]
pub struct CountingRuntime {
    dir: tempfile::TempDir,
    script: PathBuf,
    log: PathBuf,
}

impl CountingRuntime {
    /// Writes the wrapper script. Fails when no real runc is installed (see [`crate::runc`]).
    pub fn new() -> anyhow::Result<CountingRuntime> {
        let runc = crate::runc().context("no runc found (looked at /usr/sbin/runc and PATH)")?;
        let dir = tempfile::tempdir().context("create counting runtime dir")?;
        let script = dir.path().join("runc");
        let log = dir.path().join("invocations.log");
        std::fs::write(&log, "").with_context(|| format!("create {}", log.display()))?;
        // `"$*"` joins the arguments with the first character of IFS, here a tab.
        let text = format!(
            "#!/bin/sh\nIFS='{SEPARATOR}'\nprintf '%s\\n' \"$*\" >> {log}\nunset IFS\nexec {runc} \"$@\"\n",
            log = shell_quote(&log),
            runc = shell_quote(&runc),
        );
        std::fs::write(&script, text).with_context(|| format!("write {}", script.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("make {} executable", script.display()))?;
        Ok(CountingRuntime { dir, script, log })
    }

    /// The wrapper script.
    pub fn path(&self) -> &Path {
        &self.script
    }

    /// The temporary directory holding the script and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every invocation so far, oldest first, arguments joined by spaces.
    pub fn invocations(&self) -> Vec<String> {
        self.logged().iter().map(|args| args.join(" ")).collect()
    }

    /// How many invocations ran the `run` subcommand, i.e. how many containers were run.
    pub fn runs(&self) -> usize {
        self.logged()
            .iter()
            .filter(|args| subcommand(args) == Some("run"))
            .count()
    }

    /// The logged argument lists. A log that cannot be read counts as empty: the script
    /// created it, so only a test that deleted it gets here.
    fn logged(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(SEPARATOR).map(str::to_string).collect())
            .collect()
    }
}

/// runc's subcommand: the first argument that is neither a global option nor an option's value.
fn subcommand(args: &[String]) -> Option<&str> {
    let mut args = args.iter().map(String::as_str);
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            return Some(arg);
        }
        if VALUE_FLAGS.contains(&arg) {
            args.next();
        }
    }
    None
}

/// `path` in single quotes for sh, with embedded single quotes escaped.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn subcommand_skips_global_flags() {
        assert_eq!(subcommand(&args("--version")), None);
        assert_eq!(subcommand(&args("run x")), Some("run"));
        assert_eq!(
            subcommand(&args(
                "--root /r --log /l --log-format json --debug run --bundle b id"
            )),
            Some("run")
        );
        assert_eq!(
            subcommand(&args("--root=/r --systemd-cgroup delete -f id")),
            Some("delete")
        );
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
