//! Filesystem semantics on untrusted trees: what kiln does to directories, independent of where
//! they live.
//!
//! - [`fileop`]: LLB's file actions (COPY with moby's pattern rules for `.dockerignore`,
//!   `--exclude` and `--parents`, symbolic `--chmod`, `--chown`, ADD's archive extraction; mkdir,
//!   mkfile, rm, symlink) and the content digests COPY cache keys use, with an in-memory
//!   [`fileop::HashCache`] of file digests.
//! - [`layer`]: OCI layer tar ⇄ overlayfs layer directory (apply, including whiteouts, and the
//!   deterministic writer).
//! - [`inroot`]: the primitives everything above is built on: paths resolved beneath a root
//!   directory fd with `openat2(RESOLVE_IN_ROOT)`, entries handled as (directory fd, name) pairs
//!   that never follow a final symlink, directories created and removed without recursion.
//! - [`resolve`]: a path resolved inside a tree as a process whose root it is would, as a host
//!   path (what a bind mount of part of a tree uses).
//! - [`xattr`]: reading xattrs and which of them may travel with a file.
//! - [`user`]: `/etc/passwd` and `/etc/group` read inside a tree; `--chown` and `USER`
//!   resolution.
//!
//! Invariants:
//! - Every tree is untrusted (an image's filesystem, a layer tar, a build context): every path
//!   is resolved inside its root, so nothing outside a root is ever read, created, changed or
//!   removed, whatever symlinks, `..` or hostile tar entries the input holds. Bad input is an
//!   error, never a panic.
//! - It knows nothing of the state directory, snapshots, builds or caches: callers hand it
//!   directories (the store mounts snapshots and keeps hash caches; the executor and the
//!   exporter hand it root filesystems and destinations).
//! - Deterministic: directory listings are sorted by bytes, layer tars and content digests are
//!   the same bytes for the same tree.
//!
//! Tests: unit tests beside the code; `tests/` runs the file actions and layer apply/write on
//! real trees as root (ownership, device nodes, overlayfs).

#![forbid(unsafe_code)]

pub mod fileop;
pub mod inroot;
pub mod layer;
pub mod resolve;
pub mod user;
pub mod xattr;
