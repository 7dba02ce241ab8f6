//! What the sources' integration tests share: a store in a temporary state directory, status
//! lines, a check of error chains, pulling, and a tiny HTTP server to download from. Each test
//! binary uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use oci::{Platform, Reference};
use sources::Secrets;
use sources::http::{Download, Fetched, HttpContext, HttpError, HttpSource, HttpState};
use sources::pull::{self, ImageSource, PullError};
use store::{SnapshotId, Store};
use testkit::TempRoot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A store in a temporary state directory (dropped before the directory).
pub struct Env {
    pub store: Arc<Store>,
    pub root: TempRoot,
}

impl Env {
    pub fn new() -> Env {
        let root = TempRoot::new().unwrap();
        let store = Arc::new(Store::open(&root.path().join("state"), || {}).unwrap());
        Env { store, root }
    }
}

/// Collects status lines.
#[derive(Default)]
pub struct Lines(pub Mutex<Vec<String>>);

impl sources::Progress for Lines {
    fn status(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Lines {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// The messages of `error` and its causes, checked to name each cause once: no message
/// contains a later one.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut chain = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    for (i, message) in chain.iter().enumerate() {
        for later in &chain[i + 1..] {
            assert!(
                !message.contains(later.as_str()),
                "{message:?} repeats {later:?}: {chain:?}"
            );
        }
    }
    chain
}

/// An anonymous registry client (loopback registries are plain HTTP).
pub fn client() -> registry::Client {
    registry::Client::new(registry::ClientConfig::default()).unwrap()
}

/// `reference` for this host's platform.
pub fn image(reference: &str) -> ImageSource {
    ImageSource {
        reference: Reference::parse(reference).unwrap(),
        platform: Platform::host(),
    }
}

/// Pulls `reference`, returning the top snapshot and the status lines it reported.
pub async fn pull_image(env: &Env, reference: &str) -> Result<(Option<SnapshotId>, Vec<String>), PullError> {
    let lines = Lines::default();
    let top = pull::pull(&env.store, &client(), &image(reference), &lines).await?;
    Ok((top, lines.take()))
}

/// Answers every request with `200 OK` and a fixed body; keeps each request's head.
pub struct Server {
    address: String,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, body) = (heads.clone(), Arc::new(body));
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (heads, body) = (kept.clone(), body.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    heads
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server { address, heads, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The `Authorization` header of each request (`None` when it had none).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|head| {
                head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_string())
                })
            })
            .collect()
    }
}

pub fn download(url: &str) -> Download {
    Download::new(HttpSource {
        url: url.to_string(),
        filename: None,
        perm: None,
        checksum: None,
    })
    .unwrap()
}

/// Resolves `download` (downloading it) with `secrets` into `store`.
pub async fn resolve(
    download: &Download,
    store: &Arc<Store>,
    secrets: &Arc<dyn Secrets>,
) -> Result<Fetched, HttpError> {
    let state = HttpState::default();
    let lines = Lines::default();
    let cx = HttpContext {
        state: &state,
        store,
        secrets,
        progress: &lines,
    };
    download.resolve(cx).await
}
