//! Decoding what a registry sends back (auth challenges, token responses, error bodies,
//! manifests, indexes): nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    registry::fuzzing::registry_response(data);
});
