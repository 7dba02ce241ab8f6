//! Parser, dump and instruction checking on arbitrary text: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ast = dockerfile::parser::parse(&text);
    let _ = ast.dump();
    let _ = ast.has_errors();
    let _ = dockerfile::instructions::from_ast(&ast);
});
