//! Resolves a Dockerfile `USER` string to numeric ids, as Docker and BuildKit do.
//!
//! The rules are those of runc's `user.GetExecUser` as BuildKit applies them: `uid:gid` with
//! both parts numeric needs no files; otherwise the user is looked up in `/etc/passwd` (a
//! numeric user without an entry is allowed and gets gid 0), an explicit group in
//! `/etc/group`, and supplementary groups are the groups that list the user by name when no
//! group was given. The primary gid always comes first in the additional gids.

use crate::{Error, Result};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the supplementary groups, without duplicates.
    pub additional_gids: Vec<u32>,
}

/// Resolves `spec`; `load` returns the content of `/etc/passwd` or `/etc/group` inside the
/// root filesystem, or an empty string when the file does not exist.
pub(crate) fn resolve(spec: &str, mut load: impl FnMut(&str) -> Result<String>) -> Result<User> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    // Fast path: both ids numeric, no file is read (BuildKit's ParseUIDGID).
    if let Some(group) = group_part
        && let (Some(uid), Some(gid)) = (numeric_id(user_part), numeric_id(group))
    {
        return Ok(User {
            uid,
            gid,
            additional_gids: vec![gid],
        });
    }

    let passwd = load("/etc/passwd")?;
    let wanted_uid = parse_id(user_part);
    let entry = passwd_entries(&passwd).find(|e| match wanted_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let (uid, mut gid, name) = match (entry, wanted_uid) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(Error::UnknownUser {
                name: user_part.to_owned(),
            });
        }
    };

    let mut supplementary = Vec::new();
    if let Some(group) = group_part {
        let groups = load("/etc/group")?;
        let wanted_gid = parse_id(group);
        let entry = group_entries(&groups).find(|g| match wanted_gid {
            Some(gid) => g.gid == gid,
            None => g.name == group,
        });
        gid = match (entry, wanted_gid) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(Error::UnknownGroup {
                    name: group.to_owned(),
                });
            }
        };
    } else if let Some(name) = name {
        let groups = load("/etc/group")?;
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
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
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
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\n\nbroken:x:notanumber:1\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1000:\nextra:x:2000:app\n";

    /// Resolves `spec` against the fixtures, or against missing files when `files` is false.
    fn check(spec: &str, files: bool) -> Result<(u32, u32, Vec<u32>)> {
        resolve(spec, |path| {
            Ok(match (files, path) {
                (false, _) => String::new(),
                (true, "/etc/passwd") => PASSWD.to_owned(),
                (true, _) => GROUP.to_owned(),
            })
        })
        .map(|u| (u.uid, u.gid, u.additional_gids))
    }

    #[test]
    fn resolves_every_form() {
        assert_eq!(check("", true).unwrap(), (0, 0, vec![0, 10]));
        assert_eq!(check("", false).unwrap(), (0, 0, vec![0]));
        assert_eq!(check("app", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
        assert_eq!(check("1000", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
        assert_eq!(check("1234", true).unwrap(), (1234, 0, vec![0]));
        assert_eq!(check("1234:5678", false).unwrap(), (1234, 5678, vec![5678]));
        assert_eq!(check("root:root", false).unwrap(), (0, 0, vec![0]));
        assert_eq!(check("app:extra", true).unwrap(), (1000, 2000, vec![2000]));
        assert_eq!(check("app:77", true).unwrap(), (1000, 77, vec![77]));
        assert_eq!(check("1000:wheel", true).unwrap(), (1000, 10, vec![10]));
        assert_eq!(check("app:", true).unwrap(), (1000, 1000, vec![1000, 10, 2000]));
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = check("nobody", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert!(matches!(check("app", false), Err(Error::UnknownUser { .. })));
        assert!(matches!(
            check("4294967295", true),
            Err(Error::UnknownUser { .. })
        ));
        let err = check("app:nogroup", true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
    }
}
