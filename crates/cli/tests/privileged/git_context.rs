//! A git repository as the build context (`kiln build http://…/repo.git#ref:subdir`): the
//! engine checks it out (here over git's dumb HTTP protocol from a local server) and builds
//! the Dockerfile inside it, with `-f` a path inside the checkout.

use std::path::Path;

use crate::common::{Harness, HttpServer, bare_for_dumb_http, git, text, write};

/// A repository with a `main` and a `feature` branch, each with an `app` directory holding a
/// Dockerfile (built FROM `base`), a second Dockerfile and a `.dockerignore`d file.
fn repository(repos: &Path, base: &str) {
    let work = repos.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    write(
        &work,
        "app/Dockerfile",
        &format!("FROM {base}\nCOPY . /ctx/\nRUN cat /ctx/greeting > /ran\n"),
    );
    write(
        &work,
        "app/other.Dockerfile",
        "FROM scratch\nCOPY greeting /only\n",
    );
    write(&work, "app/greeting", "hello from main\n");
    write(&work, "app/.dockerignore", "ignored\n");
    write(&work, "app/ignored", "left out\n");
    write(&work, "README", "outside the subdirectory\n");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "main"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "app/greeting", "hello from feature\n");
    git(&work, &["commit", "-q", "-am", "feature"]);
    git(&work, &["checkout", "-q", "main"]);
}

#[test]
fn a_git_repository_is_a_build_context() {
    let h = Harness::start();
    let repos = tempfile::tempdir().unwrap();
    repository(repos.path(), h.base());
    let server = HttpServer::serve(&bare_for_dumb_http(repos.path()));
    let main = format!("{}#main:app", server.url("repo.git"));

    // The subdirectory is the context: its Dockerfile, its .dockerignore, no `.git`.
    let built = h.build_dir(Path::new(&main), &[]);
    assert_eq!(
        built.list("/ctx"),
        vec![".dockerignore", "Dockerfile", "greeting", "other.Dockerfile"]
    );
    assert_eq!(built.read("/ran"), "hello from main\n");
    assert!(built.log.contains("repo.git"), "{}", built.log);

    // The same commit again: the checkout and every step are cache hits.
    let again = h.build_dir(Path::new(&main), &[]);
    assert!(again.log.contains("CACHED"), "{}", again.log);
    assert_eq!(again.read("/ran"), "hello from main\n");

    // Another branch, and `-f` naming a Dockerfile inside the checkout.
    let feature = format!("{}#feature:app", server.url("repo.git"));
    let built = h.build_dir(Path::new(&feature), &["-f", "other.Dockerfile"]);
    assert_eq!(built.read("/only"), "hello from feature\n");

    // `debug llb` fetches the repository to read its Dockerfile; offline it cannot.
    let output = h.kiln.run(&["debug", "llb", &main]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = h.kiln.run(&["debug", "llb", "--offline", &main]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("run without --offline"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_git_context_that_cannot_be_fetched_says_why() {
    let h = Harness::start();
    let repos = tempfile::tempdir().unwrap();
    repository(repos.path(), h.base());
    let server = HttpServer::serve(&bare_for_dumb_http(repos.path()));

    let missing_ref = format!("{}#no-such-branch", server.url("repo.git"));
    let output = h.run_build(Path::new(&missing_ref), &[]);
    let err = text(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("no-such-branch"), "{err}");

    let missing_repo = server.url("nothing-here.git");
    let output = h.run_build(Path::new(&missing_repo), &[]);
    let err = text(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(err.contains("nothing-here.git"), "{err}");
}
