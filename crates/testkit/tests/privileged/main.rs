//! The privileged tier of testkit's own tests: what the privilege probe promises holds, and
//! temporary state directories clean up the mounts left in them.

use std::path::Path;
use std::process::Command;

use testkit::TempRoot;

/// Mounts with `mount(8)` (the test process's own mount namespace), failing the test if it fails.
fn mount(args: &[&str], target: &Path) {
    let output = Command::new("mount").args(args).arg(target).output().unwrap();
    assert!(
        output.status.success(),
        "mount {args:?} {} failed: {}",
        target.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// When the probe passes, what it checked works: an overlay mount shows its layers merged,
/// runc runs and busybox runs.
#[test]
fn what_the_probe_promises_works() {
    testkit::require_privileged();
    let root = TempRoot::new().unwrap();
    let dir = root.path();
    for sub in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("lower/from-lower"), "l").unwrap();
    std::fs::write(dir.join("upper/from-upper"), "u").unwrap();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.join("lower").display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    mount(&["-t", "overlay", "overlay", "-o", &options], &dir.join("merged"));
    assert!(dir.join("merged/from-lower").is_file());
    assert!(dir.join("merged/from-upper").is_file());

    let runc = Command::new(testkit::runc().unwrap())
        .arg("--version")
        .output()
        .unwrap();
    assert!(runc.status.success(), "{runc:?}");
    let busybox = Command::new(testkit::BUSYBOX)
        .args(["echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(busybox.stdout, b"hi\n");
    // Dropping the root unmounts the overlay before removing the directory.
}

#[test]
fn temp_root_unmounts_nested_mounts_before_removal() {
    testkit::require_privileged();
    let root = TempRoot::new().unwrap();
    let path = root.path().to_path_buf();
    let outer = path.join("a");
    std::fs::create_dir(&outer).unwrap();
    mount(&["-t", "tmpfs", "tmpfs"], &outer);
    std::fs::create_dir(outer.join("b")).unwrap();
    mount(&["-t", "tmpfs", "tmpfs"], &outer.join("b"));
    std::fs::write(outer.join("b/file"), "x").unwrap();

    drop(root);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(path.to_str().unwrap()),
        "mounts left below {}",
        path.display()
    );
    assert!(!path.exists(), "{} not removed", path.display());
}
