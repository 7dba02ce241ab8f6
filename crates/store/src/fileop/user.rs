//! `--chown` names resolved against a tree's `/etc/passwd` and `/etc/group`.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType};
use rustix::io::Errno;

use super::inroot::{errno_is, resolve_final};
use super::{FileOpError, Ownership, UserRef, failed, open_regular, open_root};

/// Largest passwd or group file read; anything bigger is not a real one.
const MAX_DB_SIZE: u64 = 64 << 20;

/// Resolves `user[:group]` against `<root>/etc/passwd` and `<root>/etc/group`, read inside
/// `root` (a symlinked `/etc/passwd` is followed within the root only).
///
/// BuildKit's chown rules: a user id is used as is and its gid defaults to the same number
/// (`--chown=1000` is 1000:1000); a user name gives its uid and primary gid from passwd; a
/// group, when given, overrides the gid. A name missing from the file (or a missing file) is
/// [`FileOpError::UnknownUser`] / [`FileOpError::UnknownGroup`].
pub fn resolve_ownership(
    root: &Path,
    user: &UserRef,
    group: Option<&UserRef>,
) -> Result<Ownership, FileOpError> {
    let fd = open_root(root)?;
    let (uid, mut gid) = match user {
        UserRef::Id(id) => (*id, *id),
        UserRef::Name(name) => {
            let passwd = read_db(fd.as_fd(), b"etc/passwd")?;
            lookup(&passwd, name, true).ok_or_else(|| FileOpError::UnknownUser { name: name.clone() })?
        }
    };
    match group {
        None => {}
        Some(UserRef::Id(id)) => gid = *id,
        Some(UserRef::Name(name)) => {
            let groups = read_db(fd.as_fd(), b"etc/group")?;
            (gid, _) = lookup(&groups, name, false)
                .ok_or_else(|| FileOpError::UnknownGroup { name: name.clone() })?;
        }
    }
    Ok(Ownership { uid, gid })
}

/// Reads a database file of the tree; a missing one (or a non-file) reads as empty.
fn read_db(root: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<u8>, FileOpError> {
    let shown = format!("/{}", String::from_utf8_lossy(path));
    let (dir, name) = match resolve_final(root, path) {
        Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => return Ok(Vec::new()),
        other => other.map_err(failed("resolve", &shown))?,
    };
    let stat = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(Vec::new()),
        other => other.map_err(failed("stat", &shown))?,
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Ok(Vec::new());
    }
    let fd = open_regular(dir.as_fd(), &name, &stat).map_err(failed("open", &shown))?;
    let mut data = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_DB_SIZE)
        .read_to_end(&mut data)
        .map_err(failed("read", &shown))?;
    Ok(data)
}

/// Finds `name` in passwd (`name:pw:uid:gid:...`) or group (`name:pw:gid:...`) data and returns
/// the id field and, for passwd, the gid (for group, the gid twice). Malformed lines are
/// skipped; the first match wins.
fn lookup(data: &[u8], name: &str, passwd: bool) -> Option<(u32, u32)> {
    let id = |field: Option<&[u8]>| std::str::from_utf8(field?).ok()?.trim().parse::<u32>().ok();
    data.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        if fields.next()? != name.as_bytes() {
            return None;
        }
        let first = id(fields.nth(1))?;
        let second = if passwd { id(fields.next())? } else { first };
        Some((first, second))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_parses_passwd_and_group() {
        let passwd = b"root:x:0:0:root:/root:/bin/sh\nbroken\napp:x:1000:1001::/home/app:/bin/sh\n";
        assert_eq!(lookup(passwd, "root", true), Some((0, 0)));
        assert_eq!(lookup(passwd, "app", true), Some((1000, 1001)));
        assert_eq!(lookup(passwd, "nobody", true), None);
        assert_eq!(lookup(passwd, "broken", true), None);
        let group = b"wheel:x:10:root\nstaff:x:50:\n";
        assert_eq!(lookup(group, "staff", false), Some((50, 50)));
        assert_eq!(lookup(group, "x", false), None);
    }
}
