//! Integration tests: a real `docker-registry` (CNCF distribution) on loopback, and a tiny fake
//! registry for the behaviours a real one will not show (token auth, redirects, bad content).

use std::sync::Arc;

use bytes::Bytes;
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, Platform, Reference, error_chain, media_type};
use registry::{
    BlobBody, Client, ClientConfig, CredentialStore, Credentials, CredentialsError, DockerConfigCredentials,
    Error,
};

/// A minimal HTTP/1.1 server answering each request with a handler, one request per
/// connection. It records every request it saw.
mod fake {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[derive(Clone, Debug)]
    pub struct Request {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, String)>,
    }

    impl Request {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        pub fn path(&self) -> &str {
            self.target.split('?').next().unwrap()
        }
    }

    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
        /// Whether to send `Content-Length` (else the body ends when the connection closes).
        pub content_length: bool,
    }

    impl Response {
        pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
            Response {
                status,
                headers: Vec::new(),
                body: body.into(),
                content_length: true,
            }
        }
        pub fn header(mut self, name: &str, value: &str) -> Response {
            self.headers.push((name.into(), value.into()));
            self
        }
    }

    pub struct Server {
        pub port: u16,
        pub requests: Arc<Mutex<Vec<Request>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        /// Starts serving; the handler gets each request and the server's own port.
        pub async fn start(handler: impl Fn(&Request, u16) -> Response + Send + Sync + 'static) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            let handler = Arc::new(handler);
            let task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let seen = seen.clone();
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let Some(request) = read_request(&mut stream).await else {
                            return;
                        };
                        seen.lock().unwrap().push(request.clone());
                        let response = handler(&request, port);
                        let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", response.status);
                        for (k, v) in &response.headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        if response.content_length {
                            head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
                        }
                        head.push_str("\r\n");
                        let _ = stream.write_all(head.as_bytes()).await;
                        if request.method != "HEAD" {
                            let _ = stream.write_all(&response.body).await;
                        }
                        let _ = stream.shutdown().await;
                    });
                }
            });
            Server { port, requests, task }
        }

        pub fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?.to_string();
        let target = first.next()?.to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        // Drain a declared body so the client is not cut off mid-send.
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut have = buf.len() - (end + 4);
        while have < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            have += n;
        }
        Some(Request {
            method,
            target,
            headers,
        })
    }
}

fn client() -> Client {
    Client::new(ClientConfig::default()).unwrap()
}

fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).unwrap()
}

async fn read_all(client: &Client, reference: &Reference, descriptor: &Descriptor) -> Result<Vec<u8>, Error> {
    let mut reader = client.fetch_blob(reference, descriptor).await?;
    let mut out = Vec::new();
    while let Some(chunk) = reader.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn image_manifest(config: &Descriptor, layer: &Descriptor) -> Bytes {
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: config.clone(),
        layers: vec![layer.clone()],
        annotations: Default::default(),
    };
    Bytes::from(serde_json::to_vec(&manifest).unwrap())
}

/// What `push_fixture_images` pushed.
struct Pushed {
    /// `kiln/app:amd64`: the amd64 manifest.
    repo: Reference,
    /// `kiln/app:multi`: the index over both platforms.
    multi: Reference,
    /// The arm64 manifest, by digest.
    arm64_ref: Reference,
    amd64: Bytes,
    arm64: Bytes,
    amd64_digest: Digest,
    arm64_digest: Digest,
    index_digest: Digest,
    index_len: u64,
    config_amd64_desc: Descriptor,
    config_arm64_desc: Descriptor,
    config_arm64: Bytes,
    layer: Vec<u8>,
    layer_desc: Descriptor,
}

/// Pushes two configs, a layer (from a file) and a manifest per platform, tags the amd64 one
/// and an index over both; checks that existing blobs are skipped and bad content refused.
async fn push_fixture_images(client: &Client, host: &str) -> Pushed {
    let repo = reference(host, "kiln/app:amd64");

    // Blobs: configs from memory, a multi-chunk layer streamed from a file.
    let config_amd64 = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_arm64 = Bytes::from_static(
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let layer_path = dir.path().join("layer.tar.gz");
    std::fs::write(&layer_path, &layer).unwrap();
    let desc = |mt: &str, bytes: &[u8]| Descriptor::new(mt, Digest::of(bytes), bytes.len() as u64);
    let config_amd64_desc = desc(media_type::OCI_CONFIG, &config_amd64);
    let config_arm64_desc = desc(media_type::OCI_CONFIG, &config_arm64);
    let layer_desc = desc(media_type::OCI_LAYER_GZIP, &layer);

    assert!(!client.blob_exists(&repo, &layer_desc.digest).await.unwrap());
    client
        .push_blob(&repo, &config_amd64_desc, BlobBody::Bytes(config_amd64.clone()))
        .await
        .unwrap();
    client
        .push_blob(&repo, &config_arm64_desc, BlobBody::Bytes(config_arm64.clone()))
        .await
        .unwrap();
    client
        .push_blob(&repo, &layer_desc, BlobBody::File(layer_path.clone()))
        .await
        .unwrap();
    // A second push of an existing blob is skipped, and still succeeds.
    client
        .push_blob(&repo, &layer_desc, BlobBody::File(layer_path))
        .await
        .unwrap();
    assert!(client.blob_exists(&repo, &layer_desc.digest).await.unwrap());
    assert!(
        client
            .blob_exists(&repo, &config_amd64_desc.digest)
            .await
            .unwrap()
    );

    // Bad bodies are refused before anything is sent.
    let wrong = client
        .push_blob(&repo, &config_amd64_desc, BlobBody::Bytes(config_arm64.clone()))
        .await;
    assert!(matches!(wrong, Err(Error::DigestMismatch { .. })), "{wrong:?}");

    // Manifests: one per platform, the amd64 one also tagged, and an index over both.
    let amd64 = image_manifest(&config_amd64_desc, &layer_desc);
    let arm64 = image_manifest(&config_arm64_desc, &layer_desc);
    let amd64_digest = client
        .push_manifest(&repo, media_type::OCI_MANIFEST, amd64.clone())
        .await
        .unwrap();
    assert_eq!(amd64_digest, Digest::of(&amd64));
    let arm64_ref = reference(host, &format!("kiln/app@{}", Digest::of(&arm64)));
    let arm64_digest = client
        .push_manifest(&arm64_ref, media_type::OCI_MANIFEST, arm64.clone())
        .await
        .unwrap();
    let mut entries = Vec::new();
    for (platform, digest, bytes) in [
        ("linux/arm64/v8", &arm64_digest, &arm64),
        ("linux/amd64", &amd64_digest, &amd64),
    ] {
        let mut d = Descriptor::new(media_type::OCI_MANIFEST, digest.clone(), bytes.len() as u64);
        d.platform = Platform::parse(platform);
        entries.push(d);
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: entries,
        annotations: Default::default(),
    };
    let index_bytes = Bytes::from(serde_json::to_vec(&index).unwrap());
    let multi = reference(host, "kiln/app:multi");
    let index_digest = client
        .push_manifest(&multi, media_type::OCI_INDEX, index_bytes.clone())
        .await
        .unwrap();
    let pinned_wrong = repo.with_digest(Digest::of(b"other"));
    let wrong = client
        .push_manifest(&pinned_wrong, media_type::OCI_MANIFEST, amd64.clone())
        .await;
    assert!(matches!(wrong, Err(Error::DigestMismatch { .. })), "{wrong:?}");
    Pushed {
        repo,
        multi,
        arm64_ref,
        amd64,
        arm64,
        amd64_digest,
        arm64_digest,
        index_digest,
        index_len: index_bytes.len() as u64,
        config_amd64_desc,
        config_arm64_desc,
        config_arm64,
        layer,
        layer_desc,
    }
}

#[tokio::test]
async fn push_and_pull_against_a_real_registry() {
    let registry = testkit::Registry::start().unwrap();
    let client = client();
    let Pushed {
        repo,
        multi,
        arm64_ref,
        amd64,
        arm64,
        amd64_digest,
        arm64_digest,
        index_digest,
        index_len,
        config_amd64_desc,
        config_arm64_desc,
        config_arm64,
        layer,
        layer_desc,
    } = push_fixture_images(&client, &registry.host()).await;
    let desc = |mt: &str, bytes: &[u8]| Descriptor::new(mt, Digest::of(bytes), bytes.len() as u64);

    // Fetch by tag and by digest: exact bytes, media type and digest.
    let fetched = client.fetch_manifest(&repo).await.unwrap();
    assert_eq!(fetched.bytes, amd64);
    assert_eq!(fetched.media_type, media_type::OCI_MANIFEST);
    assert_eq!(fetched.digest, amd64_digest);
    let by_digest = client.fetch_manifest(&arm64_ref).await.unwrap();
    assert_eq!(by_digest.bytes, arm64);
    let fetched_index = client.fetch_manifest(&multi).await.unwrap();
    assert_eq!(
        (fetched_index.media_type.as_str(), &fetched_index.digest),
        (media_type::OCI_INDEX, &index_digest)
    );

    // HEAD: descriptor without body; unknown tag is None.
    let head = client.head_manifest(&multi).await.unwrap().unwrap();
    assert_eq!(
        head,
        Descriptor::new(media_type::OCI_INDEX, index_digest.clone(), index_len)
    );
    assert!(
        client
            .head_manifest(&repo.with_tag("nope"))
            .await
            .unwrap()
            .is_none()
    );

    // Resolve: platform chosen from the index; a plain manifest resolves to itself.
    let resolved = client.resolve(&multi, &Platform::linux_amd64()).await.unwrap();
    assert_eq!(resolved.index_digest, Some(index_digest.clone()));
    assert_eq!(resolved.manifest.digest, amd64_digest);
    assert_eq!(resolved.parsed.config, config_amd64_desc);
    assert_eq!(resolved.reference, multi);
    let arm = client
        .resolve(&multi, &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(arm.manifest.digest, arm64_digest);
    let single = client.resolve(&repo, &Platform::linux_amd64()).await.unwrap();
    assert_eq!(
        (single.index_digest, &single.manifest.digest),
        (None, &amd64_digest)
    );
    match client
        .resolve(&multi, &Platform::parse("linux/s390x").unwrap())
        .await
    {
        Err(e @ Error::NoMatchingPlatform { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("linux/amd64") && message.contains("linux/arm64/v8"),
                "{message}"
            );
            assert!(message.contains("kiln/app:multi"), "{message}");
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }

    // Blobs come back verified, and a wrong descriptor is caught.
    assert_eq!(read_all(&client, &repo, &layer_desc).await.unwrap(), layer);
    assert_eq!(
        read_all(&client, &repo, &config_arm64_desc).await.unwrap(),
        config_arm64
    );
    let short = Descriptor::new(media_type::OCI_CONFIG, config_arm64_desc.digest.clone(), 3);
    let err = read_all(&client, &repo, &short).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { expected: 3, .. }), "{err:?}");
    let missing = desc(media_type::OCI_CONFIG, b"never pushed");
    assert!(matches!(
        read_all(&client, &repo, &missing).await,
        Err(Error::BlobUnknown { .. })
    ));

    // Unknown tags and repositories.
    match client.fetch_manifest(&repo.with_tag("missing")).await {
        Err(e @ Error::ManifestUnknown { .. }) => assert!(e.to_string().contains("kiln/app:missing"), "{e}"),
        other => panic!("expected ManifestUnknown, got {other:?}"),
    }
    let other_repo = reference(&registry.host(), "kiln/none:latest");
    assert!(matches!(
        client.fetch_manifest(&other_repo).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

/// Credentials for every loopback registry: `user`/`pass` by default.
struct StaticCredentials {
    username: &'static str,
    password: &'static str,
}

const USER_PASS: StaticCredentials = StaticCredentials {
    username: "user",
    password: "pass",
};

impl CredentialStore for StaticCredentials {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        Ok(registry.starts_with("127.0.0.1").then(|| Credentials {
            username: self.username.into(),
            password: self.password.into(),
        }))
    }
}

#[tokio::test]
async fn bearer_token_is_fetched_cached_and_kept_from_storage_hosts() {
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
    let blob = b"layer bytes".to_vec();
    let blob_digest = Digest::of(&blob);
    // The storage host is another origin (another port): it must never see the token.
    let storage = fake::Server::start({
        let blob = blob.clone();
        move |_, _| fake::Response::new(200, blob.clone())
    })
    .await;
    let storage_port = storage.port;
    let registry = fake::Server::start(move |request, port| {
        if request.path() == "/token" {
            return fake::Response::new(200, r#"{"token":"tok-123","expires_in":300}"#);
        }
        if request.header("authorization") != Some("Bearer tok-123") {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake registry",scope="repository:team/app:pull""#
            );
            return fake::Response::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}"#)
                .header("WWW-Authenticate", &challenge);
        }
        if request.path().contains("/blobs/") {
            return fake::Response::new(307, "")
                .header("Location", &format!("http://127.0.0.1:{storage_port}/bucket/blob?sig=1"));
        }
        fake::Response::new(200, MANIFEST).header("Content-Type", media_type::OCI_MANIFEST)
    })
    .await;

    let client = client().with_credentials(Arc::new(USER_PASS));
    let image = reference(&format!("127.0.0.1:{}", registry.port), "team/app:v1");
    let fetched = client.fetch_manifest(&image).await.unwrap();
    assert_eq!(fetched.bytes, MANIFEST);
    assert_eq!(fetched.digest, Digest::of(MANIFEST));
    // Cached: the second fetch goes straight through with the token.
    client.fetch_manifest(&image).await.unwrap();
    let descriptor = Descriptor::new(media_type::OCI_LAYER_GZIP, blob_digest, blob.len() as u64);
    assert_eq!(read_all(&client, &image, &descriptor).await.unwrap(), blob);

    let seen = registry.requests();
    let summary: Vec<(String, Option<&str>)> = seen
        .iter()
        .map(|r| (format!("{} {}", r.method, r.path()), r.header("authorization")))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("GET /v2/team/app/manifests/v1".to_string(), None),
            ("GET /token".to_string(), Some("Basic dXNlcjpwYXNz")),
            (
                "GET /v2/team/app/manifests/v1".to_string(),
                Some("Bearer tok-123")
            ),
            (
                "GET /v2/team/app/manifests/v1".to_string(),
                Some("Bearer tok-123")
            ),
            (
                format!("GET /v2/team/app/blobs/{}", descriptor.digest),
                Some("Bearer tok-123")
            ),
        ]
    );
    assert_eq!(
        seen[1].target,
        "/token?service=fake+registry&scope=repository%3Ateam%2Fapp%3Apull"
    );
    let storage_seen = storage.requests();
    assert_eq!(storage_seen.len(), 1);
    assert_eq!(storage_seen[0].target, "/bucket/blob?sig=1");
    assert_eq!(storage_seen[0].header("authorization"), None);
}

#[tokio::test]
async fn basic_challenge_without_credentials_is_unauthorized() {
    let registry = fake::Server::start(|_, _| {
        fake::Response::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake, with comma""#)
    })
    .await;
    let image = reference(&format!("127.0.0.1:{}", registry.port), "team/app:v1");
    let anonymous = client();
    match anonymous.fetch_manifest(&image).await {
        Err(e @ Error::Unauthorized { .. }) => {
            assert!(e.to_string().contains("authentication required"), "{e}");
            assert!(e.to_string().contains("team/app:v1"), "{e}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    // With credentials the retry carries them; the registry still refuses, which is reported.
    let client = anonymous.with_credentials(Arc::new(USER_PASS));
    assert!(matches!(
        client.fetch_manifest(&image).await,
        Err(Error::Unauthorized { .. })
    ));
    let last = registry.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Basic dXNlcjpwYXNz"));
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_rejected() {
    let registry = fake::Server::start(|request, _| {
        if request.path().ends_with("/manifests/v1") {
            // The registry claims a digest the bytes do not have.
            return fake::Response::new(200, r#"{"schemaVersion":2,"manifests":[]}"#).header(
                "Docker-Content-Digest",
                &Digest::of(b"something else").to_string(),
            );
        }
        if request.path().contains("/manifests/") {
            return fake::Response::new(200, r#"{"schemaVersion":2,"manifests":[]}"#);
        }
        if request.target.contains("long") {
            let mut response = fake::Response::new(200, "good and then some more");
            response.content_length = false;
            return response;
        }
        fake::Response::new(200, "evil")
    })
    .await;
    let client = client();
    let host = format!("127.0.0.1:{}", registry.port);
    let image = reference(&host, "team/app:v1");

    let err = client.fetch_manifest(&image).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    let pinned = reference(&host, &format!("team/app@{}", Digest::of(b"pinned")));
    let err = client.fetch_manifest(&pinned).await.unwrap_err();
    match &err {
        Error::DigestMismatch { expected, .. } => assert_eq!(*expected, Digest::of(b"pinned")),
        other => panic!("expected DigestMismatch, got {other:?}"),
    }

    let good = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"good"), 4);
    let err = read_all(&client, &image, &good).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("team/app:v1"), "{err}");

    // A stream longer than the descriptor fails as soon as it overflows.
    let long_ref = reference(&host, "team/long:v1");
    let err = read_all(&client, &long_ref, &good).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { expected: 4, .. }), "{err:?}");
}

/// A store that counts how often it is asked, around another.
struct Counting<S> {
    inner: S,
    calls: std::sync::atomic::AtomicUsize,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Counting<S> {
        Counting {
            inner,
            calls: Default::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl<S: CredentialStore> CredentialStore for Counting<S> {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.credentials(registry)
    }
}

const TINY_MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

#[tokio::test]
async fn tokens_obtained_with_one_builds_credentials_never_serve_another() {
    // The token service names each token after the credentials it was asked with; the registry
    // takes any of its tokens.
    let registry = fake::Server::start(|request, port| {
        if request.path() == "/token" {
            let token = match request.header("authorization") {
                Some("Basic YWxpY2U6YQ==") => "tok-alice",
                Some("Basic Ym9iOmI=") => "tok-bob",
                None => "tok-anonymous",
                Some(_) => return fake::Response::new(401, "unknown user"),
            };
            return fake::Response::new(200, format!(r#"{{"token":"{token}","expires_in":300}}"#));
        }
        if !request
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer tok-"))
        {
            let challenge = format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake""#);
            return fake::Response::new(401, "").header("WWW-Authenticate", &challenge);
        }
        fake::Response::new(200, TINY_MANIFEST).header("Content-Type", media_type::OCI_MANIFEST)
    })
    .await;
    let host = format!("127.0.0.1:{}", registry.port);
    let image = reference(&host, "team/app:v1");

    let engine_client = client();
    let user = |username, password| Arc::new(Counting::new(StaticCredentials { username, password }));
    let (alice_store, bob_store, alice_again_store) =
        (user("alice", "a"), user("bob", "b"), user("alice", "a"));
    let alice = engine_client.with_credentials(alice_store.clone());
    let bob = engine_client.with_credentials(bob_store.clone());
    let alice_again = engine_client.with_credentials(alice_again_store.clone());
    alice.fetch_manifest(&image).await.unwrap();
    bob.fetch_manifest(&image).await.unwrap();
    alice_again.fetch_manifest(&image).await.unwrap();
    engine_client.fetch_manifest(&image).await.unwrap();
    alice.fetch_manifest(&image).await.unwrap();
    bob.fetch_manifest(&image).await.unwrap();
    // Another repository is another scope: a new token, but the store is not asked again.
    alice
        .fetch_manifest(&reference(&host, "team/other:v1"))
        .await
        .unwrap();

    let seen: Vec<(String, Option<String>)> = registry
        .requests()
        .iter()
        .map(|r| {
            (
                r.path().to_string(),
                r.header("authorization").map(str::to_string),
            )
        })
        .collect();
    let manifest = |auth: Option<&str>| ("/v2/team/app/manifests/v1".to_string(), auth.map(str::to_string));
    let token = |auth: Option<&str>| ("/token".to_string(), auth.map(str::to_string));
    let other = |auth: Option<&str>| {
        (
            "/v2/team/other/manifests/v1".to_string(),
            auth.map(str::to_string),
        )
    };
    assert_eq!(
        seen,
        vec![
            // alice: challenged, token with her credentials.
            manifest(None),
            token(Some("Basic YWxpY2U6YQ==")),
            manifest(Some("Bearer tok-alice")),
            // bob: his first request carries nothing of alice's; his own token.
            manifest(None),
            token(Some("Basic Ym9iOmI=")),
            manifest(Some("Bearer tok-bob")),
            // Another build with alice's credentials reuses her token without a token request.
            manifest(None),
            manifest(Some("Bearer tok-alice")),
            // Anonymous: an anonymous token, asked for without credentials.
            manifest(None),
            token(None),
            manifest(Some("Bearer tok-anonymous")),
            // Known identities go straight through with their own tokens.
            manifest(Some("Bearer tok-alice")),
            manifest(Some("Bearer tok-bob")),
            // A new scope has no token yet; alice's store is not asked again for it.
            other(None),
            token(Some("Basic YWxpY2U6YQ==")),
            other(Some("Bearer tok-alice")),
        ]
    );
    assert_eq!(
        (alice_store.calls(), bob_store.calls(), alice_again_store.calls()),
        (1, 1, 1),
        "each store is asked once per registry"
    );
}

#[tokio::test]
async fn docker_config_is_read_only_when_a_registry_asks_for_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, b"{\"auths\": ?}").unwrap();
    let store = Arc::new(Counting::new(DockerConfigCredentials::from_file(&path)));
    let build = client().with_credentials(store.clone());

    // A registry that asks for nothing never makes the client read the (broken) file.
    let open = fake::Server::start(|_, _| {
        fake::Response::new(200, TINY_MANIFEST).header("Content-Type", media_type::OCI_MANIFEST)
    })
    .await;
    let open_host = format!("127.0.0.1:{}", open.port);
    build
        .fetch_manifest(&reference(&open_host, "team/app:v1"))
        .await
        .unwrap();
    assert_eq!(store.calls(), 0);

    // One that does gets an error naming the file and the place in it.
    let guarded = fake::Server::start(|_, _| {
        fake::Response::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake""#)
    })
    .await;
    let guarded_host = format!("127.0.0.1:{}", guarded.port);
    let err = build
        .fetch_manifest(&reference(&guarded_host, "team/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(
        error_chain(&err),
        format!(
            "failed to get credentials for {guarded_host}: failed to parse {}: \
             expected value at line 1 column 11",
            path.display()
        )
    );
}

#[tokio::test]
async fn connection_errors_keep_their_cause() {
    // A port nothing listens on: bound, then released.
    let port = testkit::closed_port();
    let err = client()
        .fetch_manifest(&reference(&format!("127.0.0.1:{port}"), "x:latest"))
        .await
        .unwrap_err();
    let message = error_chain(&err);
    assert!(
        message.starts_with(&format!(
            "request to http://127.0.0.1:{port}/v2/x/manifests/latest failed: "
        )),
        "{message}"
    );
    assert!(
        message.ends_with("Connection refused (os error 111)"),
        "{message}"
    );
    assert_eq!(
        message.matches(&port.to_string()).count(),
        1,
        "the URL is said once: {message}"
    );
}

/// A loopback listener that accepts connections, reads what it is sent, and never answers
/// beyond `head` (which may be empty).
async fn stalled_server(head: &'static [u8]) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                let _ = stream.write_all(head).await;
                // Hold the connection open, silent, until the client gives up.
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

fn client_with_read_timeout(read_timeout: std::time::Duration) -> Client {
    Client::new(ClientConfig {
        read_timeout,
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out_and_says_after_how_long() {
    let (port, server) = stalled_server(b"").await;
    let client = client_with_read_timeout(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = client
        .fetch_manifest(&reference(&format!("127.0.0.1:{port}"), "x:latest"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        error_chain(&err),
        format!(
            "request to http://127.0.0.1:{port}/v2/x/manifests/latest timed out: no response within 0.3 s"
        )
    );
    assert!(
        waited >= std::time::Duration::from_millis(300) && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
    server.abort();
}

#[tokio::test]
async fn a_body_that_stops_arriving_times_out() {
    let (port, server) =
        stalled_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/octet-stream\r\n\r\nfirst bytes").await;
    let client = client_with_read_timeout(std::time::Duration::from_millis(300));
    let image = reference(&format!("127.0.0.1:{port}"), "x:latest");
    let descriptor = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"whatever"), 100);
    let err = read_all(&client, &image, &descriptor).await.unwrap_err();
    assert_eq!(
        error_chain(&err),
        format!(
            "request to http://127.0.0.1:{port}/v2/x/blobs/{} timed out: no data within 0.3 s",
            descriptor.digest
        )
    );
    server.abort();
}

/// An upload that takes longer than the read timeout but keeps moving is not a stall.
#[tokio::test]
async fn a_slow_upload_that_keeps_moving_does_not_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SIZE: usize = 16 << 20;
    let read_timeout = std::time::Duration::from_millis(1500);
    // The registry reads the body in pieces of at most 64 KiB, 8 ms apart (over 2 s in all),
    // then answers at once. Its small receive buffer keeps the kernel from taking in much of
    // the body ahead of it, so the client's last piece goes out shortly before the answer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 << 10];
                let mut seen = Vec::new();
                let end = loop {
                    let n = stream.read(&mut buffer).await.unwrap();
                    assert!(n > 0);
                    seen.extend_from_slice(&buffer[..n]);
                    if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                let answer: &[u8] = if head.starts_with("put ") {
                    let mut received = seen.len() - end;
                    while received < SIZE {
                        let n = stream.read(&mut buffer).await.unwrap();
                        assert!(n > 0);
                        received += n;
                        tokio::time::sleep(std::time::Duration::from_millis(8)).await;
                    }
                    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else if head.starts_with("post ") {
                    b"HTTP/1.1 202 Accepted\r\nLocation: /v2/x/blobs/uploads/1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                stream.write_all(answer).await.unwrap();
            });
        }
    });
    let blob: Bytes = (0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let descriptor = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(&blob), SIZE as u64);
    let client = client_with_read_timeout(read_timeout);
    let image = reference(&format!("127.0.0.1:{port}"), "x:latest");
    let started = std::time::Instant::now();
    client
        .push_blob(&image, &descriptor, BlobBody::Bytes(blob))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took > read_timeout,
        "the upload took {took:?}, not longer than the read timeout"
    );
    server.abort();
}
