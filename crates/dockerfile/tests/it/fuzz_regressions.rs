//! Inputs found while fuzzing the frontend (see `fuzz/README.md` at the workspace root), kept as
//! ordinary tests so they never come back.

use std::collections::BTreeMap;

use dockerfile::shell::{Lexer, MAX_EXPANSION, MAX_REPLACED, ShellError};
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

fn compile(text: &str) -> Result<dockerfile::Compiled, dockerfile::Error> {
    testkit::block_on(dockerfile::compile(
        text,
        &BuildOptions::default(),
        &OfflineResolver,
    ))
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
    let err = compile(&text).expect_err("an expansion of 10^9 characters must fail");
    let location = err.location.expect("the error names the LABEL line");
    assert_eq!((location.start_line, location.end_line), (3, 3));
    assert!(
        err.to_string().contains("longer than"),
        "unexpected message: {err}"
    );
}

/// An adversarial probe: ten `ARG Lk=${Lk-1}…` lines, each repeating the one before eight
/// times (about 600 bytes of Dockerfile), asked for gigabytes and aborted at 7 GB. A word may
/// now grow by at most `MAX_EXPANSION` bytes, so it fails on the first line over the limit,
/// having spent a few megabytes. Both scopes: global ARGs (expanded while planning) and ARGs
/// in a stage (expanded while converting).
#[test]
fn exponential_arg_growth_fails_on_its_line() {
    // L0 is 16 bytes and each level is eight of the one before: L6 is exactly MAX_EXPANSION
    // (still allowed), L7 is eight times that.
    let mut args = String::from("ARG L0=0123456789abcdef\n");
    for k in 1..10 {
        let previous = format!("${{L{}}}", k - 1);
        args.push_str(&format!("ARG L{k}={}\n", previous.repeat(8)));
    }
    assert!(args.len() < 600, "the probe is {} bytes", args.len());
    for (text, line_of_l7) in [
        (format!("{args}FROM scratch\nARG L9\n"), 8),
        (format!("FROM scratch\n{args}RUN echo $L9\n"), 9),
    ] {
        let err = compile(&text).expect_err("an expansion of gigabytes must fail");
        let location = err.location.expect("the error names the ARG line");
        assert_eq!((location.start_line, location.end_line), (line_of_l7, line_of_l7));
        assert!(
            matches!(
                &err.kind,
                dockerfile::ErrorKind::Expansion(ShellError::ExpansionTooLong { max, .. }) if *max == MAX_EXPANSION
            ),
            "unexpected error: {err}"
        );
        assert_eq!(
            err.to_string(),
            "variable expansion produces more than 4194304 bytes in one word"
        );
    }
}
