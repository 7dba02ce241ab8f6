//! Git sources (`ADD https://github.com/org/repo.git#v1.2:sub`): a checkout of one commit as a
//! snapshot, made with the `git` CLI as BuildKit does.
//!
//! The identifier is `git://<remote without scheme>[#<ref>[:<subdir>]]`; `git.fullurl` is the
//! URL to fetch (anything the git CLI accepts; without it `https://` + the identifier's remote),
//! `git.keepgitdir=true` keeps `.git`, `git.checksum` is the commit (or a prefix of it) the ref
//! must resolve to, and `git.skipsubmodules=true` leaves submodules out.
//!
//! Computing the cache key resolves the ref with `git ls-remote` (a full commit hash is used as
//! is, without network): tags are peeled to their commit, and a name is looked up as git
//! disambiguates it (`refs/<name>`, then tags, then branches). The key covers the remote, the
//! commit, the subdirectory and the options, so a branch that moved reruns everything built on
//! it, and an unchanged one is a cache hit.
//!
//! Running it fetches that one commit shallowly into a fresh repository inside a new snapshot
//! (falling back to fetching all branches and tags when the server refuses fetching a commit by
//! hash), checks it out (with submodules unless skipped), and removes `.git` unless kept. With a
//! subdirectory, the checkout is made in a scratch snapshot and only the subdirectory's contents
//! are copied into the result (resolved inside the checkout, never following a symlink out of
//! it). Scratch and unfinished snapshots are removed when dropped, and a crashed build's are
//! removed by the next `Store::open`. Permission bits are normalised to 0644/0755 (0755 for
//! directories) so they do not depend on the process umask; owner is the engine's user (root);
//! mtimes are the checkout time.
//!
//! git runs with `GIT_TERMINAL_PROMPT=0` (a build never waits for a password) and ssh in batch
//! mode, and is killed if the build is cancelled. Errors name the URL (credentials redacted) and
//! the ref.
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

use std::collections::BTreeMap;
use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Op, OpError};
use store::fileop::{self, CopyOptions};

use super::{Session, op_error};
use crate::{Inner, Ref};

/// How many trailing lines of git's error output an error message carries.
const STDERR_LINES: usize = 5;

/// Errors of git sources.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    /// The source op is malformed.
    #[error("invalid git source {identifier}: {reason}")]
    Invalid { identifier: String, reason: String },
    /// The git binary could not be started.
    #[error("failed to run git for {url}: {source}")]
    Spawn { url: String, source: io::Error },
    /// A git command failed.
    #[error("git {command} failed for {url}#{reference}: {stderr}")]
    Command {
        url: String,
        reference: String,
        command: String,
        stderr: String,
    },
    /// The remote has no such ref.
    #[error("repository {url} does not contain ref {reference}")]
    RefNotFound { url: String, reference: String },
    /// The ref resolved to another commit than the build pinned.
    #[error("expected checksum to match {expected}, got {actual} for {url}#{reference}")]
    ChecksumMismatch {
        url: String,
        reference: String,
        expected: String,
        actual: String,
    },
    /// An authentication secret could not be read or used.
    #[error("failed to authenticate to {url}: {message}")]
    Auth { url: String, message: String },
    /// The checkout could not be made into a snapshot.
    #[error("failed to {action} for {url}#{reference}: {message}")]
    Checkout {
        url: String,
        reference: String,
        action: &'static str,
        message: String,
    },
}

/// A git source op.
pub(super) struct GitOp {
    inner: Arc<Inner>,
    /// The build's session: where authentication secrets come from.
    session: Arc<Session>,
    source: GitSource,
    /// The commit found while computing the cache key, used by `exec`.
    resolved: Mutex<Option<Resolved>>,
}

/// What a git source op asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GitSource {
    /// The URL handed to git.
    remote: String,
    /// The ref as written (empty: the remote's HEAD).
    reference: String,
    /// The subdirectory to keep, cleaned and relative (empty: everything).
    subdir: String,
    keep_git_dir: bool,
    /// Lowercase hex the commit must start with.
    checksum: Option<String>,
    submodules: bool,
}

/// A ref resolved on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resolved {
    commit: String,
    /// The full ref name it came from (`refs/heads/main`), unless a commit was given.
    refname: Option<String>,
}

impl GitOp {
    /// Reads the source op's identifier and attributes.
    pub(super) fn new(
        inner: &Arc<Inner>,
        session: &Arc<Session>,
        source: &pb::SourceOp,
    ) -> Result<GitOp, GitError> {
        Ok(GitOp {
            inner: inner.clone(),
            session: session.clone(),
            source: parse_source(source)?,
            resolved: Mutex::new(None),
        })
    }

    fn url(&self) -> String {
        redact(&self.source.remote)
    }

    fn shown_reference(&self) -> String {
        if self.source.reference.is_empty() {
            "HEAD".into()
        } else {
            self.source.reference.clone()
        }
    }

    /// The git configuration entry (`http.<scope>.extraheader`, `Authorization: …`) the build's
    /// secrets give this remote, if any.
    fn auth_config(&self) -> Result<Option<(String, String)>, GitError> {
        let Ok(url) = reqwest::Url::parse(&self.source.remote) else {
            return Ok(None);
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Ok(None);
        }
        let mut host = url.host_str().unwrap_or_default().to_string();
        if let Some(port) = url.port() {
            host = format!("{host}:{port}");
        }
        let names = [
            (format!("GIT_AUTH_HEADER.{host}"), false),
            (format!("GIT_AUTH_TOKEN.{host}"), true),
            ("GIT_AUTH_HEADER".to_string(), false),
            ("GIT_AUTH_TOKEN".to_string(), true),
        ];
        for (name, token) in names {
            let value = super::secrets::value(&self.session, &name).map_err(|e| GitError::Auth {
                url: self.url(),
                message: e.to_string(),
            })?;
            let Some(value) = value else { continue };
            let value = String::from_utf8(value)
                .ok()
                .filter(|v| !v.contains(['\r', '\n', '\0']))
                .ok_or_else(|| GitError::Auth {
                    url: self.url(),
                    message: format!("secret {name} is not a valid HTTP header value"),
                })?;
            let value = if token {
                format!(
                    "basic {}",
                    crate::progress::json::base64_encode(format!("x-access-token:{value}").as_bytes())
                )
            } else {
                value
            };
            let scope = ["https://github.com/", "https://www.github.com/"]
                .into_iter()
                .find(|p| self.source.remote.starts_with(p))
                .map_or_else(|| self.source.remote.clone(), str::to_string);
            return Ok(Some((
                format!("http.{scope}.extraheader"),
                format!("Authorization: {value}"),
            )));
        }
        Ok(None)
    }

    /// Runs git (in `dir`, when given) and returns its standard output.
    async fn git(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
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
            // Cancelling the build (dropping this future) must not leave git running.
            .kill_on_drop(true);
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        // In the environment, where other users cannot read it (the command line is public).
        if let Some((key, value)) = self.auth_config()? {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", key)
                .env("GIT_CONFIG_VALUE_0", value);
        }
        let output = command.output().await.map_err(|source| GitError::Spawn {
            url: self.url(),
            source,
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).replace(&self.source.remote, &self.url());
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(STDERR_LINES)..].join("; ");
            return Err(GitError::Command {
                url: self.url(),
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
    async fn resolve(&self) -> Result<Resolved, GitError> {
        let reference = self.shown_reference();
        let resolved = if is_commit(&reference) {
            Resolved {
                commit: reference.to_ascii_lowercase(),
                refname: None,
            }
        } else {
            let peeled = format!("{reference}^{{}}");
            let listing = self
                .git(
                    None,
                    &["ls-remote", "--", &self.source.remote, &reference, &peeled],
                )
                .await?;
            pick_ref(&listing, &reference).ok_or_else(|| GitError::RefNotFound {
                url: self.url(),
                reference: reference.clone(),
            })?
        };
        if let Some(expected) = &self.source.checksum
            && !resolved.commit.starts_with(expected.as_str())
        {
            return Err(GitError::ChecksumMismatch {
                url: self.url(),
                reference,
                expected: expected.clone(),
                actual: resolved.commit,
            });
        }
        Ok(resolved)
    }

    fn cache_key(&self, resolved: &Resolved) -> Digest {
        let s = &self.source;
        let mut text = format!(
            "git\nremote={}\ncommit={}\nsubdir={}\nkeep-git-dir={}\nsubmodules={}\n",
            s.remote, resolved.commit, s.subdir, s.keep_git_dir, s.submodules
        );
        // A kept `.git` also records which ref was checked out.
        if s.keep_git_dir {
            text.push_str(&format!(
                "ref={}\n",
                resolved.refname.as_deref().unwrap_or_default()
            ));
        }
        Digest::of(text.as_bytes())
    }

    /// Fetches `resolved.commit` into a new repository at `dir` and checks it out there.
    async fn checkout(&self, dir: &Path, resolved: &Resolved) -> Result<(), GitError> {
        let commit = resolved.commit.as_str();
        self.git(Some(dir), &["-c", "init.defaultBranch=master", "init", "-q"])
            .await?;
        self.git(Some(dir), &["remote", "add", "origin", &self.source.remote])
            .await?;
        let shallow = self
            .git(
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
            let found = match self.git(Some(dir), &everything).await {
                Ok(_) => {
                    let object = format!("{commit}^{{commit}}");
                    self.git(Some(dir), &["cat-file", "-e", &object]).await.is_ok()
                }
                Err(_) => false,
            };
            if !found {
                return Err(shallow);
            }
        }
        self.git(Some(dir), &["checkout", "-q", "--detach", commit])
            .await?;
        if self.source.keep_git_dir
            && let Some(refname) = &resolved.refname
            && (refname.starts_with("refs/heads/") || refname.starts_with("refs/tags/"))
        {
            // Like BuildKit's kept `.git`, the ref the build named exists locally.
            self.git(Some(dir), &["update-ref", refname, commit]).await?;
        }
        if self.source.submodules && dir.join(".gitmodules").is_file() {
            self.git(
                Some(dir),
                &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"],
            )
            .await?;
        }
        if self.source.keep_git_dir && self.url() != self.source.remote {
            // Credentials in the URL must not end up in the image.
            self.git(Some(dir), &["remote", "set-url", "origin", &self.url()])
                .await?;
        }
        Ok(())
    }

    fn checkout_error(&self, action: &'static str) -> impl Fn(String) -> GitError + '_ {
        move |message| GitError::Checkout {
            url: self.url(),
            reference: self.shown_reference(),
            action,
            message,
        }
    }
}

impl Op<Ref> for GitOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a container, a registry or a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            if !is_commit(&self.shown_reference()) {
                ctx.status(format!("resolving {}#{}", self.url(), self.shown_reference()));
            }
            let resolved = self.resolve().await.map_err(op_error)?;
            let digest = self.cache_key(&resolved);
            let commit = resolved.commit.clone();
            *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(resolved);
            Ok(CacheMap {
                digest,
                deps: Vec::new(),
                cacheable: true,
                facts: vec![("commit".into(), commit)],
            })
        })
    }

    fn exec<'a>(&'a self, ctx: &'a Context, _inputs: Vec<Ref>) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let known = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let resolved = match known {
                Some(r) => r,
                None => self.resolve().await.map_err(op_error)?,
            };
            ctx.status(format!("fetching {} {}", self.url(), resolved.commit));
            let store = self.inner.store.clone();
            let description = format!("git {}#{}", self.url(), self.shown_reference());
            let result = store
                .prepare(None, &description)
                .map_err(|e| op_error(self.checkout_error("create snapshot")(e.to_string())))?;
            let subdir = self.source.subdir.clone();
            if subdir.is_empty() {
                let dir = result.layer_dir();
                self.checkout(&dir, &resolved).await.map_err(op_error)?;
                let keep = self.source.keep_git_dir;
                blocking(move || finish_tree(&dir, !keep))
                    .await
                    .map_err(|e| op_error(self.checkout_error("prepare checkout")(e)))?;
            } else {
                let scratch = store
                    .prepare(None, &format!("{description} (whole checkout)"))
                    .map_err(|e| op_error(self.checkout_error("create snapshot")(e.to_string())))?;
                let from = scratch.layer_dir();
                self.checkout(&from, &resolved).await.map_err(op_error)?;
                let to = result.layer_dir();
                let copied = blocking(move || {
                    finish_tree(&from, false)?;
                    let options = CopyOptions {
                        src: format!("/{subdir}"),
                        dest: "/".into(),
                        follow_symlink: true,
                        dir_copy_contents: true,
                        create_dest_path: true,
                        ..CopyOptions::default()
                    };
                    fileop::copy(&from, &to, &options)
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
                .await;
                drop(scratch);
                copied.map_err(|e| op_error(self.checkout_error("select subdirectory")(e)))?;
            }
            let info = result
                .commit()
                .map_err(|e| op_error(self.checkout_error("commit snapshot")(e.to_string())))?;
            Ok(vec![Ref::Snapshot(info.id)])
        })
    }
}

/// Runs blocking filesystem work on the blocking pool.
async fn blocking(work: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<(), String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal task failed: {e}"))?
}

/// Removes `.git` when asked and normalises permission bits below `root`: directories 0755,
/// files 0755 when git made them executable and 0644 otherwise; symlinks are left alone.
fn finish_tree(root: &Path, remove_git_dir: bool) -> Result<(), String> {
    let failed =
        |action: &str, path: &Path, e: io::Error| format!("failed to {action} {}: {e}", path.display());
    if remove_git_dir {
        let git_dir = root.join(".git");
        // remove_dir_all never follows symlinks, and `.git` is git's own directory anyway.
        fs::remove_dir_all(&git_dir).map_err(|e| failed("remove", &git_dir, e))?;
    }
    let set = |path: &Path, mode: u32| {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| failed("chmod", path, e))
    };
    set(root, 0o755)?;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| failed("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| failed("read", &dir, e))?;
            let path = entry.path();
            // `file_type` does not follow symlinks, so `set_permissions` below never does either:
            // nothing else writes in this tree meanwhile.
            let file_type = entry.file_type().map_err(|e| failed("stat", &path, e))?;
            if file_type.is_dir() {
                set(&path, 0o755)?;
                dirs.push(path);
            } else if file_type.is_file() {
                let mode = entry
                    .metadata()
                    .map_err(|e| failed("stat", &path, e))?
                    .permissions()
                    .mode();
                set(&path, if mode & 0o111 != 0 { 0o755 } else { 0o644 })?;
            }
        }
    }
    Ok(())
}

/// Reads the identifier and attributes of a git source op.
fn parse_source(source: &pb::SourceOp) -> Result<GitSource, GitError> {
    let identifier = &source.identifier;
    let invalid = |reason: &str| GitError::Invalid {
        identifier: redact(identifier),
        reason: reason.to_string(),
    };
    let rest = identifier
        .strip_prefix(llb::attr::SCHEME_GIT)
        .ok_or_else(|| invalid("not a git:// identifier"))?;
    let (remote_part, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let remote = match source.attrs.get(llb::attr::GIT_FULL_URL) {
        Some(url) if !url.is_empty() => {
            if is_git_transport(url) {
                url.clone()
            } else {
                format!("https://{url}")
            }
        }
        _ => format!("https://{remote_part}"),
    };
    if remote_part.is_empty() && !source.attrs.contains_key(llb::attr::GIT_FULL_URL) {
        return Err(invalid("no remote"));
    }
    // Anything starting with `-` would be read as an option by git.
    if remote.starts_with('-') {
        return Err(invalid("the remote must not start with '-'"));
    }
    if reference.starts_with('-') || reference.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("invalid ref"));
    }
    let checksum = match source.attrs.get(llb::attr::GIT_CHECKSUM) {
        None => None,
        Some(c) if !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(c.to_ascii_lowercase())
        }
        Some(_) => return Err(invalid("git.checksum must be a commit hash or a prefix of one")),
    };
    let subdir = subdir
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
        .join("/");
    Ok(GitSource {
        remote,
        reference: reference.to_string(),
        subdir,
        keep_git_dir: source
            .attrs
            .get(llb::attr::GIT_KEEP_GIT_DIR)
            .is_some_and(|v| v == "true"),
        checksum,
        submodules: source
            .attrs
            .get(llb::attr::GIT_SKIP_SUBMODULES)
            .is_none_or(|v| v != "true"),
    })
}

/// Whether git would take `url` as is (a URL with a transport, or scp-like `user@host:path`).
fn is_git_transport(url: &str) -> bool {
    const SCHEMES: [&str; 5] = ["http://", "https://", "git://", "ssh://", "file://"];
    if SCHEMES.iter().any(|s| url.starts_with(s)) {
        return true;
    }
    match (url.find('@'), url.find(':')) {
        (Some(at), Some(colon)) => at > 0 && at < colon && !url[..colon].contains('/'),
        _ => false,
    }
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
fn redact(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn source(identifier: &str, attrs: &[(&str, &str)]) -> pb::SourceOp {
        pb::SourceOp {
            identifier: identifier.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn identifiers_parse() {
        let s = parse_source(&source("git://github.com/org/repo.git#v1.2:sub/../dir/", &[])).unwrap();
        assert_eq!(s.remote, "https://github.com/org/repo.git");
        assert_eq!(s.reference, "v1.2");
        assert_eq!(s.subdir, "dir");
        assert!(s.submodules);
        assert!(!s.keep_git_dir);

        let s = parse_source(&source(
            "git://host/repo",
            &[
                ("git.fullurl", "git@host:org/repo.git"),
                ("git.keepgitdir", "true"),
                ("git.skipsubmodules", "true"),
                ("git.checksum", "ABCDEF12"),
            ],
        ))
        .unwrap();
        assert_eq!(s.remote, "git@host:org/repo.git");
        assert_eq!(s.reference, "");
        assert!(s.keep_git_dir && !s.submodules);
        assert_eq!(s.checksum.as_deref(), Some("abcdef12"));

        let s = parse_source(&source("git://x", &[("git.fullurl", "example.com/r.git")])).unwrap();
        assert_eq!(s.remote, "https://example.com/r.git");

        assert!(parse_source(&source("git://host/r#--upload-pack=x", &[])).is_err());
        // An option in disguise: scp-like, so taken as is, and refused.
        assert!(parse_source(&source("git://x", &[("git.fullurl", "-oProxyCommand=x@h:p")])).is_err());
        assert!(parse_source(&source("git://x", &[("git.checksum", "xyz")])).is_err());
        assert!(parse_source(&source("https://x", &[])).is_err());
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
    fn transports_and_redaction() {
        assert!(is_git_transport("git@github.com:org/repo.git"));
        assert!(is_git_transport("file:///srv/repo"));
        assert!(!is_git_transport("github.com/org/repo.git"));
        assert!(!is_git_transport("host/path@x:y"));
        assert_eq!(redact("https://user:pw@host/r.git"), "https://xxxxx@host/r.git");
        assert_eq!(redact("https://token@host/r.git"), "https://xxxxx@host/r.git");
        assert_eq!(redact("ssh://git@host/r.git"), "ssh://git@host/r.git");
        assert_eq!(redact("git@host:r.git"), "git@host:r.git");
        assert!(is_commit(&"0".repeat(40)));
        assert!(!is_commit("main"));
    }
}
