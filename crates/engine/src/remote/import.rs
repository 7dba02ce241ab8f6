//! `--cache-from`: reading each source's cache object before the solve.

use std::sync::Arc;

use super::{CacheBackend, Imported, backend};

/// Reads every `--cache-from` source of a build. A source that cannot be read (missing,
/// unreachable, not a cache, hostile) is reported with `warn` and left out: the build runs
/// without it, as BuildKit's does.
pub(crate) async fn import_all(
    registry: &registry::Client,
    imports: &[CacheBackend],
    progress: &Arc<dyn crate::Progress>,
    warn: &(dyn Fn(String) + Send + Sync),
) -> Vec<Arc<Imported>> {
    let mut out = Vec::new();
    for backend in imports {
        let step = crate::progress::Step::start(progress, format!("importing cache manifest from {backend}"));
        let result = backend::import(registry, backend).await;
        match step.finish(result) {
            Ok(imported) => {
                if imported.dropped > 0 {
                    warn(format!(
                        "cache {backend}: {} cache results could not be followed and were left out",
                        imported.dropped
                    ));
                }
                out.push(Arc::new(imported.imported));
            }
            Err(e) => warn(format!(
                "importing cache from {backend} failed, building without it: {}",
                oci::error_chain(&e)
            )),
        }
    }
    out
}
