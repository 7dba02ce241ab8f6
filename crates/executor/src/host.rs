//! What an insecure container takes from the host: kiln's own capabilities and the host's
//! device nodes.
//!
//! `RUN --security=insecure` is BuildKit's privileged mode, and a privileged container can
//! have no more than the process that starts it: the capabilities granted are exactly those in
//! kiln's effective set (as containerd's `WithAllCurrentCapabilities`, which BuildKit uses), so
//! a kiln that runs without, say, `CAP_SYS_RESOURCE` starts containers without it instead of
//! failing. The devices are every character and block device below the host's `/dev`, as
//! containerd's `WithHostDevices` and `docker run --privileged` give.

use std::io;
use std::path::Path;

use oci_spec::runtime::Capability;
use rustix::fs::{FileType, major, minor};

/// Capabilities by bit number, as in `linux/capability.h` (0 to 40, Linux 5.9 and later).
/// Bits above the last known one are not granted: the runtime could not name them.
const CAPABILITIES_BY_BIT: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// Directories below `/dev` that are not walked: the runtime mounts its own `pts`, `shm` and
/// `mqueue`, and `fd` holds no devices.
const SKIPPED_DIRS: [&str; 4] = ["pts", "shm", "mqueue", "fd"];

/// Device nodes the runtime creates (or links) in every container itself, so an insecure
/// container's host devices never list them: listing them again would only make the runtime
/// create them twice.
pub const RUNTIME_DEVICES: [&str; 8] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/console",
    "/dev/ptmx",
];

/// Directories deeper than this below `/dev` are not walked (`/dev/bus/usb/001/002` is the
/// deepest usual device); it also bounds the walk on a strange `/dev`.
const MAX_DEPTH: usize = 6;

/// What the host grants an insecure container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostPrivileges {
    /// The capabilities in kiln's effective set, in bit order.
    pub capabilities: Vec<Capability>,
    /// The host's device nodes, sorted by path.
    pub devices: Vec<HostDevice>,
}

/// One device node of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostDevice {
    /// Its path, the same inside the container.
    pub path: String,
    /// Block (`b`) or character (`c`) device.
    pub kind: char,
    /// The device's major number.
    pub major: u32,
    /// The device's minor number.
    pub minor: u32,
    /// Permission bits.
    pub mode: u32,
    /// Owner, as on the host.
    pub uid: u32,
    /// Group, as on the host.
    pub gid: u32,
}

impl HostPrivileges {
    /// Reads kiln's capabilities from `/proc/self/status` and lists `/dev`.
    pub(crate) fn read() -> io::Result<HostPrivileges> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let capabilities = effective_capabilities(&status).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "no CapEff line in /proc/self/status")
        })?;
        let mut devices = Vec::new();
        walk(Path::new("/dev"), 0, &mut devices)?;
        devices.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(HostPrivileges {
            capabilities,
            devices,
        })
    }
}

/// The capabilities in the `CapEff:` mask of a `/proc/<pid>/status` text.
fn effective_capabilities(status: &str) -> Option<Vec<Capability>> {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())?;
    Some(
        CAPABILITIES_BY_BIT
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, capability)| *capability)
            .collect(),
    )
}

/// Adds the device nodes below `dir` to `out`. Symlinks are not followed, so the walk cannot
/// loop; entries that vanish or cannot be read while walking are skipped (`/dev` changes as
/// devices come and go).
fn walk(dir: &Path, depth: usize, out: &mut Vec<HostDevice>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // The top level must be readable; below it, a directory that went away is no error.
        Err(_) if depth > 0 => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Ok(stat) = rustix::fs::lstat(&path) else {
            continue;
        };
        let file_type = FileType::from_raw_mode(stat.st_mode);
        if file_type.is_dir() {
            let skipped = name.starts_with('.') || (depth == 0 && SKIPPED_DIRS.contains(&name));
            if !skipped && depth < MAX_DEPTH {
                walk(&path, depth + 1, out)?;
            }
            continue;
        }
        let kind = match file_type {
            FileType::CharacterDevice => 'c',
            FileType::BlockDevice => 'b',
            _ => continue,
        };
        let Some(path) = path.to_str().map(str::to_owned) else {
            continue;
        };
        if RUNTIME_DEVICES.contains(&path.as_str()) {
            continue;
        }
        out.push(HostDevice {
            path,
            kind,
            major: major(stat.st_rdev),
            minor: minor(stat.st_rdev),
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_capabilities_are_named_in_bit_order() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\n";
        assert_eq!(
            effective_capabilities(status).unwrap(),
            [
                Capability::Chown,
                Capability::DacOverride,
                Capability::Fowner,
                Capability::Fsetid,
                Capability::Kill,
                Capability::Setgid,
                Capability::Setuid,
                Capability::Setpcap,
                Capability::NetBindService,
                Capability::NetRaw,
                Capability::SysChroot,
                Capability::Mknod,
                Capability::AuditWrite,
                Capability::Setfcap,
            ]
        );
        // Unknown high bits are not granted; a missing line is no answer.
        let all = effective_capabilities("CapEff:\tffffffffffffffff\n").unwrap();
        assert_eq!(all.len(), 41);
        assert_eq!(all.last(), Some(&Capability::CheckpointRestore));
        assert!(effective_capabilities("CapPrm:\t0\n").is_none());
    }

    #[test]
    fn host_devices_are_listed_without_runtime_ones() {
        let host = HostPrivileges::read().unwrap();
        let paths: Vec<&str> = host.devices.iter().map(|d| d.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(!paths.contains(&"/dev/null"), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/dev/pts/")), "{paths:?}");
        // Whatever character devices the host has besides the runtime's own are listed with
        // their numbers, e.g. /dev/kmsg (1:11) where it exists.
        if let Some(kmsg) = host.devices.iter().find(|d| d.path == "/dev/kmsg") {
            assert_eq!((kmsg.kind, kmsg.major, kmsg.minor), ('c', 1, 11));
        }
        // Kiln's own effective set, whatever it is (empty when the test runs unprivileged).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(Some(host.capabilities), effective_capabilities(&status));
    }
}
