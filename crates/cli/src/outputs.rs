//! `--output` (`-o`) values, parsed the way buildx parses them, with every option of BuildKit's
//! exporters (image, registry, oci, docker, local, tar, cacheonly) known: the ones kiln
//! implements work, the others are refused as not supported yet, unless their value asks for what
//! kiln does anyway (`oci-mediatypes=true`, `unpack=false`, …). docs/cli.md lists them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use engine::{Compression, Destination, ImageFormat, OutputSpec};

/// Output types that write an image, and those that write the result's files.
const IMAGES: &[&str] = &["image", "registry", "oci", "docker"];
const REGISTRY: &[&str] = &["image", "registry"];
const FILES: &[&str] = &["local", "tar"];

/// What kiln does for an exporter option it does not implement.
#[derive(Clone, Copy)]
enum Kiln {
    /// A boolean option whose value kiln always has: that value is accepted.
    Bool(bool),
    /// An option with a value kiln always has: that value is accepted.
    Value(&'static str),
    /// Any value would ask for something kiln does not do.
    Never,
}

/// An exporter option of BuildKit (or buildx) that kiln does not implement.
struct Known {
    key: &'static str,
    types: &'static [&'static str],
    kiln: Kiln,
    /// What kiln does instead, for the refusal.
    why: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        key: "push-by-digest",
        types: REGISTRY,
        kiln: Kiln::Bool(false),
        why: "pushes go to named tags",
    },
    Known {
        key: "registry.insecure",
        types: REGISTRY,
        kiln: Kiln::Bool(false),
        why: "only loopback registries are reached over plain HTTP",
    },
    Known {
        key: "insecure",
        types: REGISTRY,
        kiln: Kiln::Bool(false),
        why: "only loopback registries are reached over plain HTTP",
    },
    Known {
        key: "unpack",
        types: REGISTRY,
        kiln: Kiln::Bool(false),
        why: "kiln has no image store to unpack into",
    },
    Known {
        key: "store",
        types: REGISTRY,
        kiln: Kiln::Bool(true),
        why: "kiln keeps no image store (as BuildKit's OCI worker, which ignores this)",
    },
    Known {
        key: "dangling-name-prefix",
        types: REGISTRY,
        kiln: Kiln::Never,
        why: "images are only named by name= or -t",
    },
    Known {
        key: "danging-name-empty-only",
        types: REGISTRY,
        kiln: Kiln::Never,
        why: "images are only named by name= or -t",
    },
    Known {
        key: "name-canonical",
        types: REGISTRY,
        kiln: Kiln::Bool(false),
        why: "images are only named by name= or -t",
    },
    Known {
        key: "oci-mediatypes",
        types: REGISTRY,
        kiln: Kiln::Bool(true),
        why: "pushed images use OCI media types",
    },
    Known {
        key: "oci-artifact",
        types: IMAGES,
        kiln: Kiln::Bool(false),
        why: "kiln writes no attestation manifests",
    },
    Known {
        key: "attestation-inline",
        types: IMAGES,
        kiln: Kiln::Never,
        why: "kiln writes no attestations",
    },
    Known {
        key: "attestation-prefix",
        types: FILES,
        kiln: Kiln::Never,
        why: "kiln writes no attestations",
    },
    Known {
        key: "prefer-nondist-layers",
        types: IMAGES,
        kiln: Kiln::Bool(false),
        why: "layers are always distributable",
    },
    Known {
        key: "source-date-epoch",
        types: FILES,
        kiln: Kiln::Never,
        why: "SOURCE_DATE_EPOCH is not applied to file outputs",
    },
    Known {
        key: "platform-split",
        types: FILES,
        kiln: Kiln::Bool(false),
        why: "kiln builds one platform",
    },
    Known {
        key: "mode",
        types: &["local"],
        kiln: Kiln::Value("copy"),
        why: "local outputs copy files and delete none",
    },
    Known {
        key: "context",
        types: &["docker"],
        kiln: Kiln::Never,
        why: "there is no Docker daemon to load into",
    },
];

/// Splits a value into fields as buildx does (CSV: `,` separates, a field may be quoted with
/// `"`, `""` inside quotes being one quote).
pub(crate) fn csv_fields(spec: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = spec.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("invalid value {spec:?}: unterminated quote")),
                }
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err(format!("invalid value {spec:?}: text after a closing quote"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!("invalid value {spec:?}: bare \" in a field"));
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

/// BuildKit's boolean options: empty means true.
pub(crate) fn bool_option(key: &str, value: &str) -> Result<bool, String> {
    if value.is_empty() {
        return Ok(true);
    }
    crate::parse::go_bool(value).map_err(|e| format!("non-bool value specified for {key}: {e}"))
}

/// Refuses what kiln cannot do among the options left after the ones it implements; a key no
/// exporter of this type knows is an error naming it.
fn check_rest(kind: &str, rest: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in rest {
        let unsupported =
            |why: &str| format!("output option {key}={value} (type={kind}) is not supported yet: {why}");
        if IMAGES.contains(&kind) && is_annotation(key) {
            return Err(unsupported("images carry no annotations"));
        }
        let Some(known) = KNOWN.iter().find(|k| k.key == key && k.types.contains(&kind)) else {
            return Err(format!("unknown option {key:?} for {kind} output"));
        };
        let accepted = match known.kiln {
            Kiln::Bool(b) => bool_option(key, value)? == b,
            Kiln::Value(v) => value == v,
            Kiln::Never => false,
        };
        if !accepted {
            return Err(unsupported(known.why));
        }
    }
    Ok(())
}

/// BuildKit's annotation options: `annotation[-TYPE][[PLATFORM]].KEY`.
fn is_annotation(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("annotation") else {
        return false;
    };
    let Some((prefix, name)) = rest.split_once('.') else {
        return false;
    };
    !name.is_empty() && (prefix.is_empty() || prefix.starts_with('-') || prefix.starts_with('['))
}

/// The image names of an image output: the `-t` tags when there are any (buildx replaces
/// `name=` with them), else `name=` (comma-separated); each must be a valid reference.
fn image_names(name: Option<&str>, tags: &[String]) -> Result<Vec<String>, String> {
    let names: Vec<String> = if tags.is_empty() {
        name.map(|n| n.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    } else {
        tags.to_vec()
    };
    for name in &names {
        oci::Reference::parse(name).map_err(|e| format!("invalid image name {name:?}: {e}"))?;
    }
    Ok(names)
}

/// Where a file output writes: `-` (the default) is standard output, refused when it is a
/// terminal (as buildx refuses); a directory is refused.
fn file_destination(kind: &str, dest: Option<String>) -> Result<Destination, String> {
    match dest.as_deref() {
        None | Some("-") => {
            if std::io::stdout().is_terminal() {
                return Err(format!(
                    "dest file is required for {kind} exporter. refusing to write to console"
                ));
            }
            Ok(Destination::Stdout)
        }
        Some(path) if Path::new(path).is_dir() => Err(format!("destination file {path} is a directory")),
        Some(path) => Ok(Destination::File(PathBuf::from(path))),
    }
}

/// Where a `local` output writes: a directory, never standard output.
fn local_destination(dest: Option<String>) -> Result<PathBuf, String> {
    match dest.as_deref() {
        None | Some("") => Err("dest is required for local exporter".into()),
        Some("-") => Err("dest cannot be stdout for local exporter".into()),
        Some(path) if Path::new(path).is_file() => Err(format!("destination directory {path} is a file")),
        Some(path) => Ok(PathBuf::from(path)),
    }
}

/// Parses one `--output` value; `None` for `type=cacheonly`. `tags` are the `-t` names.
pub(crate) fn parse_output(spec: &str, tags: &[String]) -> Result<Option<OutputSpec>, String> {
    let fields = csv_fields(spec)?;
    // A bare path (one field, not `type=…`) is a local directory, and `-` a tar on stdout.
    if fields.len() == 1 && fields[0] == spec && !spec.starts_with("type=") {
        return Ok(Some(if spec == "-" {
            OutputSpec::Tar {
                dest: file_destination("tar", None)?,
            }
        } else {
            OutputSpec::Local {
                dest: local_destination(Some(spec.to_string()))?,
            }
        }));
    }
    let mut rest = BTreeMap::new();
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("invalid value {field}"))?;
        rest.insert(key.trim().to_ascii_lowercase(), value.to_string());
    }
    let kind = rest.remove("type").ok_or("type is required for output")?;
    let output = output_of_type(&kind, &mut rest, tags)?;
    check_rest(&kind, &rest)?;
    Ok(output)
}

/// Builds the output of type `kind` from the options kiln implements, removing them from `rest`.
fn output_of_type(
    kind: &str,
    rest: &mut BTreeMap<String, String>,
    tags: &[String],
) -> Result<Option<OutputSpec>, String> {
    let output = match kind {
        "local" => OutputSpec::Local {
            dest: local_destination(rest.remove("dest"))?,
        },
        "tar" => OutputSpec::Tar {
            dest: file_destination(kind, rest.remove("dest"))?,
        },
        "oci" | "docker" => {
            if let Some(tar) = rest.remove("tar")
                && !bool_option("tar", &tar)?
            {
                return Err(format!(
                    "output option tar={tar} (type={kind}) is not supported yet: {kind} outputs are tarballs, not layout directories"
                ));
            }
            let dest = match rest.remove("dest") {
                // Loaded into the Docker daemon, as buildx's docker driver does.
                None if kind == "docker" => Destination::Daemon(
                    std::env::var("DOCKER_HOST")
                        .ok()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| engine::DEFAULT_DOCKER_HOST.to_string()),
                ),
                dest => file_destination(kind, dest)?,
            };
            let names = image_names(rest.remove("name").as_deref(), tags)?;
            // BuildKit's defaults: OCI types for oci, Docker's for docker.
            let oci_media_types = rest
                .remove("oci-mediatypes")
                .map(|value| bool_option("oci-mediatypes", &value))
                .transpose()?;
            let format = image_format(rest, "output")?;
            if kind == "docker" {
                OutputSpec::Docker {
                    dest,
                    names,
                    oci_media_types,
                    format,
                }
            } else if names.len() > 1 {
                return Err(format!(
                    "an oci output with several names ({}) is not supported yet: give one name",
                    names.join(", ")
                ));
            } else {
                OutputSpec::Oci {
                    dest,
                    name: names.into_iter().next(),
                    oci_media_types,
                    format,
                }
            }
        }
        "image" | "registry" => registry_output(kind, rest, tags)?,
        "cacheonly" => return Ok(None),
        other => {
            return Err(format!(
                "unknown output type {other:?} (supported: local, tar, oci, docker, image, registry, cacheonly)"
            ));
        }
    };
    Ok(Some(output))
}

/// `type=image,push=true` and `type=registry` (push implied).
fn registry_output(
    kind: &str,
    rest: &mut BTreeMap<String, String>,
    tags: &[String],
) -> Result<OutputSpec, String> {
    let push = match rest.remove("push") {
        None => kind == "registry",
        Some(value) => bool_option("push", &value)?,
    };
    if !push {
        return Err(
            "output type \"image\" without push=true is not supported yet: kiln has no local image store \
             (add push=true, or use type=oci)"
                .into(),
        );
    }
    let names = image_names(rest.remove("name").as_deref(), tags)?;
    if names.is_empty() {
        return Err(format!(
            "{kind} output needs an image name: add name=NAME, or -t NAME"
        ));
    }
    let format = image_format(rest, "output")?;
    Ok(OutputSpec::Registry { names, format })
}

/// The layer options of an image output (`compression`, `compression-level`,
/// `force-compression`, `rewrite-timestamp`, `source-date-epoch`), taken out of `rest`.
/// `what` names the flag in messages (`output`, `--cache-to`).
pub(crate) fn image_format(rest: &mut BTreeMap<String, String>, what: &str) -> Result<ImageFormat, String> {
    let mut format = ImageFormat::default();
    if let Some(compression) = rest.remove("compression") {
        format.compression = match compression.as_str() {
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            "uncompressed" => Compression::Uncompressed,
            "estargz" => return Err(format!("{what} option compression=estargz is not supported yet")),
            other => {
                return Err(format!(
                    "invalid compression {other:?} (gzip, zstd, uncompressed)"
                ));
            }
        };
    }
    if let Some(level) = rest.remove("compression-level") {
        let (low, high) = match format.compression {
            Compression::Zstd => (0, 22),
            _ => (0, 9),
        };
        let parsed = level
            .parse::<i32>()
            .ok()
            .filter(|l| (low..=high).contains(l))
            .ok_or_else(|| {
                format!("invalid compression-level {level:?}: {low} to {high} for this compression")
            })?;
        format.compression_level = Some(parsed);
    }
    if let Some(value) = rest.remove("force-compression") {
        format.force_compression = bool_option("force-compression", &value)?;
    }
    if let Some(value) = rest.remove("rewrite-timestamp") {
        format.rewrite_timestamp = bool_option("rewrite-timestamp", &value)?;
    }
    if let Some(value) = rest.remove("source-date-epoch") {
        let epoch = value
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("invalid source-date-epoch {value:?}: seconds since 1970-01-01"))?;
        format.source_date_epoch = Some(epoch);
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(
            parse_output("out", &[]).unwrap(),
            Some(OutputSpec::Local { dest: "out".into() })
        );
        assert_eq!(
            parse_output("type=oci,dest=a.tar,name=x:1", &[]).unwrap(),
            Some(OutputSpec::Oci {
                dest: Destination::File("a.tar".into()),
                name: Some("x:1".into()),
                oci_media_types: None,
                format: ImageFormat::default(),
            })
        );
        // As buildx does, -t names replace name=.
        assert_eq!(
            parse_output("type=oci,dest=a.tar,name=x:1", &["t:2".into()]).unwrap(),
            Some(OutputSpec::Oci {
                dest: Destination::File("a.tar".into()),
                name: Some("t:2".into()),
                oci_media_types: None,
                format: ImageFormat::default(),
            })
        );
        assert_eq!(parse_output("type=cacheonly", &[]).unwrap(), None);
        assert!(matches!(
            parse_output("type=docker", &[]).unwrap(),
            Some(OutputSpec::Docker {
                dest: Destination::Daemon(_),
                ..
            })
        ));
        assert_eq!(
            parse_output("type=docker,dest=x.tar", &["a:1".into(), "b:2".into()]).unwrap(),
            Some(OutputSpec::Docker {
                dest: Destination::File("x.tar".into()),
                names: vec!["a:1".into(), "b:2".into()],
                oci_media_types: None,
                format: ImageFormat::default(),
            })
        );
        assert_eq!(
            parse_output("type=docker,dest=x.tar,oci-mediatypes=true", &[]).unwrap(),
            Some(OutputSpec::Docker {
                dest: Destination::File("x.tar".into()),
                names: Vec::new(),
                oci_media_types: Some(true),
                format: ImageFormat::default(),
            })
        );
        assert!(
            parse_output("type=image,name=r/a:1", &[])
                .unwrap_err()
                .contains("not supported yet")
        );
        assert_eq!(
            parse_output("type=image,\"name=r/a:1,r/b:2\",push=true", &[]).unwrap(),
            Some(OutputSpec::Registry {
                names: vec!["r/a:1".into(), "r/b:2".into()],
                format: ImageFormat::default(),
            })
        );
        assert!(
            parse_output("type=registry", &[])
                .unwrap_err()
                .contains("needs an image name")
        );
        assert!(
            parse_output("type=registry,name=Bad", &[])
                .unwrap_err()
                .contains("invalid image name")
        );
        assert!(
            parse_output("type=local", &[])
                .unwrap_err()
                .contains("dest is required")
        );
        assert!(
            parse_output("type=local,dest=-", &[])
                .unwrap_err()
                .contains("cannot be stdout")
        );
        assert!(
            parse_output("type=weird", &[])
                .unwrap_err()
                .contains("unknown output type")
        );
        assert!(
            parse_output("dest=x", &[]).is_ok(),
            "a bare path, as buildx reads it"
        );
        assert!(parse_output("type=tar", &[]).is_ok() || std::io::stdout().is_terminal());
    }

    #[test]
    fn every_exporter_option_is_known() {
        let refused = |spec: &str| parse_output(spec, &[]).unwrap_err();
        let unsupported = [
            "type=registry,name=r/a,push-by-digest=true",
            "type=registry,name=r/a,registry.insecure=true",
            "type=registry,name=r/a,insecure=true",
            "type=registry,name=r/a,dangling-name-prefix=x",
            "type=registry,name=r/a,name-canonical=true",
            "type=registry,name=r/a,compression=estargz",
            "type=registry,name=r/a,oci-mediatypes=false",
            "type=oci,dest=a.tar,oci-artifact=true",
            "type=oci,dest=a.tar,annotation.org.opencontainers.image.title=x",
            "type=oci,dest=a.tar,annotation-manifest[linux/amd64].k=v",
            "type=oci,dest=a.tar,tar=false",
            "type=image,name=r/a,push=true,unpack=true",
            "type=docker,dest=a.tar,context=default",
            "type=local,dest=d,platform-split=true",
            "type=local,dest=d,mode=delete",
            "type=tar,dest=a.tar,source-date-epoch=0",
        ];
        for spec in unsupported {
            let err = refused(spec);
            assert!(err.contains("is not supported yet"), "{spec}: {err}");
        }
        let accepted = [
            "type=registry,name=r/a,unpack=false,store=true,oci-mediatypes=true,compression=gzip",
            "type=oci,dest=a.tar,force-compression=false,oci-artifact=false,tar=true",
            "type=registry,name=r/a,compression=zstd,compression-level=19,force-compression=true",
            "type=oci,dest=a.tar,rewrite-timestamp=true,source-date-epoch=0,compression=uncompressed",
            "type=local,dest=d,platform-split=false,mode=copy",
        ];
        for spec in accepted {
            assert!(parse_output(spec, &[]).is_ok(), "{spec}");
        }
        let err = refused("type=local,dest=d,bogus=1");
        assert!(err.contains("unknown option \"bogus\""), "{err}");
        let err = refused("type=local,dest=d,name=x");
        assert!(err.contains("unknown option \"name\""), "{err}");
        assert!(refused("type=registry,name=r/a,unpack=maybe").contains("non-bool"));
    }

    #[test]
    fn fields_may_be_quoted() {
        assert_eq!(csv_fields("a=1,\"b=2,3\"").unwrap(), vec!["a=1", "b=2,3"]);
        assert_eq!(csv_fields("\"a=\"\"q\"\"\"").unwrap(), vec!["a=\"q\""]);
        assert!(csv_fields("\"a=1").is_err());
    }
}
