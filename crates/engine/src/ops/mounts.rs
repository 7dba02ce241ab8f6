//! Exec mounts besides the root filesystem (`RUN --mount=type=bind|tmpfs`): where their sources
//! come from and what keeps those sources alive while the process runs.
//!
//! A bind mount's source is an input (a snapshot, mounted read-only; the build context's
//! directory; or an empty directory) narrowed by a selector. The selector is resolved inside that
//! tree as a process chrooted there would resolve it ([`fsops::resolve::resolve_path`]): symlinks are
//! followed, but absolute targets restart at the tree's root and `..` stops there, so an image
//! can never point a mount at the host.
//!
//! A writable bind mount without an output (BuildKit's "readwrite-nooutput") gets a scratch
//! snapshot on top of its input, never committed: the process may write there, and everything
//! it wrote is thrown away with the scratch snapshot after the step. The input itself is never
//! written.
//!
//! Everything a mount needs (read-only views, scratch snapshots and their overlay mounts, empty
//! directories) is owned by [`Prepared`], which the caller drops once the process has exited.
//!
//! Cache mounts are prepared by [`super::cache_mounts`] and held by a [`Guard`] like the rest.
//!
//! Not done here: mounts whose changes become outputs of the op; they are refused with a "not
//! supported yet" error.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fsops::fileop::{self, CopyOptions};
use llb::pb;
use store::{Active, Mounted, Store};

use fsops::resolve::resolve_path;

use super::{OpFailure, Session, blocking};
use crate::Ref;

/// The mounts of one exec, ready to hand to the executor, and the guards keeping their sources.
pub(super) struct Prepared<'a> {
    /// The executor's view of the mounts, parents before children.
    pub(super) mounts: Vec<executor::Mount>,
    /// Dropped after the run: unmounts views, discards scratch snapshots, removes empty dirs.
    _guards: Vec<Guard<'a>>,
}

/// What keeps one mount source alive; only ever dropped.
enum Guard<'a> {
    /// A tmpfs holding a secret file.
    Secret { _tmpfs: Mounted },
    /// A relayed ssh agent socket.
    Ssh { _forward: super::ssh::Forward },
    /// A committed snapshot mounted read-only.
    View { _view: Mounted },
    /// An empty directory.
    Empty { _dir: store::EmptyDir },
    /// A scratch snapshot: fields drop in order, so the mount goes before its directories.
    Scratch { _mount: Mounted, _active: Active<'a> },
    /// A cache-mount instance: released, and steps waiting for it woken, on drop.
    Cache(super::cache_mounts::Held<'a>),
}

/// Prepares every mount of `mounts` except the root one (destination `/`).
///
/// `inputs` are the exec's inputs, which mounts refer to by index, and `excludes` their exclude
/// patterns (a local source's `.dockerignore`, empty for other inputs). Runs in the caller's
/// task: mounting is quick, and the one slow case (the build context mounted writable or with
/// excludes, which is copied into a scratch snapshot first) copies on the blocking pool. `meta`
/// is the exec's process (cache mounts are described by it); a cache mount may wait for its
/// cache (`sharing=locked`).
pub(super) async fn prepare<'a>(
    store: &'a Arc<Store>,
    session: &'a Session,
    mounts: &[pb::Mount],
    inputs: &[Ref],
    excludes: &[Arc<Vec<String>>],
    meta: &pb::Meta,
) -> Result<Prepared<'a>, OpFailure> {
    let mut extra: Vec<&pb::Mount> = mounts.iter().filter(|m| m.dest != "/").collect();
    // A mount inside another one must come after it, or it would be hidden by it.
    extra.sort_by_key(|m| Path::new(&m.dest).components().count());
    let mut prepared = Prepared {
        mounts: Vec::with_capacity(extra.len()),
        _guards: Vec::new(),
    };
    // Caches first, in the order of their names: a step waiting for a locked cache then never
    // holds one that the step it waits for is waiting for.
    let mut caches = Vec::new();
    for (i, mount) in extra.iter().enumerate() {
        if mount.mount_type == pb::MountType::Cache as i32 {
            caches.push((super::cache_mounts::cache_name(mount, inputs)?, i));
        }
    }
    caches.sort();
    let mut cache_kinds: Vec<Option<executor::MountKind>> = vec![None; extra.len()];
    for (_, i) in caches {
        // Instances this exec holds already: a second mount of the same cache shares one.
        let held = prepared._guards.iter().filter_map(|g| match g {
            Guard::Cache(held) => Some(held),
            _ => None,
        });
        let (kind, new) =
            super::cache_mounts::prepare(store, session, extra[i], inputs, excludes, meta, held).await?;
        prepared._guards.extend(new.map(Guard::Cache));
        cache_kinds[i] = Some(kind);
    }
    for (i, mount) in extra.into_iter().enumerate() {
        if !mount.dest.starts_with('/') {
            return Err(OpFailure::Invalid(format!(
                "mount destination {:?} is not an absolute path",
                mount.dest
            )));
        }
        let kind = match pb::MountType::try_from(mount.mount_type) {
            Ok(pb::MountType::Bind) => bind(store, mount, inputs, excludes, &mut prepared._guards).await?,
            Ok(pb::MountType::Tmpfs) => {
                let size = mount.tmpfs_opt.as_ref().map_or(0, |o| o.size);
                let size = u64::try_from(size).map_err(|_| {
                    OpFailure::Invalid(format!("tmpfs mount {} has a negative size", mount.dest))
                })?;
                executor::MountKind::Tmpfs {
                    size: (size > 0).then_some(size),
                }
            }
            Ok(pb::MountType::Cache) => cache_kinds[i]
                .take()
                .ok_or_else(|| OpFailure::Invalid(format!("cache mount {} was not prepared", mount.dest)))?,
            Ok(pb::MountType::Secret) => {
                let Some((kind, tmpfs)) = super::blocking(|| super::secrets::mount(store, session, mount))?
                else {
                    continue;
                };
                prepared._guards.push(Guard::Secret { _tmpfs: tmpfs });
                kind
            }
            Ok(pb::MountType::Ssh) => match super::ssh::mount(store, session, mount).await? {
                Some((kind, forward)) => {
                    prepared._guards.push(Guard::Ssh { _forward: forward });
                    kind
                }
                // An optional agent that was not forwarded: no mount at all.
                None => continue,
            },
            Err(_) => {
                return Err(OpFailure::Invalid(format!(
                    "mount {} has unknown type {}",
                    mount.dest, mount.mount_type
                )));
            }
        };
        prepared.mounts.push(executor::Mount {
            destination: mount.dest.clone(),
            kind,
        });
    }
    Ok(prepared)
}

/// Prepares the source of one bind mount.
async fn bind<'a>(
    store: &'a Store,
    mount: &pb::Mount,
    inputs: &[Ref],
    excludes: &[Arc<Vec<String>>],
    guards: &mut Vec<Guard<'a>>,
) -> Result<executor::MountKind, OpFailure> {
    if mount.output >= 0 {
        return Err(OpFailure::NotSupported(format!(
            "keeping the changes of the writable mount at {} as a result",
            mount.dest
        )));
    }
    let input =
        match usize::try_from(mount.input) {
            Err(_) => None,
            Ok(i) => Some(inputs.get(i).ok_or_else(|| {
                OpFailure::Invalid(format!("mount {} names missing input {i}", mount.dest))
            })?),
        };
    let not_found = |source: io::Error| OpFailure::MountSource {
        selector: display_selector(&mount.selector).to_string(),
        dest: mount.dest.clone(),
        source,
    };
    let excludes = usize::try_from(mount.input)
        .ok()
        .and_then(|i| excludes.get(i))
        .map_or(&[][..], |e| e.as_slice());
    // The tree to mount from, and the path inside it to mount.
    let (root, selector) = match (input, mount.readonly) {
        (Some(Ref::Remote(_)), _) => return Err(OpFailure::NotDownloaded),
        (None | Some(Ref::Empty), true) => {
            let empty = blocking(|| store.empty_dir())?;
            let path = empty.path().to_path_buf();
            guards.push(Guard::Empty { _dir: empty });
            (path, mount.selector.clone())
        }
        (Some(Ref::Snapshot(id)), true) => {
            let view = blocking(|| store.view(*id))?;
            let path = view.path().to_path_buf();
            guards.push(Guard::View { _view: view });
            (path, mount.selector.clone())
        }
        (Some(Ref::Local(dir)), true) if excludes.is_empty() => ((**dir).clone(), mount.selector.clone()),
        (None | Some(Ref::Empty), false) => (
            blocking(|| scratch(store, None, &mount.dest, guards))?,
            mount.selector.clone(),
        ),
        (Some(Ref::Snapshot(id)), false) => (
            blocking(|| scratch(store, Some(*id), &mount.dest, guards))?,
            mount.selector.clone(),
        ),
        (Some(Ref::Local(dir)), _) => {
            // The context is never written, and excluded files are not part of it: the selected
            // part is copied into a scratch snapshot, at the path it resolved to (which has no
            // symlinks left, so it is found again there).
            let selected = blocking(|| resolve_path(dir, &mount.selector)).map_err(not_found)?;
            let rel = selected
                .strip_prefix(dir.as_path())
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_else(|_| "/".into());
            let root = blocking(|| scratch(store, None, &mount.dest, guards))?;
            let options = CopyOptions {
                src: rel.clone(),
                dest: rel.clone(),
                dir_copy_contents: rel == "/",
                create_dest_path: true,
                context_excludes: excludes.to_vec(),
                ..CopyOptions::default()
            };
            let (from, to) = ((**dir).clone(), root.clone());
            tokio::task::spawn_blocking(move || fileop::copy(&from, &to, &options))
                .await
                .map_err(OpFailure::Join)??;
            (root, rel)
        }
    };
    let source = blocking(|| resolve_path(&root, &selector)).map_err(not_found)?;
    Ok(executor::MountKind::Bind {
        source,
        readonly: mount.readonly,
    })
}

/// A writable scratch snapshot on `parent`, discarded with its guard; returns its mount path.
fn scratch<'a>(
    store: &'a Store,
    parent: Option<store::SnapshotId>,
    dest: &str,
    guards: &mut Vec<Guard<'a>>,
) -> Result<PathBuf, OpFailure> {
    let active = store.prepare(parent, &format!("scratch mount {dest}"))?;
    let mount = active.mount()?;
    let path = mount.path().to_path_buf();
    guards.push(Guard::Scratch {
        _mount: mount,
        _active: active,
    });
    Ok(path)
}

fn display_selector(selector: &str) -> &str {
    if selector.is_empty() { "/" } else { selector }
}
