//! Secrets and SSH agents (`RUN --mount=type=secret|ssh`, `--secret`, `--ssh`): steps see them,
//! and nothing else ever does — not a layer, the config, the cache index, the build log or the
//! progress output.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::{BASE, Harness, assert_points_at, files_containing, sha256_hex};

#[test]
fn secrets_reach_steps_and_nothing_else() {
    let h = Harness::start();
    // Values no build could produce by accident.
    let file_secret = "kiln-file-secret-5d1f0c9a7e";
    let env_secret = "kiln-env-secret-83b2e6f14c";
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("token.txt");
    std::fs::write(&secret_file, file_secret).unwrap();
    h.kiln
        .env
        .borrow_mut()
        .push(("KILN_TEST_ENV_SECRET".into(), env_secret.into()));

    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM {BASE}
ENV API_TOKEN=placeholder
RUN --mount=type=secret,id=filetok sha256sum /run/secrets/filetok | cut -d' ' -f1 > /file-sha && stat -c '%a %u %g' /run/secrets/filetok > /file-stat
RUN --mount=type=secret,id=filetok,target=/custom/tok,mode=0440,uid=1000,gid=1000 stat -c '%a %u %g' /custom/tok > /custom-stat && sha256sum /custom/tok | cut -d' ' -f1 > /custom-sha
RUN --mount=type=secret,id=envtok,env=API_TOKEN printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1 > /env-sha && if [ -e /run/secrets/envtok ]; then echo file > /env-file; else echo none > /env-file; fi
RUN --mount=type=secret,id=envtok,env=SECOND,target=/both printf %s "$SECOND" | sha256sum | cut -d' ' -f1 > /both-env-sha && sha256sum /both | cut -d' ' -f1 > /both-file-sha
RUN --mount=type=secret,id=absent (test -e /run/secrets/absent && echo mounted || echo nothing) > /absent && echo "${{API_TOKEN}}" > /env-after
"#
    ));
    let file_arg = format!("id=filetok,src={}", secret_file.display());
    let built = h.build(
        &ctx,
        &[
            "--secret",
            &file_arg,
            "--secret",
            "id=envtok,env=KILN_TEST_ENV_SECRET",
        ],
    );
    let file_sha = sha256_hex(file_secret.as_bytes());
    let env_sha = sha256_hex(env_secret.as_bytes());
    // The steps saw the values, as files with the right mode and owner, or as variables.
    assert_eq!(built.read("/file-sha").trim(), file_sha);
    assert_eq!(
        built.read("/file-stat"),
        "400 0 0\n",
        "default mode 0400, owned by root"
    );
    assert_eq!(built.read("/custom-stat"), "440 1000 1000\n");
    assert_eq!(built.read("/custom-sha").trim(), file_sha);
    assert_eq!(built.read("/env-sha").trim(), env_sha);
    assert_eq!(built.read("/env-file"), "none\n", "env= alone mounts no file");
    assert_eq!(built.read("/both-env-sha").trim(), env_sha);
    assert_eq!(built.read("/both-file-sha").trim(), env_sha);
    assert_eq!(
        built.read("/absent"),
        "nothing\n",
        "a missing optional secret mounts nothing, as BuildKit skips it"
    );
    assert_eq!(
        built.read("/env-after"),
        "placeholder\n",
        "the secret replaced ENV only in its step"
    );
    // No mount point was left behind.
    assert!(!built.exists("/run/secrets"), "{:?}", built.list("/"));
    assert!(!built.exists("/custom"), "{:?}", built.list("/"));
    assert!(!built.exists("/both"));
    // The step name hides the variable.
    assert!(built.log.contains("****"), "{}", built.log);

    // Nowhere else: the exported image (and its layers), the state directory with the cache
    // index and the build logs, the progress output. (The scanner does find what is there: the
    // secret in its own file, and a step's output inside a compressed layer.)
    assert_eq!(
        files_containing(secrets.path(), file_secret.as_bytes()),
        vec![secret_file.clone()]
    );
    assert!(!files_containing(&built.layout.join("blobs"), env_sha.as_bytes()).is_empty());
    for secret in [file_secret, env_secret] {
        for dir in [built.layout.as_path(), h.kiln.root.path()] {
            let found = files_containing(dir, secret.as_bytes());
            assert!(found.is_empty(), "{secret} found in {found:?}");
        }
        assert!(!built.log.contains(secret), "{secret} in the progress output");
        let oci = std::fs::read(&built.oci).unwrap();
        assert!(!oci.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // The same values: every step is a cache hit.
    let args = [
        "--secret",
        &file_arg,
        "--secret",
        "id=envtok,env=KILN_TEST_ENV_SECRET",
    ];
    let again = h.build(&ctx, &args);
    assert_eq!(again.log.matches("CACHED").count(), 6, "{}", again.log);
    // Another value: the steps that mount it run again and see it (a build never gets a result
    // made with another build's secret; kiln keys such steps by a keyed digest of the values,
    // where BuildKit would reuse the result), while the steps before it stay cached.
    std::fs::write(&secret_file, "another value").unwrap();
    let changed = h.build(&ctx, &args);
    assert_eq!(changed.read("/file-sha").trim(), sha256_hex(b"another value"));
    let cached = |text: &str| {
        changed
            .log
            .contains(&format!("{} CACHED", step_number(&changed.log, text)))
    };
    assert!(cached("FROM"), "the base stays cached: {}", changed.log);
    assert!(
        !cached("id=filetok sha256sum"),
        "the step that mounts it reran: {}",
        changed.log
    );
    let state = files_containing(h.kiln.root.path(), b"another value");
    assert!(state.is_empty(), "the new value is stored nowhere: {state:?}");
}

/// The `#N` of the step whose line contains `text` in a plain progress log.
fn step_number(log: &str, text: &str) -> String {
    log.lines()
        .find(|l| l.starts_with('#') && l.contains(text))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("#?")
        .to_string()
}

#[test]
fn missing_required_secrets_and_agents_fail_at_their_line() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN echo before\nRUN --mount=type=secret,id=mysecret,required cat /run/secrets/mysecret\n"
    ));
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("secret mysecret: not found"), "{err}");
    assert_points_at(
        &err,
        3,
        "RUN --mount=type=secret,id=mysecret,required cat /run/secrets/mysecret",
    );

    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN --mount=type=secret,id=tok,env=TOK,required true\n"
    ));
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("secret tok: not found"), "{err}");
    assert_points_at(&err, 2, "RUN --mount=type=secret,id=tok,env=TOK,required true");

    ctx.dockerfile(&format!("FROM {BASE}\nRUN --mount=type=ssh,required true\n"));
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("no SSH agent \"default\" was forwarded"), "{err}");
    assert_points_at(&err, 2, "RUN --mount=type=ssh,required true");
    // An optional agent that is missing is simply not mounted.
    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN --mount=type=ssh ls /run > /run-list 2>&1 || echo none > /run-list\n"
    ));
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/run-list"), "none\n");

    // A bad mode is refused at its line, before anything runs.
    ctx.dockerfile(&format!(
        "FROM {BASE}\nRUN echo ok\nRUN --mount=type=secret,id=x,mode=99x true\n"
    ));
    let err = h.build_err(&ctx, &[]);
    assert!(err.contains("invalid value 99x for mode"), "{err}");
    assert_points_at(&err, 3, "RUN --mount=type=secret,id=x,mode=99x true");

    // Flags are checked before anything runs.
    let output = h.run_build(ctx.path(), &["--secret", "id=x,src=/no/such/secret"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a file"));
}

/// A throwaway key pair and an `ssh-agent` holding it; the agent is killed on drop.
pub(crate) struct Agent {
    dir: tempfile::TempDir,
    process: Child,
}

impl Agent {
    pub(crate) fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test-key", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client) is installed");
        assert!(status.success());
        let socket = dir.path().join("agent.sock");
        let process = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .status()
            .unwrap();
        assert!(status.success());
        Agent { dir, process }
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    pub(crate) fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// The key's `SHA256:…` fingerprint.
    pub(crate) fn fingerprint(&self) -> String {
        let output = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.key())
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The busybox image plus the host's `ssh-add` and the libraries it loads.
pub(crate) fn ssh_tools_image() -> testkit::FixtureImage {
    let mut layer = testkit::LayerBuilder::new();
    let mut files = vec![PathBuf::from("/usr/bin/ssh-add")];
    let ldd = Command::new("ldd").arg("/usr/bin/ssh-add").output().unwrap();
    for line in String::from_utf8(ldd.stdout).unwrap().lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux… (0x…)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(path));
        }
    }
    for file in files {
        let contents = std::fs::read(&file).unwrap();
        layer.file(file.to_str().unwrap(), 0o755, contents);
    }
    let config = testkit::base_config(&["busybox", "ssh-add"]);
    testkit::FixtureImage::new(config, &[testkit::busybox_layer().unwrap(), layer]).unwrap()
}

#[test]
fn ssh_agents_are_forwarded_and_keys_stay_outside() {
    let h = Harness::start();
    let agent = Agent::start();
    let image = h.push("tools/ssh:latest", &ssh_tools_image());
    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM {image}
RUN --mount=type=ssh ssh-add -l > /keys-default && echo "$SSH_AUTH_SOCK" > /sock && stat -c '%a %u' "$SSH_AUTH_SOCK" > /sock-stat
RUN --mount=type=ssh,id=fromkey,target=/agent.sock,uid=1000,gid=1001,mode=0660 SSH_AUTH_SOCK=/agent.sock ssh-add -l > /keys-fromkey && stat -c '%a %u %g' /agent.sock > /agent-stat
"#
    ));
    let default_arg = format!("default={}", agent.socket().display());
    let key_arg = format!("fromkey={}", agent.key().display());
    let built = h.build(&ctx, &["--ssh", &default_arg, "--ssh", &key_arg]);
    let fingerprint = agent.fingerprint();
    assert!(
        built.read("/keys-default").contains(&fingerprint),
        "{}",
        built.read("/keys-default")
    );
    assert!(
        built.read("/keys-fromkey").contains(&fingerprint),
        "{}",
        built.read("/keys-fromkey")
    );
    assert_eq!(built.read("/sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(built.read("/sock-stat"), "600 0\n");
    assert_eq!(built.read("/agent-stat"), "660 1000 1001\n");
    assert!(!built.exists("/run/buildkit"), "{:?}", built.list("/"));
    assert!(!built.exists("/agent.sock"));
    // The private key is in no layer, and not in the state directory.
    let private = std::fs::read_to_string(agent.key()).unwrap();
    let body = private.lines().nth(1).unwrap();
    for dir in [built.layout.as_path(), h.kiln.root.path()] {
        let found = files_containing(dir, body.as_bytes());
        assert!(found.is_empty(), "private key found in {found:?}");
    }
}
