//! Integration tests for the fixtures that need no privileges: images, the registry, the runc
//! wrapper, the conformance data. The ones that mount are in `tests/privileged`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use flate2::read::GzDecoder;
use oci::{Platform, Reference};
use testkit::{CountingRuntime, Fixture, Registry, busybox_image, push_image};

/// The status line of `GET /v2/` on `host`, or `None` when nothing answers.
fn v2_status(host: &str) -> Option<String> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

#[test]
fn busybox_image_is_deterministic_and_has_a_shell() {
    let first = busybox_image().unwrap();
    let second = busybox_image().unwrap();
    assert_eq!(first.manifest_digest, second.manifest_digest);
    assert_eq!(first.layers.len(), 1);

    let (descriptor, blob) = &first.layers[0];
    assert_eq!(descriptor.digest, oci::Digest::of(blob));
    let mut archive = tar::Archive::new(GzDecoder::new(blob.as_ref()));
    let mut sh_target = None;
    let mut passwd = String::new();
    let mut names = Vec::new();
    let mut home_owner = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        match name.as_str() {
            "bin/sh" => {
                assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
                sh_target = entry.link_name().unwrap().map(|t| t.display().to_string());
            }
            "bin/busybox" => assert_eq!(entry.header().mode().unwrap(), 0o755),
            "etc/passwd" => {
                entry.read_to_string(&mut passwd).unwrap();
            }
            "home/app/" => home_owner = Some((entry.header().uid().unwrap(), entry.header().gid().unwrap())),
            "tmp/" => assert_eq!(entry.header().mode().unwrap(), 0o1777),
            _ => {}
        }
        names.push(name);
    }
    assert!(names.contains(&"bin/busybox".to_string()), "{names:?}");
    assert_eq!(sh_target.as_deref(), Some("busybox"));
    assert!(passwd.contains("app:x:1000:1000::/home/app:/bin/sh"), "{passwd}");
    assert_eq!(home_owner, Some((1000, 1000)));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "layer entries are sorted");

    let config: oci::ImageConfig = serde_json::from_slice(&first.config).unwrap();
    assert_eq!(config.config.cmd, Some(vec!["/bin/sh".to_string()]));
    assert_eq!(config.rootfs.diff_ids.len(), 1);
    assert_eq!(config.history.len(), 1);
}

#[test]
fn registry_serves_v2_and_stops_on_drop() {
    let registry = Registry::start().unwrap();
    let host = registry.host();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    let status = v2_status(&host).unwrap();
    assert!(status.contains(" 200"), "{status}");
    drop(registry);
    assert_eq!(v2_status(&host), None, "registry still answers after drop");
}

#[tokio::test]
async fn pushed_image_resolves_to_the_same_digest() {
    let registry = Registry::start().unwrap();
    let image = busybox_image().unwrap();
    let name = push_image(&registry.host(), "fixtures/busybox:v1", &image)
        .await
        .unwrap();
    assert_eq!(name, format!("{}/fixtures/busybox:v1", registry.host()));

    let client = registry::Client::new(registry::ClientConfig::default()).unwrap();
    let resolved = client
        .resolve(&Reference::parse(&name).unwrap(), &Platform::host())
        .await
        .unwrap();
    assert_eq!(resolved.manifest.digest, image.manifest_digest);
    assert_eq!(resolved.parsed.layers[0], image.layers[0].0);

    // Pushing the same image again is idempotent (blobs exist, manifest is identical).
    push_image(&registry.host(), "fixtures/busybox:v1", &image)
        .await
        .unwrap();
}

#[test]
fn skopeo_inspects_the_fixture_busybox() {
    let fixture = Fixture::start().unwrap();
    assert_eq!(
        fixture.busybox,
        format!("{}/busybox:latest", fixture.registry.host())
    );
    let output = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}", fixture.busybox))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["Digest"], fixture.busybox_digest.to_string());
    assert_eq!(info["Os"], "linux");
}

#[test]
fn counting_runtime_counts_only_run() {
    let runtime = CountingRuntime::new().unwrap();
    let version = Command::new(runtime.path()).arg("--version").output().unwrap();
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).contains("runc"));
    assert_eq!(runtime.runs(), 0);

    // runc fails here (no such root or bundle); only the logging matters.
    let _ = Command::new(runtime.path())
        .args(["--root", "/nonexistent", "run", "x"])
        .output()
        .unwrap();
    assert_eq!(runtime.runs(), 1);
    assert_eq!(
        runtime.invocations(),
        vec!["--version".to_string(), "--root /nonexistent run x".to_string()]
    );
}

#[test]
fn conformance_data_is_found() {
    let dir = testkit::conformance_dir();
    assert!(dir.join("buildkit-parser").is_dir(), "{}", dir.display());
}
