//! A real registry on loopback (`docker-registry serve`), and pushing fixture images to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use registry::{BlobBody, Client, ClientConfig};

use crate::image::{FixtureImage, busybox_image};

/// The registry binary from Debian's `docker-registry` package (CNCF distribution 2.8).
const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
/// How long one start attempt may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts, each on a new port.
const ATTEMPTS: usize = 3;

/// A `docker-registry` process serving plain HTTP on `127.0.0.1:<free port>`, storing blobs in
/// a temporary directory. Dropping it kills and reaps the process and removes the storage.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    host: String,
    // Dropped after the process is gone (fields drop after `Drop::drop` runs).
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers 200.
    ///
    /// The free port is found by binding port 0 and releasing it, so another process can take
    /// it before the registry does; a start that fails is retried on a new port.
    pub fn start() -> anyhow::Result<Registry> {
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let mut registry = Registry::spawn()?;
            match registry.wait_ready() {
                Ok(()) => return Ok(registry),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!("docker-registry did not start: {}", failures.join("; "))
    }

    fn spawn() -> anyhow::Result<Registry> {
        let dir = tempfile::tempdir().context("create registry storage dir")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("find a free port")?
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
        .with_context(|| format!("write {}", config.display()))?;
        let log = std::fs::File::create(dir.path().join("registry.log")).context("create registry log")?;
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicate registry log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {DOCKER_REGISTRY}"))?;
        Ok(Registry { child, host, dir })
    }

    /// Polls `GET /v2/` until it answers 200; fails early when the process exits (typically
    /// because the port was taken), including the registry's log in the error.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("check docker-registry")? {
                bail!(
                    "docker-registry on {} exited with {status}: {}",
                    self.host,
                    self.log()
                );
            }
            if v2_answers(&self.host) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry on {} not ready after {READY_TIMEOUT:?}: {}",
                    self.host,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `127.0.0.1:<port>`: the registry part of image references served here.
    pub fn host(&self) -> String {
        self.host.clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Errors are ignored: the process may already be gone, and a drop cannot report.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `http://<host>/v2/` answers 200 (a bare HTTP/1.0 request, so no client is needed).
fn v2_answers(host: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(host) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200")
}

/// Pushes `image` to the registry at `registry_host` as `<registry_host>/<repo_and_tag>`
/// (layers, config, then the manifest) with the registry crate's [`Client`], over plain HTTP
/// as loopback hosts are. Returns the full reference string.
pub async fn push_image(
    registry_host: &str,
    repo_and_tag: &str,
    image: &FixtureImage,
) -> anyhow::Result<String> {
    let name = format!("{registry_host}/{repo_and_tag}");
    let reference = oci::Reference::parse(&name).with_context(|| format!("parse reference {name}"))?;
    let client = Client::new(ClientConfig {
        // Loopback is plain HTTP anyway; listing the host also covers a non-loopback address.
        insecure: vec![registry_host.to_string()],
        ..ClientConfig::default()
    })?;
    for (descriptor, blob) in &image.layers {
        client
            .push_blob(&reference, descriptor, BlobBody::Bytes(blob.clone()))
            .await
            .with_context(|| format!("push layer {} to {name}", descriptor.digest))?;
    }
    client
        .push_blob(
            &reference,
            &image.config_descriptor,
            BlobBody::Bytes(image.config.clone()),
        )
        .await
        .with_context(|| format!("push config to {name}"))?;
    let digest = client
        .push_manifest(&reference, oci::media_type::OCI_MANIFEST, image.manifest.clone())
        .await
        .with_context(|| format!("push manifest to {name}"))?;
    if digest != image.manifest_digest {
        bail!(
            "pushed manifest of {name} has digest {digest}, expected {}",
            image.manifest_digest
        );
    }
    Ok(name)
}

/// A running registry with the busybox base image pushed as `<host>/busybox:latest`: what most
/// build tests start from. Usable from plain `#[test]` functions (and from async tests, at the
/// cost of blocking a worker while pushing).
#[derive(Debug)]
pub struct Fixture {
    /// The registry; dropping the fixture stops it.
    pub registry: Registry,
    /// `127.0.0.1:<port>/busybox:latest`.
    pub busybox: String,
    /// The manifest digest of the busybox image.
    pub busybox_digest: oci::Digest,
}

impl Fixture {
    /// Starts a registry and pushes the busybox image to it.
    pub fn start() -> anyhow::Result<Fixture> {
        let registry = Registry::start()?;
        let image = busybox_image()?;
        let busybox = block_on_push(&registry.host(), "busybox:latest", &image)?;
        Ok(Fixture {
            registry,
            busybox,
            busybox_digest: image.manifest_digest,
        })
    }

    /// Pushes another image to this fixture's registry as `<host>/<repo_and_tag>`, blocking.
    /// Returns the full reference string.
    pub fn push(&self, repo_and_tag: &str, image: &FixtureImage) -> anyhow::Result<String> {
        block_on_push(&self.registry.host(), repo_and_tag, image)
    }
}

/// Runs [`push_image`] to completion on a runtime of its own, in a thread of its own: a
/// runtime cannot be started from a thread that already drives one (an async test).
fn block_on_push(host: &str, repo_and_tag: &str, image: &FixtureImage) -> anyhow::Result<String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("start a tokio runtime")?;
                runtime.block_on(push_image(host, repo_and_tag, image))
            })
            .join()
            .map_err(|_| anyhow!("pushing {repo_and_tag} to {host} panicked"))?
    })
}
