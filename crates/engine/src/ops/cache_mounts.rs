//! Cache mounts of an exec (`RUN --mount=type=cache`): which cache a mount names, waiting for
//! it when its sharing mode says so, seeding a new one, and releasing it after the run.
//!
//! A cache is named by its id (`id=`, by default the target path) and, when the mount has an
//! input, by that input: BuildKit keys a cache by `id` plus the ref it sits on, so a cache
//! seeded `from=` a stage, or created with `mode`/`uid`/`gid` (the frontend lowers those to a
//! `mkdir` on scratch, mounted with selector `/cache`), is another cache than the plain one with
//! the same id. BuildKit mounts the selected path of a mutable layer over that ref; kiln copies
//! the selected directory (with its mode, owner and contents) into the new cache once, when the
//! cache is made, and mounts the cache's directory itself. So the selector is part of the name
//! too, and a cache's content never depends on its base after it was made.
//!
//! Waiting (`sharing=locked`, or a shared cache that another step is still making) is done
//! here, on a process-wide [`Notify`] that every release wakes: the store only answers whether
//! an instance can be taken now ([`Store::acquire_cache_mount`]). Dropping the waiting future
//! cancels the wait; dropping it while a new cache is being seeded removes the new cache.
//!
//! Two mounts of the same cache in one exec share one instance (as BuildKit's per-exec mount
//! manager does): otherwise a locked cache mounted twice would wait for itself. An exec takes
//! its caches in the order of their names ([`cache_name`]), whatever the order of its mounts,
//! so two steps taking the same locked caches cannot each hold one the other waits for.
//!
//! The content of a cache is never part of a cache key: the exec's key covers the mount's
//! options and its input's key only ([`super::ExecOp`]). Nothing of a cache reaches a snapshot:
//! it is a bind mount, and the executor removes the mount point it had to create.
//!
//! Unlike BuildKit's, their contents can travel with an exported build cache
//! (`--cache-to …,cache-mounts=true`): each cache a step used is recorded in the build's session
//! under a portable name (its id and its base: `scratch`, or the content digest of the directory
//! it was seeded from), exported as a blob, and a new cache of that name in another state
//! directory is seeded from it (after its base) when a `--cache-from` cache holds one.

use std::path::Path;
use std::sync::Arc;

use fsops::fileop::{self, CopyOptions};
use llb::pb;
use store::{Acquired, CacheMount, CacheMountSpec, NewCacheMount, Sharing, Store};
use tokio::sync::Notify;

use super::OpFailure;
use crate::Ref;
use fsops::resolve::resolve_path;

/// Woken whenever a cache-mount instance is released or a new one is committed or abandoned.
static RELEASED: Notify = Notify::const_new();

/// A cache-mount instance held for one exec; dropping it releases the instance and wakes the
/// steps waiting for one.
pub(super) struct Held<'a> {
    mount: Option<CacheMount<'a>>,
    /// The cache it is an instance of: `(id, base)`.
    cache: (String, Option<String>),
}

impl Held<'_> {
    /// The instance's directory.
    fn path(&self) -> Option<&Path> {
        self.mount.as_ref().map(CacheMount::path)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Released before the wake-up, so that the woken steps find it free.
        drop(self.mount.take());
        RELEASED.notify_waiters();
    }
}

/// A new instance being seeded; dropping it without [`Reserved::commit`] removes it. Either
/// way the steps waiting for it are woken.
struct Reserved<'a>(Option<NewCacheMount<'a>>);

impl<'a> Reserved<'a> {
    fn path(&self) -> Option<&Path> {
        self.0.as_ref().map(NewCacheMount::path)
    }

    fn commit(mut self) -> Result<CacheMount<'a>, OpFailure> {
        let new = self
            .0
            .take()
            .ok_or_else(|| OpFailure::Invalid("cache mount committed twice".into()))?;
        Ok(new.commit()?)
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        drop(self.0.take());
        RELEASED.notify_waiters();
    }
}

/// Prepares the cache mount `mount` of an exec running `meta`: finds (or makes) the cache
/// instance, waiting when its sharing mode says so, and returns what the executor mounts and
/// the guard holding the instance (`None` when an instance already `held` by this exec is
/// reused).
pub(super) async fn prepare<'a, 'g>(
    store: &'a Arc<Store>,
    session: &super::Session,
    mount: &pb::Mount,
    inputs: &[Ref],
    excludes: &[Arc<Vec<String>>],
    meta: &pb::Meta,
    held: impl Iterator<Item = &'g Held<'a>>,
) -> Result<(executor::MountKind, Option<Held<'a>>), OpFailure>
where
    'a: 'g,
{
    if mount.output >= 0 {
        return Err(OpFailure::Invalid(format!(
            "cache mount {} cannot produce an output",
            mount.dest
        )));
    }
    let sharing = sharing(mount)?;
    let (id, base) = cache_name(mount, inputs)?;
    let input = mount_input(mount, inputs)?;
    let selector = selector(mount);
    let parent = match input {
        Some(Ref::Snapshot(s)) => Some(*s),
        _ => None,
    };
    // A cache with a base is a copy of the selected directory; one without is mounted at its
    // selector (normally its root).
    let mount_subpath = base.is_none() && selector != "/";
    let kind = |path: &Path| -> Result<executor::MountKind, OpFailure> {
        let source = if mount_subpath {
            resolve_path(path, &selector).map_err(|e| {
                OpFailure::Invalid(format!(
                    "failed to mount cache {id:?} at {}: {selector}: {e}",
                    mount.dest
                ))
            })?
        } else {
            path.to_path_buf()
        };
        Ok(executor::MountKind::Bind {
            source,
            readonly: mount.readonly,
        })
    };
    let cache = (id.clone(), base.clone());
    for other in held {
        if other.cache == cache
            && let Some(path) = other.path()
        {
            return Ok((kind(path)?, None));
        }
    }
    let portable = portable_base(store, input, &selector)?;
    let mut description = format!("cached mount {} from exec {}", mount.dest, meta.args.join(" "));
    if id != mount.dest {
        description.push_str(&format!(" with id {id:?}"));
    }
    let spec = CacheMountSpec {
        id: id.clone(),
        base: base.clone(),
        parent,
        description,
    };
    let instance = loop {
        let released = RELEASED.notified();
        tokio::pin!(released);
        // Registered before asking, so a release between the answer and the wait is not lost.
        released.as_mut().enable();
        match store.acquire_cache_mount(&spec, sharing)? {
            Acquired::Ready(instance) => break instance,
            Acquired::New(new) => {
                let reserved = Reserved(Some(new));
                if let Some(target) = reserved.path() {
                    let imported = portable.as_deref().and_then(|base| imported(session, &id, base));
                    let excludes = usize::try_from(mount.input)
                        .ok()
                        .and_then(|i| excludes.get(i))
                        .map_or(&[][..], |e| e.as_slice());
                    seed_new(store, input, &selector, excludes, imported, target).await?;
                }
                break reserved.commit()?;
            }
            Acquired::Busy => released.await,
        }
    };
    let held = Held {
        mount: Some(instance),
        cache,
    };
    if let (Some(base), Some(dir)) = (portable, held.path()) {
        let used = crate::remote::UsedCacheMount {
            id: id.clone(),
            base,
            dir: dir.to_path_buf(),
        };
        let mut list = session
            .cache_mounts_used
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !list.contains(&used) {
            list.push(used);
        }
    }
    let kind = match held.path() {
        Some(path) => kind(path)?,
        None => return Err(OpFailure::Invalid("cache mount released too early".into())),
    };
    Ok((kind, Some(held)))
}

/// The sharing mode of a cache mount.
fn sharing(mount: &pb::Mount) -> Result<Sharing, OpFailure> {
    let options = mount.cache_opt.clone().unwrap_or_default();
    match pb::CacheSharing::try_from(options.sharing) {
        Ok(pb::CacheSharing::Shared) => Ok(Sharing::Shared),
        Ok(pb::CacheSharing::Private) => Ok(Sharing::Private),
        Ok(pb::CacheSharing::Locked) => Ok(Sharing::Locked),
        Err(_) => Err(OpFailure::Invalid(format!(
            "cache mount {} has unknown sharing mode {}",
            mount.dest, options.sharing
        ))),
    }
}

/// Seeds a new cache's directory: a copy of the selected directory of its base (files of a
/// local source become 0:0, as when copied), then what an imported cache holds for it.
async fn seed_new(
    store: &Arc<Store>,
    input: Option<&Ref>,
    selector: &str,
    excludes: &[String],
    imported: Option<(Arc<crate::remote::Imported>, oci::Descriptor)>,
    target: &Path,
) -> Result<(), OpFailure> {
    match input {
        Some(Ref::Snapshot(s)) => {
            let view = store.view(*s)?;
            seed(view.path(), selector, excludes, None, target).await?;
        }
        Some(Ref::Local(dir)) => {
            seed(dir, selector, excludes, Some(super::file::CONTEXT_OWNER), target).await?
        }
        None | Some(Ref::Empty) => {}
        Some(Ref::Remote(_)) => return Err(OpFailure::NotDownloaded),
    }
    if let Some((source, blob)) = imported {
        seed_from_cache(store, &source, &blob, target).await?;
    }
    Ok(())
}

/// The base of a cache named portably, the same on every machine: `scratch`, or the content
/// digest of the selected directory of the snapshot it is seeded from; `None` for a base that is
/// a client directory (such caches are not exported).
fn portable_base(store: &Store, input: Option<&Ref>, selector: &str) -> Result<Option<String>, OpFailure> {
    match input {
        None | Some(Ref::Empty) => Ok(Some("scratch".into())),
        Some(Ref::Snapshot(s)) => {
            let options = CopyOptions {
                src: selector.to_string(),
                ..CopyOptions::default()
            };
            let digest = super::blocking(|| store.snapshot_content_digest(*s, &options))?;
            Ok(Some(format!("content {digest}")))
        }
        Some(Ref::Local(_)) => Ok(None),
        Some(Ref::Remote(_)) => Err(OpFailure::NotDownloaded),
    }
}

/// The contents of cache `id` on `base` in a cache the session imported, and where they are.
fn imported(
    session: &super::Session,
    id: &str,
    base: &str,
) -> Option<(Arc<crate::remote::Imported>, oci::Descriptor)> {
    session.remote_cache.iter().find_map(|source| {
        source
            .cache_mounts
            .iter()
            .find(|c| c.id == id && c.base == base)
            .map(|c| (source.clone(), c.descriptor.clone()))
    })
}

/// Seeds a new cache with the contents an imported cache holds for it: the blob fetched (and
/// verified) into the content store, then unpacked into the cache's directory.
async fn seed_from_cache(
    store: &Arc<Store>,
    source: &crate::remote::Imported,
    blob: &oci::Descriptor,
    target: &Path,
) -> Result<(), OpFailure> {
    if !store.content().contains(&blob.digest) {
        source.blobs.fetch(store, blob).await.map_err(OpFailure::Pull)?;
    }
    let (store, digest, target) = (store.clone(), blob.digest.clone(), target.to_path_buf());
    super::blocking(move || {
        std::fs::create_dir_all(&target).map_err(|e| {
            OpFailure::Invalid(format!(
                "failed to create the cache directory {}: {e}",
                target.display()
            ))
        })?;
        let file = store.content().open_blob(&digest)?;
        let gzip = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        store::apply_layer(gzip, &target).map_err(|e| {
            OpFailure::Invalid(format!(
                "failed to seed a cache mount from cache blob {digest}: {}",
                oci::error_chain(&e)
            ))
        })?;
        Ok(())
    })
}

/// The cache that the cache mount `mount` names: its id and, when it has an input, that input
/// and the selected path in it (see the module docs). Steps taking several caches take them in
/// the order of these names, so that two steps never each hold one the other waits for.
pub(super) fn cache_name(mount: &pb::Mount, inputs: &[Ref]) -> Result<(String, Option<String>), OpFailure> {
    let options = mount.cache_opt.as_ref();
    let id = match options {
        Some(o) if !o.id.is_empty() => o.id.clone(),
        _ => mount.dest.clone(),
    };
    let selector = selector(mount);
    let base = match mount_input(mount, inputs)? {
        None | Some(Ref::Empty) => None,
        Some(Ref::Snapshot(s)) => Some(format!("snapshot {s} {selector}")),
        Some(Ref::Local(dir)) => Some(format!("local {} {selector}", dir.display())),
        Some(Ref::Remote(_)) => return Err(OpFailure::NotDownloaded),
    };
    Ok((id, base))
}

fn mount_input<'r>(mount: &pb::Mount, inputs: &'r [Ref]) -> Result<Option<&'r Ref>, OpFailure> {
    match usize::try_from(mount.input) {
        Err(_) => Ok(None),
        Ok(i) => inputs
            .get(i)
            .map(Some)
            .ok_or_else(|| OpFailure::Invalid(format!("mount {} names missing input {i}", mount.dest))),
    }
}

fn selector(mount: &pb::Mount) -> String {
    if mount.selector.is_empty() {
        "/".to_string()
    } else {
        mount.selector.clone()
    }
}

/// Makes `target` (which does not exist yet) a copy of the directory `selector` of the tree
/// `root`: its mode, owner (or `owner` for everything), times and everything below it. The
/// selector is resolved inside the tree (symlinks cannot lead out of it).
async fn seed(
    root: &Path,
    selector: &str,
    excludes: &[String],
    owner: Option<fileop::Ownership>,
    target: &Path,
) -> Result<(), OpFailure> {
    let failed = |e: std::io::Error| {
        OpFailure::Invalid(format!(
            "failed to seed cache mount from {selector}: {}",
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            }
        ))
    };
    let source = resolve_path(root, selector).map_err(failed)?;
    if !std::fs::symlink_metadata(&source).map_err(failed)?.is_dir() {
        return Err(OpFailure::Invalid(format!(
            "failed to seed cache mount from {selector}: not a directory"
        )));
    }
    let rel = match source.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => "/".into(),
    };
    let (Some(dest_root), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(OpFailure::Invalid(format!(
            "cache mount directory {} has no parent",
            target.display()
        )));
    };
    let options = CopyOptions {
        src: rel,
        dest: format!("/{}", name.to_string_lossy()),
        context_excludes: excludes.to_vec(),
        source_owner: owner,
        ..CopyOptions::default()
    };
    let (from, to) = (root.to_path_buf(), dest_root.to_path_buf());
    tokio::task::spawn_blocking(move || fileop::copy(&from, &to, &options))
        .await
        .map_err(|e| OpFailure::Invalid(format!("internal task failed: {e}")))??;
    Ok(())
}
