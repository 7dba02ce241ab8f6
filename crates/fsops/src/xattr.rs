//! Extended attributes: reading them from a file and the rule for which may travel with a file
//! into an image, a layer or an export.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs as rfs;
use rustix::io::Errno;

/// An xattr name and value.
pub type Xattr = (Vec<u8>, Vec<u8>);

/// All xattrs of the file open as `fd` (not `O_PATH`), sorted by name.
pub fn read_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<Xattr>> {
    let list = match read_sized(|buf| rfs::flistxattr(fd.as_fd(), buf)) {
        Err(e) if e == Errno::NOTSUP => return Ok(Vec::new()),
        other => other?,
    };
    let mut xattrs = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        match read_sized(|buf| rfs::fgetxattr(fd.as_fd(), name, buf)) {
            Ok(value) => xattrs.push((name.to_vec(), value)),
            // Removed between listing and reading: it is simply not there.
            Err(e) if e == Errno::NODATA => {}
            Err(e) => return Err(e.into()),
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Calls a `*xattr` style function with a growing buffer until the value fits.
fn read_sized(mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // The kernel caps xattr lists and values at 64 KiB, so this ends.
            Err(e) if e == Errno::RANGE && buf.len() < (1 << 17) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// Whether an xattr may travel with a file into an image. `trusted.*` would let a tree forge
/// overlayfs state, and `security.*` labels other than file capabilities belong to the host.
pub fn xattr_allowed(name: &[u8]) -> bool {
    !name.contains(&0)
        && !name.starts_with(b"trusted.")
        && (name.starts_with(b"user.")
            || name == b"security.capability"
            || name == b"system.posix_acl_access"
            || name == b"system.posix_acl_default")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_allow_list() {
        assert!(xattr_allowed(b"user.foo"));
        assert!(xattr_allowed(b"security.capability"));
        assert!(!xattr_allowed(b"trusted.overlay.opaque"));
        assert!(!xattr_allowed(b"trusted.foo"));
        assert!(!xattr_allowed(b"security.selinux"));
    }
}
