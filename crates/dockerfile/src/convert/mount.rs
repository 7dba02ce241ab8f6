//! `RUN --mount=…` values: parsed and validated as BuildKit does (`instructions/commands_runmount.go`).
//!
//! Parsing needs nothing but the text, so planning (which only wants the `from=` stages) and the
//! RUN conversion (which lowers the result into exec mounts) both use it.

use llb::pb;

use crate::error::{Error, ErrorKind, Location, suggest};

/// The kinds of `RUN --mount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// One `--mount` flag, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MountSpec {
    pub(super) kind: MountType,
    pub(super) from: Option<String>,
    pub(super) source: Option<String>,
    pub(super) target: Option<String>,
    pub(super) readonly: bool,
    pub(super) id: Option<String>,
    pub(super) sharing: pb::CacheSharing,
    pub(super) sharing_set: bool,
    pub(super) required: bool,
    pub(super) mode: Option<u32>,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) size: Option<i64>,
    pub(super) env: Option<String>,
}

/// Expands a mount option value (the stage's variables); its errors name the RUN already.
pub(super) type Expander<'a> = dyn Fn(&str) -> Result<String, Error> + 'a;

/// Why a `--mount` value is not accepted.
#[derive(Debug)]
pub(super) enum MountError {
    /// The value is malformed; BuildKit's message.
    Invalid(String),
    /// Expanding an option value failed.
    Expand(Error),
}

impl MountError {
    /// The frontend error for the RUN at `location`.
    pub(super) fn at(self, location: Location) -> Error {
        match self {
            MountError::Invalid(message) => Error::at(ErrorKind::BadFlag(message), location),
            MountError::Expand(error) => error,
        }
    }
}

impl From<String> for MountError {
    fn from(message: String) -> MountError {
        MountError::Invalid(message)
    }
}

impl From<&str> for MountError {
    fn from(message: &str) -> MountError {
        MountError::Invalid(message.to_string())
    }
}

/// Splits one CSV record the way Go's `encoding/csv` does: fields separated by commas, a field
/// may be double-quoted, `""` inside quotes is a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, MountError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            _ => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("failed to parse csv mounts: extraneous or missing \" in quoted-field".into());
    }
    fields.push(field);
    Ok(fields)
}

const MOUNT_KEYS: [&str; 18] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "ro",
    "rw",
    "readwrite",
    "size",
    "env",
];

fn parse_bool(key: &str, value: &str) -> Result<bool, MountError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}").into()),
    }
}

/// A mount being parsed: the spec so far, and whether read-only was chosen explicitly (if not,
/// the type decides).
struct Parsing {
    m: MountSpec,
    readonly_set: bool,
}

/// Parses one `--mount` value. Values are expanded with `expand` (not `from`, which never is);
/// with no expander only the structure is checked (used to find `from=` stages early).
pub(super) fn parse_mount(spec: &str, expand: Option<&Expander<'_>>) -> Result<MountSpec, MountError> {
    let mut parsing = Parsing {
        m: MountSpec {
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            readonly: true,
            id: None,
            sharing: pb::CacheSharing::Shared,
            sharing_set: false,
            required: false,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            env: None,
        },
        readonly_set: false,
    };
    for field in csv_fields(spec)? {
        let Some((key, value)) = field.split_once('=') else {
            parsing.flag(&field.to_ascii_lowercase(), &field)?;
            continue;
        };
        let key = key.to_ascii_lowercase();
        if key == "from" {
            if value.contains('$') {
                return Err("'from' doesn't support variable expansion, define alias stage instead".into());
            }
            parsing.m.from = Some(value.to_string());
            continue;
        }
        let value = match expand {
            Some(expand) => expand(value).map_err(MountError::Expand)?,
            None => value.to_string(),
        };
        parsing.option(&key, value, &field)?;
    }
    parsing.validate()?;
    Ok(parsing.m)
}

impl Parsing {
    /// A field without `=`.
    fn flag(&mut self, key: &str, field: &str) -> Result<(), MountError> {
        match key {
            "readonly" | "ro" => {
                self.m.readonly = true;
                self.readonly_set = true;
            }
            "readwrite" | "rw" => {
                self.m.readonly = false;
                self.readonly_set = true;
            }
            "required" => {
                self.only_for_secrets_and_ssh("required")?;
                self.m.required = true;
            }
            _ => return Err(format!("invalid field '{field}' must be a key=value pair").into()),
        }
        Ok(())
    }

    fn only_for_secrets_and_ssh(&self, key: &str) -> Result<(), MountError> {
        if matches!(self.m.kind, MountType::Secret | MountType::Ssh) {
            return Ok(());
        }
        Err(format!("unexpected key '{key}' for mount type '{}'", self.m.kind.name()).into())
    }

    /// A `key=value` field (other than `from`), its value expanded.
    fn option(&mut self, key: &str, value: String, field: &str) -> Result<(), MountError> {
        let m = &mut self.m;
        match key {
            "type" => m.kind = mount_type(&value)?,
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(key, &value)?;
                self.readonly_set = true;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(key, &value)?;
                self.readonly_set = true;
            }
            "required" => {
                self.only_for_secrets_and_ssh(key)?;
                self.m.required = parse_bool(key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    let kind = m.kind.name();
                    return Err(format!("unexpected key 'size' for mount type '{kind}'").into());
                }
                let size = gocompat::units::ram_in_bytes(&value).and_then(|n| i64::try_from(n).ok());
                m.size = Some(size.ok_or_else(|| format!("invalid value for size: {value}"))?);
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = cache_sharing(&value)?;
                m.sharing_set = true;
            }
            "mode" => {
                let mode = u32::from_str_radix(&value, 8).ok().filter(|m| *m <= 0o7777);
                m.mode = Some(mode.ok_or_else(|| format!("invalid value {value} for mode"))?);
            }
            "uid" => m.uid = Some(id_number(&value, "uid")?),
            "gid" => m.gid = Some(id_number(&value, "gid")?),
            "env" => m.env = Some(value),
            _ => {
                let hint = hint(suggest(key, MOUNT_KEYS));
                return Err(format!("unexpected key '{key}' in '{field}'{hint}").into());
            }
        }
        Ok(())
    }

    /// The checks BuildKit makes once all fields are read.
    fn validate(&mut self) -> Result<(), MountError> {
        let m = &mut self.m;
        let file_info_allowed = matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache);
        if !file_info_allowed {
            for (set, name) in [
                (m.mode.is_some(), "mode"),
                (m.uid.is_some(), "uid"),
                (m.gid.is_some(), "gid"),
            ] {
                if set {
                    return Err(format!("{name} not allowed for {:?} type mounts", m.kind.name()).into());
                }
            }
        }
        if !self.readonly_set {
            m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if m.env.is_some() && m.kind != MountType::Secret {
            return Err(format!("unexpected key 'env' for mount type '{}'", m.kind.name()).into());
        }
        if m.kind == MountType::Secret {
            validate_secret(m)?;
        }
        if m.kind == MountType::Ssh && m.source.is_some() {
            return Err("ssh mount does not support source".into());
        }
        if m.sharing_set && m.kind != MountType::Cache {
            return Err(format!("invalid cache sharing set for {} mount", m.kind.name()).into());
        }
        Ok(())
    }
}

fn validate_secret(m: &MountSpec) -> Result<(), MountError> {
    if m.from.is_some() {
        return Err("secret mount should not have a from".into());
    }
    if m.sharing_set {
        return Err("secret mount should not define sharing".into());
    }
    if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
        return Err("invalid secret mount. one of source, target required".into());
    }
    if m.source.is_some() && m.id.is_some() {
        return Err("both source and id can't be set".into());
    }
    Ok(())
}

fn hint(suggestion: Option<String>) -> String {
    suggestion
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}

fn mount_type(value: &str) -> Result<MountType, MountError> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "bind" => MountType::Bind,
        "cache" => MountType::Cache,
        "tmpfs" => MountType::Tmpfs,
        "secret" => MountType::Secret,
        "ssh" => MountType::Ssh,
        _ => {
            let hint = hint(suggest(value, ["bind", "cache", "tmpfs", "secret", "ssh"]));
            return Err(format!("unsupported mount type {value:?}{hint}").into());
        }
    })
}

fn cache_sharing(value: &str) -> Result<pb::CacheSharing, MountError> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "shared" => pb::CacheSharing::Shared,
        "private" => pb::CacheSharing::Private,
        "locked" => pb::CacheSharing::Locked,
        _ => {
            let hint = hint(suggest(value, ["shared", "private", "locked"]));
            return Err(format!("unsupported sharing value {value:?}{hint}").into());
        }
    })
}

fn id_number(value: &str, key: &str) -> Result<u32, MountError> {
    value
        .parse()
        .map_err(|_| format!("invalid value {value} for {key}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<MountSpec, String> {
        parse_mount(spec, Some(&|w: &str| Ok(w.to_string()))).map_err(|e| match e {
            MountError::Invalid(message) => message,
            MountError::Expand(error) => panic!("nothing to expand, got {error}"),
        })
    }

    #[test]
    fn defaults_follow_buildkit() {
        let m = parse("target=/x").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, true));
        let m = parse("type=cache,target=/c").unwrap();
        assert!(!m.readonly);
        let m = parse("type=cache,target=/c,ro").unwrap();
        assert!(m.readonly);
        let m = parse("type=secret,id=tok,required").unwrap();
        assert!(m.required && m.readonly);
        let m = parse("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 * 1024 * 1024));
        let m = parse(r#"type=bind,"source=a,b",target=/x"#).unwrap();
        assert_eq!(m.source.as_deref(), Some("a,b"));
    }

    #[test]
    fn errors_match_buildkit() {
        assert_eq!(
            parse("typ=cache").unwrap_err(),
            "unexpected key 'typ' in 'typ=cache' (did you mean type?)"
        );
        assert_eq!(
            parse("type=cahce,target=/x").unwrap_err(),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            parse("type=bind,target=/x,mode=0644").unwrap_err(),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            parse("type=cache,target=/x,mode=999").unwrap_err(),
            "invalid value 999 for mode"
        );
        assert_eq!(
            parse("type=secret,from=x,id=a").unwrap_err(),
            "secret mount should not have a from"
        );
        assert_eq!(
            parse("type=secret").unwrap_err(),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            parse("type=bind,target=/x,sharing=locked").unwrap_err(),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            parse("type=bind,target=/x,required").unwrap_err(),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            parse("from=$X,target=/x").unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert!(parse("bogus").unwrap_err().contains("must be a key=value pair"));
        assert_eq!(parse("type=cache,uid=x").unwrap_err(), "invalid value x for uid");
    }
}
