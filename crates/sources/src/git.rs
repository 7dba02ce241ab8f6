//! Git sources (`ADD https://github.com/org/repo.git#v1.2:sub`): a checkout of one commit as a
//! snapshot, made with the `git` CLI as BuildKit does.
//!
//! A request ([`GitSource`]) names the URL to fetch (anything the git CLI accepts), the ref
//! (empty: the remote's HEAD), a subdirectory to keep, whether to keep `.git`, the commit (or
//! a prefix of it) the ref must resolve to, and whether to check out submodules. [`Git::new`]
//! checks it: nothing git could read as an option, a hex checksum, and the subdirectory
//! cleaned to a relative path.
//!
//! Resolving ([`Git::resolve`], what the engine keys the cache by) runs `git ls-remote` (a
//! full commit hash is used as is, without network): tags are peeled to their commit, and a
//! name is looked up as git disambiguates it (`refs/<name>`, then tags, then branches). The
//! engine's key covers the remote, the commit, the subdirectory and the options, so a branch
//! that moved reruns everything built on it, and an unchanged one is a cache hit.
//!
//! Checking out ([`Git::checkout`]) fetches that one commit shallowly into a fresh repository
//! inside a new snapshot (falling back to fetching all branches and tags when the server
//! refuses fetching a commit by hash), checks it out (with submodules unless skipped), and
//! removes `.git` unless kept. With a subdirectory, the checkout is made in a scratch snapshot
//! and only the subdirectory's contents are copied into the result (resolved inside the
//! checkout, never following a symlink out of it). Scratch and unfinished snapshots are removed
//! when dropped (on the blocking pool), and a crashed build's are removed by the
//! next `Store::open`. Permission bits are normalised to 0644/0755 (0755 for directories) so
//! they do not depend on the process umask; owner is the engine's user (root); mtimes are the
//! checkout time. Snapshots are made, finished and committed on the blocking pool.
//!
//! git runs with `GIT_TERMINAL_PROMPT=0` (a build never waits for a password) and ssh in batch
//! mode, and is killed if the build is cancelled (the future dropped). Errors name the URL
//! (credentials redacted) and the ref.
//!
//! HTTP(S) remotes authenticate with the build's secrets, as BuildKit's: the first of
//! `GIT_AUTH_HEADER.<host>`, `GIT_AUTH_TOKEN.<host>`, `GIT_AUTH_HEADER` and `GIT_AUTH_TOKEN` that
//! the build was given (`<host>` with its port, if any) becomes the `Authorization` header git
//! sends to that remote (to all of `https://github.com/` for a GitHub remote, as BuildKit does):
//! a header secret as it is, a token as `basic base64(x-access-token:<token>)`. The header is
//! handed to git in its environment, never on its command line, and is part of no cache key or
//! message.
//!
//! Not done: ssh agent forwarding from a client session for git remotes, a persistent
//! per-remote cache of fetched objects, and reproducible mtimes.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use base64::Engine as _;
use fsops::fileop::FileOpError;
use store::{SnapshotId, Store};
use tokio::task::JoinError;

use crate::progress::Progress;
use crate::secrets::{self, SecretError, Secrets};

mod tree;

use tree::{TreeError, Unfinished};

/// How many trailing lines of git's error output an error message carries.
const STDERR_LINES: usize = 5;

/// Errors of git sources. URLs in messages have their credentials redacted; causes are
/// `source()`s.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The request is malformed.
    #[error("invalid git source {identifier}: {reason}")]
    Invalid {
        /// The source as the build wrote it, credentials redacted.
        identifier: String,
        /// What is wrong.
        reason: String,
    },
    /// The git binary could not be started.
    #[error("failed to run git for {url}")]
    Spawn {
        /// The remote.
        url: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A git command failed.
    #[error("git {command} failed for {url}#{reference}: {stderr}")]
    Command {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
        /// The git subcommand.
        command: String,
        /// The last lines git printed on its standard error (or its exit status).
        stderr: String,
    },
    /// The remote has no such ref.
    #[error("repository {url} does not contain ref {reference}")]
    RefNotFound {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
    },
    /// The ref resolved to another commit than the build pinned.
    #[error("expected checksum to match {expected}, got {actual} for {url}#{reference}")]
    ChecksumMismatch {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
        /// The pinned commit (prefix).
        expected: String,
        /// The commit the ref resolved to.
        actual: String,
    },
    /// An authentication secret could not be read.
    #[error("failed to authenticate to {url}")]
    Secret {
        /// The remote.
        url: String,
        /// The provider's error, naming the secret.
        #[source]
        source: SecretError,
    },
    /// An authentication secret is no header value.
    #[error("failed to authenticate to {url}: secret {name} is not a valid HTTP header value")]
    InvalidSecret {
        /// The remote.
        url: String,
        /// The secret's id.
        name: String,
    },
    /// A snapshot for the checkout could not be made or committed.
    #[error("failed to {action} for {url}#{reference}")]
    Snapshot {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
        /// `create snapshot` or `commit snapshot`.
        action: &'static str,
        /// Why (boxed: the store's errors are large).
        #[source]
        source: Box<store::Error>,
    },
    /// The checked-out tree could not be finished (`.git` removed, modes normalised).
    #[error("failed to {action} {path} in the checkout of {url}#{reference}")]
    Tree {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
        /// What was being done.
        action: &'static str,
        /// To what.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The subdirectory could not be copied out of the checkout (it does not exist, say).
    #[error("failed to select subdirectory {subdir} of {url}#{reference}")]
    Subdir {
        /// The remote.
        url: String,
        /// The ref.
        reference: String,
        /// The subdirectory.
        subdir: String,
        /// Why (boxed: file operation errors are large).
        #[source]
        source: Box<FileOpError>,
    },
    /// A blocking task of the checkout failed.
    #[error("internal task failed while checking out {url}")]
    Task {
        /// The remote.
        url: String,
        /// Why.
        #[source]
        source: JoinError,
    },
}

/// A git checkout as a build asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    /// The URL handed to git (it may carry credentials; messages never show them).
    pub remote: String,
    /// The ref as written (empty: the remote's HEAD).
    pub reference: String,
    /// The subdirectory to keep (empty: everything); [`Git::new`] cleans it to a relative path.
    pub subdir: String,
    /// Whether the result keeps `.git`.
    pub keep_git_dir: bool,
    /// Hex the commit must start with (any case).
    pub checksum: Option<String>,
    /// Whether submodules are checked out.
    pub submodules: bool,
}

/// A ref resolved on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The commit, lowercase hex.
    pub commit: String,
    /// The full ref name it came from (`refs/heads/main`), unless a commit was given.
    pub refname: Option<String>,
}

/// Where a checkout runs: the store, the build's secrets and the step's status lines.
#[derive(Clone, Copy)]
pub struct GitContext<'a> {
    /// Where the result snapshot goes.
    pub store: &'a Arc<Store>,
    /// The build's secrets, for authentication.
    pub secrets: &'a Arc<dyn Secrets>,
    /// The step's status lines.
    pub progress: &'a dyn Progress,
}

/// The `http.<scope>.extraheader` configuration entry that authenticates git to the remote.
type AuthConfig = Option<(String, String)>;

/// A checked [`GitSource`].
#[derive(Clone, Debug)]
pub struct Git {
    source: GitSource,
    /// The remote with credentials redacted, for messages.
    shown: String,
}

impl Git {
    /// Checks `source` (nothing git would read as an option, a hex checksum) and cleans its
    /// subdirectory.
    pub fn new(mut source: GitSource) -> Result<Git, GitError> {
        let shown = redact(&source.remote);
        let invalid = |reason: &str| GitError::Invalid {
            identifier: shown.clone(),
            reason: reason.to_string(),
        };
        if source.remote.is_empty() {
            return Err(invalid("no remote"));
        }
        // Anything starting with `-` would be read as an option by git.
        if source.remote.starts_with('-') {
            return Err(invalid("the remote must not start with '-'"));
        }
        let reference = &source.reference;
        if reference.starts_with('-') || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("invalid ref"));
        }
        source.checksum = match source.checksum.take() {
            None => None,
            Some(c) if !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(c.to_ascii_lowercase())
            }
            Some(_) => return Err(invalid("git.checksum must be a commit hash or a prefix of one")),
        };
        source.subdir = clean_subdir(&source.subdir);
        Ok(Git { source, shown })
    }

    /// The request, checked and cleaned.
    pub fn source(&self) -> &GitSource {
        &self.source
    }

    /// The remote with any credentials redacted.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// The ref as shown in messages (`HEAD` when the request names none).
    pub fn shown_reference(&self) -> String {
        if self.source.reference.is_empty() {
            "HEAD".into()
        } else {
            self.source.reference.clone()
        }
    }

    /// The secrets that may authenticate this remote, in the order they are tried (the first one
    /// the build has wins), each with whether it is a token (or a whole header).
    fn auth_secrets(&self) -> Vec<(String, bool)> {
        let Ok(url) = reqwest::Url::parse(&self.source.remote) else {
            return Vec::new();
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Vec::new();
        }
        let mut host = url.host_str().unwrap_or_default().to_string();
        if let Some(port) = url.port() {
            host = format!("{host}:{port}");
        }
        vec![
            (format!("GIT_AUTH_HEADER.{host}"), false),
            (format!("GIT_AUTH_TOKEN.{host}"), true),
            ("GIT_AUTH_HEADER".to_string(), false),
            ("GIT_AUTH_TOKEN".to_string(), true),
        ]
    }

    /// The names of the secrets that may authenticate this remote: what a checkout depends on
    /// besides the request (the engine salts authenticated checkouts with their values).
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.auth_secrets().into_iter().map(|(name, _)| name).collect()
    }

    /// The git configuration entry (`http.<scope>.extraheader`, `Authorization: …`) the build's
    /// secrets give this remote, if any.
    async fn auth_config(&self, secrets: &Arc<dyn Secrets>) -> Result<AuthConfig, GitError> {
        let wanted = self.auth_secrets();
        let names = wanted.iter().map(|(name, _)| name.clone()).collect();
        let values = secrets::read(secrets, names).await.map_err(|e| match e {
            secrets::ReadError::Secret(source) => GitError::Secret {
                url: self.shown.clone(),
                source,
            },
            secrets::ReadError::Task(source) => self.task_error(source),
        })?;
        let found = values
            .into_iter()
            .zip(wanted)
            .find_map(|((name, value), (_, token))| Some((name, value?, token)));
        let Some((name, value, token)) = found else {
            return Ok(None);
        };
        let value = String::from_utf8(value)
            .ok()
            .filter(|v| !v.contains(['\r', '\n', '\0']))
            .ok_or_else(|| GitError::InvalidSecret {
                url: self.shown.clone(),
                name,
            })?;
        let value = if token {
            let credentials = format!("x-access-token:{value}");
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            )
        } else {
            value
        };
        let scope = ["https://github.com/", "https://www.github.com/"]
            .into_iter()
            .find(|p| self.source.remote.starts_with(p))
            .map_or_else(|| self.source.remote.clone(), str::to_string);
        Ok(Some((
            format!("http.{scope}.extraheader"),
            format!("Authorization: {value}"),
        )))
    }

    fn task_error(&self, source: JoinError) -> GitError {
        GitError::Task {
            url: self.shown.clone(),
            source,
        }
    }

    fn snapshot_error(&self, action: &'static str) -> impl FnOnce(store::Error) -> GitError + '_ {
        move |source| GitError::Snapshot {
            url: self.shown.clone(),
            reference: self.shown_reference(),
            action,
            source: Box::new(source),
        }
    }

    /// Runs git (in `dir`, when given) and returns its standard output.
    async fn git(&self, auth: &AuthConfig, dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
        let mut command = tokio::process::Command::new("git");
        if let Some(dir) = dir {
            command.arg("-C").arg(dir);
        }
        command
            .args([
                "-c",
                "protocol.ext.allow=never",
                "-c",
                "advice.detachedHead=false",
            ])
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Cancelling the build (dropping this future) must not leave git running, nor its
            // helpers (`git-remote-http`, `ssh`), which may be blocked on the network and never
            // notice git's end: they share git's own process group, killed whole by the guard.
            .process_group(0)
            .kill_on_drop(true);
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        // In the environment, where other users cannot read it (the command line is public).
        if let Some((key, value)) = auth {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", key)
                .env("GIT_CONFIG_VALUE_0", value);
        }
        let child = command.spawn().map_err(|source| GitError::Spawn {
            url: self.shown.clone(),
            source,
        })?;
        let group = GroupGuard(child.id());
        let output = child.wait_with_output().await.map_err(|source| GitError::Spawn {
            url: self.shown.clone(),
            source,
        })?;
        std::mem::forget(group);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).replace(&self.source.remote, &self.shown);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(STDERR_LINES)..].join("; ");
            return Err(GitError::Command {
                url: self.shown.clone(),
                reference: self.shown_reference(),
                // The subcommand: the first argument that is neither an option nor its value.
                command: args
                    .iter()
                    .find(|a| !a.starts_with('-') && !a.contains('='))
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                stderr: if tail.is_empty() {
                    format!("exit status {}", output.status)
                } else {
                    tail
                },
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Resolves the ref to a commit (on the remote, unless it is a commit already) and checks it
    /// against the pinned checksum.
    pub async fn resolve(&self, cx: GitContext<'_>) -> Result<Resolved, GitError> {
        let reference = self.shown_reference();
        let resolved = if is_commit(&reference) {
            Resolved {
                commit: reference.to_ascii_lowercase(),
                refname: None,
            }
        } else {
            cx.progress
                .status(format!("resolving {}#{reference}", self.shown));
            let auth = self.auth_config(cx.secrets).await?;
            let peeled = format!("{reference}^{{}}");
            let listing = self
                .git(
                    &auth,
                    None,
                    &["ls-remote", "--", &self.source.remote, &reference, &peeled],
                )
                .await?;
            pick_ref(&listing, &reference).ok_or_else(|| GitError::RefNotFound {
                url: self.shown.clone(),
                reference: reference.clone(),
            })?
        };
        if let Some(expected) = &self.source.checksum
            && !resolved.commit.starts_with(expected.as_str())
        {
            return Err(GitError::ChecksumMismatch {
                url: self.shown.clone(),
                reference,
                expected: expected.clone(),
                actual: resolved.commit,
            });
        }
        Ok(resolved)
    }

    /// Checks out `resolved` (from [`Git::resolve`]) as a new snapshot.
    pub async fn checkout(&self, cx: GitContext<'_>, resolved: &Resolved) -> Result<SnapshotId, GitError> {
        cx.progress
            .status(format!("fetching {} {}", self.shown, resolved.commit));
        let auth = self.auth_config(cx.secrets).await?;
        let description = format!("git {}#{}", self.shown, self.shown_reference());
        let result = self.prepare(cx.store, description.clone()).await?;
        if self.source.subdir.is_empty() {
            let dir = result.layer_dir().to_path_buf();
            self.fetch(&auth, &dir, resolved).await?;
            let remove_git_dir = !self.source.keep_git_dir;
            return self
                .finish(move || {
                    tree::finish(&dir, remove_git_dir)?;
                    Ok(result)
                })
                .await;
        }
        let scratch = self
            .prepare(cx.store, format!("{description} (whole checkout)"))
            .await?;
        let from = scratch.layer_dir().to_path_buf();
        self.fetch(&auth, &from, resolved).await?;
        let (to, subdir) = (result.layer_dir().to_path_buf(), self.source.subdir.clone());
        self.finish(move || {
            tree::finish(&from, false)?;
            tree::copy_subdir(&from, &to, &subdir)?;
            scratch.discard();
            Ok(result)
        })
        .await
    }

    /// A new, empty snapshot, made on the blocking pool.
    async fn prepare(&self, store: &Arc<Store>, description: String) -> Result<Unfinished, GitError> {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.prepare_owned(None, &description))
            .await
            .map_err(|e| self.task_error(e))?
            .map(Unfinished::new)
            .map_err(self.snapshot_error("create snapshot"))
    }

    /// Runs `work` on the blocking pool, then commits the snapshot it returns there too.
    async fn finish(
        &self,
        work: impl FnOnce() -> Result<Unfinished, TreeError> + Send + 'static,
    ) -> Result<SnapshotId, GitError> {
        let outcome = tokio::task::spawn_blocking(move || {
            let result = work()?;
            result.commit().map(|info| info.id).map_err(TreeError::Commit)
        })
        .await
        .map_err(|e| self.task_error(e))?;
        outcome.map_err(|e| self.tree_error(e))
    }

    fn tree_error(&self, error: TreeError) -> GitError {
        let (url, reference) = (self.shown.clone(), self.shown_reference());
        match error {
            TreeError::Io { action, path, source } => GitError::Tree {
                url,
                reference,
                action,
                path,
                source,
            },
            TreeError::Copy(source) => GitError::Subdir {
                url,
                reference,
                subdir: self.source.subdir.clone(),
                source,
            },
            TreeError::Commit(source) => self.snapshot_error("commit snapshot")(source),
        }
    }

    /// Fetches `resolved.commit` into a new repository at `dir` and checks it out there.
    async fn fetch(&self, auth: &AuthConfig, dir: &Path, resolved: &Resolved) -> Result<(), GitError> {
        let commit = resolved.commit.as_str();
        self.git(
            auth,
            Some(dir),
            &["-c", "init.defaultBranch=master", "init", "-q"],
        )
        .await?;
        self.git(auth, Some(dir), &["remote", "add", "origin", &self.source.remote])
            .await?;
        let shallow = self
            .git(
                auth,
                Some(dir),
                &["fetch", "-q", "--depth=1", "--no-tags", "origin", commit],
            )
            .await;
        if let Err(shallow) = shallow {
            // Some servers refuse commits by hash; everything they advertise then has to do.
            let everything = [
                "fetch",
                "-q",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ];
            let found = match self.git(auth, Some(dir), &everything).await {
                Ok(_) => {
                    let object = format!("{commit}^{{commit}}");
                    self.git(auth, Some(dir), &["cat-file", "-e", &object])
                        .await
                        .is_ok()
                }
                Err(_) => false,
            };
            if !found {
                return Err(shallow);
            }
        }
        self.git(auth, Some(dir), &["checkout", "-q", "--detach", commit])
            .await?;
        if self.source.keep_git_dir
            && let Some(refname) = &resolved.refname
            && (refname.starts_with("refs/heads/") || refname.starts_with("refs/tags/"))
        {
            // Like BuildKit's kept `.git`, the ref the build named exists locally.
            self.git(auth, Some(dir), &["update-ref", refname, commit])
                .await?;
        }
        if self.source.submodules
            && tokio::fs::metadata(dir.join(".gitmodules"))
                .await
                .is_ok_and(|m| m.is_file())
        {
            self.git(
                auth,
                Some(dir),
                &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"],
            )
            .await?;
        }
        if self.source.keep_git_dir && self.shown != self.source.remote {
            // Credentials in the URL must not end up in the image.
            self.git(auth, Some(dir), &["remote", "set-url", "origin", &self.shown])
                .await?;
        }
        Ok(())
    }
}

/// The subdirectory cleaned to a relative path without `.` or `..` components (a `..` drops
/// the component before it, never leaving the checkout).
fn clean_subdir(subdir: &str) -> String {
    subdir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .fold(Vec::new(), |mut parts, c| {
            if c == ".." {
                parts.pop();
            } else {
                parts.push(c);
            }
            parts
        })
        .join("/")
}

/// A full commit hash (SHA-1 or SHA-256).
fn is_commit(reference: &str) -> bool {
    (reference.len() == 40 || reference.len() == 64) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Picks the commit `reference` names from `git ls-remote` output, as git disambiguates a
/// name: the exact ref, then `refs/<name>`, tags, branches. Annotated tags are peeled.
fn pick_ref(listing: &str, reference: &str) -> Option<Resolved> {
    let refs: BTreeMap<&str, &str> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(sha, name)| (name.trim(), sha.trim()))
        .collect();
    let candidates: Vec<String> = if reference == "HEAD" || reference.starts_with("refs/") {
        vec![reference.to_string()]
    } else {
        vec![
            format!("refs/{reference}"),
            format!("refs/tags/{reference}"),
            format!("refs/heads/{reference}"),
        ]
    };
    candidates.into_iter().find_map(|name| {
        let peeled = format!("{name}^{{}}");
        let commit = refs.get(peeled.as_str()).or_else(|| refs.get(name.as_str()))?;
        is_commit(commit).then(|| Resolved {
            commit: commit.to_ascii_lowercase(),
            refname: (name != "HEAD").then_some(name),
        })
    })
}

/// The URL with any password (or user of an `http(s)` URL) replaced, for messages; scp-like
/// remotes (`git@host:path`) are shown as they are.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = &rest[..at];
            let shown = match user.split_once(':') {
                Some((name, _)) if scheme == "ssh" => format!("{name}:xxxxx"),
                Some(_) => "xxxxx".to_string(),
                None if scheme.starts_with("http") => "xxxxx".to_string(),
                None => user.to_string(),
            };
            format!("{scheme}://{shown}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

/// Kills a git process group when dropped: the build was cancelled while git ran. Forgotten
/// once git has exited.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let group = self
            .0
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(group) = group {
            // The group may be gone already: nothing to do then.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::tests::fixed;

    fn request(remote: &str, reference: &str) -> GitSource {
        GitSource {
            remote: remote.into(),
            reference: reference.into(),
            subdir: String::new(),
            keep_git_dir: false,
            checksum: None,
            submodules: true,
        }
    }

    #[test]
    fn requests_are_checked_and_cleaned() {
        let mut source = request("https://github.com/org/repo.git", "v1.2");
        source.subdir = "sub/../dir/./".into();
        source.checksum = Some("ABCDEF12".into());
        let git = Git::new(source).unwrap();
        assert_eq!(git.source().subdir, "dir");
        assert_eq!(git.source().checksum.as_deref(), Some("abcdef12"));
        assert_eq!(clean_subdir("../../a//b/.."), "a");

        let invalid = |source: GitSource| match Git::new(source) {
            Err(GitError::Invalid { reason, .. }) => reason,
            other => panic!("expected an invalid source, got {other:?}"),
        };
        assert_eq!(invalid(request("https://h/r", "--upload-pack=x")), "invalid ref");
        assert_eq!(invalid(request("https://h/r", "a b")), "invalid ref");
        // An option in disguise.
        assert_eq!(
            invalid(request("-oProxyCommand=x@h:p", "")),
            "the remote must not start with '-'"
        );
        assert_eq!(invalid(request("", "main")), "no remote");
        let mut bad = request("https://h/r", "");
        bad.checksum = Some("xyz".into());
        assert!(invalid(bad).contains("git.checksum"));
        assert_eq!(
            Git::new(request("https://h/r", "")).unwrap().shown_reference(),
            "HEAD"
        );
    }

    #[test]
    fn refs_resolve_as_git_disambiguates() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let listing = format!(
            "{a}\trefs/heads/main\n{b}\trefs/tags/v1\n{c}\trefs/tags/v1^{{}}\n{a}\trefs/heads/v1\n{b}\trefs/heads/feature/main\n"
        );
        let main = pick_ref(&listing, "main").unwrap();
        assert_eq!(main.commit, a);
        assert_eq!(main.refname.as_deref(), Some("refs/heads/main"));
        let tag = pick_ref(&listing, "v1").unwrap();
        assert_eq!(tag.commit, c, "annotated tags are peeled and win over branches");
        assert_eq!(pick_ref(&listing, "refs/heads/v1").unwrap().commit, a);
        assert!(pick_ref(&listing, "other").is_none());
        assert!(
            pick_ref(&format!("{a}\tHEAD\n"), "HEAD")
                .unwrap()
                .refname
                .is_none()
        );
    }

    #[test]
    fn redaction_and_commits() {
        assert_eq!(redact("https://user:pw@host/r.git"), "https://xxxxx@host/r.git");
        assert_eq!(redact("https://token@host/r.git"), "https://xxxxx@host/r.git");
        assert_eq!(redact("ssh://git@host/r.git"), "ssh://git@host/r.git");
        assert_eq!(redact("ssh://git:pw@host/r.git"), "ssh://git:xxxxx@host/r.git");
        assert_eq!(redact("git@host:r.git"), "git@host:r.git");
        assert!(is_commit(&"0".repeat(40)));
        assert!(!is_commit("main"));
    }

    #[tokio::test]
    async fn secrets_become_an_authorization_header_for_the_remote() {
        let git = Git::new(request("https://github.com:8443/org/r.git", "main")).unwrap();
        assert_eq!(
            git.secret_names().into_iter().collect::<Vec<_>>(),
            [
                "GIT_AUTH_HEADER",
                "GIT_AUTH_HEADER.github.com:8443",
                "GIT_AUTH_TOKEN",
                "GIT_AUTH_TOKEN.github.com:8443"
            ]
        );
        let none = git.auth_config(&fixed(&[])).await.unwrap();
        assert_eq!(none, None);
        // The host's token wins over a general header; a token is basic auth for
        // `x-access-token`, sent to the remote.
        let secrets = fixed(&[
            ("GIT_AUTH_HEADER", Some("bearer general")),
            ("GIT_AUTH_TOKEN.github.com:8443", Some("t0k")),
        ]);
        let (key, value) = git.auth_config(&secrets).await.unwrap().unwrap();
        assert_eq!(key, "http.https://github.com:8443/org/r.git.extraheader");
        assert_eq!(value, "Authorization: basic eC1hY2Nlc3MtdG9rZW46dDBr");

        // GitHub remotes authenticate to all of GitHub, as BuildKit's.
        let github = Git::new(request("https://github.com/org/r.git", "")).unwrap();
        let (key, value) = github
            .auth_config(&fixed(&[("GIT_AUTH_HEADER", Some("bearer x"))]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (key.as_str(), value.as_str()),
            ("http.https://github.com/.extraheader", "Authorization: bearer x")
        );

        let broken = github
            .auth_config(&fixed(&[("GIT_AUTH_TOKEN", Some("a\nb"))]))
            .await
            .unwrap_err();
        assert!(matches!(broken, GitError::InvalidSecret { .. }), "{broken:?}");
        let unreadable = github
            .auth_config(&fixed(&[("GIT_AUTH_TOKEN", None)]))
            .await
            .unwrap_err();
        let cause = std::error::Error::source(&unreadable).unwrap().to_string();
        assert_eq!(cause, "secret GIT_AUTH_TOKEN: unreadable");

        // Other transports take no header.
        let ssh = Git::new(request("git@github.com:org/r.git", "")).unwrap();
        assert!(ssh.secret_names().is_empty());
    }
}
