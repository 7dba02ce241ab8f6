//! What an op does, as (field, value) pairs for people: the parts of its definition that a
//! change can be traced to ("command", "env CC", "mount /src", "action 0", …).
//!
//! Used to explain cache misses: two builds' facts of the same step are compared field by
//! field. Inputs are named by index (`input 1`); what flows in through them is described by
//! the solver, not here. Proxy variables are left out, as they are left out of cache keys.

use crate::dump::{describe_action, describe_mount};
use crate::pb;

/// The facts of `op`, in a stable order.
pub fn facts(op: &pb::Op) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));
    let input = |i: i64| -> String {
        if i < 0 {
            "scratch".to_string()
        } else {
            format!("input {i}")
        }
    };
    match &op.kind {
        Some(pb::op::Kind::Source(s)) => {
            match s.identifier.strip_prefix(crate::attr::SCHEME_IMAGE) {
                // An image by name and, when pinned, by digest: a new digest under the same
                // name is a new base image, not a new instruction.
                Some(image) => match image.split_once('@') {
                    Some((name, digest)) => {
                        put("image", name.to_string());
                        put("image digest", digest.to_string());
                    }
                    None => put("image", image.to_string()),
                },
                None => put("source", s.identifier.clone()),
            }
            for (k, v) in &s.attrs {
                put(&format!("attr {k}"), v.clone());
            }
        }
        Some(pb::op::Kind::Exec(e)) => {
            let meta = e.meta.clone().unwrap_or_default();
            put("command", format!("{:?}", meta.args));
            put("workdir", meta.cwd.clone());
            if !meta.user.is_empty() {
                put("user", meta.user.clone());
            }
            for var in &meta.env {
                let (name, value) = var.split_once('=').unwrap_or((var.as_str(), ""));
                put(&format!("env {name}"), value.to_string());
            }
            if !meta.hostname.is_empty() {
                put("hostname", meta.hostname.clone());
            }
            for limit in &meta.ulimit {
                put(
                    &format!("ulimit {}", limit.name),
                    format!("{}:{}", limit.soft, limit.hard),
                );
            }
            for extra in &meta.extra_hosts {
                put(&format!("extra host {}", extra.host), extra.ip.clone());
            }
            let network = match pb::NetMode::try_from(e.network) {
                Ok(pb::NetMode::Unset) => None,
                Ok(pb::NetMode::Host) => Some("host"),
                Ok(pb::NetMode::None) => Some("none"),
                Err(_) => Some("?"),
            };
            if let Some(network) = network {
                put("network", network.to_string());
            }
            if e.security == pb::SecurityMode::Insecure as i32 {
                put("security", "insecure".to_string());
            }
            for secret in &e.secretenv {
                put(&format!("secret env {}", secret.name), secret.id.clone());
            }
            for m in &e.mounts {
                put(&format!("mount {}", m.dest), describe_mount(m, &input));
            }
        }
        Some(pb::op::Kind::File(f)) => {
            let n_inputs = op.inputs.len() as i64;
            let target = |i: i64| -> String {
                if i >= n_inputs {
                    format!("action {}", i - n_inputs)
                } else {
                    input(i)
                }
            };
            for (i, a) in f.actions.iter().enumerate() {
                put(&format!("action {i}"), describe_action(a, &target));
            }
        }
        Some(pb::op::Kind::Merge(m)) => {
            put("merge", format!("{} inputs", m.inputs.len()));
        }
        None => {}
    }
    if let Some(p) = &op.platform {
        let mut platform = format!("{}/{}", p.os, p.architecture);
        if !p.variant.is_empty() {
            platform = format!("{platform}/{}", p.variant);
        }
        put("platform", platform);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_images_give_name_and_digest_apart() {
        let op = pb::Op {
            inputs: Vec::new(),
            kind: Some(pb::op::Kind::Source(pb::SourceOp {
                identifier: "docker-image://docker.io/library/busybox:latest@sha256:abc".into(),
                attrs: Default::default(),
            })),
            platform: None,
        };
        assert_eq!(
            facts(&op),
            vec![
                (
                    "image".to_string(),
                    "docker.io/library/busybox:latest".to_string()
                ),
                ("image digest".to_string(), "sha256:abc".to_string()),
            ]
        );
    }

    #[test]
    fn exec_facts_name_command_env_and_mounts() {
        let op = pb::Op {
            inputs: Vec::new(),
            kind: Some(pb::op::Kind::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
                    env: vec!["CC=gcc".into(), "EMPTY=".into()],
                    cwd: "/src".into(),
                    ..Default::default()
                }),
                mounts: vec![pb::Mount {
                    input: 0,
                    dest: "/".into(),
                    output: 0,
                    ..Default::default()
                }],
                ..Default::default()
            })),
            platform: None,
        };
        assert_eq!(
            facts(&op),
            vec![
                ("command".to_string(), r#"["/bin/sh", "-c", "make"]"#.to_string()),
                ("workdir".to_string(), "/src".to_string()),
                ("env CC".to_string(), "gcc".to_string()),
                ("env EMPTY".to_string(), String::new()),
                ("mount /".to_string(), "/ <- input 0 out=0".to_string()),
            ]
        );
    }
}
