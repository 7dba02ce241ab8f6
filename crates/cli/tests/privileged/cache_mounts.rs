//! `RUN --mount=type=cache` end to end through the `kiln` binary (privileged: real containers
//! with runc over overlayfs, the busybox fixture from a loopback registry): persistence across
//! builds, the three sharing modes between parallel stages, the mount options, what never
//! reaches an image or a cache key, `kiln du`/`prune`, and crash safety of making and removing
//! caches.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use crate::common::{Built, Context, Harness, Reaper, kiln_without_core_dumps, text};
use serde_json::Value;

/// Runs `kiln ARGS` on the harness's state directory with extra environment variables.
fn kiln_env(h: &Harness, env: &[(&str, &str)], args: &[&str]) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    let mut command =
        kiln_without_core_dumps(h.kiln.root.path(), h.kiln.runtime.path(), scratch.path(), args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// `kiln ARGS` that must succeed; its standard output.
fn kiln_ok(h: &Harness, args: &[&str]) -> String {
    let output = h.kiln.run(args);
    assert!(
        output.status.success(),
        "kiln {args:?} failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn json(h: &Harness, args: &[&str]) -> Value {
    let out = kiln_ok(h, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kiln {args:?} printed no JSON ({e}):\n{out}"))
}

/// The `exec.cachemount` records `kiln du --format json` lists.
fn cache_records(h: &Harness) -> Vec<Value> {
    let usage = json(h, &["du", "--format", "json"]);
    usage["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "exec.cachemount")
        .cloned()
        .collect()
}

/// Entries of the state directory's `cache-mounts/`.
fn cache_dirs(h: &Harness) -> usize {
    std::fs::read_dir(h.kiln.root.path().join("cache-mounts")).map_or(0, |d| d.count())
}

/// `kiln debug check` must find no problem.
fn check_ok(h: &Harness) {
    let out = kiln_ok(h, &["debug", "check"]);
    assert!(out.contains("no problems found"), "{out}");
}

/// Whether the step running `command` ran (rather than being CACHED) in a build log.
fn ran(log: &str, command: &str) -> bool {
    let mut lines = log.lines();
    let Some(header) = lines.find(|l| l.contains(command) && l.starts_with('#')) else {
        panic!("no step {command:?} in:\n{log}");
    };
    let id = header.split(' ').next().unwrap_or_default().to_string();
    !log.lines().any(|l| l == format!("{id} CACHED"))
}

/// The cache mount step of the persistence tests: it records what the cache held and appends
/// this build's revision to it.
const PERSIST: &str = r#"FROM @BASE@
ARG REV=0
RUN echo "$REV" > /rev
RUN --mount=type=cache,target=/cache cat /cache/log > /seen 2>/dev/null; cat /rev >> /cache/log && head -c 10000 /dev/zero > /cache/filler
"#;

fn persist_build(h: &Harness, ctx: &Context, rev: &str) -> Built {
    h.build(ctx, &["--build-arg", &format!("REV={rev}")])
}

#[test]
fn a_cache_persists_across_builds_without_entering_images_or_keys() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(PERSIST);
    let first = persist_build(&h, &ctx, "0");
    assert_eq!(first.read("/seen"), "");
    let runs = h.kiln.runtime.runs();
    assert_eq!(runs, 2, "{}", first.log);

    // An earlier step changed: the cache step runs again and finds what build 1 wrote.
    let second = persist_build(&h, &ctx, "1");
    assert_eq!(second.read("/seen"), "0\n");
    assert!(ran(&second.log, "cat /cache/log"), "{}", second.log);

    // Back to revision 0: the cache now holds other content, but the step's key does not
    // depend on it, so everything is cached and the result is build 1's.
    let third = persist_build(&h, &ctx, "0");
    assert_eq!(h.kiln.runtime.runs(), runs + 2, "{}", third.log);
    assert!(!ran(&third.log, "cat /cache/log"), "{}", third.log);
    assert_eq!(third.read("/seen"), "");

    // The cache and its mount point are in no layer and not in the result.
    for built in [&first, &second, &third] {
        assert!(!built.exists("/cache"), "{:?}", built.list("/"));
        for layer in built.layers() {
            assert!(
                !layer.iter().any(|entry| entry.starts_with("cache")),
                "a layer holds the cache: {layer:?}"
            );
        }
    }

    let records = cache_records(&h);
    assert_eq!(records.len(), 1, "{records:#?}");
    let record = &records[0];
    assert_eq!(
        record["description"],
        "cached mount /cache from exec /bin/sh -c cat /cache/log > /seen 2>/dev/null; cat /rev >> \
         /cache/log && head -c 10000 /dev/zero > /cache/filler"
    );
    assert!(record["size"].as_u64().unwrap() >= 10_004, "{record:#}");
    assert_eq!(record["usage_count"], 2, "{record:#}");
    assert_eq!(record["in_use"], false);
    assert_eq!(record["reclaimable"], true);
    assert_eq!(record["parent"], Value::Null);
    check_ok(&h);
}

#[test]
fn du_lists_caches_and_prune_removes_them() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(PERSIST);
    persist_build(&h, &ctx, "0");
    persist_build(&h, &ctx, "1");

    let table = kiln_ok(&h, &["du", "--filter", "type=exec.cachemount", "--verbose"]);
    assert!(table.contains("Type:           exec.cachemount"), "{table}");
    assert!(
        table.contains("Description:    cached mount /cache from exec"),
        "{table}"
    );
    let only = json(
        &h,
        &["du", "--format", "json", "--filter", "type=exec.cachemount"],
    );
    let listed = only["records"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{only:#}");
    let id = listed[0]["id"].as_u64().unwrap();
    let all = json(&h, &["du", "--format", "json"]);
    let regular_before = all["records"].as_array().unwrap().len() - 1;
    assert!(regular_before >= 3, "{all:#}");

    // The filter removes exactly the cache; everything else stays.
    let report = json(
        &h,
        &["prune", "--format", "json", "--filter", "type=exec.cachemount"],
    );
    let removed = report["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{report:#}");
    assert_eq!(removed[0]["id"].as_u64(), Some(id));
    assert_eq!(removed[0]["type"], "exec.cachemount");
    assert!(report["reclaimed"].as_u64().unwrap() >= 10_000, "{report:#}");
    assert!(cache_records(&h).is_empty());
    assert_eq!(cache_dirs(&h), 0);
    let after = json(&h, &["du", "--format", "json"]);
    assert_eq!(
        after["records"].as_array().unwrap().len(),
        regular_before,
        "{after:#}"
    );
    check_ok(&h);

    // The next build starts with an empty cache.
    let fresh = persist_build(&h, &ctx, "2");
    assert_eq!(fresh.read("/seen"), "");
    assert_eq!(cache_records(&h).len(), 1);

    // A plain prune removes unused caches too (BuildKit's prune does), and so does --all.
    persist_build(&h, &ctx, "3");
    kiln_ok(&h, &["prune"]);
    assert!(cache_records(&h).is_empty());
    assert_eq!(cache_dirs(&h), 0);
    persist_build(&h, &ctx, "4");
    assert_eq!(cache_records(&h).len(), 1);
    kiln_ok(&h, &["prune", "--all"]);
    // All but the newest build log, which `kiln logs` shows.
    let empty = json(&h, &["du", "--format", "json", "--filter", "type!=build.log"]);
    assert!(empty["records"].as_array().unwrap().is_empty(), "{empty:#}");
    assert_eq!(cache_dirs(&h), 0);
    let again = persist_build(&h, &ctx, "5");
    assert_eq!(again.read("/seen"), "");
    check_ok(&h);
}

/// Two parallel stages and a final one, each mounting cache `par-<sharing>` with `sharing`:
/// stages a and b log when they start and end (from `/proc/uptime`) and sleep in between; the
/// final stage copies the log.
fn parallel_dockerfile(sharing: &str) -> String {
    let step = |name: &str| {
        format!(
            "RUN --mount=type=cache,target=/c,id=par-{sharing},sharing={sharing} \
             echo \"{name} start $(cut -d' ' -f1 /proc/uptime)\" >> /c/log && sleep 1 && \
             echo \"{name} end $(cut -d' ' -f1 /proc/uptime)\" >> /c/log && echo {name} > /done-{name}\n"
        )
    };
    format!(
        "FROM @BASE@ AS a\n{}FROM @BASE@ AS b\n{}FROM @BASE@\nCOPY --from=a /done-a /\nCOPY --from=b /done-b /\n\
         RUN --mount=type=cache,target=/c,id=par-{sharing},sharing={sharing} cp /c/log /log\n",
        step("a"),
        step("b")
    )
}

/// The (start, end) uptimes each stage logged.
fn intervals(log: &str) -> [(f64, f64); 2] {
    let time = |name: &str, event: &str| -> f64 {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} {event} ")))
            .unwrap_or_else(|| panic!("no {name} {event} in {log:?}"))
            .parse()
            .unwrap()
    };
    [
        (time("a", "start"), time("a", "end")),
        (time("b", "start"), time("b", "end")),
    ]
}

#[test]
fn locked_caches_never_overlap_and_shared_ones_do() {
    let h = Harness::start();
    let locked = h.context();
    locked.dockerfile(&parallel_dockerfile("locked"));
    let built = h.build(&locked, &[]);
    let log = built.read("/log");
    assert_eq!(log.lines().count(), 4, "{log}");
    let [a, b] = intervals(&log);
    assert!(
        a.1 <= b.0 || b.1 <= a.0,
        "locked steps overlapped: a {a:?}, b {b:?}\n{log}"
    );

    // The same steps on a shared cache run at the same time, in the same directory.
    let shared = h.context();
    shared.dockerfile(&parallel_dockerfile("shared"));
    let built = h.build(&shared, &[]);
    let log = built.read("/log");
    assert_eq!(log.lines().count(), 4, "{log}");
    let [a, b] = intervals(&log);
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "shared steps did not overlap: a {a:?}, b {b:?}\n{log}"
    );
    // One instance per cache: all three steps of a build used the same directory.
    assert_eq!(cache_records(&h).len(), 2, "{:#?}", cache_records(&h));
}

#[test]
fn a_step_waiting_for_a_locked_cache_holds_none_it_takes_after_it() {
    let h = Harness::start();
    // Stage x holds locked cache ord-x for 4 s. Stage yx then wants ord-y and ord-x, naming
    // ord-y first; stage y wants only ord-y. Taking caches in mount order, yx would sit on ord-y
    // while waiting for ord-x, and y would wait until x and yx were both done (the way two
    // steps naming two caches in opposite orders deadlock). Taken in name order, yx waits for
    // ord-x holding nothing, and y runs while x still holds ord-x.
    let uptime = "$(cut -d' ' -f1 /proc/uptime)";
    let lock = |id: &str, target: &str| format!("--mount=type=cache,id={id},target={target},sharing=locked");
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM @BASE@ AS x
RUN {x} sleep 4 && echo {uptime} > /x-end
         FROM @BASE@ AS yx
RUN sleep 1
RUN {ya} {xb} echo {uptime} > /yx-start
         FROM @BASE@ AS y
RUN sleep 2
RUN {y} echo {uptime} > /y-start
         FROM @BASE@
COPY --from=x /x-end /
COPY --from=yx /yx-start /
COPY --from=y /y-start /
",
        x = lock("ord-x", "/x"),
        ya = lock("ord-y", "/a"),
        xb = lock("ord-x", "/b"),
        y = lock("ord-y", "/y"),
    ));
    let built = h.build(&ctx, &[]);
    let time = |path: &str| -> f64 { built.read(path).trim().parse().unwrap() };
    let (x_end, yx_start, y_start) = (time("/x-end"), time("/yx-start"), time("/y-start"));
    assert!(
        y_start < x_end,
        "stage y waited for ord-y while yx waited for ord-x: x ended at {x_end}, y started at {y_start}"
    );
    assert!(
        yx_start >= x_end,
        "yx ran while x held ord-x: {yx_start} < {x_end}"
    );
}

#[test]
fn buildkit_cache_mount_ns_puts_caches_in_a_namespace() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        "FROM @BASE@\nARG REV\nRUN echo $REV > /rev\n\
         RUN --mount=type=cache,id=nscache,target=/c ls /c > /seen && echo x > /c/$(cat /rev)\n",
    );
    let ns = |ns: &str, rev: &str| -> String {
        let built = h.build(
            &ctx,
            &[
                "--build-arg",
                &format!("BUILDKIT_CACHE_MOUNT_NS={ns}"),
                "--build-arg",
                &format!("REV={rev}"),
            ],
        );
        built.read("/seen")
    };
    assert_eq!(ns("team-a", "1"), "");
    // Another namespace is another cache.
    assert_eq!(ns("team-b", "2"), "");
    // The first namespace's cache kept what its build wrote.
    assert_eq!(ns("team-a", "3"), "1\n");
    let mut ids: Vec<String> = cache_records(&h)
        .iter()
        .map(|r| r["description"].as_str().unwrap().to_string())
        .filter_map(|d| d.split("with id ").nth(1).map(str::to_string))
        .collect();
    ids.sort();
    assert_eq!(ids, ["\"team-a/nscache\"", "\"team-b/nscache\""]);
}

#[test]
fn private_caches_give_busy_users_their_own_instance() {
    let h = Harness::start();
    // Stages a and b meet twice through a shared cache (`meet`), so they certainly run at the
    // same time; in between, each writes its marker into the private cache `priv`, and lists it
    // after the second meeting, when both markers are written.
    let step = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,target=/meet,id=meet --mount=type=cache,target=/p,id=priv,sharing=private \
             wait_for() {{ i=0; while [ ! -e \"/meet/$1\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; [ -e \"/meet/$1\" ]; }} && \
             touch /meet/{me}1 && wait_for {other}1 && touch /p/{me} && \
             touch /meet/{me}2 && wait_for {other}2 && ls /p > /seen-{me}\n"
        )
    };
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM @BASE@ AS a\n{}FROM @BASE@ AS b\n{}FROM @BASE@\nCOPY --from=a /seen-a /\nCOPY --from=b /seen-b /\n",
        step("a", "b"),
        step("b", "a")
    ));
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/seen-a"), "a\n");
    assert_eq!(built.read("/seen-b"), "b\n");
    let private: Vec<Value> = cache_records(&h)
        .into_iter()
        .filter(|r| r["description"].as_str().unwrap().ends_with("with id \"priv\""))
        .collect();
    assert_eq!(private.len(), 2, "{private:#?}");

    // A later step alone reuses one of the two instances rather than making a third.
    let later = h.context();
    later.dockerfile("FROM @BASE@\nRUN --mount=type=cache,target=/p,id=priv,sharing=private ls /p > /seen\n");
    let built = h.build(&later, &[]);
    let seen = built.read("/seen");
    assert!(seen == "a\n" || seen == "b\n", "{seen:?}");
    let count = cache_records(&h)
        .iter()
        .filter(|r| r["description"].as_str().unwrap().ends_with("with id \"priv\""))
        .count();
    assert_eq!(count, 2);
}

#[test]
fn mount_options_apply_to_the_cache() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"FROM @BASE@ AS seed
RUN mkdir -p /data/sub && echo seeded > /data/sub/file && chown 7:8 /data/sub && chmod 0701 /data/sub

FROM @BASE@
ARG REV=0
RUN echo "$REV" > /rev
RUN --mount=type=cache,target=/ro,ro if touch /ro/x 2>/dev/null; then echo writable; else echo read-only; fi > /ro-result
RUN --mount=type=cache,target=/m,mode=0750,uid=1234,gid=2345 stat -c '%a %u %g' /m > /m-mode
RUN --mount=type=cache,target=/d stat -c '%a %u %g' /d > /d-mode
RUN --mount=type=cache,target=/s,from=seed,source=/data/sub cat /rev > /dev/null && stat -c '%a %u %g' /s > /s-mode && cat /s/file > /s-seen && echo "more" >> /s/file
COPY --from=seed /data/sub/file /seed-file
RUN --mount=type=cache,target=/t1 cat /rev > /dev/null && echo one > /t1/f
RUN --mount=type=cache,target=/t1 cat /t1/f > /t1-again
RUN --mount=type=cache,target=/t2 ls /t2 > /t2-list
RUN --mount=type=cache,target=/t3,id=/t1 cat /t3/f > /t3-by-id
RUN --mount=type=cache,target=/deep/er/cache touch /deep/er/cache/x
"#,
    );
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/ro-result"), "read-only\n");
    assert_eq!(built.read("/m-mode"), "750 1234 2345\n");
    assert_eq!(built.read("/d-mode"), "755 0 0\n");
    assert_eq!(built.read("/s-mode"), "701 7 8\n");
    assert_eq!(built.read("/s-seen"), "seeded\n");
    // The stage the cache was seeded from is not written.
    assert_eq!(built.read("/seed-file"), "seeded\n");
    // The id defaults to the target: same target, same cache; another target, another cache;
    // an explicit id equal to a target names that cache.
    assert_eq!(built.read("/t1-again"), "one\n");
    assert_eq!(built.read("/t2-list"), "");
    assert_eq!(built.read("/t3-by-id"), "one\n");
    // Mount points that did not exist leave nothing behind.
    for gone in ["/ro", "/m", "/d", "/s", "/t1", "/t2", "/t3", "/deep"] {
        assert!(
            !built.exists(gone),
            "{gone} is in the result: {:?}",
            built.list("/")
        );
    }

    // A seeded cache keeps what steps wrote; a second build does not seed it again.
    let again = h.build(&ctx, &["--build-arg", "REV=1"]);
    assert_eq!(again.read("/s-seen"), "seeded\nmore\n");
    assert_eq!(again.read("/m-mode"), "750 1234 2345\n");
    let descriptions: Vec<String> = cache_records(&h)
        .iter()
        .map(|r| r["description"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(descriptions.len(), 7, "{descriptions:#?}");
    // A cache made with mode/uid/gid or from another stage sits on that base.
    let parents = cache_records(&h).iter().filter(|r| r["parent"].is_u64()).count();
    assert_eq!(parents, 2, "{:#?}", cache_records(&h));
    check_ok(&h);
}

#[test]
fn a_crash_while_making_or_pruning_a_cache_leaves_a_consistent_store() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(PERSIST);
    let context = ctx.path().to_str().unwrap().to_string();
    let build = |rev: &str, fault: Option<&str>| {
        let rev = format!("REV={rev}");
        let env: Vec<(&str, &str)> = fault.map(|f| ("KILN_FAULT", f)).into_iter().collect();
        kiln_env(
            &h,
            &env,
            &["build", "--progress=plain", "--build-arg", &rev, &context],
        )
    };
    let aborted = |output: &Output, point: &str| {
        assert_eq!(
            output.status.signal(),
            Some(6),
            "expected an abort at {point}:\n{}",
            text(&output.stderr)
        );
        assert!(text(&output.stderr).contains(&format!("fault point {point} hit")));
    };

    // Killed with the cache's directory made but not recorded: recovery removes it.
    aborted(&build("0", Some("cachemount.created")), "cachemount.created");
    check_ok(&h);
    assert!(cache_records(&h).is_empty());
    assert_eq!(cache_dirs(&h), 0);
    let built = persist_build(&h, &ctx, "1");
    assert_eq!(built.read("/seen"), "");

    // Killed right after recording a new cache (its step never finished): the cache stays,
    // empty, and the next build uses it.
    kiln_ok(&h, &["prune", "--filter", "type=exec.cachemount"]);
    aborted(&build("2", Some("cachemount.recorded")), "cachemount.recorded");
    check_ok(&h);
    assert_eq!(cache_records(&h).len(), 1);
    let built = persist_build(&h, &ctx, "3");
    assert_eq!(built.read("/seen"), "");
    let built = persist_build(&h, &ctx, "4");
    assert_eq!(built.read("/seen"), "3\n");

    // Killed while pruning, after the records went but before the directories did.
    let output = kiln_env(
        &h,
        &[("KILN_FAULT", "gc.records-removed")],
        &["prune", "--filter", "type=exec.cachemount"],
    );
    aborted(&output, "gc.records-removed");
    check_ok(&h);
    assert!(cache_records(&h).is_empty());
    assert_eq!(cache_dirs(&h), 0);
    let built = persist_build(&h, &ctx, "5");
    assert_eq!(built.read("/seen"), "");
}

#[test]
fn killed_at_any_moment_while_seeding_caches_the_store_stays_consistent() {
    let h = Harness::start();
    let ctx = h.context();
    // A cache seeded from a stage with many files, so that seeding takes a while, and a
    // locked cache next to it.
    ctx.dockerfile(
        r#"FROM @BASE@ AS seed
RUN mkdir -p /data && for i in $(seq 1 400); do echo "$i" > /data/f$i; done

FROM @BASE@
RUN --mount=type=cache,target=/s,from=seed,source=/data --mount=type=cache,target=/l,id=lk,sharing=locked ls /s | wc -l > /count && cat /s/f400 > /last && touch /l/x
"#,
    );
    let context = ctx.path().to_str().unwrap().to_string();
    let _reaper = Reaper(h.kiln.root.path().to_path_buf());
    let start = std::time::Instant::now();
    let built = h.build(&ctx, &[]);
    let first = start.elapsed();
    assert_eq!(built.read("/count").trim(), "400");
    // The reference is the faster of two cold builds: a first build slowed by a busy machine
    // would put the timed kills after the end of the builds they are meant to interrupt.
    kiln_ok(&h, &["prune", "--all"]);
    let start = std::time::Instant::now();
    h.build(&ctx, &[]);
    let reference = first.min(start.elapsed());
    // Kills spread over a build, and one as soon as a cache directory appears (seeding).
    let kills: Vec<Option<f64>> = (0..7)
        .map(|step| Some(0.1 + 0.13 * f64::from(step)))
        .chain([None])
        .collect();
    // One cold build (it pulls, makes its caches and seeds them), killed after `delay` or, with
    // none, as soon as a cache directory appears; then the store must be consistent and a
    // rebuild right. Says whether the kill hit a running build.
    let kill_one = |delay: Option<std::time::Duration>| -> bool {
        kiln_ok(&h, &["prune", "--all"]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--progress=plain", &context])
            .env("KILN_ROOT", h.kiln.root.path())
            .env("KILN_RUNTIME", h.kiln.runtime.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        match delay {
            Some(delay) => std::thread::sleep(delay),
            None => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while cache_dirs(&h) == 0
                    && child.try_wait().unwrap().is_none()
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
        }
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        child.wait().unwrap();
        check_ok(&h);
        let built = h.build(&ctx, &[]);
        assert_eq!(built.read("/count").trim(), "400", "after a kill at {delay:?}");
        assert_eq!(built.read("/last"), "400\n");
        check_ok(&h);
        running
    };
    let mut killed = 0;
    for kill in kills {
        match kill {
            // Builds on a machine that got quieter than during the reference run end sooner: a
            // kill that came too late is tried again, earlier, a few times.
            Some(fraction) => {
                let hit = (0..4)
                    .any(|attempt| kill_one(Some(reference.mul_f64(fraction / f64::from(1 << attempt)))));
                killed += usize::from(hit);
            }
            None => {
                assert!(kill_one(None), "the build ended before it made a cache");
                killed += 1;
            }
        }
    }
    // Timed kills that come after the build finished prove nothing; most must land.
    assert!(killed >= 6, "only {killed} of 8 kills hit a running build");
}
