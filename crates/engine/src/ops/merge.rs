//! Merge ops (`COPY --link` lowers to `Merge([base, scratch.File(copy …)])`): the inputs' layers
//! stacked in order, with overlay semantics.
//!
//! The result is one new snapshot on top of the first non-empty input. Every layer of each later
//! input's chain (base first) is replayed onto a writable mount of it: the layer directory is
//! streamed as a layer tar ([`fsops::layer::write_layer`]) straight into [`store::apply_layer`], so
//! whiteouts and opaque directories of later inputs delete what earlier ones had, exactly as
//! stacking the layers in an image would. Layers a later input shares with what is already
//! stacked (a common base) are not replayed again.
//!
//! Because a linked layer is replayed file by file, the new snapshot's own directory holds what
//! the linked layer holds, whatever the base below it: its layer tar, and so its diff ID, is the
//! same on every base (unless the base forces a type change, e.g. a file where the layer has a
//! directory, which overlayfs records as an opaque directory).
//!
//! Not done: merging the build context (a local directory has no layers), and reusing the linked
//! layer's blob instead of recomputing it at export.

use std::collections::BTreeSet;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use llb::pb;
use oci::Digest;
use solver::{BoxFuture, CacheMap, Context, Dep, Op, OpError};
use store::{SnapshotId, Store};

use super::Session;
use super::{OpFailure, join_error, op_error};
use crate::{Inner, Ref};

/// A merge op as a solver op.
pub(super) struct MergeOp {
    pub(super) inner: Arc<Inner>,
    pub(super) op: pb::MergeOp,
    pub(super) base: Digest,
    pub(super) n_inputs: usize,
}

impl Op<Ref, Session> for MergeOp {
    fn cache_map<'a>(&'a self, _ctx: &'a Context<Session>) -> BoxFuture<'a, Result<CacheMap<Ref>, OpError>> {
        Box::pin(async move {
            let deps = (0..self.n_inputs).map(|_| Dep::default()).collect();
            Ok(CacheMap::new(self.base.clone(), deps))
        })
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a Context<Session>,
        inputs: Vec<Ref>,
    ) -> BoxFuture<'a, Result<Vec<Ref>, OpError>> {
        Box::pin(async move {
            let mut snapshots = Vec::new();
            for index in &self.op.inputs {
                let input = usize::try_from(*index)
                    .ok()
                    .and_then(|i| inputs.get(i))
                    .ok_or_else(|| {
                        op_error(OpFailure::Invalid(format!("merge input {index} does not exist")))
                    })?;
                match input {
                    Ref::Empty => {}
                    Ref::Snapshot(id) => snapshots.push(*id),
                    Ref::Local(_) => {
                        return Err(op_error(OpFailure::NotSupported(
                            "merging the build context".into(),
                        )));
                    }
                    Ref::Remote(_) => return Err(op_error(OpFailure::NotDownloaded)),
                }
            }
            match snapshots.as_slice() {
                [] => return Ok(vec![Ref::Empty]),
                [only] => return Ok(vec![Ref::Snapshot(*only)]),
                _ => {}
            }
            ctx.status(format!("merging {} inputs", snapshots.len()));
            let store = self.inner.store.clone();
            let id = tokio::task::spawn_blocking(move || merge(&store, &snapshots))
                .await
                .map_err(join_error)?
                .map_err(op_error)?;
            Ok(vec![Ref::Snapshot(id)])
        })
    }
}

/// Stacks the layers of `snapshots[1..]` onto `snapshots[0]` as one new snapshot.
fn merge(store: &Store, snapshots: &[SnapshotId]) -> Result<SnapshotId, OpFailure> {
    let Some((first, rest)) = snapshots.split_first() else {
        return Err(OpFailure::Invalid("merge without inputs".into()));
    };
    let mut stacked: BTreeSet<SnapshotId> = store.chain(*first)?.iter().map(|s| s.id).collect();
    let active = store.prepare(Some(*first), "merge")?;
    {
        let mount = active.mount()?;
        for id in rest {
            for layer in store.chain(*id)? {
                // A chain is parent-linked, so what it shares with the stack is a prefix.
                if !stacked.insert(layer.id) {
                    continue;
                }
                replay(&store.layer_dir(layer.id), mount.path())?;
            }
        }
    }
    Ok(active.commit()?.id)
}

/// Applies the layer directory `layer` onto the mounted tree `target`, streaming the layer tar
/// through a pipe rather than materialising it.
fn replay(layer: &Path, target: &Path) -> Result<(), OpFailure> {
    let (reader, writer) =
        io::pipe().map_err(|e| OpFailure::Invalid(format!("failed to create a pipe: {e}")))?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(), OpFailure> {
            let mut out = BufWriter::new(writer);
            fsops::layer::write_layer(layer, &mut out).map_err(store::Error::from)?;
            out.flush().map_err(|e| {
                OpFailure::Invalid(format!("failed to stream layer {}: {e}", layer.display()))
            })?;
            Ok(())
        });
        let mut input = BufReader::new(reader);
        let applied = store::apply_layer(&mut input, target)
            .map_err(|e| OpFailure::from(store::Error::from(e)))
            // The end-of-archive blocks may still be in the pipe; read them so the writer
            // finishes instead of failing on a closed pipe.
            .and_then(|_| {
                io::copy(&mut input, &mut io::sink()).map(drop).map_err(|e| {
                    OpFailure::Invalid(format!("failed to stream layer {}: {e}", layer.display()))
                })
            });
        // Closing our end unblocks the writer if applying failed half-way.
        drop(input);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(OpFailure::Invalid("layer writer thread panicked".into())));
        // The applier's error is the interesting one: a writer error then is only the closed pipe.
        applied.and(produced)
    })
}
