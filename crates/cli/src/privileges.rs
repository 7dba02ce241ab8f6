//! The privileges builds need, checked before anything is opened: kiln mounts overlayfs,
//! creates namespaces and runs containers, which takes root with (nearly) all its
//! capabilities. A missing one is named, so that running in a restricted container or as a
//! user says exactly what to change instead of failing later with `EPERM`.

/// The capabilities builds use, by number, with their names and what they are for.
const NEEDED: &[(u32, &str, &str)] = &[
    (0, "CAP_CHOWN", "to give files the owners of image layers"),
    (
        1,
        "CAP_DAC_OVERRIDE",
        "to read and write files whatever their modes",
    ),
    (3, "CAP_FOWNER", "to set the modes and times of any file"),
    (5, "CAP_KILL", "to stop the processes of build steps"),
    (6, "CAP_SETGID", "to run build steps as their group"),
    (7, "CAP_SETUID", "to run build steps as their user"),
    (8, "CAP_SETPCAP", "to limit the capabilities of build steps"),
    (
        12,
        "CAP_NET_ADMIN",
        "to set up the network namespace of build steps",
    ),
    (21, "CAP_SYS_ADMIN", "to mount overlayfs and create namespaces"),
    (27, "CAP_MKNOD", "to create the device nodes of image layers"),
    (31, "CAP_SETFCAP", "to keep the file capabilities of image layers"),
];

/// Fails unless the process runs as root with every capability in [`NEEDED`]; `command` names
/// what needs them (`kiln build`).
pub(crate) fn require_root(command: &str) -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| {
        format!("{command} cannot check its privileges: failed to read /proc/self/status: {e}")
    })?;
    check(command, &status)
}

/// [`require_root`] on the text of `/proc/self/status`.
fn check(command: &str, status: &str) -> Result<(), String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
    };
    // `Uid:` lists the real, effective, saved and file-system user ids.
    let euid = field("Uid:").split_whitespace().nth(1).unwrap_or("?");
    if euid != "0" {
        return Err(format!(
            "{command} must run as root (it mounts overlayfs and runs containers), but runs as user id {euid}: run it with sudo"
        ));
    }
    let effective = u64::from_str_radix(field("CapEff:"), 16).unwrap_or(0);
    let missing: Vec<String> = NEEDED
        .iter()
        .filter(|(bit, _, _)| effective & (1u64 << bit) == 0)
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{command} runs as root but lacks {}: {}; in a container, run it privileged (docker run --privileged)",
            if missing.len() == 1 {
                "a capability it needs"
            } else {
                "capabilities it needs"
            },
            missing.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_with_all_capabilities_passes() {
        let status = "Name:\tkiln\nUid:\t0\t0\t0\t0\nCapEff:\t000001ffffffffff\n";
        assert_eq!(check("kiln build", status), Ok(()));
    }

    #[test]
    fn a_user_is_told_to_be_root() {
        let status = "Uid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n";
        let err = check("kiln build", status).unwrap_err();
        assert!(
            err.contains("must run as root") && err.contains("user id 1000"),
            "{err}"
        );
    }

    #[test]
    fn missing_capabilities_are_named() {
        // Everything but CAP_SYS_ADMIN (bit 21) and CAP_MKNOD (bit 27).
        let caps = 0x1ff_ffff_ffffu64 & !(1 << 21) & !(1 << 27);
        let status = format!("Uid:\t0\t0\t0\t0\nCapEff:\t{caps:016x}\n");
        let err = check("kiln build", &status).unwrap_err();
        assert!(err.contains("CAP_SYS_ADMIN (to mount overlayfs"), "{err}");
        assert!(err.contains("CAP_MKNOD"), "{err}");
        assert!(!err.contains("CAP_CHOWN"), "{err}");
    }
}
