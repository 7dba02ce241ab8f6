//! `cargo xtask tidy`: the architecture checks that the compiler does not make.
//!
//! - Dependency directions between the workspace's crates ([`ALLOWED`]).
//! - `unsafe` only in `executor::sys`; every crate opens with a `//!` doc.
//! - No function over [`lengths::MAX_LINES`] lines ([`lengths`]).
//! - No module cycle between the files of a crate ([`cycles`]).
//!
//! The last two read the code with `syn`, so comments, strings and macros never fool them.

mod cycles;
mod lengths;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Internal dependency edges each crate may have (normal dependencies). Adding an edge is a
/// design change: update ARCHITECTURE.md in the same commit.
const ALLOWED: &[(&str, &[&str])] = &[
    ("gocompat", &[]),
    ("oci", &[]),
    ("fsops", &["gocompat", "oci"]),
    ("llb", &["oci"]),
    ("dockerfile", &["gocompat", "llb", "oci"]),
    ("solver", &["oci"]),
    ("store", &["fsops", "gocompat", "oci"]),
    ("executor", &["fsops", "oci"]),
    ("registry", &["oci"]),
    ("sources", &["fsops", "oci", "registry", "store"]),
    ("exporter", &["fsops", "oci", "store"]),
    (
        "engine",
        &[
            "dockerfile",
            "executor",
            "exporter",
            "fsops",
            "llb",
            "oci",
            "registry",
            "solver",
            "sources",
            "store",
        ],
    ),
    ("api", &["fsops"]),
    ("daemon", &["api", "engine", "llb", "oci", "registry"]),
    ("cli", &["api", "daemon", "dockerfile", "engine", "llb", "oci"]),
    ("testkit", &["oci", "registry", "store"]),
    ("xtask", &["testkit"]),
];

/// Runs every check and fails listing all problems found.
pub fn tidy() -> Result<()> {
    let mut problems = dependency_problems()?;
    problems.extend(source_problems()?);
    let sources = sources()?;
    problems.extend(lengths::problems(&sources)?);
    problems.extend(cycles::problems(&crate_roots()?)?);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("tidy found {} problem(s)", problems.len());
    }
    eprintln!(
        "tidy: dependency directions, unsafe, crate docs, function lengths and module cycles are in order"
    );
    Ok(())
}

/// Dependency edges that [`ALLOWED`] does not allow.
fn dependency_problems() -> Result<Vec<String>> {
    let metadata = crate::cargo_metadata()?;
    let packages = metadata["packages"]
        .as_array()
        .context("no packages in cargo metadata")?;
    let internal: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let mut problems = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == name) else {
            problems.push(format!(
                "crate {name} is not in xtask's dependency table (ALLOWED)"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !internal.iter().any(|i| i == dep_name) {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            if dev && dep_name == "testkit" {
                continue;
            }
            if dep_name == "testkit" && name != "xtask" {
                problems.push(format!("{name} depends on testkit outside dev-dependencies"));
            } else if !dev && !allowed.contains(&dep_name) {
                problems.push(format!(
                    "{name} must not depend on {dep_name} (see ARCHITECTURE.md)"
                ));
            }
        }
    }
    Ok(problems)
}

/// `unsafe` outside executor's sys module, and crates without a `//!` doc.
fn source_problems() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir("crates")? {
        let dir = entry?.path();
        let lib = dir.join("src/lib.rs");
        let main = dir.join("src/main.rs");
        let root_file = if lib.exists() { lib } else { main };
        let text = std::fs::read_to_string(&root_file).unwrap_or_default();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{} does not open with a //! crate doc",
                root_file.display()
            ));
        }
        for file in rust_files(&dir.join("src"))? {
            let text = std::fs::read_to_string(&file)?;
            let allowed = file.ends_with("executor/src/sys.rs");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if !allowed
                    && (code.contains("unsafe {")
                        || code.contains("unsafe fn")
                        || code.contains("unsafe impl"))
                {
                    problems.push(format!(
                        "{}:{}: unsafe outside executor::sys",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Every Rust file of the project that [`lengths`] checks: the crates' sources, tests, benches
/// and examples, xtask, and the fuzz package.
fn sources() -> Result<Vec<PathBuf>> {
    let mut dirs = vec![PathBuf::from("xtask/src"), PathBuf::from("fuzz")];
    for entry in std::fs::read_dir("crates")? {
        dirs.push(entry?.path());
    }
    let mut files = Vec::new();
    for dir in dirs {
        files.extend(rust_files(&dir)?);
    }
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "target"));
    files.sort();
    Ok(files)
}

/// The root file of every crate [`cycles`] checks: each library and binary of the workspace's
/// packages, and each integration test binary.
fn crate_roots() -> Result<Vec<PathBuf>> {
    let mut dirs = vec![PathBuf::from("xtask")];
    for entry in std::fs::read_dir("crates")? {
        dirs.push(entry?.path());
    }
    dirs.sort();
    let mut roots = Vec::new();
    for dir in dirs {
        for name in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(name);
            if file.is_file() {
                roots.push(file);
            }
        }
        for tests in [dir.join("tests"), dir.join("src/bin")] {
            let Ok(entries) = std::fs::read_dir(&tests) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter_map(|p| {
                    if p.extension().is_some_and(|e| e == "rs") {
                        Some(p)
                    } else {
                        let main = p.join("main.rs");
                        main.is_file().then_some(main)
                    }
                })
                .collect();
            found.sort();
            roots.extend(found);
        }
    }
    Ok(roots)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// Reads and parses a Rust file.
fn parse(path: &Path) -> Result<syn::File> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    syn::parse_file(&text).with_context(|| {
        format!(
            "failed to parse {} (tidy reads every Rust file with syn)",
            path.display()
        )
    })
}
