//! Exporter tests. They run as root with overlayfs (snapshots are mounted), and use `skopeo` and
//! `umoci` to check that the OCI tarballs are readable by other tools.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use exporter::{
    Compression, Error, ImageSummary, OciOptions, Source, build_image, write_docker_tar, write_local,
    write_oci_tar, write_tar,
};
use oci::{
    ContainerConfig, Digest, History, ImageConfig, ImageIndex, ImageManifest, error_chain, media_type,
};
use rustix::fs::{self as rfs, CWD, FileType, Mode, XattrFlags};
use store::{SnapshotId, Store};

/// Modification time given to every entry of the base layer.
const BASE_MTIME: i64 = 1_600_000_000;

/// A store with three snapshots: a base layer, a layer deleting and modifying files, and a layer
/// that changes nothing.
struct Fixture {
    store: Store,
    base: SnapshotId,
    third: SnapshotId,
    image: ImageConfig,
    // Last, so the store (and its lock) is gone before the directory is removed.
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn source(&self, result: Option<SnapshotId>) -> Source<'_> {
        Source {
            store: &self.store,
            result,
            image: &self.image,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes the image of the third snapshot as an OCI tarball `image.tar`; its path and what
    /// was written.
    fn oci_tar(&self, options: &OciOptions) -> (PathBuf, ImageSummary) {
        let archive = self.path("image.tar");
        let file = File::create(&archive).unwrap();
        let summary = write_oci_tar(&self.source(Some(self.third)), options, file).unwrap();
        (archive, summary)
    }
}

fn write_file(path: &Path, content: &str, mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn build_base(root: &Path) {
    let p = |s: &str| root.join(s);
    for dir in ["bin", "etc", "home/user", "run", "tmp"] {
        fs::create_dir_all(p(dir)).unwrap();
    }
    write_file(&p("etc/hello"), "hello\n", 0o644);
    rfs::setxattr(p("etc/hello"), "user.kiln", b"yes", XattrFlags::empty()).unwrap();
    write_file(&p("etc/config"), "old\n", 0o644);
    write_file(&p("bin/tool"), "#!tool\n", 0o4755);
    fs::hard_link(p("bin/tool"), p("bin/tool-hardlink")).unwrap();
    write_file(&p("home/user/notes"), "notes\n", 0o600);
    chown(p("home/user/notes"), Some(1000), Some(1000)).unwrap();
    chown(p("home/user"), Some(1000), Some(1000)).unwrap();
    symlink("etc/hello", p("hello-link")).unwrap();
    rfs::mknodat(CWD, p("run/fifo"), FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    fs::set_permissions(p("run/fifo"), fs::Permissions::from_mode(0o644)).unwrap();
    write_file(&p("tmp/gone"), "bye\n", 0o644);
    fs::set_permissions(p("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    for path in [
        "etc/hello",
        "etc/config",
        "bin/tool",
        "home/user/notes",
        "hello-link",
        "run/fifo",
        "tmp/gone",
    ] {
        testkit::set_mtime(&p(path), BASE_MTIME);
    }
    for dir in ["bin", "etc", "home/user", "home", "run", "tmp"] {
        testkit::set_mtime(&p(dir), BASE_MTIME);
    }
}

fn fixture() -> Fixture {
    testkit::require_privileged();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("state"), || {}).unwrap();
    let active = store.prepare(None, "base layer").unwrap();
    build_base(active.mount().unwrap().path());
    let base = active.commit().unwrap().id;

    let active = store
        .prepare(Some(base), "RUN rm /tmp/gone && echo new > /etc/config")
        .unwrap();
    {
        // Through the overlay mount, so the deletion becomes a whiteout in the layer.
        let mount = active.mount().unwrap();
        fs::remove_file(mount.path().join("tmp/gone")).unwrap();
        fs::write(mount.path().join("etc/config"), "new\n").unwrap();
    }
    let second = active.commit().unwrap().id;

    let active = store.prepare(Some(second), "RUN true").unwrap();
    drop(active.mount().unwrap());
    let third = active.commit().unwrap().id;

    let step = |created_by: &str| History {
        created_by: Some(created_by.into()),
        ..History::default()
    };
    let image = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: ContainerConfig {
            env: Some(vec!["PATH=/bin".into()]),
            cmd: Some(vec!["/bin/tool".into()]),
            ..ContainerConfig::default()
        },
        history: vec![
            step("ADD base /"),
            step("RUN rm /tmp/gone && echo new > /etc/config"),
            step("RUN true"),
        ],
        ..ImageConfig::default()
    };
    Fixture {
        store,
        base,
        third,
        image,
        tmp,
    }
}

/// One line per entry below `root`: kind, mode, owner and content or link target.
fn describe(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            let (kind, body) = match FileType::from_raw_mode(md.mode()) {
                FileType::RegularFile => ("file", fs::read_to_string(&path).unwrap()),
                FileType::Symlink => ("symlink", fs::read_link(&path).unwrap().display().to_string()),
                FileType::Directory => ("dir", String::new()),
                FileType::Fifo => ("fifo", String::new()),
                other => panic!("unexpected {other:?} at {}", path.display()),
            };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(
                rel,
                format!(
                    "{kind} {:o} {}:{} {body:?}",
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid()
                ),
            );
            if kind == "dir" {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The same description, read from a tar; hard links are described as their target.
fn describe_tar(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in tar::Archive::new(bytes).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let path = path.trim_end_matches('/').to_string();
        let h = entry.header().clone();
        let link = || String::from_utf8(entry.link_name_bytes().unwrap().into_owned()).unwrap();
        let (kind, body) = match h.entry_type() {
            tar::EntryType::Link => {
                let target = out.get(&link()).cloned().unwrap();
                out.insert(path, target);
                continue;
            }
            tar::EntryType::Regular => ("file", String::new()),
            tar::EntryType::Symlink => ("symlink", link()),
            tar::EntryType::Directory => ("dir", String::new()),
            tar::EntryType::Fifo => ("fifo", String::new()),
            other => panic!("unexpected {other:?} at {path}"),
        };
        let body = if kind == "file" {
            let mut content = String::new();
            entry.read_to_string(&mut content).unwrap();
            content
        } else {
            body
        };
        let line = format!(
            "{kind} {:o} {}:{} {body:?}",
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap()
        );
        out.insert(path, line);
    }
    out
}

/// What the final filesystem looks like.
fn expected_tree() -> BTreeMap<String, String> {
    let tool = "file 4755 0:0 \"#!tool\\n\"";
    [
        ("bin", "dir 755 0:0 \"\""),
        ("bin/tool", tool),
        ("bin/tool-hardlink", tool),
        ("etc", "dir 755 0:0 \"\""),
        ("etc/config", "file 644 0:0 \"new\\n\""),
        ("etc/hello", "file 644 0:0 \"hello\\n\""),
        ("hello-link", "symlink 777 0:0 \"etc/hello\""),
        ("home", "dir 755 0:0 \"\""),
        ("home/user", "dir 755 1000:1000 \"\""),
        ("home/user/notes", "file 600 1000:1000 \"notes\\n\""),
        ("run", "dir 755 0:0 \"\""),
        ("run/fifo", "fifo 644 0:0 \"\""),
        ("tmp", "dir 1777 0:0 \"\""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// `date -u` formatting of Unix seconds, an independent check of the exporter's own.
fn rfc3339(secs: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Inode of every blob in the content store, by file name.
fn blob_inodes(store: &Store) -> BTreeMap<String, u64> {
    fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.metadata().unwrap().ino())
        })
        .collect()
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn image_has_aligned_layers_and_history() {
    let f = fixture();
    let content = f.store.content();
    let summary = build_image(&f.source(Some(f.third)), &OciOptions::default()).unwrap();

    let manifest_bytes = content.read(&summary.manifest.digest).unwrap();
    assert_eq!(summary.manifest.size, manifest_bytes.len() as u64);
    let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
    assert_eq!(manifest.config, summary.config);
    assert_eq!(manifest.layers, summary.layers);
    assert_eq!(summary.layers.len(), 2);

    let config_bytes = content.read(&summary.config.digest).unwrap();
    assert_eq!(Digest::of(&config_bytes), summary.config.digest);
    assert_eq!(summary.config.size, config_bytes.len() as u64);
    assert_eq!(summary.config.media_type, media_type::OCI_CONFIG);
    let config: ImageConfig = serde_json::from_slice(&config_bytes).unwrap();

    let empty: Vec<bool> = config.history.iter().map(|h| h.empty_layer).collect();
    assert_eq!(empty, [false, false, true]);
    let chain = f.store.chain(f.third).unwrap();
    for (h, snapshot) in config.history.iter().zip(&chain) {
        assert_eq!(h.created.as_deref(), Some(rfc3339(snapshot.created).as_str()));
    }
    assert_eq!(config.created, config.history[2].created);
    assert_eq!(config.config, f.image.config);

    assert_eq!(config.rootfs.diff_ids.len(), 2);
    for (layer, diff_id) in summary.layers.iter().zip(&config.rootfs.diff_ids) {
        assert_eq!(layer.media_type, media_type::OCI_LAYER_GZIP);
        let blob = content.read(&layer.digest).unwrap();
        assert_eq!(layer.size, blob.len() as u64);
        assert_eq!(&Digest::of(&gunzip(&blob)), diff_id);
    }
    // The second layer holds the whiteout of the deleted file and the modified file.
    let second = gunzip(&content.read(&summary.layers[1].digest).unwrap());
    let tree = describe_tar(&second);
    assert!(tree.contains_key("tmp/.wh.gone"), "{tree:?}");
    assert_eq!(tree["etc/config"], "file 644 0:0 \"new\\n\"");

    // Every layer's blob is recorded, the empty one too.
    for snapshot in f.store.chain(f.third).unwrap() {
        let blob = snapshot.blob.unwrap();
        assert_eq!(blob.empty, snapshot.id == f.third);
    }

    // A second export reuses everything: same digests, no blob written again.
    let inodes = blob_inodes(&f.store);
    let again = build_image(&f.source(Some(f.third)), &OciOptions::default()).unwrap();
    assert_eq!(again, summary);
    assert_eq!(blob_inodes(&f.store), inodes);

    // SOURCE_DATE_EPOCH replaces every time that came from the snapshots.
    let options = OciOptions {
        epoch: Some(1_700_000_000),
        ..OciOptions::default()
    };
    let pinned = build_image(&f.source(Some(f.third)), &options).unwrap();
    let config: ImageConfig = serde_json::from_slice(&content.read(&pinned.config.digest).unwrap()).unwrap();
    assert_eq!(config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    assert!(
        config
            .history
            .iter()
            .all(|h| h.created.as_deref() == Some("2023-11-14T22:13:20Z"))
    );
    assert_eq!(pinned.layers, summary.layers);
}

#[test]
fn uncompressed_layers_convert_both_ways() {
    let f = fixture();
    let content = f.store.content();
    let plain = OciOptions {
        compression: Compression::Uncompressed,
        ..OciOptions::default()
    };
    let first = build_image(&f.source(Some(f.third)), &plain).unwrap();
    let config: ImageConfig = serde_json::from_slice(&content.read(&first.config.digest).unwrap()).unwrap();
    for (layer, diff_id) in first.layers.iter().zip(&config.rootfs.diff_ids) {
        assert_eq!(layer.media_type, media_type::OCI_LAYER_TAR);
        assert_eq!(&layer.digest, diff_id);
    }
    // The recorded blobs are plain tars now; a gzip export compresses them.
    let gzip = build_image(&f.source(Some(f.third)), &OciOptions::default()).unwrap();
    for (layer, diff_id) in gzip.layers.iter().zip(&config.rootfs.diff_ids) {
        assert_eq!(layer.media_type, media_type::OCI_LAYER_GZIP);
        assert_eq!(
            &Digest::of(&gunzip(&content.read(&layer.digest).unwrap())),
            diff_id
        );
    }
    // Same diff IDs and history, so the same config.
    assert_eq!(gzip.config, first.config);
    assert_eq!(build_image(&f.source(Some(f.third)), &plain).unwrap(), first);
}

#[test]
fn oci_tarball_is_deterministic_and_readable_by_skopeo_and_umoci() {
    let f = fixture();
    let options = OciOptions {
        name: Some("example.com/app:v1".into()),
        ..OciOptions::default()
    };
    let (archive, summary) = f.oci_tar(&options);
    let bytes = fs::read(&archive).unwrap();
    let mut again = Vec::new();
    write_oci_tar(&f.source(Some(f.third)), &options, &mut again).unwrap();
    assert!(again == bytes, "second tarball differs");

    // Layout: fixed order and metadata, each blob once.
    let mut names = Vec::new();
    let mut index = None;
    for entry in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
        let dir = h.entry_type() == tar::EntryType::Directory;
        assert_eq!(h.mode().unwrap(), if dir { 0o755 } else { 0o644 });
        let name = entry.path().unwrap().display().to_string();
        if name == "index.json" {
            let mut json = Vec::new();
            entry.read_to_end(&mut json).unwrap();
            index = Some(serde_json::from_slice::<ImageIndex>(&json).unwrap());
        }
        names.push(name);
    }
    let mut blobs: Vec<String> = [&summary.config, &summary.manifest]
        .into_iter()
        .chain(&summary.layers)
        .map(|d| format!("blobs/sha256/{}", d.digest.hex()))
        .collect();
    blobs.sort();
    let mut expected = vec![
        "oci-layout".to_string(),
        "index.json".into(),
        "blobs/".into(),
        "blobs/sha256/".into(),
    ];
    expected.extend(blobs);
    assert_eq!(names, expected);
    let index = index.unwrap();
    assert_eq!(index.media_type.as_deref(), Some(media_type::OCI_INDEX));
    assert_eq!(index.manifests.len(), 1);
    let entry = &index.manifests[0];
    assert_eq!(entry.digest, summary.manifest.digest);
    assert_eq!(
        entry.annotations["io.containerd.image.name"],
        "example.com/app:v1"
    );
    assert_eq!(entry.annotations["org.opencontainers.image.ref.name"], "v1");

    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], summary.manifest.digest.to_string());
    let layers: Vec<String> = summary.layers.iter().map(|d| d.digest.to_string()).collect();
    assert_eq!(inspect["Layers"], serde_json::json!(layers));
    assert_eq!(inspect["Env"], serde_json::json!(["PATH=/bin"]));

    let layout = f.path("layout");
    fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    let bundle = f.path("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    assert_eq!(describe(&bundle.join("rootfs")), expected_tree());
}

/// The regular files of a tarball, by path.
fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(bytes).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() == tar::EntryType::Regular {
            let path = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(path, data);
        }
    }
    files
}

/// The manifest an image-layout tarball's index points at, and the index entry's media type.
fn layout_manifest(files: &BTreeMap<String, Vec<u8>>) -> (String, ImageManifest) {
    let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
    let entry = &index.manifests[0];
    let blob = &files[&format!("blobs/sha256/{}", entry.digest.hex())];
    (entry.media_type.clone(), serde_json::from_slice(blob).unwrap())
}

fn skopeo_inspect(transport: &str, archive: &Path, config: bool) -> serde_json::Value {
    let mut command = Command::new("skopeo");
    command.arg("inspect");
    if config {
        command.arg("--config");
    }
    let out = run(command.arg(format!("{transport}:{}", archive.display())));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn docker_tarball_has_docker_media_types_and_skopeo_reads_it() {
    let f = fixture();
    let source = f.source(Some(f.third));
    let tags = ["example.com/app:v1".to_string()];
    let archive = f.path("docker.tar");
    let summary = write_docker_tar(
        &source,
        &OciOptions::default(),
        &tags,
        File::create(&archive).unwrap(),
    )
    .unwrap();
    assert_eq!(summary.manifest.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(summary.config.media_type, media_type::DOCKER_CONFIG);
    let files = tar_files(&fs::read(&archive).unwrap());
    let (entry_type, manifest) = layout_manifest(&files);
    assert_eq!(entry_type, media_type::DOCKER_MANIFEST);
    assert_eq!(manifest.media_type.as_deref(), Some(media_type::DOCKER_MANIFEST));
    assert_eq!(manifest.config.media_type, media_type::DOCKER_CONFIG);
    assert_eq!(manifest.layers.len(), 2);
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.media_type == media_type::DOCKER_LAYER_GZIP),
        "{manifest:?}"
    );
    let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        docker[0]["Config"],
        format!("blobs/sha256/{}", summary.config.digest.hex())
    );
    assert_eq!(docker[0]["RepoTags"], serde_json::json!(["example.com/app:v1"]));

    // skopeo reads it as `docker load` would (manifest.json) and as an OCI layout.
    let config: ImageConfig =
        serde_json::from_slice(&files[&format!("blobs/sha256/{}", summary.config.digest.hex())]).unwrap();
    let inspected = skopeo_inspect("docker-archive", &archive, true);
    assert_eq!(
        inspected["rootfs"]["diff_ids"],
        serde_json::json!(config.rootfs.diff_ids)
    );
    // The docker-archive transport hands out the layers uncompressed, named by diff ID.
    let inspected = skopeo_inspect("docker-archive", &archive, false);
    assert_eq!(inspected["Layers"], serde_json::json!(config.rootfs.diff_ids));
    assert_eq!(inspected["Env"], serde_json::json!(["PATH=/bin"]));
    let inspected = skopeo_inspect("oci-archive", &archive, false);
    assert_eq!(inspected["Digest"], summary.manifest.digest.to_string());

    // The same image under OCI types: the same config, another manifest.
    let oci = OciOptions {
        oci_media_types: Some(true),
        ..OciOptions::default()
    };
    let mut bytes = Vec::new();
    let as_oci = write_docker_tar(&source, &oci, &tags, &mut bytes).unwrap();
    assert_eq!(as_oci.config.digest, summary.config.digest);
    assert_ne!(as_oci.manifest.digest, summary.manifest.digest);
    let (entry_type, manifest) = layout_manifest(&tar_files(&bytes));
    assert_eq!(entry_type, media_type::OCI_MANIFEST);
    assert_eq!(manifest.config.media_type, media_type::OCI_CONFIG);
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.media_type == media_type::OCI_LAYER_GZIP)
    );
    let mut again = Vec::new();
    write_oci_tar(&source, &OciOptions::default(), &mut again).unwrap();
    assert_eq!(layout_manifest(&tar_files(&again)).1, manifest);
}

#[test]
fn oci_tarball_takes_docker_media_types_when_asked() {
    let f = fixture();
    let options = OciOptions {
        oci_media_types: Some(false),
        compression: Compression::Uncompressed,
        ..OciOptions::default()
    };
    let (archive, summary) = f.oci_tar(&options);
    let files = tar_files(&fs::read(&archive).unwrap());
    assert!(!files.contains_key("manifest.json"));
    let (entry_type, manifest) = layout_manifest(&files);
    assert_eq!(entry_type, media_type::DOCKER_MANIFEST);
    assert_eq!(manifest.config.media_type, media_type::DOCKER_CONFIG);
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.media_type == media_type::DOCKER_LAYER_TAR),
        "{manifest:?}"
    );
    let inspected = skopeo_inspect("oci-archive", &archive, false);
    assert_eq!(inspected["Digest"], summary.manifest.digest.to_string());
    // The blobs recorded for the snapshots keep their OCI types.
    for snapshot in f.store.chain(f.third).unwrap() {
        let blob = snapshot.blob.unwrap();
        assert_eq!(blob.descriptor.media_type, media_type::OCI_LAYER_TAR);
    }
}

#[test]
fn invalid_image_name_is_refused_before_writing() {
    let f = fixture();
    let options = OciOptions {
        name: Some("Not A Name".into()),
        ..OciOptions::default()
    };
    let mut out = Vec::new();
    let err = write_oci_tar(&f.source(Some(f.base)), &options, &mut out).unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    assert!(out.is_empty());
    assert!(f.store.snapshot(f.base).unwrap().blob.is_none());
}

#[test]
fn local_export_copies_the_tree_into_an_existing_directory() {
    let f = fixture();
    let dest = f.path("out");
    let outside = f.path("outside");
    fs::create_dir_all(dest.join("bin")).unwrap();
    fs::create_dir_all(dest.join("hello-link")).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(dest.join("keep.txt"), "mine").unwrap();
    fs::write(dest.join("bin/old-file"), "mine").unwrap();
    fs::write(dest.join("hello-link/inner"), "mine").unwrap();
    // A symlink where the result has a directory must be replaced, not written through.
    symlink(&outside, dest.join("etc")).unwrap();

    write_local(&f.source(Some(f.third)), &dest).unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let mut tree = describe(&dest);
    assert_eq!(tree.remove("keep.txt").unwrap(), "file 644 0:0 \"mine\"");
    assert_eq!(tree.remove("bin/old-file").unwrap(), "file 644 0:0 \"mine\"");
    assert_eq!(tree, expected_tree());

    let md = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(md("bin/tool").ino(), md("bin/tool-hardlink").ino());
    assert_eq!(md("etc/hello").mtime(), BASE_MTIME);
    assert_eq!(md("home/user").mtime(), BASE_MTIME);
    assert_eq!(md("hello-link").mtime(), BASE_MTIME);
    let mut value = [0u8; 16];
    let n = rfs::getxattr(dest.join("etc/hello"), "user.kiln", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"yes");

    // Exporting again over the result changes nothing.
    write_local(&f.source(Some(f.third)), &dest).unwrap();
    let mut again = describe(&dest);
    again.remove("keep.txt");
    again.remove("bin/old-file");
    assert_eq!(again, expected_tree());
}

#[test]
fn tar_export_holds_the_whole_filesystem() {
    let f = fixture();
    let mut bytes = Vec::new();
    write_tar(&f.source(Some(f.third)), &mut bytes).unwrap();
    assert_eq!(describe_tar(&bytes), expected_tree());
    let mut again = Vec::new();
    write_tar(&f.source(Some(f.third)), &mut again).unwrap();
    assert!(again == bytes, "second tar differs");
}

#[test]
fn empty_result_exports_empty_outputs() {
    let f = fixture();
    let image = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..ImageConfig::default()
    };
    let source = Source {
        store: &f.store,
        result: None,
        image: &image,
    };

    let summary = build_image(&source, &OciOptions::default()).unwrap();
    assert!(summary.layers.is_empty());
    let config: ImageConfig =
        serde_json::from_slice(&f.store.content().read(&summary.config.digest).unwrap()).unwrap();
    assert!(config.rootfs.diff_ids.is_empty());
    assert_eq!(config.created.as_deref(), Some("1970-01-01T00:00:00Z"));

    let archive = f.path("empty.tar");
    write_oci_tar(&source, &OciOptions::default(), File::create(&archive).unwrap()).unwrap();
    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display())));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], summary.manifest.digest.to_string());

    let dest = f.path("empty-dir");
    write_local(&source, &dest).unwrap();
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);

    let mut tar = Vec::new();
    write_tar(&source, &mut tar).unwrap();
    assert_eq!(tar, vec![0u8; 1024]);
}

#[test]
fn image_created_is_the_last_step_not_the_base_image() {
    let f = fixture();
    // The frontend's config starts as a copy of the base image's, date included.
    let base_date = "2001-02-03T04:05:06Z";
    let mut image = f.image.clone();
    image.created = Some(base_date.into());
    image.history[0].created = Some(base_date.into());
    let source = Source {
        store: &f.store,
        result: Some(f.third),
        image: &image,
    };
    let content = f.store.content();
    let summary = build_image(&source, &OciOptions::default()).unwrap();
    let config: ImageConfig = serde_json::from_slice(&content.read(&summary.config.digest).unwrap()).unwrap();
    let last_step = f.store.snapshot(f.third).unwrap().created;
    assert_eq!(config.created.as_deref(), Some(rfc3339(last_step).as_str()));
    assert_eq!(config.history[2].created, config.created);
    assert_eq!(config.history[0].created.as_deref(), Some(base_date));
    // Times come from the snapshots, so exporting again gives the same bytes.
    assert_eq!(build_image(&source, &OciOptions::default()).unwrap(), summary);

    // With SOURCE_DATE_EPOCH the build's steps, and so the image, take the epoch; the base
    // image's entry keeps its date.
    let options = OciOptions {
        epoch: Some(1_700_000_000),
        ..OciOptions::default()
    };
    let pinned = build_image(&source, &options).unwrap();
    let config: ImageConfig = serde_json::from_slice(&content.read(&pinned.config.digest).unwrap()).unwrap();
    assert_eq!(config.created.as_deref(), Some("2023-11-14T22:13:20Z"));
    let times: Vec<_> = config.history.iter().map(|h| h.created.as_deref()).collect();
    assert_eq!(
        times,
        [
            Some(base_date),
            Some("2023-11-14T22:13:20Z"),
            Some("2023-11-14T22:13:20Z")
        ]
    );
}

/// A tmpfs of `size` mounted at `path` (created if missing), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        let options = std::ffi::CString::new(format!("size={size}")).unwrap();
        rustix::mount::mount(
            "tmpfs",
            path,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            options.as_c_str(),
        )
        .unwrap();
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// `len` bytes that gzip cannot shrink.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_disk_full(error: &Error) {
    let text = error_chain(error);
    assert_eq!(
        text.matches("No space left on device").count(),
        1,
        "the OS error, once: {text}"
    );
}

#[test]
fn a_full_disk_is_named_in_every_export_error() {
    let f = fixture();
    let active = f.store.prepare(None, "noise").unwrap();
    fs::write(active.layer_dir().join("noise"), noise(3 << 20)).unwrap();
    let big = active.commit().unwrap().id;

    // The state directory's ingest area is full: computing the layer blob fails.
    {
        let _full = Tmpfs::mount(&f.store.root().join("ingest"), "1m");
        let err = build_image(&f.source(Some(big)), &OciOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::WriteLayer { .. } | Error::Compress { .. }),
            "{err:?}"
        );
        assert!(
            error_chain(&err).contains(&format!("snapshot {big}")),
            "{}",
            error_chain(&err)
        );
        assert_disk_full(&err);
    }
    assert!(f.store.snapshot(big).unwrap().blob.is_none(), "nothing recorded");

    // The destination is full: the tarball, the tar stream and the directory.
    let dest = f.path("dest");
    let _full = Tmpfs::mount(&dest, "1m");
    let err = write_oci_tar(
        &f.source(Some(big)),
        &OciOptions::default(),
        File::create(dest.join("image.tar")).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Output { .. }), "{err:?}");
    assert_disk_full(&err);
    fs::remove_file(dest.join("image.tar")).unwrap();
    let err = write_tar(&f.source(Some(big)), File::create(dest.join("fs.tar")).unwrap()).unwrap_err();
    assert_disk_full(&err);
    fs::remove_file(dest.join("fs.tar")).unwrap();
    let err = write_local(&f.source(Some(big)), &dest.join("dir")).unwrap_err();
    assert!(matches!(err, Error::Local { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("dest/dir/noise"),
        "{}",
        error_chain(&err)
    );
    assert_disk_full(&err);
}
