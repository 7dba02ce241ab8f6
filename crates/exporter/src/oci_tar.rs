//! The OCI exporter: an OCI image-layout tarball (`oci-layout`, `index.json`, `blobs/sha256/*`),
//! and the Docker exporter: the same tarball plus the `manifest.json` that `docker load` reads
//! (as BuildKit's docker exporter and `docker save` since Docker 25 write it). Their only other
//! difference is the default media types, BuildKit's: OCI for the first, Docker's schema 2 for
//! the second (`oci-mediatypes=true|false` chooses).
//!
//! The tarball is deterministic: entries come in a fixed order (`oci-layout`, `index.json`,
//! `blobs/`, `blobs/sha256/`, then the blobs sorted by digest, each once), with ustar headers,
//! mtime 0, uid and gid 0, no user or group names, and modes 0644 (files) and 0755 (dirs).
//! Blobs are streamed from the content store and checked against their digest on the way.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use oci::{Descriptor, Digest, ImageIndex, Reference, media_type};
use sha2::Digest as _;
use tar::{EntryType, Header};

use crate::image::assemble;
use crate::{Error, ImageSummary, OciOptions, Source};

/// Content of the `oci-layout` file.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Index annotation with the full image name, read by containerd's importer.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Index annotation with the tag, read by OCI tools (`skopeo`, `umoci`: `dir:tag`).
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Builds the image ([`build_image`](crate::build_image)) and writes it to `out` as an OCI
/// image-layout tarball, with OCI media types unless `options.oci_media_types` is
/// `Some(false)` (Docker's then, in the same layout, as BuildKit writes them).
///
/// With `options.name`, the index entry is annotated as BuildKit's OCI exporter does:
/// `io.containerd.image.name` holds the normalised name (`example.com/app:v1`,
/// `docker.io/library/app:latest`) and `org.opencontainers.image.ref.name` its tag. An invalid
/// name is refused before anything is computed or written.
pub fn write_oci_tar(
    source: &Source<'_>,
    options: &OciOptions,
    out: impl Write,
) -> Result<ImageSummary, Error> {
    let oci = options.oci_media_types.unwrap_or(true);
    write_layout_tar(source, options, oci, None, out)
}

/// Like [`write_oci_tar`], plus a `manifest.json` for `docker load`: the config and layer blob
/// paths, and `repo_tags` (each normalised and written in Docker's short form, `app:v1`) as the
/// names to tag the image with. An invalid name is refused before anything is written.
///
/// The image has Docker media types (schema 2 manifest, `container.image.v1` config,
/// `rootfs.diff.tar.gzip` layers) unless `options.oci_media_types` is `Some(true)`, as
/// BuildKit's docker exporter defaults to.
pub fn write_docker_tar(
    source: &Source<'_>,
    options: &OciOptions,
    repo_tags: &[String],
    out: impl Write,
) -> Result<ImageSummary, Error> {
    let tags = repo_tags
        .iter()
        .map(|name| {
            let reference = Reference::parse(name).map_err(|source| Error::InvalidName {
                name: name.clone(),
                source,
            })?;
            Ok(reference.familiar())
        })
        .collect::<Result<Vec<String>, Error>>()?;
    let oci = options.oci_media_types.unwrap_or(false);
    write_layout_tar(source, options, oci, Some(tags), out)
}

/// Writes the layout tarball of the image with OCI media types when `oci` (else Docker's); with
/// `docker_tags`, also `manifest.json` naming those tags.
fn write_layout_tar(
    source: &Source<'_>,
    options: &OciOptions,
    oci: bool,
    docker_tags: Option<Vec<String>>,
    out: impl Write,
) -> Result<ImageSummary, Error> {
    let name = match &options.name {
        Some(name) => Some(Reference::parse(name).map_err(|source| Error::InvalidName {
            name: name.clone(),
            source,
        })?),
        None => None,
    };
    let summary = assemble(source, options, oci)?;

    let mut entry = summary.manifest.clone();
    if let Some(name) = &name {
        entry
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.into(), name.to_string());
        if let Some(tag) = name.tag() {
            entry.annotations.insert(ANNOTATION_REF_NAME.into(), tag.into());
        }
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: vec![entry],
        annotations: BTreeMap::new(),
    };
    let index = serde_json::to_vec(&index).map_err(|source| Error::Encode {
        what: "index",
        source,
    })?;

    let mut tar = tar::Builder::new(out);
    append(
        &mut tar,
        "oci-layout",
        EntryType::Regular,
        OCI_LAYOUT.len() as u64,
        OCI_LAYOUT,
    )?;
    append(
        &mut tar,
        "index.json",
        EntryType::Regular,
        index.len() as u64,
        index.as_slice(),
    )?;
    if let Some(tags) = docker_tags {
        let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let manifest = serde_json::json!([{
            "Config": path(&summary.config.digest),
            "RepoTags": tags,
            "Layers": summary.layers.iter().map(|l| path(&l.digest)).collect::<Vec<_>>(),
        }]);
        let manifest = serde_json::to_vec(&manifest).map_err(|source| Error::Encode {
            what: "docker manifest",
            source,
        })?;
        append(
            &mut tar,
            "manifest.json",
            EntryType::Regular,
            manifest.len() as u64,
            manifest.as_slice(),
        )?;
    }
    append(&mut tar, "blobs/", EntryType::Directory, 0, io::empty())?;
    append(&mut tar, "blobs/sha256/", EntryType::Directory, 0, io::empty())?;
    // A layer may occur twice in one image; the layout stores each blob once.
    let blobs: BTreeMap<&Digest, &Descriptor> = [&summary.config, &summary.manifest]
        .into_iter()
        .chain(&summary.layers)
        .map(|d| (&d.digest, d))
        .collect();
    for descriptor in blobs.values() {
        append_blob(&mut tar, source, descriptor)?;
        store::fault::point("export.blob");
    }
    let mut out = tar.into_inner().map_err(|source| Error::Output {
        entry: "the end of the archive".into(),
        source,
    })?;
    out.flush().map_err(|source| Error::Output {
        entry: "the end of the archive".into(),
        source,
    })?;
    Ok(summary)
}

/// Appends one entry with the fixed metadata of the layout tarball.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    kind: EntryType,
    size: u64,
    data: impl Read,
) -> Result<(), Error> {
    let output = |source| Error::Output {
        entry: path.to_string(),
        source,
    };
    let mut header = Header::new_ustar();
    header.set_path(path).map_err(output)?;
    header.set_entry_type(kind);
    header.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_cksum();
    tar.append(&header, data).map_err(output)
}

/// Streams one blob from the content store into the tarball, verifying size and digest.
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    source: &Source<'_>,
    descriptor: &Descriptor,
) -> Result<(), Error> {
    let digest = &descriptor.digest;
    let path = format!("blobs/sha256/{}", digest.hex());
    let corrupt = |reason: String| Error::CorruptBlob {
        digest: digest.clone(),
        reason,
    };
    let read = |source| Error::ReadBlob {
        digest: digest.clone(),
        source,
    };
    let size = source.store.content().size(digest).map_err(read)?;
    if size != descriptor.size {
        return Err(corrupt(format!("size is {size}, expected {}", descriptor.size)));
    }
    let file = source.store.content().open_blob(digest).map_err(read)?;
    // The size was checked above, but the file is read once more here: a blob that changed in
    // between must not produce a tar entry of the wrong length.
    let mut reader = Verify {
        inner: file.take(size),
        hasher: sha2::Sha256::new(),
        read: 0,
    };
    append(tar, &path, EntryType::Regular, size, &mut reader)?;
    let actual = Digest::from_sha256(reader.hasher.finalize().into());
    if reader.read != size || &actual != digest {
        return Err(corrupt(format!(
            "read {} bytes with digest {actual}",
            reader.read
        )));
    }
    Ok(())
}

/// Hashes and counts what is read through it.
struct Verify<R> {
    inner: R,
    hasher: sha2::Sha256,
    read: u64,
}

impl<R: Read> Read for Verify<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
