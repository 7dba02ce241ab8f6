//! The OCI runtime spec (`config.json`) for one run, modelled on Docker's default spec for a
//! container and on what BuildKit changes for a build step, built from `oci-spec`'s types.
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
//!
//! `oci-spec`'s `Default`s are youki's example container (a shell, three capabilities, its
//! own mounts and paths), and its builders fill every field left unset from them. So every
//! field of the spec is set here explicitly, and fields kiln does not use are cleared; the
//! snapshot test of the whole file catches a default slipping in. Capability sets are
//! `HashSet`s in `oci-spec`, so [`to_json`] writes them sorted, to keep the file the same for
//! the same input.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxDeviceBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount as OciMount, MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
    Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use serde_json::Value;

use crate::host::HostPrivileges;
use crate::seccomp::Platform;
use crate::user::User;
use crate::{DEFAULT_HOSTNAME, DEFAULT_PATH, Error, ExecSpec, MountKind, NetworkMode, Result, SecurityMode};

/// Docker's default capability set, given as bounding, effective and permitted set. The
/// inheritable and ambient sets stay empty (Docker dropped inheritable for CVE-2022-24769), so
/// a non-root process loses them at exec unless a binary has file capabilities.
pub(crate) const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
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

/// The OCI runtime spec version kiln writes.
const OCI_VERSION: &str = "1.0.2";

/// The open files limit for the container: Docker's, or kiln's own hard limit when that is
/// lower, because raising a hard limit needs `CAP_SYS_RESOURCE`, which kiln may lack.
pub(crate) fn nofile_limit() -> u64 {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    hard.map_or(NOFILE_LIMIT, |hard| hard.min(NOFILE_LIMIT))
}

/// Converts a failure of one of `oci-spec`'s builders.
fn built<T>(result: std::result::Result<T, oci_spec::OciSpecError>) -> Result<T> {
    result.map_err(|source| Error::BuildSpec { source })
}

/// The process's resource limits: Docker's open-files limit, then the spec's `ulimits`, each
/// replacing an earlier limit of the same resource. Unlimited is `RLIM_INFINITY`.
fn rlimits(spec: &ExecSpec) -> Result<Vec<PosixRlimit>> {
    let nofile = nofile_limit();
    let mut limits = vec![(PosixRlimitType::RlimitNofile, nofile, nofile)];
    for limit in &spec.ulimits {
        let name = format!("RLIMIT_{}", limit.name.to_ascii_uppercase());
        let kind: PosixRlimitType = name.parse().map_err(|_| Error::InvalidSpec {
            reason: format!("unknown ulimit {:?}", limit.name),
        })?;
        let entry = (
            kind,
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
        .map(|(kind, soft, hard)| {
            built(
                PosixRlimitBuilder::default()
                    .typ(kind)
                    .soft(soft)
                    .hard(hard)
                    .build(),
            )
        })
        .collect()
}

/// One entry of the spec's `mounts`.
fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Result<OciMount> {
    built(
        MountBuilder::default()
            .destination(destination)
            .typ(kind)
            .source(source)
            .options(options.iter().map(|&o| o.to_owned()).collect::<Vec<_>>())
            .build(),
    )
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
pub(crate) fn mounts(spec: &ExecSpec, bundle: &Path) -> Result<Vec<OciMount>> {
    let file = |name: &str| bundle.join(name).to_string_lossy().into_owned();
    // Privileged containers may write to sysfs and cgroupfs (Docker's `--privileged`,
    // containerd's `WithWriteableSysfs` and `WithWriteableCgroupfs`).
    let sys_access = match spec.security {
        SecurityMode::Sandbox => "ro",
        SecurityMode::Insecure => "rw",
    };
    let defaults = [
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
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
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_access],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[sys_access, "nosuid", "noexec", "nodev"],
        )?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount("/etc/resolv.conf", "bind", &file("resolv.conf"), &["rbind", "ro"])?,
        mount("/etc/hosts", "bind", &file("hosts"), &["rbind", "ro"])?,
        mount("/etc/hostname", "bind", &file("hostname"), &["rbind", "ro"])?,
    ];
    let replaced = |dest: &Path| spec.mounts.iter().any(|m| Path::new(&m.destination) == dest);
    let mut all: Vec<OciMount> = defaults
        .into_iter()
        .filter(|m| !replaced(m.destination()))
        .collect();
    for extra in &spec.mounts {
        all.push(match &extra.kind {
            MountKind::Bind { source, readonly } => mount(
                &extra.destination,
                "bind",
                &source.to_string_lossy(),
                &["rbind", if *readonly { "ro" } else { "rw" }],
            )?,
            MountKind::Tmpfs { size: None } => mount(&extra.destination, "tmpfs", "tmpfs", &["nosuid"])?,
            MountKind::Tmpfs { size: Some(size) } => mount(
                &extra.destination,
                "tmpfs",
                "tmpfs",
                &["nosuid", &format!("size={size}")],
            )?,
        });
    }
    Ok(all)
}

/// The device cgroup rules and device nodes of a container.
fn devices(
    spec: &ExecSpec,
    host: &HostPrivileges,
) -> Result<(Vec<LinuxDeviceCgroup>, Vec<oci_spec::runtime::LinuxDevice>)> {
    let rule = |allow: bool, major: Option<i64>, minor: Option<i64>| {
        let mut rule = LinuxDeviceCgroupBuilder::default().allow(allow).access("rwm");
        if allow && major.is_some() {
            rule = rule.typ(LinuxDeviceType::C);
        }
        if let Some(major) = major {
            rule = rule.major(major);
        }
        if let Some(minor) = minor {
            rule = rule.minor(minor);
        }
        built(rule.build())
    };
    match spec.security {
        SecurityMode::Sandbox => {
            let mut rules = vec![rule(false, None, None)?];
            for (major, minor) in ALLOWED_DEVICES {
                rules.push(rule(true, Some(major), Some(minor))?);
            }
            rules.push(rule(true, Some(136), None)?);
            Ok((rules, Vec::new()))
        }
        SecurityMode::Insecure => {
            let nodes = host
                .devices
                .iter()
                .map(|d| {
                    let kind = if d.kind == 'b' {
                        LinuxDeviceType::B
                    } else {
                        LinuxDeviceType::C
                    };
                    built(
                        LinuxDeviceBuilder::default()
                            .path(&d.path)
                            .typ(kind)
                            .major(i64::from(d.major))
                            .minor(i64::from(d.minor))
                            .file_mode(d.mode)
                            .uid(d.uid)
                            .gid(d.gid)
                            .build(),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((vec![rule(true, None, None)?], nodes))
        }
    }
}

/// The capability sets of the process: Docker's defaults in three sets, or (insecure) every
/// capability kiln has in all five.
fn capabilities(spec: &ExecSpec, host: &HostPrivileges) -> LinuxCapabilities {
    let mut sets = LinuxCapabilities::default();
    match spec.security {
        SecurityMode::Sandbox => {
            let docker: HashSet<Capability> = CAPABILITIES.into_iter().collect();
            sets.set_bounding(Some(docker.clone()))
                .set_effective(Some(docker.clone()))
                .set_permitted(Some(docker))
                .set_inheritable(None)
                .set_ambient(None);
        }
        SecurityMode::Insecure => {
            let all: HashSet<Capability> = host.capabilities.iter().copied().collect();
            sets.set_bounding(Some(all.clone()))
                .set_effective(Some(all.clone()))
                .set_permitted(Some(all.clone()))
                .set_inheritable(Some(all.clone()))
                .set_ambient(Some(all));
        }
    }
    sets
}

/// The process: who runs what where, with which limits and capabilities.
fn process(spec: &ExecSpec, user: &User, host: &HostPrivileges) -> Result<Process> {
    let user = built(
        UserBuilder::default()
            .uid(user.uid)
            .gid(user.gid)
            .umask(0o022_u32)
            .additional_gids(user.additional_gids.clone())
            .build(),
    )?;
    let mut process = built(
        ProcessBuilder::default()
            .terminal(false)
            .user(user)
            .args(spec.args.clone())
            .env(env(spec))
            .cwd(if spec.cwd.is_empty() { "/" } else { &spec.cwd })
            .capabilities(capabilities(spec, host))
            .rlimits(rlimits(spec)?)
            .no_new_privileges(false)
            .build(),
    )?;
    // Not from youki's example process: no apparmor profile, scheduler or the like.
    process
        .set_apparmor_profile(None)
        .set_selinux_label(None)
        .set_scheduler(None)
        .set_io_priority(None)
        .set_oom_score_adj(None)
        .set_exec_cpu_affinity(None);
    Ok(process)
}

/// The complete runtime spec. `host` is what an insecure container takes from the host
/// (ignored for a sandboxed one); `platform` is what the sandbox's seccomp profile is resolved
/// for.
pub(crate) fn config(
    spec: &ExecSpec,
    rootfs: &Path,
    user: &User,
    mounts: Vec<OciMount>,
    cgroups_path: &str,
    host: &HostPrivileges,
    platform: &Platform,
) -> Result<Spec> {
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if spec.network == NetworkMode::None {
        // runc brings up `lo` in a network namespace it creates.
        kinds.push(LinuxNamespaceType::Network);
    }
    let namespaces = kinds
        .into_iter()
        .map(|kind| built(LinuxNamespaceBuilder::default().typ(kind).build()))
        .collect::<Result<Vec<_>>>()?;
    let (device_rules, device_nodes) = devices(spec, host)?;
    let resources = built(LinuxResourcesBuilder::default().devices(device_rules).build())?;
    let mut linux = built(
        LinuxBuilder::default()
            .namespaces(namespaces)
            .cgroups_path(cgroups_path)
            .resources(resources)
            .build(),
    )?;
    match spec.security {
        SecurityMode::Sandbox => {
            // Resolved for the bounding set this process gets, as moby resolves it.
            let bounding: HashSet<Capability> = CAPABILITIES.into_iter().collect();
            let seccomp = crate::seccomp::default_profile(&bounding, platform)
                .map_err(|source| Error::Seccomp { source })?;
            linux
                .set_masked_paths(Some(MASKED_PATHS.map(str::to_owned).to_vec()))
                .set_readonly_paths(Some(READONLY_PATHS.map(str::to_owned).to_vec()))
                .set_seccomp(Some(seccomp))
                .set_devices(None);
        }
        SecurityMode::Insecure => {
            linux
                .set_masked_paths(None)
                .set_readonly_paths(None)
                .set_seccomp(None)
                .set_devices(Some(device_nodes));
        }
    }
    linux
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_rootfs_propagation(None)
        .set_mount_label(None);
    let root = built(
        RootBuilder::default()
            .path(rootfs)
            .readonly(spec.readonly_rootfs)
            .build(),
    )?;
    let mut config = built(
        SpecBuilder::default()
            .version(OCI_VERSION)
            .process(process(spec, user, host)?)
            .root(root)
            .hostname(hostname(spec))
            .mounts(mounts)
            .linux(linux)
            .build(),
    )?;
    config.set_annotations(None).set_domainname(None).set_hooks(None);
    Ok(config)
}

/// The spec as the JSON value written to `config.json`, with each capability set sorted by
/// name (they are `HashSet`s, whose order would change from run to run).
pub(crate) fn to_json(config: &Spec) -> serde_json::Result<Value> {
    let mut value = serde_json::to_value(config)?;
    if let Some(sets) = value
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    {
        for names in sets.values_mut().filter_map(Value::as_array_mut) {
            names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mount;
    use crate::seccomp::KernelVersion;
    use crate::seccomp::testing::{AMD64 as PLATFORM, allowed, rules};
    use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompOperator};
    use serde_json::json;

    /// `config` as the JSON value written to `config.json`.
    fn json(config: Spec) -> Value {
        to_json(&config).unwrap()
    }

    /// User 1000, in group 1000 and also in 2000.
    fn user_1000() -> User {
        User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![1000, 2000],
        }
    }

    /// Root, with group 0 as its supplementary group too.
    fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            additional_gids: vec![0],
        }
    }

    /// A host that grants `capabilities` and has one device, a loop device (`b 7:0`, group 6).
    fn host_with_loop_device(capabilities: Vec<Capability>) -> HostPrivileges {
        HostPrivileges {
            capabilities,
            devices: vec![crate::host::HostDevice {
                path: "/dev/loop0".into(),
                kind: 'b',
                major: 7,
                minor: 0,
                mode: 0o660,
                uid: 0,
                gid: 6,
            }],
        }
    }

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
        let user = user_1000();
        let mounts = mounts(&spec, Path::new("/state/bundles/x")).unwrap();
        let destinations: Vec<&Path> = mounts.iter().map(|m| m.destination().as_path()).collect();
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
            .map(Path::new)
        );
        let config = json(
            config(
                &spec,
                Path::new("/rootfs"),
                &user,
                mounts,
                "kiln/x",
                &HostPrivileges::default(),
                &PLATFORM,
            )
            .unwrap(),
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
        assert_eq!(config["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
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
        let user = root();
        let host = host_with_loop_device(vec![Capability::SysAdmin, Capability::Chown]);
        let mounts = mounts(&spec, Path::new("/b")).unwrap();
        let config = json(
            config(
                &spec,
                Path::new("/rootfs"),
                &user,
                mounts,
                "kiln/x",
                &host,
                &PLATFORM,
            )
            .unwrap(),
        );
        // Sorted by name in the file, whatever order they came in.
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
    fn ulimits_replace_defaults_and_unknown_ones_are_refused() {
        let spec = ExecSpec {
            args: vec!["true".into()],
            ulimits: vec![
                crate::Ulimit {
                    name: "core".into(),
                    soft: Some(0),
                    hard: None,
                },
                crate::Ulimit {
                    name: "nofile".into(),
                    soft: Some(10),
                    hard: Some(20),
                },
            ],
            ..ExecSpec::default()
        };
        let limits: Vec<(PosixRlimitType, u64, u64)> = rlimits(&spec)
            .unwrap()
            .iter()
            .map(|l| (l.typ(), l.soft(), l.hard()))
            .collect();
        assert_eq!(
            limits,
            [
                (PosixRlimitType::RlimitNofile, 10, 20),
                (PosixRlimitType::RlimitCore, 0, u64::MAX)
            ]
        );
        let bad = ExecSpec {
            ulimits: vec![crate::Ulimit {
                name: "bogus".into(),
                soft: None,
                hard: None,
            }],
            ..spec
        };
        assert!(matches!(rlimits(&bad), Err(Error::InvalidSpec { .. })));
    }

    /// The sandbox's bounding set, as the seccomp profile is resolved for it.
    fn docker_default() -> HashSet<Capability> {
        CAPABILITIES.into_iter().collect()
    }

    fn resolved(caps: &HashSet<Capability>, platform: &Platform) -> oci_spec::runtime::LinuxSeccomp {
        crate::seccomp::default_profile(caps, platform).unwrap()
    }

    #[test]
    fn cap_sys_admin_rules_apply_only_when_it_is_granted() {
        let default = resolved(&docker_default(), &PLATFORM);
        for name in ["mount", "umount2", "unshare", "setns", "fsopen", "bpf", "clone3"] {
            assert!(
                !allowed(&default, name),
                "{name} is allowed without CAP_SYS_ADMIN"
            );
        }
        // clone only without namespace flags, and clone3 answers ENOSYS so libcs fall back.
        let clone = rules(&default, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0].args().clone().unwrap();
        assert_eq!(
            (args[0].index(), args[0].value(), args[0].op()),
            (0, 0x7E02_0000, LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
        let clone3 = rules(&default, "clone3");
        assert_eq!(
            (clone3.len(), clone3[0].action(), clone3[0].errno_ret()),
            (1, LinuxSeccompAction::ScmpActErrno, Some(38))
        );

        let mut admin = docker_default();
        admin.insert(Capability::SysAdmin);
        let granted = resolved(&admin, &PLATFORM);
        for name in ["mount", "umount2", "unshare", "setns", "fsopen", "clone3"] {
            assert!(allowed(&granted, name), "{name} is refused with CAP_SYS_ADMIN");
        }
        // The restricted clone and the ENOSYS clone3 are gone: the plain rules allow them.
        assert!(rules(&granted, "clone").iter().all(|r| r.args().is_none()));
        assert!(
            rules(&granted, "clone3")
                .iter()
                .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
        );
        // bpf needs CAP_SYS_ADMIN or CAP_BPF; reboot needs CAP_SYS_BOOT, which neither has.
        assert!(allowed(&granted, "bpf") && !allowed(&granted, "reboot"));
    }

    #[test]
    fn default_capabilities_resolve_as_moby_does() {
        let seccomp = resolved(&docker_default(), &PLATFORM);
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        // archMap: x86_64 with its sub-architectures.
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // The first rule is the unconditional allow-list, as written.
        let first = &seccomp.syscalls().as_ref().unwrap()[0];
        assert_eq!(first.action(), LinuxSeccompAction::ScmpActAllow);
        assert!(first.names().iter().any(|n| n == "read") && first.args().is_none());
        // CAP_SYS_CHROOT is a default capability; CAP_SYS_PTRACE, CAP_SYS_MODULE, … are not.
        assert!(allowed(&seccomp, "chroot"));
        for name in [
            "reboot",
            "init_module",
            "kcmp",
            "acct",
            "iopl",
            "settimeofday",
            "syslog",
        ] {
            assert!(!allowed(&seccomp, name), "{name}");
        }
        // ptrace comes from the kernel rule (4.8 and later), not from a capability rule.
        assert_eq!(rules(&seccomp, "ptrace").len(), 1);
        let old = Platform {
            kernel: KernelVersion { version: 4, major: 4 },
            ..PLATFORM
        };
        assert!(!allowed(&resolved(&docker_default(), &old), "ptrace"));
        // Architecture rules: arch_prctl and modify_ldt on amd64, not the ARM or s390 ones.
        assert!(allowed(&seccomp, "arch_prctl") && allowed(&seccomp, "modify_ldt"));
        assert!(!allowed(&seccomp, "set_tls") && !allowed(&seccomp, "s390_runtime_instr"));
        // Sockets of any family but AF_ALG (38) and AF_VSOCK (40).
        let socket: Vec<(u64, LinuxSeccompOperator)> = rules(&seccomp, "socket")
            .iter()
            .map(|r| {
                let arg = r.args().clone().unwrap()[0];
                (arg.value(), arg.op())
            })
            .collect();
        assert_eq!(
            socket,
            [
                (38, LinuxSeccompOperator::ScmpCmpLt),
                (39, LinuxSeccompOperator::ScmpCmpEq),
                (40, LinuxSeccompOperator::ScmpCmpGt)
            ]
        );
        // personality: only the values Docker allows.
        let values: Vec<u64> = rules(&seccomp, "personality")
            .iter()
            .map(|r| r.args().clone().unwrap()[0].value())
            .collect();
        assert_eq!(values, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    /// `config` as written to `config.json`, pretty-printed.
    fn normalized(config: Spec) -> String {
        serde_json::to_string_pretty(&json(config)).unwrap()
    }

    /// The whole `config.json` of a sandboxed and of an insecure step, pinned: any change to
    /// mounts, capabilities, masked and read-only paths, rlimits, namespaces, devices or the
    /// seccomp filter (say, a new `default.json`) shows up as a reviewed snapshot diff.
    #[test]
    fn config_json_is_pinned() {
        let sandbox = ExecSpec {
            args: vec!["sh".into(), "-c".into(), "make".into()],
            env: vec!["A=1".into(), "PATH=/bin".into()],
            cwd: "/src".into(),
            ulimits: vec![
                crate::Ulimit {
                    name: "nofile".into(),
                    soft: Some(1024),
                    hard: Some(2048),
                },
                crate::Ulimit {
                    name: "nproc".into(),
                    soft: None,
                    hard: None,
                },
            ],
            mounts: vec![
                Mount {
                    destination: "/src".into(),
                    kind: MountKind::Bind {
                        source: "/host/src".into(),
                        readonly: true,
                    },
                },
                Mount {
                    destination: "/dev/shm".into(),
                    kind: MountKind::Tmpfs { size: Some(1 << 20) },
                },
            ],
            readonly_rootfs: true,
            ..ExecSpec::default()
        };
        let user = user_1000();
        let bundle = Path::new("/state/bundles/x");
        let pinned = config(
            &sandbox,
            Path::new("/rootfs"),
            &user,
            mounts(&sandbox, bundle).unwrap(),
            "kiln/x",
            &HostPrivileges::default(),
            &PLATFORM,
        )
        .unwrap();
        insta::assert_snapshot!("config_sandbox", normalized(pinned));

        // The default open-files limit depends on kiln's own: replaced, to pin the rest.
        let insecure = ExecSpec {
            args: vec!["true".into()],
            hostname: "builder".into(),
            ulimits: vec![crate::Ulimit {
                name: "nofile".into(),
                soft: Some(4096),
                hard: Some(4096),
            }],
            network: NetworkMode::Host,
            security: SecurityMode::Insecure,
            ..ExecSpec::default()
        };
        let host = host_with_loop_device(vec![Capability::Chown, Capability::SysAdmin]);
        let pinned = config(
            &insecure,
            Path::new("/rootfs"),
            &root(),
            mounts(&insecure, bundle).unwrap(),
            "kiln/y",
            &host,
            &PLATFORM,
        )
        .unwrap();
        insta::assert_snapshot!("config_insecure", normalized(pinned));
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
