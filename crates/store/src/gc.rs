//! Disk accounting and garbage collection: what the state directory holds, how big it is, and
//! removing what is no longer wanted (`kiln du`, `kiln prune`, the automatic GC after builds).
//!
//! The model follows BuildKit's cache manager, on kiln's store:
//! - **Usage records** ([`UsageRecord`]): one per committed snapshot. Its kind is `layer` when
//!   the layer index points at it (a pulled image layer) and `regular` otherwise (a build
//!   result). Its size is the apparent size of its layer directory (recorded at commit, see
//!   [`dir_size`]) plus the size of its layer blob, when it has one; a blob recorded by several
//!   snapshots counts once, for the lowest id. It is *shared* when it is the parent of another
//!   snapshot or more than one root (below) reaches it, *exclusive* otherwise; *in use* when
//!   something holds it ([`Store::hold`]) or a snapshot above it.
//! - **Cache mounts** ([`crate::cachemount`]) are records too, of kind `exec.cachemount`
//!   (BuildKit's name): their size is the apparent size of their directory (measured again
//!   after each use), they are in use while a step holds them, and they sit on the snapshot
//!   they were seeded from (if any) like a child, so that snapshot stays while they do. They
//!   are never shared and never roots. Pruning removes them like build results (also without
//!   `all`, as BuildKit's prune does), unless they are in use.
//! - **Build logs** ([`crate::logs`]) are records too, of kind `build.log`, one per log file,
//!   named by their build id: their size is the file's, they were last used when last written,
//!   and they are in use while being written and when they are the newest (the log `kiln logs`
//!   shows). They are never shared and stand alone (no parent, no child). Pruning removes them
//!   only with [`PruneOptions::all`], a `type` filter, or `keep_storage` (so the automatic GC
//!   counts them and removes the least recently written first, among build results): a plain
//!   prune keeps them, as BuildKit keeps build history apart from its cache.
//! - **Roots** keep snapshots alive: cache records (cache key → output snapshots) and
//!   layer-index entries (chain ID → snapshot). A snapshot is alive while a root refers to it or
//!   a child snapshot sits on it. Records pointing at snapshots that are gone are stale: every
//!   prune removes them.
//! - **Other content**: blobs that are not the layer blob of a snapshot (image manifests and
//!   configs, HTTP downloads, exported manifests, converted layers). After a prune, a blob is kept
//!   only while a remaining snapshot records it as its layer blob, or it is the manifest (or the
//!   config of a manifest) of an image all of whose layer blobs are kept.
//! - **Last used**: a cache hit ([`Store::cache_get`]) or a layer reuse
//!   ([`Store::layer_snapshot`]) records the time and counts a use, on the snapshots and the cache
//!   record. A snapshot never returned by a lookup counts as used when it was created.
//!
//! **Pruning** ([`Store::prune`]) removes leaf snapshots (no child left), BuildKit's way:
//! removing a leaf removes the roots referring to it, and any snapshot that was kept alive only
//! by those roots or by the removed leaf goes with it (so a parent goes once its last child
//! does, unless a root of its own keeps it). Candidates must pass the options: without
//! [`PruneOptions::all`] (and without a `type` filter) pulled image layers are kept, like
//! BuildKit keeps records shared with images; `keep_duration` and the `until` filter keep what
//! was used within that time; filters must all match. With `keep_storage`, candidates are
//! removed one at a time, least recently used first (then least often used, then oldest id),
//! until the total would be at most that size; nothing is removed when it already is. A held
//! snapshot (and everything below it) is never removed.
//!
//! **Crash safety**: the records go first, in one database transaction (cache records,
//! snapshot records, layer-index entries), then the snapshot directories (and log files, which
//! no record names), then the blobs. A
//! crash after the transaction leaves directories without records, which [`Store::open`]
//! removes, and unreferenced blobs, which the next prune removes; the index never points at a
//! missing snapshot and no remaining snapshot ever loses its layer blob. Fault points:
//! `gc.records-removed`, `gc.snapshots-removed`.
//!
//! **Concurrency rule**: pruning must not run while the same process builds (an uncommitted
//! snapshot's parent, or a mounted snapshot, is not visible here). The store lock keeps other
//! processes out; the engine runs GC only between builds. [`Store::hold`] pins snapshots for
//! callers that need them kept across a prune.
//!
//! Not done here: deciding *when* to collect (the engine's job), free-space based policies
//! (BuildKit's `minFreeSpace`), and the executor's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use oci::{Digest, ImageManifest, media_type};

use crate::db::SnapshotInfo;
use crate::{Error, SnapshotId, Store, fault, now_unix, unix_seconds};

/// Blobs larger than this are never read to see whether they are image manifests (registries
/// refuse manifests above 4 MiB too).
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// What a usage record is, for accounting and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    /// A build result (a step's output, a source such as git or HTTP).
    Regular,
    /// A pulled image layer (the layer index points at it).
    Layer,
    /// A cache mount (`RUN --mount=type=cache`), not a snapshot.
    CacheMount,
    /// A stored build log ([`crate::logs`]), not a snapshot.
    Log,
}

impl RecordKind {
    /// The name used by filters and output: `regular`, `layer`, `exec.cachemount` or
    /// `build.log`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Regular => "regular",
            RecordKind::Layer => "layer",
            RecordKind::CacheMount => "exec.cachemount",
            RecordKind::Log => "build.log",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecordKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "regular" => Ok(RecordKind::Regular),
            "layer" => Ok(RecordKind::Layer),
            "exec.cachemount" => Ok(RecordKind::CacheMount),
            "build.log" => Ok(RecordKind::Log),
            other => Err(format!(
                "unknown record type {other:?} (expected regular, layer, exec.cachemount or build.log)"
            )),
        }
    }
}

/// What a usage record is named by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordId {
    /// A snapshot, or a cache mount (their ids come from one counter).
    Snapshot(SnapshotId),
    /// A build log, by build id.
    Log(String),
}

impl RecordId {
    /// The snapshot or cache mount, if it is one.
    pub fn snapshot(&self) -> Option<SnapshotId> {
        match self {
            RecordId::Snapshot(id) => Some(*id),
            RecordId::Log(_) => None,
        }
    }
}

impl From<SnapshotId> for RecordId {
    fn from(id: SnapshotId) -> RecordId {
        RecordId::Snapshot(id)
    }
}

impl PartialEq<SnapshotId> for RecordId {
    fn eq(&self, other: &SnapshotId) -> bool {
        self.snapshot() == Some(*other)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordId::Snapshot(id) => id.fmt(f),
            RecordId::Log(id) => f.write_str(id),
        }
    }
}

/// What one snapshot, cache mount or build log costs and how it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// The snapshot, the cache mount's record id, or the log's build id.
    pub id: RecordId,
    /// The snapshot it sits on (for a cache mount: the one it was seeded from).
    pub parent: Option<SnapshotId>,
    /// `layer` (pulled), `regular` (built), `exec.cachemount` or `build.log`.
    pub kind: RecordKind,
    /// What made it.
    pub description: String,
    /// Bytes: its layer directory plus the layer blob counted for it ([`UsageRecord::blob`]),
    /// the cache mount's directory, or the log file.
    pub size: u64,
    /// When it was committed (Unix seconds).
    pub created: i64,
    /// When a lookup last returned it, or when it was created if never (Unix seconds).
    pub last_used: i64,
    /// How many lookups returned it.
    pub usage_count: u64,
    /// Whether something holds it or a snapshot above it ([`Store::hold`]), a step uses the
    /// cache mount, or the log is being written or is the newest; never removed then.
    pub in_use: bool,
    /// Whether it is a parent of another snapshot or reachable from more than one root.
    pub shared: bool,
    /// The layer blob counted in [`UsageRecord::size`], if any.
    pub blob: Option<Digest>,
}

impl UsageRecord {
    /// Whether a prune could remove it (it is not in use).
    pub fn reclaimable(&self) -> bool {
        !self.in_use
    }
}

/// Blobs that are not the layer blob of any snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtherContent {
    /// How many.
    pub blobs: u64,
    /// Their total size in bytes.
    pub size: u64,
}

/// What the state directory holds ([`Store::disk_usage`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// The records that matched the filters, largest first (then by id).
    pub records: Vec<UsageRecord>,
    /// Blobs that are not layer blobs of a snapshot (counted in the totals only without
    /// filters).
    pub other: OtherContent,
    /// Bytes of the records plus other content.
    pub total: u64,
    /// Bytes not in use (what `prune --all` could free).
    pub reclaimable: u64,
    /// Bytes of shared records.
    pub shared: u64,
    /// Bytes of exclusive records.
    pub private: u64,
}

/// How a `description` filter compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextMatch {
    /// `description=TEXT` or `description==TEXT`: exactly.
    Equal,
    /// `description!=TEXT`: anything else.
    NotEqual,
    /// `description~=TEXT`: contains `TEXT` (a substring, not a regular expression).
    Contains,
}

/// A condition on usage records, parsed from `KEY=VALUE` (also `KEY==VALUE`, `KEY!=VALUE`, and
/// `KEY~=VALUE` for descriptions). All filters given must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `type=regular|layer|exec.cachemount|build.log` (or `!=`).
    Type {
        /// The kind.
        kind: RecordKind,
        /// `true` for `=`, `false` for `!=`.
        equal: bool,
    },
    /// `id=N` or `id=BUILD-ID` (or `!=`).
    Id {
        /// The record.
        id: RecordId,
        /// `true` for `=`, `false` for `!=`.
        equal: bool,
    },
    /// `description=TEXT`, `description!=TEXT`, `description~=TEXT`.
    Description {
        /// The text.
        text: String,
        /// How it is compared.
        how: TextMatch,
    },
    /// `until=DURATION` (docker's name; `unused-for` is accepted too): not used within that
    /// long.
    Until(Duration),
}

impl Filter {
    /// Whether `record` passes this filter at time `now` (Unix seconds).
    pub fn matches(&self, record: &UsageRecord, now: i64) -> bool {
        match self {
            Filter::Type { kind, equal } => (record.kind == *kind) == *equal,
            Filter::Id { id, equal } => (&record.id == id) == *equal,
            Filter::Description { text, how } => match how {
                TextMatch::Equal => record.description == *text,
                TextMatch::NotEqual => record.description != *text,
                TextMatch::Contains => record.description.contains(text.as_str()),
            },
            Filter::Until(age) => record.last_used <= cutoff(now, *age),
        }
    }
}

impl FromStr for Filter {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| ParseError::Filter {
            filter: text.to_string(),
            reason,
        };
        let eq = text
            .find('=')
            .ok_or_else(|| invalid("expected KEY=VALUE".into()))?;
        let (key, op, value) = match text[..eq].chars().last() {
            Some('!') => (&text[..eq - 1], "!=", &text[eq + 1..]),
            Some('~') => (&text[..eq - 1], "~=", &text[eq + 1..]),
            _ if text[eq + 1..].starts_with('=') => (&text[..eq], "==", &text[eq + 2..]),
            _ => (&text[..eq], "=", &text[eq + 1..]),
        };
        if key.is_empty() || value.is_empty() {
            return Err(invalid("expected KEY=VALUE".into()));
        }
        let equality = |what: &str| match op {
            "=" | "==" => Ok(true),
            "!=" => Ok(false),
            _ => Err(invalid(format!("{what} takes =, == or !="))),
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => Ok(Filter::Type {
                kind: value.parse().map_err(invalid)?,
                equal: equality("type")?,
            }),
            "id" => Ok(Filter::Id {
                id: match value.parse() {
                    Ok(n) => RecordId::Snapshot(SnapshotId(n)),
                    Err(_) if crate::logs::valid_id(value) => RecordId::Log(value.to_string()),
                    Err(_) => {
                        return Err(invalid(format!(
                            "{value:?} is not a record id (a number, or a build id)"
                        )));
                    }
                },
                equal: equality("id")?,
            }),
            "description" => Ok(Filter::Description {
                text: value.to_string(),
                how: match op {
                    "=" | "==" => TextMatch::Equal,
                    "!=" => TextMatch::NotEqual,
                    _ => TextMatch::Contains,
                },
            }),
            "until" | "unused-for" => {
                if !equality(key)? {
                    return Err(invalid(format!("{key} takes = only")));
                }
                Ok(Filter::Until(parse_duration(value)?))
            }
            other => Err(invalid(format!(
                "unknown key {other:?} (supported: type, id, description, until)"
            ))),
        }
    }
}

impl fmt::Display for Filter {
    /// The filter as `KEY=VALUE` text that parses back to it (how a client sends it to a daemon).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = |equal: bool| if equal { "=" } else { "!=" };
        match self {
            Filter::Type { kind, equal } => write!(f, "type{}{kind}", op(*equal)),
            Filter::Id { id, equal } => write!(f, "id{}{id}", op(*equal)),
            Filter::Description { text, how } => {
                let op = match how {
                    TextMatch::Equal => "==",
                    TextMatch::NotEqual => "!=",
                    TextMatch::Contains => "~=",
                };
                write!(f, "description{op}{text}")
            }
            Filter::Until(d) => write!(
                f,
                "until={}",
                gocompat::duration::format(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            ),
        }
    }
}

/// What to prune ([`Store::prune`]). The default removes every regular record and cache mount
/// not in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Include pulled image layers and build logs (and, without other conditions, cache records
    /// that hold no snapshot at all).
    pub all: bool,
    /// Keep what was used within this long.
    pub keep_duration: Option<Duration>,
    /// Remove least recently used records only until the total is at most this many bytes
    /// (build logs are candidates then, even without `all`).
    pub keep_storage: Option<u64>,
    /// Conditions every removed record must meet.
    pub filters: Vec<Filter>,
}

/// What a prune removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The removed records, in the order they were chosen, as they were before removal.
    pub removed: Vec<UsageRecord>,
    /// Blob files removed (layer blobs of removed records and other content).
    pub blobs_removed: u64,
    /// Their total size in bytes.
    pub blob_bytes: u64,
    /// The removed blobs that were not counted in a removed record.
    pub other: OtherContent,
    /// Bytes freed: layer directories plus blobs.
    pub reclaimed: u64,
}

impl PruneReport {
    fn absorb(&mut self, other: PruneReport) {
        self.removed.extend(other.removed);
        self.blobs_removed += other.blobs_removed;
        self.blob_bytes += other.blob_bytes;
        self.other.blobs += other.other.blobs;
        self.other.size += other.other.size;
        self.reclaimed += other.reclaimed;
    }
}

/// Errors parsing sizes, durations and filters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Not a size.
    #[error("invalid size {0:?}: expected bytes or a number with a unit, such as 512MiB, 2GB or 1.5g")]
    Size(String),
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] gocompat::duration::DurationError),
    /// A duration below zero.
    #[error("invalid duration {0:?}: must not be negative")]
    NegativeDuration(String),
    /// Not a filter.
    #[error("invalid filter {filter:?}: {reason}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a size the way docker parses `--keep-storage` ([`gocompat::units::ram_in_bytes`]).
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    gocompat::units::ram_in_bytes(text).ok_or_else(|| ParseError::Size(text.to_string()))
}

/// Parses a duration the way buildx reads `--keep-duration` and the `until` filter: Go's
/// `time.ParseDuration` ([`gocompat::duration::parse`]: `24h`, `90m`, `1h30m`, `1.5h`; no day
/// unit). Negative durations are refused: nothing was used in the future.
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    let nanos = gocompat::duration::parse(text)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| ParseError::NegativeDuration(text.to_string()))
}

/// The default limit of automatic garbage collection for a state directory at `root`, like
/// BuildKit's default reserved space: 10% of the size of the filesystem holding it, rounded up
/// to a whole gigabyte (10⁹ bytes), at most 10 GB; 2 GB when the filesystem cannot be queried.
pub fn default_gc_limit(root: &Path) -> u64 {
    const GB: u64 = 1_000_000_000;
    match rustix::fs::statvfs(root) {
        Ok(fs) => {
            let size = fs.f_blocks.saturating_mul(fs.f_frsize);
            (size / 10).div_ceil(GB).clamp(1, 10) * GB
        }
        Err(_) => 2 * GB,
    }
}

/// The apparent size in bytes of everything at and below `path` (as `du --apparent-size
/// --bytes`): file lengths, symlink target lengths and directory sizes as the filesystem reports
/// them, each hard-linked inode counted once. Symlinks are not followed.
///
/// Apparent size rather than allocated blocks, because it does not depend on the filesystem
/// and is what a layer tar of the directory roughly weighs.
pub fn dir_size(path: &Path) -> io::Result<u64> {
    let top = fs::symlink_metadata(path)?;
    let mut total = top.len();
    let mut linked = BTreeSet::new();
    let mut pending = Vec::new();
    if top.is_dir() {
        pending.push(path.to_path_buf());
    }
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            // `DirEntry::metadata` does not follow symlinks.
            let meta = entry.metadata()?;
            if !meta.is_dir() && meta.nlink() > 1 && !linked.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.len();
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Snapshots held by [`Hold`]s, with counts.
#[derive(Debug, Default)]
pub(crate) struct Holds(Mutex<BTreeMap<SnapshotId, usize>>);

impl Holds {
    fn set(&self) -> BTreeSet<SnapshotId> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

/// Keeps a snapshot (and its parents) from being pruned while it lives ([`Store::hold`]).
#[derive(Debug)]
pub struct Hold<'a> {
    store: &'a Store,
    id: SnapshotId,
}

impl Hold<'_> {
    /// The held snapshot.
    pub fn id(&self) -> SnapshotId {
        self.id
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut holds = self.store.holds.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = holds.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                holds.remove(&self.id);
            }
        }
    }
}

/// A blob file.
#[derive(Clone, Copy, Debug)]
struct BlobFile {
    size: u64,
    /// Modification time (Unix seconds): when it was written.
    modified: i64,
}

/// An image manifest found in the content store: its config and layer blobs.
#[derive(Debug)]
struct ManifestRefs {
    config: Digest,
    layers: Vec<Digest>,
}

/// Everything known about the state directory, loaded at once.
#[derive(Debug)]
struct Model {
    now: i64,
    snapshots: BTreeMap<SnapshotId, SnapshotInfo>,
    /// Apparent size of each snapshot's layer directory.
    dir_sizes: BTreeMap<SnapshotId, u64>,
    /// Cache records whose snapshots all exist: key → their snapshots.
    cache: BTreeMap<String, BTreeSet<SnapshotId>>,
    /// Cache records that hold no snapshot (only empty filesystems), with their last use.
    empty_cache: BTreeMap<String, i64>,
    /// Cache records or layer-index entries pointing at missing snapshots.
    stale_cache: Vec<String>,
    stale_layers: Vec<String>,
    layers: BTreeMap<String, SnapshotId>,
    blobs: BTreeMap<Digest, BlobFile>,
    /// Filled only for pruning (it reads blobs).
    manifests: BTreeMap<Digest, ManifestRefs>,
    /// Held snapshots and cache mounts, and everything below them.
    in_use: BTreeSet<SnapshotId>,
    /// Cache-mount records by id (sizes are in `dir_sizes`).
    cache_mounts: BTreeMap<SnapshotId, crate::CacheMountInfo>,
    /// Build logs, newest first.
    logs: Vec<crate::logs::LogInfo>,
    /// Logs this process is writing.
    writing_logs: BTreeSet<String>,
}

/// What is in use: the cache mounts steps hold and held snapshots, and every snapshot below
/// either.
fn in_use(
    store: &Store,
    busy_mounts: Vec<SnapshotId>,
    cache_mounts: &BTreeMap<SnapshotId, crate::CacheMountInfo>,
    snapshots: &BTreeMap<SnapshotId, SnapshotInfo>,
) -> BTreeSet<SnapshotId> {
    let mut in_use = BTreeSet::new();
    let below = |id: SnapshotId, in_use: &mut BTreeSet<SnapshotId>| {
        let mut next = Some(id);
        while let Some(id) = next {
            if !in_use.insert(id) {
                break;
            }
            next = snapshots.get(&id).and_then(|s| s.parent);
        }
    };
    for id in busy_mounts {
        if in_use.insert(id)
            && let Some(parent) = cache_mounts.get(&id).and_then(|m| m.parent)
        {
            below(parent, &mut in_use);
        }
    }
    for id in store.holds.set() {
        below(id, &mut in_use);
    }
    in_use
}

/// The usage records of a [`Model`].
struct Records {
    /// Snapshots and cache mounts.
    snapshots: BTreeMap<SnapshotId, UsageRecord>,
    /// Build logs, by build id.
    logs: BTreeMap<String, UsageRecord>,
}

impl Records {
    fn get(&self, id: &RecordId) -> Option<&UsageRecord> {
        match id {
            RecordId::Snapshot(id) => self.snapshots.get(id),
            RecordId::Log(id) => self.logs.get(id),
        }
    }
}

impl Model {
    fn load(store: &Store, with_manifests: bool) -> Result<Model, Error> {
        let tables = store.db.gc_tables()?;
        let snapshots: BTreeMap<SnapshotId, SnapshotInfo> =
            tables.snapshots.into_iter().map(|s| (s.id, s)).collect();
        let mut dir_sizes = BTreeMap::new();
        for (id, info) in &snapshots {
            let size = match info.size {
                Some(size) => size,
                None => match dir_size(&store.layer_dir(*id)) {
                    Ok(size) => {
                        // Measured once for snapshots committed before sizes were recorded.
                        store.db.update_snapshot(*id, |i| i.size = Some(size))?;
                        size
                    }
                    // A missing directory is damage for `kiln debug check`; it takes no space.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(source) => {
                        return Err(Error::Io {
                            action: "measure snapshot",
                            path: store.layer_dir(*id),
                            source,
                        });
                    }
                },
            };
            dir_sizes.insert(*id, size);
        }
        let mut cache = BTreeMap::new();
        let mut empty_cache = BTreeMap::new();
        let mut stale_cache = Vec::new();
        for (key, record) in tables.cache {
            let ids: BTreeSet<SnapshotId> = record.outputs.iter().flatten().copied().collect();
            if ids.iter().any(|id| !snapshots.contains_key(id)) {
                stale_cache.push(key);
            } else if ids.is_empty() {
                empty_cache.insert(key, record.last_used.unwrap_or(record.created));
            } else {
                cache.insert(key, ids);
            }
        }
        let mut layers = BTreeMap::new();
        let mut stale_layers = Vec::new();
        for (chain, id) in tables.layers {
            if snapshots.contains_key(&id) {
                layers.insert(chain, id);
            } else {
                stale_layers.push(chain);
            }
        }
        let blobs = list_blobs(&blob_dir(store))?;
        let mut manifests = BTreeMap::new();
        if with_manifests {
            let layer_blobs: BTreeSet<&Digest> = snapshots
                .values()
                .filter_map(|s| s.blob.as_ref().map(|b| &b.descriptor.digest))
                .collect();
            for (digest, file) in &blobs {
                if file.size <= MAX_MANIFEST_SIZE
                    && !layer_blobs.contains(digest)
                    && let Some(refs) = read_manifest(&store.content().path(digest))
                {
                    manifests.insert(digest.clone(), refs);
                }
            }
        }
        // Cache mounts: measured when a use may have changed them. The size of one in use is
        // not recorded, since it may still change.
        let busy_mounts = store.cache_mount_uses.ids();
        let mut cache_mounts = BTreeMap::new();
        for (id, json) in store.db.cache_mount_records()? {
            let info = crate::cachemount::decode(id, &json).map_err(|source| Error::Decode {
                what: format!("cache mount record {id}"),
                source,
            })?;
            let size = match info.size {
                Some(size) => size,
                None => match dir_size(&store.cache_mount_dir(info.id)) {
                    Ok(size) => {
                        if !busy_mounts.contains(&info.id) {
                            store.db.set_cache_mount_size(info.id, size)?;
                        }
                        size
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                    Err(source) => {
                        return Err(Error::Io {
                            action: "measure cache mount",
                            path: store.cache_mount_dir(info.id),
                            source,
                        });
                    }
                },
            };
            dir_sizes.insert(info.id, size);
            cache_mounts.insert(info.id, info);
        }
        let in_use = in_use(store, busy_mounts, &cache_mounts, &snapshots);
        Ok(Model {
            now: now_unix(),
            snapshots,
            dir_sizes,
            cache,
            empty_cache,
            stale_cache,
            stale_layers,
            layers,
            blobs,
            manifests,
            in_use,
            cache_mounts,
            logs: crate::logs::list(store.root())?,
            writing_logs: store.writing_logs.ids(),
        })
    }

    /// The snapshot `id` sits on: a snapshot's parent, or the base of a cache mount.
    fn parent_of(&self, id: SnapshotId) -> Option<SnapshotId> {
        match self.snapshots.get(&id) {
            Some(info) => info.parent,
            None => self.cache_mounts.get(&id).and_then(|m| m.parent),
        }
    }

    /// The usage record of every snapshot, cache mount and build log.
    fn records(&self) -> Records {
        let newest = self.logs.first().map(|log| &log.id);
        let logs = self
            .logs
            .iter()
            .map(|log| {
                let record = UsageRecord {
                    id: RecordId::Log(log.id.clone()),
                    parent: None,
                    kind: RecordKind::Log,
                    description: "build log".into(),
                    size: log.size,
                    created: unix_seconds(log.created),
                    last_used: unix_seconds(log.modified),
                    usage_count: 0,
                    in_use: Some(&log.id) == newest || self.writing_logs.contains(&log.id),
                    shared: false,
                    blob: None,
                };
                (log.id.clone(), record)
            })
            .collect();
        Records {
            snapshots: self.snapshot_records(),
            logs,
        }
    }

    /// The usage record of every snapshot and cache mount.
    fn snapshot_records(&self) -> BTreeMap<SnapshotId, UsageRecord> {
        let mut has_child = BTreeSet::new();
        let parents = self.snapshots.values().map(|s| s.parent);
        for parent in parents
            .chain(self.cache_mounts.values().map(|m| m.parent))
            .flatten()
        {
            has_child.insert(parent);
        }
        // How many roots reach each snapshot (through its children or directly).
        let mut reach: BTreeMap<SnapshotId, usize> = BTreeMap::new();
        let roots = self
            .cache
            .values()
            .map(|ids| ids.iter().copied().collect::<Vec<_>>())
            .chain(self.layers.values().map(|id| vec![*id]));
        for outputs in roots {
            let mut reached = BTreeSet::new();
            for id in outputs {
                let mut next = Some(id);
                while let Some(id) = next {
                    if !reached.insert(id) {
                        break;
                    }
                    next = self.snapshots.get(&id).and_then(|s| s.parent);
                }
            }
            for id in reached {
                *reach.entry(id).or_default() += 1;
            }
        }
        let layer_ids: BTreeSet<SnapshotId> = self.layers.values().copied().collect();
        let mut counted_blobs = BTreeSet::new();
        let mut records = BTreeMap::new();
        for (id, info) in &self.snapshots {
            let blob = info
                .blob
                .as_ref()
                .map(|b| &b.descriptor.digest)
                .filter(|d| self.blobs.contains_key(*d) && counted_blobs.insert((*d).clone()))
                .cloned();
            let blob_size = blob
                .as_ref()
                .and_then(|d| self.blobs.get(d))
                .map_or(0, |b| b.size);
            records.insert(
                *id,
                UsageRecord {
                    id: RecordId::Snapshot(*id),
                    parent: info.parent,
                    kind: if layer_ids.contains(id) {
                        RecordKind::Layer
                    } else {
                        RecordKind::Regular
                    },
                    description: info.description.clone(),
                    size: self.dir_sizes.get(id).copied().unwrap_or(0) + blob_size,
                    created: info.created,
                    last_used: info.last_used.unwrap_or(info.created),
                    usage_count: info.usage_count,
                    in_use: self.in_use.contains(id),
                    shared: has_child.contains(id) || reach.get(id).copied().unwrap_or(0) > 1,
                    blob,
                },
            );
        }
        for (id, info) in &self.cache_mounts {
            records.insert(
                *id,
                UsageRecord {
                    id: RecordId::Snapshot(*id),
                    parent: info.parent,
                    kind: RecordKind::CacheMount,
                    description: info.description.clone(),
                    size: self.dir_sizes.get(id).copied().unwrap_or(0),
                    created: info.created,
                    last_used: info.last_used.unwrap_or(info.created),
                    usage_count: info.usage_count,
                    in_use: self.in_use.contains(id),
                    shared: false,
                    blob: None,
                },
            );
        }
        records
    }
}

fn blob_dir(store: &Store) -> PathBuf {
    store.root().join("blobs").join("sha256")
}

/// The blob files of the content store. Files whose names are not digests are not kiln's and
/// are left out (and so never removed).
fn list_blobs(dir: &Path) -> Result<BTreeMap<Digest, BlobFile>, Error> {
    let io_error = |source| Error::Io {
        action: "list blobs in",
        path: dir.to_path_buf(),
        source,
    };
    let mut blobs = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            continue;
        };
        let meta = entry.metadata().map_err(|source| Error::Io {
            action: "stat blob",
            path: entry.path(),
            source,
        })?;
        if meta.is_file() {
            blobs.insert(
                digest,
                BlobFile {
                    size: meta.len(),
                    modified: meta.mtime(),
                },
            );
        }
    }
    Ok(blobs)
}

/// The config and layers of the blob at `path` if it is a single-platform image manifest.
fn read_manifest(path: &Path) -> Option<ManifestRefs> {
    let bytes = fs::read(path).ok()?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes).ok()?;
    if manifest.schema_version != 2
        || manifest
            .media_type
            .as_deref()
            .is_some_and(|m| !media_type::is_manifest(m))
    {
        return None;
    }
    Some(ManifestRefs {
        config: manifest.config.digest,
        layers: manifest.layers.into_iter().map(|l| l.digest).collect(),
    })
}

/// The point in time (Unix seconds) `age` before `now`.
fn cutoff(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX))
}

/// A prune being planned: what is still alive after the removals chosen so far.
struct Plan<'m> {
    model: &'m Model,
    records: &'m Records,
    options: &'m PruneOptions,
    alive: BTreeSet<SnapshotId>,
    /// Build logs not removed (yet).
    logs_alive: BTreeSet<String>,
    children: BTreeMap<SnapshotId, BTreeSet<SnapshotId>>,
    cache: BTreeMap<String, BTreeSet<SnapshotId>>,
    layers: BTreeMap<String, SnapshotId>,
    /// Snapshot → keys of live cache records and chains of live layer entries referring to it.
    cache_refs: BTreeMap<SnapshotId, BTreeSet<String>>,
    layer_refs: BTreeMap<SnapshotId, BTreeSet<String>>,
    /// What was chosen, in order.
    removed: Vec<RecordId>,
    removed_cache: Vec<String>,
    removed_layers: Vec<String>,
}

impl<'m> Plan<'m> {
    fn new(model: &'m Model, records: &'m Records, options: &'m PruneOptions) -> Plan<'m> {
        let mut children: BTreeMap<SnapshotId, BTreeSet<SnapshotId>> = BTreeMap::new();
        for info in model.snapshots.values() {
            if let Some(parent) = info.parent {
                children.entry(parent).or_default().insert(info.id);
            }
        }
        // A cache mount keeps the snapshot it was seeded from like a child does.
        for info in model.cache_mounts.values() {
            if let Some(parent) = info.parent {
                children.entry(parent).or_default().insert(info.id);
            }
        }
        let mut cache_refs: BTreeMap<SnapshotId, BTreeSet<String>> = BTreeMap::new();
        for (key, ids) in &model.cache {
            for id in ids {
                cache_refs.entry(*id).or_default().insert(key.clone());
            }
        }
        let mut layer_refs: BTreeMap<SnapshotId, BTreeSet<String>> = BTreeMap::new();
        for (chain, id) in &model.layers {
            layer_refs.entry(*id).or_default().insert(chain.clone());
        }
        Plan {
            model,
            records,
            options,
            alive: model
                .snapshots
                .keys()
                .chain(model.cache_mounts.keys())
                .copied()
                .collect(),
            logs_alive: records.logs.keys().cloned().collect(),
            children,
            cache: model.cache.clone(),
            layers: model.layers.clone(),
            cache_refs,
            layer_refs,
            removed: Vec::new(),
            removed_cache: model.stale_cache.clone(),
            removed_layers: model.stale_layers.clone(),
        }
    }

    fn is_leaf(&self, id: SnapshotId) -> bool {
        self.children.get(&id).is_none_or(BTreeSet::is_empty)
    }

    fn is_rooted(&self, id: SnapshotId) -> bool {
        self.cache_refs.get(&id).is_some_and(|k| !k.is_empty())
            || self.layer_refs.get(&id).is_some_and(|c| !c.is_empty())
    }

    /// Whether the options allow removing `id` (whether it is a leaf aside).
    fn eligible(&self, id: &RecordId) -> bool {
        let Some(record) = self.records.get(id) else {
            return false;
        };
        if record.in_use {
            return false;
        }
        let typed = self
            .options
            .filters
            .iter()
            .any(|f| matches!(f, Filter::Type { .. }));
        let chosen = self.options.all || typed;
        match record.kind {
            RecordKind::Layer if !chosen => return false,
            RecordKind::Log if !chosen && self.options.keep_storage.is_none() => return false,
            _ => {}
        }
        if let Some(age) = self.options.keep_duration
            && record.last_used > cutoff(self.model.now, age)
        {
            return false;
        }
        self.options
            .filters
            .iter()
            .all(|f| f.matches(record, self.model.now))
    }

    /// Records that could be removed now.
    fn candidates(&self) -> Vec<RecordId> {
        let snapshots = self
            .alive
            .iter()
            .filter(|id| self.is_leaf(**id))
            .map(|id| RecordId::Snapshot(*id));
        let logs = self.logs_alive.iter().map(|id| RecordId::Log(id.clone()));
        snapshots.chain(logs).filter(|id| self.eligible(id)).collect()
    }

    /// Removes `id` and, for a snapshot, whatever was alive only through it or its roots.
    fn remove(&mut self, id: RecordId) {
        match id {
            RecordId::Snapshot(id) => self.remove_snapshot(id),
            RecordId::Log(id) => {
                if self.logs_alive.remove(&id) {
                    self.removed.push(RecordId::Log(id));
                }
            }
        }
    }

    /// Removes snapshot `id` and whatever was alive only through it or its roots.
    fn remove_snapshot(&mut self, id: SnapshotId) {
        let mut pending = vec![id];
        while let Some(id) = pending.pop() {
            if !self.alive.remove(&id) {
                continue;
            }
            self.removed.push(RecordId::Snapshot(id));
            let mut affected = Vec::new();
            for key in self.cache_refs.remove(&id).unwrap_or_default() {
                let Some(ids) = self.cache.remove(&key) else {
                    continue;
                };
                for other in ids {
                    if let Some(keys) = self.cache_refs.get_mut(&other) {
                        keys.remove(&key);
                    }
                    affected.push(other);
                }
                self.removed_cache.push(key);
            }
            for chain in self.layer_refs.remove(&id).unwrap_or_default() {
                self.layers.remove(&chain);
                self.removed_layers.push(chain);
            }
            if let Some(parent) = self.model.parent_of(id) {
                if let Some(children) = self.children.get_mut(&parent) {
                    children.remove(&id);
                }
                affected.push(parent);
            }
            for other in affected {
                if self.alive.contains(&other)
                    && self.is_leaf(other)
                    && !self.is_rooted(other)
                    && !self.model.in_use.contains(&other)
                {
                    pending.push(other);
                }
            }
        }
    }

    /// Blobs still needed by what is alive: layer blobs of live snapshots, and manifests (with
    /// their configs) of images all of whose layer blobs are among those.
    fn needed_blobs(&self, alive: &BTreeSet<SnapshotId>) -> BTreeSet<Digest> {
        let mut needed: BTreeSet<Digest> = alive
            .iter()
            .filter_map(|id| self.model.snapshots.get(id))
            .filter_map(|s| s.blob.as_ref().map(|b| b.descriptor.digest.clone()))
            .collect();
        let mut images = Vec::new();
        for (digest, refs) in &self.model.manifests {
            if !refs.layers.is_empty() && refs.layers.iter().all(|l| needed.contains(l)) {
                images.push(digest.clone());
                images.push(refs.config.clone());
            }
        }
        needed.extend(images);
        needed
    }

    /// Whether an unneeded blob that this prune did not free may go: only when no filter
    /// restricts the prune to some records, and it is old enough for the duration limits.
    fn other_blob_removable(&self, blob: &BlobFile) -> bool {
        let mut limit = i64::MAX;
        for filter in &self.options.filters {
            match filter {
                Filter::Until(age) => limit = limit.min(cutoff(self.model.now, *age)),
                _ => return false,
            }
        }
        if let Some(age) = self.options.keep_duration {
            limit = limit.min(cutoff(self.model.now, age));
        }
        blob.modified <= limit
    }

    /// The blobs to delete once the chosen snapshots are gone.
    fn doomed_blobs(&self, needed_before: &BTreeSet<Digest>) -> BTreeSet<Digest> {
        let needed = self.needed_blobs(&self.alive);
        self.model
            .blobs
            .iter()
            .filter(|(d, blob)| {
                !needed.contains(*d) && (needed_before.contains(*d) || self.other_blob_removable(blob))
            })
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// Bytes the state directory would hold after this plan.
    fn projected_total(&self, needed_before: &BTreeSet<Digest>) -> u64 {
        let dirs: u64 = self
            .alive
            .iter()
            .map(|id| self.model.dir_sizes.get(id).copied().unwrap_or(0))
            .sum();
        let logs: u64 = self
            .logs_alive
            .iter()
            .filter_map(|id| self.records.logs.get(id))
            .map(|r| r.size)
            .sum();
        let doomed = self.doomed_blobs(needed_before);
        let blobs: u64 = self
            .model
            .blobs
            .iter()
            .filter(|(d, _)| !doomed.contains(*d))
            .map(|(_, b)| b.size)
            .sum();
        dirs + logs + blobs
    }
}

impl Store {
    /// What the state directory holds: one record per snapshot, cache mount and build log that
    /// passes every filter (largest first), plus other content and totals (see the
    /// [module docs](crate::gc)).
    pub fn disk_usage(&self, filters: &[Filter]) -> Result<DiskUsage, Error> {
        let model = Model::load(self, false)?;
        let Records { snapshots, logs } = model.records();
        let counted: BTreeSet<&Digest> = snapshots.values().filter_map(|r| r.blob.as_ref()).collect();
        let mut usage = DiskUsage::default();
        for (digest, blob) in &model.blobs {
            if !counted.contains(digest) {
                usage.other.blobs += 1;
                usage.other.size += blob.size;
            }
        }
        usage.records = snapshots
            .into_values()
            .chain(logs.into_values())
            .filter(|r| filters.iter().all(|f| f.matches(r, model.now)))
            .collect();
        usage
            .records
            .sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
        for record in &usage.records {
            usage.total += record.size;
            if record.reclaimable() {
                usage.reclaimable += record.size;
            }
            if record.shared {
                usage.shared += record.size;
            } else {
                usage.private += record.size;
            }
        }
        if filters.is_empty() {
            usage.total += usage.other.size;
            usage.reclaimable += usage.other.size;
        }
        Ok(usage)
    }

    /// Removes what `options` select (see the [module docs](crate::gc)) and reports it.
    ///
    /// Must not run while this process builds (has uncommitted snapshots or mounts); the
    /// engine only calls it between builds.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, Error> {
        let model = Model::load(self, true)?;
        let records = model.records();
        let mut plan = Plan::new(&model, &records, options);
        let needed_before = plan.needed_blobs(&plan.alive);
        match options.keep_storage {
            Some(limit) => {
                let current: u64 = model.dir_sizes.values().sum::<u64>()
                    + model.blobs.values().map(|b| b.size).sum::<u64>()
                    + model.logs.iter().map(|log| log.size).sum::<u64>();
                if current <= limit {
                    return Ok(PruneReport::default());
                }
                while plan.projected_total(&needed_before) > limit {
                    // Least recently used first, then least often used, then the oldest.
                    let next = plan.candidates().into_iter().min_by_key(|id| {
                        let r = records.get(id);
                        (r.map(|r| r.last_used), r.map(|r| r.usage_count), id.clone())
                    });
                    let Some(next) = next else { break };
                    plan.remove(next);
                }
            }
            None => loop {
                let candidates = plan.candidates();
                if candidates.is_empty() {
                    break;
                }
                for id in candidates {
                    plan.remove(id);
                }
            },
        }
        if options.all && options.filters.is_empty() && options.keep_storage.is_none() {
            let limit = options
                .keep_duration
                .map_or(i64::MAX, |age| cutoff(model.now, age));
            for (key, last_used) in &model.empty_cache {
                if *last_used <= limit {
                    plan.removed_cache.push(key.clone());
                }
            }
        }
        let doomed = plan.doomed_blobs(&needed_before);
        self.apply(&model, &records, &plan, &doomed)
    }

    /// Carries out a plan: records first (one transaction), then directories and log files,
    /// then blobs.
    fn apply(
        &self,
        model: &Model,
        records: &Records,
        plan: &Plan<'_>,
        doomed: &BTreeSet<Digest>,
    ) -> Result<PruneReport, Error> {
        let mut report = PruneReport::default();
        let (mounts, snapshots): (Vec<SnapshotId>, Vec<SnapshotId>) = plan
            .removed
            .iter()
            .filter_map(RecordId::snapshot)
            .partition(|id| model.cache_mounts.contains_key(id));
        // Cache mounts first: they may name a removed snapshot as their parent, and a crash
        // between the two transactions must not leave such a record.
        if !mounts.is_empty() {
            self.db.remove_cache_mounts(&mounts)?;
        }
        if !snapshots.is_empty() || !plan.removed_cache.is_empty() || !plan.removed_layers.is_empty() {
            self.db
                .remove_records(&plan.removed_cache, &snapshots, &plan.removed_layers)?;
        }
        fault::point("gc.records-removed");
        let mut first_error = None;
        for id in &plan.removed {
            // A snapshot's record is gone already, so its directory is debris that the next
            // `Store::open` removes; a log simply stays. Either way the failure is reported
            // after finishing the rest.
            if let Err(e) = self.remove_files(model, id) {
                first_error.get_or_insert(e);
            }
            if let Some(record) = records.get(id) {
                report.reclaimed += match id {
                    RecordId::Snapshot(id) => model.dir_sizes.get(id).copied().unwrap_or(0),
                    RecordId::Log(_) => record.size,
                };
                report.removed.push(record.clone());
            }
        }
        fault::point("gc.snapshots-removed");
        let counted: BTreeSet<&Digest> = report.removed.iter().filter_map(|r| r.blob.as_ref()).collect();
        for digest in doomed {
            let path = self.content().path(digest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    first_error.get_or_insert(Error::Io {
                        action: "remove blob",
                        path,
                        source,
                    });
                    continue;
                }
            }
            let size = model.blobs.get(digest).map_or(0, |b| b.size);
            report.blobs_removed += 1;
            report.blob_bytes += size;
            report.reclaimed += size;
            if !counted.contains(digest) {
                report.other.blobs += 1;
                report.other.size += size;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Removes the directory of a snapshot or cache mount, or the file of a build log, whose
    /// removal was decided; one that is gone already is fine.
    fn remove_files(&self, model: &Model, id: &RecordId) -> Result<(), Error> {
        let (result, action, path) = match id {
            RecordId::Snapshot(id) => {
                let dir = if model.cache_mounts.contains_key(id) {
                    self.cache_mount_dir(*id)
                } else {
                    self.snapshots_dir().join(id.to_string())
                };
                (fs::remove_dir_all(&dir), "remove directory", dir)
            }
            RecordId::Log(id) => {
                let Some(log) = model.logs.iter().find(|log| &log.id == id) else {
                    return Ok(());
                };
                (fs::remove_file(&log.path), "remove build log", log.path.clone())
            }
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                action,
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Automatic garbage collection: when the state directory holds more than `limit` bytes,
    /// removes least recently used records until it holds at most `limit`, build results and
    /// build logs first and pulled image layers only if that is not enough (BuildKit's default
    /// policy, minus its age rules). Does nothing when it is under the limit.
    pub fn collect_garbage(&self, limit: u64) -> Result<PruneReport, Error> {
        let mut report = self.prune(&PruneOptions {
            keep_storage: Some(limit),
            ..PruneOptions::default()
        })?;
        report.absorb(self.prune(&PruneOptions {
            all: true,
            keep_storage: Some(limit),
            ..PruneOptions::default()
        })?);
        Ok(report)
    }

    /// Keeps snapshot `id` and its parents from being pruned until the returned guard drops;
    /// they show as in use.
    pub fn hold(&self, id: SnapshotId) -> Result<Hold<'_>, Error> {
        self.snapshot(id)?;
        *self
            .holds
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
        Ok(Hold { store: self, id })
    }

    /// Sets when snapshot (or cache mount) `id` was last used (Unix seconds), for tools and
    /// tests that need to age records; lookups set it themselves.
    pub fn set_last_used(&self, id: SnapshotId, when: i64) -> Result<(), Error> {
        if self.db.snapshot(id)?.is_none() && self.cache_mounts()?.iter().any(|m| m.id == id) {
            return self.db.set_cache_mount_last_used(id, when);
        }
        self.db.update_snapshot(id, |info| info.last_used = Some(when))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_print_as_text_that_parses_back() {
        for text in [
            "type=layer",
            "type!=build.log",
            "id=12",
            "id!=mhv2k1x3a7f2q",
            "description==a b",
            "description!=x",
            "description~=RUN",
            "until=1h30m0s",
        ] {
            let filter: Filter = text.parse().unwrap();
            assert_eq!(filter.to_string(), text);
            assert_eq!(filter.to_string().parse::<Filter>().unwrap(), filter);
        }
    }

    #[test]
    fn sizes_parse_like_docker() {
        // The grammar is `gocompat::units`'s; here, that a bad size names itself.
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1x"), Err(ParseError::Size("1x".into())));
    }

    #[test]
    fn durations_parse_like_go() {
        // The grammar is `gocompat::duration`'s; here, what a prune makes of its values.
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("-0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("-1h"),
            Err(ParseError::NegativeDuration("-1h".into()))
        );
        for bad in ["", "h", "24", "1d", "1h-5m", "1.2.3s", "5x", " 24h"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(matches!(err, ParseError::Duration(_)), "{bad}: {err:?}");
            assert!(
                err.to_string().starts_with(&format!("invalid duration {bad:?}")),
                "{err}"
            );
        }
    }

    fn record(id: u64, kind: RecordKind, description: &str, last_used: i64) -> UsageRecord {
        UsageRecord {
            id: SnapshotId(id).into(),
            parent: None,
            kind,
            description: description.into(),
            size: 0,
            created: 0,
            last_used,
            usage_count: 0,
            in_use: false,
            shared: false,
            blob: None,
        }
    }

    #[test]
    fn filters_parse_and_match() {
        let now = 100_000;
        let run = record(7, RecordKind::Regular, "exec /bin/sh -c make", now - 10);
        let layer = record(3, RecordKind::Layer, "layer sha256:abc", now - 7_200);
        let log = UsageRecord {
            id: RecordId::Log("m1abc-7".into()),
            ..record(0, RecordKind::Log, "build log", now - 100_000)
        };
        let check = |text: &str, expected: [bool; 3]| {
            let filter: Filter = text.parse().unwrap();
            assert_eq!(
                [
                    filter.matches(&run, now),
                    filter.matches(&layer, now),
                    filter.matches(&log, now)
                ],
                expected,
                "{text}"
            );
        };
        check("type=regular", [true, false, false]);
        check("type==layer", [false, true, false]);
        check("type!=layer", [true, false, true]);
        check("type=build.log", [false, false, true]);
        check("id=7", [true, false, false]);
        check("id!=7", [false, true, true]);
        check("id=m1abc-7", [false, false, true]);
        check("description~=make", [true, false, false]);
        check("description=layer sha256:abc", [false, true, false]);
        check("description!=layer sha256:abc", [true, false, true]);
        check("until=1h", [false, true, true]);
        check("unused-for=1s", [true, true, true]);
        for bad in [
            "type",
            "=x",
            "type=",
            "type=image",
            "id=X/1",
            "id~=1",
            "until=soon",
            "until!=1h",
            "size=1",
        ] {
            assert!(
                matches!(
                    bad.parse::<Filter>(),
                    Err(ParseError::Filter { .. } | ParseError::Duration(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn dir_size_counts_apparent_bytes_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fs");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a"), vec![0u8; 1000]).unwrap();
        fs::write(root.join("sub/b"), vec![0u8; 234]).unwrap();
        fs::hard_link(root.join("a"), root.join("sub/a-again")).unwrap();
        std::os::unix::fs::symlink("sub/b", root.join("link")).unwrap();
        let dirs = fs::metadata(&root).unwrap().len() + fs::metadata(root.join("sub")).unwrap().len();
        assert_eq!(dir_size(&root).unwrap(), dirs + 1000 + 234 + "sub/b".len() as u64);
        assert_eq!(
            dir_size(&root.join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn default_limit_is_a_tenth_of_the_disk_capped() {
        let limit = default_gc_limit(Path::new("/"));
        assert!((1_000_000_000..=10_000_000_000).contains(&limit), "{limit}");
        assert_eq!(limit % 1_000_000_000, 0);
        assert_eq!(default_gc_limit(Path::new("/does/not/exist")), 2_000_000_000);
    }
}
