//! The OCI runtime spec (`config.json`) for one run, modelled on Docker's default spec for a
//! container and on what BuildKit changes for a build step.
//!
//! A sandboxed step (the default) gets Docker's default capability set, Docker's default
//! seccomp profile ([`crate::seccomp`]), Docker's masked and read-only paths, read-only
//! `/sys` and `/sys/fs/cgroup`, and a device allow-list. An insecure step
//! (`RUN --security=insecure`) is a privileged container as BuildKit makes it: every
//! capability kiln has (in all five sets, so that a non-root `USER` keeps them across exec, as
//! BuildKit's ambient set does), no seccomp filter, nothing masked or read-only, writable
//! `/sys` and `/sys/fs/cgroup`, all devices allowed and the host's device nodes in `/dev`
//! ([`crate::host`]).
//!
//! Differences from `docker run` that are deliberate: `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname` are bind-mounted read-only (as BuildKit does) and the hostname defaults to
//! BuildKit's `buildkitsandbox`. The host's `resolv.conf` is used as it is, also for a
//! loopback-only network, where BuildKit would drop localhost name servers: without any
//! network, no name server is reachable either way.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::host::HostPrivileges;
use crate::user::User;
use crate::{DEFAULT_HOSTNAME, DEFAULT_PATH, ExecSpec, MountKind, NetworkMode, SecurityMode};

/// Docker's default capability set, given as bounding, effective and permitted set. The
/// inheritable and ambient sets stay empty (Docker dropped inheritable for CVE-2022-24769), so
/// a non-root process loses them at exec unless a binary has file capabilities.
pub(crate) const CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's masked paths: these are hidden from the container (bind-mounted over with
/// `/dev/null` or an empty read-only tmpfs by the runtime).
const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices the container may use, `(major, minor)`: null, zero, full, random,
/// urandom, tty, console, ptmx. runc creates the first six nodes in `/dev` itself and
/// `/dev/pts/*` comes from the devpts mount, which the `136:*` rule below allows.
const ALLOWED_DEVICES: [(i64, i64); 8] = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)];

/// The `RLIMIT_NOFILE` soft and hard limit a Docker daemon started by systemd passes on.
const NOFILE_LIMIT: u64 = 1 << 20;

/// The open files limit for the container: Docker's, or kiln's own hard limit when that is
/// lower, because raising a hard limit needs `CAP_SYS_RESOURCE`, which kiln may lack.
pub(crate) fn nofile_limit() -> u64 {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    hard.map_or(NOFILE_LIMIT, |hard| hard.min(NOFILE_LIMIT))
}

/// The process's resource limits: Docker's open-files limit, then the spec's `ulimits`, each
/// replacing an earlier limit of the same resource. Unlimited is `RLIM_INFINITY`.
fn rlimits(spec: &ExecSpec) -> Vec<Value> {
    let mut limits: Vec<(String, u64, u64)> = vec![("RLIMIT_NOFILE".into(), nofile_limit(), nofile_limit())];
    for limit in &spec.ulimits {
        let kind = format!("RLIMIT_{}", limit.name.to_ascii_uppercase());
        let entry = (
            kind.clone(),
            limit.soft.unwrap_or(u64::MAX),
            limit.hard.unwrap_or(u64::MAX),
        );
        match limits.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(existing) => *existing = entry,
            None => limits.push(entry),
        }
    }
    limits
        .into_iter()
        .map(|(kind, soft, hard)| json!({"type": kind, "soft": soft, "hard": hard}))
        .collect()
}

/// One entry of the spec's `mounts`.
#[derive(Debug, Serialize)]
pub(crate) struct MountEntry {
    pub destination: String,
    #[serde(rename = "type")]
    kind: &'static str,
    source: String,
    options: Vec<String>,
}

impl MountEntry {
    fn new(destination: &str, kind: &'static str, source: &str, options: &[&str]) -> MountEntry {
        MountEntry {
            destination: destination.to_owned(),
            kind,
            source: source.to_owned(),
            options: options.iter().map(|&o| o.to_owned()).collect(),
        }
    }
}

/// The hostname the container gets.
pub(crate) fn hostname(spec: &ExecSpec) -> &str {
    if spec.hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        &spec.hostname
    }
}

/// The generated `/etc/hosts`, like BuildKit's: localhost and the hostname, then the extra
/// entries in order.
pub(crate) fn hosts_file(hostname: &str, extra: &[(String, std::net::IpAddr)]) -> String {
    let mut hosts = format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        hosts.push_str(&format!("{ip}\t{host}\n"));
    }
    hosts
}

/// The process environment: the spec's entries in order, plus `PATH` when missing.
fn env(spec: &ExecSpec) -> Vec<String> {
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// All mounts in order: Docker's defaults, the generated files from `bundle`, then the
/// spec's own; a spec mount replaces a default one with the same destination.
pub(crate) fn mounts(spec: &ExecSpec, bundle: &Path) -> Vec<MountEntry> {
    let file = |name: &str| bundle.join(name).to_string_lossy().into_owned();
    // Privileged containers may write to sysfs and cgroupfs (Docker's `--privileged`,
    // containerd's `WithWriteableSysfs` and `WithWriteableCgroupfs`).
    let sys_access = match spec.security {
        SecurityMode::Sandbox => "ro",
        SecurityMode::Insecure => "rw",
    };
    let defaults = [
        MountEntry::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        MountEntry::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        MountEntry::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_access],
        ),
        MountEntry::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_access, "nosuid", "noexec", "nodev"],
        ),
        MountEntry::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        MountEntry::new("/etc/resolv.conf", "bind", &file("resolv.conf"), &["rbind", "ro"]),
        MountEntry::new("/etc/hosts", "bind", &file("hosts"), &["rbind", "ro"]),
        MountEntry::new("/etc/hostname", "bind", &file("hostname"), &["rbind", "ro"]),
    ];
    let replaced = |dest: &str| spec.mounts.iter().any(|m| m.destination == dest);
    let mut all: Vec<MountEntry> = defaults
        .into_iter()
        .filter(|m| !replaced(&m.destination))
        .collect();
    for mount in &spec.mounts {
        all.push(match &mount.kind {
            MountKind::Bind { source, readonly } => MountEntry::new(
                &mount.destination,
                "bind",
                &source.to_string_lossy(),
                &["rbind", if *readonly { "ro" } else { "rw" }],
            ),
            MountKind::Tmpfs { size } => {
                let mut entry = MountEntry::new(&mount.destination, "tmpfs", "tmpfs", &["nosuid"]);
                entry.options.extend(size.map(|s| format!("size={s}")));
                entry
            }
        });
    }
    all
}

/// The complete `config.json`. `host` is what an insecure container takes from the host
/// (ignored for a sandboxed one).
pub(crate) fn config(
    spec: &ExecSpec,
    rootfs: &Path,
    user: &User,
    mounts: &[MountEntry],
    cgroups_path: &str,
    host: &HostPrivileges,
) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == NetworkMode::None {
        // runc brings up `lo` in a network namespace it creates.
        namespaces.push(json!({"type": "network"}));
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
    });
    let capabilities = match spec.security {
        SecurityMode::Sandbox => {
            let mut devices = vec![json!({"allow": false, "access": "rwm"})];
            for (major, minor) in ALLOWED_DEVICES {
                devices.push(
                    json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
                );
            }
            devices.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
            linux["resources"] = json!({"devices": devices});
            linux["maskedPaths"] = json!(MASKED_PATHS);
            linux["readonlyPaths"] = json!(READONLY_PATHS);
            linux["seccomp"] = crate::seccomp::profile();
            json!({
                "bounding": CAPABILITIES,
                "effective": CAPABILITIES,
                "permitted": CAPABILITIES,
            })
        }
        SecurityMode::Insecure => {
            linux["resources"] = json!({"devices": [{"allow": true, "access": "rwm"}]});
            let devices: Vec<Value> = host
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "path": d.path,
                        "type": d.kind.to_string(),
                        "major": d.major,
                        "minor": d.minor,
                        "fileMode": d.mode,
                        "uid": d.uid,
                        "gid": d.gid,
                    })
                })
                .collect();
            linux["devices"] = json!(devices);
            let all = &host.capabilities;
            json!({
                "bounding": all,
                "effective": all,
                "permitted": all,
                "inheritable": all,
                "ambient": all,
            })
        }
    };
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": user.uid,
                "gid": user.gid,
                "umask": 0o022,
                "additionalGids": user.additional_gids,
            },
            "args": spec.args,
            "env": env(spec),
            "cwd": if spec.cwd.is_empty() { "/" } else { &spec.cwd },
            "capabilities": capabilities,
            "rlimits": rlimits(spec),
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs, "readonly": spec.readonly_rootfs},
        "hostname": hostname(spec),
        "mounts": mounts,
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mount;

    #[test]
    fn config_has_docker_defaults_and_spec_values() {
        let spec = ExecSpec {
            args: vec!["sh".into(), "-c".into(), "true".into()],
            env: vec!["A=1".into()],
            cwd: "/work".into(),
            network: NetworkMode::Host,
            mounts: vec![
                Mount {
                    destination: "/etc/hosts".into(),
                    kind: MountKind::Tmpfs { size: Some(4096) },
                },
                Mount {
                    destination: "/src".into(),
                    kind: MountKind::Bind {
                        source: "/host/src".into(),
                        readonly: true,
                    },
                },
            ],
            ..ExecSpec::default()
        };
        let user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![1000, 2000],
        };
        let mounts = mounts(&spec, Path::new("/state/bundles/x"));
        let config = config(
            &spec,
            Path::new("/rootfs"),
            &user,
            &mounts,
            "kiln/x",
            &HostPrivileges::default(),
        );

        assert_eq!(
            config["process"]["env"],
            json!(["A=1", format!("PATH={DEFAULT_PATH}")])
        );
        assert_eq!(
            config["process"]["user"],
            json!({"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [1000, 2000]})
        );
        assert_eq!(
            config["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert!(config["process"]["capabilities"].get("inheritable").is_none());
        assert_eq!(config["linux"]["seccomp"], crate::seccomp::profile());
        assert_eq!(config["linux"]["maskedPaths"].as_array().unwrap().len(), 12);
        assert_eq!(
            config["linux"]["resources"]["devices"][0],
            json!({"allow": false, "access": "rwm"})
        );
        assert!(config["linux"].get("devices").is_none());
        assert_eq!(
            config["mounts"][3]["options"],
            json!(["nosuid", "noexec", "nodev", "ro"])
        );
        assert_eq!(config["mounts"][4]["options"][0], "ro");
        assert_eq!(config["hostname"], "buildkitsandbox");
        assert_eq!(config["root"], json!({"path": "/rootfs", "readonly": false}));
        let namespaces = config["linux"]["namespaces"].to_string();
        assert!(!namespaces.contains("network"), "{namespaces}");
        let destinations: Vec<&str> = mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            destinations,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/etc/hosts",
                "/src"
            ]
        );
        assert_eq!(config["mounts"][7]["source"], "/state/bundles/x/resolv.conf");
        assert_eq!(
            config["mounts"][9],
            json!({"destination": "/etc/hosts", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=4096"]})
        );
        assert_eq!(config["mounts"][10]["options"], json!(["rbind", "ro"]));
    }

    #[test]
    fn insecure_config_is_privileged() {
        let spec = ExecSpec {
            args: vec!["true".into()],
            security: SecurityMode::Insecure,
            ..ExecSpec::default()
        };
        let user = User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
        };
        let host = HostPrivileges {
            capabilities: vec!["CAP_CHOWN", "CAP_SYS_ADMIN"],
            devices: vec![crate::host::HostDevice {
                path: "/dev/loop0".into(),
                kind: 'b',
                major: 7,
                minor: 0,
                mode: 0o660,
                uid: 0,
                gid: 6,
            }],
        };
        let mounts = mounts(&spec, Path::new("/b"));
        let config = config(&spec, Path::new("/rootfs"), &user, &mounts, "kiln/x", &host);
        let caps = json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        assert_eq!(
            config["process"]["capabilities"],
            json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps})
        );
        let linux = &config["linux"];
        for absent in ["seccomp", "maskedPaths", "readonlyPaths"] {
            assert!(linux.get(absent).is_none(), "{absent} in {linux}");
        }
        assert_eq!(
            linux["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert_eq!(
            linux["devices"],
            json!([{"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6}])
        );
        assert_eq!(
            config["mounts"][3]["options"],
            json!(["nosuid", "noexec", "nodev", "rw"])
        );
        assert_eq!(config["mounts"][4]["options"][0], "rw");
    }

    #[test]
    fn seccomp_profile_was_resolved_for_the_sandbox_capabilities() {
        let mut granted = CAPABILITIES.to_vec();
        granted.sort_unstable();
        assert_eq!(granted, crate::seccomp::RESOLVED_FOR);
    }

    #[test]
    fn hosts_file_names_the_host() {
        assert_eq!(
            hosts_file("box", &[]),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        let extra = [
            ("db".to_string(), "10.0.0.5".parse().unwrap()),
            ("v6".to_string(), "fd00::1".parse().unwrap()),
        ];
        assert_eq!(
            hosts_file("box", &extra),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.0.0.5\tdb\nfd00::1\tv6\n"
        );
    }
}
