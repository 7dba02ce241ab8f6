//! `--cache-from` and `--cache-to` values, parsed as buildx parses them (CSV fields, a value
//! without `=` being a registry reference), with every option of BuildKit's cache backends
//! known: what kiln implements works, the rest is refused as not supported yet. docs/cli.md
//! lists them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::{CacheBackend, CacheExport, CacheMode};

use crate::outputs::{bool_option, csv_fields};

/// BuildKit's S3 tuning options, which kiln does not have (yet).
const S3_TUNING: [&str; 5] = [
    "touch_refresh",
    "upload_parallelism",
    "retry_mode",
    "retry_max_attempts",
    "disable_accept_encoding",
];

/// The backends BuildKit has and kiln does not (yet).
const LATER: &[&str] = &["gha", "azblob"];

/// Splits a cache spec into its type and options; a bare value is `type=registry,ref=VALUE`.
/// `types` are the types the flag takes.
fn fields(flag: &str, spec: &str, types: &[&str]) -> Result<(String, BTreeMap<String, String>), String> {
    let mut options = BTreeMap::new();
    if !spec.contains('=') {
        options.insert("ref".to_string(), spec.to_string());
        return Ok(("registry".into(), options));
    }
    for field in csv_fields(spec)? {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("{flag}: invalid value {field:?} (expected KEY=VALUE)"))?;
        options.insert(key.trim().to_ascii_lowercase(), value.to_string());
    }
    let kind = options
        .remove("type")
        .ok_or_else(|| format!("{flag} {spec}: type is required (type=registry or type=local)"))?;
    let supported = types.join(", ");
    if LATER.contains(&kind.as_str()) {
        return Err(format!(
            "{flag} type={kind} is not supported yet (supported: {supported})"
        ));
    }
    if !types.contains(&kind.as_str()) {
        return Err(format!(
            "{flag}: unknown cache type {kind:?} (supported: {supported})"
        ));
    }
    Ok((kind, options))
}

/// The backend of a spec, taking its location options out of `options`.
fn backend(
    flag: &str,
    kind: &str,
    options: &mut BTreeMap<String, String>,
    dir_key: &str,
) -> Result<CacheBackend, String> {
    if kind == "inline" {
        return Ok(CacheBackend::Inline);
    }
    if kind == "s3" {
        return s3(flag, options);
    }
    if kind == "registry" {
        let reference = options
            .remove("ref")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("{flag} type=registry: ref= is required"))?;
        oci::Reference::parse(&reference)
            .map_err(|e| format!("{flag}: invalid cache reference {reference:?}: {e}"))?;
        return Ok(CacheBackend::Registry { reference });
    }
    let dir = options
        .remove(dir_key)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("{flag} type=local: {dir_key}= is required"))?;
    let tag = options.remove("tag").unwrap_or_else(|| "latest".into());
    if tag.is_empty() || tag.contains(['/', ':', '@']) {
        return Err(format!("{flag}: invalid tag {tag:?}"));
    }
    Ok(CacheBackend::Local {
        dir: PathBuf::from(dir),
        tag,
    })
}

/// The S3 location of `type=s3`: `bucket` (required), `region` (else `AWS_REGION`),
/// `endpoint_url`, `use_path_style`, `prefix`, `blobs_prefix`, `manifests_prefix`, `name`
/// (`;`-separated) and the credentials (else the `AWS_*` environment).
fn s3(flag: &str, options: &mut BTreeMap<String, String>) -> Result<CacheBackend, String> {
    let bucket = options
        .remove("bucket")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("{flag} type=s3: bucket= is required"))?;
    let region = options
        .remove("region")
        .or_else(|| std::env::var("AWS_REGION").ok())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("{flag} type=s3: region= is required (or AWS_REGION)"))?;
    let mut location = engine::S3Location::new(bucket, region);
    location.endpoint_url = options.remove("endpoint_url");
    if let Some(value) = options.remove("use_path_style") {
        location.use_path_style = bool_option("use_path_style", &value)?;
    }
    for (key, target) in [
        ("prefix", &mut location.prefix),
        ("blobs_prefix", &mut location.blobs_prefix),
        ("manifests_prefix", &mut location.manifests_prefix),
    ] {
        if let Some(value) = options.remove(key) {
            *target = value;
        }
    }
    if let Some(names) = options.remove("name") {
        location.names = names
            .split(';')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if location.names.is_empty() {
            return Err(format!("{flag} type=s3: name= names no manifest"));
        }
    }
    location.access_key_id = options.remove("access_key_id");
    location.secret_access_key = options.remove("secret_access_key");
    location.session_token = options.remove("session_token");
    Ok(CacheBackend::S3(Box::new(location)))
}

/// Refuses options left over: known ones kiln lacks are "not supported yet", others unknown.
fn check_rest(flag: &str, kind: &str, rest: &BTreeMap<String, String>, known: &[&str]) -> Result<(), String> {
    match rest.iter().next() {
        None => Ok(()),
        Some((key, value)) if known.contains(&key.as_str()) => Err(format!(
            "{flag} option {key}={value} (type={kind}) is not supported yet"
        )),
        Some((key, _)) => Err(format!("{flag}: unknown option {key:?} for type={kind}")),
    }
}

/// Parses one `--cache-from` value.
pub(crate) fn parse_cache_from(spec: &str) -> Result<CacheBackend, String> {
    let flag = "--cache-from";
    let (kind, mut options) = fields(flag, spec, &["registry", "local", "s3"])?;
    let backend = backend(flag, &kind, &mut options, "src")?;
    check_rest(
        flag,
        &kind,
        &options,
        &[
            "digest",
            S3_TUNING[0],
            S3_TUNING[1],
            S3_TUNING[2],
            S3_TUNING[3],
            S3_TUNING[4],
        ],
    )?;
    Ok(backend)
}

/// Parses one `--cache-to` value.
pub(crate) fn parse_cache_to(spec: &str) -> Result<CacheExport, String> {
    let flag = "--cache-to";
    let (kind, mut options) = fields(flag, spec, &["registry", "local", "inline", "s3"])?;
    let mut export = CacheExport::new(backend(flag, &kind, &mut options, "dest")?);
    if let Some(mode) = options.remove("mode") {
        export.mode = match mode.as_str() {
            "min" => CacheMode::Min,
            "max" => CacheMode::Max,
            other => return Err(format!("{flag}: invalid mode {other:?} (min or max)")),
        };
        if kind == "inline" && export.mode == CacheMode::Max {
            return Err(format!(
                "{flag}: type=inline holds only the image's own layers: mode=max needs type=registry or type=local"
            ));
        }
    }
    for (key, target) in [
        ("ignore-error", &mut export.ignore_error),
        ("cache-mounts", &mut export.cache_mounts),
        ("image-manifest", &mut export.image_manifest),
        ("oci-mediatypes", &mut export.oci_media_types),
    ] {
        if let Some(value) = options.remove(key) {
            *target = bool_option(key, &value)?;
        }
    }
    if export.cache_mounts && export.backend == CacheBackend::Inline {
        return Err(format!(
            "{flag}: cache-mounts=true needs a cache of its own (type=registry, local or s3), not type=inline"
        ));
    }
    if export.image_manifest && !export.oci_media_types {
        return Err(format!(
            "{flag}: oci-mediatypes=false cannot be used with image-manifest=true (set image-manifest=false)"
        ));
    }
    let format = crate::outputs::image_format(&mut options, flag)?;
    if format.rewrite_timestamp || format.source_date_epoch.is_some() {
        return Err(format!(
            "{flag}: rewrite-timestamp and source-date-epoch are options of image outputs"
        ));
    }
    if format.compression == engine::Compression::Zstd && export.backend == CacheBackend::Inline {
        return Err(format!(
            "{flag}: type=inline uses the image's layers: set compression on the image output"
        ));
    }
    export.compression = format.compression;
    export.compression_level = format.compression_level;
    export.force_compression = format.force_compression;
    check_rest(
        flag,
        &kind,
        &options,
        &[
            "reset",
            S3_TUNING[0],
            S3_TUNING[1],
            S3_TUNING[2],
            S3_TUNING[3],
            S3_TUNING[4],
        ],
    )?;
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_from_parses_like_buildx() {
        assert_eq!(
            parse_cache_from("localhost:5000/app:cache").unwrap(),
            CacheBackend::Registry {
                reference: "localhost:5000/app:cache".into()
            }
        );
        assert_eq!(
            parse_cache_from("type=registry,ref=example.com/a/b").unwrap(),
            CacheBackend::Registry {
                reference: "example.com/a/b".into()
            }
        );
        assert_eq!(
            parse_cache_from("type=local,src=/tmp/c,tag=v1").unwrap(),
            CacheBackend::Local {
                dir: "/tmp/c".into(),
                tag: "v1".into()
            }
        );
        assert!(
            parse_cache_from("type=local")
                .unwrap_err()
                .contains("src= is required")
        );
        match parse_cache_from(
            "type=s3,bucket=b,region=r,endpoint_url=http://127.0.0.1:1,use_path_style=true,name=a;b",
        )
        .unwrap()
        {
            CacheBackend::S3(location) => {
                assert_eq!(location.names, ["a", "b"]);
                assert!(location.use_path_style);
                assert_eq!(location.blobs_prefix, "blobs/");
            }
            other => panic!("{other:?}"),
        }
        let err = parse_cache_from("type=azblob,account_url=x").unwrap_err();
        assert!(err.contains("type=azblob is not supported yet"), "{err}");
        let err = parse_cache_from("type=registry,ref=a/b,color=red").unwrap_err();
        assert!(err.contains("unknown option \"color\""), "{err}");
        assert!(parse_cache_from("type=registry,ref=UPPER/case").is_err());
    }

    #[test]
    fn cache_to_options_work_or_are_refused() {
        let export = parse_cache_to("type=local,dest=/tmp/c,mode=max,ignore-error=true").unwrap();
        assert_eq!(export.mode, CacheMode::Max);
        assert!(export.ignore_error);
        assert!(export.image_manifest);
        let export = parse_cache_to(
            "type=registry,ref=r.example/c,image-manifest=false,oci-mediatypes=false,compression=uncompressed",
        )
        .unwrap();
        assert!(!export.image_manifest && !export.oci_media_types);
        assert_eq!(export.compression, engine::Compression::Uncompressed);
        assert_eq!(parse_cache_to("r.example/c").unwrap().mode, CacheMode::Min);
        assert_eq!(
            parse_cache_to("type=inline").unwrap().backend,
            CacheBackend::Inline
        );
        assert!(
            parse_cache_from("type=inline")
                .unwrap_err()
                .contains("unknown cache type")
        );
        for (spec, expected) in [
            (
                "type=local,dest=/d,compression=estargz",
                "compression=estargz is not supported yet",
            ),
            ("type=local,dest=/d,mode=all", "invalid mode"),
            ("type=inline,mode=max", "mode=max needs type=registry"),
            ("type=gha", "type=gha is not supported yet"),
            ("type=s3,region=r", "bucket= is required"),
            (
                "type=local,dest=/d,oci-mediatypes=false",
                "cannot be used with image-manifest=true",
            ),
            (
                "type=local,dest=/d,reset=true",
                "reset=true (type=local) is not supported yet",
            ),
        ] {
            let err = parse_cache_to(spec).unwrap_err();
            assert!(err.contains(expected), "{spec}: {err}");
        }
    }
}
