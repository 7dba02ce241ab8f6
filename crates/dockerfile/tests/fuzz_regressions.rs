//! Inputs found while fuzzing the frontend (see `fuzz/README.md` at the workspace root), kept as
//! ordinary tests so they never come back.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use dockerfile::shell::{Lexer, MAX_REPLACED, ShellError};
use dockerfile::{BuildOptions, OfflineResolver};

/// `depth` pattern replacements nested inside each other's replacement text, each replacing
/// every character of `$a` with the next one in: the result is len(a)^(depth + 1) long.
fn nested_replacement(depth: usize) -> String {
    let mut word = "$a".to_string();
    for _ in 0..depth {
        word = format!("${{a//?/{word}}}");
    }
    word
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Polls a future that never waits (the offline compiler) to completion.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// shell_words: a 71-byte input (seven nested `${a//?/…}` over a 10-character value) took 17 s
/// and 800 MB to expand to 10^8 characters; one level more asks for gigabytes. Replacement
/// output is now capped per word.
#[test]
fn nested_pattern_replacement_is_capped() {
    let env = env(&[("a", "aaaaaaaaaa")]);
    let lexer = Lexer::new('\\');
    for depth in [7, 8, 40] {
        let word = nested_replacement(depth);
        match lexer.process_word(&word, &env) {
            Err(ShellError::TooLong { max, offset }) => {
                assert_eq!(max, MAX_REPLACED);
                assert!(offset < word.len(), "offset {offset} outside the word");
            }
            other => panic!(
                "depth {depth}: expected TooLong, got {:?}",
                other.map(|s| s.len())
            ),
        }
        assert!(matches!(
            lexer.process_words(&word, &env),
            Err(ShellError::TooLong { .. })
        ));
    }
    // Shallow nesting is untouched.
    assert_eq!(
        lexer.process_word(&nested_replacement(2), &env).unwrap(),
        "a".repeat(1000)
    );
}

/// The cap is on the total of one word, and exactly `MAX_REPLACED` bytes are still allowed.
#[test]
fn replacement_cap_boundary() {
    let lexer = Lexer::new('\\');
    // 1024 matches × 1024 bytes = MAX_REPLACED exactly.
    let env = env(&[("a", &"a".repeat(1024)), ("b", &"b".repeat(1024))]);
    let full = lexer.process_word("${a//?/$b}", &env).unwrap();
    assert_eq!(full.len(), MAX_REPLACED);
    assert!(full.bytes().all(|c| c == b'b'));
    // Two such expansions in one word share the budget.
    assert!(matches!(
        lexer.process_word("${a//?/$b}${a/?/x}", &env),
        Err(ShellError::TooLong { .. })
    ));
    // A fresh word gets a fresh budget.
    assert_eq!(lexer.process_word("${a/?/x}", &env).unwrap().len(), 1024);
}

/// The same input through the compiler: an error on the instruction's line, not an OOM.
#[test]
fn nested_pattern_replacement_in_a_dockerfile() {
    let text = format!(
        "FROM scratch\nENV a=aaaaaaaaaa\nLABEL big={}\n",
        nested_replacement(8)
    );
    let err = block_on(dockerfile::compile(
        &text,
        &BuildOptions::default(),
        &OfflineResolver,
    ))
    .expect_err("an expansion of 10^9 characters must fail");
    let location = err.location.expect("the error names the LABEL line");
    assert_eq!((location.start_line, location.end_line), (3, 3));
    assert!(
        err.to_string().contains("longer than"),
        "unexpected message: {err}"
    );
}
