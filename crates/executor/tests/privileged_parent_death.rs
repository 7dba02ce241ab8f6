//! A container dies with the process that runs it. This binary runs itself as the "victim": a
//! multithreaded process (as kiln is) that starts `sleep` in a container with a
//! `RuncExecutor`; the test `SIGKILL`s it once the container runs and checks that nothing of
//! the container is left: no process in its cgroup, no runc, no watchdog, and no runc state or
//! cgroup either. It also checks that a run that ends normally leaves no watchdog behind, not
//! even as a zombie.
//!
//! No test harness: the victim must be this binary without libtest's threads and arguments.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use executor::{ExecSpec, Executor, OutputSink, RuncConfig, RuncExecutor, Stream};

/// Set in the victim's environment: `<mode>:<directory>`.
const VICTIM: &str = "KILN_TEST_VICTIM";

/// How long the container and everything around it may take to go once the victim is dead.
const DEADLINE: Duration = Duration::from_secs(3);

fn main() {
    // Test runners (cargo nextest) list tests first, in libtest's terse format.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("container_dies_with_its_parent: test");
        }
        return;
    }
    if let Ok(victim) = std::env::var(VICTIM) {
        let (mode, dir) = victim.split_once(':').expect("mode:dir");
        run_victim(mode, Path::new(dir));
        return;
    }
    testkit::require_privileged();
    let dir = tempfile::tempdir().unwrap();
    make_rootfs(&dir.path().join("rootfs"));
    killed_victim_leaves_nothing(dir.path());
    finished_run_leaves_no_watchdog(dir.path());
    println!("privileged_parent_death: 2 passed, 0 failed");
}

/// A busybox root filesystem with the few applets the victim runs.
fn make_rootfs(rootfs: &Path) {
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::set_permissions(rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
}

/// Writes the container's output to stdout as it comes.
struct Forward;

impl OutputSink for Forward {
    fn write(&self, _: Stream, data: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(data).unwrap();
        stdout.flush().unwrap();
    }
}

/// The victim: `sleep` runs `sleep 1017` (until it is killed); `true` runs `true` and exits.
fn run_victim(mode: &str, dir: &Path) {
    let script = match mode {
        "sleep" => "echo started; exec sleep 1017",
        _ => "true",
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let executor = RuncExecutor::new(RuncConfig::new(dir.join("state"))).unwrap();
    let spec = ExecSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    };
    let status = runtime
        .block_on(executor.run(&dir.join("rootfs"), &spec, &Forward))
        .unwrap();
    assert!(status.success(), "{status:?}");
    println!("done");
}

/// A process as `/proc` shows it.
#[derive(Debug)]
struct Process {
    pid: u32,
    ppid: u32,
    name: String,
    cmdline: String,
    cgroup: String,
    environ: String,
}

fn processes() -> Vec<Process> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let read = |name: &str| {
            let bytes = std::fs::read(entry.path().join(name)).unwrap_or_default();
            String::from_utf8_lossy(&bytes).replace('\0', " ")
        };
        let status = read("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        all.push(Process {
            pid,
            ppid: field("PPid:").parse().unwrap_or(0),
            name: field("Name:"),
            cmdline: read("cmdline"),
            cgroup: read("cgroup"),
            environ: read("environ"),
        });
    }
    all
}

/// What is left of the victim `victim` (its container, runc and watchdog), found by the
/// container id's prefix (`kiln-<pid>-`) and by the victim's environment, which runc and the
/// watchdog inherited.
fn leftovers(victim: u32, marker: &str) -> Vec<Process> {
    let prefix = format!("kiln-{victim}-");
    processes()
        .into_iter()
        .filter(|p| p.cgroup.contains(&prefix) || p.cmdline.contains(&prefix) || p.environ.contains(marker))
        .collect()
}

/// A victim process, killed if the test fails before it is done with it.
struct Victim(Child);

impl Victim {
    fn start(mode: &str, dir: &Path) -> Victim {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(VICTIM, format!("{mode}:{}", dir.display()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Victim(child)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn killed_victim_leaves_nothing(dir: &Path) {
    let marker = format!("{VICTIM}=sleep:{}", dir.display());
    let mut victim = Victim::start("sleep", dir);
    let pid = victim.0.id();
    let mut line = String::new();
    BufReader::new(victim.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n", "the victim's container did not start");

    // Before: the container's sleep, runc and the watchdog are there.
    let before = leftovers(pid, &marker);
    let names: Vec<&str> = before.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"sleep"), "{before:#?}");
    assert!(names.contains(&"runc"), "{before:#?}");
    assert!(names.contains(&"kiln-watchdog"), "{before:#?}");

    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    let killed = Instant::now();
    loop {
        let left = leftovers(pid, &marker);
        // Dead processes not yet reaped by whoever adopted them are gone in every way that
        // matters here; what counts is what still runs.
        let running: Vec<&Process> = left
            .iter()
            .filter(|p| {
                !std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).is_ok_and(|s| s.contains(") Z "))
            })
            .collect();
        if running.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < DEADLINE,
            "still running {DEADLINE:?} after the victim was killed: {running:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "the container was gone {:?} after its parent was killed",
        killed.elapsed()
    );

    // runc saw its container end and removed it, as after any run: no state, no cgroup. Only
    // the bundle is left, for the next start.
    let executor = RuncExecutor::new(RuncConfig::new(dir.join("state"))).unwrap();
    assert_eq!(executor.recover().unwrap(), Vec::<String>::new());
    let mut cgroups = Vec::new();
    find_dirs(
        Path::new("/sys/fs/cgroup"),
        &format!("kiln-{pid}-"),
        8,
        &mut cgroups,
    );
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

/// The directories below `dir` (at most `depth` levels down) whose names start with `prefix`.
fn find_dirs(dir: &Path, prefix: &str, depth: usize, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(entry.path());
        } else if depth > 0 {
            find_dirs(&entry.path(), prefix, depth - 1, found);
        }
    }
}

fn finished_run_leaves_no_watchdog(dir: &Path) {
    let marker = format!("{VICTIM}=true:{}", dir.display());
    let mut victim = Victim::start("true", dir);
    let pid = victim.0.id();
    let mut line = String::new();
    let mut stdout = BufReader::new(victim.0.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "done\n", "the victim's run failed");
    // The run is over and the victim still alive: its watchdog must be reaped already, not
    // left to the victim's exit.
    let children: Vec<Process> = processes().into_iter().filter(|p| p.ppid == pid).collect();
    assert!(
        !children.iter().any(|p| p.name == "kiln-watchdog"),
        "a finished run left its watchdog: {children:#?}"
    );
    assert!(victim.0.wait().unwrap().success());
    assert!(
        leftovers(pid, &marker).is_empty(),
        "{:#?}",
        leftovers(pid, &marker)
    );
}
