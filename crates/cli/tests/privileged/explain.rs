//! `--explain-cache`: why each step that ran missed the cache, for the three kinds of change
//! users meet (a file edit, a build arg, a new base image), pinned by snapshots; and the same
//! explanations in `--progress=json` and in `kiln logs`.

use std::collections::BTreeMap;

use crate::common::{BASE, Harness};
use serde_json::Value;

/// The cache-miss lines of a plain build log, as `step name: reason`, sorted by step name (step
/// numbers depend on timing) with digests shortened to `sha256:…`.
fn misses(log: &str) -> String {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: Vec<String> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((number, text)) = rest.split_once(' ') else {
            continue;
        };
        if let Some(reason) = text.strip_prefix("cache miss: ") {
            let name = names.get(number).cloned().unwrap_or_default();
            lines.push(format!("{name}: {reason}"));
        } else if !names.contains_key(number) {
            names.insert(number.to_string(), text.to_string());
        }
    }
    lines.sort();
    redact(&lines.join("\n"))
}

/// Replaces every `sha256:<hex>` by `sha256:…` and the fixture registry's port by `PORT`.
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i + 7]);
        rest = rest[i + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
        out.push('…');
    }
    out.push_str(rest);
    let mut shown = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("127.0.0.1:") {
        shown.push_str(&rest[..i + 10]);
        rest = rest[i + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
        shown.push_str("PORT");
    }
    shown.push_str(rest);
    shown
}

fn build(h: &Harness, dir: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec!["--explain-cache"];
    args.extend_from_slice(extra);
    let output = h.run_build(dir, &args);
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "build failed:\n{log}");
    log
}

#[test]
fn a_file_edit_names_the_files() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nCOPY notes.txt /notes.txt\nCOPY src/ /src/\nRUN cat /src/* > /all\nRUN echo done\n"
    ))
    .write("notes.txt", "n")
    .write("src/one.txt", "1")
    .write("src/two.txt", "2")
    .write("src/gone.txt", "x");
    let first = build(&h, ctx.path(), &[]);
    insta::assert_snapshot!("first_build", misses(&first));

    ctx.write("src/two.txt", "two").write("src/three.txt", "3");
    std::fs::remove_file(ctx.join("src/gone.txt")).unwrap();
    let second = build(&h, ctx.path(), &[]);
    assert!(
        second.contains("CACHED"),
        "the unchanged steps are cached:\n{second}"
    );
    insta::assert_snapshot!("file_edit", misses(&second));

    // Nothing changed: nothing is explained.
    let third = build(&h, ctx.path(), &[]);
    assert_eq!(misses(&third), "", "{third}");
}

#[test]
fn a_build_arg_names_the_argument() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN echo base > /base\nARG FLAVOUR=plain\nRUN echo $FLAVOUR > /flavour\nRUN echo done\n"
    ));
    build(&h, ctx.path(), &["--build-arg", "FLAVOUR=spicy"]);
    // Dropping the argument goes back to the default, and says so.
    let second = build(&h, ctx.path(), &[]);
    insta::assert_snapshot!("build_arg_dropped", misses(&second));
    let third = build(&h, ctx.path(), &["--build-arg", "FLAVOUR=hot"]);
    insta::assert_snapshot!("build_arg", misses(&third));
}

#[test]
fn a_new_base_image_names_both_digests() {
    let h = Harness::start();
    let first_image = testkit::busybox_image().unwrap();
    let base = h.push("explain/base:latest", &first_image);
    let ctx = h.context();
    ctx.dockerfile(&format!("FROM {base}\nRUN echo hello > /hello\nCOPY a.txt /a\n"))
        .write("a.txt", "a");
    build(&h, ctx.path(), &[]);

    // The same tag now names an image with one more layer.
    let mut extra = testkit::LayerBuilder::new();
    extra.file("etc/motd", 0o644, "a new base\n");
    let config = testkit::base_config(&["busybox", "motd"]);
    let second_image =
        testkit::FixtureImage::new(config, &[testkit::busybox_layer().unwrap(), extra]).unwrap();
    h.push("explain/base:latest", &second_image);
    let second = build(&h, ctx.path(), &[]);
    let shown = misses(&second);
    insta::assert_snapshot!("base_image", shown);
    // The digests are the real ones (the snapshot shortens them).
    let short = |d: &oci::Digest| format!("sha256:{}", &d.hex()[..12]);
    assert!(
        second.contains(&format!(
            "changed: {} -> {}",
            short(&first_image.manifest_digest),
            short(&second_image.manifest_digest)
        )),
        "{second}"
    );
}

#[test]
fn json_progress_and_logs_carry_the_explanations() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(&format!("FROM {BASE}\nCOPY a.txt /a\nRUN cat /a\n"))
        .write("a.txt", "1");
    build(&h, ctx.path(), &[]);
    ctx.write("a.txt", "2");
    let output = h
        .kiln
        .run(&["build", "--progress=json", ctx.path().to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["type"].is_string() && e["time"].is_number())
    );
    let miss = events
        .iter()
        .find(|e| e["type"] == "cache-miss" && e["name"].as_str().unwrap().contains("COPY a.txt"))
        .unwrap_or_else(|| panic!("no cache-miss event for the COPY:\n{stderr}"));
    assert_eq!(miss["reasons"][0]["kind"], "files");
    assert_eq!(miss["reasons"][0]["modified"][0], "a.txt");
    assert_eq!(
        miss["reasons"][0]["text"],
        "files changed in [internal] load build context: modified a.txt"
    );
    let logged: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "log" && e["text"].as_str().is_some_and(|t| t.contains('2')))
        .collect();
    assert!(!logged.is_empty(), "the RUN's output is a log event:\n{stderr}");

    // The stored log has the same events, between a build line and a result line.
    let raw = h.kiln.run(&["logs", "--progress", "json"]);
    assert!(raw.status.success());
    let stored = String::from_utf8(raw.stdout).unwrap();
    let lines: Vec<Value> = stored.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.first().unwrap()["type"], "build");
    assert_eq!(lines.last().unwrap()["type"], "result");
    assert_eq!(lines.last().unwrap()["error"], Value::Null);
    assert!(lines.iter().any(|l| l["type"] == "cache-miss"));

    // Replayed for people: the explanation and the step's output.
    let replay = h.kiln.run(&["logs"]);
    assert!(replay.status.success());
    let text = String::from_utf8_lossy(&replay.stderr);
    assert!(
        text.contains("cache miss: files changed in [internal] load build context: modified a.txt"),
        "{text}"
    );
    assert!(text.contains("RUN cat /a"), "{text}");

    // A failed build is listed as failed and its log ends with the error.
    ctx.dockerfile(&format!("FROM {BASE}\nRUN echo about to fail && exit 3\n"));
    let failed = h.run_build(ctx.path(), &[]);
    assert!(!failed.status.success());
    let list = h.kiln.run(&["logs", "--list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(rows[0].contains("failed"), "{list}");
    assert!(rows[1].contains("done") && rows[2].contains("done"), "{list}");
    let id = rows[2].split_whitespace().next().unwrap();
    let last = h.kiln.run(&["logs"]);
    assert!(!last.status.success(), "replaying a failed build exits non-zero");
    let text = String::from_utf8_lossy(&last.stderr);
    assert!(
        text.contains("about to fail") && text.contains("exit code: 3"),
        "{text}"
    );
    // An id prefix selects an older build.
    let first = h.kiln.run(&["logs", &id[..id.len() - 2]]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let bad = h.kiln.run(&["logs", "zzzz"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no build log with an id starting with"));
}
