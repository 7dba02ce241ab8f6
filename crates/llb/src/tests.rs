use std::collections::BTreeMap;

use prost::Message;

use crate::*;

fn image(name: &str) -> Output {
    Output::source(
        format!("docker-image://{name}"),
        BTreeMap::new(),
        OpOptions::default(),
    )
}

fn run(root: &Output, cmd: &str) -> Output {
    let meta = pb::Meta {
        args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        ..Default::default()
    };
    let mut exec = Exec::new(meta, pb::NetMode::None, pb::SecurityMode::Sandbox);
    exec.mount(
        "/",
        Some(root),
        MountOptions {
            output: true,
            ..Default::default()
        },
    );
    exec.finish(OpOptions {
        description: Some(format!("RUN {cmd}")),
        ..Default::default()
    })
    .remove(0)
}

fn sample() -> Output {
    let base = image("docker.io/library/busybox:latest");
    let a = run(&base, "echo a > /a");
    let b = run(&base, "echo b > /b");
    let copy = pb::FileActionCopy {
        src: "/b".into(),
        dest: "/b".into(),
        mode: -1,
        timestamp: -1,
        create_dest_path: true,
        ..Default::default()
    };
    FileChain::new(Some(&a))
        .mkdir(pb::FileActionMkDir {
            path: "/work".into(),
            mode: 0o755,
            make_parents: true,
            timestamp: -1,
            ..Default::default()
        })
        .copy(Some(&b), copy)
        .finish(OpOptions::default())
        .unwrap()
}

#[test]
fn golden_digests_pin_the_encoding() {
    // If these change, the encoding changed: bump FORMAT_VERSION and update them together.
    // The first value was computed independently of prost: sha256 of the hand-encoded bytes
    // 0x1a <len> (0x0a <len> "docker-image://docker.io/library/busybox:latest").
    assert_eq!(
        image("docker.io/library/busybox:latest").digest().to_string(),
        "sha256:74ecb5d790c33a213ba00f8f43d62947df1d4dea72f5ec13353a9b943f469f0f"
    );
    assert_eq!(
        sample().digest().to_string(),
        "sha256:08400896b4fb1e2605ff621126fa979a35e16ac177d2e3cf5f50dc6439b7a672"
    );
}

#[test]
fn marshal_is_deterministic_and_shares_identical_ops() {
    let one = Definition::marshal(Some(&sample()), Vec::new()).to_bytes();
    let two = Definition::marshal(Some(&sample()), Vec::new()).to_bytes();
    assert_eq!(one, two);
    let def = Definition::marshal(Some(&sample()), Vec::new());
    // busybox once, two runs, one file op, the terminator.
    assert_eq!(def.pb.def.len(), 5);
}

#[test]
fn load_validates_and_dumps() {
    let def = Definition::marshal(Some(&sample()), Vec::new());
    let graph = Graph::load(&def.pb).unwrap();
    assert_eq!(graph.vertices.len(), 4);
    let text = dump(&graph);
    let expected = r#"v0 = source docker-image://docker.io/library/busybox:latest
v1 = exec ["/bin/sh", "-c", "echo a > /a"] cwd="/" env=["PATH=/bin"] network=none mount(/ <- v0 out=0)  # RUN echo a > /a
v2 = exec ["/bin/sh", "-c", "echo b > /b"] cwd="/" env=["PATH=/bin"] network=none mount(/ <- v0 out=0)  # RUN echo b > /b
v3 = file [#0 on v1: mkdir "/work" mode=755 parents] [#1 on #0: copy v2:"/b" -> "/b" parents]
"#;
    assert!(text.starts_with(expected), "got:\n{text}");
    assert!(text.lines().last().unwrap().starts_with("result = v3 sha256:"));
}

#[test]
fn load_rejects_tampered_definitions() {
    let mut def = Definition::marshal(Some(&sample()), Vec::new()).pb;
    // Drop the base image: the runs now refer to a missing input.
    def.def.remove(0);
    assert!(matches!(Graph::load(&def), Err(LoadError::MissingInput { .. })));

    let empty = pb::Definition::default();
    assert!(matches!(Graph::load(&empty), Err(LoadError::Empty)));

    let garbage = pb::Definition {
        def: vec![vec![0xff, 0xff, 0xff]],
        ..Default::default()
    };
    assert!(Graph::load(&garbage).is_err());

    // A terminator pointing at an output that does not exist.
    let mut def = Definition::marshal(Some(&sample()), Vec::new()).pb;
    let last = def.def.len() - 1;
    let mut term = pb::Op::decode(def.def[last].as_slice()).unwrap();
    term.inputs[0].index = 7;
    def.def[last] = term.encode_to_vec();
    assert!(Graph::load(&def).is_err());
}

#[test]
fn empty_result_round_trips() {
    let def = Definition::marshal(None, Vec::new());
    let graph = Graph::load(&def.pb).unwrap();
    assert!(graph.root.is_none());
    assert!(graph.vertices.is_empty());
}

/// Runs `work` on a thread with a small stack, as a guard against recursion over the graph.
fn on_small_stack(work: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(work)
        .unwrap()
        .join()
        .expect("no stack overflow");
}

#[test]
fn long_chains_encode_marshal_and_drop_without_recursion() {
    on_small_stack(|| {
        let mut top = image("busybox");
        for i in 0..50_000 {
            top = FileChain::new(Some(&top))
                .mkdir(pb::FileActionMkDir {
                    path: format!("/d{i}"),
                    mode: 0o755,
                    make_parents: false,
                    owner: None,
                    timestamp: -1,
                })
                .finish(OpOptions::default())
                .unwrap();
        }
        let definition = Definition::marshal(Some(&top), Vec::new());
        assert_eq!(
            definition.pb.def.len(),
            50_002,
            "every op once, and the terminator"
        );
        drop(top);
    });
}

#[test]
fn equal_inputs_share_one_slot_whatever_their_number() {
    let bases: Vec<Output> = (0..20_000).map(|i| image(&format!("img{i}"))).collect();
    let meta = pb::Meta {
        args: vec!["true".into()],
        ..Default::default()
    };
    let mut exec = Exec::new(meta, pb::NetMode::None, pb::SecurityMode::Sandbox);
    exec.mount(
        "/",
        Some(&bases[0]),
        MountOptions {
            output: true,
            ..Default::default()
        },
    );
    for (i, base) in bases.iter().chain(bases.iter()).enumerate() {
        exec.mount(&format!("/m{i}"), Some(base), MountOptions::default());
    }
    let out = exec.finish(OpOptions::default()).remove(0);
    let definition = Definition::marshal(Some(&out), Vec::new());
    let bytes = &definition.pb.def[definition.pb.def.len() - 2];
    let op = pb::Op::decode(bytes.as_slice()).unwrap();
    let Some(pb::op::Kind::Exec(exec)) = op.kind else {
        panic!("not an exec")
    };
    assert_eq!(op.inputs.len(), 20_000, "each base once");
    assert_eq!(exec.mounts[1].input, exec.mounts[20_001].input);
    assert_eq!(exec.mounts[0].input, exec.mounts[1].input);
}
