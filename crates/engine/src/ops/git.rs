//! Git source ops: LLB's `git://` sources, checked out by [`sources::git`].
//!
//! The identifier is `git://<remote without scheme>[#<ref>[:<subdir>]]`; `git.fullurl` is the
//! URL to fetch (anything the git CLI accepts; without it `https://` + the identifier's remote),
//! `git.keepgitdir=true` keeps `.git`, `git.checksum` is the commit (or a prefix of it) the ref
//! must resolve to, and `git.skipsubmodules=true` leaves submodules out.
//!
//! The cache key covers the remote, the commit the ref resolves to, the subdirectory and the
//! options (and, with a kept `.git`, the ref's full name), so a branch that moved reruns
//! everything built on it, and an unchanged one is a cache hit. Checkouts that secrets
//! authenticate are salted with those secrets' values (see [`super::source`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Op, OpError};
use sources::Secrets;
use sources::git::{Git, GitContext, GitError, GitSource, Resolved, redact};

use super::{Session, op_error};
use crate::{Inner, Ref};

/// A git source op.
pub(super) struct GitOp {
    inner: Arc<Inner>,
    git: Git,
    /// The commit found while computing the cache key, used by `exec`.
    resolved: Mutex<Option<Resolved>>,
}

impl GitOp {
    /// Reads the source op's identifier and attributes.
    pub(super) fn new(inner: &Arc<Inner>, source: &pb::SourceOp) -> Result<GitOp, GitError> {
        Ok(GitOp {
            inner: inner.clone(),
            git: Git::new(parse_source(source)?)?,
            resolved: Mutex::new(None),
        })
    }

    /// The names of the secrets that may authenticate this remote: what its salt depends on.
    pub(super) fn secret_names(&self) -> BTreeSet<String> {
        self.git.secret_names()
    }

    fn cache_key(&self, resolved: &Resolved) -> Digest {
        let s = self.git.source();
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

    /// Runs `work` with the store, and the secrets and progress of the build waiting for this
    /// op.
    async fn with_context<T>(
        &self,
        ctx: &Context<Session>,
        work: impl AsyncFnOnce(GitContext<'_>) -> Result<T, GitError>,
    ) -> Result<T, OpError> {
        let secrets: Arc<dyn Secrets> = Session::of(ctx).map_err(op_error)?;
        let progress = |line| ctx.status(line);
        let cx = GitContext {
            store: &self.inner.store,
            secrets: &secrets,
            progress: &progress,
        };
        work(cx).await.map_err(op_error)
    }

    /// Resolves the ref for the build waiting for this op.
    async fn resolve(&self, ctx: &Context<Session>) -> Result<Resolved, OpError> {
        self.with_context(ctx, async |cx| self.git.resolve(cx).await)
            .await
    }
}

impl Op<Ref, Session> for GitOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let resolved = self.resolve(ctx).await?;
            let digest = self.cache_key(&resolved);
            let commit = resolved.commit.clone();
            *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some(resolved);
            Ok(CacheMap::of_fact(digest, "commit", commit))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let known = self.resolved.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let resolved = match known {
                Some(r) => r,
                None => self.resolve(ctx).await?,
            };
            let id = self
                .with_context(ctx, async |cx| self.git.checkout(cx, &resolved).await)
                .await?;
            Ok(vec![Ref::Snapshot(id)])
        })
    }
}

/// Reads the identifier and attributes of a git source op into a request.
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
    if remote_part.is_empty() && !source.attrs.contains_key(llb::attr::GIT_FULL_URL) {
        return Err(invalid("no remote"));
    }
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
    Ok(GitSource {
        remote,
        reference: reference.to_string(),
        subdir: subdir.to_string(),
        keep_git_dir: source
            .attrs
            .get(llb::attr::GIT_KEEP_GIT_DIR)
            .is_some_and(|v| v == "true"),
        checksum: source.attrs.get(llb::attr::GIT_CHECKSUM).cloned(),
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

    /// Parses and checks, as an op is made.
    fn checked(identifier: &str, attrs: &[(&str, &str)]) -> Result<GitSource, GitError> {
        Ok(Git::new(parse_source(&source(identifier, attrs))?)?
            .source()
            .clone())
    }

    #[test]
    fn identifiers_parse() {
        let s = checked("git://github.com/org/repo.git#v1.2:sub/../dir/", &[]).unwrap();
        assert_eq!(s.remote, "https://github.com/org/repo.git");
        assert_eq!(s.reference, "v1.2");
        assert_eq!(s.subdir, "dir");
        assert!(s.submodules);
        assert!(!s.keep_git_dir);

        let s = checked(
            "git://host/repo",
            &[
                ("git.fullurl", "git@host:org/repo.git"),
                ("git.keepgitdir", "true"),
                ("git.skipsubmodules", "true"),
                ("git.checksum", "ABCDEF12"),
            ],
        )
        .unwrap();
        assert_eq!(s.remote, "git@host:org/repo.git");
        assert_eq!(s.reference, "");
        assert!(s.keep_git_dir && !s.submodules);
        assert_eq!(s.checksum.as_deref(), Some("abcdef12"));

        let s = checked("git://x", &[("git.fullurl", "example.com/r.git")]).unwrap();
        assert_eq!(s.remote, "https://example.com/r.git");

        assert!(checked("git://host/r#--upload-pack=x", &[]).is_err());
        // An option in disguise: scp-like, so taken as is, and refused.
        assert!(checked("git://x", &[("git.fullurl", "-oProxyCommand=x@h:p")]).is_err());
        assert!(checked("git://x", &[("git.checksum", "xyz")]).is_err());
        assert!(checked("https://x", &[]).is_err());
        assert!(checked("git://#main", &[]).is_err());
    }

    #[test]
    fn transports() {
        assert!(is_git_transport("git@github.com:org/repo.git"));
        assert!(is_git_transport("file:///srv/repo"));
        assert!(!is_git_transport("github.com/org/repo.git"));
        assert!(!is_git_transport("host/path@x:y"));
    }
}
