//! Integration tests of `RuncExecutor` with the real `runc` on a busybox root filesystem.
//! They need root and runc (as CI has); each test has its own state directory and checks
//! that no container or bundle is left behind.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod security;
mod stop;

use executor::{
    DEFAULT_PATH, Error, ExecSpec, Executor, ExitStatus, Mount, MountKind, NetworkMode, OutputSink,
    RuncConfig, RuncExecutor, Stream,
};
use fsops::user::UserError;

/// A busybox root filesystem and an executor with its own state directory, both removed on drop.
struct Fixture {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    executor: RuncExecutor,
}

impl Fixture {
    fn new() -> Fixture {
        testkit::require_privileged();
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        // The container's `/` must be searchable by non-root users; tempdirs are 0700.
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8(list.stdout)
            .unwrap()
            .lines()
            .filter(|a| *a != "busybox")
        {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        let executor = RuncExecutor::new(RuncConfig::new(dir.path().join("state"))).unwrap();
        Fixture {
            dir,
            rootfs,
            executor,
        }
    }

    async fn run(&self, spec: &ExecSpec) -> (Result<ExitStatus, Error>, String, String) {
        let sink = Capture::default();
        let result = self.executor.run(&self.rootfs, spec, &sink).await;
        let (stdout, stderr) = sink.take();
        (
            result,
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Runs a shell script that must succeed and returns its stdout.
    async fn stdout(&self, spec: ExecSpec) -> String {
        let (result, stdout, stderr) = self.run(&spec).await;
        assert_eq!(
            result.unwrap(),
            ExitStatus {
                code: 0,
                signal: None
            },
            "stdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// runc's container list and the bundles left in the state directory.
    fn leftovers(&self) -> (String, Vec<PathBuf>) {
        let list = std::process::Command::new("runc")
            .arg("--root")
            .arg(self.state().join("runc"))
            .args(["list", "-q"])
            .output()
            .unwrap();
        let bundles = std::fs::read_dir(self.state().join("bundles"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        (String::from_utf8(list.stdout).unwrap(), bundles)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_eq!(
                self.leftovers(),
                (String::new(), vec![]),
                "a run left state behind"
            );
        }
    }
}

#[derive(Default)]
struct Capture {
    stdout: Mutex<Vec<u8>>,
    stderr: Mutex<Vec<u8>>,
}

impl Capture {
    fn take(self) -> (Vec<u8>, Vec<u8>) {
        (
            self.stdout.into_inner().unwrap(),
            self.stderr.into_inner().unwrap(),
        )
    }
}

impl OutputSink for Capture {
    fn write(&self, stream: Stream, data: &[u8]) {
        let buffer = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        buffer.lock().unwrap().extend_from_slice(data);
    }
}

fn sh(script: &str) -> ExecSpec {
    ExecSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    }
}

fn interfaces(proc_net_dev: &str) -> BTreeSet<String> {
    proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
        .collect()
}

#[tokio::test]
async fn output_streams_and_exit_code_are_reported() {
    let fx = Fixture::new();
    let (result, stdout, stderr) = fx.run(&sh("echo out; echo err >&2; exit 3")).await;
    assert_eq!(
        result.unwrap(),
        ExitStatus {
            code: 3,
            signal: None
        }
    );
    assert_eq!((stdout.as_str(), stderr.as_str()), ("out\n", "err\n"));
}

#[tokio::test]
async fn env_cwd_and_defaults_are_applied() {
    let fx = Fixture::new();
    let spec = ExecSpec {
        env: vec!["FOO=bar baz".into()],
        cwd: "/work/dir".into(),
        ..sh("echo \"$FOO\"; pwd; echo \"$PATH\"; echo \"$HOME\"; umask; ulimit -n")
    };
    let stdout = fx.stdout(spec).await;
    // Docker's open files limit, or kiln's own hard limit when that is lower.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap();
    let nofile = hard.parse::<u64>().map_or(1 << 20, |h| h.min(1 << 20));
    assert_eq!(
        stdout,
        format!("bar baz\n/work/dir\n{DEFAULT_PATH}\n/root\n0022\n{nofile}\n")
    );
    assert!(fx.rootfs.join("work/dir").is_dir());
}

#[tokio::test]
async fn named_user_gets_ids_groups_home_and_owns_new_cwd() {
    let fx = Fixture::new();
    let spec = ExecSpec {
        user: "app".into(),
        cwd: "/home/app/src".into(),
        ..sh("id -u; id -g; id -G; echo $HOME")
    };
    assert_eq!(fx.stdout(spec).await, "1000\n1000\n1000 2000\n/home/app\n");
    let meta = std::fs::metadata(fx.rootfs.join("home/app/src")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1000, 1000, 0o755)
    );
}

#[tokio::test]
async fn numeric_user_needs_no_entries() {
    let fx = Fixture::new();
    let spec = ExecSpec {
        user: "1234:5678".into(),
        ..sh("id -u; id -g; echo $HOME")
    };
    assert_eq!(fx.stdout(spec).await, "1234\n5678\n/\n");
}

#[tokio::test]
async fn unknown_user_is_an_error() {
    let fx = Fixture::new();
    let (result, _, _) = fx
        .run(&ExecSpec {
            user: "nobody".into(),
            ..sh("true")
        })
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::User(UserError::UnknownUser { .. })));
    assert_eq!(
        err.to_string(),
        "unable to find user nobody: no matching entries in passwd file"
    );
}

#[tokio::test]
async fn passwd_symlink_to_the_host_is_not_followed() {
    let fx = Fixture::new();
    let host_file = fx.dir.path().join("host-passwd");
    std::fs::write(&host_file, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    std::fs::remove_file(fx.rootfs.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(&host_file, fx.rootfs.join("etc/passwd")).unwrap();
    let (result, _, _) = fx
        .run(&ExecSpec {
            user: "evil".into(),
            ..sh("true")
        })
        .await;
    assert!(
        matches!(result, Err(Error::User(UserError::UnknownUser { .. }))),
        "{result:?}"
    );
    assert_eq!(fx.stdout(sh("id -u")).await, "0\n");
}

#[tokio::test]
async fn network_none_has_only_loopback_and_host_sees_the_host() {
    let fx = Fixture::new();
    let script =
        "cat /proc/net/dev; echo ---; ip -o link show lo; ping -c1 -W2 127.0.0.1 >/dev/null && echo PING-OK";
    let stdout = fx.stdout(sh(script)).await;
    let (dev, rest) = stdout.split_once("---\n").unwrap();
    assert_eq!(interfaces(dev), BTreeSet::from(["lo".to_owned()]), "{stdout}");
    assert!(rest.contains(",UP"), "{stdout}");
    assert!(rest.contains("PING-OK"), "{stdout}");

    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").unwrap());
    let stdout = fx
        .stdout(ExecSpec {
            network: NetworkMode::Host,
            ..sh("cat /proc/net/dev")
        })
        .await;
    assert_eq!(interfaces(&stdout), host);
}

#[tokio::test]
async fn hostname_and_generated_files() {
    let fx = Fixture::new();
    let spec = ExecSpec {
        hostname: "builder".into(),
        ..sh("hostname; cat /etc/hostname /etc/hosts")
    };
    let stdout = fx.stdout(spec).await;
    assert!(
        stdout.starts_with("builder\nbuilder\n127.0.0.1\tlocalhost builder\n"),
        "{stdout}"
    );
    assert_eq!(fx.stdout(sh("hostname")).await, "buildkitsandbox\n");
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(fx.stdout(sh("cat /etc/resolv.conf")).await, resolv);
}

#[tokio::test]
async fn writes_persist_and_mount_stubs_do_not() {
    let fx = Fixture::new();
    fx.stdout(sh("echo data > /created; mkdir -p /var/lib/x")).await;
    assert_eq!(
        std::fs::read_to_string(fx.rootfs.join("created")).unwrap(),
        "data\n"
    );
    assert!(fx.rootfs.join("var/lib/x").is_dir());
    for stub in [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    ] {
        assert!(
            !fx.rootfs.join(stub).exists(),
            "stub {stub} was left in the rootfs"
        );
    }

    let (result, _, stderr) = fx
        .run(&ExecSpec {
            readonly_rootfs: true,
            ..sh("touch /nope")
        })
        .await;
    assert_ne!(result.unwrap().code, 0);
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

#[tokio::test]
async fn extra_bind_and_tmpfs_mounts() {
    let fx = Fixture::new();
    let source = fx.dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), "hello\n").unwrap();
    let spec = ExecSpec {
        mounts: vec![
            Mount {
                destination: "/src".into(),
                kind: MountKind::Bind {
                    source,
                    readonly: true,
                },
            },
            Mount {
                destination: "/scratch".into(),
                kind: MountKind::Tmpfs { size: Some(1 << 20) },
            },
        ],
        ..sh(
            "cat /src/file; touch /src/x 2>/dev/null || echo RO; echo t > /scratch/t; grep ' /scratch ' /proc/mounts",
        )
    };
    let stdout = fx.stdout(spec).await;
    assert!(
        stdout.starts_with("hello\nRO\ntmpfs /scratch tmpfs rw,nosuid"),
        "{stdout}"
    );
    assert!(!fx.rootfs.join("src").exists() && !fx.rootfs.join("scratch").exists());
}

#[tokio::test]
async fn missing_executable_is_a_runtime_error() {
    let fx = Fixture::new();
    let spec = ExecSpec {
        args: vec!["no-such-program".into()],
        ..ExecSpec::default()
    };
    let (result, _, _) = fx.run(&spec).await;
    let message = match result {
        Err(Error::Runtime { message, .. }) => message,
        other => panic!("expected a runtime error, got {other:?}"),
    };
    assert!(
        message.contains(r#"exec: "no-such-program": executable file not found in $PATH"#),
        "{message}"
    );
}

#[tokio::test]
async fn dropping_the_run_kills_the_container_and_cleans_up() {
    let fx = Fixture::new();
    let spec = sh("echo started; exec sleep 3017");
    let sink = Capture::default();
    let run = fx.executor.run(&fx.rootfs, &spec, &sink);
    let start = Instant::now();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), run)
            .await
            .is_err()
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(sink.take().0, b"started\n");
    // Checked again by the fixture's drop, which runs `runc list` on the state directory.
    assert_eq!(fx.leftovers(), (String::new(), vec![]));
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 3017$"])
        .output()
        .unwrap();
    assert!(
        sleepers.stdout.is_empty(),
        "sleep 3017 still runs: {:?}",
        String::from_utf8_lossy(&sleepers.stdout)
    );
}

#[tokio::test]
async fn large_binary_output_on_both_streams_is_delivered() {
    let fx = Fixture::new();
    let sink = Capture::default();
    let spec = sh("head -c 3000000 /dev/urandom & head -c 2000000 /dev/zero >&2; wait");
    let status = fx.executor.run(&fx.rootfs, &spec, &sink).await.unwrap();
    assert!(status.success());
    let (stdout, stderr) = sink.take();
    assert_eq!((stdout.len(), stderr.len()), (3_000_000, 2_000_000));
    assert!(stderr.iter().all(|&b| b == 0));
}

#[tokio::test]
async fn runs_overlap() {
    let fx = Fixture::new();
    let spec = sh("sleep 1");
    let start = Instant::now();
    let (a, b) = tokio::join!(fx.run(&spec), fx.run(&spec));
    assert!(a.0.unwrap().success() && b.0.unwrap().success());
    assert!(
        start.elapsed() < Duration::from_millis(1800),
        "took {:?}",
        start.elapsed()
    );
}
