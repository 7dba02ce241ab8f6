//! `kiln daemon` and its clients: builds through the daemon with the client's files, secrets
//! and outputs; the incremental context transfer; disk management, logs and history through it;
//! the socket's permissions, TCP with and without mutual TLS; a graceful stop on SIGTERM and a
//! clear error for clients of a daemon that died.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BASE, Harness, Kiln, files_containing, sha256_hex};

/// A `kiln daemon` process on a unix socket (or the addresses given), with the state directory
/// and runtime of `kiln`.
pub struct Daemon {
    child: Child,
    pub addr: String,
    pub socket: Option<PathBuf>,
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon on a new unix socket and waits until it answers.
    pub fn start(kiln: &Kiln, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kiln.sock");
        let addr = format!("unix://{}", socket.display());
        let mut d = Daemon::spawn(kiln, dir, &["--addr", &addr], extra);
        d.addr = addr;
        d.socket = Some(socket);
        d.wait_ready(kiln);
        d
    }

    /// Starts `kiln daemon ARGS EXTRA` without waiting.
    pub fn spawn(kiln: &Kiln, dir: tempfile::TempDir, args: &[&str], extra: &[&str]) -> Daemon {
        let stderr = dir.path().join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", kiln.root.path())
            .env("KILN_RUNTIME", kiln.runtime.path())
            .env_remove("KILN_HOST")
            .envs(
                kiln.env
                    .borrow()
                    .iter()
                    .filter(|(k, _)| k != "KILN_HOST")
                    .cloned(),
            )
            .arg("daemon")
            .args(args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            addr: String::new(),
            socket: None,
            stderr,
            _dir: dir,
        }
    }

    /// Waits (at most a minute) until `kiln debug ping` reaches the daemon.
    pub fn wait_ready(&mut self, kiln: &Kiln) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            let ping = kiln.run(&["--addr", &self.addr, "debug", "ping"]);
            if ping.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the daemon never answered:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the daemon printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and waits (at most `limit`) for the daemon to exit.
    pub fn signal_and_wait(&mut self, signal: &str, limit: Duration) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "the daemon did not exit within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Peak resident memory of the daemon so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Routes the harness's builds through `daemon`.
pub fn use_daemon(h: &Harness, addr: &str) {
    let mut env = h.kiln.env.borrow_mut();
    env.retain(|(k, _)| k != "KILN_HOST");
    env.push(("KILN_HOST".into(), addr.to_string()));
}

/// The number of files the context transfer sent, from a plain progress log.
pub fn files_sent(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.split("transferring context: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no context transfer in:\n{log}"))
}

#[test]
fn builds_through_the_daemon_with_the_clients_files_secrets_and_outputs() {
    let h = Harness::start();
    let mut d = Daemon::start(&h.kiln, &[]);
    let socket = d.socket.clone().unwrap();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "the socket is for root and its group"
    );
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    use_daemon(&h, &d.addr);

    let secret = "kiln-daemon-secret-4e9b27c1d0";
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("tok");
    std::fs::write(&secret_file, secret).unwrap();
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nCOPY . /src/\nRUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /sha\nRUN cat /src/a.txt > /copied\n"
    ))
    .write("a.txt", "from the client\n")
    .write("skip.log", "never sent\n")
    .write(".dockerignore", "*.log\n");
    let arg = format!("id=tok,src={}", secret_file.display());
    let built = h.build(&ctx, &["--secret", &arg]);
    assert_eq!(built.read("/sha").trim(), sha256_hex(secret.as_bytes()));
    assert_eq!(built.read("/copied"), "from the client\n");
    assert!(!built.exists("/src/skip.log"), "{:?}", built.list("/src"));
    assert!(built.log.contains("transferring context:"), "{}", built.log);
    // The daemon's copy of the context: without what .dockerignore leaves out.
    let root = h.kiln.root.path();
    assert!(files_containing(&root.join("contexts"), b"from the client").len() == 1);
    assert!(files_containing(&root.join("contexts"), b"never sent").is_empty());
    // The secret never touched the daemon's disk, its log or the client's output.
    assert_eq!(files_containing(root, secret.as_bytes()), Vec::<PathBuf>::new());
    assert!(!d.log().contains(secret) && !built.log.contains(secret));

    // Outputs to files and to standard output: the client hands the daemon its descriptors
    // on the socket beside the daemon's (same mode), and the daemon writes into them.
    let fds = api::fds::socket_of(&socket);
    assert_eq!(
        std::fs::metadata(&fds).unwrap().permissions().mode() & 0o777,
        0o660
    );
    let tar = h.out_path("out.tar");
    let to_file = format!("type=tar,dest={}", tar.display());
    let output = h.run_build(ctx.path(), &["--secret", &arg, "-o", &to_file]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("copied"),
        "{listed:?}"
    );
    let output = h.run_build(ctx.path(), &["--secret", &arg, "-o", "type=tar,dest=-"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut untar = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(untar.stdin.as_mut().unwrap(), &output.stdout).unwrap();
    let listed = untar.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("copied"),
        "{listed:?}"
    );
    // A descriptor for a token no build registered is refused.
    let refused = api::fds::hand_over(
        &fds,
        "0123456789abcdef0123456789abcdef",
        std::os::fd::AsFd::as_fd(&std::fs::File::create(h.out_path("nothing")).unwrap()),
    );
    assert!(refused.unwrap_err().to_string().contains("no build waits"));

    // Disk usage, history, logs and prune through the daemon.
    let du = h.kiln.run(&["du", "--format", "json"]);
    assert!(du.status.success(), "{}", String::from_utf8_lossy(&du.stderr));
    let du: serde_json::Value = serde_json::from_slice(&du.stdout).unwrap();
    assert!(!du["records"].as_array().unwrap().is_empty(), "{du}");
    let history = h.kiln.run(&["history", "--format", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let last = &history[0];
    assert_eq!(last["status"], "completed", "{history}");
    let canonical = std::fs::canonicalize(ctx.path()).unwrap();
    assert_eq!(
        last["context"],
        canonical.display().to_string(),
        "the client's path, not the daemon's copy"
    );
    assert!(last["steps"].as_u64().unwrap() >= 3, "{history}");
    let logs = h.kiln.run(&["logs"]);
    assert!(String::from_utf8_lossy(&logs.stderr).contains("RUN cat /src/a.txt"));
    let prune = h.kiln.run(&["prune", "--all", "--format", "json"]);
    assert!(
        std::fs::read_dir(root.join("contexts"))
            .unwrap()
            .all(|e| e.unwrap().file_name() == "ssh"),
        "prune --all removes the daemon's copies of client directories"
    );
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );

    let status = d.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", d.log());
    assert!(!socket.exists(), "the socket is removed on a graceful stop");
    assert!(!fds.exists(), "and the one beside it");
}

#[test]
fn a_one_file_change_of_a_large_context_sends_one_file() {
    let h = Harness::start();
    let d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let ctx = h.context();
    ctx.dockerfile("FROM scratch\nCOPY . /\n");
    for dir in 0..100 {
        for file in 0..200 {
            crate::common::write(ctx.path(), &format!("d{dir}/f{file}"), &format!("{dir}/{file}\n"));
        }
    }
    let tar = h.out_path("ctx.tar");
    let out = format!("type=tar,dest={}", tar.display());
    let first = h.run_build(ctx.path(), &["-o", &out]);
    let log = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first.status.success(), "{log}");
    assert_eq!(files_sent(&log), 20_001, "the first build sends everything");
    std::fs::write(ctx.join("d7/f7"), "changed\n").unwrap();
    std::fs::remove_file(ctx.join("d9/f9")).unwrap();
    let second = h.run_build(ctx.path(), &["-o", &out]);
    let log = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(second.status.success(), "{log}");
    assert_eq!(files_sent(&log), 1, "{log}");
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        !listing.lines().any(|l| l.trim_start_matches("./") == "d9/f9"),
        "a removed file is gone from the daemon's copy"
    );
    assert!(listing.lines().any(|l| l.trim_start_matches("./") == "d9/f8"));
    let content = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("d7/f7")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&content.stdout), "changed\n");
}

#[test]
fn sigterm_cancels_running_builds_and_a_killed_daemon_is_a_clear_error() {
    let h = Harness::start();
    let mut d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let ctx = h.context();
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo started && sleep 120\n"));
    let client = |h: &Harness| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", h.kiln.root.path())
            .envs(h.kiln.env.borrow().iter().cloned())
            .args(["build", "--progress=plain"])
            .arg(ctx.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_running = |h: &Harness| {
        let start = Instant::now();
        while h.kiln.runtime.runs() == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the step never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // SIGTERM: the build is cancelled, its client told, and the daemon exits in good order.
    let running = client(&h);
    wait_running(&h);
    let status = d.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", d.log());
    let out = running.wait_with_output().unwrap();
    assert!(!out.status.success());
    let check = h.kiln.run(&["debug", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout) + String::from_utf8_lossy(&check.stderr)
    );

    // kill -9 mid-build: the client fails at once with the daemon's address, never hangs.
    let mut d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let runs = h.kiln.runtime.runs();
    let running = client(&h);
    let start = Instant::now();
    while h.kiln.runtime.runs() == runs {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.signal_and_wait("KILL", Duration::from_secs(10));
    let killed = Instant::now();
    let out = running.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(killed.elapsed() < Duration::from_secs(30), "the client hung");
    assert!(err.contains("stopped during the build"), "{err}");
    assert!(err.contains(&d.addr), "{err}");
    // No daemon at all: a clear error too.
    let err = h.build_err(&ctx, &[]);
    assert!(
        err.contains("no daemon could be reached") && err.contains("unreachable"),
        "{err}"
    );
    // The next daemon recovers the state directory and builds.
    let mut d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let quick = h.context();
    quick
        .dockerfile("FROM scratch\nCOPY a /\n")
        .write("a", "after the crash\n");
    assert_eq!(h.build(&quick, &[]).read("/a"), "after the crash\n");
    d.signal_and_wait("TERM", Duration::from_secs(30));
    let check = h.kiln.run(&["debug", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &str| {
        let status = Command::new("sh")
            .arg("-c")
            .arg(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{args}");
    };
    run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=kiln-test-ca",
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        run(&format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key -out {name}.csr -subj /CN={name} && openssl x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -days 2 -extfile {name}.ext"
        ));
    }
}

/// The TCP address a daemon printed that it serves.
fn served_tcp(d: &Daemon) -> String {
    let start = Instant::now();
    loop {
        if let Some(addr) = d
            .log()
            .lines()
            .find_map(|l| l.split(" on ").nth(1).filter(|a| a.starts_with("tcp://")))
        {
            return addr.trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no TCP address:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tcp_needs_mutual_tls_unless_insecure_is_asked() {
    let h = Harness::start();
    // Refused without TLS.
    let out = h.kiln.run(&["daemon", "--addr", "tcp://127.0.0.1:0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refusing to serve tcp://127.0.0.1:0 without TLS"),
        "{err}"
    );

    // With --insecure-tcp: a warning, and builds work.
    let mut d = Daemon::spawn(
        &h.kiln,
        tempfile::tempdir().unwrap(),
        &["--addr", "tcp://127.0.0.1:0", "--insecure-tcp"],
        &[],
    );
    d.addr = served_tcp(&d);
    d.wait_ready(&h.kiln);
    assert!(
        d.log().contains("WARNING: serving tcp://127.0.0.1:0 without TLS"),
        "{}",
        d.log()
    );
    use_daemon(&h, &d.addr);
    let ctx = h.context();
    ctx.dockerfile("FROM scratch\nCOPY a /\n")
        .write("a", "over tcp\n");
    assert_eq!(h.build(&ctx, &[]).read("/a"), "over tcp\n");
    d.signal_and_wait("TERM", Duration::from_secs(30));

    // Mutual TLS: a client with a certificate of the CA builds; one without is refused.
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let file = |n: &str| certs.path().join(n).display().to_string();
    let server = [
        "--tlscacert".to_string(),
        file("ca.crt"),
        "--tlscert".to_string(),
        file("server.crt"),
        "--tlskey".to_string(),
        file("server.key"),
    ];
    let server: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut d = Daemon::spawn(
        &h.kiln,
        tempfile::tempdir().unwrap(),
        &["--addr", "tcp://127.0.0.1:0"],
        &server,
    );
    d.addr = served_tcp(&d);
    use_daemon(&h, &d.addr);
    let anonymous = h.kiln.run(&["debug", "ping"]);
    assert!(
        !anonymous.status.success(),
        "a client without a certificate was served"
    );
    let client_tls = [
        ("KILN_TLS_CACERT", file("ca.crt")),
        ("KILN_TLS_CERT", file("client.crt")),
        ("KILN_TLS_KEY", file("client.key")),
    ];
    h.kiln
        .env
        .borrow_mut()
        .extend(client_tls.iter().map(|(k, v)| (k.to_string(), v.clone())));
    d.wait_ready(&h.kiln);
    assert_eq!(h.build(&ctx, &[]).read("/a"), "over tcp\n");
}

/// The daemon a client said it builds on last.
fn building_on(log: &str) -> String {
    log.lines()
        .filter_map(|l| l.strip_prefix("kiln: building on "))
        .next_back()
        .unwrap_or_else(|| panic!("no routing line in:\n{log}"))
        .trim()
        .to_string()
}

#[test]
fn a_fleet_routes_projects_sticky_fails_over_and_shares_a_remote_cache() {
    let h = Harness::start();
    let cache = format!("type=registry,ref={}/fleet/cache:kiln", h.fixture.registry.host());
    let export = format!("{cache},mode=max");
    let kilns: Vec<Kiln> = (0..3).map(|_| Kiln::new()).collect();
    let mut daemons: Vec<Daemon> = kilns
        .iter()
        .map(|k| Daemon::start(k, &["--cache-from", &cache, "--cache-to", &export]))
        .collect();
    let all: Vec<String> = daemons.iter().map(|d| d.addr.clone()).collect();
    use_daemon(&h, &all.join(","));
    let index = |addr: &str| all.iter().position(|a| a == addr).unwrap();
    let runs = |i: usize| kilns[i].runtime.runs();

    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nARG SLOW\nRUN echo built > /x\nRUN test -z \"$SLOW\" || sleep 120\nCOPY a /a\n"
    ))
    .write("a", "project\n");
    let first = h.build(&ctx, &[]);
    let owner = index(&building_on(&first.log));
    assert_eq!(runs(owner), 2, "both RUN steps ran on {}", all[owner]);
    // Sticky: the same project lands on the same daemon, which has it cached.
    let again = h.build(&ctx, &[]);
    assert_eq!(index(&building_on(&again.log)), owner);
    assert_eq!(runs(owner), 2, "the rebuild ran nothing");

    // The owner dies mid-build: the client says so.
    let slow = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", h.kiln.root.path())
        .envs(h.kiln.env.borrow().iter().cloned())
        .args(["build", "--progress=plain", "--build-arg", "SLOW=1"])
        .arg(ctx.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while runs(owner) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the slow step never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemons[owner].signal_and_wait("KILL", Duration::from_secs(10));
    let out = slow.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("the daemon at {} stopped during the build", all[owner])),
        "{err}"
    );

    // The next build goes to the next daemon on the ring, which never saw the project, and
    // takes every step from the shared cache: no RUN step runs.
    let next = h.build(&ctx, &[]);
    assert!(
        next.log
            .contains(&format!("daemon {} is unreachable", all[owner])),
        "{}",
        next.log
    );
    let successor = index(&building_on(&next.log));
    assert_ne!(successor, owner);
    assert_eq!(runs(successor), 0, "{}", next.log);
    assert_eq!(next.read("/x"), "built\n");
    assert_eq!(next.read("/a"), "project\n");
    drop(daemons);
}

#[test]
fn concurrent_clients_share_work_and_cancelled_ones_leave_the_daemon_clean() {
    let h = Harness::start();
    let mut d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    const VARIANTS: usize = 4;
    const CLIENTS: usize = 20;
    let contexts: Vec<_> = (0..VARIANTS)
        .map(|v| {
            let ctx = h.context();
            ctx.dockerfile(&format!(
                "FROM {BASE}\nRUN sleep 2 && echo shared > /shared\nCOPY v /v\nRUN cat /v > /variant\n"
            ))
            .write("v", &format!("variant {v}\n"));
            ctx
        })
        .collect();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let tar = h.out_path(&format!("client-{i}.tar"));
            let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
                .env("KILN_ROOT", h.kiln.root.path())
                .envs(h.kiln.env.borrow().iter().cloned())
                .args(["build", "--progress=plain", "-o"])
                .arg(format!("type=tar,dest={}", tar.display()))
                .arg(contexts[i % VARIANTS].path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, tar, child)
        })
        .collect();
    // Cancel three clients (of three variants) while the shared step runs.
    let wait = Instant::now();
    while h.kiln.runtime.runs() == 0 {
        assert!(wait.elapsed() < Duration::from_secs(120), "nothing ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut results = Vec::new();
    for (i, tar, mut child) in clients {
        if [1, 2, 7].contains(&i) {
            child.kill().unwrap();
            let _ = child.wait();
            continue;
        }
        results.push((i, tar, child));
    }
    for (i, tar, child) in results {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let variant = Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg("variant")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&variant.stdout),
            format!("variant {}\n", i % VARIANTS)
        );
    }
    let took = started.elapsed();
    // The shared step ran once, each variant's step once.
    assert_eq!(
        h.kiln.runtime.runs(),
        1 + VARIANTS,
        "{:?}",
        h.kiln.runtime.invocations()
    );
    let peak = d.peak_rss_kib();
    eprintln!(
        "load: {CLIENTS} clients ({} cancelled), {:.1}s, {} RUN steps, daemon peak RSS {} MiB",
        3,
        took.as_secs_f64(),
        h.kiln.runtime.runs(),
        peak / 1024
    );
    assert!(peak < 512 * 1024, "the daemon's memory grew to {peak} KiB");
    let status = d.signal_and_wait("TERM", Duration::from_secs(30));
    assert!(status.success(), "{}", d.log());
    let check = h.kiln.run(&["debug", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout) + String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_second_build_joins_the_one_holding_the_state_directory() {
    let h = Harness::start();
    let first = h.context();
    first.dockerfile(&format!("FROM {BASE}\nRUN sleep 3 && echo shared > /s\n"));
    let second = h.context();
    second.dockerfile(&format!(
        "FROM {BASE}\nRUN sleep 3 && echo shared > /s\nRUN echo b > /b\n"
    ));
    let spawn = |ctx: &crate::common::Context| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_ROOT", h.kiln.root.path())
            .env("KILN_RUNTIME", h.kiln.runtime.path())
            .args(["build", "--progress=plain"])
            .arg(ctx.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let host = spawn(&first);
    let wait = Instant::now();
    while h.kiln.runtime.runs() == 0 {
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "the first build never ran its step"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let guest = spawn(&second).wait_with_output().unwrap();
    let guest_log = String::from_utf8_lossy(&guest.stderr);
    assert!(guest.status.success(), "{guest_log}");
    assert!(guest_log.contains("joining the build that holds"), "{guest_log}");
    let host = host.wait_with_output().unwrap();
    assert!(host.status.success(), "{}", String::from_utf8_lossy(&host.stderr));
    assert_eq!(
        h.kiln.runtime.runs(),
        2,
        "the shared step ran once: {:?}",
        h.kiln.runtime.invocations()
    );
    assert!(!h.kiln.root.path().join("kiln.sock").exists());
}

/// Opens a raw build stream to `addr`, sends `messages`, and returns the daemon's answer: the
/// failure of its outcome, or the status that ended the stream.
async fn raw_build(addr: &str, messages: Vec<api::pb::ClientMessage>, hang_up: bool) -> String {
    use api::pb::server_message::Message;
    let address = api::Address::parse(addr).unwrap();
    let channel = api::connect(&address, &api::TlsFiles::default()).unwrap();
    let mut client = api::pb::control_client::ControlClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    for m in messages {
        tx.send(m).await.unwrap();
    }
    if hang_up {
        drop(tx);
        return String::new();
    }
    let mut stream = match client
        .build(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return format!("status: {}", status.message()),
    };
    loop {
        match stream.message().await {
            Ok(Some(api::pb::ServerMessage {
                message: Some(Message::Outcome(o)),
            })) => return o.failure.map(|f| f.message).unwrap_or_else(|| "success".into()),
            Ok(Some(_)) => {}
            Ok(None) => return "ended".into(),
            Err(status) => return format!("status: {}", status.message()),
        }
    }
}

fn message(m: api::pb::client_message::Message) -> api::pb::ClientMessage {
    api::pb::ClientMessage { message: Some(m) }
}

fn start_message(client: &str) -> api::pb::ClientMessage {
    message(api::pb::client_message::Message::Start(api::pb::BuildStart {
        client_id: client.into(),
        locals: vec![api::pb::LocalDir {
            name: "context".into(),
            path: "/hostile".into(),
        }],
        dockerfile_text: "FROM scratch\nCOPY . /\n".into(),
        dockerfile_name: "Dockerfile".into(),
        ..Default::default()
    }))
}

fn listing(entries: Vec<(&str, u32, &str)>) -> api::pb::ClientMessage {
    message(api::pb::client_message::Message::Files(api::pb::FileList {
        local: "context".into(),
        entries: entries
            .into_iter()
            .map(|(path, mode, link)| api::pb::FileEntry {
                path: path.as_bytes().to_vec(),
                mode,
                link: link.as_bytes().to_vec(),
                size: 4,
                ..Default::default()
            })
            .collect(),
        last: true,
    }))
}

#[test]
fn hostile_clients_get_errors_and_write_nothing_outside_their_copy() {
    let h = Harness::start();
    let d = Daemon::start(&h.kiln, &[]);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().display().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // No BuildStart first.
        let answer = raw_build(&d.addr, vec![listing(vec![])], false).await;
        assert!(answer.contains("must start with BuildStart"), "{answer}");
        // A symlink to outside, then a file "below" it.
        let answer = raw_build(
            &d.addr,
            vec![
                start_message("hostile-1"),
                listing(vec![("a", 0o120777, &target), ("a/escaped", 0o100644, "")]),
            ],
            false,
        )
        .await;
        assert!(
            answer.contains("invalid context transfer") && answer.contains("parent"),
            "{answer}"
        );
        // Paths with `..`, absolute paths, devices.
        for (path, mode) in [
            ("../x", 0o100644),
            ("/etc/x", 0o100644),
            ("ok/../../x", 0o040755),
            ("dev", 0o020644),
        ] {
            let answer = raw_build(
                &d.addr,
                vec![start_message("hostile-2"), listing(vec![(path, mode, "")])],
                false,
            )
            .await;
            assert!(answer.contains("invalid context transfer"), "{path}: {answer}");
        }
        // Names of local directories the daemon does not know.
        let mut bad = start_message("hostile-3");
        if let Some(api::pb::client_message::Message::Start(s)) = &mut bad.message {
            s.locals[0].name = "../../etc".into();
        }
        let answer = raw_build(&d.addr, vec![bad], false).await;
        assert!(answer.contains("invalid local directory name"), "{answer}");
        // A client that hangs up mid-transfer.
        raw_build(&d.addr, vec![start_message("hostile-4")], true).await;
    });
    assert!(
        !outside.path().join("escaped").exists(),
        "a file was written through a symlink"
    );
    // The daemon is still there, and said nothing of a panic.
    let ping = h.kiln.run(&["--addr", &d.addr, "debug", "ping"]);
    assert!(ping.status.success());
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn ssh_agents_are_tunnelled_to_the_clients_agent() {
    let h = Harness::start();
    let agent = crate::secrets::Agent::start();
    let image = h.push("tools/ssh:latest", &crate::secrets::ssh_tools_image());
    let d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {image}\nRUN --mount=type=ssh ssh-add -l > /keys && ssh-add -l >> /keys\nRUN --mount=type=ssh,id=missing ls /run/buildkit > /none 2>&1 || echo none > /none\n"
    ));
    let arg = format!("default={}", agent.socket().display());
    let built = h.build(&ctx, &["--ssh", &arg]);
    let keys = built.read("/keys");
    assert_eq!(
        keys.matches(&agent.fingerprint()).count(),
        2,
        "two connections through the tunnel: {keys}"
    );
    assert_eq!(built.read("/none"), "none\n");
    // The daemon's sockets for the build are gone with it.
    let ssh_dir = h.kiln.root.path().join("contexts/ssh");
    assert_eq!(std::fs::read_dir(&ssh_dir).map(|d| d.count()).unwrap_or(0), 0);
    // Key files stay on the client: an agent of the client serves them through the tunnel,
    // and the private key is nowhere in the daemon's state directory.
    let key = format!("default={}", agent.key().display());
    ctx.dockerfile(&format!(
        "FROM {image}\nRUN --mount=type=ssh ssh-add -l > /keys\n"
    ));
    let built = h.build(&ctx, &["--ssh", &key]);
    assert!(
        built.read("/keys").contains(&agent.fingerprint()),
        "{}",
        built.read("/keys")
    );
    let private = std::fs::read_to_string(agent.key()).unwrap();
    let secret_line = private.lines().nth(1).unwrap().to_string();
    assert_eq!(
        files_containing(h.kiln.root.path(), secret_line.as_bytes()),
        Vec::<PathBuf>::new(),
        "the private key reached the daemon's state directory"
    );
    assert!(!d.log().contains(&secret_line));
}

/// `kiln build ARGS CONTEXT` by `kiln` (through its `KILN_HOST`); must succeed; the log.
fn build_with(kiln: &Kiln, ctx: &Path, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress=plain"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    let output = kiln.run(&all);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "build failed:\n{log}");
    log
}

#[test]
fn local_caches_and_layout_contexts_travel_through_the_daemon() {
    let h = Harness::start();
    // An OCI layout of an image tagged v1, written without a daemon.
    let (_, layout) = h.oci_layout("FROM @BASE@\nRUN echo from-layout > /layout.txt\n");

    let d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let runs_before = h.kiln.runtime.runs();
    let ctx = h.context();
    ctx.write("hello.txt", "hello\n").dockerfile(
        "FROM base\nRUN cat /layout.txt > /copied.txt\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt > /copy.txt\n",
    );
    let cache = h.out_path("cache");
    let layout_arg = format!("base=oci-layout://{}:v1", layout.display());
    let to = format!("type=local,dest={},mode=max", cache.display());
    let out = h.out_path("first");
    let dest = format!("type=local,dest={}", out.display());
    let args = ["--build-context", &layout_arg, "--cache-to", &to, "-o", &dest];
    let log = build_with(&h.kiln, ctx.path(), &args);
    assert_eq!(h.kiln.runtime.runs() - runs_before, 2, "{log}");
    assert!(log.contains("transfer OCI layout base"), "{log}");
    assert_eq!(
        std::fs::read_to_string(out.join("copied.txt")).unwrap(),
        "from-layout\n"
    );
    // The export came back into the client's directory: a tagged index and its blobs.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let manifest = &index["manifests"][0];
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let digest = manifest["digest"].as_str().unwrap().replace("sha256:", "");
    let manifest_path = cache.join("blobs/sha256").join(&digest);
    assert_eq!(sha256_hex(&std::fs::read(&manifest_path).unwrap()), digest);

    // The same export again: the client's directory matches the daemon's copy, nothing travels.
    let again = build_with(&h.kiln, ctx.path(), &args);
    let sent: Vec<&str> = again
        .lines()
        .filter(|l| l.contains("transferring context:"))
        .collect();
    assert_eq!(sent.len(), 3, "{again}");
    assert!(sent.iter().all(|l| l.contains(": 0 files")), "{again}");

    // Another daemon with an empty state directory imports the cache: no step runs.
    let other = Kiln::new();
    let d2 = Daemon::start(&other, &[]);
    other.env.borrow_mut().push(("KILN_HOST".into(), d2.addr.clone()));
    let from = format!("type=local,src={}", cache.display());
    let second = h.out_path("second");
    let dest = format!("type=local,dest={}", second.display());
    let log = build_with(
        &other,
        ctx.path(),
        &["--build-context", &layout_arg, "--cache-from", &from, "-o", &dest],
    );
    assert_eq!(other.runtime.runs(), 0, "{log}");
    for file in ["copied.txt", "copy.txt", "hello.txt"] {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(second.join(file)).unwrap(),
            "{file}"
        );
    }
}

/// A proxy in front of the registry at `upstream` that answers 401 (Basic) to every connection
/// whose first request lacks `Authorization: Basic <expected>`; its port.
fn basic_auth_proxy(upstream: String, expected: String) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let (upstream, expected) = (upstream.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains(&format!("authorization: basic {}", expected.to_ascii_lowercase())) {
                    let _ = client.write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"kiln-test\"\r\n\
                          Content-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                }
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = server.write_all(&head);
                let (mut client_read, mut server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let forward = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut server_write);
                    let _ = server_write.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = forward.join();
            });
        }
    });
    port
}

#[test]
fn registry_credentials_are_asked_of_the_client() {
    let h = Harness::start();
    let user_pass = "kiln-user:kiln-pass-7c1e93";
    let encoded = "a2lsbi11c2VyOmtpbG4tcGFzcy03YzFlOTM=";
    let port = basic_auth_proxy(h.fixture.registry.host(), encoded.into());
    let d = Daemon::start(&h.kiln, &[]);
    use_daemon(&h, &d.addr);
    let ctx = h.context();
    let guarded = h
        .base()
        .replace(&h.fixture.registry.host(), &format!("127.0.0.1:{port}"));
    ctx.dockerfile(&format!("FROM {guarded}\nRUN echo pulled > /pulled\n"));

    // Without credentials on the client, the registry's refusal reaches the user.
    let err = h.build_err(&ctx, &[]);
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );

    // With them in the client's docker configuration, the daemon asks and pulls.
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"auths\": {{\"127.0.0.1:{port}\": {{\"auth\": \"{encoded}\"}}}}}}"),
    )
    .unwrap();
    h.kiln
        .env
        .borrow_mut()
        .push(("DOCKER_CONFIG".into(), config.path().display().to_string()));
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/pulled"), "pulled\n");
    // The password is nowhere in the daemon's state directory or log.
    let password = user_pass.split(':').nth(1).unwrap();
    assert_eq!(
        files_containing(h.kiln.root.path(), password.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(h.kiln.root.path(), encoded.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert!(!d.log().contains(password) && !d.log().contains(encoded));
}
