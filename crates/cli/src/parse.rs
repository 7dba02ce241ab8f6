//! Parsers of single flag values (`--add-host`, `--ulimit`, sizes, booleans, …), shared by the
//! commands' flag definitions. Each returns a message naming the flag and the value on failure.

use std::time::Duration;

use engine::Filter;

/// Parses a boolean the way Go's `strconv.ParseBool` does, so `--rm=false` or `--push=1`
/// written for docker mean the same here.
pub(crate) fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {text:?} (true or false)")),
    }
}

/// Every entitlement `--allow` grants, in the order the help lists them.
const ENTITLEMENTS: [engine::Entitlement; 2] = [
    engine::Entitlement::NetworkHost,
    engine::Entitlement::SecurityInsecure,
];

/// Parses an `--allow` value; buildx's other entitlements are refused as not supported yet, an
/// unknown name is a usage error that lists the valid ones.
pub(crate) fn entitlement(name: &str) -> Result<engine::Entitlement, String> {
    let name = name.trim();
    if let Some(e) = engine::Entitlement::parse(name) {
        return Ok(e);
    }
    match name {
        "device" => Err("--allow device is not supported yet: RUN steps cannot be given host devices".into()),
        "buildx.local.delete" => Err(
            "--allow buildx.local.delete is not supported yet: local outputs never delete files (mode=delete)"
                .into(),
        ),
        _ => {
            let valid: Vec<&str> = ENTITLEMENTS.iter().map(|e| e.name()).collect();
            Err(format!("unknown entitlement {name:?} (valid: {})", valid.join(", ")))
        }
    }
}

/// Parses one `--add-host` value the way docker does: `HOST:IP` (split at the first `:`, so
/// `h:::1` is IPv6), or `HOST=IP`; the address may be in brackets.
pub(crate) fn extra_host(spec: &str) -> Result<(String, std::net::IpAddr), String> {
    let (host, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| format!("invalid --add-host {spec:?}: expected HOST:IP"))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(format!(
            "invalid --add-host {spec:?}: {host:?} is not a host name"
        ));
    }
    if ip == "host-gateway" {
        return Err(format!(
            "--add-host {spec:?}: the special address host-gateway is not supported yet"
        ));
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let ip = bare
        .parse()
        .map_err(|_| format!("invalid --add-host {spec:?}: {ip:?} is not an IP address"))?;
    Ok((host.to_string(), ip))
}

/// Parses one `--label KEY=VALUE`.
pub(crate) fn label(spec: &str) -> Result<(String, String), String> {
    match spec.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("invalid --label {spec:?}: expected KEY=VALUE")),
    }
}

/// Parses one `--ulimit` value the way docker does: `NAME=SOFT[:HARD]`, the hard limit being the
/// soft one when absent.
pub(crate) fn ulimit(spec: &str) -> Result<llb::pb::Ulimit, String> {
    let (name, limits) = spec
        .split_once('=')
        .ok_or_else(|| format!("invalid --ulimit {spec:?}: expected NAME=SOFT[:HARD]"))?;
    if !engine::ULIMIT_NAMES.contains(&name) {
        return Err(format!(
            "invalid --ulimit {spec:?}: unknown resource {name:?} (known: {})",
            engine::ULIMIT_NAMES.join(", ")
        ));
    }
    let number = |text: &str| -> Result<i64, String> {
        match text.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(n),
            _ => Err(format!("invalid --ulimit {spec:?}: {text:?} is not a limit")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((soft, hard)) => (number(soft)?, number(hard)?),
        None => (number(limits)?, number(limits)?),
    };
    let unlimited = |n: i64| n == -1;
    if !unlimited(hard) && (unlimited(soft) || soft > hard) {
        return Err(format!(
            "invalid --ulimit {spec:?}: the soft limit is above the hard limit"
        ));
    }
    Ok(llb::pb::Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// Parses a size flag (`--keep-storage`, `--gc-keep-storage`, `--shm-size`).
pub(crate) fn size(text: &str) -> Result<u64, String> {
    engine::parse_size(text).map_err(|e| e.to_string())
}

/// Parses a duration flag (`--keep-duration`).
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    engine::parse_duration(text).map_err(|e| e.to_string())
}

/// Parses a `--filter` of `kiln du` and `kiln prune`.
pub(crate) fn filter(text: &str) -> Result<Filter, String> {
    text.parse().map_err(|e: engine::ParseError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_like_go() {
        for t in ["1", "t", "true", "TRUE", "True"] {
            assert_eq!(go_bool(t), Ok(true));
        }
        for f in ["0", "f", "false", "FALSE", "False"] {
            assert_eq!(go_bool(f), Ok(false));
        }
        assert!(go_bool("yes").is_err());
    }

    #[test]
    fn entitlements_name_what_is_missing() {
        assert_eq!(entitlement("network.host"), Ok(engine::Entitlement::NetworkHost));
        assert!(entitlement("device").unwrap_err().contains("not supported yet"));
        assert!(entitlement("bogus").unwrap_err().contains("unknown entitlement"));
    }

    #[test]
    fn add_host_takes_docker_forms() {
        let parsed = |s: &str| extra_host(s).map(|(h, ip)| (h, ip.to_string()));
        assert_eq!(parsed("db:10.0.0.5"), Ok(("db".into(), "10.0.0.5".into())));
        assert_eq!(parsed("db=10.0.0.5"), Ok(("db".into(), "10.0.0.5".into())));
        assert_eq!(parsed("v6:::1"), Ok(("v6".into(), "::1".into())));
        assert_eq!(parsed("v6=[fd00::1]"), Ok(("v6".into(), "fd00::1".into())));
        assert!(extra_host("db").unwrap_err().contains("expected HOST:IP"));
        assert!(extra_host(":10.0.0.5").unwrap_err().contains("not a host name"));
        assert!(
            extra_host("db:notanip")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            extra_host("db:host-gateway")
                .unwrap_err()
                .contains("not supported yet")
        );
    }

    #[test]
    fn ulimit_takes_docker_forms() {
        let parsed = |s: &str| ulimit(s).map(|u| (u.name, u.soft, u.hard));
        assert_eq!(parsed("nofile=1024:2048"), Ok(("nofile".into(), 1024, 2048)));
        assert_eq!(parsed("nproc=512"), Ok(("nproc".into(), 512, 512)));
        assert_eq!(parsed("core=-1"), Ok(("core".into(), -1, -1)));
        assert_eq!(parsed("memlock=64:-1"), Ok(("memlock".into(), 64, -1)));
        assert!(ulimit("nofile").unwrap_err().contains("expected NAME=SOFT"));
        assert!(ulimit("files=1").unwrap_err().contains("unknown resource"));
        assert!(ulimit("nofile=2:1").unwrap_err().contains("above the hard"));
        assert!(ulimit("nofile=x").unwrap_err().contains("not a limit"));
    }
}
