//! The compiler's bounds (see the `dockerfile` crate docs): what one word and what a whole
//! Dockerfile may expand to. The limits are far above real Dockerfiles, checked here with
//! large but plausible ones, and what goes over fails on its own line with a clear message.

use std::time::{Duration, Instant};

use dockerfile::convert::{MAX_EXPANDED, MAX_TOTAL_MATCH_STEPS, STRING_COST};
use dockerfile::shell::{MAX_EXPANSION, MAX_MATCH_STEPS, MAX_REPLACED, ShellError};
use dockerfile::{BuildOptions, Compiled, Error, ErrorKind, OfflineResolver};

fn compile(text: &str) -> Result<Compiled, Error> {
    testkit::block_on(dockerfile::compile(
        text,
        &BuildOptions::default(),
        &OfflineResolver,
    ))
}

/// Lines that set `NAME` to `bytes` bytes (a power of two of at least 1 KiB) by doubling, so
/// the Dockerfile stays small.
fn doubled(name: &str, bytes: usize) -> String {
    let mut text = format!("ARG {name}0={}\n", "x".repeat(1024));
    let mut size = 1024;
    let mut k = 0;
    while size < bytes {
        text.push_str(&format!("ARG {name}{}=${{{name}{k}}}${{{name}{k}}}\n", k + 1));
        size *= 2;
        k += 1;
    }
    text.push_str(&format!("ENV {name}=${{{name}{k}}}\n"));
    text
}

/// The limits, as the crate docs state them.
#[test]
fn limits_are_the_documented_ones() {
    assert_eq!(MAX_EXPANSION, 4 << 20);
    assert_eq!(MAX_REPLACED, 1 << 20);
    assert_eq!(MAX_MATCH_STEPS, 1 << 24);
    assert_eq!(MAX_EXPANDED, 256 << 20);
    assert_eq!(MAX_TOTAL_MATCH_STEPS, 1 << 28);
    assert_eq!(STRING_COST, 32);
}

/// Generous for real Dockerfiles: a 128 KiB variable (as long as Linux lets one argument or
/// environment string be) in the environment of 200 RUNs, a 2 MiB heredoc with variables in
/// it, and 5 000 more instructions.
#[test]
fn large_real_dockerfiles_fit() {
    let mut text = String::from("FROM scratch\n");
    text.push_str(&doubled("CERT", 128 << 10));
    for i in 0..200 {
        text.push_str(&format!("RUN echo step {i}\n"));
    }
    text.push_str("COPY <<EOF /script.sh\n");
    for i in 0..40_000 {
        text.push_str(&format!("echo line {i} of $HOME in ${{PWD:-/}} and more\n"));
    }
    text.push_str("EOF\n");
    for i in 0..5_000 {
        text.push_str(&format!("ENV V{}=value{i}\nLABEL l{i}=$V{i}\n", i % 100));
    }
    let compiled = compile(&text).unwrap_or_else(|e| panic!("{e} at {:?}", e.location));
    // Eight ARGs and an ENV make CERT; then the RUNs, the COPY, and the ENV and LABEL pairs.
    assert_eq!(compiled.image.history.len(), 8 + 1 + 200 + 1 + 10_000);
}

/// Each RUN carries the whole environment: a 1 MiB variable (and the ARGs that built it, 2 MiB
/// more) then RUN after RUN adds up, and the RUN that takes the Dockerfile over `MAX_EXPANDED`
/// fails, naming its line.
#[test]
fn every_run_counts_its_environment() {
    let mut text = String::from("FROM scratch\n");
    text.push_str(&doubled("BIG", 1 << 20));
    let first_run = text.lines().count() + 1;
    for i in 0..400 {
        text.push_str(&format!("RUN echo {i}\n"));
    }
    let err = compile(&text).expect_err("400 RUNs of a 1 MiB environment are too much");
    assert!(
        matches!(err.kind, ErrorKind::TooLarge { max } if max == MAX_EXPANDED),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("the Dockerfile expands to more than 256 MiB"),
        "{err}"
    );
    let line = err.location.expect("the error names the RUN").start_line;
    // Each RUN counts at least its 3 MiB environment (and its history lists the ARGs again).
    let runs = line - first_run;
    assert!((32..86).contains(&runs), "failed at RUN number {runs}");
}

/// A stage built on another starts from a copy of its state. Copies for many stages count,
/// except for the last stage built on it, which takes the state without copying (so a chain
/// of stages costs nothing).
#[test]
fn copies_of_a_stage_count() {
    let mut text = String::from("FROM scratch AS base\n");
    text.push_str(&doubled("BIG", 1 << 20));
    let mut children = String::new();
    let mut copies = String::from("FROM scratch\n");
    for i in 0..200 {
        children.push_str(&format!("FROM base AS child{i}\n"));
        copies.push_str(&format!("COPY --from=child{i} /a /a{i}\n"));
    }
    let fan_out = format!("{text}{children}{copies}");
    let err = compile(&fan_out).expect_err("200 copies of several MiB are too much");
    assert!(matches!(err.kind, ErrorKind::TooLarge { .. }), "{err}");
    let line = err.location.expect("the error names the FROM").start_line;
    // The base's state holds at least 3 MiB of variables, so fewer than 86 copies fit.
    let child = line - text.lines().count() - 1;
    assert!((8..86).contains(&child), "failed at child {child}");

    let mut chain = text.clone();
    for i in 0..300 {
        let base = if i == 0 {
            "base".to_string()
        } else {
            format!("s{}", i - 1)
        };
        chain.push_str(&format!("FROM {base} AS s{i}\nENV N={i}\n"));
    }
    let compiled = compile(&chain).unwrap_or_else(|e| panic!("a chain of stages copies nothing: {e}"));
    let env = compiled.image.config.env.unwrap_or_default();
    assert_eq!(env.last().map(String::as_str), Some("N=299"));
}

/// Pattern matching is bounded per word, on the word's line.
#[test]
fn costly_pattern_matching_fails_on_its_line() {
    // 64 Ki characters scanned against a pattern of 301 steps: about 20 M steps.
    let mut text = String::from("FROM scratch\n");
    text.push_str(&doubled("TEXT", 64 << 10));
    let line = text.lines().count() + 1;
    text.push_str(&format!("ENV OUT=${{TEXT//{}b/c}}\n", "?".repeat(300)));
    let err = compile(&text).expect_err("the pattern is too costly");
    assert_eq!(err.location.map(|l| l.start_line), Some(line));
    assert!(
        matches!(err.kind, ErrorKind::Expansion(ShellError::MatchTooCostly { max, .. }) if max == MAX_MATCH_STEPS),
        "{err}"
    );
}

/// Every instruction costs the same however many came before: 20 000 ENV lines (and as many
/// RUNs) compile in seconds even in a debug build. Before, ENV was cubic: 4 000 lines took
/// 11 s in release and 20 000 over ten minutes. And a stage of 20 000 steps, a chain of ops
/// 20 000 deep, compiles and is freed on a 1 MiB stack (it used to overflow 2 MiB in debug
/// builds, and in release from about 100 000 steps).
#[test]
fn many_instructions_compile_in_linear_time() {
    let lines = [
        "ENV VAR{i}=value{i}",
        "ARG ARG{i}=v",
        "RUN echo {i}",
        "COPY a /b{i}",
        "FROM scratch AS s{i}",
    ];
    for line in lines {
        let mut text = String::from("FROM scratch\n");
        for i in 0..20_000 {
            text.push_str(&line.replace("{i}", &i.to_string()));
            text.push('\n');
        }
        let start = Instant::now();
        let small_stack = std::thread::Builder::new().stack_size(1 << 20);
        let compiled = small_stack
            .spawn(move || compile(&text).map(drop))
            .unwrap()
            .join();
        let took = start.elapsed();
        match compiled {
            Ok(result) => result.unwrap_or_else(|e| panic!("{line}: {e}")),
            Err(_) => panic!("{line} × 20 000 panicked"),
        }
        assert!(took < Duration::from_secs(30), "{line} × 20 000 took {took:?}");
    }
}
