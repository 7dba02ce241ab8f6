//! RUN end to end through the `kiln` binary: shell and exec form, SHELL, heredoc scripts,
//! `--network=none`, USER and WORKDIR as the process's identity and working directory. Real
//! containers (runc over overlayfs) on the busybox fixture image.

use crate::common::{BASE, Harness};

#[test]
fn run_forms_shell_and_heredocs() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"FROM @BASE@
ENV WHO=world
RUN echo shell-form > /shell-form && echo "$WHO" >> /shell-form
RUN ["/bin/touch", "/exec $WHO"]
RUN echo "$-" > /flags-default
SHELL ["/bin/sh", "-ec"]
RUN echo "$-" > /flags-custom
SHELL ["/bin/busybox", "sh", "-c"]
RUN echo "via $0" > /busybox-shell
SHELL ["/bin/sh", "-c"]
RUN <<EOF
echo line1 > /heredoc
echo "line2 $WHO" >> /heredoc
EOF
RUN <<EOF
#!/bin/awk -f
BEGIN { print "awk ran" > "/shebang-awk" }
EOF
RUN <<EOF
#!/bin/sh
echo "shebang sh $WHO" > /shebang-sh
EOF
RUN <<-EOF
	cat > /tabs <<'INNER'
	indented
	INNER
EOF
RUN cat <<EOF > /cat-expanded
hello $WHO
EOF
RUN cat <<'EOF' > /cat-literal
hello $WHO
EOF
RUN <<EOF sh -s
echo "from stdin" > /stdin-script
EOF
RUN cat <<A > /multi-a && cat <<B > /multi-b
first doc
A
second doc
B
"#,
    );
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/shell-form"), "shell-form\nworld\n");
    // Exec form runs without a shell: no variable expansion, the word is one argument.
    assert!(built.is_file("/exec $WHO"), "{:?}", built.list("/"));
    assert_eq!(built.read("/flags-default"), "c\n");
    assert_eq!(built.read("/flags-custom"), "ce\n");
    assert_eq!(built.read("/busybox-shell"), "via sh\n");
    assert_eq!(built.read("/heredoc"), "line1\nline2 world\n");
    assert_eq!(built.read("/shebang-awk"), "awk ran\n");
    assert_eq!(built.read("/shebang-sh"), "shebang sh world\n");
    // `<<-` strips the leading tabs, so the inner heredoc's delimiter is found.
    assert_eq!(built.read("/tabs"), "indented\n");
    assert_eq!(built.read("/cat-expanded"), "hello world\n");
    assert_eq!(built.read("/cat-literal"), "hello $WHO\n");
    assert_eq!(built.read("/stdin-script"), "from stdin\n");
    // Several heredocs in one command.
    assert_eq!(built.read("/multi-a"), "first doc\n");
    assert_eq!(built.read("/multi-b"), "second doc\n");
    assert_eq!(h.kiln.runtime.runs(), 13, "one container per RUN:\n{}", built.log);
    // The heredoc script and its mount point leave nothing behind in the image.
    assert!(!built.exists("/dev/pipes"), "{:?}", built.list("/dev"));
}

#[test]
fn run_network_user_and_workdir() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        r#"FROM @BASE@
RUN --network=none cat /proc/net/dev > /netdev-none
RUN cat /proc/net/dev > /netdev-default
WORKDIR /work/dir
RUN pwd > here
WORKDIR sub
RUN pwd > here
USER app
RUN id -u > /tmp/app-id && id -g >> /tmp/app-id && touch /home/app/by-app && echo "$HOME" > /tmp/app-home
WORKDIR /created-by-app
RUN pwd > /tmp/app-pwd && touch own-file
USER app:nogroup
RUN id -g > /tmp/app-nogroup
ENV DIR=/from-env
WORKDIR $DIR/sub
USER 1234:5678
RUN id -u > /tmp/numeric-id && id -g >> /tmp/numeric-id && touch /tmp/by-numeric
USER root
RUN id -u > /root-id
"#,
    );
    let built = h.build(&ctx, &[]);
    // With --network=none the container has a loopback interface only.
    let netdev = built.read("/netdev-none");
    let interfaces: Vec<&str> = netdev
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(interfaces, vec!["lo"], "{netdev}");
    // Without --network, RUN has the worker's network: loopback only by default (no bridge
    // here), the host's with --oci-worker-net host.
    let names = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .skip(2)
            .map(|l| l.split(':').next().unwrap().trim().to_string())
            .collect();
        v.sort();
        v
    };
    let netdev = built.read("/netdev-default");
    assert_eq!(names(&netdev), vec!["lo"], "{netdev}");
    let on_host = h.build(&ctx, &["--oci-worker-net", "host", "--no-cache"]);
    let netdev = on_host.read("/netdev-default");
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(names(&netdev), names(&host), "{netdev}");

    // WORKDIR is created and is the working directory of RUN; a relative WORKDIR nests.
    assert_eq!(built.read("/work/dir/here"), "/work/dir\n");
    assert_eq!(built.read("/work/dir/sub/here"), "/work/dir/sub\n");

    // USER by name: uid and gid from /etc/passwd, HOME from the passwd entry; files it
    // creates are its own, and so is a WORKDIR created while it is the user.
    assert_eq!(built.read("/tmp/app-id"), "1000\n1000\n");
    assert_eq!(built.read("/tmp/app-home"), "/home/app\n");
    assert_eq!(built.owner("/home/app/by-app"), (1000, 1000));
    assert_eq!(built.read("/tmp/app-pwd"), "/created-by-app\n");
    assert_eq!(built.owner("/created-by-app"), (1000, 1000));
    assert_eq!(built.owner("/created-by-app/own-file"), (1000, 1000));
    // USER name:group takes the group from /etc/group; WORKDIR expands ENV.
    assert_eq!(built.read("/tmp/app-nogroup"), "65534\n");
    assert!(built.is_dir("/from-env/sub"));

    // USER uid:gid need not exist in /etc/passwd.
    assert_eq!(built.read("/tmp/numeric-id"), "1234\n5678\n");
    assert_eq!(built.owner("/tmp/by-numeric"), (1234, 5678));
    assert_eq!(built.read("/root-id"), "0\n");
    assert_eq!(built.config()["config"]["User"], "root");
    assert_eq!(built.config()["config"]["WorkingDir"], "/from-env/sub");
}

#[test]
fn run_bind_and_tmpfs_mounts() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("a.txt", "a\n");
    ctx.dockerfile(
        r#"FROM @BASE@ AS first
RUN mkdir -p /out && echo from-stage > /out/f

FROM @BASE@
ENV MNT=/ctx-env
WORKDIR /wd
RUN --mount=target=/ctx cat /ctx/a.txt > /from-context && (touch /ctx/new 2>/dev/null && echo writable || echo read-only) > /ctx-ro
RUN --mount=type=bind,from=first,source=/out,target=/m cat /m/f > /from-stage
RUN --mount=type=bind,rw,target=/ctx touch /ctx/new && ls /ctx > /rw-list
RUN --mount=target=/ctx ls /ctx > /after-rw
RUN --mount=type=tmpfs,target=/scratch,size=128m touch /scratch/foo && grep ' /scratch ' /proc/mounts > /tmpfs-mount
RUN [ ! -e /scratch/foo ] && echo gone > /tmpfs-gone
RUN --mount=target=$MNT ls $MNT > /env-target
RUN --mount=target=rel cat rel/a.txt > /relative-target
"#,
    );
    let built = h.build(&ctx, &[]);
    // The default mount is a read-only bind of the build context.
    assert_eq!(built.read("/from-context"), "a\n");
    assert_eq!(built.read("/ctx-ro"), "read-only\n");
    assert_eq!(built.read("/from-stage"), "from-stage\n");
    // A read-write bind lets the command write, but the writes are thrown away.
    assert!(built.read("/rw-list").lines().any(|l| l == "new"));
    assert!(!built.read("/after-rw").lines().any(|l| l == "new"));
    assert!(!ctx.join("new").exists(), "the context itself was written to");
    // tmpfs: sized as asked, empty again in the next step.
    assert!(
        built.read("/tmpfs-mount").contains("size=131072k"),
        "{}",
        built.read("/tmpfs-mount")
    );
    assert_eq!(built.read("/tmpfs-gone"), "gone\n");
    // Mount options expand variables; relative targets resolve against WORKDIR.
    assert!(built.read("/env-target").lines().any(|l| l == "a.txt"));
    assert_eq!(built.read("/relative-target"), "a\n");
    // Mount points made for the mounts do not stay in the image.
    for stub in ["/ctx", "/m", "/scratch", "/ctx-env", "/wd/rel"] {
        assert!(!built.exists(stub), "mount point {stub} left in the result");
    }

    // `from=` also names an image or a named context.
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(extra.path().join("x.txt"), "named\n").unwrap();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN --mount=from={},source=/etc/passwd,target=/p head -1 /p > /from-image\nRUN --mount=from=extra,target=/e cat /e/x.txt > /from-named\n",
        h.base()
    ));
    let named = format!("extra={}", extra.path().display());
    let built = h.build(&ctx, &["--build-context", &named]);
    assert_eq!(built.read("/from-image"), "root:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(built.read("/from-named"), "named\n");
}

#[test]
fn run_process_groups_umask_home_and_default_path() {
    let h = Harness::start();
    // An image without PATH: RUN gets the default one.
    let mut config = testkit::base_config(&["busybox without PATH"]);
    config.config.env = None;
    let image = testkit::FixtureImage::new(config, &[testkit::busybox_layer().unwrap()]).unwrap();
    let no_path = h.push("no-path:latest", &image);
    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM {no_path} AS nopath
RUN echo "$PATH" > /path

FROM @BASE@
COPY --from=nopath /path /nopath
RUN echo "extra:x:2000:app" >> /etc/group && echo "more:x:3000:nobody,app" >> /etc/group
USER app
RUN id -G > /tmp/groups && echo "$HOME" > /tmp/home
USER app:extra
RUN id -G > /tmp/groups-explicit
USER 1234
RUN echo "$HOME" > /tmp/home-numeric
USER root
RUN umask > /umask && touch /file && mkdir /dir && echo "$HOME" > /home-root
"#
    ));
    let built = h.build(&ctx, &[]);
    assert_eq!(
        built.read("/nopath"),
        format!("{}\n", crate::common::DEFAULT_PATH.trim_start_matches("PATH="))
    );
    // Supplementary groups: every /etc/group entry that lists the user, after its own.
    assert_eq!(built.read("/tmp/groups"), "1000 2000 3000\n");
    // An explicit group replaces them, as in Docker.
    assert_eq!(built.read("/tmp/groups-explicit"), "2000\n");
    // HOME from the passwd entry; `/` for a uid without one.
    assert_eq!(built.read("/tmp/home"), "/home/app\n");
    assert_eq!(built.read("/tmp/home-numeric"), "/\n");
    assert_eq!(built.read("/home-root"), "/root\n");
    // umask 0022, so new files are 0644 and directories 0755.
    assert_eq!(built.read("/umask"), "0022\n");
    assert_eq!(built.mode("/file"), 0o644);
    assert_eq!(built.mode("/dir"), 0o755);
}

#[test]
fn run_hostname_follows_buildkit_sandbox_hostname() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        "FROM @BASE@\nRUN hostname > /name && cat /etc/hostname > /etc-name && grep -c \"localhost $(hostname)\" /etc/hosts > /hosts\n",
    );
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/name"), "buildkitsandbox\n");
    assert_eq!(built.read("/etc-name"), "buildkitsandbox\n");
    assert_eq!(built.read("/hosts"), "1\n");

    // The built-in arg names the sandbox, in /etc/hostname and /etc/hosts too, and is part of
    // the step's cache key: the step runs again.
    let built = h.build(&ctx, &["--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=kilnbox"]);
    assert_eq!(built.read("/name"), "kilnbox\n");
    assert_eq!(built.read("/etc-name"), "kilnbox\n");
    assert_eq!(built.read("/hosts"), "1\n");
}

#[test]
fn run_add_host_entries_reach_etc_hosts() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile("FROM @BASE@\nRUN tail -n 2 /etc/hosts > /extra\n");
    let built = h.build(&ctx, &["--add-host", "db:10.1.2.3", "--add-host", "v6=[fd00::7]"]);
    assert_eq!(built.read("/extra"), "10.1.2.3\tdb\nfd00::7\tv6\n");
    // The entries are part of the step's cache key, as in BuildKit.
    let built = h.build(&ctx, &["--add-host", "db:10.9.9.9"]);
    assert_eq!(
        built.read("/extra"),
        "::1\tlocalhost ip6-localhost ip6-loopback\n10.9.9.9\tdb\n"
    );
    // A bad address is a usage error before anything runs.
    let output = h.kiln.run(&["build", "--add-host", "db:10.1.2", "."]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"10.1.2\" is not an IP address"), "{stderr}");
}

#[test]
fn run_ulimit_and_shm_size_flags_reach_every_step() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(
        "FROM @BASE@\nRUN cat /proc/self/limits > /limits && grep ' /dev/shm ' /proc/mounts > /shm\n",
    );
    let limit = |limits: &str, name: &str| -> Vec<String> {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {limits}"));
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_string)
            .collect()
    };
    let built = h.build(&ctx, &[]);
    assert!(
        built.read("/shm").contains("size=65536k"),
        "{}",
        built.read("/shm")
    );
    let built = h.build(
        &ctx,
        &[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=-1",
            "--shm-size",
            "128m",
        ],
    );
    let limits = built.read("/limits");
    assert_eq!(limit(&limits, "Max open files"), ["1024", "2048"], "{limits}");
    assert_eq!(
        limit(&limits, "Max core file size"),
        ["unlimited", "unlimited"],
        "{limits}"
    );
    assert!(
        built.read("/shm").contains("size=131072k"),
        "{}",
        built.read("/shm")
    );
    // A bad value is a usage error naming the flag.
    let output = h.kiln.run(&["build", "--ulimit", "nofile=9:1", "."]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ulimit"), "{stderr}");
}

#[test]
fn run_with_huge_binary_output_finishes() {
    let h = Harness::start();
    let ctx = h.context();
    // 100 MB of random bytes (invalid UTF-8, lines of any length) and 50 MB without a single
    // newline, on both streams.
    ctx.dockerfile(
        "FROM @BASE@\nRUN head -c 100000000 /dev/urandom && head -c 50000000 /dev/zero >&2 && echo done > /done\n",
    );
    let start = std::time::Instant::now();
    let built = h.build(&ctx, &[]);
    let took = start.elapsed();
    assert_eq!(built.read("/done"), "done\n");
    assert!(
        took < std::time::Duration::from_secs(60),
        "the build took {took:?}"
    );
    // The display shows the first 2 MiB of the step's output, then BuildKit's note, once.
    let clipped = "[output clipped, log limit 2MiB reached]";
    assert_eq!(built.log.matches(clipped).count(), 1, "{}", &built.log[..2000]);
    assert!(built.log.len() < 10 << 20, "{} bytes shown", built.log.len());

    // The same for programs: json progress clips the step's log events too.
    let start = std::time::Instant::now();
    let output = h.kiln.run(&[
        "build",
        "--progress=json",
        "--no-cache",
        ctx.path().to_str().unwrap(),
    ]);
    let took = start.elapsed();
    assert!(output.status.success());
    assert!(
        took < std::time::Duration::from_secs(60),
        "the build took {took:?}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches(clipped).count(), 1);
    assert!(stderr.len() < 10 << 20, "{} bytes shown", stderr.len());
}
