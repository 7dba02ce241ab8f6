//! The `docker buildx build` flags kiln accepts but does not act on: flags of features not
//! supported yet (refused before anything runs, naming the flag), and the legacy `docker build`
//! flags buildx keeps for compatibility (ignored as buildx ignores them, with its warning where
//! it warns). docs/cli.md lists every flag with its status.

use clap::Args;

use crate::parse::go_bool;

/// Flags parsed only to be refused or ignored (flattened into `kiln build`'s flags).
#[derive(Debug, Default, Args)]
pub(crate) struct CompatFlags {
    /// Add an annotation to the image (not supported yet).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Attestation parameters, e.g. `type=sbom` (not supported yet; `disabled=true` is accepted).
    #[arg(long = "attest", value_name = "type=TYPE[,KEY=VALUE…]")]
    attests: Vec<String>,
    /// Shorthand for `--attest=type=sbom` (not supported yet; `false` is accepted).
    #[arg(long, value_name = "VALUE")]
    sbom: Option<String>,
    /// Shorthand for `--attest=type=provenance` (not supported yet; `false` is accepted).
    #[arg(long, value_name = "VALUE")]
    provenance: Option<String>,
    /// Override the configured builder instance (not supported yet: kiln builds in-process).
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,
    /// Set method for evaluating build: `build` (the default; `check`, `outline` and `targets`
    /// are not supported yet).
    #[arg(long, value_name = "METHOD")]
    call: Option<String>,
    /// Shorthand for `--call=check` (not supported yet).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    check: Option<bool>,
    /// Set the parent cgroup for RUN steps (not supported yet).
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    cgroup_parent: Option<String>,
    /// Policy configuration (not supported yet).
    #[arg(long, value_name = "SPEC")]
    policy: Vec<String>,
    /// Resource limits for RUN steps, e.g. `memory=2g` (not supported yet).
    #[arg(long = "resource", value_name = "KEY=VALUE")]
    resources: Vec<String>,
    /// buildx's experimental `--print` (an older `--call`).
    #[arg(long, hide = true)]
    print: Option<String>,
    /// Legacy `docker build` resource flags, buildx's shorthands for `--resource`.
    #[arg(short = 'm', long, hide = true)]
    memory: Option<String>,
    #[arg(long = "memory-swap", hide = true)]
    memory_swap: Option<String>,
    #[arg(short = 'c', long = "cpu-shares", hide = true)]
    cpu_shares: Option<String>,
    #[arg(long = "cpu-period", hide = true)]
    cpu_period: Option<String>,
    #[arg(long = "cpu-quota", hide = true)]
    cpu_quota: Option<String>,
    #[arg(long = "cpuset-cpus", hide = true)]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", hide = true)]
    cpuset_mems: Option<String>,
    /// Legacy `docker build` flags that buildx ignores (with a warning for the last three).
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    compress: Option<bool>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    rm: Option<bool>,
    #[arg(long = "force-rm", hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    force_rm: Option<bool>,
    #[arg(long, hide = true)]
    isolation: Option<String>,
    #[arg(long = "security-opt", hide = true, value_delimiter = ',')]
    security_opt: Vec<String>,
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    squash: Option<bool>,
}

/// Why a feature is missing, for the refusals below.
const NO_RESOURCES: &str = "RUN steps get no resource limits beyond --ulimit and --shm-size";
const NO_ATTESTATIONS: &str = "kiln attaches no attestations (SBOM, provenance) to images";

impl CompatFlags {
    /// Refuses the first flag given for a feature kiln lacks; returns the warnings buildx gives
    /// for the legacy flags it ignores.
    pub(crate) fn check(&self) -> Result<Vec<&'static str>, String> {
        let refuse = |flag: &str, why: &str| Err(format!("{flag} is not supported yet: {why}"));
        if let Some(flag) = self.first_resource_flag() {
            return refuse(flag, NO_RESOURCES);
        }
        if !self.annotations.is_empty() {
            return refuse("--annotation", "images carry no annotations");
        }
        if let Some(spec) = self.attests.iter().find(|s| !attest_disabled(s)) {
            return refuse(&format!("--attest {spec}"), NO_ATTESTATIONS);
        }
        for (flag, value) in [("--sbom", &self.sbom), ("--provenance", &self.provenance)] {
            if let Some(value) = value
                && go_bool(value) != Ok(false)
                && !attest_disabled(value)
            {
                return refuse(&format!("{flag}={value}"), NO_ATTESTATIONS);
            }
        }
        if self.builder.is_some() {
            return refuse("--builder", "kiln builds in-process, with no builder instances");
        }
        for (flag, method) in [("--call", &self.call), ("--print", &self.print)] {
            if let Some(method) = method
                && method != "build"
            {
                return refuse(&format!("{flag}={method}"), "kiln can only build");
            }
        }
        if self.check == Some(true) {
            return refuse("--check", "kiln can only build (lint rules are not run)");
        }
        if self.cgroup_parent.is_some() {
            return refuse("--cgroup-parent", "RUN steps run in runc's default cgroup");
        }
        if !self.policy.is_empty() {
            return refuse("--policy", "kiln evaluates no source policies");
        }
        Ok(self.ignored_warnings())
    }

    /// The first of `--resource` and its legacy shorthands that was given.
    fn first_resource_flag(&self) -> Option<&'static str> {
        let legacy = [
            ("--memory", &self.memory),
            ("--memory-swap", &self.memory_swap),
            ("--cpu-shares", &self.cpu_shares),
            ("--cpu-period", &self.cpu_period),
            ("--cpu-quota", &self.cpu_quota),
            ("--cpuset-cpus", &self.cpuset_cpus),
            ("--cpuset-mems", &self.cpuset_mems),
        ];
        if !self.resources.is_empty() {
            return Some("--resource");
        }
        legacy
            .into_iter()
            .find(|(_, v)| v.is_some())
            .map(|(flag, _)| flag)
    }

    /// buildx's warnings for the deprecated flags it ignores (`--compress`, `--rm` and
    /// `--force-rm` it ignores silently: kiln sends no context and keeps no containers either).
    fn ignored_warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.isolation.is_some() {
            warnings.push("isolation flag is deprecated with BuildKit.");
        }
        if !self.security_opt.is_empty() {
            warnings.push(
                "security-opt flag is deprecated. \"RUN --security=insecure\" should be used with BuildKit.",
            );
        }
        if self.squash.is_some() {
            warnings.push(
                "experimental flag squash is removed with BuildKit. You should squash inside build using a multi-stage Dockerfile for efficiency.",
            );
        }
        warnings
    }
}

/// Whether an attestation spec turns the attestation off (`disabled=true`), which asks for
/// nothing kiln does not do.
fn attest_disabled(spec: &str) -> bool {
    spec.split(',').any(|field| {
        field
            .split_once('=')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("disabled") && go_bool(v.trim()) == Ok(true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_flag() {
        let flags = CompatFlags {
            cgroup_parent: Some("kiln".into()),
            ..CompatFlags::default()
        };
        let err = flags.check().unwrap_err();
        assert!(err.starts_with("--cgroup-parent is not supported yet"), "{err}");
        let flags = CompatFlags {
            cpu_quota: Some("5000".into()),
            ..CompatFlags::default()
        };
        assert!(
            flags
                .check()
                .unwrap_err()
                .starts_with("--cpu-quota is not supported yet")
        );
    }

    #[test]
    fn turning_attestations_off_is_accepted() {
        let flags = CompatFlags {
            provenance: Some("false".into()),
            sbom: Some("disabled=true".into()),
            attests: vec!["type=provenance,disabled=true".into()],
            call: Some("build".into()),
            ..CompatFlags::default()
        };
        assert_eq!(flags.check(), Ok(Vec::new()));
        let flags = CompatFlags {
            provenance: Some("mode=max".into()),
            ..CompatFlags::default()
        };
        assert!(
            flags
                .check()
                .unwrap_err()
                .contains("--provenance=mode=max is not supported yet")
        );
    }

    #[test]
    fn legacy_flags_warn_as_buildx_does() {
        let flags = CompatFlags {
            rm: Some(false),
            force_rm: Some(true),
            compress: Some(true),
            isolation: Some("hyperv".into()),
            squash: Some(true),
            ..CompatFlags::default()
        };
        let warnings = flags.check().unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("isolation flag is deprecated"));
    }
}
