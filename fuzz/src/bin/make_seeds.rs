//! Writes the seed corpora under `fuzz/seeds/` from the shared conformance data:
//!
//! - `dockerfile_parse/`: the real-world Dockerfiles and BuildKit's parser test files, verbatim
//!   (`dockerfile_compile/` is a symlink to it);
//! - `shell_words/`: the inputs of BuildKit's `envVarTest` and `wordsTest` tables, in the
//!   `ShellInput` layout, with the tables' environments;
//! - `llb_load/`: definitions the compiler produces for the smaller of those Dockerfiles;
//! - `layer_apply/`: a few hand-made layer tars (files, links, whiteouts, PAX records, devices,
//!   a GNU sparse file, and escape attempts);
//! - `registry_response/`: hand-made registry answers (auth challenges, token responses, error
//!   bodies, manifests and an index);
//! - `cache_config/`: hand-made remote cache configs (BuildKit's layout: a chain, a loop, a
//!   dangling result).
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`. The
//! conformance data is found through `KILN_CONFORMANCE_DIR`, else at `../../shared/conformance`
//! relative to this package. Each generated directory is replaced as a whole.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use dockerfile::{BuildOptions, OfflineResolver};
use kiln_fuzz::ShellInput;
use tar::{EntryType, Header};

/// Generated LLB seeds larger than this are left out, to keep the committed corpus small.
const MAX_LLB_SEED: usize = 8 * 1024;
/// How many LLB seeds to keep at most.
const MAX_LLB_SEEDS: usize = 16;

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let conformance = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map_or_else(|| here.join("../../shared/conformance"), PathBuf::from);
    assert!(
        conformance.is_dir(),
        "no conformance data at {}",
        conformance.display()
    );
    let seeds = here.join("seeds");

    let dockerfiles = dockerfiles(&conformance);
    write_all(
        &seeds.join("dockerfile_parse"),
        dockerfiles.iter().map(|(n, d)| (n.clone(), d.clone())),
    );
    let compile_link = seeds.join("dockerfile_compile");
    if fs::symlink_metadata(&compile_link).is_err() {
        std::os::unix::fs::symlink("dockerfile_parse", &compile_link).expect("link dockerfile_compile seeds");
    }
    write_all(&seeds.join("shell_words"), shell_seeds(&conformance));
    write_all(&seeds.join("llb_load"), llb_seeds(&dockerfiles));
    write_all(&seeds.join("layer_apply"), layer_seeds());
    write_all(&seeds.join("registry_response"), registry_seeds());
    write_all(&seeds.join("cache_config"), cache_config_seeds());
}

/// Remote cache configs: two layers and a record with an input link, a parent loop, a result
/// pointing nowhere.
fn cache_config_seeds() -> Vec<(String, Vec<u8>)> {
    let (a, b, k) = ("ab".repeat(32), "cd".repeat(32), "ef".repeat(32));
    let annotations = |d: &str| {
        format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"sha256:{d}","size":10,"createdAt":"2026-01-01T00:00:00Z"}}"#)
    };
    let seeds = [
        ("chain", format!(r#"{{"layers":[{{"blob":"sha256:{a}","parent":-1,"annotations":{}}},{{"blob":"sha256:{b}","annotations":{}}}],"records":[{{"layers":[{{"layer":1,"createdAt":"2026-01-01T00:00:00Z"}}],"digest":"sha256:{k}"}},{{"layers":[{{"layer":0}}],"digest":"sha256:{a}","inputs":[[{{"selector":"/","link":0}}]]}}]}}"#, annotations(&a), annotations(&b))),
        ("loop", format!(r#"{{"layers":[{{"blob":"sha256:{a}","parent":1}},{{"blob":"sha256:{b}"}}],"records":[{{"layers":[{{"layer":0}}],"digest":"sha256:{k}"}}]}}"#)),
        ("dangling", format!(r#"{{"layers":[],"records":[{{"layers":[{{"layer":7}}],"chains":[{{"layers":[0,1]}}],"digest":"sha256:{k}"}}]}}"#)),
    ];
    seeds
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.into_bytes()))
        .collect()
}

/// Registry answers as they come over the wire: `WWW-Authenticate` values, token responses,
/// error bodies, an image manifest and an image index.
fn registry_seeds() -> Vec<(String, Vec<u8>)> {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let seeds = [
        ("challenge-bearer", r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#.to_string()),
        ("challenge-several", r#"Basic realm="x", Bearer realm="https://a/t"q"", error="insufficient_scope""#.to_string()),
        ("token", r#"{"token":"abc","expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}"#.to_string()),
        ("access-token", r#"{"access_token":"xyz"}"#.to_string()),
        ("errors", r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#.to_string()),
        ("manifest", format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":3}}]}}"#)),
        ("index", format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":7,"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":7,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#)),
    ];
    seeds
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.into_bytes()))
        .collect()
}

/// Replaces the contents of `dir` (wholly generated) with `files`.
fn write_all(dir: &Path, files: impl IntoIterator<Item = (String, Vec<u8>)>) {
    if dir.is_dir() {
        fs::remove_dir_all(dir).expect("remove old seeds");
    }
    fs::create_dir_all(dir).expect("create seed dir");
    let mut count = 0;
    for (name, data) in files {
        fs::write(dir.join(&name), data).unwrap_or_else(|e| panic!("write seed {name}: {e}"));
        count += 1;
    }
    println!("{}: {count} seeds", dir.display());
}

/// Seed name → Dockerfile text, from the real-world set and the parser test files.
fn dockerfiles(conformance: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut add_dir = |prefix: &str, dir: &Path| {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("read dir entry").path())
            .collect();
        entries.sort();
        for case in entries {
            let file = case.join("Dockerfile");
            if let Ok(data) = fs::read(&file) {
                let name = case.file_name().expect("case name").to_string_lossy();
                out.insert(format!("{prefix}-{name}"), data);
            }
        }
    };
    add_dir("real", &conformance.join("real-dockerfiles"));
    for set in ["testfiles", "testfiles-negative", "testfile-line"] {
        let dir = conformance.join("buildkit-parser").join(set);
        if dir.is_dir() {
            add_dir(&format!("parser-{set}"), &dir);
        }
    }
    // testfile-line keeps its Dockerfile directly in the set directory.
    let line = conformance.join("buildkit-parser/testfile-line/Dockerfile");
    if let Ok(data) = fs::read(line) {
        out.insert("parser-testfile-line".into(), data);
    }
    // Fuzzing find (see README.md): nested pattern replacement in an instruction.
    let nested = format!(
        "FROM scratch\nENV a=aaaaaaaaaa\nLABEL big={}\n",
        nested_replacement(8)
    );
    out.insert("regress-nested-replace".into(), nested.into_bytes());
    out
}

fn shell_seeds(conformance: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = conformance.join("buildkit-shell");
    let mut out = Vec::new();
    // envVarTest: `platform | input | expected`, run with the table's fixed environment; `W`
    // rows use the case-insensitive presentation (mode bits 5–6 = 2).
    let env = ["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="];
    let text = fs::read_to_string(dir.join("envVarTest")).expect("read envVarTest");
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, _] = fields[..] else {
            continue;
        };
        let mode = if platform == "W" { 2 << 5 } else { 0 };
        out.push((format!("env-{:03}", i + 1), ShellInput::encode(mode, input, &env)));
    }
    // wordsTest: `ENV k=v` lines accumulate; `input | fields` lines are cases.
    let text = fs::read_to_string(dir.join("wordsTest")).expect("read wordsTest");
    let mut env: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            env.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let Some((input, _)) = line.split_once('|') else {
            continue;
        };
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        out.push((
            format!("words-{:03}", i + 1),
            ShellInput::encode(0, input.trim(), &env),
        ));
    }
    // Fuzzing finds (see README.md): nested pattern replacement (exponential output) and a
    // huge expanded pattern (slow matching).
    out.push((
        "regress-nested-replace".into(),
        ShellInput::encode(1 << 5, &nested_replacement(7), &["a=aaaaaaaaaa"]),
    ));
    let (a, b) = (
        format!("a={}", "a".repeat(2000)),
        format!("b={}", "b".repeat(1000)),
    );
    out.push((
        "regress-huge-pattern".into(),
        ShellInput::encode(1 << 5, "${a//${b//?/$b}x/y}", &[&a, &b]),
    ));
    out
}

/// `depth` replacements nested in each other's replacement text: `${a//?/${a//?/…$a}}`.
fn nested_replacement(depth: usize) -> String {
    let mut word = "$a".to_string();
    for _ in 0..depth {
        word = format!("${{a//?/{word}}}");
    }
    word
}

fn llb_seeds(dockerfiles: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let mut compiled: Vec<(String, Vec<u8>)> = dockerfiles
        .iter()
        .filter_map(|(name, data)| {
            let text = String::from_utf8_lossy(data);
            let out = kiln_fuzz::block_on(dockerfile::compile(
                &text,
                &BuildOptions::default(),
                &OfflineResolver,
            ))
            .ok()?;
            let bytes = out.definition.to_bytes();
            (bytes.len() <= MAX_LLB_SEED).then(|| (name.clone(), bytes))
        })
        .collect();
    // Prefer the larger of the small ones: they hold more kinds of op.
    compiled.sort_by_key(|(name, bytes)| (std::cmp::Reverse(bytes.len()), name.clone()));
    compiled.truncate(MAX_LLB_SEEDS);
    compiled
        .into_iter()
        .map(|(name, bytes)| (format!("{name}.pb"), bytes))
        .collect()
}

/// A tar under construction, one entry at a time, with full control of the headers.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn entry(&mut self, kind: EntryType, path: &str, mode: u32, link: Option<&str>, data: &[u8]) -> &mut Tar {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if let Some(link) = link {
            h.set_link_name(link).expect("link name");
        }
        self.0.append_data(&mut h, path, data).expect("append entry");
        self
    }

    fn dir(&mut self, path: &str) -> &mut Tar {
        self.entry(EntryType::Directory, path, 0o755, None, b"")
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Tar {
        self.entry(EntryType::Regular, path, 0o644, None, data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.entry(EntryType::Symlink, path, 0o777, Some(target), b"")
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Tar {
        self.entry(EntryType::Link, path, 0o644, Some(target), b"")
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        self.0
            .append_pax_extensions(records.iter().copied())
            .expect("append pax");
        self
    }

    /// Appends `h` as is, except for a root owner (fresh headers have empty uid and gid
    /// fields, which readers refuse).
    fn raw(&mut self, h: &mut Header, data: &[u8]) -> &mut Tar {
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.0.append(h, data).expect("append raw entry");
        self
    }

    fn finish(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
            .into_inner()
            .expect("finish tar")
    }
}

fn layer_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    out.push((
        "basic.tar".into(),
        Tar::new()
            .dir("etc/")
            .file("etc/hosts", b"127.0.0.1 localhost\n")
            .dir("usr/")
            .dir("usr/bin/")
            .entry(EntryType::Regular, "usr/bin/sh", 0o4755, None, b"#!binary\n")
            .hardlink("usr/bin/ash", "usr/bin/sh")
            .symlink("bin", "usr/bin")
            .entry(EntryType::Directory, "tmp/", 0o1777, None, b"")
            .finish(),
    ));
    out.push((
        "whiteouts.tar".into(),
        Tar::new()
            .dir("a/")
            .file("a/.wh..wh..opq", b"")
            .file("a/.wh.gone", b"")
            .file(".wh.b", b"")
            .file("a/.wh..wh.plnk", b"")
            .file("a/kept", b"x")
            .finish(),
    ));
    out.push((
        "pax.tar".into(),
        Tar::new()
            .pax(&[
                ("SCHILY.xattr.user.foo", b"bar"),
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("mtime", b"1700000000.123456789"),
            ])
            .file("xattr-file", b"data")
            .pax(&[("path", "p/".repeat(70).as_bytes())])
            .file("short-name-overridden", b"")
            .file(&format!("{}long-gnu-name", "d/".repeat(60)), b"long")
            .finish(),
    ));
    let mut special = Tar::new();
    for (kind, name) in [
        (EntryType::Char, "dev/null"),
        (EntryType::Block, "dev/loop0"),
        (EntryType::Fifo, "dev/fifo"),
    ] {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).expect("device path");
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h.set_device_major(1).expect("major");
        h.set_device_minor(3).expect("minor");
        special.raw(&mut h, b"");
    }
    out.push(("special.tar".into(), special.dir("dev/").finish()));
    out.push((
        "escape.tar".into(),
        Tar::new()
            .symlink("up", "..")
            .file("up/escaped", b"out")
            .symlink("abs", "/")
            .file("abs/escaped-abs", b"out")
            .symlink("dirlink", "../root/..")
            .dir("dirlink/x/")
            // Last: apply stops at it (no such target inside the root).
            .hardlink("hl", "../sentinel")
            .finish(),
    ));
    // Paths the tar crate's own builder refuses to write (`..`, absolute), set as raw bytes.
    let mut raw = Tar::new();
    for name in ["../dotdot", "/absolute", "./././x/../../y", ".", ".."] {
        let mut h = Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(1);
        raw.raw(&mut h, b"z");
    }
    out.push(("raw-names.tar".into(), raw.finish()));
    // A GNU sparse file: 4 bytes of data at the end of an 8 KiB file (the last chunk must end
    // at the expanded size).
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_path("sparse").expect("sparse path");
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(4);
    {
        let gnu = h.as_gnu_mut().expect("gnu header");
        octal(&mut gnu.sparse[0].offset, 8188);
        octal(&mut gnu.sparse[0].numbytes, 4);
        octal(&mut gnu.realsize, 8192);
    }
    out.push(("sparse.tar".into(), Tar::new().raw(&mut h, b"data").finish()));
    out
}

/// Writes `value` as a NUL-terminated octal field filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}
