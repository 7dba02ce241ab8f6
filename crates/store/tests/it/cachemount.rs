//! Cache mounts in the store: records, disk accounting, pruning, the consistency check and
//! crash recovery. (The sharing rules themselves are unit-tested in `src/cachemount.rs`.)

use redb::{ReadableDatabase, TableDefinition};
use store::{
    Acquired, CacheMount, CacheMountSpec, Filter, Problem, PruneOptions, RecordKind, Sharing, SnapshotId,
    Store,
};

use crate::common::Env;

const SNAPSHOTS: TableDefinition<u64, &str> = TableDefinition::new("snapshots");

impl Env {
    /// A committed snapshot without a parent holding one file of `size` bytes.
    fn snapshot(&self, size: usize) -> SnapshotId {
        let active = self.store().prepare(None, "test").unwrap();
        std::fs::write(active.layer_dir().join("file"), vec![b'x'; size]).unwrap();
        active.commit().unwrap().id
    }

    /// Takes cache `id` (made empty, or seeded by a copy of nothing, when new) and writes
    /// `bytes` into it.
    fn cache(&self, id: &str, parent: Option<SnapshotId>, bytes: usize) -> CacheMount<'_> {
        let spec = CacheMountSpec {
            id: id.into(),
            base: parent.map(|p| format!("snapshot {p} /")),
            parent,
            description: format!("cached mount /{id} from exec test"),
        };
        let mount = match self.store().acquire_cache_mount(&spec, Sharing::Shared).unwrap() {
            Acquired::Ready(mount) => mount,
            Acquired::New(new) => new.commit().unwrap(),
            Acquired::Busy => panic!("cache {id} is busy"),
        };
        std::fs::write(mount.path().join("data"), vec![b'y'; bytes]).unwrap();
        mount
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .store()
            .disk_usage(&[])
            .unwrap()
            .records
            .iter()
            .filter_map(|r| r.id.snapshot().map(|id| id.0))
            .collect();
        ids.sort();
        ids
    }
}

fn filter(text: &str) -> Filter {
    text.parse().unwrap()
}

#[test]
fn cache_mounts_are_usage_records() {
    let env = Env::new();
    let base = env.snapshot(100);
    let held = env.cache("seeded", Some(base), 5_000);
    let id = held.id();
    let record = env.record(id);
    assert_eq!(record.kind, RecordKind::CacheMount);
    assert_eq!(record.kind.to_string(), "exec.cachemount");
    assert_eq!(record.parent, Some(base));
    assert_eq!(record.description, "cached mount /seeded from exec test");
    assert!(record.in_use && !record.reclaimable());
    assert!(!record.shared);
    assert_eq!(record.usage_count, 1);
    assert!(record.size >= 5_000, "{record:?}");
    // The base sits under an in-use cache: in use, and shared as a parent is.
    let parent = env.record(base);
    assert!(parent.in_use && parent.shared, "{parent:?}");
    drop(held);
    assert!(!env.record(id).in_use);
    assert!(!env.record(base).in_use);

    // Used again with other content: measured again.
    let again = env.cache("seeded", Some(base), 50_000);
    assert_eq!(again.id(), id);
    drop(again);
    let record = env.record(id);
    assert!(record.size >= 50_000, "{record:?}");
    assert_eq!(record.usage_count, 2);

    // Filters address cache mounts by type and id.
    let only = env.store().disk_usage(&[filter("type=exec.cachemount")]).unwrap();
    assert_eq!(only.records.len(), 1);
    assert_eq!(only.records[0].id, id);
    let by_id = env.store().disk_usage(&[filter(&format!("id={id}"))]).unwrap();
    assert_eq!(by_id.records.len(), 1);
    let regular = env.store().disk_usage(&[filter("type=regular")]).unwrap();
    assert_eq!(regular.records.len(), 1);
    assert_eq!(regular.records[0].id, base);
}

#[test]
fn pruning_removes_unused_caches_and_keeps_their_bases_until_then() {
    let env = Env::new();
    let base = env.snapshot(10);
    // The base is a step's result, recorded in the cache index (a root of its own).
    let record = store::CacheRecord {
        outputs: vec![Some(base)],
        created: 0,
        last_used: None,
        usage_count: 0,
    };
    env.store()
        .cache_put(&oci::Digest::of(b"mkdir"), &record)
        .unwrap();
    let plain = env.cache("plain", None, 1_000);
    let seeded = env.cache("seeded", Some(base), 1_000);
    let (plain_id, seeded_id) = (plain.id(), seeded.id());

    // In use: nothing of it goes, nor its base.
    let report = env.store().prune(&PruneOptions::default()).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    drop(plain);

    // A regular-only prune cannot remove the base while the cache sits on it.
    drop(seeded);
    let report = env
        .store()
        .prune(&PruneOptions {
            filters: vec![filter("type=regular")],
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(report.removed.is_empty(), "{report:?}");

    // By type: only the caches go, with their directories.
    let report = env
        .store()
        .prune(&PruneOptions {
            filters: vec![filter("type=exec.cachemount")],
            ..PruneOptions::default()
        })
        .unwrap();
    let mut removed: Vec<SnapshotId> = report.removed.iter().filter_map(|r| r.id.snapshot()).collect();
    removed.sort();
    assert_eq!(removed, vec![plain_id, seeded_id]);
    assert!(report.reclaimed >= 2_000);
    assert!(!env.store().cache_mount_dir(plain_id).exists());
    assert!(!env.store().cache_mount_dir(seeded_id).exists());
    assert_eq!(env.ids(), vec![base.0]);
    assert!(env.store().check().unwrap().is_ok());

    // The default prune removes caches (BuildKit's does) and then the base they held.
    let fresh = env.cache("seeded", Some(base), 10);
    assert_ne!(fresh.id(), seeded_id);
    drop(fresh);
    let report = env.store().prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert!(env.ids().is_empty());
    assert_eq!(
        std::fs::read_dir(env.root().join("cache-mounts"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn caches_count_for_storage_limits_and_ages() {
    let env = Env::new();
    let old = env.cache("old", None, 40_000);
    let new = env.cache("new", None, 40_000);
    let (old_id, new_id) = (old.id(), new.id());
    drop((old, new));
    env.store().set_last_used(old_id, 1_000).unwrap();
    // Aged: `until` selects it.
    let aged = env.store().disk_usage(&[filter("until=1h")]).unwrap();
    assert_eq!(aged.records.len(), 1);
    assert_eq!(aged.records[0].id, old_id);
    // Over the limit: the least recently used cache goes first.
    let report = env.store().collect_garbage(60_000).unwrap();
    let removed: Vec<SnapshotId> = report.removed.iter().filter_map(|r| r.id.snapshot()).collect();
    assert_eq!(removed, vec![old_id]);
    assert_eq!(env.ids(), vec![new_id.0]);
}

#[test]
fn the_check_verifies_cache_mounts() {
    let mut env = Env::new();
    let base = env.snapshot(10);
    let a = env.cache("a", Some(base), 10);
    let b = env.cache("b", None, 10);
    let (a_id, b_id) = (a.id(), b.id());
    drop((a, b));
    let report = env.store().check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.cache_mounts, 2);
    assert_eq!(report.unreferenced_snapshots, 0, "the cache references its base");

    // Debris appearing after open stands for debris recovery did not remove.
    let orphan = env.root().join("cache-mounts/424242");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::remove_dir_all(env.store().cache_mount_dir(b_id)).unwrap();
    let report = env.store().check().unwrap();
    assert_eq!(
        report.problems,
        vec![
            Problem::MissingCacheMountDir {
                id: b_id,
                path: env.store().cache_mount_dir(b_id)
            },
            Problem::OrphanCacheMountDir { path: orphan.clone() },
        ]
    );
    for problem in &report.problems {
        assert!(!problem.remedy().is_empty());
        assert!(!problem.to_string().is_empty());
    }
    // The remedy works: pruning the cache whose directory is gone clears it; reopening
    // removes the orphan.
    env.store()
        .prune(&PruneOptions {
            filters: vec![filter(&format!("id={b_id}"))],
            ..PruneOptions::default()
        })
        .unwrap();
    env.reopen();
    assert!(!orphan.exists());
    assert!(env.store().check().unwrap().is_ok());

    // A cache whose base snapshot lost its record is reported.
    env.store = None;
    {
        let db = redb::Database::open(env.root().join("metadata.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(SNAPSHOTS).unwrap().remove(base.0).unwrap();
        tx.commit().unwrap();
        let tx = db.begin_read().unwrap();
        assert!(tx.open_table(SNAPSHOTS).unwrap().get(base.0).unwrap().is_none());
    }
    env.store = Some(Store::open(&env.root(), || {}).unwrap());
    let report = env.store().check().unwrap();
    assert_eq!(
        report.problems,
        vec![Problem::CacheMountMissingParent {
            id: a_id,
            parent: base
        }]
    );
}

#[test]
fn a_cache_interrupted_before_its_record_is_debris() {
    let mut env = Env::new();
    let spec = CacheMountSpec {
        id: "crash".into(),
        base: None,
        parent: None,
        description: "cached mount /crash".into(),
    };
    let Acquired::New(new) = env.store().acquire_cache_mount(&spec, Sharing::Locked).unwrap() else {
        panic!("expected a new cache");
    };
    std::fs::create_dir(new.path()).unwrap();
    std::fs::write(new.path().join("half"), "written").unwrap();
    let path = new.path().to_path_buf();
    // As if the process died here: nothing runs the guard's cleanup.
    std::mem::forget(new);
    env.reopen();
    assert!(!path.exists());
    assert!(env.store().cache_mounts().unwrap().is_empty());
    assert!(env.store().check().unwrap().is_ok());
    // The cache is made again from scratch.
    let Acquired::New(again) = env.store().acquire_cache_mount(&spec, Sharing::Locked).unwrap() else {
        panic!("expected a new cache");
    };
    let mount = again.commit().unwrap();
    assert!(!mount.path().join("half").exists());
}
