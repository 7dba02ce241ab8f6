//! Everything one run needs on disk before the runtime starts, made by [`prepare`]: the
//! image's user resolved from its `/etc/passwd` and `/etc/group`, the working directory
//! created, and the bundle directory written (`config.json` and the generated `hosts`,
//! `resolv.conf` and `hostname`).
//!
//! All of it is blocking file work, so [`prepare`] is synchronous and callers run it on the
//! blocking thread pool ([`crate::blocking`]), never on an async thread.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::host::HostPrivileges;
use crate::rootfs::{Rootfs, Stub};
use crate::seccomp::Platform;
use crate::{Error, ExecSpec, Result, SecurityMode, spec, user};

/// A run's bundle directory, removed with everything in it when this is dropped.
#[derive(Debug)]
pub(crate) struct Bundle {
    path: PathBuf,
}

impl Bundle {
    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Best effort: what is left is removed by `RuncExecutor::recover` at the next start.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What [`prepare`] made.
pub(crate) struct Prepared {
    /// The root filesystem, opened.
    pub root: Rootfs,
    /// Mount points the runtime will have to create in the root filesystem, to be removed
    /// after the run.
    pub stubs: Vec<Stub>,
    /// The bundle; its `config.json` is written.
    pub bundle: Bundle,
}

/// Prepares a run of `spec` on the root filesystem `rootfs`: resolves the user, creates the
/// working directory and writes the bundle at `bundle` (which must not exist), whose
/// container gets the cgroup `cgroups_path`. Blocking.
pub(crate) fn prepare(
    spec: &ExecSpec,
    rootfs: &Path,
    bundle: PathBuf,
    cgroups_path: &str,
) -> Result<Prepared> {
    let root = Rootfs::open(rootfs).map_err(|source| Error::OpenRootfs {
        path: rootfs.to_owned(),
        source,
    })?;
    let user = user::resolve(&root, &spec.user)?;
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    root.create_dir_all(cwd, user.uid, user.gid)
        .map_err(|source| Error::CreateWorkdir {
            path: cwd.to_owned(),
            source,
        })?;

    std::fs::create_dir(&bundle).map_err(|source| Error::WriteBundle {
        path: bundle.clone(),
        source,
    })?;
    let bundle = Bundle { path: bundle };
    let destinations = write_bundle(spec, rootfs, &user, bundle.path(), cgroups_path)?;
    // Recorded before the runtime creates them, so that they can be told apart afterwards.
    let stubs = destinations
        .iter()
        .filter_map(|d| root.find_stub(&d.to_string_lossy()))
        .collect();
    Ok(Prepared { root, stubs, bundle })
}

/// Writes the files of the bundle directory `bundle` and returns the destinations of the
/// mounts in its `config.json`.
fn write_bundle(
    spec: &ExecSpec,
    rootfs: &Path,
    user: &user::User,
    bundle: &Path,
    cgroups_path: &str,
) -> Result<Vec<PathBuf>> {
    // A host without /etc/resolv.conf gets an empty one, as glibc then uses localhost.
    let resolv_conf = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let hostname = spec::hostname(spec);
    let mounts = spec::mounts(spec, bundle)?;
    let destinations = mounts.iter().map(|m| m.destination().clone()).collect();
    let host = match spec.security {
        SecurityMode::Sandbox => HostPrivileges::default(),
        SecurityMode::Insecure => {
            HostPrivileges::read().map_err(|source| Error::ReadHostPrivileges { source })?
        }
    };
    let platform = Platform::current().map_err(|source| Error::Seccomp { source })?;
    let config = spec::config(spec, rootfs, user, mounts, cgroups_path, &host, &platform)?;
    let config = spec::to_json(&config).map_err(|e| Error::BuildSpec { source: e.into() })?;
    let files = [
        ("resolv.conf", resolv_conf),
        (
            "hosts",
            spec::hosts_file(hostname, &spec.extra_hosts).into_bytes(),
        ),
        ("hostname", format!("{hostname}\n").into_bytes()),
        ("config.json", config.to_string().into_bytes()),
    ];
    for (name, content) in files {
        let path = bundle.join(name);
        std::fs::write(&path, content)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
            .map_err(|source| Error::WriteBundle { path, source })?;
    }
    Ok(destinations)
}
