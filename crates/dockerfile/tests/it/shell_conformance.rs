//! Runs BuildKit's shell-lexer tables (`envVarTest`, `wordsTest`, kept under
//! the shared conformance directory) against our lexer, plus a no-panic sweep
//! over generated inputs. See the conformance README, section 2, for the file
//! formats. Missing data files fail the test rather than skipping it.

use std::collections::BTreeMap;

use dockerfile::shell::{CaseInsensitiveEnv, Env, Lexer, LexerOptions};

fn read_table(name: &str) -> String {
    let path = testkit::conformance_dir().join("buildkit-shell").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read conformance table {} ({e}); set KILN_CONFORMANCE_DIR",
            path.display()
        )
    })
}

/// Checks one `process_word` outcome; returns a failure description.
fn judge(line: usize, input: &str, expected: &str, got: Result<String, String>) -> Option<String> {
    match (expected, got) {
        ("error", Err(_)) => None,
        ("error", Ok(v)) => Some(format!("line {line}: {input:?} should fail, got {v:?}")),
        (want, Ok(v)) if v == want => None,
        (want, got) => Some(format!("line {line}: {input:?} want {want:?}, got {got:?}")),
    }
}

#[test]
fn buildkit_env_var_table() {
    let text = read_table("envVarTest");
    let pairs = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let list: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let windows: CaseInsensitiveEnv = pairs.into_iter().collect();
    let unix_envs: [&dyn Env; 2] = [&list, &map];
    let lexer = Lexer::new('\\');

    let (mut cases, mut failures) = (0, Vec::new());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if raw.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let fields: Vec<&str> = trimmed.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            failures.push(format!("line {line}: expected 3 fields: {raw:?}"));
            continue;
        };
        // A (all platforms) runs both ways: Unix lookups are case-sensitive,
        // Windows lookups are not.
        let envs: Vec<&dyn Env> = match platform {
            "A" => vec![unix_envs[0], unix_envs[1], &windows],
            "U" => unix_envs.to_vec(),
            "W" => vec![&windows],
            other => {
                failures.push(format!("line {line}: unknown platform {other:?}"));
                continue;
            }
        };
        cases += 1;
        for env in envs {
            let got = lexer.process_word(input, env).map_err(|e| e.to_string());
            failures.extend(judge(line, input, expected, got));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cases, 230, "envVarTest case count changed");
    eprintln!("envVarTest: {cases} cases passed");
}

#[test]
fn buildkit_words_table() {
    let text = read_table("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<String> = Vec::new();

    let (mut cases, mut failures) = (0, Vec::new());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("ENV ") {
            // Verbatim, trailing spaces included.
            env.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let [input, expected] = raw.split('|').collect::<Vec<_>>()[..] else {
            failures.push(format!("line {line}: expected exactly one '|': {raw:?}"));
            continue;
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        cases += 1;
        let map: BTreeMap<String, String> = env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        for env in [&env as &dyn Env, &map] {
            let got = lexer
                .process_words(input, env)
                .unwrap_or_else(|_| vec!["error".to_string()]);
            if got != expected {
                failures.push(format!("line {line}: {input:?} want {expected:?}, got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cases, 24, "wordsTest case count changed");
    eprintln!("wordsTest: {cases} cases passed");
}

/// Deterministic xorshift generator, enough to spread inputs around.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn generated_inputs_never_panic() {
    const ALPHABET: [char; 18] = [
        '$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '\\', '\'', '"', 'a', ' ', '`', '*', '한',
    ];
    let env: BTreeMap<String, String> = [("a", "a*b c"), ("aa", "")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut lexers = Vec::new();
    for escape in ['\\', '`'] {
        for bits in 0..16u8 {
            lexers.push(Lexer::new(escape).with_options(LexerOptions {
                raw_quotes: bits & 1 != 0,
                raw_escapes: bits & 2 != 0,
                skip_process_quotes: bits & 4 != 0,
                skip_unset_env: bits & 8 != 0,
            }));
        }
    }
    let run = |word: &str, lexer: &Lexer| {
        let full = lexer.process_word_with_matches(word, &env);
        let single = lexer.process_word(word, &env);
        assert_eq!(full.as_ref().map(|r| &r.result), single.as_ref(), "{word:?}");
    };
    // Every word of up to three symbols, with the default lexer and modes.
    let mut words = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = words
            .iter()
            .flat_map(|w| ALPHABET.iter().map(move |c| format!("{w}{c}")))
            .collect();
        for word in &longer {
            for lexer in &lexers {
                run(word, lexer);
            }
        }
        words = longer;
    }
    // Random longer words.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = (rng.next() % 24) as usize;
        let word: String = (0..len)
            .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize])
            .collect();
        let lexer = &lexers[(rng.next() % lexers.len() as u64) as usize];
        run(&word, lexer);
    }
}
