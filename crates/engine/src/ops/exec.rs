//! Exec ops (`RUN`): a process in a container over a new snapshot of its root input, with the
//! exec's other mounts ([`super::mounts`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use fsops::fileop;
use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Dep, Op, OpError};

use super::file::content_key;
use super::{OpFailure, Session, blocking, mounts, op_error, secrets};
use crate::{Inner, Ref};

/// An exec op of a build graph.
pub(super) struct ExecOp {
    pub(super) inner: Arc<Inner>,
    pub(super) op: pb::ExecOp,
    pub(super) base: Digest,
    pub(super) n_inputs: usize,
    /// Per input: the exclude patterns of a local source (empty for anything else).
    pub(super) excludes: Vec<Arc<Vec<String>>>,
    /// Per input: whether it is a local source (the build context).
    pub(super) local_inputs: Vec<bool>,
}
struct LogSink<'a>(&'a Context<Session>);

impl executor::OutputSink for LogSink<'_> {
    fn write(&self, stream: executor::Stream, data: &[u8]) {
        let n = match stream {
            executor::Stream::Stdout => 1,
            executor::Stream::Stderr => 2,
        };
        self.0.log(n, data);
    }
}

impl ExecOp {
    /// The cache dep of input `i`. Inputs are keyed by their own keys, except the build context
    /// (which has none): a bind mount of it is keyed by the content of the part it mounts, as a
    /// COPY from it is, so editing another file of the context changes nothing.
    fn dep(&self, i: usize) -> Dep<Ref> {
        if !self.local_inputs.get(i).copied().unwrap_or(false) {
            return Dep::default();
        }
        let selectors: Vec<String> = self
            .op
            .mounts
            .iter()
            .filter(|m| {
                usize::try_from(m.input).ok() == Some(i)
                    && m.dest != "/"
                    && m.mount_type == pb::MountType::Bind as i32
            })
            .map(|m| format!("/{}", m.selector.trim_start_matches('/')))
            .collect();
        if selectors.is_empty() {
            return Dep::default();
        }
        let excludes = self.excludes.get(i).cloned().unwrap_or_default();
        let list: Arc<Vec<fileop::CopyOptions>> = Arc::new(
            selectors
                .iter()
                .map(|src| fileop::CopyOptions {
                    src: src.clone(),
                    follow_symlink: true,
                    context_excludes: excludes.to_vec(),
                    ..fileop::CopyOptions::default()
                })
                .collect(),
        );
        let inner = self.inner.clone();
        let content: solver::ContentFn<Ref> = Arc::new(move |r: Ref| {
            let list = list.clone();
            let inner = inner.clone();
            Box::pin(async move { content_key(inner, r, list).await })
        });
        Dep {
            selector: Some(Digest::of(format!("mount\n{}", selectors.join("\n")).as_bytes())),
            content: Some(content),
        }
    }
}

impl Op<Ref, Session> for ExecOp {
    fn resource(&self) -> solver::Resource {
        // Mostly waiting: on a container, a registry or a server.
        solver::Resource::External
    }

    fn cache_map<'a>(&'a self, _ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let deps = (0..self.n_inputs).map(|i| self.dep(i)).collect();
            Ok(CacheMap::new(self.base.clone(), deps))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move { self.run(ctx, inputs).await.map_err(op_error) })
    }
}

impl ExecOp {
    /// The secrets and ssh agents the exec uses, by id: what its salt depends on.
    pub(super) fn session_salt(&self, store: &store::Store, session: &Session) -> Option<Digest> {
        let mut secret_ids: BTreeSet<String> = self.op.secretenv.iter().map(|s| s.id.clone()).collect();
        let mut ssh_ids = BTreeSet::new();
        for mount in &self.op.mounts {
            if mount.mount_type == pb::MountType::Secret as i32 {
                secret_ids.insert(
                    mount
                        .secret_opt
                        .as_ref()
                        .map(|o| o.id.clone())
                        .unwrap_or_default(),
                );
            } else if mount.mount_type == pb::MountType::Ssh as i32 {
                let id = mount.ssh_opt.as_ref().map(|o| o.id.clone()).unwrap_or_default();
                ssh_ids.insert(if id.is_empty() { "default".to_string() } else { id });
            }
        }
        let mut parts = Vec::new();
        if !secret_ids.is_empty() {
            parts.extend(session.secrets_salt(store, &secret_ids, false));
        }
        if !ssh_ids.is_empty() {
            parts.push(session.ssh_salt(store, &ssh_ids));
        }
        match parts.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            _ => Some(Digest::of(
                parts
                    .iter()
                    .map(Digest::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_bytes(),
            )),
        }
    }

    /// The network and security modes the exec asks for.
    fn modes(&self) -> Result<(executor::NetworkMode, executor::SecurityMode), OpFailure> {
        let network = match pb::NetMode::try_from(self.op.network) {
            // The worker's network, as configured (`--oci-worker-net`; loopback only by
            // default, since these machines have no bridge).
            Ok(pb::NetMode::Unset) => self.inner.default_network,
            Ok(pb::NetMode::None) => executor::NetworkMode::None,
            // Asked for explicitly, host networking is an entitlement (checked up front).
            Ok(pb::NetMode::Host) => executor::NetworkMode::Host,
            Err(_) => {
                return Err(OpFailure::Invalid(format!(
                    "unknown network mode {}",
                    self.op.network
                )));
            }
        };
        let security = match pb::SecurityMode::try_from(self.op.security) {
            Ok(pb::SecurityMode::Sandbox) => executor::SecurityMode::Sandbox,
            Ok(pb::SecurityMode::Insecure) => executor::SecurityMode::Insecure,
            Err(_) => {
                return Err(OpFailure::Invalid(format!(
                    "unknown security mode {}",
                    self.op.security
                )));
            }
        };
        Ok((network, security))
    }

    /// The snapshot the process runs on (the input of the mount at `/`), and whether it is
    /// read-only.
    fn root(&self, inputs: &[Ref]) -> Result<(Option<store::SnapshotId>, bool), OpFailure> {
        let mut roots = self.op.mounts.iter().filter(|m| m.dest == "/");
        let (Some(root), None) = (roots.next(), roots.next()) else {
            return Err(OpFailure::Invalid("an exec needs exactly one mount at /".into()));
        };
        let parent = match usize::try_from(root.input).ok().and_then(|i| inputs.get(i)) {
            None | Some(Ref::Empty) => None,
            Some(Ref::Snapshot(id)) => Some(*id),
            Some(Ref::Local(_)) => {
                return Err(OpFailure::NotSupported(
                    "a local directory as the root of a RUN".into(),
                ));
            }
            Some(Ref::Remote(_)) => return Err(OpFailure::NotDownloaded),
        };
        Ok((parent, root.readonly))
    }

    async fn run(&self, ctx: &Context<Session>, inputs: Vec<Ref>) -> Result<Vec<Ref>, OpFailure> {
        let meta = self.op.meta.clone().unwrap_or_default();
        let (parent, readonly_rootfs) = self.root(&inputs)?;
        let (network, security) = self.modes()?;
        // Entitlements were checked for the whole graph of every build waiting here.
        let session = Session::of(ctx)?;
        // `env=` secrets join the process environment (replacing a variable of the same
        // name); they are never in the op's definition, so never in its key.
        let secret_env = blocking(|| secrets::env(&session, &self.op.secretenv))?;
        let store = &self.inner.store;
        // Dropped after the run: unmounts and discards everything the mounts needed.
        let extra = mounts::prepare(store, &session, &self.op.mounts, &inputs, &self.excludes, &meta).await?;
        let spec = executor::ExecSpec {
            args: meta.args.clone(),
            env: with_vars(process_env(&meta), secret_env),
            cwd: if meta.cwd.is_empty() {
                "/".into()
            } else {
                meta.cwd.clone()
            },
            user: meta.user.clone(),
            hostname: meta.hostname.clone(),
            extra_hosts: extra_hosts(&meta)?,
            ulimits: ulimits(&meta)?,
            network,
            mounts: extra.mounts.clone(),
            readonly_rootfs,
            security,
        };
        let description = format!("exec {}", meta.args.join(" "));
        let active = blocking(|| store.prepare(parent, &description))?;
        let status = {
            let mount = blocking(|| active.mount())?;
            store::fault::point("exec.before-run");
            self.inner
                .executor
                .run(mount.path(), &spec, &LogSink(ctx))
                .await?
        };
        drop(extra);
        if !status.success() {
            return Err(OpFailure::ProcessFailed {
                command: meta.args.join(" "),
                code: status.code,
            });
        }
        store::fault::point("exec.after-run");
        let info = blocking(|| active.commit())?;
        Ok(vec![Ref::Snapshot(info.id)])
    }
}

/// The resource limits of an exec; -1 is unlimited.
fn ulimits(meta: &pb::Meta) -> Result<Vec<executor::Ulimit>, OpFailure> {
    let value = |name: &str, v: i64| -> Result<Option<u64>, OpFailure> {
        match v {
            -1 => Ok(None),
            v => u64::try_from(v)
                .map(Some)
                .map_err(|_| OpFailure::Invalid(format!("ulimit {name} has a negative limit {v}"))),
        }
    };
    meta.ulimit
        .iter()
        .map(|u| {
            Ok(executor::Ulimit {
                name: u.name.clone(),
                soft: value(&u.name, u.soft)?,
                hard: value(&u.name, u.hard)?,
            })
        })
        .collect()
}

/// The extra `/etc/hosts` entries of an exec, with their addresses checked.
fn extra_hosts(meta: &pb::Meta) -> Result<Vec<(String, std::net::IpAddr)>, OpFailure> {
    meta.extra_hosts
        .iter()
        .map(|h| {
            let ip = h.ip.parse().map_err(|_| {
                OpFailure::Invalid(format!(
                    "extra host {:?} has an invalid address {:?}",
                    h.host, h.ip
                ))
            })?;
            if h.host.is_empty() || h.host.chars().any(char::is_whitespace) {
                return Err(OpFailure::Invalid(format!(
                    "extra host {:?} is not a valid host name",
                    h.host
                )));
            }
            Ok((h.host.clone(), ip))
        })
        .collect()
}

/// The process environment: the op's, plus proxy variables (upper and lower case, as tools
/// read either) that the op does not set itself.
pub(super) fn process_env(meta: &pb::Meta) -> Vec<String> {
    let mut env = meta.env.clone();
    let Some(proxy) = &meta.proxy_env else { return env };
    let pairs = [
        ("HTTP_PROXY", &proxy.http_proxy),
        ("HTTPS_PROXY", &proxy.https_proxy),
        ("FTP_PROXY", &proxy.ftp_proxy),
        ("NO_PROXY", &proxy.no_proxy),
        ("ALL_PROXY", &proxy.all_proxy),
    ];
    for (name, value) in pairs {
        if value.is_empty() {
            continue;
        }
        for key in [name.to_string(), name.to_ascii_lowercase()] {
            if !env
                .iter()
                .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
            {
                env.push(format!("{key}={value}"));
            }
        }
    }
    env
}

/// `env` with `vars` set, each replacing a variable of the same name.
fn with_vars(mut env: Vec<String>, vars: Vec<(String, String)>) -> Vec<String> {
    for (name, value) in vars {
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name);
        env.push(format!("{name}={value}"));
    }
    env
}

#[cfg(test)]
mod tests {
    use llb::pb;

    use super::*;
    use crate::ops::base_digest;

    fn exec_op(proxy: Option<pb::ProxyEnv>) -> pb::Op {
        let meta = pb::Meta {
            args: vec!["true".into()],
            env: vec!["no_proxy=mine".into()],
            proxy_env: proxy,
            ..Default::default()
        };
        let exec = pb::ExecOp {
            meta: Some(meta),
            ..Default::default()
        };
        pb::Op {
            inputs: Vec::new(),
            kind: Some(pb::op::Kind::Exec(exec)),
            platform: None,
        }
    }

    #[test]
    fn proxies_are_in_the_env_but_not_the_cache_key() {
        let proxy = pb::ProxyEnv {
            http_proxy: "http://p:1".into(),
            no_proxy: "x".into(),
            ..Default::default()
        };
        let with = exec_op(Some(proxy));
        assert_eq!(base_digest(&with), base_digest(&exec_op(None)));
        let Some(pb::op::Kind::Exec(exec)) = &with.kind else {
            panic!("not an exec op")
        };
        let env = process_env(exec.meta.as_ref().unwrap());
        assert_eq!(
            env,
            vec![
                "no_proxy=mine",
                "HTTP_PROXY=http://p:1",
                "http_proxy=http://p:1",
                "NO_PROXY=x"
            ]
        );
    }
}
