//! Disk accounting and pruning on real snapshots (as root: snapshots with parents are written
//! through overlayfs mounts).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci::{Descriptor, Digest, media_type};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use store::{CacheRecord, Filter, LayerBlob, PruneOptions, RecordKind, SnapshotId};

use crate::common::Env;

const SNAPSHOTS: TableDefinition<u64, &str> = TableDefinition::new("snapshots");
const LAYERS: TableDefinition<&str, u64> = TableDefinition::new("layers");
const CACHE: TableDefinition<&str, &str> = TableDefinition::new("cache");

impl Env {
    /// A committed snapshot on `parent` holding `files` (written through an overlay mount when
    /// there is a parent).
    fn snapshot(&self, parent: Option<SnapshotId>, description: &str, files: &[(&str, usize)]) -> SnapshotId {
        let active = self.store().prepare(parent, description).unwrap();
        {
            let mount = active.mount().unwrap();
            for (name, size) in files {
                let path = mount.path().join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, vec![b'x'; *size]).unwrap();
            }
        }
        active.commit().unwrap().id
    }

    /// Records `outputs` under a cache key derived from `name`.
    fn cache(&self, name: &str, outputs: &[SnapshotId]) -> Digest {
        let key = Digest::of(name.as_bytes());
        let record = CacheRecord {
            outputs: outputs.iter().copied().map(Some).collect(),
            created: now(),
            last_used: None,
            usage_count: 0,
        };
        self.store().cache_put(&key, &record).unwrap();
        key
    }

    /// Stores a layer blob with `bytes` and records it as the layer of `id`.
    fn layer_blob(&self, id: SnapshotId, bytes: &[u8]) -> Digest {
        let digest = self.store().content().write(bytes).unwrap();
        let blob = LayerBlob {
            diff_id: Digest::of(b"diff"),
            descriptor: Descriptor::new(media_type::OCI_LAYER_GZIP, digest.clone(), bytes.len() as u64),
            empty: false,
        };
        self.store().set_layer_blob(id, blob).unwrap();
        digest
    }

    /// Stores an image manifest with a config, referring to `layers`; returns (manifest, config).
    fn image(&self, layers: &[&Digest], label: &str) -> (Digest, Digest) {
        let config = self
            .store()
            .content()
            .write(
                format!(r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"l":"{label}"}}}}}}"#)
                    .as_bytes(),
            )
            .unwrap();
        let layers: Vec<String> = layers
            .iter()
            .map(|d| {
                format!(
                    r#"{{"mediaType":"{}","digest":"{d}","size":1}}"#,
                    media_type::OCI_LAYER_GZIP
                )
            })
            .collect();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{}]}}"#,
            media_type::OCI_MANIFEST,
            layers.join(",")
        );
        (self.store().content().write(manifest.as_bytes()).unwrap(), config)
    }

    fn usage_ids(&self) -> BTreeSet<u64> {
        snapshot_ids(&self.store().disk_usage(&[]).unwrap().records)
    }

    fn blob_exists(&self, digest: &Digest) -> bool {
        self.store().content().contains(digest)
    }

    fn prune(&self, options: PruneOptions) -> Vec<u64> {
        snapshot_ids(&self.store().prune(&options).unwrap().removed)
    }
}

/// The snapshot ids of `records` (all of them snapshots), in their order.
fn snapshot_ids<'a, C: FromIterator<u64>>(records: impl IntoIterator<Item = &'a store::UsageRecord>) -> C {
    records.into_iter().map(|r| r.id.snapshot().unwrap().0).collect()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn du_bytes(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn filter(text: &str) -> Filter {
    text.parse().unwrap()
}

fn set<const N: usize>(ids: [SnapshotId; N]) -> BTreeSet<u64> {
    ids.iter().map(|i| i.0).collect()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn sizes_are_recorded_at_commit_and_measured_for_old_records() {
    testkit::require_privileged();
    let mut env = Env::new();
    let base = env.snapshot(None, "base", &[("a", 1000), ("dir/b", 234)]);
    let child = env.snapshot(Some(base), "child", &[("c", 4096), ("dir/d", 10)]);
    for id in [base, child] {
        let info = env.store().snapshot(id).unwrap();
        assert_eq!(
            info.size,
            Some(du_bytes(&env.store().layer_dir(id))),
            "snapshot {id}"
        );
        assert_eq!((info.last_used, info.usage_count), (None, 0));
    }
    let base_size = env.store().snapshot(base).unwrap().size.unwrap();
    assert!(base_size >= 1234);
    // The layer blob counts in the record's size.
    env.layer_blob(base, &[7u8; 300]);
    assert_eq!(env.record(base).size, base_size + 300);

    // A record written before sizes existed (no `size` field) still loads; its size is measured
    // on first use and kept.
    env.with_closed_db(|db| {
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(SNAPSHOTS).unwrap();
            let raw = table.get(child.0).unwrap().unwrap().value().to_string();
            let mut json: serde_json::Value = serde_json::from_str(&raw).unwrap();
            for field in ["size", "last_used", "usage_count"] {
                json.as_object_mut().unwrap().remove(field);
            }
            table.insert(child.0, json.to_string().as_str()).unwrap();
        }
        tx.commit().unwrap();
    });
    assert_eq!(env.store().snapshot(child).unwrap().size, None);
    let measured = env.record(child).size;
    assert_eq!(measured, du_bytes(&env.store().layer_dir(child)));
    assert_eq!(env.store().snapshot(child).unwrap().size, Some(measured));
}

#[test]
fn lookups_record_last_use() {
    testkit::require_privileged();
    let env = Env::new();
    let a = env.snapshot(None, "a", &[("a", 10)]);
    let key = env.cache("a", &[a]);
    env.store().set_last_used(a, 1_000).unwrap();
    assert_eq!(env.record(a).last_used, 1_000);
    let before = now();
    assert!(env.store().cache_get(&key).unwrap().is_some());
    assert!(env.store().cache_get(&key).unwrap().is_some());
    let record = env.record(a);
    assert!(record.last_used >= before);
    assert_eq!(record.usage_count, 2);
    let cached = env.store().cache_get(&key).unwrap().unwrap();
    assert_eq!(cached.usage_count, 2, "the record counts its uses too");
    assert!(cached.last_used.unwrap() >= before);

    let chain = Digest::of(b"chain");
    env.store().set_layer_snapshot(&chain, a).unwrap();
    assert_eq!(env.store().layer_snapshot(&chain).unwrap(), Some(a));
    assert_eq!(env.record(a).usage_count, 4);
}

#[test]
fn usage_tells_shared_from_exclusive() {
    testkit::require_privileged();
    let env = Env::new();
    let base = env.snapshot(None, "base", &[("base", 5000)]);
    let left = env.snapshot(Some(base), "left", &[("left", 1000)]);
    let right = env.snapshot(Some(base), "right", &[("right", 2000)]);
    let twice = env.snapshot(None, "twice", &[("twice", 300)]);
    env.cache("base", &[base]);
    env.cache("left", &[left]);
    env.cache("right", &[right]);
    env.cache("twice-1", &[twice]);
    env.cache("twice-2", &[twice]);
    env.store()
        .set_layer_snapshot(&Digest::of(b"chain"), base)
        .unwrap();
    let stray = env.store().content().write(b"other content").unwrap();

    let usage = env.store().disk_usage(&[]).unwrap();
    let get = |id: SnapshotId| usage.records.iter().find(|r| r.id == id).unwrap();
    assert!(get(base).shared, "a parent is shared");
    assert!(
        !get(left).shared && !get(right).shared,
        "leaves reached by one record are not"
    );
    assert!(get(twice).shared, "reached by two cache records");
    assert_eq!(get(base).kind, RecordKind::Layer);
    assert_eq!(get(left).kind, RecordKind::Regular);
    assert_eq!(get(left).parent, Some(base));
    assert_eq!(get(left).description, "left");
    assert!(usage.records.iter().all(|r| r.reclaimable() && !r.in_use));
    // Largest first.
    assert_eq!(usage.records[0].id, base);
    let sizes: u64 = usage.records.iter().map(|r| r.size).sum();
    assert_eq!(usage.other.blobs, 1);
    assert_eq!(usage.other.size, env.store().content().size(&stray).unwrap());
    assert_eq!(usage.total, sizes + usage.other.size);
    assert_eq!(usage.reclaimable, usage.total);
    assert_eq!(usage.shared, get(base).size + get(twice).size);
    assert_eq!(usage.private, get(left).size + get(right).size);

    // Filters select records; other content then stays out of the totals.
    let layers = env.store().disk_usage(&[filter("type=layer")]).unwrap();
    assert_eq!(layers.records.len(), 1);
    assert_eq!(layers.total, get(base).size);
}

#[test]
fn prune_all_leaves_an_empty_store_that_works_again() {
    testkit::require_privileged();
    let mut env = Env::new();
    let base = env.snapshot(None, "layer base", &[("bin/sh", 2000)]);
    let top = env.snapshot(Some(base), "layer top", &[("etc/conf", 100)]);
    let built = env.snapshot(Some(top), "exec make", &[("out", 3000)]);
    let orphan = env.snapshot(None, "orphan", &[("junk", 10)]);
    env.store().set_layer_snapshot(&Digest::of(b"c1"), base).unwrap();
    env.store().set_layer_snapshot(&Digest::of(b"c2"), top).unwrap();
    env.cache("image", &[top]);
    env.cache("make", &[built]);
    env.cache("scratch", &[]);
    let l1 = env.layer_blob(base, b"base layer");
    let l2 = env.layer_blob(top, b"top layer");
    env.image(&[&l1, &l2], "base");
    env.store().content().write(b"stray").unwrap();
    // A record of a snapshot that no longer exists.
    env.store()
        .cache_put(
            &Digest::of(b"stale"),
            &CacheRecord {
                outputs: vec![Some(SnapshotId(999))],
                created: now(),
                last_used: None,
                usage_count: 0,
            },
        )
        .unwrap();
    let before = env.store().disk_usage(&[]).unwrap();

    let report = env
        .store()
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    let removed: BTreeSet<u64> = snapshot_ids(&report.removed);
    assert_eq!(removed, set([base, top, built, orphan]));
    // Leaves go before their parents.
    let order: Vec<u64> = snapshot_ids(&report.removed);
    let pos = |id: SnapshotId| order.iter().position(|i| *i == id.0).unwrap();
    assert!(pos(built) < pos(top) && pos(top) < pos(base));
    assert_eq!(report.blobs_removed, 5);
    assert_eq!(report.reclaimed, before.total);
    assert_eq!(
        report.other.blobs, 3,
        "manifest, config and the stray blob are other content"
    );

    assert_eq!(entries(&env.root().join("snapshots")), 0);
    assert_eq!(entries(&env.root().join("blobs/sha256")), 0);
    let usage = env.store().disk_usage(&[]).unwrap();
    assert!(usage.records.is_empty());
    assert_eq!(usage.total, 0);
    let counts = env.with_closed_db(|db| {
        let tx = db.begin_read().unwrap();
        (
            tx.open_table(SNAPSHOTS).unwrap().len().unwrap(),
            tx.open_table(LAYERS).unwrap().len().unwrap(),
            tx.open_table(CACHE).unwrap().len().unwrap(),
        )
    });
    assert_eq!(counts, (0, 0, 0));

    // The reopened store works, and never reuses an id.
    let again = env.snapshot(None, "again", &[("new", 5)]);
    assert!(again.0 > orphan.0);
    assert_eq!(env.usage_ids(), set([again]));
    let view = env.store().view(again).unwrap();
    assert!(view.path().join("new").is_file());
}

#[test]
fn default_prune_keeps_image_layers_and_the_blobs_they_need() {
    testkit::require_privileged();
    let env = Env::new();
    let base = env.snapshot(None, "layer base", &[("bin/sh", 2000)]);
    let built = env.snapshot(Some(base), "exec make", &[("out", 3000)]);
    env.store().set_layer_snapshot(&Digest::of(b"c1"), base).unwrap();
    env.cache("image", &[base]);
    env.cache("make", &[built]);
    let layer = env.layer_blob(base, b"base layer");
    let built_blob = env.layer_blob(built, b"built layer");
    let (manifest, config) = env.image(&[&layer], "kept");
    let (exported, exported_config) = env.image(&[&layer, &built_blob], "exported");
    let stray = env.store().content().write(b"stray").unwrap();

    assert_eq!(env.prune(PruneOptions::default()), vec![built.0]);
    assert_eq!(env.usage_ids(), set([base]));
    for kept in [&layer, &manifest, &config] {
        assert!(env.blob_exists(kept), "{kept} is needed by the kept image");
    }
    for gone in [&built_blob, &exported, &exported_config, &stray] {
        assert!(!env.blob_exists(gone), "{gone} is no longer needed");
    }
}

#[test]
fn keep_storage_removes_least_recently_used_first() {
    testkit::require_privileged();
    let env = Env::new();
    let a = env.snapshot(None, "a", &[("a", 10_000)]);
    let b = env.snapshot(None, "b", &[("b", 10_000)]);
    let c = env.snapshot(None, "c", &[("c", 10_000)]);
    for (name, id) in [("a", a), ("b", b), ("c", c)] {
        env.cache(name, &[id]);
    }
    let t = now();
    env.store().set_last_used(a, t - 300).unwrap();
    env.store().set_last_used(b, t - 100).unwrap();
    env.store().set_last_used(c, t - 200).unwrap();
    let usage = env.store().disk_usage(&[]).unwrap();
    let size = |id| usage.records.iter().find(|r| r.id == id).unwrap().size;

    // Under the limit: nothing happens.
    let keep = |bytes| PruneOptions {
        keep_storage: Some(bytes),
        ..PruneOptions::default()
    };
    assert!(env.prune(keep(usage.total)).is_empty());
    // One record too many: the least recently used goes.
    assert_eq!(env.prune(keep(usage.total - size(a))), vec![a.0]);
    // Down to one record: c (older) before b.
    assert_eq!(env.prune(keep(size(b))), vec![c.0]);
    assert_eq!(env.usage_ids(), set([b]));

    // A lookup makes a record recent again.
    let d = env.snapshot(None, "d", &[("d", 10_000)]);
    let key = env.cache("d", &[d]);
    env.store().set_last_used(d, t - 1000).unwrap();
    env.store().cache_get(&key).unwrap();
    assert_eq!(env.prune(keep(size(b) + 1)), vec![b.0]);
    assert_eq!(env.prune(keep(0)), vec![d.0]);
    assert_eq!(env.store().disk_usage(&[]).unwrap().total, 0);
}

#[test]
fn keep_duration_and_until_keep_recent_records() {
    testkit::require_privileged();
    let env = Env::new();
    let old = env.snapshot(None, "old", &[("a", 10)]);
    let recent = env.snapshot(None, "recent", &[("b", 10)]);
    let older = env.snapshot(None, "older", &[("c", 10)]);
    env.cache("old", &[old]);
    env.cache("recent", &[recent]);
    env.cache("older", &[older]);
    let t = now();
    env.store().set_last_used(old, t - 2 * 3600).unwrap();
    env.store().set_last_used(older, t - 5 * 3600).unwrap();

    let recent_blob = env.store().content().write(b"just written").unwrap();
    assert_eq!(
        env.prune(PruneOptions {
            filters: vec![filter("until=3h")],
            ..PruneOptions::default()
        }),
        vec![older.0]
    );
    assert_eq!(
        env.prune(PruneOptions {
            keep_duration: Some(Duration::from_secs(3600)),
            ..PruneOptions::default()
        }),
        vec![old.0]
    );
    assert_eq!(env.usage_ids(), set([recent]));
    assert!(
        env.blob_exists(&recent_blob),
        "other content is aged by its file time"
    );
}

#[test]
fn filters_choose_what_goes() {
    testkit::require_privileged();
    let env = Env::new();
    let layer = env.snapshot(None, "layer sha256:1", &[("l", 10)]);
    let make = env.snapshot(Some(layer), "exec make all", &[("m", 10)]);
    let test = env.snapshot(Some(layer), "exec make test", &[("t", 10)]);
    let copy = env.snapshot(Some(layer), "file op", &[("c", 10)]);
    env.store().set_layer_snapshot(&Digest::of(b"c1"), layer).unwrap();
    for (name, id) in [("make", make), ("test", test), ("copy", copy)] {
        env.cache(name, &[id]);
    }
    let stray = env.store().content().write(b"stray").unwrap();

    let with = |filters: &[&str]| PruneOptions {
        filters: filters.iter().map(|f| filter(f)).collect(),
        ..PruneOptions::default()
    };
    // A parent is not a candidate while its children live.
    assert!(env.prune(with(&["type=layer"])).is_empty());
    assert_eq!(env.prune(with(&[&format!("id={copy}")])), vec![copy.0]);
    assert_eq!(
        env.prune(with(&["description~=make", "description!=exec make all"])),
        vec![test.0]
    );
    assert!(
        env.blob_exists(&stray),
        "filtered prunes leave other content alone"
    );
    assert_eq!(env.prune(with(&["description==exec make all"])), vec![make.0]);
    assert_eq!(env.prune(with(&["type=layer"])), vec![layer.0]);
    assert!(env.usage_ids().is_empty());
}

#[test]
fn a_parent_of_a_kept_snapshot_is_never_removed() {
    testkit::require_privileged();
    let env = Env::new();
    let parent = env.snapshot(None, "parent", &[("p", 50_000)]);
    let kept = env.snapshot(Some(parent), "kept", &[("k", 10)]);
    let bare = env.snapshot(None, "bare parent", &[("b", 10)]);
    let leaf = env.snapshot(Some(bare), "leaf", &[("l", 10)]);
    env.cache("parent", &[parent]);
    env.cache("kept", &[kept]);
    env.cache("leaf", &[leaf]);
    let t = now();
    env.store().set_last_used(parent, t - 10 * 3600).unwrap();
    env.store().set_last_used(bare, t - 10 * 3600).unwrap();

    let keep_hour = PruneOptions {
        keep_duration: Some(Duration::from_secs(3600)),
        ..PruneOptions::default()
    };
    assert!(env.prune(keep_hour.clone()).is_empty());
    assert!(
        env.prune(PruneOptions {
            keep_storage: Some(0),
            filters: vec![filter(&format!("id={parent}"))],
            ..PruneOptions::default()
        })
        .is_empty(),
        "the oldest and largest record is still needed by its child"
    );
    // A parent kept alive only by its child goes with it; one with a record of its own stays.
    assert_eq!(env.prune(with_id(leaf)), vec![leaf.0, bare.0]);
    assert_eq!(env.prune(with_id(kept)), vec![kept.0]);
    assert_eq!(env.usage_ids(), set([parent]));
    assert_eq!(env.prune(keep_hour), vec![parent.0]);
}

fn with_id(id: SnapshotId) -> PruneOptions {
    PruneOptions {
        filters: vec![filter(&format!("id={id}"))],
        ..PruneOptions::default()
    }
}

#[test]
fn held_snapshots_are_in_use_and_kept() {
    testkit::require_privileged();
    let env = Env::new();
    let base = env.snapshot(None, "base", &[("a", 10)]);
    let top = env.snapshot(Some(base), "top", &[("b", 10)]);
    let other = env.snapshot(None, "other", &[("c", 10)]);
    env.cache("top", &[top]);
    env.cache("other", &[other]);
    let all = PruneOptions {
        all: true,
        ..PruneOptions::default()
    };
    {
        let hold = env.store().hold(top).unwrap();
        assert_eq!(hold.id(), top);
        let usage = env.store().disk_usage(&[]).unwrap();
        let in_use: BTreeSet<u64> = snapshot_ids(usage.records.iter().filter(|r| r.in_use));
        assert_eq!(in_use, set([base, top]));
        assert_eq!(
            usage.reclaimable,
            usage.total - env.record(base).size - env.record(top).size
        );
        assert_eq!(env.prune(all.clone()), vec![other.0]);
    }
    assert_eq!(env.prune(all), vec![top.0, base.0]);
    assert!(
        env.store().hold(top).is_err(),
        "a missing snapshot cannot be held"
    );
}

#[test]
fn a_record_with_several_outputs_keeps_them_together() {
    testkit::require_privileged();
    let env = Env::new();
    let first = env.snapshot(None, "first", &[("a", 10)]);
    let second = env.snapshot(None, "second", &[("b", 10)]);
    env.cache("both", &[first, second]);
    // Removing one output removes the record, and the other output was alive only through it.
    assert_eq!(env.prune(with_id(first)), vec![first.0, second.0]);
}

#[test]
fn garbage_collection_is_lru_down_to_the_limit_and_spares_layers_first() {
    testkit::require_privileged();
    let env = Env::new();
    let layer = env.snapshot(None, "layer", &[("l", 20_000)]);
    let built = env.snapshot(Some(layer), "built", &[("b", 20_000)]);
    let other = env.snapshot(None, "other", &[("o", 20_000)]);
    env.store().set_layer_snapshot(&Digest::of(b"c1"), layer).unwrap();
    env.cache("built", &[built]);
    env.cache("other", &[other]);
    let t = now();
    // The layer is the least recently used, but build results go first.
    env.store().set_last_used(layer, t - 1000).unwrap();
    env.store().set_last_used(built, t - 500).unwrap();
    let total = env.store().disk_usage(&[]).unwrap().total;

    assert!(env.store().collect_garbage(total).unwrap().removed.is_empty());
    let report = env.store().collect_garbage(total - 1).unwrap();
    assert_eq!(snapshot_ids::<Vec<_>>(&report.removed), vec![built.0]);
    let report = env.store().collect_garbage(25_000).unwrap();
    assert_eq!(snapshot_ids::<Vec<_>>(&report.removed), vec![other.0]);
    assert_eq!(env.usage_ids(), set([layer]));
    let report = env.store().collect_garbage(1).unwrap();
    assert_eq!(snapshot_ids::<Vec<_>>(&report.removed), vec![layer.0]);
    assert!(env.usage_ids().is_empty());
}

impl Env {
    /// A finished build log `id` of `bytes` bytes, last written `age` seconds ago.
    fn log(&self, id: &str, bytes: usize, age: u64) -> std::path::PathBuf {
        let mut writer = self.store().create_log(id).unwrap();
        writer.line(&"x".repeat(bytes - 1)).unwrap();
        drop(writer);
        let path = self.root().join("logs").join(format!("{id}.jsonl"));
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
        path
    }

    /// The build logs `kiln du` lists, by id, with whether they are in use.
    fn logs(&self) -> Vec<(String, bool)> {
        let filter: Filter = "type=build.log".parse().unwrap();
        let mut logs: Vec<(String, bool)> = self
            .store()
            .disk_usage(&[filter])
            .unwrap()
            .records
            .into_iter()
            .map(|r| (r.id.to_string(), r.in_use))
            .collect();
        logs.sort();
        logs
    }
}

fn log_ids(report: &store::PruneReport) -> Vec<String> {
    report
        .removed
        .iter()
        .filter(|r| r.kind == RecordKind::Log)
        .map(|r| r.id.to_string())
        .collect()
}

#[test]
fn build_logs_are_counted_and_pruned_all_but_the_newest() {
    let env = Env::new();
    let old = env.log("b0001", 5_000, 3 * 86_400);
    env.log("b0002", 3_000, 2 * 86_400);
    let newest = env.log("b0003", 1_000, 60);
    let result = env.snapshot(None, "result", &[("f", 100)]);

    let usage = env.store().disk_usage(&[]).unwrap();
    assert_eq!(usage.records.len(), 4, "{usage:?}");
    let log = usage
        .records
        .iter()
        .find(|r| r.id == store::RecordId::Log("b0001".into()))
        .unwrap();
    assert_eq!(
        (log.kind, log.size, log.parent, log.shared),
        (RecordKind::Log, 5_000, None, false)
    );
    assert!(log.last_used <= now() - 3 * 86_400 + 5, "{log:?}");
    let sizes: u64 = usage.records.iter().map(|r| r.size).sum();
    assert_eq!(usage.total, sizes);
    // The newest log is what `kiln logs` shows: in use, never pruned.
    assert_eq!(
        env.logs(),
        [
            ("b0001".into(), false),
            ("b0002".into(), false),
            ("b0003".into(), true)
        ]
    );
    assert_eq!(usage.reclaimable, usage.total - 1_000);

    // A plain prune keeps build history, as BuildKit's does; build results go.
    let report = env.store().prune(&PruneOptions::default()).unwrap();
    assert_eq!(log_ids(&report), Vec::<String>::new());
    assert!(report.removed.iter().any(|r| r.id == result));
    assert_eq!(env.logs().len(), 3);

    // Logs last written within the kept duration stay; `all` takes the others.
    let report = env
        .store()
        .prune(&PruneOptions {
            all: true,
            keep_duration: Some(Duration::from_secs(2 * 86_400 + 3_600)),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(log_ids(&report), ["b0001"]);
    assert_eq!(report.reclaimed, 5_000);
    assert!(!old.exists());
    let report = env
        .store()
        .prune(&PruneOptions {
            filters: vec!["type=build.log".parse().unwrap()],
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(log_ids(&report), ["b0002"]);
    assert_eq!(env.logs(), [("b0003".into(), true)]);
    assert!(newest.exists());
}

#[test]
fn logs_being_written_are_in_use_and_gc_counts_logs_least_recently_written_first() {
    let env = Env::new();
    env.log("b0001", 40_000, 86_400);
    let writing = env.store().create_log("b0002").unwrap();
    env.log("b0003", 1_000, 0);
    let recent = env.snapshot(None, "recent", &[("f", 20_000)]);
    assert_eq!(
        env.logs(),
        [
            ("b0001".into(), false),
            ("b0002".into(), true),
            ("b0003".into(), true)
        ]
    );
    let total = env.store().disk_usage(&[]).unwrap().total;

    // The old log goes before the recently made snapshot; the limit is met with it alone.
    let report = env.store().collect_garbage(total - 1).unwrap();
    assert_eq!(log_ids(&report), ["b0001"]);
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(env.record(recent).kind, RecordKind::Regular);

    // Down to nothing: everything goes but the logs in use.
    env.store().collect_garbage(1).unwrap();
    assert_eq!(env.logs(), [("b0002".into(), true), ("b0003".into(), true)]);
    let usage = env.store().disk_usage(&[]).unwrap();
    assert!(
        usage.records.iter().all(|r| r.kind == RecordKind::Log),
        "{usage:?}"
    );
    drop(writing);
    assert_eq!(env.logs(), [("b0002".into(), false), ("b0003".into(), true)]);
    env.store().collect_garbage(1).unwrap();
    assert_eq!(env.logs(), [("b0003".into(), true)]);
}
