//! Git checkouts with the git CLI: of a local repository over `file://`, and cancelled while
//! git waits on a server that never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::git;

use sources::git::{Git, GitContext, GitError, GitSource, Resolved};
use sources::{NoSecrets, Secrets};
use store::Store;

use crate::common::{Env, Lines};

fn request(remote: &str, reference: &str, subdir: &str) -> Git {
    Git::new(GitSource {
        remote: remote.into(),
        reference: reference.into(),
        subdir: subdir.into(),
        keep_git_dir: false,
        checksum: None,
        submodules: true,
    })
    .unwrap()
}

/// The snapshot directories in `store`, committed or not.
fn snapshot_dirs(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("snapshots"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Waits up to five seconds for `done`.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Live (not zombie) processes whose command line contains `text`.
fn processes_with(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) {
            found.push(cmdline);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subdirectory_is_checked_out_without_leaving_the_whole_checkout() {
    let repo = tempfile::tempdir().unwrap();
    let d = repo.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("README"), "top").unwrap();
    std::fs::write(d.join("sub/inner.txt"), "inner").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "one"]);
    let head = git(d, &["rev-parse", "HEAD"]);
    let remote = format!("file://{}", d.display());

    let env = Env::new();
    let secrets: Arc<dyn Secrets> = Arc::new(NoSecrets);
    let lines = Lines::default();
    let cx = GitContext {
        store: &env.store,
        secrets: &secrets,
        progress: &lines,
    };
    let sub = request(&remote, "main", "sub");
    let resolved = sub.resolve(cx).await.unwrap();
    assert_eq!(resolved.commit, head);
    assert_eq!(resolved.refname.as_deref(), Some("refs/heads/main"));
    let id = sub.checkout(cx, &resolved).await.unwrap();
    let layer = env.store.layer_dir(id);
    assert_eq!(std::fs::read_to_string(layer.join("inner.txt")).unwrap(), "inner");
    assert!(!layer.join("README").exists());
    assert_eq!(snapshot_dirs(&env.store), 1, "the scratch checkout is gone");
    assert_eq!(
        lines.take(),
        [
            format!("resolving {remote}#main"),
            format!("fetching {remote} {head}")
        ]
    );

    let error = request(&remote, "main", "missing")
        .checkout(cx, &resolved)
        .await
        .unwrap_err();
    assert!(matches!(error, GitError::Subdir { .. }), "{error:?}");
    assert!(
        eventually(|| snapshot_dirs(&env.store) == 1).await,
        "a failed checkout leaves no snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_checkout_kills_git_and_its_helpers_and_leaves_no_snapshot() {
    // A server that accepts connections and never answers: git's http helper waits on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hang.git", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });

    let env = Env::new();
    let store = env.store.clone();
    let git = request(&url, "", "");
    let resolved = Resolved {
        commit: "0".repeat(40),
        refname: None,
    };
    let checkout = tokio::spawn(async move {
        let secrets: Arc<dyn Secrets> = Arc::new(NoSecrets);
        let progress = |_: String| {};
        let cx = GitContext {
            store: &store,
            secrets: &secrets,
            progress: &progress,
        };
        git.checkout(cx, &resolved).await
    });
    assert!(
        eventually(|| !processes_with(&url).is_empty()).await,
        "git never reached the server"
    );
    assert_eq!(snapshot_dirs(&env.store), 1, "the checkout is being made");

    checkout.abort();
    assert!(checkout.await.unwrap_err().is_cancelled());
    assert!(
        eventually(|| processes_with(&url).is_empty()).await,
        "still running: {:?}",
        processes_with(&url)
    );
    assert!(
        eventually(|| snapshot_dirs(&env.store) == 0).await,
        "the unfinished snapshot is removed"
    );
    server.abort();
}
