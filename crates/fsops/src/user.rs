//! Users and groups of a tree: its `/etc/passwd` and `/etc/group`, read inside the tree, and
//! the two ways kiln turns names into ids.
//!
//! - [`resolve_ownership`]: `COPY --chown=user:group` (and the other `--chown`s), BuildKit's
//!   rules: a numeric user is used as is with the same number as its group.
//! - [`resolve_exec_user`]: a step's `USER`, runc's `user.GetExecUser` as BuildKit applies it:
//!   a numeric user without an entry gets gid 0, and supplementary groups come from
//!   `/etc/group`.
//!
//! Both read the files inside the tree's root (`openat2(RESOLVE_IN_ROOT)`: a symlinked
//! `/etc/passwd` is followed within the root only), as a process in the container would see
//! them. A missing file has no entries. Lines are parsed as runc does: blank lines and `#`
//! comments are skipped, and so are malformed lines (too few fields, an id that is not a number
//! between 0 and 2^31 - 1); the first matching line wins.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, FileType};
use rustix::io::Errno;

use crate::inroot::{errno_is, open_regular, resolve_final};

/// Largest passwd or group file read; anything bigger is not a real one.
const MAX_DB_SIZE: u64 = 16 << 20;

/// Numeric owner of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ownership {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A user or group as written in `--chown`: a numeric id or a name to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// A numeric id, used as is.
    Id(u32),
    /// A name, looked up in the destination's `/etc/passwd` or `/etc/group`.
    Name(String),
}

impl UserRef {
    /// Parses `--chown` syntax: all digits (fitting a u32) is an id, anything else a name.
    pub fn parse(text: &str) -> UserRef {
        match text.parse::<u32>() {
            Ok(id) if text.bytes().all(|b| b.is_ascii_digit()) => UserRef::Id(id),
            _ => UserRef::Name(text.to_owned()),
        }
    }
}

/// A user a process runs as: ids and the groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The primary gid first, then the supplementary groups, without duplicates.
    pub additional_gids: Vec<u32>,
}

/// Why a user or group could not be resolved. The messages are runc's, which BuildKit shows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// A user name has no entry in the tree's `/etc/passwd`.
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser {
        /// The user name.
        name: String,
    },
    /// A group name has no entry in the tree's `/etc/group`.
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// `/etc/passwd` or `/etc/group` exists in the tree but could not be read.
    #[error("failed to read {path} in the root filesystem")]
    Read {
        /// The path inside the tree.
        path: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Resolves a `--chown` `user[:group]` against the tree whose root is open as `root` (any fd
/// of it, `O_PATH` included).
///
/// BuildKit's chown rules: a user id is used as is and its gid defaults to the same number
/// (`--chown=1000` is 1000:1000); a user name gives its uid and primary gid from passwd; a
/// group, when given, overrides the gid. A name missing from the file (or a missing file) is
/// [`UserError::UnknownUser`] / [`UserError::UnknownGroup`].
pub fn resolve_ownership(
    root: BorrowedFd<'_>,
    user: &UserRef,
    group: Option<&UserRef>,
) -> Result<Ownership, UserError> {
    ownership_from(user, group, |path| read_db(root, path))
}

/// Resolves a `USER` value (`user`, `user:group`, ids or names, empty for root) against the
/// tree whose root is open as `root`, with runc's rules: `uid:gid` with both parts numeric (or
/// `root`) needs no files; otherwise the user is looked up in `/etc/passwd` (a numeric user
/// without an entry is allowed and gets gid 0), an explicit group in `/etc/group`, and, when no
/// group was given, the supplementary groups are the groups that list the user by name.
pub fn resolve_exec_user(root: BorrowedFd<'_>, spec: &str) -> Result<ExecUser, UserError> {
    exec_user_from(spec, |path| read_db(root, path))
}

/// [`resolve_ownership`] with the files given by `load`.
fn ownership_from(
    user: &UserRef,
    group: Option<&UserRef>,
    mut load: impl FnMut(&'static str) -> Result<String, UserError>,
) -> Result<Ownership, UserError> {
    let (uid, mut gid) = match user {
        UserRef::Id(id) => (*id, *id),
        UserRef::Name(name) => {
            let passwd = load(PASSWD)?;
            let entry = passwd_entries(&passwd).find(|e| e.name == name);
            let entry = entry.ok_or_else(|| UserError::UnknownUser { name: name.clone() })?;
            (entry.uid, entry.gid)
        }
    };
    match group {
        None => {}
        Some(UserRef::Id(id)) => gid = *id,
        Some(UserRef::Name(name)) => {
            let groups = load(GROUP)?;
            let entry = group_entries(&groups).find(|g| g.name == name);
            gid = entry
                .ok_or_else(|| UserError::UnknownGroup { name: name.clone() })?
                .gid;
        }
    }
    Ok(Ownership { uid, gid })
}

/// [`resolve_exec_user`] with the files given by `load`.
fn exec_user_from(
    spec: &str,
    mut load: impl FnMut(&'static str) -> Result<String, UserError>,
) -> Result<ExecUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    // Fast path: both ids numeric, no file is read (BuildKit's ParseUIDGID).
    if let Some(group) = group_part
        && let (Some(uid), Some(gid)) = (numeric_id(user_part), numeric_id(group))
    {
        return Ok(ExecUser {
            uid,
            gid,
            additional_gids: vec![gid],
        });
    }

    let passwd = load(PASSWD)?;
    let wanted_uid = parse_id(user_part);
    let entry = passwd_entries(&passwd).find(|e| match wanted_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let (uid, mut gid, name) = match (entry, wanted_uid) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(UserError::UnknownUser {
                name: user_part.to_owned(),
            });
        }
    };

    let mut supplementary = Vec::new();
    if let Some(group) = group_part {
        let groups = load(GROUP)?;
        let wanted_gid = parse_id(group);
        let entry = group_entries(&groups).find(|g| match wanted_gid {
            Some(gid) => g.gid == gid,
            None => g.name == group,
        });
        gid = match (entry, wanted_gid) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(UserError::UnknownGroup {
                    name: group.to_owned(),
                });
            }
        };
    } else if let Some(name) = name {
        let groups = load(GROUP)?;
        supplementary.extend(
            group_entries(&groups)
                .filter(|g| g.members.contains(&name))
                .map(|g| g.gid),
        );
    }

    let mut additional_gids = vec![gid];
    for g in supplementary {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
    })
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// Reads a user database file of the tree (`path` absolute inside it); a missing one reads as
/// empty, because a tree without `/etc/passwd` simply has no entries. Anything other than a
/// regular file there (a directory, a fifo) is an error, as is a file over 16 MiB.
fn read_db(root: BorrowedFd<'_>, path: &'static str) -> Result<String, UserError> {
    let fail = |source: io::Error| UserError::Read { path, source };
    let rel = path.trim_start_matches('/').as_bytes();
    let (dir, name) = match resolve_final(root, rel) {
        // ENOTDIR: a parent such as `/etc` is not a directory, so the file is missing too.
        Err(e) if errno_is(&e, &[Errno::NOENT, Errno::NOTDIR]) => return Ok(String::new()),
        other => other.map_err(fail)?,
    };
    let stat = match rfs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => return Ok(String::new()),
        other => other.map_err(|e| fail(e.into()))?,
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        )));
    }
    let fd = open_regular(dir.as_fd(), &name, &stat).map_err(fail)?;
    let mut data = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_DB_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(fail)?;
    if data.len() as u64 > MAX_DB_SIZE {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than 16 MiB",
        )));
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// A numeric id, where `root` also means 0 (as in BuildKit's fast path).
fn numeric_id(s: &str) -> Option<u32> {
    if s == "root" { Some(0) } else { parse_id(s) }
}

/// A decimal id in the range runc accepts (0 to 2^31 - 1); anything else is not an id.
fn parse_id(s: &str) -> Option<u32> {
    s.parse().ok().filter(|&id| id <= i32::MAX as u32)
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines that are neither empty nor comments, split at `:`.
fn records(content: &str) -> impl Iterator<Item = Vec<&str>> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// `name:password:uid:gid:gecos:home:shell`; malformed lines are skipped, as runc does.
fn passwd_entries(content: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(content).filter_map(|f| {
        Some(PasswdEntry {
            name: f.first()?,
            uid: parse_id(f.get(2)?)?,
            gid: parse_id(f.get(3)?)?,
        })
    })
}

/// `name:password:gid:member,member`; malformed lines are skipped.
fn group_entries(content: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(content).filter_map(|f| {
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|m| !m.is_empty()).collect())
            .unwrap_or_default();
        Some(GroupEntry {
            name: f.first()?,
            gid: parse_id(f.get(2)?)?,
            members,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use rustix::fs::{Mode, OFlags};

    use super::*;

    const PASSWD_FIXTURE: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\n\nbroken:x:notanumber:1\napp:x:1000:1000::/home/app:/bin/sh\nshort\n";
    const GROUP_FIXTURE: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nextra:x:2000:app\n";

    /// The fixtures, or missing files when `files` is false.
    fn load(files: bool) -> impl FnMut(&'static str) -> Result<String, UserError> {
        move |path| {
            Ok(match (files, path) {
                (false, _) => String::new(),
                (true, PASSWD) => PASSWD_FIXTURE.to_owned(),
                (true, _) => GROUP_FIXTURE.to_owned(),
            })
        }
    }

    fn exec(spec: &str, files: bool) -> Result<(u32, u32, Vec<u32>), UserError> {
        exec_user_from(spec, load(files)).map(|u| (u.uid, u.gid, u.additional_gids))
    }

    #[test]
    fn exec_users_resolve_in_every_form() {
        assert_eq!(exec("", true).unwrap(), (0, 0, vec![0, 10]));
        assert_eq!(exec("", false).unwrap(), (0, 0, vec![0]));
        assert_eq!(exec("app", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
        assert_eq!(exec("1000", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
        assert_eq!(exec("1234", true).unwrap(), (1234, 0, vec![0]));
        assert_eq!(exec("1234:5678", false).unwrap(), (1234, 5678, vec![5678]));
        assert_eq!(exec("root:root", false).unwrap(), (0, 0, vec![0]));
        assert_eq!(exec("app:extra", true).unwrap(), (1000, 2000, vec![2000]));
        assert_eq!(exec("app:77", true).unwrap(), (1000, 77, vec![77]));
        assert_eq!(exec("1000:wheel", true).unwrap(), (1000, 10, vec![10]));
        assert_eq!(exec("app:", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = exec("nobody", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert!(matches!(exec("app", false), Err(UserError::UnknownUser { .. })));
        assert!(matches!(
            exec("4294967295", true),
            Err(UserError::UnknownUser { .. })
        ));
        assert!(matches!(exec("broken", true), Err(UserError::UnknownUser { .. })));
        let err = exec("app:nogroup", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
    }

    #[test]
    fn chown_owners_follow_buildkit() {
        let chown = |user: &str, group: Option<&str>| {
            let group = group.map(UserRef::parse);
            ownership_from(&UserRef::parse(user), group.as_ref(), load(true)).map(|o| (o.uid, o.gid))
        };
        assert_eq!(chown("app", None).unwrap(), (1000, 1000));
        assert_eq!(chown("root", None).unwrap(), (0, 0));
        // A numeric user needs no entry and lends its number to the group.
        assert_eq!(chown("1234", None).unwrap(), (1234, 1234));
        assert_eq!(chown("app", Some("wheel")).unwrap(), (1000, 10));
        assert_eq!(chown("5", Some("6")).unwrap(), (5, 6));
        assert!(matches!(chown("short", None), Err(UserError::UnknownUser { .. })));
        assert!(matches!(
            chown("app", Some("x")),
            Err(UserError::UnknownGroup { .. })
        ));
    }

    #[test]
    fn user_refs_parse() {
        assert_eq!(UserRef::parse("1000"), UserRef::Id(1000));
        assert_eq!(UserRef::parse("www-data"), UserRef::Name("www-data".into()));
        assert_eq!(UserRef::parse("+5"), UserRef::Name("+5".into()));
        assert_eq!(UserRef::parse("99999999999"), UserRef::Name("99999999999".into()));
    }

    fn open(path: &std::path::Path) -> OwnedFd {
        rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn databases_are_read_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "evil:x:42:42::/:/bin/sh\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let fd = open(root.path());
        // No /etc at all, then an /etc without the files: no entries.
        assert_eq!(read_db(fd.as_fd(), PASSWD).unwrap(), "");
        std::fs::create_dir(root.path().join("etc")).unwrap();
        assert_eq!(read_db(fd.as_fd(), GROUP).unwrap(), "");
        // A symlink to a host file is resolved inside the root, where nothing is.
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("etc/passwd")).unwrap();
        assert_eq!(read_db(fd.as_fd(), PASSWD).unwrap(), "");
        let err = resolve_exec_user(fd.as_fd(), "evil").unwrap_err();
        assert!(matches!(err, UserError::UnknownUser { .. }), "{err}");
        // A directory where the file should be is an error that names the file.
        std::fs::create_dir(root.path().join("etc/group")).unwrap();
        let err = read_db(fd.as_fd(), GROUP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read /etc/group in the root filesystem"
        );
        // A real file inside the root is read.
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), "app:x:7:8::/:/bin/sh\n").unwrap();
        let owner = resolve_ownership(fd.as_fd(), &UserRef::parse("app"), None).unwrap();
        assert_eq!(owner, Ownership { uid: 7, gid: 8 });
    }
}
