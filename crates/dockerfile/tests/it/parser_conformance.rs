//! BuildKit's own parser test cases (`shared/conformance/buildkit-parser`), driven through our
//! parser: every positive case must dump byte-identically to its `result` file, every negative
//! case must be rejected, and line numbers must match `testfile-line`.

use std::path::PathBuf;

fn case_dirs(sub: &str) -> Vec<PathBuf> {
    testkit::conformance_cases(&format!("buildkit-parser/{sub}"))
}

#[test]
fn positive_cases_dump_exactly_like_buildkit() {
    let dirs = case_dirs("testfiles");
    assert_eq!(dirs.len(), 33, "expected BuildKit's 33 positive cases");
    let mut failures = Vec::new();
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(dir.join("result")).unwrap();
        let ast = dockerfile::parser::parse(&text);
        if ast.has_errors() {
            failures.push(format!(
                "{}: unexpected errors {:?}",
                dir.display(),
                ast.diagnostics
            ));
            continue;
        }
        // BuildKit compares `AST.Dump() + "\n"`: the root dump has one line per instruction.
        let got = ast.dump();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                dir.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_cases_are_rejected() {
    let dirs = case_dirs("testfiles-negative");
    assert_eq!(dirs.len(), 4, "expected BuildKit's 4 negative cases");
    for dir in &dirs {
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        let ast = dockerfile::parser::parse(&text);
        assert!(ast.has_errors(), "{} was accepted", dir.display());
    }
}

#[test]
fn line_numbers_count_every_line() {
    let path = testkit::conformance_dir().join("buildkit-parser/testfile-line/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    let ast = dockerfile::parser::parse(&text);
    assert!(!ast.has_errors(), "{:?}", ast.diagnostics);
    let lines: Vec<(usize, usize)> = ast.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
}
