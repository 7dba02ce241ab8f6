//! A stable, readable text form of a graph: one op per line, inputs before users, local names
//! (`v0`, `v1`, …) instead of digests, then the result and its digest.
//!
//! The format is for people and snapshot tests; nothing parses it.

use std::collections::BTreeMap;
use std::fmt::Write;

use oci::Digest;

use crate::graph::Graph;
use crate::pb;

/// Renders `graph` as text.
pub fn dump(graph: &Graph) -> String {
    let names: BTreeMap<&Digest, String> = graph
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| (&v.digest, format!("v{i}")))
        .collect();
    let name = |d: &Digest, index: i64| -> String {
        let base = names.get(d).cloned().unwrap_or_else(|| d.to_string());
        if index == 0 {
            base
        } else {
            format!("{base}:{index}")
        }
    };
    let mut out = String::new();
    for vertex in &graph.vertices {
        let input = |i: i64| -> String {
            match usize::try_from(i).ok().and_then(|i| vertex.inputs.get(i)) {
                Some((d, index)) => name(d, *index),
                None => "scratch".to_string(),
            }
        };
        let _ = write!(out, "{} = ", names[&vertex.digest]);
        match &vertex.op.kind {
            Some(pb::op::Kind::Source(s)) => {
                let _ = write!(out, "source {}", s.identifier);
                for (k, v) in &s.attrs {
                    let _ = write!(out, " {k}={v:?}");
                }
            }
            Some(pb::op::Kind::Exec(e)) => write_exec(&mut out, e, &input),
            Some(pb::op::Kind::File(f)) => {
                let _ = write!(out, "file");
                let n_inputs = vertex.inputs.len() as i64;
                let target = |i: i64| -> String {
                    if i >= n_inputs {
                        format!("#{}", i - n_inputs)
                    } else {
                        input(i)
                    }
                };
                for (i, a) in f.actions.iter().enumerate() {
                    let _ = write!(out, " [#{i} on {}: ", target(a.input));
                    out.push_str(&describe_action(a, &target));
                    let _ = write!(out, "]");
                }
            }
            Some(pb::op::Kind::Merge(m)) => {
                let inputs: Vec<String> = m.inputs.iter().map(|&i| input(i)).collect();
                let _ = write!(out, "merge {}", inputs.join(" "));
            }
            None => {
                let _ = write!(out, "?");
            }
        }
        if let Some(p) = &vertex.op.platform {
            let _ = write!(out, " platform={}/{}", p.os, p.architecture);
            if !p.variant.is_empty() {
                let _ = write!(out, "/{}", p.variant);
            }
        }
        if vertex.metadata.ignore_cache {
            let _ = write!(out, " no-cache");
        }
        if let Some(n) = vertex.name() {
            let _ = write!(out, "  # {n}");
        }
        out.push('\n');
    }
    match &graph.root {
        Some((d, index)) => {
            let _ = writeln!(out, "result = {} {}", name(d, *index), d);
        }
        None => {
            let _ = writeln!(out, "result = scratch");
        }
    }
    out
}

/// The exec part of a line: command, working directory, user, environment, network, security,
/// proxies, secret variables and mounts.
fn write_exec(out: &mut String, e: &pb::ExecOp, input: &dyn Fn(i64) -> String) {
    let meta = e.meta.clone().unwrap_or_default();
    let _ = write!(out, "exec {:?}", meta.args);
    let _ = write!(out, " cwd={:?}", meta.cwd);
    if !meta.user.is_empty() {
        let _ = write!(out, " user={:?}", meta.user);
    }
    if !meta.env.is_empty() {
        let _ = write!(out, " env={:?}", meta.env);
    }
    let network = pb::NetMode::try_from(e.network).map_or("?", |n| match n {
        pb::NetMode::Unset => "default",
        pb::NetMode::Host => "host",
        pb::NetMode::None => "none",
    });
    if network != "default" {
        let _ = write!(out, " network={network}");
    }
    if e.security == pb::SecurityMode::Insecure as i32 {
        let _ = write!(out, " security=insecure");
    }
    if let Some(p) = &meta.proxy_env {
        let pairs = [
            ("http_proxy", &p.http_proxy),
            ("https_proxy", &p.https_proxy),
            ("ftp_proxy", &p.ftp_proxy),
            ("no_proxy", &p.no_proxy),
            ("all_proxy", &p.all_proxy),
        ];
        let set: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(out, " proxy={set:?}");
    }
    for secret in &e.secretenv {
        let _ = write!(
            out,
            " secret-env({}={:?}{})",
            secret.name,
            secret.id,
            if secret.optional { "" } else { " required" }
        );
    }
    for m in &e.mounts {
        let _ = write!(out, " mount({})", describe_mount(m, input));
    }
}

fn write_owner(out: &mut String, owner: Option<&pb::ChownOpt>) {
    let Some(owner) = owner else { return };
    let one = |u: &Option<pb::UserOpt>| -> Option<String> {
        match u.as_ref()?.user.as_ref()? {
            pb::user_opt::User::ById(id) => Some(id.to_string()),
            pb::user_opt::User::ByName(n) => Some(n.name.clone()),
        }
    };
    let _ = write!(out, " owner={}", one(&owner.user).unwrap_or_default());
    if let Some(g) = one(&owner.group) {
        let _ = write!(out, ":{g}");
    }
}

fn write_copy_flags(out: &mut String, c: &pb::FileActionCopy) {
    if c.mode >= 0 {
        let _ = write!(out, " mode={:o}", c.mode);
    }
    if !c.mode_str.is_empty() {
        let _ = write!(out, " mode={}", c.mode_str);
    }
    write_owner(out, c.owner.as_ref());
    let flags = [
        (c.follow_symlink, "follow"),
        (c.dir_copy_contents, "contents"),
        (c.create_dest_path, "parents"),
        (c.allow_wildcard, "wildcard"),
        (c.allow_empty_wildcard, "empty-wildcard"),
        (c.attempt_unpack_docker_compatibility, "unpack"),
        (c.always_replace_existing_dest_paths, "replace"),
    ];
    for (on, name) in flags {
        if on {
            let _ = write!(out, " {name}");
        }
    }
    if !c.include_patterns.is_empty() {
        let _ = write!(out, " include={:?}", c.include_patterns);
    }
    if !c.exclude_patterns.is_empty() {
        let _ = write!(out, " exclude={:?}", c.exclude_patterns);
    }
    if !c.required_paths.is_empty() {
        let _ = write!(out, " required={:?}", c.required_paths);
    }
}

/// One exec mount as text: `[kind options ]DEST <- INPUT[ selector=…][ ro][ out=N]`.
pub(crate) fn describe_mount(m: &pb::Mount, input: &dyn Fn(i64) -> String) -> String {
    let mut out = String::new();
    let kind = match pb::MountType::try_from(m.mount_type) {
        Ok(pb::MountType::Bind) => String::new(),
        Ok(pb::MountType::Cache) => {
            let c = m.cache_opt.clone().unwrap_or_default();
            let sharing = match pb::CacheSharing::try_from(c.sharing) {
                Ok(pb::CacheSharing::Shared) => "shared",
                Ok(pb::CacheSharing::Private) => "private",
                Ok(pb::CacheSharing::Locked) => "locked",
                Err(_) => "?",
            };
            format!("cache id={:?} sharing={sharing} ", c.id)
        }
        Ok(pb::MountType::Tmpfs) => {
            format!("tmpfs size={} ", m.tmpfs_opt.clone().unwrap_or_default().size)
        }
        Ok(pb::MountType::Secret) => {
            let o = m.secret_opt.clone().unwrap_or_default();
            format!(
                "secret id={:?} uid={} gid={} mode={:o}{} ",
                o.id,
                o.uid,
                o.gid,
                o.mode,
                if o.optional { "" } else { " required" }
            )
        }
        Ok(pb::MountType::Ssh) => {
            let o = m.ssh_opt.clone().unwrap_or_default();
            format!(
                "ssh id={:?} uid={} gid={} mode={:o}{} ",
                o.id,
                o.uid,
                o.gid,
                o.mode,
                if o.optional { "" } else { " required" }
            )
        }
        Err(_) => "? ".into(),
    };
    let _ = write!(out, "{kind}{} <- {}", m.dest, input(m.input));
    if !m.selector.is_empty() {
        let _ = write!(out, " selector={:?}", m.selector);
    }
    if m.readonly {
        let _ = write!(out, " ro");
    }
    if m.output >= 0 {
        let _ = write!(out, " out={}", m.output);
    }
    out
}

/// One file action as text (`copy INPUT:"src" -> "dest" flags`, `mkdir "path" mode=755`, …).
pub(crate) fn describe_action(a: &pb::FileAction, target: &dyn Fn(i64) -> String) -> String {
    let mut out = String::new();
    match &a.action {
        Some(pb::file_action::Action::Copy(c)) => {
            let _ = write!(
                out,
                "copy {}:{:?} -> {:?}",
                target(a.secondary_input),
                c.src,
                c.dest
            );
            write_copy_flags(&mut out, c);
        }
        Some(pb::file_action::Action::Mkdir(m)) => {
            let _ = write!(out, "mkdir {:?} mode={:o}", m.path, m.mode);
            if m.make_parents {
                let _ = write!(out, " parents");
            }
            write_owner(&mut out, m.owner.as_ref());
        }
        Some(pb::file_action::Action::Mkfile(m)) => {
            let _ = write!(out, "mkfile {:?} mode={:o} size={}", m.path, m.mode, m.data.len());
            write_owner(&mut out, m.owner.as_ref());
        }
        Some(pb::file_action::Action::Rm(r)) => {
            let _ = write!(out, "rm {:?}", r.path);
        }
        Some(pb::file_action::Action::Symlink(s)) => {
            let _ = write!(out, "symlink {:?} -> {:?}", s.newpath, s.oldpath);
        }
        None => {
            let _ = write!(out, "?");
        }
    }
    out
}
