//! Results of imported caches, found by key and downloaded when their files are needed.

use std::sync::Arc;

use oci::Digest;
use solver::{Context, OpError};
use store::{CacheRecord, SnapshotId, Store};

use crate::{Inner, Ref};

/// `r` with its files on disk: a remote result is downloaded and applied (once), and recorded
/// in the local cache under its key; anything else is returned as it is.
pub(crate) async fn materialize(
    inner: &Arc<Inner>,
    r: Ref,
    progress: &dyn sources::Progress,
) -> Result<Ref, OpError> {
    let Ref::Remote(remote) = r else {
        return Ok(r);
    };
    let snapshot = remote
        .snapshot
        .get_or_try_init(|| async {
            let layers: Vec<(oci::Descriptor, Digest)> = remote
                .chain()
                .iter()
                .map(|l| (l.descriptor.clone(), l.diff_id.clone()))
                .collect();
            let source = remote.source();
            let top = sources::pull::apply_chain(
                &inner.store,
                &format!("cache {}", source.name),
                &layers,
                source.blobs.as_ref(),
                progress,
            )
            .await
            .map_err(|e| Arc::new(e) as OpError)?;
            if let Some(id) = top {
                record(&inner.store, &remote.key, vec![Some(id)]).await?;
            }
            Ok::<_, OpError>(top)
        })
        .await?;
    Ok(snapshot.map_or(Ref::Empty, Ref::Snapshot))
}

/// Every input of a step, materialized (see [`materialize`]).
pub(crate) async fn materialize_all<S: Send + Sync>(
    inner: &Arc<Inner>,
    inputs: Vec<Ref>,
    ctx: &Context<S>,
) -> Result<Vec<Ref>, OpError> {
    let progress = |line: String| ctx.status(line);
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        out.push(materialize(inner, input, &progress).await?);
    }
    Ok(out)
}

/// Records `outputs` under `key` in the local cache.
pub(crate) async fn record(
    store: &Arc<Store>,
    key: &Digest,
    outputs: Vec<Option<SnapshotId>>,
) -> Result<(), OpError> {
    let store = store.clone();
    let key = key.clone();
    let record = CacheRecord {
        outputs,
        created: unix_now(),
        last_used: None,
        usage_count: 0,
    };
    tokio::task::spawn_blocking(move || store.cache_put(&key, &record))
        .await
        .map_err(|e| Arc::new(e) as OpError)?
        .map_err(|e| Arc::new(e) as OpError)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
