//! Exec mounts besides the root filesystem (`RUN --mount=type=bind|tmpfs`): where their sources
//! come from and what keeps those sources alive while the process runs.
//!
//! A bind mount's source is an input (a snapshot, mounted read-only; the build context's
//! directory; or an empty directory) narrowed by a selector. The selector is resolved inside that
//! tree as a process chrooted there would resolve it ([`resolve_in_root`]): symlinks are
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

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use llb::pb;
use store::fileop::{self, CopyOptions};
use store::{Active, Mounted, Store};

use super::{EmptyDir, OpFailure, Session};
use crate::Ref;

/// Symlinks followed while resolving one selector before giving up, as Linux's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

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
    Empty { _dir: EmptyDir },
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
    store: &'a Store,
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
        let (kind, new) = super::cache_mounts::prepare(store, extra[i], inputs, excludes, meta, held).await?;
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
                let (kind, tmpfs) = super::secrets::mount(store, session, mount)?;
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
    let not_found = |e: io::Error| {
        OpFailure::Invalid(format!(
            "failed to mount {:?} at {}: {}",
            display_selector(&mount.selector),
            mount.dest,
            describe(&e)
        ))
    };
    let excludes = usize::try_from(mount.input)
        .ok()
        .and_then(|i| excludes.get(i))
        .map_or(&[][..], |e| e.as_slice());
    // The tree to mount from, and the path inside it to mount.
    let (root, selector) = match (input, mount.readonly) {
        (None | Some(Ref::Empty), true) => {
            let empty = EmptyDir::new(store)?;
            let path = empty.path.clone();
            guards.push(Guard::Empty { _dir: empty });
            (path, mount.selector.clone())
        }
        (Some(Ref::Snapshot(id)), true) => {
            let view = store.view(*id)?;
            let path = view.path().to_path_buf();
            guards.push(Guard::View { _view: view });
            (path, mount.selector.clone())
        }
        (Some(Ref::Local(dir)), true) if excludes.is_empty() => ((**dir).clone(), mount.selector.clone()),
        (None | Some(Ref::Empty), false) => {
            (scratch(store, None, &mount.dest, guards)?, mount.selector.clone())
        }
        (Some(Ref::Snapshot(id)), false) => (
            scratch(store, Some(*id), &mount.dest, guards)?,
            mount.selector.clone(),
        ),
        (Some(Ref::Local(dir)), _) => {
            // The context is never written, and excluded files are not part of it: the selected
            // part is copied into a scratch snapshot, at the path it resolved to (which has no
            // symlinks left, so it is found again there).
            let selected = resolve_in_root(dir, &mount.selector).map_err(not_found)?;
            let rel = selected
                .strip_prefix(dir.as_path())
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_else(|_| "/".into());
            let root = scratch(store, None, &mount.dest, guards)?;
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
                .map_err(|e| OpFailure::Invalid(format!("internal task failed: {e}")))??;
            (root, rel)
        }
    };
    let source = resolve_in_root(&root, &selector).map_err(not_found)?;
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

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// One step still to resolve.
enum Step {
    Parent,
    Name(OsString),
}

/// Pushes the components of `path` onto `pending` so that they pop in order.
fn push_components(pending: &mut Vec<Step>, path: &Path) {
    let steps: Vec<Step> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Step::Name(n.to_os_string())),
            Component::ParentDir => Some(Step::Parent),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(steps.into_iter().rev());
}

/// Resolves `path` inside the directory tree `root` as a process whose root directory is `root`
/// would: every symlink is followed, absolute targets restart at `root` and `..` stops there.
/// Returns a host path below `root` without symlinks after `root`, which must exist.
///
/// The trees this serves are immutable while it runs (committed snapshots, fresh scratch
/// snapshots, the build context), so checking each component and then using the joined path
/// is not racy in practice; nothing here writes.
pub(super) fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut pending = Vec::new();
    push_components(&mut pending, Path::new(path));
    let mut resolved: Vec<OsString> = Vec::new();
    let mut symlinks = 0;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Parent => {
                resolved.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&name);
        let meta = std::fs::symlink_metadata(&candidate)?;
        if meta.file_type().is_symlink() {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = std::fs::read_link(&candidate)?;
            if target.has_root() {
                resolved.clear();
            }
            push_components(&mut pending, &target);
        } else {
            if !pending.is_empty() && !meta.is_dir() {
                return Err(io::Error::other("not a directory"));
            }
            resolved.push(name);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn selectors_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("secret")).unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::write(r.join("a/b/file"), "x").unwrap();
        symlink("/a", r.join("abs")).unwrap();
        symlink("../../../../a/b", r.join("a/up")).unwrap();
        symlink(outside.path(), r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();

        assert_eq!(resolve_in_root(r, "").unwrap(), r);
        assert_eq!(resolve_in_root(r, "/").unwrap(), r);
        assert_eq!(resolve_in_root(r, "/a/b/").unwrap(), r.join("a/b"));
        assert_eq!(resolve_in_root(r, "/../../a").unwrap(), r.join("a"));
        assert_eq!(resolve_in_root(r, "/abs/b/file").unwrap(), r.join("a/b/file"));
        assert_eq!(resolve_in_root(r, "/a/up").unwrap(), r.join("a/b"));
        // An absolute symlink to a host directory lands at the same path inside the root.
        let escaped = resolve_in_root(r, "/escape/secret");
        assert_eq!(escaped.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            resolve_in_root(r, "/missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(resolve_in_root(r, "/loop").is_err());
        assert!(resolve_in_root(r, "/a/b/file/x").is_err());
    }
}
