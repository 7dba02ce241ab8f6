//! File ops (`COPY`, `ADD` of local files, `WORKDIR`'s mkdir, …): actions applied in order to a
//! new snapshot of the first action's input, with copies reading the op's other inputs; and
//! the content keys of what a copy (or a bind mount) reads.

use std::sync::Arc;

use fsops::fileop::{self, Ownership, UserRef};
use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Dep, Op, OpError};

use super::{OpFailure, Session, join_error, op_error};
use crate::{Inner, Ref};

/// A file op of a build graph.
pub(super) struct FileOp {
    pub(super) inner: Arc<Inner>,
    pub(super) op: pb::FileOp,
    pub(super) base: Digest,
    pub(super) n_inputs: usize,
    /// Per input: the exclude patterns of a local source (empty for anything else).
    pub(super) excludes: Vec<Arc<Vec<String>>>,
}

/// The options of a copy action reading an input with the given exclude patterns (a local
/// source's `.dockerignore`). Ownership is left to the caller: the new owner is resolved in the
/// destination, and the build context's files become 0:0.
fn copy_options(copy: &pb::FileActionCopy, excludes: &[String]) -> fileop::CopyOptions {
    fileop::CopyOptions {
        src: copy.src.clone(),
        dest: copy.dest.clone(),
        owner: None,
        source_owner: None,
        mode: u32::try_from(copy.mode).ok(),
        mode_str: (!copy.mode_str.is_empty()).then(|| copy.mode_str.clone()),
        follow_symlink: copy.follow_symlink,
        dir_copy_contents: copy.dir_copy_contents,
        create_dest_path: copy.create_dest_path,
        allow_wildcard: copy.allow_wildcard,
        allow_empty_wildcard: copy.allow_empty_wildcard,
        timestamp: (copy.timestamp >= 0).then_some(copy.timestamp),
        include_patterns: copy.include_patterns.clone(),
        exclude_patterns: copy.exclude_patterns.clone(),
        context_excludes: excludes.to_vec(),
        required_paths: copy.required_paths.clone(),
        attempt_unpack: copy.attempt_unpack_docker_compatibility,
        always_replace_existing_dest_paths: copy.always_replace_existing_dest_paths,
    }
}

/// Ownership given to files copied from the build context, as BuildKit's local sources do.
pub(super) const CONTEXT_OWNER: Ownership = Ownership { uid: 0, gid: 0 };

impl Op<Ref, Session> for FileOp {
    fn cache_map<'a>(&'a self, _ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let n = self.n_inputs;
            let mut selections: Vec<Vec<fileop::CopyOptions>> = vec![Vec::new(); n];
            for action in &self.op.actions {
                if let Some(pb::file_action::Action::Copy(copy)) = &action.action
                    && let Ok(i) = usize::try_from(action.secondary_input)
                    && let Some(list) = selections.get_mut(i)
                {
                    let excludes = self.excludes.get(i).map_or(&[][..], |e| e.as_slice());
                    // Files of the build context are copied as 0:0 (content_key keeps the
                    // owners of other inputs).
                    list.push(fileop::CopyOptions {
                        source_owner: Some(CONTEXT_OWNER),
                        ..copy_options(copy, excludes)
                    });
                }
            }
            let deps = selections
                .into_iter()
                .map(|list| {
                    if list.is_empty() {
                        return Dep::default();
                    }
                    let selector = Digest::of(
                        list.iter()
                            .map(|s| s.src.as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                            .as_bytes(),
                    );
                    let list = Arc::new(list);
                    let inner = self.inner.clone();
                    let content: solver::ContentFn<Ref> = Arc::new(move |r: Ref| {
                        let list = list.clone();
                        let inner = inner.clone();
                        Box::pin(async move { content_key(inner, r, list).await })
                    });
                    Dep {
                        selector: Some(selector),
                        content: Some(content),
                    }
                })
                .collect();
            Ok(CacheMap::new(self.base.clone(), deps))
        })
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a Context<Session>,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let store = self.inner.store.clone();
            let op = self.op.clone();
            let excludes = self.excludes.clone();
            let id = tokio::task::spawn_blocking(move || run_file_op(&store, &op, &inputs, &excludes))
                .await
                .map_err(join_error)?;
            Ok(vec![id.map_err(op_error)?])
        })
    }
}

/// The content key of what a COPY (or a bind mount) reads from one input, as `selections`
/// select it: a digest of exactly those files (names, modes, owners, contents; not times).
/// The build context is hashed with the store's file-digest cache, so only changed files are
/// read; a snapshot's digest is computed once and remembered, since snapshots never change.
pub(super) async fn content_key(
    inner: Arc<Inner>,
    r: Ref,
    selections: Arc<Vec<fileop::CopyOptions>>,
) -> Result<Digest, OpError> {
    // A remote result is downloaded: its content is what the key is made of.
    let quiet = |_: String| {};
    let r = crate::remote::lazy::materialize(&inner, r, &quiet).await?;
    if let Ref::Empty = r {
        return Ok(Digest::of(b"empty"));
    }
    tokio::task::spawn_blocking(move || {
        let store = &inner.store;
        let mut text = String::new();
        // What was read from a local directory, for cache-miss explanations.
        let mut listing: Option<fileop::Listing> = None;
        for options in selections.iter() {
            let d = match &r {
                Ref::Local(dir) => {
                    let (d, files) =
                        fileop::content_listing_cached(dir, options, store.hash_cache()).map_err(op_error)?;
                    listing.get_or_insert_with(Vec::new).extend(files);
                    d
                }
                // Files copied from a snapshot keep their owners.
                Ref::Snapshot(id) => {
                    let options = fileop::CopyOptions {
                        source_owner: None,
                        ..options.clone()
                    };
                    store.snapshot_content_digest(*id, &options).map_err(op_error)?
                }
                Ref::Empty => Digest::of(b"empty"),
                Ref::Remote(_) => return Err(op_error(OpFailure::NotDownloaded)),
            };
            text.push_str(&format!("{}\n{d}\n", options.src));
        }
        let digest = Digest::of(text.as_bytes());
        if let Some(mut listing) = listing {
            listing.sort();
            listing.dedup_by(|a, b| a.0 == b.0);
            inner.listings.put(digest.clone(), listing);
        }
        Ok(digest)
    })
    .await
    .map_err(join_error)?
}

fn run_file_op(
    store: &store::Store,
    op: &pb::FileOp,
    inputs: &[Ref],
    excludes: &[Arc<Vec<String>>],
) -> Result<Ref, OpFailure> {
    let n_inputs = inputs.len() as i64;
    let first = op
        .actions
        .first()
        .ok_or_else(|| OpFailure::Invalid("file op without actions".into()))?;
    let base = match usize::try_from(first.input).ok().and_then(|i| inputs.get(i)) {
        None | Some(Ref::Empty) => None,
        Some(Ref::Snapshot(id)) => Some(*id),
        Some(Ref::Local(_)) => {
            return Err(OpFailure::NotSupported(
                "file actions on a local directory".into(),
            ));
        }
        Some(Ref::Remote(_)) => return Err(OpFailure::NotDownloaded),
    };
    for (i, action) in op.actions.iter().enumerate().skip(1) {
        if action.input != n_inputs + i as i64 - 1 {
            return Err(OpFailure::NotSupported(
                "file actions that do not chain on the previous action".into(),
            ));
        }
    }
    let active = store.prepare(base, "file op")?;
    {
        let mount = active.mount()?;
        let dest = mount.path();
        for action in &op.actions {
            if action.secondary_input >= n_inputs {
                return Err(OpFailure::NotSupported(
                    "copying from the result of an earlier action".into(),
                ));
            }
            let timestamp = |t: i64| (t >= 0).then_some(t);
            match &action.action {
                Some(pb::file_action::Action::Copy(copy)) => {
                    let index = usize::try_from(action.secondary_input).ok();
                    let source = index.and_then(|i| inputs.get(i)).cloned();
                    let empty_dir;
                    let view;
                    let (src_root, source_owner) = match &source {
                        Some(Ref::Local(dir)) => ((**dir).clone(), Some(CONTEXT_OWNER)),
                        Some(Ref::Snapshot(id)) => {
                            view = store.view(*id)?;
                            (view.path().to_path_buf(), None)
                        }
                        None | Some(Ref::Empty) => {
                            empty_dir = store.empty_dir()?;
                            (empty_dir.path().to_path_buf(), None)
                        }
                        Some(Ref::Remote(_)) => return Err(OpFailure::NotDownloaded),
                    };
                    let excludes = index
                        .and_then(|i| excludes.get(i))
                        .map_or(&[][..], |e| e.as_slice());
                    let options = fileop::CopyOptions {
                        owner: ownership(dest, copy.owner.as_ref())?,
                        source_owner,
                        ..copy_options(copy, excludes)
                    };
                    fileop::copy(&src_root, dest, &options)?;
                }
                Some(pb::file_action::Action::Mkdir(m)) => {
                    let owner = ownership(dest, m.owner.as_ref())?;
                    fileop::mkdir(
                        dest,
                        &m.path,
                        m.mode as u32,
                        m.make_parents,
                        owner,
                        timestamp(m.timestamp),
                    )?;
                }
                Some(pb::file_action::Action::Mkfile(m)) => {
                    let owner = ownership(dest, m.owner.as_ref())?;
                    fileop::mkfile(
                        dest,
                        &m.path,
                        m.mode as u32,
                        &m.data,
                        owner,
                        timestamp(m.timestamp),
                    )?;
                }
                Some(pb::file_action::Action::Rm(r)) => {
                    fileop::rm(dest, &r.path, r.allow_not_found, r.allow_wildcard)?;
                }
                Some(pb::file_action::Action::Symlink(s)) => {
                    let owner = ownership(dest, s.owner.as_ref())?;
                    fileop::symlink(dest, &s.oldpath, &s.newpath, owner, timestamp(s.timestamp))?;
                }
                None => return Err(OpFailure::Invalid("file action without body".into())),
            }
        }
    }
    Ok(Ref::Snapshot(active.commit()?.id))
}

fn user_ref(u: &pb::UserOpt) -> Option<UserRef> {
    match u.user.as_ref()? {
        pb::user_opt::User::ById(id) => Some(UserRef::Id(*id)),
        pb::user_opt::User::ByName(n) => Some(UserRef::Name(n.name.clone())),
    }
}

fn ownership(root: &std::path::Path, owner: Option<&pb::ChownOpt>) -> Result<Option<Ownership>, OpFailure> {
    let Some(owner) = owner else { return Ok(None) };
    let Some(user) = owner.user.as_ref().and_then(user_ref) else {
        return Ok(None);
    };
    let group = owner.group.as_ref().and_then(user_ref);
    Ok(Some(fileop::resolve_ownership(root, &user, group.as_ref())?))
}
