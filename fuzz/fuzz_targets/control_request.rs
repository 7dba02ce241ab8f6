//! What a client sends a daemon (untrusted: anyone who reaches its socket or port): decoding a
//! build stream's message and the checks the daemon runs before anything touches its disk must
//! never panic, and a listing that passes them never names a path outside its directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = api::pb::ClientMessage::decode(data) else {
        return;
    };
    match message.message {
        Some(api::pb::client_message::Message::Start(start)) => {
            let _ = api::check_start(&start);
            for text in start.build_args.keys().chain(start.cache_from.iter().filter_map(|c| match &c.backend {
                Some(api::pb::cache_backend::Backend::Registry(r)) => Some(r),
                _ => None,
            })) {
                let _ = api::Address::parse(text);
            }
        }
        Some(api::pb::client_message::Message::Files(list)) => {
            if api::walk::check_listing(&list.entries).is_ok() {
                for entry in &list.entries {
                    let parts = api::walk::components(&entry.path).expect("checked");
                    assert!(parts.iter().all(|p| *p != b".." && !p.is_empty()));
                }
            }
        }
        _ => {}
    }
    let _ = api::pb::ServerMessage::decode(data);
});
