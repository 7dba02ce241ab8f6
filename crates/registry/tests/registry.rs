//! Integration tests: a real `docker-registry` (CNCF distribution) on loopback, and a tiny fake
//! registry for the behaviours a real one will not show (token auth, redirects, bad content).

use std::sync::Arc;

use bytes::Bytes;
use oci::{Descriptor, Digest, ImageIndex, ImageManifest, Platform, Reference, media_type};
use registry::{BlobBody, Client, ClientConfig, CredentialStore, Credentials, Error, NoCredentials};

/// A `docker-registry serve` process on a free loopback port with temporary storage, killed and
/// cleaned up on drop. Self-contained so that it can move to a testkit crate.
mod fixture {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Registry {
        child: Child,
        host: String,
        _dir: tempfile::TempDir,
    }

    impl Registry {
        /// Starts a registry and waits until `GET /v2/` answers.
        pub fn start() -> Registry {
            // Picking a free port and handing it over has a small race with other processes;
            // retry with a new port if the registry exits early.
            for _ in 0..3 {
                let dir = tempfile::tempdir().unwrap();
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let host = format!("127.0.0.1:{port}");
                let config = dir.path().join("config.yml");
                std::fs::write(
                    &config,
                    format!(
                        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                         http:\n  addr: {host}\n",
                        dir.path().join("data").display()
                    ),
                )
                .unwrap();
                let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
                let child = Command::new("/usr/bin/docker-registry")
                    .arg("serve")
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap();
                let mut registry = Registry {
                    child,
                    host,
                    _dir: dir,
                };
                if registry.wait_ready() {
                    return registry;
                }
            }
            panic!("docker-registry did not start");
        }

        fn wait_ready(&mut self) -> bool {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if self.child.try_wait().unwrap().is_some() {
                    return false;
                }
                if let Ok(mut stream) = TcpStream::connect(&self.host) {
                    let _ = stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                    let mut answer = String::new();
                    let _ = stream.read_to_string(&mut answer);
                    if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                        return true;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        }

        /// `127.0.0.1:<port>`.
        pub fn host(&self) -> &str {
            &self.host
        }
    }

    impl Drop for Registry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

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

#[tokio::test]
async fn push_and_pull_against_a_real_registry() {
    let registry = fixture::Registry::start();
    let client = client();
    let repo = reference(registry.host(), "kiln/app:amd64");

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
    let arm64_ref = reference(registry.host(), &format!("kiln/app@{}", Digest::of(&arm64)));
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
    let multi = reference(registry.host(), "kiln/app:multi");
    let index_digest = client
        .push_manifest(&multi, media_type::OCI_INDEX, index_bytes.clone())
        .await
        .unwrap();
    let pinned_wrong = repo.with_digest(Digest::of(b"other"));
    let wrong = client
        .push_manifest(&pinned_wrong, media_type::OCI_MANIFEST, amd64.clone())
        .await;
    assert!(matches!(wrong, Err(Error::DigestMismatch { .. })), "{wrong:?}");

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
        Descriptor::new(
            media_type::OCI_INDEX,
            index_digest.clone(),
            index_bytes.len() as u64
        )
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
    let other_repo = reference(registry.host(), "kiln/none:latest");
    assert!(matches!(
        client.fetch_manifest(&other_repo).await,
        Err(Error::ManifestUnknown { .. })
    ));
}

struct StaticCredentials;

impl CredentialStore for StaticCredentials {
    fn credentials(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        Ok(registry.starts_with("127.0.0.1").then(|| Credentials {
            username: "user".into(),
            password: "pass".into(),
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

    let client = Client::new(ClientConfig {
        credentials: Arc::new(StaticCredentials),
        ..ClientConfig::default()
    })
    .unwrap();
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
    let anonymous = Client::new(ClientConfig {
        credentials: Arc::new(NoCredentials),
        ..ClientConfig::default()
    })
    .unwrap();
    match anonymous.fetch_manifest(&image).await {
        Err(e @ Error::Unauthorized { .. }) => {
            assert!(e.to_string().contains("authentication required"), "{e}");
            assert!(e.to_string().contains("team/app:v1"), "{e}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    // With credentials the retry carries them; the registry still refuses, which is reported.
    let client = Client::new(ClientConfig {
        credentials: Arc::new(StaticCredentials),
        ..ClientConfig::default()
    })
    .unwrap();
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
