//! Requests checked and turned into the engine's types, and the engine's answers into
//! messages. Everything a client sends is untrusted: every value is checked here, once.

use std::path::PathBuf;

use api::pb;
use engine::{
    BuildRequest, CacheBackend, CacheExport, CacheMode, Compression, DiskUsage, Entitlement, ImageFormat,
    PruneReport, S3Location, UsageRecord,
};
use tonic::Status;

fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// Where the daemon's copy of a client's local directory is, by its name.
pub type CopyOf<'a> = &'a dyn Fn(&str) -> Option<PathBuf>;

/// The engine request of `start`, without what the session supplies (local directories,
/// outputs, secrets and credentials). Builds that name no cache get the daemon's defaults;
/// `type=local` caches use the copies (`copy_of`) of the client's directories.
pub fn request(
    start: &pb::BuildStart,
    default_from: &[CacheBackend],
    default_to: &[CacheExport],
    copy_of: CopyOf<'_>,
) -> Result<BuildRequest, Status> {
    if start.ssh.len() > 64 || start.ssh.iter().any(|id| id.is_empty() || id.len() > 256) {
        return Err(invalid("invalid --ssh ids"));
    }
    let mut request = BuildRequest {
        target: start.target.clone(),
        build_args: start.build_args.clone(),
        no_cache: start.no_cache,
        no_cache_filter: start.no_cache_filter.iter().cloned().collect(),
        shm_size: start.shm_size.max(0),
        labels: start.labels.clone(),
        context_excludes: Some(start.context_excludes.clone()),
        client_context: Some(start.context_display.clone()).filter(|c| !c.is_empty()),
        ..BuildRequest::default()
    };
    if start.git_context.is_empty() {
        request.dockerfile_text = Some(start.dockerfile_text.clone());
    } else {
        request.git_context = Some(
            engine::parse_git_context(&start.git_context)
                .map_err(|e| invalid(format!("invalid git context {:?}: {e}", start.git_context)))?,
        );
    }
    if !start.dockerfile_name.is_empty() {
        let name = PathBuf::from(&start.dockerfile_name);
        if start.git_context.is_empty() && name.components().count() != 1 {
            return Err(invalid("the Dockerfile name must be a plain file name"));
        }
        request.dockerfile = Some(name);
    }
    for (name, value) in &start.named_images {
        // `oci-layout://` contexts get their directory once it is received (see `session`).
        if value.starts_with("oci-layout://") {
            continue;
        }
        if !value.starts_with("docker-image://") {
            return Err(Status::unimplemented(format!(
                "build context {name}={value} is not supported through a daemon yet: use a directory, docker-image://REF or oci-layout://DIR"
            )));
        }
        request.named_contexts.insert(name.clone(), value.clone());
    }
    for name in &start.entitlements {
        let e = Entitlement::parse(name).ok_or_else(|| invalid(format!("unknown entitlement {name:?}")))?;
        request.entitlements.insert(e);
    }
    for host in &start.extra_hosts {
        let ip = host
            .ip
            .parse()
            .map_err(|_| invalid(format!("invalid --add-host IP {:?}", host.ip)))?;
        request.extra_hosts.push((host.host.clone(), ip));
    }
    request.default_network = llb::pb::NetMode::try_from(start.default_network)
        .map_err(|_| invalid(format!("unknown network mode {}", start.default_network)))?;
    request.ulimits = start
        .ulimits
        .iter()
        .map(|u| llb::pb::Ulimit {
            name: u.name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    request.cache_from = start
        .cache_from
        .iter()
        .map(|b| backend(b, copy_of))
        .collect::<Result<_, _>>()?;
    request.cache_to = start
        .cache_to
        .iter()
        .map(|e| export(e, copy_of))
        .collect::<Result<_, _>>()?;
    if request.cache_from.is_empty() {
        request.cache_from = default_from.to_vec();
    }
    if request.cache_to.is_empty() {
        request.cache_to = default_to.to_vec();
    }
    Ok(request)
}

fn backend(b: &pb::CacheBackend, copy_of: CopyOf<'_>) -> Result<CacheBackend, Status> {
    Ok(match &b.backend {
        Some(pb::cache_backend::Backend::Local(local)) => CacheBackend::Local {
            dir: copy_of(&local.local).ok_or_else(|| {
                invalid(format!(
                    "a type=local cache names an unknown directory {:?}",
                    local.local
                ))
            })?,
            tag: if local.tag.is_empty() {
                "latest".into()
            } else {
                local.tag.clone()
            },
        },
        Some(pb::cache_backend::Backend::Registry(reference)) => CacheBackend::Registry {
            reference: reference.clone(),
        },
        Some(pb::cache_backend::Backend::Inline(_)) => CacheBackend::Inline,
        Some(pb::cache_backend::Backend::S3(s)) => CacheBackend::S3(Box::new(S3Location {
            bucket: s.bucket.clone(),
            region: s.region.clone(),
            endpoint_url: s.endpoint_url.clone(),
            use_path_style: s.use_path_style,
            prefix: s.prefix.clone(),
            blobs_prefix: s.blobs_prefix.clone(),
            manifests_prefix: s.manifests_prefix.clone(),
            names: s.names.clone(),
            access_key_id: s.access_key_id.clone(),
            secret_access_key: s.secret_access_key.clone(),
            session_token: s.session_token.clone(),
        })),
        None => return Err(invalid("a cache names no backend")),
    })
}

fn export(e: &pb::CacheExport, copy_of: CopyOf<'_>) -> Result<CacheExport, Status> {
    let backend = backend(
        e.backend
            .as_ref()
            .ok_or_else(|| invalid("a cache export names no backend"))?,
        copy_of,
    )?;
    let format = image_format(e.format.as_ref())?;
    Ok(CacheExport {
        mode: if e.mode_max {
            CacheMode::Max
        } else {
            CacheMode::Min
        },
        ignore_error: e.ignore_error,
        image_manifest: e.image_manifest,
        oci_media_types: e.oci_media_types,
        compression: format.compression,
        compression_level: format.compression_level,
        force_compression: format.force_compression,
        cache_mounts: e.cache_mounts,
        ..CacheExport::new(backend)
    })
}

/// An output's image format.
pub fn image_format(f: Option<&pb::ImageFormat>) -> Result<ImageFormat, Status> {
    let Some(f) = f else {
        return Ok(ImageFormat::default());
    };
    let compression = match f.compression.as_str() {
        "" | "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        "uncompressed" => Compression::Uncompressed,
        other => return Err(invalid(format!("unknown compression {other:?}"))),
    };
    Ok(ImageFormat {
        compression,
        compression_level: f.compression_level,
        force_compression: f.force_compression,
        rewrite_timestamp: f.rewrite_timestamp,
        source_date_epoch: f.source_date_epoch,
    })
}

fn record(r: &UsageRecord) -> pb::UsageRecord {
    pb::UsageRecord {
        id: r.id.to_string(),
        parent: r.parent.map(|p| p.0),
        kind: r.kind.as_str().to_string(),
        description: r.description.clone(),
        size: r.size,
        created: r.created,
        last_used: r.last_used,
        usage_count: r.usage_count,
        in_use: r.in_use,
        shared: r.shared,
        blob: r.blob.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

/// `kiln du`'s answer.
pub fn usage_to_pb(u: &DiskUsage) -> pb::DiskUsageResponse {
    pb::DiskUsageResponse {
        records: u.records.iter().map(record).collect(),
        other_blobs: u.other.blobs,
        other_size: u.other.size,
        total: u.total,
        reclaimable: u.reclaimable,
        shared: u.shared,
        private: u.private,
    }
}

/// `kiln prune`'s answer.
pub fn prune_to_pb(r: &PruneReport) -> pb::PruneResponse {
    pb::PruneResponse {
        removed: r.removed.iter().map(record).collect(),
        blobs_removed: r.blobs_removed,
        blob_bytes: r.blob_bytes,
        other_blobs: r.other.blobs,
        other_size: r.other.size,
        reclaimed: r.reclaimed,
    }
}

/// One `kiln history` row.
pub fn history_to_pb(e: &engine::HistoryEntry) -> pb::HistoryEntry {
    pb::HistoryEntry {
        id: e.id.clone(),
        started: e.started.clone(),
        context: e.context.clone(),
        dockerfile: e.dockerfile.clone(),
        target: e.target.clone(),
        status: e.status.as_str().to_string(),
        duration_seconds: e.duration.unwrap_or(0.0),
        steps: e.steps,
        cached: e.cached,
        error: e.error.clone().unwrap_or_default(),
    }
}
