//! Where a build's context and Dockerfile come from, as buildx takes them: a directory (with
//! `-f -`, the Dockerfile from standard input), or `-`: standard input holding either a
//! Dockerfile (the context is then empty) or a context archive (a tar, plain or compressed with
//! gzip, bzip2, xz or zstd, told by its first bytes; `-f` names the Dockerfile inside it), or a
//! git repository (`https://host/repo.git#ref:subdir`, `git@host:repo.git`, `git://…`,
//! `github.com/owner/repo`), which the engine checks out (`-f` is then a path inside the
//! checkout). Other HTTP URLs (tarballs, Dockerfiles) are refused as not supported yet.
//!
//! A context archive is untrusted: it is unpacked by the store's confined extraction (no path
//! leaves the directory, nothing is written through a symlink) into a private temporary
//! directory outside the state directory, which is removed when the build ends; the Dockerfile
//! and `.dockerignore` files the engine reads from it must resolve inside it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::render::CliError;

/// The context argument of `kiln build`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A directory.
    Dir(PathBuf),
    /// Standard input: a Dockerfile or a context archive.
    Stdin,
    /// A git repository, checked out by the engine.
    Git(Box<dockerfile::convert::GitRef>),
}

/// Tells what the context argument names, in buildx's order: `-`, an existing directory, a
/// remote URL, else a directory (which the engine will report missing). `file` is `-f`.
pub(crate) fn classify(arg: &str, file: Option<&str>) -> Result<Source, String> {
    if arg == "-" {
        if file == Some("-") {
            return Err("invalid argument: can't use stdin for both build context and dockerfile".into());
        }
        return Ok(Source::Stdin);
    }
    if Path::new(arg).is_dir() {
        return Ok(Source::Dir(PathBuf::from(arg)));
    }
    // buildx (as BuildKit) takes `github.com/…` for a git repository when no such directory exists.
    let git = match arg.strip_prefix("github.com/") {
        Some(rest) => {
            let (path, fragment) = rest.split_once('#').map_or((rest, None), |(p, f)| (p, Some(f)));
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            let path = path.trim_end_matches(".git");
            dockerfile::convert::parse_git_ref(&format!("https://github.com/{path}.git{fragment}"))
        }
        None => dockerfile::convert::parse_git_ref(arg),
    }
    .map_err(|e| format!("invalid build context {arg:?}: {e}"))?;
    if let Some(git) = git {
        return Ok(Source::Git(Box::new(git)));
    }
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return Err(format!(
            "remote build contexts ({arg}: a tarball or a Dockerfile over HTTP) are not supported yet: \
             download it and build the directory, or pipe it to `kiln build -`"
        ));
    }
    Ok(Source::Dir(PathBuf::from(arg)))
}

/// A build's context directory and Dockerfile, ready for the engine.
pub(crate) struct Inputs {
    /// The context directory.
    pub(crate) context: PathBuf,
    /// The Dockerfile, when not `<context>/Dockerfile`.
    pub(crate) dockerfile: Option<PathBuf>,
    /// The Dockerfile's text, when it came from standard input.
    pub(crate) dockerfile_text: Option<String>,
    /// The git repository that is the context (`context` is then empty).
    pub(crate) git: Option<dockerfile::convert::GitRef>,
    /// The temporary directory of a context from standard input; dropping it removes it.
    _temp: Option<tempfile::TempDir>,
}

/// Reads what `source` and `-f` name (blocking: it may read standard input and unpack).
pub(crate) fn load(source: &Source, file: Option<&str>) -> Result<Inputs, CliError> {
    match source {
        Source::Dir(dir) if file == Some("-") => Ok(Inputs {
            context: dir.clone(),
            dockerfile: None,
            dockerfile_text: Some(stdin_dockerfile(std::io::stdin().lock())?),
            git: None,
            _temp: None,
        }),
        Source::Dir(dir) => Ok(Inputs {
            context: dir.clone(),
            dockerfile: file.map(PathBuf::from),
            dockerfile_text: None,
            git: None,
            _temp: None,
        }),
        Source::Git(git) => Ok(Inputs {
            context: PathBuf::new(),
            dockerfile: file.filter(|f| *f != "-").map(PathBuf::from),
            dockerfile_text: match file {
                Some("-") => Some(stdin_dockerfile(std::io::stdin().lock())?),
                _ => None,
            },
            git: Some((**git).clone()),
            _temp: None,
        }),
        Source::Stdin => from_stdin(std::io::stdin().lock(), file),
    }
}

/// `oci-layout://FILE[:TAG|@DIGEST]` where FILE is a tarball of an OCI layout: the tarball
/// unpacked (as untrusted as a context archive) into a private temporary directory, and the
/// value naming that directory instead; `None` for anything else.
pub(crate) fn unpack_layout(value: &str) -> Result<Option<(String, tempfile::TempDir)>, CliError> {
    let Some(rest) = value.strip_prefix("oci-layout://") else {
        return Ok(None);
    };
    let (path, suffix) = match rest.rsplit_once('@') {
        Some((path, digest)) => (path, format!("@{digest}")),
        None => match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.is_empty() && !tag.contains('/') => (path, format!(":{tag}")),
            _ => (rest, String::new()),
        },
    };
    if !Path::new(path).is_file() {
        return Ok(None);
    }
    let temp = tempfile::Builder::new()
        .prefix("kiln-layout-")
        .tempdir()
        .context("failed to create a temporary directory for an OCI layout")?;
    let mut archive =
        std::fs::File::open(path).with_context(|| format!("failed to open the OCI layout {path}"))?;
    engine::unpack_archive(&mut archive, temp.path(), None)
        .with_context(|| format!("failed to unpack the OCI layout {path}"))?;
    Ok(Some((
        format!("oci-layout://{}{suffix}", temp.path().display()),
        temp,
    )))
}

/// A Dockerfile read from `input`.
fn stdin_dockerfile(mut input: impl Read) -> Result<String, CliError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .context("failed to read the Dockerfile from standard input")?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage("the Dockerfile on standard input is not valid UTF-8".into()))
}

/// `kiln build -`: a context archive or a Dockerfile on `input`.
fn from_stdin(mut input: impl Read, file: Option<&str>) -> Result<Inputs, CliError> {
    let temp = tempfile::Builder::new()
        .prefix("kiln-context-")
        .tempdir()
        .context("failed to create a temporary directory for the build context")?;
    let context = temp.path().join("context");
    std::fs::create_dir(&context).with_context(|| format!("failed to create {}", context.display()))?;
    let spool_path = temp.path().join("stdin");
    let mut spool = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)
        .with_context(|| format!("failed to create {}", spool_path.display()))?;
    std::io::copy(&mut input, &mut spool).context("failed to read the build context from standard input")?;
    spool
        .flush()
        .context("failed to read the build context from standard input")?;
    let archive =
        engine::is_archive(&mut spool).context("failed to read the build context from standard input")?;
    if !archive {
        if file.is_some() {
            return Err(CliError::Usage(
                "ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles".into(),
            ));
        }
        let text = stdin_dockerfile(
            std::fs::File::open(&spool_path).context("failed to reopen standard input's copy")?,
        )?;
        return Ok(Inputs {
            context,
            dockerfile: None,
            dockerfile_text: Some(text),
            git: None,
            _temp: Some(temp),
        });
    }
    engine::unpack_archive(&mut spool, &context, None)
        .context("failed to unpack the build context from standard input")?;
    drop(spool);
    std::fs::remove_file(&spool_path)
        .with_context(|| format!("failed to remove {}", spool_path.display()))?;
    let dockerfile = archive_dockerfile(&context, file)?;
    Ok(Inputs {
        context,
        dockerfile,
        dockerfile_text: None,
        git: None,
        _temp: Some(temp),
    })
}

/// The Dockerfile of an unpacked context archive (`-f` is a path inside it), after checking
/// that it and the `.dockerignore` files the engine reads resolve inside the context.
fn archive_dockerfile(context: &Path, file: Option<&str>) -> Result<Option<PathBuf>, CliError> {
    let root =
        std::fs::canonicalize(context).with_context(|| format!("failed to resolve {}", context.display()))?;
    inside(&root, ".dockerignore")?;
    let dockerfile = match file {
        Some(name) => Some(inside(&root, name)?),
        None => {
            inside(&root, "dockerfile")?;
            inside(&root, "Dockerfile")?;
            None
        }
    };
    let named = dockerfile.clone().unwrap_or_else(|| root.join("Dockerfile"));
    let ignore = format!(
        "{}.dockerignore",
        named.file_name().unwrap_or_default().to_string_lossy()
    );
    inside(named.parent().unwrap_or(&root), &ignore)?;
    Ok(dockerfile)
}

/// `root/name`, resolved, refused when it resolves outside `root` (a symlink or `..` in the
/// archive leading out of it); a path that does not exist is returned as is.
fn inside(root: &Path, name: &str) -> Result<PathBuf, CliError> {
    let outside = || {
        CliError::Usage(format!(
            "{name} in the build context archive leads outside the context (through a symbolic link or ..)"
        ))
    };
    let mut depth = 0usize;
    for component in Path::new(name.trim_start_matches('/')).components() {
        match component {
            std::path::Component::ParentDir => depth = depth.checked_sub(1).ok_or_else(outside)?,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    let path = root.join(name.trim_start_matches('/'));
    match std::fs::canonicalize(&path) {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(_) => Err(outside()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
        Err(e) => Err(CliError::failed(
            format!("failed to resolve {name} in the build context archive"),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_arguments_are_told_apart() {
        assert_eq!(classify("-", None), Ok(Source::Stdin));
        assert!(
            classify("-", Some("-"))
                .unwrap_err()
                .contains("both build context and dockerfile")
        );
        assert_eq!(classify(".", None), Ok(Source::Dir(".".into())));
        assert_eq!(
            classify("no/such/dir", None),
            Ok(Source::Dir("no/such/dir".into()))
        );
        for (arg, remote, reference, subdir) in [
            (
                "https://github.com/moby/buildkit.git#v0.12:frontend",
                "https://github.com/moby/buildkit.git",
                Some("v0.12"),
                Some("frontend"),
            ),
            (
                "git@github.com:moby/buildkit.git",
                "git@github.com:moby/buildkit.git",
                None,
                None,
            ),
            ("git://example.com/repo", "git://example.com/repo", None, None),
            (
                "github.com/moby/buildkit",
                "https://github.com/moby/buildkit.git",
                None,
                None,
            ),
            (
                "github.com/moby/buildkit.git#main:docs",
                "https://github.com/moby/buildkit.git",
                Some("main"),
                Some("docs"),
            ),
        ] {
            let Ok(Source::Git(git)) = classify(arg, None) else {
                panic!("{arg} is not taken for a git context: {:?}", classify(arg, None));
            };
            assert_eq!(git.remote, remote, "{arg}");
            assert_eq!(git.reference.as_deref(), reference, "{arg}");
            assert_eq!(git.subdir.as_deref(), subdir, "{arg}");
        }
        let err = classify("https://example.com/context.tar.gz", None).unwrap_err();
        assert!(err.contains("not supported yet"), "{err}");
    }

    fn tar_of(entries: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        // Owned by whoever runs the test (`/proc/self` belongs to it), so that unpacking needs
        // no root.
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            let me = std::fs::metadata("/proc/self").unwrap();
            (u64::from(me.uid()), u64::from(me.gid()))
        };
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(size);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_uid(uid);
            header.set_gid(gid);
            header
        };
        let mut builder = tar::Builder::new(Vec::new());
        // Parent directories too: implied ones would be made root-owned, as BuildKit makes them.
        let mut parents: Vec<&str> = entries
            .iter()
            .filter_map(|(name, _)| name.rsplit_once('/').map(|(parent, _)| parent))
            .collect();
        parents.sort_unstable();
        parents.dedup();
        for parent in parents {
            let mut header = header(tar::EntryType::Directory, 0o755, 0);
            builder
                .append_data(&mut header, format!("{parent}/"), std::io::empty())
                .unwrap();
        }
        for (name, data) in entries {
            let mut header = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            builder.append_data(&mut header, name, *data).unwrap();
        }
        for (name, target) in links {
            let mut header = header(tar::EntryType::Symlink, 0o777, 0);
            builder.append_link(&mut header, name, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_dockerfile_on_stdin_gets_an_empty_context() {
        let inputs = from_stdin(&b"FROM scratch\n"[..], None).unwrap();
        assert_eq!(inputs.dockerfile_text.as_deref(), Some("FROM scratch\n"));
        assert_eq!(std::fs::read_dir(&inputs.context).unwrap().count(), 0);
        let temp = inputs.context.parent().unwrap().to_path_buf();
        drop(inputs);
        assert!(!temp.exists(), "the temporary directory was not removed");
        let err = from_stdin(&b"FROM scratch\n"[..], Some("Dockerfile"))
            .err()
            .unwrap();
        assert!(matches!(err, CliError::Usage(m) if m.contains("ambiguous")));
    }

    #[test]
    fn a_tar_on_stdin_is_the_context() {
        let tar = tar_of(
            &[("sub/build.Dockerfile", b"FROM scratch\n"), ("a.txt", b"a")],
            &[],
        );
        let inputs = from_stdin(&tar[..], Some("sub/build.Dockerfile")).unwrap();
        assert_eq!(std::fs::read(inputs.context.join("a.txt")).unwrap(), b"a");
        assert!(
            inputs
                .dockerfile
                .unwrap()
                .ends_with("context/sub/build.Dockerfile")
        );
        assert!(!inputs.context.parent().unwrap().join("stdin").exists());
    }

    #[test]
    fn archive_paths_cannot_leave_the_context() {
        let tar = tar_of(&[("a.txt", b"a")], &[("Dockerfile", "/etc/passwd")]);
        let err = from_stdin(&tar[..], None).err().unwrap();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("leads outside")),
            "not refused"
        );
        let tar = tar_of(&[("a.txt", b"a")], &[]);
        let err = from_stdin(&tar[..], Some("../../etc/passwd")).err().unwrap();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("leads outside")),
            "not refused"
        );
        // `tar::Builder` refuses `..`, so the entry's name is written into its header directly.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
        header.set_size(1);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        let err = from_stdin(&tar[..], None).err().unwrap();
        assert!(matches!(err, CliError::Failed(_)), "not refused");
    }
}
