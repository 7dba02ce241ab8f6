//! The user a container process runs as: the exec's `USER` resolved against the root
//! filesystem's `/etc/passwd` and `/etc/group`, read inside the root, with runc's rules
//! (`fsops::user::resolve_exec_user`, where the rules and the parsing live).

use crate::Result;
use crate::rootfs::Rootfs;

/// A resolved user: uid, gid and the additional gids (primary first).
pub(crate) use fsops::user::ExecUser as User;

/// Resolves `spec` (`user[:group]`, names or ids) in `root`.
pub(crate) fn resolve(root: &Rootfs, spec: &str) -> Result<User> {
    Ok(fsops::user::resolve_exec_user(root.fd(), spec)?)
}
