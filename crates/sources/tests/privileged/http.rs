//! A download onto a full disk (a small tmpfs) reports the OS error.

use std::sync::Arc;

use sources::http::HttpError;
use sources::{NoSecrets, Secrets};
use store::Store;

use crate::common::{Env, Server, chain, download, resolve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_with_its_os_error() {
    testkit::require_privileged();
    let server = Server::start(vec![7u8; 8 << 20]).await;
    let env = Env::new();
    // A state directory on a small tmpfs: the download does not fit.
    let small = env.store.mount_tmpfs(4 << 20).unwrap();
    let store = Arc::new(Store::open(&small.path().join("state"), || {}).unwrap());
    let none: Arc<dyn Secrets> = Arc::new(NoSecrets);
    let error = resolve(&download(&server.url("/big")), &store, &none)
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Store { .. }), "{error:?}");
    let chain = chain(&error);
    assert!(
        chain
            .last()
            .unwrap()
            .ends_with("No space left on device (os error 28)"),
        "{chain:?}"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("ingest")).unwrap().count(),
        0,
        "the partial blob is removed"
    );
}
