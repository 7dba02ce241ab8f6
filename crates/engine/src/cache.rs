//! The solver's persistent cache, backed by the store's cache index.

use std::sync::Arc;

use oci::Digest;
use solver::{BoxFuture, CacheStore, OpError};
use store::{CacheRecord, Store};

use crate::Ref;

pub(crate) struct StoreCache {
    pub(crate) store: Arc<Store>,
}

impl CacheStore<Ref> for StoreCache {
    fn load<'a>(&'a self, key: &'a Digest) -> BoxFuture<'a, Result<Option<Vec<Ref>>, OpError>> {
        Box::pin(async move {
            let store = self.store.clone();
            let key = key.clone();
            let record = tokio::task::spawn_blocking(move || store.cache_get(&key))
                .await
                .map_err(|e| Arc::new(e) as OpError)?
                .map_err(|e| Arc::new(e) as OpError)?;
            Ok(record.map(|r| {
                r.outputs
                    .into_iter()
                    .map(|o| o.map_or(Ref::Empty, Ref::Snapshot))
                    .collect()
            }))
        })
    }

    fn save<'a>(&'a self, key: &'a Digest, outputs: &'a [Ref]) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move {
            let mut snapshots = Vec::with_capacity(outputs.len());
            for output in outputs {
                match output {
                    Ref::Empty => snapshots.push(None),
                    Ref::Snapshot(id) => snapshots.push(Some(*id)),
                    // A client directory is never a cacheable result.
                    Ref::Local(_) => return Ok(()),
                }
            }
            let store = self.store.clone();
            let key = key.clone();
            let record = CacheRecord {
                outputs: snapshots,
                created: unix_now(),
                last_used: None,
                usage_count: 0,
            };
            tokio::task::spawn_blocking(move || store.cache_put(&key, &record))
                .await
                .map_err(|e| Arc::new(e) as OpError)?
                .map_err(|e| Arc::new(e) as OpError)
        })
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
