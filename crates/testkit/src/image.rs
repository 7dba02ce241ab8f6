//! Deterministic fixture images: layers built in memory with the `tar` crate, gzip-compressed,
//! plus an OCI image config and manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Command;

use anyhow::{Context, bail};
use bytes::Bytes;
use oci::{Descriptor, Digest, History, ImageConfig, ImageManifest, Platform, media_type};

use crate::BUSYBOX;

/// The modification time of every entry and the creation time of every fixture image:
/// 2024-01-01T00:00:00Z. Fixed so that fixtures are byte-for-byte reproducible.
pub const FIXTURE_EPOCH: u64 = 1_704_067_200;
const FIXTURE_CREATED: &str = "2024-01-01T00:00:00Z";

/// What one layer entry is.
#[derive(Clone, Debug)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// A layer's filesystem contents, written as a tar with sorted entries, a fixed mtime
/// ([`FIXTURE_EPOCH`]) and empty user and group names, so the same contents always give the
/// same bytes.
///
/// Paths are relative to the image root (a leading `/` is ignored). Parent directories are not
/// added implicitly: add them with [`LayerBuilder::dir`] when their mode or owner matters.
/// Entries belong to root (0:0) unless [`LayerBuilder::chown`] says otherwise.
#[derive(Clone, Debug, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    /// Adds a directory with permission bits `mode` (e.g. `0o755`, `0o1777`).
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut LayerBuilder {
        self.insert(path, Kind::Dir, mode)
    }

    /// Adds a regular file with permission bits `mode`.
    pub fn file(&mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> &mut LayerBuilder {
        self.insert(path, Kind::File(contents.into()), mode)
    }

    /// Adds a symbolic link pointing at `target` (kept verbatim, relative or absolute).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut LayerBuilder {
        self.insert(path, Kind::Symlink(target.to_string()), 0o777)
    }

    /// Sets the owner of an entry added before; a path not added yet is ignored.
    pub fn chown(&mut self, path: &str, uid: u64, gid: u64) -> &mut LayerBuilder {
        if let Some(entry) = self.entries.get_mut(normalize(path)) {
            entry.uid = uid;
            entry.gid = gid;
        }
        self
    }

    fn insert(&mut self, path: &str, kind: Kind, mode: u32) -> &mut LayerBuilder {
        let entry = Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
        };
        self.entries.insert(normalize(path).to_string(), entry);
        self
    }

    /// The uncompressed layer tar. Entries are in path order, which puts every directory
    /// before its contents.
    pub fn tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mtime(FIXTURE_EPOCH);
            header.set_username("").context("set tar user name")?;
            header.set_groupname("").context("set tar group name")?;
            let result = match &entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Kind::File(contents) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(contents.len() as u64);
                    builder.append_data(&mut header, path, contents.as_slice())
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)
                }
            };
            result.with_context(|| format!("write tar entry {path}"))?;
        }
        builder.into_inner().context("finish layer tar")
    }
}

/// `/a/b/` and `a/b` name the same entry.
fn normalize(path: &str) -> &str {
    path.trim_matches('/')
}

/// A complete single-platform image, ready to push: blobs and the exact manifest bytes.
#[derive(Clone, Debug)]
pub struct FixtureImage {
    /// The gzip-compressed layers, base first, each with its descriptor.
    pub layers: Vec<(Descriptor, Bytes)>,
    /// The descriptor of [`FixtureImage::config`].
    pub config_descriptor: Descriptor,
    /// The image config JSON.
    pub config: Bytes,
    /// The OCI image manifest JSON.
    pub manifest: Bytes,
    /// The sha256 of [`FixtureImage::manifest`].
    pub manifest_digest: Digest,
}

impl FixtureImage {
    /// Assembles an image from `layers` (base first) and `config`, whose `rootfs.diff_ids` are
    /// replaced by the digests of the layers' tars. Layers are gzip-compressed at the default
    /// level with a header that carries no time or name, so the result is deterministic.
    pub fn new(mut config: ImageConfig, layers: &[LayerBuilder]) -> anyhow::Result<FixtureImage> {
        let mut blobs = Vec::new();
        config.rootfs.diff_ids.clear();
        for layer in layers {
            let tar = layer.tar()?;
            config.rootfs.diff_ids.push(Digest::of(&tar));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&tar).context("compress layer")?;
            let compressed = Bytes::from(gz.finish().context("compress layer")?);
            let descriptor = Descriptor::new(
                media_type::OCI_LAYER_GZIP,
                Digest::of(&compressed),
                compressed.len() as u64,
            );
            blobs.push((descriptor, compressed));
        }
        let config = Bytes::from(serde_json::to_vec(&config).context("encode image config")?);
        let config_descriptor =
            Descriptor::new(media_type::OCI_CONFIG, Digest::of(&config), config.len() as u64);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_string()),
            config: config_descriptor.clone(),
            layers: blobs.iter().map(|(d, _)| d.clone()).collect(),
            annotations: BTreeMap::new(),
        };
        let manifest = Bytes::from(serde_json::to_vec(&manifest).context("encode image manifest")?);
        Ok(FixtureImage {
            layers: blobs,
            config_descriptor,
            config,
            manifest_digest: Digest::of(&manifest),
            manifest,
        })
    }
}

/// An image config for the host platform with the usual `PATH`, `Cmd ["/bin/sh"]` and one
/// history entry per layer (`created_by` names each); `rootfs` is filled in by
/// [`FixtureImage::new`].
pub fn base_config(created_by: &[&str]) -> ImageConfig {
    let platform = Platform::host();
    let mut config = ImageConfig {
        created: Some(FIXTURE_CREATED.to_string()),
        architecture: platform.architecture,
        os: platform.os,
        variant: platform.variant,
        ..ImageConfig::default()
    };
    config.config.env = Some(vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    ]);
    config.config.cmd = Some(vec!["/bin/sh".to_string()]);
    config.history = created_by
        .iter()
        .map(|step| History {
            created: Some(FIXTURE_CREATED.to_string()),
            created_by: Some(step.to_string()),
            ..History::default()
        })
        .collect();
    config
}

/// The contents of the busybox base image: `/bin/busybox` with a symlink per applet in `/bin`,
/// users root, nobody and app (1000:1000, home `/home/app`), and the usual top-level
/// directories.
pub fn busybox_layer() -> anyhow::Result<LayerBuilder> {
    let binary = std::fs::read(BUSYBOX).with_context(|| format!("read {BUSYBOX}"))?;
    let output = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .with_context(|| format!("run {BUSYBOX} --list"))?;
    if !output.status.success() {
        bail!("{BUSYBOX} --list failed: {}", output.status);
    }
    let list = String::from_utf8(output.stdout).context("busybox --list printed non-utf-8")?;
    // Sorted and deduplicated: the layer must not depend on the order busybox prints.
    let applets: BTreeSet<&str> = list
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .collect();

    let mut layer = LayerBuilder::new();
    for dir in ["bin", "dev", "etc", "home", "proc", "sys", "usr", "var"] {
        layer.dir(dir, 0o755);
    }
    layer.dir("root", 0o700).dir("tmp", 0o1777);
    layer.dir("home/app", 0o755).chown("home/app", 1000, 1000);
    layer.file("bin/busybox", 0o755, binary);
    for applet in applets {
        layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    layer.file(
        "etc/passwd",
        0o644,
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
         app:x:1000:1000::/home/app:/bin/sh\n",
    );
    layer.file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n");
    Ok(layer)
}

/// Builds the busybox base image: one gzip layer from [`busybox_layer`] and a config with
/// `PATH`, `Cmd ["/bin/sh"]` and one history entry. Deterministic: the same busybox binary
/// always yields the same manifest digest.
pub fn busybox_image() -> anyhow::Result<FixtureImage> {
    let config = base_config(&["testkit: busybox-static from /bin/busybox"]);
    FixtureImage::new(config, &[busybox_layer()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_sorted_owned_and_timestamped() {
        let mut layer = LayerBuilder::new();
        layer
            .file("/b/file", 0o600, "x")
            .dir("b/", 0o750)
            .symlink("a", "b/file")
            .chown("b/file", 7, 8);
        let tar = layer.tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let seen: Vec<(String, u32, u64, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), 0o777, 0, 0, FIXTURE_EPOCH),
                ("b/".to_string(), 0o750, 0, 0, FIXTURE_EPOCH),
                ("b/file".to_string(), 0o600, 7, 8, FIXTURE_EPOCH),
            ]
        );
        assert_eq!(tar, layer.tar().unwrap(), "same contents, same bytes");
    }

    #[test]
    fn image_records_diff_ids_and_layers() {
        let mut layer = LayerBuilder::new();
        layer.file("hello", 0o644, "hi\n");
        let image = FixtureImage::new(base_config(&["one"]), &[layer.clone()]).unwrap();
        let config: ImageConfig = serde_json::from_slice(&image.config).unwrap();
        assert_eq!(config.rootfs.diff_ids, vec![Digest::of(&layer.tar().unwrap())]);
        let manifest: ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
        assert_eq!(manifest.config, image.config_descriptor);
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.layers[0], image.layers[0].0);
        assert_eq!(image.manifest_digest, Digest::of(&image.manifest));
    }
}
