//! The whole compiler (offline) on arbitrary text: nothing may panic, and whatever it produces
//! must survive the wire (encode, decode) and load as a valid graph.
#![no_main]

use dockerfile::{BuildOptions, OfflineResolver};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(compiled) = kiln_fuzz::block_on(dockerfile::compile(
        &text,
        &BuildOptions::default(),
        &OfflineResolver,
    )) else {
        return;
    };
    let pb = &compiled.definition.pb;
    let graph = match llb::Graph::load(pb) {
        Ok(graph) => graph,
        Err(e) => panic!("compiler output does not load: {e}"),
    };
    let _ = llb::dump(&graph);
    let bytes = compiled.definition.to_bytes();
    let decoded = llb::pb::Definition::decode(bytes.as_slice()).expect("compiler output does not decode");
    assert_eq!(
        &decoded, pb,
        "compiler output does not round-trip through its wire form"
    );
    if let Some((root, _)) = &graph.root {
        let _ = graph.locations(root);
    }
});
