//! HTTP sources against a tiny HTTP/1.1 server that counts requests and honours `If-None-Match`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{TestEngine, source};

/// One file the server serves.
#[derive(Clone)]
struct Served {
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// What the server saw: per request, the path, the `If-None-Match` header and the status sent.
#[derive(Default)]
struct Log {
    requests: Vec<(String, Option<String>, u16)>,
}

struct Server {
    address: String,
    files: Arc<Mutex<BTreeMap<String, Served>>>,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let files: Arc<Mutex<BTreeMap<String, Served>>> = Arc::default();
        let log: Arc<Mutex<Log>> = Arc::default();
        let (f, l) = (files.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (files, log) = (f.clone(), l.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let mut lines = text.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("/")
                        .to_string();
                    let if_none_match = lines.find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("if-none-match")
                            .then(|| value.trim().to_string())
                    });
                    let served = files.lock().unwrap().get(&path).cloned();
                    let (status, head, body) = match served {
                        None => (404, String::new(), Vec::new()),
                        // A body starting with `->` is a redirect to the rest.
                        Some(s) if s.body.starts_with(b"->") => {
                            let target = String::from_utf8_lossy(&s.body[2..]).into_owned();
                            (302, format!("Location: {target}\r\n"), Vec::new())
                        }
                        Some(s) if s.etag.is_some() && s.etag == if_none_match => {
                            (304, format!("ETag: {}\r\n", s.etag.unwrap()), Vec::new())
                        }
                        Some(s) => {
                            let mut head = String::new();
                            if let Some(etag) = &s.etag {
                                head.push_str(&format!("ETag: {etag}\r\n"));
                            }
                            if let Some(lm) = &s.last_modified {
                                head.push_str(&format!("Last-Modified: {lm}\r\n"));
                            }
                            (200, head, s.body)
                        }
                    };
                    log.lock().unwrap().requests.push((path, if_none_match, status));
                    let reason = match status {
                        200 => "OK",
                        302 => "Found",
                        304 => "Not Modified",
                        _ => "Not Found",
                    };
                    let response = format!(
                        "HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        if status == 304 { 0 } else { body.len() }
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    if status != 304 {
                        let _ = stream.write_all(&body).await;
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server {
            address,
            files,
            log,
            task,
        }
    }

    fn serve(&self, path: &str, body: &str, etag: Option<&str>, last_modified: Option<&str>) {
        self.files.lock().unwrap().insert(
            path.to_string(),
            Served {
                body: body.as_bytes().to_vec(),
                etag: etag.map(str::to_string),
                last_modified: last_modified.map(str::to_string),
            },
        );
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn requests(&self) -> Vec<(String, Option<String>, u16)> {
        self.log.lock().unwrap().requests.clone()
    }
}

const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_revalidate_with_etags_and_rerun_on_change() {
    testkit::require_privileged();
    let server = Server::start().await;
    let t = TestEngine::new();
    server.serve("/dir/hello.txt", "hello", Some("\"v1\""), Some(LAST_MODIFIED));
    let op = source(&server.url("/dir/hello.txt"), &[]);

    let first = t.snapshot(&op).await;
    t.inspect(first, |root| {
        let names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["hello.txt"]);
        let md = std::fs::symlink_metadata(root.join("hello.txt")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o600);
        assert_eq!((md.uid(), md.gid()), (0, 0));
        assert_eq!(md.mtime(), 1_704_067_200);
    });
    assert_eq!(t.read(first, "hello.txt").as_deref(), Some("hello"));
    assert_eq!(server.requests().len(), 1);

    // The second build revalidates: a 304 reuses the stored download and hits the cache.
    let second = t.snapshot(&op).await;
    assert_eq!(second, first);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].1.as_deref(), Some("\"v1\""));
    assert_eq!(requests[1].2, 304);

    // Changed content is downloaded again and makes a new result.
    server.serve("/dir/hello.txt", "hello v2", Some("\"v2\""), None);
    let third = t.snapshot(&op).await;
    assert_ne!(third, first);
    assert_eq!(t.read(third, "hello.txt").as_deref(), Some("hello v2"));
    assert_eq!(server.requests()[2].2, 200);
    let mtime = t.inspect(third, |root| {
        std::fs::metadata(root.join("hello.txt")).unwrap().mtime()
    });
    assert_eq!(mtime, 0, "no Last-Modified means the epoch");

    // File name and permissions come from the attributes.
    let named = source(
        &server.url("/dir/hello.txt"),
        &[("http.filename", "renamed"), ("http.perm", "493")],
    );
    let id = t.snapshot(&named).await;
    let mode = t.inspect(id, |root| {
        std::fs::metadata(root.join("renamed")).unwrap().mode() & 0o7777
    });
    assert_eq!(mode, 0o755);
    assert!(!t.exists(id, "hello.txt"));

    // A URL without a file name gives `__unnamed__`; an error status fails the step.
    server.serve("/", "index", None, None);
    let id = t.snapshot(&source(&server.url("/"), &[])).await;
    assert_eq!(t.read(id, "__unnamed__").as_deref(), Some("index"));
    let error = t.error(&source(&server.url("/missing"), &[])).await;
    assert!(error.contains("invalid response status 404"), "{error}");

    // Redirects are followed; the file is named after the URL the build asked for.
    server.serve("/moved.txt", "->/dir/hello.txt", None, None);
    let id = t.snapshot(&source(&server.url("/moved.txt"), &[])).await;
    assert_eq!(t.read(id, "moved.txt").as_deref(), Some("hello v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_key_without_network_and_are_verified() {
    testkit::require_privileged();
    let server = Server::start().await;
    let t = TestEngine::new();
    server.serve("/pinned.bin", "pinned content", None, Some(LAST_MODIFIED));
    let digest = oci::Digest::of(b"pinned content").to_string();
    let op = source(&server.url("/pinned.bin"), &[("http.checksum", &digest)]);

    let first = t.snapshot(&op).await;
    assert_eq!(t.read(first, "pinned.bin").as_deref(), Some("pinned content"));
    assert_eq!(server.requests().len(), 1);
    // The key comes from the checksum: a cache hit needs no request at all.
    assert_eq!(t.snapshot(&op).await, first);
    assert_eq!(server.requests().len(), 1);

    let wrong = oci::Digest::of(b"something else").to_string();
    let op = source(&server.url("/pinned.bin"), &[("http.checksum", &wrong)]);
    let error = t.error(&op).await;
    let expected = format!(
        "digest mismatch for {}: expected {wrong}, got {digest}",
        server.url("/pinned.bin")
    );
    assert!(error.contains(&expected), "{error}");
}
