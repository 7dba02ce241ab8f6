//! Outputs of a build: the result written as an OCI or Docker tarball, a directory, a tar
//! stream, or pushed to a registry.
//!
//! Files are written next to their destination and renamed into place, so a failed build never
//! leaves a truncated output; a device or pipe (`/dev/null`, `-`) is written in place. Every
//! failure keeps its cause down to the OS error (a full disk says "No space left on device").

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci::ImageConfig;

use crate::progress::Step;
use crate::{BuildError, Destination, ExportedImage, ImageFormat, Inner, OutputSpec, Progress};

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Building or writing the image or files failed.
    #[error(transparent)]
    Exporter(#[from] exporter::Error),
    /// A destination file could not be made or written.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not be written.
    #[error("failed to write to standard output")]
    Stdout(#[source] std::io::Error),
    /// The client's stream of the output broke.
    #[error("failed to send the output to the client")]
    Stream(#[source] std::io::Error),
    /// An image name to push to is not a valid reference.
    #[error("invalid image name {name:?}")]
    Name {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        #[source]
        source: oci::ReferenceError,
    },
    /// A push without any name.
    #[error("pushing an image needs a name: add name=NAME to the output, or -t NAME")]
    NoName,
    /// Pushing to a registry failed.
    #[error("failed to push {name}")]
    Push {
        /// The image name, as people write it.
        name: String,
        /// Why.
        #[source]
        source: registry::Error,
    },
    /// Reading what was built failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The export's task failed.
    #[error("internal task failed")]
    Join(#[source] tokio::task::JoinError),
    /// Loading into a Docker daemon failed.
    #[error(transparent)]
    Load(#[from] crate::docker::LoadError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + use<> {
    let path = path.to_path_buf();
    move |source| ExportError::Io { action, path, source }
}

/// What every image output of a build shares: its inline cache and its `SOURCE_DATE_EPOCH`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ImageExtras {
    pub(crate) inline_cache: Option<String>,
    pub(crate) epoch: Option<i64>,
}

impl ImageExtras {
    /// The exporter options of an image output.
    fn options(
        &self,
        format: &ImageFormat,
        name: Option<String>,
        oci_media_types: Option<bool>,
    ) -> exporter::OciOptions {
        exporter::OciOptions {
            name,
            compression: format.compression,
            compression_level: format.compression_level,
            force_compression: format.force_compression,
            rewrite_timestamp: format.rewrite_timestamp,
            epoch: format.source_date_epoch.or(self.epoch),
            oci_media_types,
            inline_cache: self.inline_cache.clone(),
        }
    }
}

/// Writes one output; returns the image it wrote, if it is one.
pub(crate) async fn export(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    output: &OutputSpec,
    snapshot: Option<store::SnapshotId>,
    image: &ImageConfig,
    extras: &ImageExtras,
    progress: &Arc<dyn Progress>,
) -> Result<Option<ExportedImage>, BuildError> {
    if let OutputSpec::Registry { names, format } = output {
        let options = extras.options(format, None, None);
        return push(inner, registry, names, snapshot, image, options, progress)
            .await
            .map(Some)
            .map_err(|e| BuildError::Export(Box::new(e)));
    }
    let step = Step::start(progress, step_name(output));
    if let OutputSpec::Docker {
        dest: Destination::Daemon(host),
        ..
    } = output
    {
        let loaded = load(inner, output, host, snapshot, image, extras, &step).await;
        return step.finish(loaded).map_err(|e| BuildError::Export(Box::new(e)));
    }
    let (store, image, output) = (inner.store.clone(), image.clone(), output.clone());
    let extras = extras.clone();
    let result = tokio::task::spawn_blocking(move || {
        let source = exporter::Source {
            store: &store,
            result: snapshot,
            image: &image,
        };
        write(&source, &output, &extras)
    })
    .await
    .map_err(ExportError::Join)
    .and_then(|r| r);
    if let Ok((_, notes)) = &result {
        for note in notes {
            step.status(note.clone());
        }
    }
    step.finish(result)
        .map(|(image, _)| image)
        .map_err(|e| BuildError::Export(Box::new(e)))
}

/// Writes a `type=docker` output into a temporary file (removed afterwards) and loads it into
/// the daemon at `host`.
async fn load(
    inner: &Arc<Inner>,
    output: &OutputSpec,
    host: &str,
    snapshot: Option<store::SnapshotId>,
    image: &ImageConfig,
    extras: &ImageExtras,
    step: &Step,
) -> Result<Option<ExportedImage>, ExportError> {
    let temp = tempfile::Builder::new()
        .prefix("kiln-load-")
        .tempdir()
        .map_err(io("create a temporary directory in", &std::env::temp_dir()))?;
    let tar = temp.path().join("image.tar");
    let mut to_file = output.clone();
    if let OutputSpec::Docker { dest, .. } = &mut to_file {
        *dest = Destination::File(tar.clone());
    }
    let (store, image, extras) = (inner.store.clone(), image.clone(), extras.clone());
    let (written, notes) = tokio::task::spawn_blocking(move || {
        let source = exporter::Source {
            store: &store,
            result: snapshot,
            image: &image,
        };
        write(&source, &to_file, &extras)
    })
    .await
    .map_err(ExportError::Join)??;
    for note in notes.iter().filter(|n| !n.starts_with("sending tarball")) {
        step.status(note.clone());
    }
    step.status(format!("loading image to docker daemon at {host}"));
    for line in crate::docker::load(host, &tar).await? {
        step.status(line);
    }
    Ok(written)
}

/// The progress name of writing `output`, as BuildKit's exporters name it.
fn step_name(output: &OutputSpec) -> &'static str {
    match output {
        OutputSpec::Oci { .. } => "exporting to oci image format",
        OutputSpec::Docker { .. } => "exporting to docker image format",
        OutputSpec::Local { .. } => "exporting to client directory",
        OutputSpec::Tar { .. } => "exporting to client tarball",
        OutputSpec::Registry { .. } => "exporting to image",
    }
}

/// Writes a file output (blocking); returns the image it wrote and the progress notes.
fn write(
    source: &exporter::Source<'_>,
    output: &OutputSpec,
    extras: &ImageExtras,
) -> Result<(Option<ExportedImage>, Vec<String>), ExportError> {
    let mut notes = Vec::new();
    let image = match output {
        OutputSpec::Oci {
            dest,
            name,
            oci_media_types,
            format,
        } => {
            let options = extras.options(format, name.clone(), *oci_media_types);
            let summary = with_destination(dest, |w| Ok(exporter::write_oci_tar(source, &options, w)?))?;
            notes.push(format!("exporting manifest {} done", summary.manifest.digest));
            notes.push(format!("exporting config {} done", summary.config.digest));
            notes.push("sending tarball done".into());
            Some(ExportedImage {
                manifest: summary.manifest,
                config: summary.config.digest,
                names: name.iter().cloned().collect(),
            })
        }
        OutputSpec::Docker {
            dest,
            names,
            oci_media_types,
            format,
        } => {
            let options = extras.options(format, names.first().cloned(), *oci_media_types);
            let summary = with_destination(dest, |w| {
                Ok(exporter::write_docker_tar(source, &options, names, w)?)
            })?;
            notes.push(format!("exporting manifest {} done", summary.manifest.digest));
            notes.push(format!("exporting config {} done", summary.config.digest));
            notes.extend(names.iter().map(|name| format!("naming to {name} done")));
            notes.push("sending tarball done".into());
            Some(ExportedImage {
                manifest: summary.manifest,
                config: summary.config.digest,
                names: names.clone(),
            })
        }
        OutputSpec::Local { dest } => {
            exporter::write_local(source, dest)?;
            notes.push("copying files done".into());
            None
        }
        OutputSpec::Tar { dest } => {
            with_destination(dest, |w| Ok(exporter::write_tar(source, w)?))?;
            notes.push("sending tarball done".into());
            None
        }
        // Pushed by `push`, never written.
        OutputSpec::Registry { .. } => None,
    };
    Ok((image, notes))
}

/// Builds the image (its blobs in the content store, as for an OCI tarball) and pushes it to
/// every name: layers and config first (blobs the repository has already are skipped), then the
/// manifest under the name's tag.
async fn push(
    inner: &Arc<Inner>,
    registry: &registry::Client,
    names: &[String],
    snapshot: Option<store::SnapshotId>,
    image: &ImageConfig,
    options: exporter::OciOptions,
    progress: &Arc<dyn Progress>,
) -> Result<ExportedImage, ExportError> {
    let step = Step::start(progress, "exporting to image");
    let result = async {
        let references = names
            .iter()
            .map(|name| {
                oci::Reference::parse(name).map_err(|source| ExportError::Name {
                    name: name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if references.is_empty() {
            return Err(ExportError::NoName);
        }
        let (store, config) = (inner.store.clone(), image.clone());
        let summary = tokio::task::spawn_blocking(move || {
            let source = exporter::Source {
                store: &store,
                result: snapshot,
                image: &config,
            };
            exporter::build_image(&source, &options)
        })
        .await
        .map_err(ExportError::Join)??;
        step.status("exporting layers done");
        step.status(format!("exporting manifest {} done", summary.manifest.digest));
        step.status(format!("exporting config {} done", summary.config.digest));
        let content = inner.store.content();
        let manifest_path = content.path(&summary.manifest.digest);
        let manifest = bytes::Bytes::from(std::fs::read(&manifest_path).map_err(io("read", &manifest_path))?);
        for reference in &references {
            let shown = reference.familiar();
            step.status(format!("naming to {shown} done"));
            let failed = |source| ExportError::Push {
                name: shown.clone(),
                source,
            };
            for blob in summary.layers.iter().chain([&summary.config]) {
                let body = registry::BlobBody::File(content.path(&blob.digest));
                registry.push_blob(reference, blob, body).await.map_err(failed)?;
            }
            step.status(format!("pushing layers for {shown} done"));
            let digest = registry
                .push_manifest(reference, &summary.manifest.media_type, manifest.clone())
                .await
                .map_err(failed)?;
            step.status(format!("pushing manifest for {shown}@{digest} done"));
        }
        Ok(ExportedImage {
            manifest: summary.manifest,
            config: summary.config.digest,
            names: names.to_vec(),
        })
    }
    .await;
    step.finish(result)
}

/// Runs `write` on the destination: standard output, a device or pipe in place, or a regular
/// file through a temporary file renamed into place once complete and synced.
fn with_destination<T>(
    dest: &Destination,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    match dest {
        Destination::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let value = write(&mut lock)?;
            lock.flush().map_err(ExportError::Stdout)?;
            Ok(value)
        }
        // A device or pipe (e.g. /dev/null) is written in place; it must never be replaced.
        Destination::File(path) if path.metadata().is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io("open", path))?;
            let mut buffered = std::io::BufWriter::new(file);
            let value = write(&mut buffered)?;
            buffered.flush().map_err(io("write", path))?;
            Ok(value)
        }
        Destination::File(path) => write_file(path, write),
        Destination::Stream(sink) => {
            let mut writer = sink.0.open();
            let value = write(&mut writer)?;
            writer.finish().map_err(ExportError::Stream)?;
            Ok(value)
        }
        // Loaded by `load`, which writes a file first.
        Destination::Daemon(host) => Err(ExportError::Load(crate::docker::LoadError::Host {
            host: host.clone(),
        })),
    }
}

/// Writes a regular file next to its destination and renames it into place, so a failed build
/// never leaves a truncated output behind.
fn write_file<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.kiln-tmp"));
    let file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    let mut buffered = std::io::BufWriter::new(file);
    let result = write(&mut buffered).and_then(|value| {
        let file = buffered.into_inner().map_err(|e| ExportError::Io {
            action: "write",
            path: tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io("write", &tmp))?;
        Ok(value)
    });
    match result {
        Ok(value) => {
            store::fault::point("export.before-rename");
            std::fs::rename(&tmp, path).map_err(io("write", path))?;
            Ok(value)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
