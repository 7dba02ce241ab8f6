//! A git repository as the build context (`kiln build https://host/repo.git#ref:subdir`): before
//! the Dockerfile is read, the repository is solved as a one-vertex graph of the build's own
//! session (its secrets may authenticate the remote), and a read-only view of the result
//! becomes the build's context directory, held until the build ends. The checkout is an
//! ordinary cached source: a commit checked out before is not fetched again.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use solver::Solver;

use crate::progress::Forward;
use crate::{BuildError, BuildRequest, Inner, Progress, Ref, ops};

/// A checked-out context: the view is unmounted when this drops.
pub(crate) enum Checkout {
    /// A snapshot's read-only view.
    View(store::Mounted),
    /// An empty directory (the repository, or its subdirectory, holds nothing).
    Empty(store::EmptyDir),
}

impl Checkout {
    /// The context directory.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Checkout::View(view) => view.path(),
            Checkout::Empty(dir) => dir.path(),
        }
    }
}

/// `request` as the frontend takes it: unchanged for a context directory; for a git context,
/// with the checkout as its context directory and a relative `dockerfile` inside the
/// checkout (as buildx takes `-f` with a remote context). The checkout must outlive the build.
pub(crate) async fn resolve<'r>(
    inner: &Arc<Inner>,
    solver: &Arc<Solver<Ref, ops::Session>>,
    request: &'r BuildRequest,
    registry: &registry::Client,
    progress: Arc<dyn Progress>,
) -> Result<(Cow<'r, BuildRequest>, Option<Checkout>), BuildError> {
    let Some(git) = &request.git_context else {
        return Ok((Cow::Borrowed(request), None));
    };
    let definition = llb::Definition::marshal(Some(&git.source(llb::OpOptions::default())), Vec::new());
    let session = Arc::new(ops::Session::of_build(request, registry, Default::default()));
    let (graph, vertices) = ops::prepare(inner, &definition, &session).await?;
    let (digest, index) = graph
        .root
        .as_ref()
        .ok_or_else(|| BuildError::Request("the git context has no source op".into()))?;
    let root = vertices
        .get(digest)
        .ok_or_else(|| BuildError::Request("the git context's source op was not loaded".into()))?;
    let mut job = solver.job(Arc::new(Forward(progress)), session);
    let solved = ops::solve_files(inner, &mut job, &graph, root, *index).await?;
    let store = inner.store.clone();
    let checkout = ops::blocking(move || match solved {
        Ref::Snapshot(id) => store.view(id).map(Checkout::View),
        Ref::Empty | Ref::Local(_) | Ref::Remote(_) => store.empty_dir().map(Checkout::Empty),
    })
    .map_err(BuildError::Checkout)?;
    let mut resolved = request.clone();
    resolved.git_context = None;
    resolved.context = checkout.path().to_path_buf();
    resolved.dockerfile = request.dockerfile.as_ref().map(|f| inside(checkout.path(), f));
    Ok((Cow::Owned(resolved), Some(checkout)))
}

/// `-f FILE` of a git context: relative to the checkout.
fn inside(checkout: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        checkout.join(file)
    }
}
