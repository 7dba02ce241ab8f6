//! `--load` (and `type=docker` without `dest`): the image loaded into a real Docker daemon
//! (Debian's `docker.io`, started here with its own data root and socket, no bridge, no
//! iptables) through its Engine API, then run by `docker run`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Harness;

/// A dockerd of the test's own.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("kiln-dockerd-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.path().join("docker.sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd (Debian's docker.io) must be installed: cargo xtask ci installs it");
        let dockerd = Dockerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start:\n{}",
                std::fs::read_to_string(dockerd.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn load_puts_the_image_into_the_docker_daemon() {
    let h = Harness::start();
    let dockerd = Dockerd::start();
    let ctx = h.context();
    ctx.write("hello.txt", "hello from kiln\n").dockerfile(
        "FROM @BASE@\nCOPY hello.txt /hello.txt\nRUN echo ran > /ran.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    );
    h.kiln
        .env
        .borrow_mut()
        .push(("DOCKER_HOST".into(), dockerd.host()));
    let output = h.run_build(ctx.path(), &["--load", "-t", "kiln-load/app:v1"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("Loaded image: kiln-load/app:v1"), "{log}");

    let run = dockerd.docker(&["run", "--rm", "--network=none", "kiln-load/app:v1"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from kiln\n");
    let ran = dockerd.docker(&[
        "run",
        "--rm",
        "--network=none",
        "kiln-load/app:v1",
        "cat",
        "/ran.txt",
    ]);
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran\n");

    // `type=docker` without dest is the same; a daemon that is not there is named.
    let output = h.run_build(ctx.path(), &["-o", "type=docker,name=kiln-load/app:v2"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dockerd
            .docker(&["image", "inspect", "kiln-load/app:v2"])
            .status
            .success()
    );
    // Through a kiln daemon: the daemon streams the tarball, the client loads it into its
    // own Docker.
    let daemon = crate::daemon::Daemon::start(&h.kiln, &[]);
    crate::daemon::use_daemon(&h, &daemon.addr);
    let output = h.run_build(ctx.path(), &["--load", "-t", "kiln-load/app:v4"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("Loaded image: kiln-load/app:v4"), "{log}");
    let run = dockerd.docker(&["run", "--rm", "--network=none", "kiln-load/app:v4"]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from kiln\n");
    h.kiln.env.borrow_mut().retain(|(k, _)| k != "KILN_HOST");
    drop(daemon);

    h.kiln
        .env
        .borrow_mut()
        .push(("DOCKER_HOST".into(), "unix:///nonexistent/docker.sock".into()));
    let output = h.run_build(ctx.path(), &["--load", "-t", "kiln-load/app:v3"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("cannot connect to the Docker daemon at unix:///nonexistent/docker.sock")
            && log.contains("No such file or directory"),
        "{log}"
    );
}
