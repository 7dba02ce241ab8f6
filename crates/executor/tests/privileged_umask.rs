//! The container's umask is 0022 whatever kiln's own is: runc sets it from the spec's
//! `process.user.umask`. In a process of its own (no test harness), because the umask is
//! process-wide and would change the files other tests create.

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;

use executor::{ExecSpec, Executor, OutputSink, RuncConfig, RuncExecutor, Stream};
use rustix::fs::Mode;

#[derive(Default)]
struct Capture(Mutex<Vec<u8>>);

impl OutputSink for Capture {
    fn write(&self, _: Stream, data: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(data);
    }
}

fn main() {
    // Test runners (cargo nextest) list tests first, in libtest's terse format.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("umask_is_0022: test");
        }
        return;
    }
    testkit::require_privileged();
    rustix::process::umask(Mode::from_raw_mode(0o077));

    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(rootfs.join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::fs::set_permissions(rootfs.join("bin/busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for applet in ["sh", "umask", "touch", "mkdir", "stat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let executor = RuncExecutor::new(RuncConfig::new(dir.path().join("state"))).unwrap();
    let spec = ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "umask; touch /f; mkdir /d; stat -c %a /f /d".into(),
        ],
        ..ExecSpec::default()
    };
    let sink = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(executor.run(&rootfs, &spec, &sink)).unwrap();
    let output = String::from_utf8(sink.0.into_inner().unwrap()).unwrap();
    assert!(status.success(), "{status:?}: {output}");
    assert_eq!(output, "0022\n644\n755\n");
    println!("umask: 1 passed, 0 failed");
}
