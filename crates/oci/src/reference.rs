//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// The registry that unqualified names refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A fully normalised image reference.
///
/// `busybox` normalises to `docker.io/library/busybox:latest`, as `docker pull` does.
/// Invariant: at least one of `tag` and `digest` is set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// Empty input.
    #[error("invalid reference format: empty image name")]
    Empty,
    /// Upper-case letters in the repository.
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    /// Anything else that breaks the grammar.
    #[error("invalid reference format: {reference:?}: {reason}")]
    Invalid {
        /// The input.
        reference: String,
        /// Which part is wrong.
        reason: &'static str,
    },
    /// A bad `@digest` part. (Its cause is part of the message, not a `source()`: a reference
    /// error is usually shown on its own, as one line.)
    #[error("invalid reference format: {0}")]
    Digest(crate::DigestError),
}

impl From<crate::DigestError> for ReferenceError {
    fn from(error: crate::DigestError) -> ReferenceError {
        ReferenceError::Digest(error)
    }
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        input.parse()
    }

    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The registry and repository: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same reference pinned to `digest` (the tag is kept for readability).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The short form docker prints: `busybox:latest` for Docker Hub library images.
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(&d.to_string());
        }
        name
    }
}

fn invalid(reference: &str, reason: &'static str) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason,
    }
}

fn is_domain(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        // IPv6 literal.
        return inner.strip_suffix(']').is_some_and(|v6| {
            !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        });
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_domain(domain: &str) -> bool {
    // host[:port]; an IPv6 literal carries its own colons inside brackets.
    let (host, port) = if domain.starts_with('[') {
        match domain.rfind(']') {
            Some(end) => {
                let rest = &domain[end + 1..];
                (&domain[..=end], rest.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    valid_host(host) && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn valid_path_component(component: &str) -> bool {
    // alnum+ (separator alnum+)*, separator = [_.] | __ | -+
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.next() {
        Some(c) if word(c) => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| word(c) || c == '.' || c == '-')
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, d)) => (name, Some(d.parse::<Digest>()?)),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid(input, "invalid tag"));
        }
        if name.is_empty() {
            return Err(invalid(input, "empty repository name"));
        }
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, remainder)) if is_domain(first) => {
                if !valid_domain(first) {
                    return Err(invalid(input, "invalid registry host"));
                }
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(repository));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid(input, "invalid repository name"));
        }
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                input,
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(
            Reference::parse(input).unwrap().to_string(),
            expected,
            "input {input}"
        );
    }

    #[test]
    fn normalises_like_docker() {
        check("busybox", "docker.io/library/busybox:latest");
        check("busybox:1.36", "docker.io/library/busybox:1.36");
        check("user/app", "docker.io/user/app:latest");
        check("index.docker.io/library/alpine:3", "docker.io/library/alpine:3");
        check("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest");
        check("localhost/a/b:v1", "localhost/a/b:v1");
        check(
            "ghcr.io/org/repo-name_x.y:tag-1.2",
            "ghcr.io/org/repo-name_x.y:tag-1.2",
        );
        check("[::1]:5000/img:t", "[::1]:5000/img:t");
        let d = Digest::of(b"m");
        check(&format!("alpine@{d}"), &format!("docker.io/library/alpine@{d}"));
        check(
            &format!("alpine:3@{d}"),
            &format!("docker.io/library/alpine:3@{d}"),
        );
    }

    #[test]
    fn rejects_bad_references() {
        assert!(matches!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(Reference::parse("").is_err());
        assert!(Reference::parse("a:").is_err());
        assert!(Reference::parse("a::b").is_err());
        assert!(Reference::parse("-a").is_err());
        assert!(Reference::parse("a@sha256:12").is_err());
        assert!(Reference::parse("host:port/a").is_err());
        assert!(Reference::parse("a b").is_err());
    }

    #[test]
    fn familiar_form() {
        assert_eq!(Reference::parse("busybox").unwrap().familiar(), "busybox:latest");
        assert_eq!(
            Reference::parse("127.0.0.1:5000/x:1").unwrap().familiar(),
            "127.0.0.1:5000/x:1"
        );
    }
}
