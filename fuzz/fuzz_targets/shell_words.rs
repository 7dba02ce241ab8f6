//! Shell-word expansion on arbitrary words, modes and environments: nothing may panic, and the
//! three entry points must agree. Input layout: see `kiln_fuzz::ShellInput`.
#![no_main]

use kiln_fuzz::ShellInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = ShellInput::decode(data) else {
        return;
    };
    let env = input.env();
    let lexer = input.lexer;
    let single = lexer.process_word(&input.word, &*env);
    let words = lexer.process_words(&input.word, &*env);
    let full = lexer.process_word_with_matches(&input.word, &*env);
    assert_eq!(
        single.as_ref().ok(),
        full.as_ref().ok().map(|r| &r.result),
        "process_word and process_word_with_matches disagree on {:?}",
        input.word
    );
    assert_eq!(
        words.as_ref().ok(),
        full.as_ref().ok().map(|r| &r.words),
        "process_words and process_word_with_matches disagree on {:?}",
        input.word
    );
    if let Ok(full) = &full {
        // A name is either set or unset, never both.
        assert!(
            full.matched.is_disjoint(&full.unmatched),
            "a name is both matched and unmatched in {:?}",
            input.word
        );
    }
    // The error must be the same whichever entry point reports it.
    match (&single, &full) {
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (Ok(_), Ok(_)) => {}
        _ => panic!(
            "process_word and process_word_with_matches disagree on success for {:?}",
            input.word
        ),
    }
    if let Err(e) = &single {
        let _ = e.offset();
    }
});
