//! The real-world corpus (`shared/conformance/real-dockerfiles`): 99 unmodified Dockerfiles of
//! official images and well-known projects. Every one must parse and compile to LLB for its
//! default target with no build args and no network (base images stay unresolved).

use std::path::PathBuf;

use dockerfile::{BuildOptions, OfflineResolver};

fn corpus() -> Vec<PathBuf> {
    testkit::conformance_cases("real-dockerfiles")
        .into_iter()
        .map(|case| case.join("Dockerfile"))
        .filter(|file| file.is_file())
        .collect()
}

#[tokio::test]
async fn every_real_world_dockerfile_compiles() {
    let files = corpus();
    assert_eq!(files.len(), 99, "the corpus holds 99 Dockerfiles");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        match dockerfile::compile(&text, &BuildOptions::default(), &OfflineResolver).await {
            Ok(compiled) => {
                // The graph must load and validate like any received definition.
                if let Err(e) = llb::Graph::load(&compiled.definition.pb) {
                    failures.push(format!("{}: invalid LLB: {e}", file.display()));
                }
            }
            Err(e) => {
                let line = e.location.map(|l| l.start_line).unwrap_or(0);
                failures.push(format!("{}:{line}: {e}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
