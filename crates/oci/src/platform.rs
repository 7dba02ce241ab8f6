//! Target platforms (`os/arch[/variant]`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An OCI platform, as found in image indexes and image configs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's naming (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, `windows`).
    pub os: String,
    /// OS version (Windows only).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required OS features (Windows only).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`, the only platform kiln can run steps for today.
    pub fn linux_amd64() -> Platform {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        }
    }

    /// The platform of the machine kiln runs on, in Go's naming.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match architecture {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            os_version: None,
            os_features: Vec::new(),
            variant,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let architecture = parts.next().filter(|p| !p.is_empty())?.to_ascii_lowercase();
        let variant = parts.next().map(|v| v.to_ascii_lowercase());
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            architecture,
            os,
            os_version: None,
            os_features: Vec::new(),
            variant,
        })
    }

    /// Whether an image built for `self` can serve a request for `wanted`: same OS and
    /// architecture, and the same variant when both name one.
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && match (&self.variant, &wanted.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(Platform::parse("linux/amd64").unwrap(), Platform::linux_amd64());
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }

    #[test]
    fn variant_is_optional_when_matching() {
        let arm = Platform::parse("linux/arm64").unwrap();
        let arm_v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm.matches(&arm_v8));
        assert!(!Platform::linux_amd64().matches(&arm));
    }
}
