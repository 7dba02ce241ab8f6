//! Decoding and validating an untrusted LLB definition: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(def) = llb::pb::Definition::decode(data) else {
        return;
    };
    let Ok(graph) = llb::Graph::load(&def) else {
        return;
    };
    let _ = llb::dump(&graph);
    for vertex in &graph.vertices {
        let _ = vertex.name();
        let _ = vertex.output_count();
        let _ = graph.locations(&vertex.digest);
    }
});
