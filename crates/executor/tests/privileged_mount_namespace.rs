//! `enter_private_mount_namespace` in a process of its own (no test harness, so there is only
//! one thread): a mount made afterwards is visible to this process and not to its parent.

use std::path::Path;

fn mounted(mountinfo: &str, target: &Path) -> bool {
    let target = target.to_str().unwrap();
    mountinfo.lines().any(|l| l.split(' ').nth(4) == Some(target))
}

fn main() {
    // Test runners (cargo nextest) list tests first, in libtest's terse format.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("private_mount_namespace: test");
        }
        return;
    }
    testkit::require_privileged();
    executor::enter_private_mount_namespace().unwrap();

    let dir = tempfile::tempdir().unwrap();
    rustix::mount::mount(
        "kiln-test",
        dir.path(),
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    )
    .unwrap();
    // Unmounted on every exit path below, although the namespace dies with the process anyway.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _unmount = Unmount(dir.path());

    let ours = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounted(&ours, dir.path()),
        "the tmpfs is not mounted in our namespace"
    );
    let parent = rustix::process::getppid().unwrap().as_raw_pid();
    let theirs = std::fs::read_to_string(format!("/proc/{parent}/mountinfo")).unwrap();
    assert!(
        !mounted(&theirs, dir.path()),
        "the tmpfs leaked into the parent's namespace"
    );

    // With a second thread running, the call must refuse.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv());
    let err = executor::enter_private_mount_namespace().unwrap_err();
    assert!(
        matches!(err, executor::Error::MountNamespaceThreads { threads: 2 }),
        "{err}"
    );
    drop(tx);
    thread.join().unwrap().unwrap_err();

    println!("mount_namespace: 2 passed, 0 failed");
}
