//! The sandbox (Docker's capabilities and seccomp profile) and insecure mode, checked from
//! inside real containers: `/proc/self/status`, system calls made with the host's perl (bind
//! mounted with the host's `/usr`, as Debian always has `perl-base`), and the host's devices.

use std::path::Path;

use executor::{ExecSpec, Mount, MountKind, SecurityMode};

use super::{Fixture, sh};

/// One line of `/proc/self/status`, e.g. `CapEff`, without the name.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_owned()
}

/// Makes the host's `/usr` (read-only) and its `lib` links available in the fixture's root
/// filesystem, so that host programs (perl) run in the container.
fn with_host_usr(fx: &Fixture, spec: ExecSpec) -> ExecSpec {
    let mut mounts = vec![Mount {
        destination: "/usr".into(),
        kind: MountKind::Bind {
            source: "/usr".into(),
            readonly: true,
        },
    }];
    for lib in ["lib", "lib64", "lib32"] {
        let host = Path::new("/").join(lib);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&host).unwrap();
                let link = fx.rootfs.join(lib);
                if link.symlink_metadata().is_err() {
                    std::os::unix::fs::symlink(target, link).unwrap();
                }
            }
            Ok(meta) if meta.is_dir() => mounts.push(Mount {
                destination: format!("/{lib}"),
                kind: MountKind::Bind {
                    source: host,
                    readonly: true,
                },
            }),
            _ => {}
        }
    }
    ExecSpec { mounts, ..spec }
}

/// System call numbers of the probe, per architecture.
#[cfg(target_arch = "x86_64")]
const NR: [(&str, u32); 9] = [
    ("unshare", 272),
    ("mount", 165),
    ("keyctl", 250),
    ("add_key", 248),
    ("kexec_load", 246),
    ("personality", 135),
    ("clone3", 435),
    ("socket", 41),
    ("io_uring_setup", 425),
];
#[cfg(target_arch = "aarch64")]
const NR: [(&str, u32); 9] = [
    ("unshare", 97),
    ("mount", 40),
    ("keyctl", 219),
    ("add_key", 217),
    ("kexec_load", 104),
    ("personality", 92),
    ("clone3", 435),
    ("socket", 198),
    ("io_uring_setup", 425),
];

/// A perl script that makes each probed call and prints `name=0` on success or `name=ERRNO`.
fn probe_script() -> String {
    let nr = |name: &str| NR.iter().find(|(n, _)| *n == name).unwrap().1;
    let calls = [
        ("mount", format!("{}, $none, $dir, $tmpfs, 0, 0", nr("mount"))),
        // The session keyring's id: any process may ask, unless seccomp refuses.
        ("keyctl", format!("{}, 0, -3, 0", nr("keyctl"))),
        (
            "add_key",
            format!("{}, $user, $key, $value, 1, -2", nr("add_key")),
        ),
        ("kexec_load", format!("{}, 0, 0, 0, 0", nr("kexec_load"))),
        ("personality_query", format!("{}, 0xffffffff", nr("personality"))),
        ("personality_linux32", format!("{}, 0x0008", nr("personality"))),
        ("personality_linux", format!("{}, 0x0000", nr("personality"))),
        // ADDR_NO_RANDOMIZE: not one of the values Docker allows.
        ("personality_no_aslr", format!("{}, 0x0040000", nr("personality"))),
        ("clone3", format!("{}, 0, 0", nr("clone3"))),
        ("socket_vsock", format!("{}, 40, 1, 0", nr("socket"))),
        ("socket_inet", format!("{}, 2, 1, 0", nr("socket"))),
        // AF_ALG, SOCK_SEQPACKET: the kernel's crypto sockets, which Docker's profile refuses.
        ("socket_alg", format!("{}, 38, 5, 0", nr("socket"))),
        // Docker's profile no longer allows io_uring; a null `params` pointer makes the call
        // fail with EFAULT where it gets past the filter.
        ("io_uring_setup", format!("{}, 1, 0", nr("io_uring_setup"))),
        // Last, as it takes the process out of its user namespace (and so its capabilities
        // for mount). A user namespace needs no capability: only seccomp can refuse it.
        ("unshare_user", format!("{}, 0x10000000", nr("unshare"))),
    ];
    // perl passes strings to syscall as pointers to their buffers, which must be variables.
    let mut script = String::from(
        "my ($none, $dir, $tmpfs, $user, $key, $value) = (\"none\", \"/etc\", \"tmpfs\", \"user\", \"kiln-probe\", \"v\");\n",
    );
    for (name, args) in calls {
        script.push_str(&format!(
            "{{ my $r = syscall({args}); print \"{name}=\", ($r == -1 ? $!+0 : 0), \"\\n\"; }}\n"
        ));
    }
    script
}

/// Runs the probe in a container with `security` and returns `name -> errno` (0: success).
async fn probe(fx: &Fixture, security: SecurityMode) -> std::collections::BTreeMap<String, i32> {
    let spec = ExecSpec {
        args: vec!["/usr/bin/perl".into(), "-e".into(), probe_script()],
        security,
        ..ExecSpec::default()
    };
    let stdout = fx.stdout(with_host_usr(fx, spec)).await;
    stdout
        .lines()
        .map(|l| {
            let (name, errno) = l.split_once('=').unwrap();
            (name.to_owned(), errno.parse().unwrap())
        })
        .collect()
}

const EPERM: i32 = 1;
const ENOSYS: i32 = 38;
const EFAULT: i32 = 14;

#[tokio::test]
async fn sandbox_has_docker_capabilities_and_seccomp_profile() {
    let fx = Fixture::new();
    let status = fx.stdout(sh("cat /proc/self/status")).await;
    assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    // 2: a seccomp filter is in force.
    assert_eq!(status_field(&status, "Seccomp"), "2");

    // A user without capabilities has none left after exec.
    let app = fx
        .stdout(ExecSpec {
            user: "app".into(),
            ..sh("grep -E '^CapEff' /proc/self/status")
        })
        .await;
    assert_eq!(status_field(&app, "CapEff"), "0000000000000000");

    // busybox's own tools: unshare is refused, linux32 and linux64 (allowed personalities)
    // work, and chroot (CAP_SYS_CHROOT) works.
    let out = fx
        .stdout(sh(
            "unshare -U true 2>&1 || echo UNSHARE-REFUSED; linux32 uname -m; linux64 true && echo LINUX64; chroot / true && echo CHROOT",
        ))
        .await;
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("UNSHARE-REFUSED\n"), "{out}");
    assert!(out.contains("i686\n") || out.contains("armv"), "{out}");
    assert!(out.contains("LINUX64\nCHROOT\n"), "{out}");
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[tokio::test]
async fn sandbox_seccomp_refuses_dangerous_calls_and_allows_the_rest() {
    let fx = Fixture::new();
    let got = probe(&fx, SecurityMode::Sandbox).await;
    let expected: std::collections::BTreeMap<String, i32> = [
        ("unshare_user", EPERM),
        ("mount", EPERM),
        ("keyctl", EPERM),
        ("add_key", EPERM),
        ("kexec_load", EPERM),
        ("personality_query", 0),
        ("personality_linux32", 0),
        ("personality_linux", 0),
        ("personality_no_aslr", EPERM),
        ("clone3", ENOSYS),
        ("socket_vsock", EPERM),
        ("socket_inet", 0),
        ("socket_alg", EPERM),
        ("io_uring_setup", EPERM),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e))
    .collect();
    assert_eq!(got, expected);

    // The same calls without the filter: what seccomp refused above now gets past it (it may
    // still fail for other reasons, but not all with EPERM/ENOSYS as above).
    let got = probe(&fx, SecurityMode::Insecure).await;
    for name in [
        "unshare_user",
        "keyctl",
        "add_key",
        "personality_no_aslr",
        "mount",
    ] {
        assert_eq!(got[name], 0, "{name} failed in insecure mode: {got:?}");
    }
    assert_ne!(got["clone3"], ENOSYS, "{got:?}");
    assert_eq!(got["io_uring_setup"], EFAULT, "{got:?}");
}

/// A character or block device of the host that the runtime does not create itself, with
/// its `major:minor` in hex as busybox `stat -c %t:%T` prints them.
fn host_device() -> (String, String) {
    let mut candidates = vec![
        "/dev/loop-control".to_owned(),
        "/dev/kmsg".to_owned(),
        "/dev/fuse".to_owned(),
    ];
    for entry in std::fs::read_dir("/dev").unwrap().flatten() {
        candidates.push(entry.path().to_string_lossy().into_owned());
    }
    candidates
        .into_iter()
        .filter(|p| !executor::RUNTIME_DEVICES.contains(&p.as_str()))
        .find_map(|path| {
            use std::os::unix::fs::FileTypeExt;
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let kind = meta.file_type();
            if !kind.is_char_device() && !kind.is_block_device() {
                return None;
            }
            let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
            let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            Some((path, format!("{major:x}:{minor:x}")))
        })
        .expect("the host has no device node besides the runtime's own")
}

#[tokio::test]
async fn insecure_is_privileged() {
    let fx = Fixture::new();
    let (device, numbers) = host_device();
    let script = format!(
        "cat /proc/self/status; echo ---; stat -c '%t:%T' {device}; grep -E ' /sys (sysfs|tmpfs) ' /proc/mounts; \
         [ -c /proc/interrupts ] && echo MASKED || echo VISIBLE"
    );
    let out = fx
        .stdout(ExecSpec {
            security: SecurityMode::Insecure,
            ..sh(&script)
        })
        .await;
    let (status, rest) = out.split_once("---\n").unwrap();
    // Every capability kiln has (here: what this test process has), and no filter.
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status_field(status, "CapEff"), status_field(&ours, "CapEff"));
    assert_eq!(status_field(status, "Seccomp"), "0");
    let mut lines = rest.lines();
    assert_eq!(lines.next(), Some(numbers.as_str()), "{device}: {rest}");
    assert!(lines.next().unwrap().contains(" rw,"), "{rest}");
    assert_eq!(lines.next(), Some("VISIBLE"), "{rest}");

    // A non-root user keeps the capabilities too (they are ambient), as in BuildKit.
    let app = fx
        .stdout(ExecSpec {
            user: "app".into(),
            security: SecurityMode::Insecure,
            ..sh("grep -E '^CapEff' /proc/self/status")
        })
        .await;
    assert_eq!(status_field(&app, "CapEff"), status_field(&ours, "CapEff"));

    // The sandbox, for contrast: the device is not there and /proc/interrupts is masked.
    let out = fx
        .stdout(sh(&format!(
            "[ -e {device} ] && echo DEVICE || echo NO-DEVICE; [ -c /proc/interrupts ] && echo MASKED; grep -E ' /sys sysfs ' /proc/mounts"
        )))
        .await;
    assert!(
        out.starts_with("NO-DEVICE\nMASKED\nsysfs /sys sysfs ro,"),
        "{out}"
    );
}
