//! The client's conversions between the engine's types and the control API's messages.

use api::pb;
use engine::{CacheBackend, CacheExport, CacheMode, Compression, Destination, ImageFormat, OutputSpec};

use crate::render::{CliError, RemoteFailure};

fn format(f: &ImageFormat) -> pb::ImageFormat {
    pb::ImageFormat {
        compression: match f.compression {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Uncompressed => "uncompressed",
        }
        .to_string(),
        compression_level: f.compression_level,
        force_compression: f.force_compression,
        rewrite_timestamp: f.rewrite_timestamp,
        source_date_epoch: f.source_date_epoch,
    }
}

/// An output as the daemon takes it: everything but pushes is written here.
pub(crate) fn output(o: &OutputSpec) -> pb::Output {
    use pb::output::Kind;
    let (kind, names, oci_media_types, f) = match o {
        OutputSpec::Local { .. } => (Kind::Local, Vec::new(), None, None),
        OutputSpec::Tar { .. } => (Kind::Tar, Vec::new(), None, None),
        OutputSpec::Oci {
            name,
            oci_media_types,
            format,
            ..
        } => (
            Kind::Oci,
            name.iter().cloned().collect(),
            *oci_media_types,
            Some(format),
        ),
        OutputSpec::Docker {
            names,
            oci_media_types,
            format,
            ..
        } => (Kind::Docker, names.clone(), *oci_media_types, Some(format)),
        OutputSpec::Registry { names, format } => (Kind::Registry, names.clone(), None, Some(format)),
    };
    pb::Output {
        kind: kind as i32,
        names,
        oci_media_types,
        format: f.map(format),
        // Set when the stream is opened on a daemon of this machine.
        fd_token: String::new(),
    }
}

/// Where the bytes of output `o` go on this side (`None`: nowhere, the daemon pushes).
pub(crate) enum Target {
    /// A file (or a device, written in place).
    File(std::path::PathBuf),
    /// Standard output.
    Stdout,
    /// A directory: the bytes are a tar of the result, unpacked there.
    Directory(std::path::PathBuf),
    /// A Docker daemon's address: the bytes are a `docker load` tarball.
    Docker(String),
}

/// Where output `o` is written on this side.
pub(crate) fn target(o: &OutputSpec) -> Option<Target> {
    let dest = match o {
        OutputSpec::Local { dest } => return Some(Target::Directory(dest.clone())),
        OutputSpec::Registry { .. } => return None,
        OutputSpec::Tar { dest } | OutputSpec::Oci { dest, .. } | OutputSpec::Docker { dest, .. } => dest,
    };
    match dest {
        Destination::File(path) => Some(Target::File(path.clone())),
        Destination::Stdout => Some(Target::Stdout),
        Destination::Daemon(host) => Some(Target::Docker(host.clone())),
        Destination::Stream(_) => None,
    }
}

/// The client's directories of `type=local` caches, each sent once as the local directory
/// `cache-N` (N its index here), however many caches name it.
#[derive(Default)]
pub(crate) struct CacheDirs(pub(crate) Vec<std::path::PathBuf>);

impl CacheDirs {
    /// The local directory's name of cache directory `dir`.
    fn name(&mut self, dir: &std::path::Path) -> Result<String, String> {
        let dir = std::path::absolute(dir).map_err(|e| format!("cache directory {}: {e}", dir.display()))?;
        let index = match self.0.iter().position(|d| *d == dir) {
            Some(index) => index,
            None => {
                self.0.push(dir);
                self.0.len() - 1
            }
        };
        Ok(format!("cache-{index}"))
    }
}

/// A cache backend as the daemon takes it. A directory cache becomes one of the directories
/// the client sends (the daemon never reads a client path).
pub(crate) fn backend(b: &CacheBackend, dirs: &mut CacheDirs) -> Result<pb::CacheBackend, String> {
    use pb::cache_backend::Backend;
    let backend = match b {
        CacheBackend::Registry { reference } => Backend::Registry(reference.clone()),
        CacheBackend::Inline => Backend::Inline(true),
        CacheBackend::Local { dir, tag } => Backend::Local(pb::LocalCache {
            local: dirs.name(dir)?,
            tag: tag.clone(),
        }),
        CacheBackend::S3(s) => {
            // As buildx does: the client's AWS credentials travel with the request.
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            Backend::S3(pb::S3Location {
                bucket: s.bucket.clone(),
                region: s.region.clone(),
                endpoint_url: s.endpoint_url.clone(),
                use_path_style: s.use_path_style,
                prefix: s.prefix.clone(),
                blobs_prefix: s.blobs_prefix.clone(),
                manifests_prefix: s.manifests_prefix.clone(),
                names: s.names.clone(),
                access_key_id: s.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID")),
                secret_access_key: s
                    .secret_access_key
                    .clone()
                    .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
                session_token: s.session_token.clone().or_else(|| env("AWS_SESSION_TOKEN")),
            })
        }
    };
    Ok(pb::CacheBackend {
        backend: Some(backend),
    })
}

/// A cache export as the daemon takes it.
pub(crate) fn export(e: &CacheExport, dirs: &mut CacheDirs) -> Result<pb::CacheExport, String> {
    Ok(pb::CacheExport {
        backend: Some(backend(&e.backend, dirs)?),
        mode_max: e.mode == CacheMode::Max,
        ignore_error: e.ignore_error,
        image_manifest: e.image_manifest,
        oci_media_types: e.oci_media_types,
        format: Some(format(&ImageFormat {
            compression: e.compression,
            compression_level: e.compression_level,
            force_compression: e.force_compression,
            ..ImageFormat::default()
        })),
        cache_mounts: e.cache_mounts,
    })
}

/// The image a daemon's build exported.
pub(crate) fn exported_image(i: pb::Image) -> Result<engine::ExportedImage, CliError> {
    let bad = |what: &str| CliError::Failed(anyhow::anyhow!("the daemon answered an invalid {what}"));
    let manifest: oci::Descriptor =
        serde_json::from_str(&i.manifest_descriptor).map_err(|_| bad("descriptor"))?;
    Ok(engine::ExportedImage {
        manifest,
        config: i.config_digest.parse().map_err(|_| bad("config digest"))?,
        names: i.names,
    })
}

/// A failed build as the daemon reported it.
pub(crate) fn failure(f: pb::Failure) -> RemoteFailure {
    RemoteFailure {
        message: f.message,
        vertex: f.vertex,
        step: f.step,
        snippets: f
            .snippets
            .into_iter()
            .map(|s| engine::SourceSnippet {
                filename: s.filename,
                data: s.data,
                start_line: s.start_line as usize,
                end_line: s.end_line as usize,
            })
            .collect(),
        solve: f.solve,
    }
}
