//! Merge ops: layers stacked with overlay semantics, and a linked layer identical on any base.

use llb::{OpOptions, Output};

use crate::support::{TestEngine, files, rm};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_layer_is_the_same_on_every_base() {
    testkit::require_privileged();
    let t = TestEngine::new();
    let base1 = files(None, &[("/app/old.txt", "old"), ("/etc/one", "1")]);
    let base2 = files(None, &[("/etc/two", "2"), ("/usr/share/x", "x")]);
    // COPY --link lowers to a file op on scratch, merged onto the base.
    let link = files(None, &[("/app/new.txt", "new")]);

    let on1 = t
        .snapshot(&Output::merge(
            vec![base1.clone(), link.clone()],
            OpOptions::default(),
        ))
        .await;
    let on2 = t
        .snapshot(&Output::merge(
            vec![base2.clone(), link.clone()],
            OpOptions::default(),
        ))
        .await;
    assert_eq!(t.read(on1, "app/new.txt").as_deref(), Some("new"));
    assert_eq!(t.read(on1, "app/old.txt").as_deref(), Some("old"));
    assert_eq!(t.read(on1, "etc/one").as_deref(), Some("1"));
    assert_eq!(t.read(on2, "app/new.txt").as_deref(), Some("new"));
    assert_eq!(t.read(on2, "usr/share/x").as_deref(), Some("x"));
    assert!(!t.exists(on2, "app/old.txt"));

    let link_id = t.snapshot(&link).await;
    assert_eq!(t.diff_id(on1), t.diff_id(on2));
    assert_eq!(t.diff_id(on1), t.diff_id(link_id));
    let base1_id = t.snapshot(&base1).await;
    assert_eq!(t.engine.store().snapshot(on1).unwrap().parent, Some(base1_id));

    // A single input is returned as it is.
    let single = t
        .snapshot(&Output::merge(vec![base1.clone()], OpOptions::default()))
        .await;
    assert_eq!(single, base1_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_in_later_inputs_delete() {
    testkit::require_privileged();
    let t = TestEngine::new();
    let a = files(None, &[("/a", "from a"), ("/keep", "kept")]);
    // b's chain: a's layer, then a layer deleting /a and adding /b.
    let b = files(Some(&rm(&a, "/a")), &[("/b", "from b")]);
    let c = files(None, &[("/a", "from c"), ("/c", "from c")]);

    let merged = t
        .snapshot(&Output::merge(vec![c.clone(), b.clone()], OpOptions::default()))
        .await;
    assert!(!t.exists(merged, "a"), "the whiteout of b deletes c's /a");
    assert_eq!(t.read(merged, "b").as_deref(), Some("from b"));
    assert_eq!(t.read(merged, "c").as_deref(), Some("from c"));
    assert_eq!(t.read(merged, "keep").as_deref(), Some("kept"));

    // Layers shared with the base are not replayed: merging b onto a only adds b's own layer.
    let onto_a = t
        .snapshot(&Output::merge(vec![a.clone(), b.clone()], OpOptions::default()))
        .await;
    assert!(!t.exists(onto_a, "a"));
    assert_eq!(t.read(onto_a, "b").as_deref(), Some("from b"));
    let a_id = t.snapshot(&a).await;
    assert_eq!(t.engine.store().snapshot(onto_a).unwrap().parent, Some(a_id));
    assert_eq!(t.read(onto_a, "keep").as_deref(), Some("kept"));
}
