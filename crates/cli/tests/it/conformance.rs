//! Conformance through the binary: `kiln debug parse` reproduces BuildKit's parser dumps byte for
//! byte and rejects its negative cases; `kiln debug llb --offline` compiles every Dockerfile of
//! the real-world corpus.

use std::path::Path;
use std::process::Command;

fn kiln(args: &[&str], dir: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command.args(args);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "kiln panicked on {args:?}:\n{stderr}"
    );
    output
}

#[test]
fn debug_parse_matches_buildkit_dumps() {
    let cases = testkit::conformance_cases("buildkit-parser/testfiles");
    assert_eq!(cases.len(), 33);
    let mut failures = Vec::new();
    for case in &cases {
        let output = kiln(
            &["debug", "parse", case.join("Dockerfile").to_str().unwrap()],
            None,
        );
        let expected = std::fs::read(case.join("result")).unwrap();
        if !output.status.success() || output.stdout != expected {
            failures.push(format!(
                "{}: exit {:?}\n--- expected\n{}--- got\n{}{}",
                case.display(),
                output.status.code(),
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 33 differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn debug_parse_rejects_buildkit_negative_cases() {
    let cases = testkit::conformance_cases("buildkit-parser/testfiles-negative");
    assert_eq!(cases.len(), 4);
    for case in &cases {
        let file = case.join("Dockerfile");
        let output = kiln(&["debug", "parse", file.to_str().unwrap()], None);
        assert!(!output.status.success(), "{} was accepted", case.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("ERROR: ") && stderr.contains("Dockerfile"),
            "unclear error: {stderr}"
        );
    }
}

#[test]
fn debug_llb_offline_compiles_the_real_world_corpus() {
    let cases = testkit::conformance_cases("real-dockerfiles");
    assert_eq!(cases.len(), 99);
    let mut failures = Vec::new();
    for case in &cases {
        // Each case directory holds only its Dockerfile: it serves as the build context.
        let output = kiln(&["debug", "llb", "--offline", case.to_str().unwrap()], None);
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.lines().last().is_some_and(|l| l.starts_with("result = ")) {
            failures.push(format!(
                "{}: {}",
                case.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 99 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
