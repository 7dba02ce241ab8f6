//! HTTP downloads against a tiny loopback server: authentication from the build's secrets, and
//! failures reported with their whole chain of causes down to the OS error.

use std::collections::BTreeMap;
use std::sync::Arc;

use sources::http::HttpError;
use sources::{NoSecrets, SecretError, Secrets};

use crate::common::{Env, Server, chain, download, resolve};

struct Fixed(BTreeMap<String, String>);

impl Secrets for Fixed {
    fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, SecretError> {
        Ok(self.0.get(id).map(|v| v.clone().into_bytes()))
    }
}

fn secrets(entries: &[(&str, &str)]) -> Arc<dyn Secrets> {
    Arc::new(Fixed(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_authenticated_by_the_builds_secrets() {
    let server = Server::start(b"private".to_vec()).await;
    let env = Env::new();
    let file = download(&server.url("/file"));
    assert_eq!(
        file.secret_names().into_iter().collect::<Vec<_>>(),
        ["HTTP_AUTH_HEADER_127.0.0.1", "HTTP_AUTH_TOKEN_127.0.0.1"]
    );

    let none: Arc<dyn Secrets> = Arc::new(NoSecrets);
    let fetched = resolve(&file, &env.store, &none).await.unwrap();
    assert_eq!(fetched.digest, oci::Digest::of(b"private"));
    assert!(env.store.content().contains(&fetched.digest));

    let header = secrets(&[("HTTP_AUTH_HEADER_127.0.0.1", "Basic abc")]);
    resolve(&file, &env.store, &header).await.unwrap();
    let both = secrets(&[
        ("HTTP_AUTH_HEADER_127.0.0.1", "Basic abc"),
        ("HTTP_AUTH_TOKEN_127.0.0.1", "t0ken"),
    ]);
    resolve(&file, &env.store, &both).await.unwrap();
    let other_host = secrets(&[("HTTP_AUTH_TOKEN_example.com", "t0ken")]);
    resolve(&file, &env.store, &other_host).await.unwrap();
    assert_eq!(
        server.authorizations(),
        [
            None,
            Some("Basic abc".to_string()),
            Some("Bearer t0ken".to_string()),
            None
        ]
    );

    // A value that is no header is refused, and never shown.
    let broken = secrets(&[("HTTP_AUTH_TOKEN_127.0.0.1", "line\nbreak")]);
    let error = resolve(&file, &env.store, &broken).await.unwrap_err();
    assert!(matches!(error, HttpError::InvalidSecret { .. }), "{error:?}");
    assert!(!error.to_string().contains("line"), "{error}");
    assert_eq!(server.authorizations().len(), 4, "nothing was sent");
}

#[tokio::test]
async fn a_refused_connection_reaches_the_os_error_once() {
    let closed = testkit::closed_port();
    let env = Env::new();
    let url = format!("http://user:pw@127.0.0.1:{closed}/f");
    let none: Arc<dyn Secrets> = Arc::new(NoSecrets);
    let error = resolve(&download(&url), &env.store, &none).await.unwrap_err();
    assert!(matches!(error, HttpError::Request { .. }), "{error:?}");
    let chain = chain(&error);
    assert_eq!(
        chain[0],
        format!("failed to download http://xxxxx@127.0.0.1:{closed}/f")
    );
    assert!(
        chain
            .last()
            .unwrap()
            .ends_with("Connection refused (os error 111)"),
        "{chain:?}"
    );
    assert!(!chain.concat().contains("pw"), "{chain:?}");
}
