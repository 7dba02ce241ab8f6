//! The seccomp filter of a sandboxed build step: Docker's default profile, kept as the data
//! moby ships (`seccomp/default.json`, see `seccomp/NOTICE` for where it comes from) and
//! resolved at run time the way moby resolves it (`profiles/seccomp/seccomp_linux.go`).
//!
//! The profile denies by default (`EPERM`) and lists what is allowed. A rule can be
//! conditional:
//! - `includes.caps` / `excludes.caps`: the rule applies only if the process's bounding set has
//!   every listed capability / none of them (`mount` needs `CAP_SYS_ADMIN`, `chroot` needs
//!   `CAP_SYS_CHROOT`, and `clone` without namespace flags is the rule for everyone else);
//! - `includes.arches` / `excludes.arches`: only on / not on these architectures (named as
//!   moby names them: `amd64`, `arm64`, `s390x`, …);
//! - `includes.minKernel` / `excludes.minKernel`: only on a kernel at least / below this
//!   `<version>.<major revision>` (`ptrace` is allowed from 4.8 on).
//!
//! The filter's `architectures` come from the profile's `archMap`: the entry of the machine's
//! architecture and its sub-architectures (x86_64 lists x86 and x32 too), so that a binary of
//! another ABI the kernel runs cannot go around the filter. Nothing is probed: an architecture
//! the kernel does not run costs nothing but a few instructions in the filter.
//!
//! Insecure steps get no filter at all, as privileged containers in Docker and BuildKit, so in
//! practice the profile is resolved for Docker's default capabilities ([`crate::spec`]); the
//! resolution itself works for any bounding set.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

/// Docker's default seccomp profile, as moby ships it.
const DEFAULT_PROFILE: &str = include_str!("seccomp/default.json");

/// Why the seccomp profile could not be turned into a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not valid JSON of moby's profile format.
    #[error("failed to parse the seccomp profile")]
    Parse(#[source] serde_json::Error),
    /// The profile gives both fixed `architectures` and an `archMap`, which moby refuses.
    #[error("the seccomp profile gives both 'architectures' and 'archMap'")]
    ArchitecturesAndArchMap,
    /// A rule gives both the old `name` and `names`, which moby refuses.
    #[error("a rule of the seccomp profile gives both 'name' ({name}) and 'names'")]
    NameAndNames {
        /// The rule's `name`.
        name: String,
    },
    /// The running kernel's release does not start with `<version>.<major revision>`.
    #[error("failed to parse the kernel release {release:?} as <version>.<major revision>")]
    KernelRelease {
        /// The release, as `uname -r` prints it.
        release: String,
    },
}

/// A profile in moby's format: the runtime spec's `linux.seccomp` plus an `archMap` and
/// conditions on rules.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMapEntry>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

/// An architecture and the others its kernel also runs binaries of.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMapEntry {
    architecture: Arch,
    /// `null` in the profile for architectures without any.
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

/// One rule: a runtime-spec syscall entry, with conditions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// The single name of old profiles.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

/// Conditions of a rule (`includes`: all must hold; `excludes`: none may).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Vec<Capability>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default, deserialize_with = "min_kernel")]
    min_kernel: Option<KernelVersion>,
}

/// Reads a `minKernel` as moby does: exactly `<version>.<major revision>`, not `0.0`.
fn min_kernel<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<KernelVersion>, D::Error> {
    let text = String::deserialize(de)?;
    let parsed = text.split_once('.').and_then(|(version, major)| {
        Some(KernelVersion {
            version: version.parse::<u8>().ok()?.into(),
            major: major.parse::<u8>().ok()?.into(),
        })
    });
    match parsed {
        Some(v) if v.version > 0 || v.major > 0 => Ok(Some(v)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid minKernel {text:?}, expected \"<version>.<major revision>\""
        ))),
    }
}

/// A kernel version as the profile compares it: version and major revision (`6.1` of
/// `6.1.0-18-amd64`); the rest of a release is ignored, as moby ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelVersion {
    /// The version, `6` in `6.1`.
    pub version: u64,
    /// The major revision, `1` in `6.1`.
    pub major: u64,
}

impl KernelVersion {
    /// Parses the leading `<version>.<major revision>` of `release`.
    fn parse(release: &str) -> Option<KernelVersion> {
        let number = |s: &str| {
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..digits].parse::<u64>().ok()
        };
        let (version, rest) = release.split_once('.')?;
        Some(KernelVersion {
            version: version.parse().ok()?,
            major: number(rest)?,
        })
    }
}

/// What the profile's conditions are checked against besides the capabilities: the machine's
/// architecture and its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Platform {
    /// The architecture as moby names it (`amd64`, `arm64`, …) and as libseccomp does, or
    /// `None` for one moby has no name for (then no `arches` condition holds, and the filter
    /// names no architecture: the runtime's native one only).
    pub arch: Option<(&'static str, Arch)>,
    /// The running kernel.
    pub kernel: KernelVersion,
}

impl Platform {
    /// This machine: the architecture kiln was built for and the running kernel.
    pub(crate) fn current() -> Result<Platform, SeccompError> {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        let kernel = KernelVersion::parse(&release).ok_or_else(|| SeccompError::KernelRelease {
            release: release.clone().into_owned(),
        })?;
        Ok(Platform {
            arch: native_arch(),
            kernel,
        })
    }
}

/// This build's architecture under moby's name for it (Go's `GOARCH` turned into libseccomp's
/// name, which is what `arches` conditions use) and its libseccomp architecture.
fn native_arch() -> Option<(&'static str, Arch)> {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => Some(("amd64", Arch::ScmpArchX86_64)),
        "x86" => Some(("x86", Arch::ScmpArchX86)),
        "aarch64" => Some(("arm64", Arch::ScmpArchAarch64)),
        "arm" => Some(("arm", Arch::ScmpArchArm)),
        "loongarch64" => Some(("loongarch64", Arch::ScmpArchLoongarch64)),
        "mips64" if little => Some(("mipsel64", Arch::ScmpArchMipsel64)),
        "mips64" => Some(("mips64", Arch::ScmpArchMips64)),
        "powerpc64" if little => Some(("ppc64le", Arch::ScmpArchPpc64le)),
        "powerpc64" => Some(("ppc64", Arch::ScmpArchPpc64)),
        "powerpc" => Some(("ppc", Arch::ScmpArchPpc)),
        "riscv64" => Some(("riscv64", Arch::ScmpArchRiscv64)),
        "s390x" => Some(("s390x", Arch::ScmpArchS390x)),
        _ => None,
    }
}

/// Docker's default profile resolved for a process whose bounding set is `capabilities`, on
/// `platform`: the `linux.seccomp` of its runtime spec.
pub(crate) fn default_profile(
    capabilities: &HashSet<Capability>,
    platform: &Platform,
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_str(DEFAULT_PROFILE).map_err(SeccompError::Parse)?;
    resolve(profile, capabilities, platform)
}

/// Resolves `profile` as moby's `setupSeccomp` does: architectures from the `archMap` entry of
/// the platform's architecture, then every rule whose conditions hold, in order.
fn resolve(
    profile: Profile,
    capabilities: &HashSet<Capability>,
    platform: &Platform,
) -> Result<LinuxSeccomp, SeccompError> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(SeccompError::ArchitecturesAndArchMap);
    }
    let mut architectures = profile.architectures;
    if let Some((_, native)) = platform.arch
        && let Some(entry) = profile.arch_map.into_iter().find(|e| e.architecture == native)
    {
        architectures.push(entry.architecture);
        architectures.extend(entry.sub_architectures.unwrap_or_default());
    }
    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let names = match rule.name {
            Some(name) if !rule.names.is_empty() => return Err(SeccompError::NameAndNames { name }),
            Some(name) => vec![name],
            None => rule.names,
        };
        let excluded = rule
            .excludes
            .as_ref()
            .is_some_and(|f| excludes(f, capabilities, platform));
        let included = rule
            .includes
            .as_ref()
            .is_none_or(|f| includes(f, capabilities, platform));
        if excluded || !included {
            continue;
        }
        let mut syscall = LinuxSyscall::default();
        syscall
            .set_names(names)
            .set_action(rule.action)
            .set_errno_ret(rule.errno_ret)
            .set_args(rule.args);
        syscalls.push(syscall);
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(profile.default_action)
        .set_default_errno_ret(profile.default_errno_ret)
        .set_architectures(Some(architectures).filter(|a| !a.is_empty()))
        .set_flags(Some(profile.flags).filter(|f| !f.is_empty()))
        .set_syscalls(Some(syscalls));
    Ok(seccomp)
}

/// Whether an `excludes` filter takes the rule out: any of its conditions holds.
fn excludes(filter: &Filter, capabilities: &HashSet<Capability>, platform: &Platform) -> bool {
    let arch = platform.arch.map(|(name, _)| name);
    arch.is_some_and(|a| filter.arches.iter().any(|f| f == a))
        || filter.caps.iter().any(|c| capabilities.contains(c))
        || filter.min_kernel.is_some_and(|min| platform.kernel >= min)
}

/// Whether an `includes` filter keeps the rule: all of its conditions hold.
fn includes(filter: &Filter, capabilities: &HashSet<Capability>, platform: &Platform) -> bool {
    let arch = platform.arch.map(|(name, _)| name);
    (filter.arches.is_empty() || arch.is_some_and(|a| filter.arches.iter().any(|f| f == a)))
        && filter.caps.iter().all(|c| capabilities.contains(c))
        && filter.min_kernel.is_none_or(|min| platform.kernel >= min)
}

/// What tests of the resolved profile share (here and in [`crate::spec`]).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A machine the tests do not depend on: x86_64 with Linux 6.1.
    pub(crate) const AMD64: Platform = Platform {
        arch: Some(("amd64", Arch::ScmpArchX86_64)),
        kernel: KernelVersion { version: 6, major: 1 },
    };

    /// The rules of `seccomp` that name `name`.
    pub(crate) fn rules<'a>(seccomp: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        let all = seccomp.syscalls().as_deref().unwrap_or_default();
        all.iter()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    /// Whether some rule allows `name`, unconditionally or for some arguments.
    pub(crate) fn allowed(seccomp: &LinuxSeccomp, name: &str) -> bool {
        rules(seccomp, name)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{AMD64, allowed, rules};
    use super::*;

    fn resolved(caps: &HashSet<Capability>, platform: &Platform) -> LinuxSeccomp {
        default_profile(caps, platform).unwrap()
    }

    #[test]
    fn capability_rules_follow_the_bounding_set() {
        let none = resolved(&HashSet::new(), &AMD64);
        let admin = resolved(&HashSet::from([Capability::SysAdmin]), &AMD64);
        for name in ["mount", "unshare", "setns", "fsopen"] {
            assert!(!allowed(&none, name), "{name} without CAP_SYS_ADMIN");
            assert!(allowed(&admin, name), "{name} with CAP_SYS_ADMIN");
        }
        // A rule with several conditions needs all of them (`includes`) or none (`excludes`).
        let chroot = resolved(&HashSet::from([Capability::SysChroot]), &AMD64);
        assert!(allowed(&chroot, "chroot") && !allowed(&none, "chroot"));
        assert!(rules(&none, "clone").iter().any(|r| r.args().is_some()));
        assert!(rules(&admin, "clone").iter().all(|r| r.args().is_none()));
    }

    #[test]
    fn the_profile_is_moby_format_and_every_condition_is_known() {
        let profile: Profile = serde_json::from_str(DEFAULT_PROFILE).unwrap();
        assert_eq!(profile.default_action, LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret, Some(1));
        assert!(profile.architectures.is_empty());
        // Every architecture named in a condition is one moby knows a name for.
        let known = [
            "amd64",
            "x86",
            "x32",
            "arm",
            "arm64",
            "loongarch64",
            "mips64",
            "mipsel64",
            "ppc64le",
            "ppc64",
            "ppc",
            "riscv64",
            "s390",
            "s390x",
        ];
        for rule in &profile.syscalls {
            for filter in rule.includes.iter().chain(&rule.excludes) {
                for arch in &filter.arches {
                    assert!(known.contains(&arch.as_str()), "unknown arch {arch}");
                }
            }
        }
        assert!(
            profile
                .syscalls
                .iter()
                .any(|r| r.includes.as_ref().is_some_and(|f| f.min_kernel.is_some())),
            "the profile has no kernel condition any more: the tests below need another"
        );
    }

    #[test]
    fn other_architectures_get_their_own_rules() {
        let arm64 = Platform {
            arch: Some(("arm64", Arch::ScmpArchAarch64)),
            ..AMD64
        };
        let seccomp = resolved(&HashSet::new(), &arm64);
        assert_eq!(
            seccomp.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert!(allowed(&seccomp, "set_tls") && !allowed(&seccomp, "arch_prctl"));

        let s390x = Platform {
            arch: Some(("s390x", Arch::ScmpArchS390x)),
            ..AMD64
        };
        let seccomp = resolved(&HashSet::new(), &s390x);
        let clone = rules(&seccomp, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().clone().unwrap()[0].index(), 1);

        // An architecture moby has no name for: no architectures (the runtime's native one),
        // no rule that includes only some architectures, every rule that excludes some.
        let unknown = Platform { arch: None, ..AMD64 };
        let seccomp = resolved(&HashSet::new(), &unknown);
        assert_eq!(seccomp.architectures(), &None);
        assert!(!allowed(&seccomp, "arch_prctl") && !allowed(&seccomp, "set_tls"));
        let clone = rules(&seccomp, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().clone().unwrap()[0].index(), 0);
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let caps = HashSet::new();
        let both = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}]}"#;
        let profile: Profile = serde_json::from_str(both).unwrap();
        assert!(matches!(
            resolve(profile, &caps, &AMD64),
            Err(SeccompError::ArchitecturesAndArchMap)
        ));
        let names = r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let profile: Profile = serde_json::from_str(names).unwrap();
        assert!(matches!(
            resolve(profile, &caps, &AMD64),
            Err(SeccompError::NameAndNames { name }) if name == "read"
        ));
        // The old single `name` still works.
        let old = r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"name": "read", "action": "SCMP_ACT_ALLOW"}]}"#;
        let profile: Profile = serde_json::from_str(old).unwrap();
        let seccomp = resolve(profile, &caps, &AMD64).unwrap();
        assert!(allowed(&seccomp, "read"));
        for bad in ["4", "4.8.1", "0.0", "x.1"] {
            let json = format!(
                r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read"],
                "action": "SCMP_ACT_ALLOW", "includes": {{"minKernel": "{bad}"}}}}]}}"#
            );
            assert!(serde_json::from_str::<Profile>(&json).is_err(), "{bad}");
        }
        let unknown = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ALLOW", "includes": {"minKernal": "4.8"}}]}"#;
        assert!(serde_json::from_str::<Profile>(unknown).is_err());
    }

    #[test]
    fn kernel_releases_are_read_like_moby() {
        let parsed = |r: &str| KernelVersion::parse(r).map(|k| (k.version, k.major));
        assert_eq!(parsed("6.18.44-fc-v1272"), Some((6, 18)));
        assert_eq!(parsed("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parsed("3.12"), Some((3, 12)));
        assert_eq!(parsed("5.4rc1"), Some((5, 4)));
        assert_eq!(parsed("generic"), None);
        assert_eq!(parsed("6"), None);
        let here = Platform::current().unwrap();
        assert!(here.kernel >= KernelVersion { version: 5, major: 6 }, "{here:?}");
    }
}
