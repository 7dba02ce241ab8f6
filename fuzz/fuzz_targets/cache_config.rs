//! Reading a remote cache's config (untrusted: anyone who can push to a cache repository writes
//! it) and following its records to layer chains: nothing may panic, loop or allocate without
//! bound.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = oci::cache::CacheConfig::parse(data) {
        let results = config.results(&BTreeMap::new());
        for chain in results.chains.values() {
            assert!(chain.len() <= config.layers.len());
        }
        let _ = oci::cache::CacheConfig::parse(&config.to_bytes());
    }
});
