//! Helpers shared by kiln's fuzz targets and the seed generator (`make_seeds`).
//!
//! The targets themselves live in `fuzz_targets/`; this library only holds what more than one
//! of them (or the seed generator) needs: a trivial executor for the compiler's future, the
//! byte layout of `shell_words` inputs, and the scratch-directory rules of `layer_apply`.

#![forbid(unsafe_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use dockerfile::shell::{CaseInsensitiveEnv, Env, Lexer, LexerOptions};

/// Polls `future` to completion on the current thread.
///
/// The futures fuzzed here never wait on anything (the `OfflineResolver` answers at once), so
/// a pending poll means the harness is wrong, not the input: rather than spin forever with a
/// waker nobody calls, it panics after a generous number of polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("future still pending after 1000 polls: it waits on something the harness cannot drive")
}

/// How a `shell_words` input presents its variables to the lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// `KEY=value` strings, as a container's environment (`Vec<String>`).
    List,
    /// Names mapped to values (`BTreeMap`), case-sensitive.
    Map,
    /// Windows-style case-insensitive names.
    CaseInsensitive,
}

/// A decoded `shell_words` input.
///
/// Layout: byte 0 is the mode: bit 0 picks the escape character (`\` when clear, `` ` `` when
/// set), bits 1–4 the [`LexerOptions`] switches (raw_quotes, raw_escapes,
/// skip_process_quotes, skip_unset_env), bits 5–6 the [`EnvKind`] (0 and 3 both mean
/// [`EnvKind::List`]). The rest, read as lossy UTF-8, is split on NUL: the first piece is the
/// word, each further piece one `KEY=value` environment entry.
#[derive(Debug)]
pub struct ShellInput {
    /// The lexer with the chosen escape character and modes.
    pub lexer: Lexer,
    /// The word to expand.
    pub word: String,
    /// How the environment is presented.
    pub env_kind: EnvKind,
    /// The environment entries, `KEY=value` (an entry without `=` is a name with an empty
    /// value for the map kinds, and kept verbatim for the list kind).
    pub env: Vec<String>,
}

impl ShellInput {
    /// Decodes fuzzer bytes; `None` for an empty input.
    pub fn decode(data: &[u8]) -> Option<ShellInput> {
        let (&mode, rest) = data.split_first()?;
        let escape = if mode & 1 == 0 { '\\' } else { '`' };
        let options = LexerOptions {
            raw_quotes: mode & 2 != 0,
            raw_escapes: mode & 4 != 0,
            skip_process_quotes: mode & 8 != 0,
            skip_unset_env: mode & 16 != 0,
        };
        let env_kind = match (mode >> 5) & 3 {
            1 => EnvKind::Map,
            2 => EnvKind::CaseInsensitive,
            _ => EnvKind::List,
        };
        let text = String::from_utf8_lossy(rest);
        let mut pieces = text.split('\0');
        let word = pieces.next().unwrap_or_default().to_string();
        Some(ShellInput {
            lexer: Lexer::new(escape).with_options(options),
            word,
            env_kind,
            env: pieces.map(str::to_string).collect(),
        })
    }

    /// Encodes a mode byte, a word and environment entries: the inverse of
    /// [`ShellInput::decode`], for seeds.
    pub fn encode(mode: u8, word: &str, env: &[&str]) -> Vec<u8> {
        let mut out = vec![mode];
        out.extend_from_slice(word.as_bytes());
        for entry in env {
            out.push(0);
            out.extend_from_slice(entry.as_bytes());
        }
        out
    }

    /// The environment in the chosen presentation.
    pub fn env(&self) -> Box<dyn Env> {
        let split = |e: &String| -> (String, String) {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        };
        match self.env_kind {
            EnvKind::List => Box::new(self.env.clone()),
            EnvKind::Map => Box::new(
                self.env
                    .iter()
                    .map(split)
                    .collect::<std::collections::BTreeMap<_, _>>(),
            ),
            EnvKind::CaseInsensitive => {
                let mut env = CaseInsensitiveEnv::new();
                for e in &self.env {
                    let (k, v) = split(e);
                    env.insert(&k, v);
                }
                Box::new(env)
            }
        }
    }
}
