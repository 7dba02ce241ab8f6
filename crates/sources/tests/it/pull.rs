//! Pull failures keep their causes.

use sources::pull::PullError;

use crate::common::{Env, chain, pull_image};

#[tokio::test]
async fn registry_failures_keep_their_causes_once() {
    // Nothing listens on this port.
    let closed = testkit::closed_port();
    let env = Env::new();
    let error = pull_image(&env, &format!("127.0.0.1:{closed}/x:latest"))
        .await
        .unwrap_err();
    assert!(matches!(error, PullError::Registry { .. }), "{error:?}");
    let chain = chain(&error);
    assert_eq!(chain[0], format!("failed to pull 127.0.0.1:{closed}/x:latest"));
    assert!(
        chain
            .last()
            .unwrap()
            .ends_with("Connection refused (os error 111)"),
        "{chain:?}"
    );
}
