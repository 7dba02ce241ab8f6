//! Git sources against a repository made with the git CLI and fetched over `file://`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use testkit::git;

use crate::support::{TestEngine, source};

fn write(dir: &Path, path: &str, text: &str, mode: u32) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A repository: commit one (README "one", an executable script, `sub/inner.txt`), annotated tag
/// `v1` and branch `dev` on it, then commit two on `main` (README "two").
struct Repo {
    dir: tempfile::TempDir,
    one: String,
    two: String,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q", "-b", "main"]);
        write(d, "README", "one", 0o644);
        write(d, "bin/run.sh", "#!/bin/sh\necho run\n", 0o755);
        write(d, "sub/inner.txt", "inner", 0o600);
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "one"]);
        let one = git(d, &["rev-parse", "HEAD"]);
        git(d, &["tag", "-a", "v1", "-m", "version one"]);
        git(d, &["branch", "dev"]);
        write(d, "README", "two", 0o644);
        git(d, &["commit", "-q", "-am", "two"]);
        let two = git(d, &["rev-parse", "HEAD"]);
        Repo { dir, one, two }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    fn source(&self, fragment: &str, attrs: &[(&str, &str)]) -> llb::Output {
        let url = self.url();
        let mut all = vec![("git.fullurl", url.as_str())];
        all.extend_from_slice(attrs);
        source(&format!("git://local/repo.git{fragment}"), &all)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_tags_commits_and_subdirs_check_out() {
    testkit::require_privileged();
    let repo = Repo::new();
    let t = TestEngine::new();

    let main = t.snapshot(&repo.source("#main", &[])).await;
    assert_eq!(t.read(main, "README").as_deref(), Some("two"));
    assert!(!t.exists(main, ".git"));
    t.inspect(main, |root| {
        let mode = |p: &str| std::fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("bin/run.sh"), 0o755);
        assert_eq!(mode("README"), 0o644);
        assert_eq!(mode("sub/inner.txt"), 0o644);
        assert_eq!(mode("sub"), 0o755);
    });
    // No ref: the remote's HEAD.
    let head = t.snapshot(&repo.source("", &[])).await;
    assert_eq!(t.read(head, "README").as_deref(), Some("two"));

    for fragment in ["#v1", "#dev", &format!("#{}", repo.one)] {
        let id = t.snapshot(&repo.source(fragment, &[])).await;
        assert_eq!(t.read(id, "README").as_deref(), Some("one"), "{fragment}");
    }

    let sub = t.snapshot(&repo.source("#v1:sub", &[])).await;
    assert_eq!(t.read(sub, "inner.txt").as_deref(), Some("inner"));
    assert!(!t.exists(sub, "README"));
    assert!(!t.exists(sub, "sub"));

    let kept = t
        .snapshot(&repo.source("#main", &[("git.keepgitdir", "true")]))
        .await;
    let head = t.inspect(kept, |root| git(root, &["rev-parse", "HEAD"]));
    assert_eq!(head, repo.two);

    let prefix = &repo.two[..10];
    let pinned = t
        .snapshot(&repo.source("#main", &[("git.checksum", prefix)]))
        .await;
    assert_eq!(t.read(pinned, "README").as_deref(), Some("two"));
    let error = t
        .error(&repo.source("#main", &[("git.checksum", "deadbeef")]))
        .await;
    assert!(
        error.contains(&format!("expected checksum to match deadbeef, got {}", repo.two)),
        "{error}"
    );
    let error = t.error(&repo.source("#nope", &[])).await;
    assert!(error.contains("does not contain ref nope"), "{error}");
    let error = t.error(&repo.source("#main:missing", &[])).await;
    assert!(
        error.contains("missing") && error.contains(&repo.url()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_branch_changes_the_key_and_an_unchanged_one_hits() {
    testkit::require_privileged();
    let repo = Repo::new();
    let t = TestEngine::new();
    let op = repo.source("#main", &[]);
    let first = t.snapshot(&op).await;
    assert_eq!(t.snapshot(&op).await, first, "unchanged ref: cache hit");

    write(repo.dir.path(), "README", "three", 0o644);
    git(repo.dir.path(), &["commit", "-q", "-am", "three"]);
    let moved = t.snapshot(&op).await;
    assert_ne!(moved, first);
    assert_eq!(t.read(moved, "README").as_deref(), Some("three"));
}
