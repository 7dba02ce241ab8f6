//! Source ops: images, the client's local directories, and (through [`super::http`] and
//! [`super::git`]) downloads and git checkouts.

use std::path::PathBuf;
use std::sync::Arc;

use llb::pb;
use oci::{Digest, Reference};
use solver::{BoxFuture, CacheMap, Context, Op, OpError};
use sources::pull::{self, ImageSource};

use super::{OpFailure, Session, git, http, op_error};
use crate::{Inner, Ref};

/// The exclude patterns (`.dockerignore`) of a local source: a JSON list of strings.
pub(super) fn local_excludes(source: &pb::SourceOp) -> Result<Vec<String>, OpFailure> {
    match source.attrs.get(llb::attr::LOCAL_EXCLUDE_PATTERNS) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| OpFailure::ExcludePatterns {
            source_name: source.identifier.clone(),
            source: e,
        }),
    }
}

/// The op of a source, and its salt: what of `session` it depends on.
pub(super) fn source_op(
    inner: &Arc<Inner>,
    source: &pb::SourceOp,
    session: &Session,
) -> Result<super::SaltedOp, OpFailure> {
    if let Some(name) = source.identifier.strip_prefix(llb::attr::SCHEME_LOCAL) {
        if !session.local_dirs.contains_key(name) {
            return Err(OpFailure::NoLocalDir(name.to_string()));
        }
        let salt = Digest::of(format!("local\n{}", session.id).as_bytes());
        return Ok((
            Arc::new(LocalOp {
                name: name.to_string(),
            }),
            Some(salt),
        ));
    }
    if let Some(reference) = source.identifier.strip_prefix(llb::attr::SCHEME_IMAGE) {
        let reference = Reference::parse(reference).map_err(OpFailure::ImageSource)?;
        let op = ImageOp {
            inner: inner.clone(),
            image: ImageSource {
                reference,
                platform: inner.platform.clone(),
            },
        };
        return Ok((Arc::new(op), None));
    }
    if source.identifier.starts_with("http://") || source.identifier.starts_with("https://") {
        let op = http::HttpOp::new(inner, source)?;
        let salt = session.secrets_salt(&inner.store, &op.secret_names(), true);
        return Ok((Arc::new(op), salt));
    }
    if source.identifier.starts_with(llb::attr::SCHEME_GIT) {
        let op = git::GitOp::new(inner, source)?;
        let salt = session.secrets_salt(&inner.store, &op.secret_names(), true);
        return Ok((Arc::new(op), salt));
    }
    Err(OpFailure::NotSupported(format!("source {:?}", source.identifier)))
}

/// An image, pulled (each layer applied once) into snapshots by [`sources::pull`].
struct ImageOp {
    inner: Arc<Inner>,
    image: ImageSource,
}

impl Op<Ref, Session> for ImageOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a registry.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            // The manifest digest identifies the content; a tag is resolved first.
            let digest = match self.image.reference.digest() {
                Some(d) => d.clone(),
                None => {
                    let session = Session::of(ctx).map_err(op_error)?;
                    pull::manifest(&self.inner.store, &session.registry, &self.image)
                        .await
                        .map_err(op_error)?
                        .0
                }
            };
            let key = format!("image:{digest}:{}", self.image.platform);
            Ok(CacheMap::of_fact(
                Digest::of(key.as_bytes()),
                "image digest",
                digest.to_string(),
            ))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            ctx.status(format!("resolve {}", self.image.reference));
            let session = Session::of(ctx).map_err(op_error)?;
            let progress = |line| ctx.status(line);
            let top = if crate::layout::is_layout(&self.image.reference) {
                // The layout's manifest and config are in the content store since the
                // frontend resolved it; its layers come from the client's directory.
                let name = crate::layout::local_name(&self.image.reference);
                let dir = ctx
                    .sessions()
                    .iter()
                    .find_map(|s| s.local_dirs.get(&name).cloned())
                    .ok_or_else(|| op_error(OpFailure::NoLocalDir(name)))?;
                let blobs = crate::layout::LayoutBlobs { dir };
                pull::pull_with(
                    &self.inner.store,
                    &session.registry,
                    &self.image,
                    &blobs,
                    &progress,
                )
                .await
                .map_err(op_error)?
            } else {
                pull::pull(&self.inner.store, &session.registry, &self.image, &progress)
                    .await
                    .map_err(op_error)?
            };
            Ok(vec![top.map_or(Ref::Empty, Ref::Snapshot)])
        })
    }
}

/// A directory of the client (the build context, a named context), read in place. Never
/// cached, and salted with its session: its users key on the content they read.
struct LocalOp {
    name: String,
}

impl Op<Ref, Session> for LocalOp {
    fn cache_map<'a>(&'a self, _ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            Ok(
                CacheMap::new(Digest::of(format!("local:{}", self.name).as_bytes()), Vec::new())
                    .uncacheable(),
            )
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        _inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let session = Session::of(ctx).map_err(op_error)?;
            let dir: PathBuf = session
                .local_dirs
                .get(&self.name)
                .cloned()
                .ok_or_else(|| op_error(OpFailure::NoLocalDir(self.name.clone())))?;
            if !dir.is_dir() {
                return Err(op_error(OpFailure::ContextNotDir(dir)));
            }
            Ok(vec![Ref::Local(Arc::new(dir))])
        })
    }
}
