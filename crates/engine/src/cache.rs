//! The solver's persistent cache, backed by the store's cache index, with the remote caches a
//! build imported behind it (see [`crate::remote`]).

use std::sync::Arc;

use oci::Digest;
use solver::{BoxFuture, CacheStore, Context, OpError};
use store::Store;

use crate::Ref;
use crate::ops::session::Session;
use crate::remote::RemoteRef;
use crate::remote::lazy::record;

pub(crate) struct StoreCache {
    pub(crate) store: Arc<Store>,
}

impl CacheStore<Ref, Session> for StoreCache {
    fn load<'a>(
        &'a self,
        key: &'a Digest,
        ctx: &'a Context<Session>,
    ) -> BoxFuture<'a, Result<Option<Vec<Ref>>, OpError>> {
        Box::pin(async move {
            let store = self.store.clone();
            let local_key = key.clone();
            let record = tokio::task::spawn_blocking(move || store.cache_get(&local_key))
                .await
                .map_err(|e| Arc::new(e) as OpError)?
                .map_err(|e| Arc::new(e) as OpError)?;
            match record {
                Some(r) => Ok(Some(
                    r.outputs
                        .into_iter()
                        .map(|o| o.map_or(Ref::Empty, Ref::Snapshot))
                        .collect(),
                )),
                None => Ok(lookup(key, ctx)),
            }
        })
    }

    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [Ref]) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let mut snapshots = Vec::with_capacity(outputs.len());
            for output in outputs {
                match output {
                    Ref::Empty => snapshots.push(None),
                    Ref::Snapshot(id) => snapshots.push(Some(*id)),
                    // A client directory is never a cacheable result, and a remote one is
                    // recorded when it is downloaded.
                    Ref::Local(_) | Ref::Remote(_) => return Ok(()),
                }
            }
            record(&self.store, key, snapshots).await
        })
    }

    fn has_links(&self, ctx: &Context<Session>) -> bool {
        ctx.sessions()
            .iter()
            .any(|session| session.remote_cache.iter().any(|source| !source.links.is_empty()))
    }

    fn resolve_link<'a>(
        &'a self,
        link: &'a Digest,
        ctx: &'a Context<Session>,
    ) -> BoxFuture<'a, Result<Option<Digest>, OpError>> {
        Box::pin(async move {
            Ok(ctx
                .sessions()
                .iter()
                .flat_map(|session| session.remote_cache.iter())
                .find_map(|source| source.links.get(link).cloned()))
        })
    }
}

/// The result of `key` in the caches imported by the builds waiting in `ctx`, if any.
pub(crate) fn lookup(key: &Digest, ctx: &Context<Session>) -> Option<Vec<Ref>> {
    for session in ctx.sessions() {
        for source in &session.remote_cache {
            if source.chains.contains_key(key) {
                return Some(vec![Ref::Remote(Arc::new(RemoteRef {
                    key: key.clone(),
                    source: source.clone(),
                    snapshot: tokio::sync::OnceCell::new(),
                }))]);
            }
        }
    }
    None
}
