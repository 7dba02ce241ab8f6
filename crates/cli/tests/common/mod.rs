//! Helpers shared by the end-to-end tests of the `kiln` binary: a harness that runs real builds
//! (runc over overlayfs, a loopback registry serving the busybox fixture image), build contexts
//! in temporary directories, readers for the exported directory and OCI image, a tiny static
//! HTTP server for `ADD <url>` and git-over-dumb-HTTP, and a git helper.
//!
//! The privileged test binary includes this module; each of its test files uses part of it.
#![allow(dead_code)]

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use testkit::{CountingRuntime, Fixture, TempRoot};

/// The placeholder in Dockerfile texts that [`Context::dockerfile`] replaces with the fixture's
/// busybox reference (`127.0.0.1:<port>/busybox:latest`).
pub const BASE: &str = "@BASE@";

/// The default `PATH` BuildKit gives images without one (and the fixture image has).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs the `kiln` binary with a temporary state directory and a runc wrapper that counts runs.
pub struct Kiln {
    pub root: TempRoot,
    pub runtime: CountingRuntime,
    /// Extra environment variables for every run (e.g. the source of an `env=` secret).
    pub env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Kiln {
    pub fn new() -> Kiln {
        Kiln {
            root: TempRoot::new().unwrap(),
            runtime: CountingRuntime::new().unwrap(),
            env: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Runs `kiln ARGS`; fails the test if kiln panicked, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", self.root.path())
            .env("KILN_RUNTIME", self.runtime.path())
            .envs(self.env.borrow().iter().cloned())
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "kiln {args:?} panicked:\n{stderr}");
        output
    }
}

impl Kiln {
    /// Runs `kiln ARGS` with `input` on its standard input; fails the test if kiln panicked.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", self.root.path())
            .env("KILN_RUNTIME", self.runtime.path())
            .envs(self.env.borrow().iter().cloned())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Written from a thread: kiln may fail before reading it all.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "kiln {args:?} panicked:\n{stderr}");
        output
    }
}

/// A registry with the busybox fixture, a kiln state directory and a place for outputs.
pub struct Harness {
    pub fixture: Fixture,
    pub kiln: Kiln,
    out: tempfile::TempDir,
    builds: Cell<usize>,
}

impl Harness {
    /// Starts the fixture; fails the test (`testkit::require_privileged`) when the machine
    /// cannot run real builds.
    pub fn start() -> Harness {
        testkit::require_privileged();
        Harness {
            fixture: Fixture::start().unwrap(),
            kiln: Kiln::new(),
            out: tempfile::tempdir().unwrap(),
            builds: Cell::new(0),
        }
    }

    /// The busybox fixture image reference.
    pub fn base(&self) -> &str {
        &self.fixture.busybox
    }

    /// A new, empty build context whose Dockerfile texts get [`BASE`] replaced.
    pub fn context(&self) -> Context {
        Context {
            dir: tempfile::tempdir().unwrap(),
            base: self.fixture.busybox.clone(),
        }
    }

    /// A fresh output path for this harness.
    pub fn out_path(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }

    /// Builds `dockerfile` (with [`BASE`] replaced) into an OCI tarball tagged
    /// `example.com/base:v1` and unpacks it: the tarball and the layout directory.
    pub fn oci_layout(&self, dockerfile: &str) -> (PathBuf, PathBuf) {
        let base = self.context();
        base.dockerfile(dockerfile);
        let tarball = self.out_path("base.tar");
        let spec = format!("type=oci,dest={},name=example.com/base:v1", tarball.display());
        let output = self.run_build(base.path(), &["-o", &spec]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let layout = self.out_path("layout");
        std::fs::create_dir(&layout).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap();
        assert!(status.success());
        (tarball, layout)
    }

    fn next_build(&self) -> usize {
        let n = self.builds.get() + 1;
        self.builds.set(n);
        n
    }

    /// Runs `kiln build --progress=plain EXTRA… CONTEXT` with no outputs added.
    pub fn run_build(&self, context: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["build", "--progress=plain"];
        args.extend_from_slice(extra);
        let context = context.to_str().unwrap();
        args.push(context);
        self.kiln.run(&args)
    }

    /// Builds `ctx` with a local and an OCI output; the build must succeed.
    pub fn build(&self, ctx: &Context, extra: &[&str]) -> Built {
        self.build_dir(ctx.path(), extra)
    }

    /// Builds the context directory `dir` with a local and an OCI output; the build must succeed.
    pub fn build_dir(&self, dir: &Path, extra: &[&str]) -> Built {
        let n = self.next_build();
        let rootfs = self.out.path().join(format!("rootfs-{n}"));
        let oci = self.out.path().join(format!("image-{n}.tar"));
        let layout = self.out.path().join(format!("layout-{n}"));
        let local = format!("type=local,dest={}", rootfs.display());
        let image = format!("type=oci,dest={},name=kiln-test/e2e:{n}", oci.display());
        let mut args = vec!["-o", local.as_str(), "-o", image.as_str()];
        args.extend_from_slice(extra);
        let output = self.run_build(dir, &args);
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "build failed:\n{log}");
        std::fs::create_dir_all(&layout).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&oci)
            .arg("-C")
            .arg(&layout)
            .status()
            .unwrap();
        assert!(status.success(), "could not unpack {}", oci.display());
        Built {
            rootfs,
            oci,
            layout,
            log,
        }
    }

    /// Builds `ctx` expecting failure; returns standard error.
    pub fn build_err(&self, ctx: &Context, extra: &[&str]) -> String {
        let output = self.run_build(ctx.path(), extra);
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "build unexpectedly succeeded:\n{log}");
        log
    }

    /// Pushes `image` to the fixture registry as `<host>/<repo_and_tag>`.
    pub fn push(&self, repo_and_tag: &str, image: &testkit::FixtureImage) -> String {
        self.fixture.push(repo_and_tag, image).unwrap()
    }
}

/// Writes `text` to `dir/name`, creating parent directories.
pub fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A build context in a temporary directory.
pub struct Context {
    dir: tempfile::TempDir,
    base: String,
}

impl Context {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `Dockerfile`, with [`BASE`] replaced by the busybox fixture reference.
    pub fn dockerfile(&self, text: &str) -> &Context {
        self.write("Dockerfile", &text.replace(BASE, &self.base))
    }

    /// Writes a file (creating parent directories) with mode 0644.
    pub fn write(&self, name: &str, contents: &str) -> &Context {
        self.write_bytes(name, contents.as_bytes())
    }

    pub fn write_bytes(&self, name: &str, contents: &[u8]) -> &Context {
        let path = self.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    pub fn mkdir(&self, name: &str) -> &Context {
        std::fs::create_dir_all(self.join(name)).unwrap();
        self
    }

    pub fn symlink(&self, name: &str, target: &str) -> &Context {
        let path = self.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    pub fn chmod(&self, name: &str, mode: u32) -> &Context {
        std::fs::set_permissions(self.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn chown(&self, name: &str, uid: u32, gid: u32) -> &Context {
        std::os::unix::fs::lchown(self.join(name), Some(uid), Some(gid)).unwrap();
        self
    }

    /// Runs `tar ARGS` in the context directory (to make archives).
    pub fn tar(&self, args: &[&str]) -> &Context {
        let status = Command::new("tar")
            .args(args)
            .current_dir(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "tar {args:?} failed");
        self
    }
}

/// The outputs of one successful build: the exported directory and the OCI tarball (unpacked).
pub struct Built {
    pub rootfs: PathBuf,
    pub oci: PathBuf,
    pub layout: PathBuf,
    pub log: String,
}

impl Built {
    pub fn path(&self, path: &str) -> PathBuf {
        self.rootfs.join(path.trim_start_matches('/'))
    }

    /// The contents of a file of the result.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path))
            .unwrap_or_else(|e| panic!("read {path} from the result: {e}\nbuild log:\n{}", self.log))
    }

    /// Whether the result has an entry (of any type, symlinks not followed) at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.path(path).symlink_metadata().is_ok()
    }

    fn meta(&self, path: &str) -> std::fs::Metadata {
        self.path(path)
            .symlink_metadata()
            .unwrap_or_else(|e| panic!("stat {path} in the result: {e}\nbuild log:\n{}", self.log))
    }

    /// Permission bits (with setuid, setgid and sticky) of an entry.
    pub fn mode(&self, path: &str) -> u32 {
        self.meta(path).mode() & 0o7777
    }

    /// `(uid, gid)` of an entry.
    pub fn owner(&self, path: &str) -> (u32, u32) {
        let meta = self.meta(path);
        (meta.uid(), meta.gid())
    }

    /// Modification time of an entry, in seconds since the epoch.
    pub fn mtime(&self, path: &str) -> i64 {
        self.meta(path).mtime()
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.meta(path).is_dir()
    }

    pub fn is_file(&self, path: &str) -> bool {
        self.meta(path).is_file()
    }

    /// The target of a symlink of the result.
    pub fn link(&self, path: &str) -> String {
        assert!(
            self.meta(path).file_type().is_symlink(),
            "{path} is not a symlink"
        );
        std::fs::read_link(self.path(path))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// Names in a directory of the result, sorted.
    pub fn list(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(path))
            .unwrap_or_else(|e| panic!("list {path} in the result: {e}\nbuild log:\n{}", self.log))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.layout.join("blobs/sha256").join(hex)
    }

    fn json(&self, path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The image manifest of the OCI output.
    pub fn manifest(&self) -> Value {
        let index = self.json(&self.layout.join("index.json"));
        let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        self.json(&self.blob(&digest))
    }

    /// The image config of the OCI output.
    pub fn config(&self) -> Value {
        let manifest = self.manifest();
        self.json(&self.blob(manifest["config"]["digest"].as_str().unwrap()))
    }

    /// The entries of every layer of the OCI output, base first, as `tar -t` lists them
    /// (directories with a trailing `/`, no leading `./`).
    pub fn layers(&self) -> Vec<Vec<String>> {
        let manifest = self.manifest();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| {
                let output = Command::new("tar")
                    .arg("-tf")
                    .arg(self.blob(layer["digest"].as_str().unwrap()))
                    .output()
                    .unwrap();
                assert!(output.status.success());
                String::from_utf8(output.stdout)
                    .unwrap()
                    .lines()
                    .map(|l| l.trim_start_matches("./").to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .collect()
    }

    /// `created_by` and `empty_layer` of every history entry of the image config.
    pub fn history(&self) -> Vec<(String, bool)> {
        self.config()["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["created_by"].as_str().unwrap_or_default().to_string(),
                    h["empty_layer"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }
}

/// The `Env` of an image config as strings.
pub fn env_of(config: &Value) -> Vec<String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Asserts that a failed build's report shows `Dockerfile:LINE` and the marked line.
pub fn assert_points_at(err: &str, line: usize, text: &str) {
    assert!(
        err.contains(&format!("Dockerfile:{line}\n")),
        "error does not name Dockerfile:{line}:\n{err}"
    );
    assert!(
        err.contains(&format!(" {line} | >>> {text}")),
        "error does not mark line {line} ({text}):\n{err}"
    );
}

/// What the static file server sends as every file's `Last-Modified`.
pub const LAST_MODIFIED: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
/// [`LAST_MODIFIED`] in seconds since the epoch.
pub const LAST_MODIFIED_EPOCH: i64 = 1_704_067_200;

/// A static file server on `127.0.0.1:<free port>` serving `GET` and `HEAD` from a directory
/// (query strings ignored, so git's smart-protocol probe falls back to the dumb protocol), with
/// [`LAST_MODIFIED`] on every file. Dropping it stops the accept loop.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn serve(root: &Path) -> HttpServer {
        HttpServer::serve_with_auth(root, None)
    }

    /// Serves `root`, answering 401 to requests whose `Authorization` header is not `auth`.
    pub fn serve_with_auth(root: &Path, auth: Option<&str>) -> HttpServer {
        let auth = auth.map(str::to_string);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let root = root.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let root = root.clone();
                let auth = auth.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &root, auth.as_deref());
                });
            }
        });
        HttpServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(mut stream: TcpStream, root: &Path, auth: Option<&str>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let mut words = text.lines().next().unwrap_or_default().split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    if let Some(auth) = auth {
        let given = text.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization").then(|| value.trim())
        });
        if given != Some(auth) {
            stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"kiln\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return stream.flush();
        }
    }
    let file = (!path.split('/').any(|c| c == ".."))
        .then(|| root.join(path.trim_start_matches('/')))
        .filter(|p| p.is_file());
    match file {
        Some(file) if method == "GET" || method == "HEAD" => {
            let body = std::fs::read(file)?;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
                 Last-Modified: {LAST_MODIFIED}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            if method == "GET" {
                stream.write_all(&body)?;
            }
        }
        _ => {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        }
    }
    stream.flush()
}

/// Clones `<repos>/work` bare into `<repos>/served/repo.git`, ready to be served over git's dumb
/// HTTP protocol; returns `<repos>/served`.
pub fn bare_for_dumb_http(repos: &Path) -> PathBuf {
    let served = repos.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(repos, &["clone", "-q", "--bare", "work", "served/repo.git"]);
    git(&served.join("repo.git"), &["update-server-info"]);
    served
}

pub use testkit::git;

/// The hex sha256 of `data`, computed with `sha256sum` (no hashing crate in this test binary).
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `kiln ARGS` on the state directory `root` with the runtime `runtime`, started in `dir`, with
/// core dumps off (a fault point aborts the process, and an abort must not leave a core file)
/// and without a `KILN_FAULT` the test itself may have been given.
pub fn kiln_without_core_dumps(root: &Path, runtime: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "ulimit -c 0 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_kiln"),
        ])
        .args(args)
        .current_dir(dir)
        .env("KILN_ROOT", root)
        .env("KILN_RUNTIME", runtime)
        .env_remove("KILN_FAULT");
    command
}

/// Output bytes as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Deletes every container left in a state directory's runc root when dropped, so that a
/// failing test never leaves one running.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Some(runc) = testkit::runc() else { return };
        for id in runc_list(&self.0) {
            let _ = Command::new(&runc)
                .arg("--root")
                .arg(self.0.join("executor/runc"))
                .args(["delete", "--force", &id])
                .output();
        }
    }
}

/// The containers in the executor's runc root.
pub fn runc_list(root: &Path) -> Vec<String> {
    let runc_root = root.join("executor/runc");
    if !runc_root.exists() {
        return Vec::new();
    }
    let output = Command::new(testkit::runc().unwrap())
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    if !output.status.success() {
        return vec![format!(
            "(runc list failed: {})",
            String::from_utf8_lossy(&output.stderr).trim()
        )];
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A process with `arg` as one of its arguments.
pub fn process_with_arg(arg: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline
            .split(|b| *b == 0)
            .any(|a| a == arg.as_bytes())
            .then_some(pid)
    })
}

/// Every file below `dir` whose bytes (or, for gzip files, decompressed bytes) contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                todo.extend(entries.flatten().map(|e| e.path()));
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let mut contents = vec![bytes.clone()];
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            if flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .is_ok()
            {
                contents.push(plain);
            }
        }
        if contents
            .iter()
            .any(|c| c.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}
