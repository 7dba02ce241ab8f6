//! COPY and ADD end to end through the `kiln` binary: sources and destinations, `--from`,
//! `--chown`, `--chmod`, `--link`, `--parents`, `--exclude`, heredocs, local archives, HTTP
//! downloads with checksums, and git repositories served over plain (dumb) HTTP. Real builds on
//! the busybox fixture image; results are read from the exported directory and OCI image.

use crate::common::{
    Harness, HttpServer, LAST_MODIFIED_EPOCH, assert_points_at, bare_for_dumb_http, git, sha256_hex,
};

#[test]
fn copy_from_the_context_sources_and_destinations() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("a.txt", "a\n")
        .chown("a.txt", 1234, 1234)
        .write("b.txt", "b\n")
        .write("c.md", "c\n")
        .write("dir/one", "one\n")
        .write("dir/sub/two", "two\n")
        .write("dir/.hidden", "hidden\n")
        .symlink("dir/link", "one")
        .symlink("dir/abs-link", "/etc/passwd")
        .chown("dir/sub/two", 42, 43)
        .write("exec.sh", "#!/bin/sh\n")
        .chmod("exec.sh", 0o755)
        .symlink("linked-file", "a.txt")
        .symlink("linkdir", "dir");
    ctx.dockerfile(
        r#"FROM @BASE@
COPY a.txt /single
COPY a.txt /intodir/
COPY dir /dircontents
COPY dir/ /dircontents-slash/
COPY *.txt /wild/
COPY a.txt b.txt /multi/
COPY nomatch* a.txt /emptywild/
WORKDIR /wd
COPY a.txt rel/
COPY b.txt .
COPY exec.sh /exec.sh
COPY linked-file /deref
COPY ["c.md", "/json form/"]
COPY linkdir/sub/two /through-link
ENV SRC=c.md DEST=/var-sub
COPY $SRC ${DEST}/
"#,
    );
    let built = h.build(&ctx, &[]);
    // A file to a file name; context files become root's, keeping their permission bits.
    assert_eq!(built.read("/single"), "a\n");
    assert_eq!(built.owner("/single"), (0, 0));
    assert_eq!(built.mode("/single"), 0o644);
    assert_eq!(built.read("/intodir/a.txt"), "a\n");
    // A directory source copies its contents (hidden files included), not the directory.
    assert_eq!(
        built.list("/dircontents"),
        vec![".hidden", "abs-link", "link", "one", "sub"]
    );
    assert_eq!(built.read("/dircontents/sub/two"), "two\n");
    assert_eq!(built.owner("/dircontents/sub/two"), (0, 0));
    assert_eq!(built.list("/dircontents-slash"), built.list("/dircontents"));
    // Symlinks inside a copied directory stay symlinks, targets untouched.
    assert_eq!(built.link("/dircontents/link"), "one");
    assert_eq!(built.link("/dircontents/abs-link"), "/etc/passwd");
    // Wildcards, several sources, and a wildcard matching nothing beside one that matches.
    assert_eq!(built.list("/wild"), vec!["a.txt", "b.txt"]);
    assert_eq!(built.list("/multi"), vec!["a.txt", "b.txt"]);
    assert_eq!(built.list("/emptywild"), vec!["a.txt"]);
    // Relative destinations resolve against WORKDIR.
    assert_eq!(built.read("/wd/rel/a.txt"), "a\n");
    assert_eq!(built.read("/wd/b.txt"), "b\n");
    assert_eq!(built.mode("/exec.sh"), 0o755);
    // A source named through a symlink is copied as the file it points to.
    assert!(built.is_file("/deref"));
    assert_eq!(built.read("/deref"), "a\n");
    assert_eq!(built.read("/json form/c.md"), "c\n");
    // A path through a symlinked directory of the context is followed.
    assert_eq!(built.read("/through-link"), "two\n");
    // Sources and destinations expand variables.
    assert_eq!(built.read("/var-sub/c.md"), "c\n");
}

#[test]
fn copy_from_stages_and_images_with_chown_and_chmod() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("a.txt", "a\n");
    ctx.dockerfile(
        r#"FROM @BASE@ AS first
RUN mkdir -p /out/sub && echo one > /out/f && echo two > /out/sub/g && chown -R 1000:1000 /out && chmod 0750 /out/sub
WORKDIR /out/sub

FROM @BASE@
COPY --from=first /out/f /by-name
COPY --from=first out/f /relative-source
COPY --from=0 /out /by-index/
COPY --from=@BASE@ /etc/group /group-from-image
COPY --chown=app:app a.txt /owned-by-name
COPY --chown=1234:5678 a.txt /owned-by-id
COPY --chown=app a.txt /owned-user-only
COPY --chown=1234:5678 --from=first /out /chowned-dir/
COPY --chmod=0640 a.txt /mode-octal
COPY --chmod=u=rwx,go=rx a.txt /mode-symbolic
COPY --chmod=go-w,u+x a.txt /mode-relative
COPY --chmod=777 a.txt /parent/foo
COPY --chmod=770 a.txt /parent/sub/foo
COPY --chown=1234:5678 a.txt /home/app/
ARG OWNER=app
COPY --chown=${OWNER}:nogroup a.txt /owned-by-arg
"#,
    );
    let built = h.build(&ctx, &[]);
    // From a stage, by name and by index: ownership and modes of the stage are kept.
    assert_eq!(built.read("/by-name"), "one\n");
    assert_eq!(built.owner("/by-name"), (1000, 1000));
    assert_eq!(built.read("/by-index/f"), "one\n");
    assert_eq!(built.read("/by-index/sub/g"), "two\n");
    assert_eq!(built.mode("/by-index/sub"), 0o750);
    assert_eq!(built.owner("/by-index/sub/g"), (1000, 1000));
    // --from sources are absolute in the source stage, whatever its WORKDIR.
    assert_eq!(built.read("/relative-source"), "one\n");
    // From an image that is not a stage.
    assert!(built.read("/group-from-image").contains("app:x:1000:"));
    // --chown with names resolved from the image's /etc/passwd and /etc/group, or with ids.
    assert_eq!(built.owner("/owned-by-name"), (1000, 1000));
    assert_eq!(built.owner("/owned-by-id"), (1234, 5678));
    assert_eq!(built.owner("/owned-user-only"), (1000, 1000));
    assert_eq!(built.owner("/owned-by-arg"), (1000, 65534));
    assert_eq!(built.owner("/chowned-dir/f"), (1234, 5678));
    assert_eq!(built.owner("/chowned-dir/sub"), (1234, 5678));
    assert_eq!(built.owner("/chowned-dir/sub/g"), (1234, 5678));
    // --chmod, octal and symbolic; directories it creates on the way get the mode too.
    assert_eq!(built.mode("/mode-octal"), 0o640);
    assert_eq!(built.mode("/mode-symbolic"), 0o755);
    assert_eq!(built.mode("/mode-relative"), 0o744);
    assert_eq!(built.mode("/parent/foo"), 0o777);
    assert_eq!(built.mode("/parent/sub/foo"), 0o770);
    assert_eq!(built.mode("/parent"), 0o777);
    assert_eq!(built.mode("/parent/sub"), 0o770);
    // Copying into an existing directory leaves the directory's owner alone.
    assert_eq!(built.owner("/home/app/a.txt"), (1234, 5678));
    assert_eq!(built.owner("/home/app"), (1000, 1000));
}

#[test]
fn copy_link_parents_exclude_and_heredocs() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("a.txt", "a\n")
        .write("dir/one", "one\n")
        .write("a/b/x.txt", "x\n")
        .write("a/b/y.txt", "y\n")
        .write("a/b/z.md", "z\n")
        .write("tree/keep.txt", "keep\n")
        .write("tree/skip.md", "skip\n")
        .write("tree/sub/inner.txt", "inner\n")
        .write("tree/other/deep.md", "deep\n")
        .write("tree/other/keep2.txt", "keep2\n");
    ctx.dockerfile(
        r#"FROM @BASE@
RUN echo base > /base-marker
COPY --link a.txt /linked/a.txt
COPY --link dir/ /linked-dir/
COPY --parents a/b/*.txt /parents/
COPY --parents a/./b/x.txt /pivot/
COPY --exclude=*.md --exclude=sub tree /excluded/
ARG NAME=world
ENV GREETING=hello
COPY <<EOF /heredoc-expanded
$GREETING $NAME
EOF
COPY <<'EOF' /heredoc-literal
$GREETING $NAME
EOF
COPY --chmod=0755 <<one <<two /heredocs/
first
one
second
two
COPY --chown=app:app <<EOF /owned-heredoc
owned
EOF
USER app
COPY a.txt /copied-as-app
"#,
    );
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/linked/a.txt"), "a\n");
    assert_eq!(built.read("/linked-dir/one"), "one\n");
    assert_eq!(built.read("/base-marker"), "base\n");
    // A linked copy is a layer of its own that holds only what it copied.
    let layers = built.layers();
    let linked = layers
        .iter()
        .find(|l| l.iter().any(|e| e == "linked/a.txt"))
        .unwrap_or_else(|| panic!("no layer holds linked/a.txt: {layers:?}"));
    assert!(
        linked.iter().all(|e| e.starts_with("linked/")),
        "the linked layer holds more than the copy: {linked:?}"
    );
    assert!(layers.iter().any(|l| l.iter().any(|e| e == "linked-dir/one")));

    // --parents keeps the source's directories, below a `./` pivot when there is one.
    assert_eq!(built.list("/parents/a/b"), vec!["x.txt", "y.txt"]);
    assert_eq!(built.list("/pivot"), vec!["b"]);
    assert_eq!(built.read("/pivot/b/x.txt"), "x\n");

    // --exclude leaves out what its patterns match, relative to the copied directory: `*.md`
    // matches at its top level only (no `**`), and a matched directory goes whole.
    assert_eq!(built.list("/excluded"), vec!["keep.txt", "other"]);
    assert_eq!(built.list("/excluded/other"), vec!["deep.md", "keep2.txt"]);

    // Heredoc sources: expanded unless the delimiter is quoted, mode 0644 unless --chmod, one
    // file per heredoc named after its delimiter when the destination is a directory.
    assert_eq!(built.read("/heredoc-expanded"), "hello world\n");
    assert_eq!(built.mode("/heredoc-expanded"), 0o644);
    assert_eq!(built.read("/heredoc-literal"), "$GREETING $NAME\n");
    assert_eq!(built.list("/heredocs"), vec!["one", "two"]);
    assert_eq!(built.read("/heredocs/one"), "first\n");
    assert_eq!(built.read("/heredocs/two"), "second\n");
    assert_eq!(built.mode("/heredocs/two"), 0o755);
    assert_eq!(built.owner("/owned-heredoc"), (1000, 1000));
    // USER does not apply to COPY: without --chown, files are root's.
    assert_eq!(built.owner("/copied-as-app"), (0, 0));
}

#[test]
fn add_extracts_local_archives() {
    let h = Harness::start();
    let ctx = h.context();
    ctx.write("src/f1", "one\n")
        .write("src/d/f2", "two\n")
        .tar(&["-czf", "archive.tar.gz", "-C", "src", "."])
        .tar(&["-cf", "plain.tar", "-C", "src", "."]);
    std::fs::copy(ctx.join("archive.tar.gz"), ctx.join("disguised.bin")).unwrap();
    ctx.write("notes.txt", "notes\n");
    ctx.dockerfile(
        r#"FROM @BASE@
ADD archive.tar.gz /extracted/
ADD plain.tar /extracted-plain/
ADD disguised.bin /extracted-by-content/
ADD --unpack=false archive.tar.gz /kept/
ADD notes.txt /added-notes.txt
ADD --chown=1234:5678 archive.tar.gz /extracted-owned/
ADD --link archive.tar.gz /linked-extract/
ADD --exclude=d src /added-dir/
ADD --chmod=0600 notes.txt /notes-0600
"#,
    );
    let built = h.build(&ctx, &[]);
    assert_eq!(built.read("/extracted/f1"), "one\n");
    assert_eq!(built.read("/extracted/d/f2"), "two\n");
    assert_eq!(built.read("/extracted-plain/d/f2"), "two\n");
    // Archives are recognised by their content, not their name.
    assert_eq!(built.read("/extracted-by-content/f1"), "one\n");
    assert_eq!(built.list("/kept"), vec!["archive.tar.gz"]);
    assert_eq!(
        std::fs::read(built.path("/kept/archive.tar.gz")).unwrap(),
        std::fs::read(ctx.join("archive.tar.gz")).unwrap()
    );
    assert_eq!(built.read("/added-notes.txt"), "notes\n");
    assert_eq!(built.owner("/extracted-owned/d/f2"), (1234, 5678));
    assert_eq!(built.read("/linked-extract/d/f2"), "two\n");
    // A local directory is copied like COPY does, here without what --exclude names.
    assert_eq!(built.list("/added-dir"), vec!["f1"]);
    assert_eq!(built.mode("/notes-0600"), 0o600);
}

#[test]
fn add_downloads_urls_and_verifies_checksums() {
    let h = Harness::start();
    let served = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(served.path().join("files/src")).unwrap();
    std::fs::write(served.path().join("files/data.txt"), "downloaded\n").unwrap();
    std::fs::write(served.path().join("files/src/inner"), "inner\n").unwrap();
    let status = std::process::Command::new("tar")
        .args(["-czf", "archive.tar.gz", "-C", "src", "."])
        .current_dir(served.path().join("files"))
        .status()
        .unwrap();
    assert!(status.success());
    let server = HttpServer::serve(served.path());
    let data = server.url("files/data.txt");
    let sum = sha256_hex(b"downloaded\n");
    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM @BASE@
ADD {data} /downloads/
ADD --checksum=sha256:{sum} {data} /checked.txt
ADD --chmod=0644 {data} /chmodded.txt
ADD {archive} /not-unpacked/
"#,
        archive = server.url("files/archive.tar.gz"),
    ));
    let built = h.build(&ctx, &[]);
    // A destination ending in `/` takes the file name from the URL; downloads are 0600.
    assert_eq!(built.list("/downloads"), vec!["data.txt"]);
    assert_eq!(built.read("/downloads/data.txt"), "downloaded\n");
    assert_eq!(built.mode("/downloads/data.txt"), 0o600);
    assert_eq!(built.owner("/downloads/data.txt"), (0, 0));
    // The file's mtime is the server's Last-Modified.
    assert_eq!(built.mtime("/downloads/data.txt"), LAST_MODIFIED_EPOCH);
    assert_eq!(built.read("/checked.txt"), "downloaded\n");
    assert_eq!(built.mode("/chmodded.txt"), 0o644);
    // Remote archives are not unpacked.
    assert_eq!(built.list("/not-unpacked"), vec!["archive.tar.gz"]);
    assert!(built.is_file("/not-unpacked/archive.tar.gz"));

    let ctx = h.context();
    let wrong = "0".repeat(64);
    ctx.dockerfile(&format!(
        "FROM @BASE@\nADD --checksum=sha256:{wrong} {data} /checked.txt\n"
    ));
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 2, "ADD --checksum=sha256:");
    assert!(err.contains("mismatch"), "{err}");
    assert!(err.contains(&sum), "the error names the actual digest:\n{err}");
}

#[test]
fn add_authenticates_with_buildkit_auth_secrets() {
    let h = Harness::start();
    // A file behind a bearer token.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("private.txt"), "private\n").unwrap();
    let server = HttpServer::serve_with_auth(files.path(), Some("Bearer s3cr3t-token"));
    // A git repository over dumb HTTP behind git's token form (basic, user x-access-token):
    // "x-access-token:git-t0ken" in base64.
    let repos = tempfile::tempdir().unwrap();
    let work = repos.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("README"), "private repo\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    let served = bare_for_dumb_http(repos.path());
    let git_server = HttpServer::serve_with_auth(&served, Some("basic eC1hY2Nlc3MtdG9rZW46Z2l0LXQwa2Vu"));

    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM @BASE@\nADD {file} /private.txt\nADD {repo}#main /repo/\n",
        file = server.url("private.txt"),
        repo = git_server.url("repo.git"),
    ));
    // Without the secrets both sources are refused.
    let unauthenticated = |line: &str| {
        let ctx = h.context();
        ctx.dockerfile(&format!("FROM @BASE@\n{line}\n"));
        h.build_err(&ctx, &[])
    };
    let err = unauthenticated(&format!("ADD {} /private.txt", server.url("private.txt")));
    assert!(err.contains("invalid response status 401"), "{err}");
    let err = unauthenticated(&format!("ADD {}#main /repo/", git_server.url("repo.git")));
    assert!(err.contains("could not read Username"), "{err}");

    let secrets = tempfile::tempdir().unwrap();
    // `--secret id=ID,src=FILE` with `value` in the file.
    let secret = |id: &str, value: &str| -> [String; 2] {
        let file = secrets.path().join(id);
        std::fs::write(&file, value).unwrap();
        ["--secret".into(), format!("id={id},src={}", file.display())]
    };
    let args = [
        secret("HTTP_AUTH_TOKEN_127.0.0.1", "s3cr3t-token"),
        secret("GIT_AUTH_TOKEN", "git-t0ken"),
    ]
    .concat();
    let built = h.build(&ctx, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(built.read("/private.txt"), "private\n");
    assert_eq!(built.read("/repo/README"), "private repo\n");
    // A header secret is sent as it is, and the host-specific git secret wins over the plain one.
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM @BASE@\nADD {repo}#main /again/\n",
        repo = git_server.url("repo.git"),
    ));
    let host = git_server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let built = h.build(
        &ctx,
        &[
            secret(
                &format!("GIT_AUTH_HEADER.{host}"),
                "basic eC1hY2Nlc3MtdG9rZW46Z2l0LXQwa2Vu",
            ),
            secret("GIT_AUTH_TOKEN", "wrong-token"),
        ]
        .concat()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert_eq!(built.read("/again/README"), "private repo\n");
    // No secret value reached the state directory or the build's output.
    for value in ["s3cr3t-token", "git-t0ken", "eC1hY2Nlc3MtdG9rZW46Z2l0LXQwa2Vu"] {
        let found = crate::common::files_containing(h.kiln.root.path(), value.as_bytes());
        assert!(found.is_empty(), "{value} found in {found:?}");
        assert!(!built.log.contains(value), "{value} in the build output");
    }
}

#[test]
fn add_git_repository_over_http() {
    let h = Harness::start();
    let repos = tempfile::tempdir().unwrap();
    let work = repos.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("README"), "main readme\n").unwrap();
    std::fs::write(work.join("sub/inner.txt"), "main inner\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    let main_commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("sub/inner.txt"), "feature inner\n").unwrap();
    std::fs::write(work.join("sub/extra.txt"), "extra\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    git(&work, &["checkout", "-q", "main"]);
    let served = bare_for_dumb_http(repos.path());
    let server = HttpServer::serve(&served);
    let repo = server.url("repo.git");

    let ctx = h.context();
    ctx.dockerfile(&format!(
        r#"FROM @BASE@
ADD {repo}#feature:sub /from-git/
ADD --keep-git-dir=true {repo}#main /with-git/
ADD {repo} /default-branch/
ADD {repo}?ref=feature&subdir=sub /query-form/
ADD --checksum={main_commit} {repo}#main /pinned/
"#
    ));
    let built = h.build(&ctx, &[]);
    // A branch and a subdirectory: only that directory's contents, without `.git`.
    assert_eq!(built.list("/from-git"), vec!["extra.txt", "inner.txt"]);
    assert_eq!(built.read("/from-git/inner.txt"), "feature inner\n");
    // --keep-git-dir keeps the repository, checked out at the branch's commit.
    assert!(built.is_dir("/with-git/.git"));
    assert_eq!(built.read("/with-git/sub/inner.txt"), "main inner\n");
    let head = git(
        &built.path("/with-git"),
        &["-c", "safe.directory=*", "rev-parse", "HEAD"],
    );
    assert_eq!(head.trim(), main_commit);
    // No ref: the remote's HEAD.
    assert_eq!(built.list("/default-branch"), vec!["README", "sub"]);
    assert_eq!(built.read("/default-branch/sub/inner.txt"), "main inner\n");
    // The query-string form of the same reference.
    assert_eq!(built.list("/query-form"), vec!["extra.txt", "inner.txt"]);
    // --checksum pins the commit the ref must resolve to…
    assert_eq!(built.read("/pinned/README"), "main readme\n");
    // …and a ref that resolves to another commit fails the build.
    let ctx = h.context();
    ctx.dockerfile(&format!(
        "FROM @BASE@\nADD --checksum={main_commit} {repo}#feature /pinned/\n"
    ));
    let err = h.build_err(&ctx, &[]);
    assert_points_at(&err, 2, "ADD --checksum=");
    assert!(err.contains(&main_commit), "{err}");
}
