//! Content digests of copy sources: the cache key of a COPY (BuildKit's `contenthash`).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci::{Digest, Sha256Writer};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::inroot::{Xattr, read_names, read_xattrs, xattr_allowed};
use super::{
    FileOpError, Ownership, failed, find_sources, join_shown, open_regular, open_root, open_source, shown,
    split_last,
};

/// Version tag hashed first, so a change of the record format changes every digest.
const FORMAT: &[u8] = b"kiln.fileop.content.v1\0";

/// The digest of what [`copy`](super::copy) with these source-side options reads.
///
/// Matches `src` exactly as `copy` does (same wildcard, `follow_symlink` and not-found rules).
/// For every match, in order, it hashes the match's name, then walks the match depth-first
/// with names sorted by bytes and hashes one record per entry: its path relative to the match,
/// type, permission bits, uid and gid (or `source_owner`), symlink target, device numbers and
/// the xattrs `copy` carries over (sorted), followed for regular files by their content and
/// length. Times are not included, so touching a file keeps the digest; changing a file's
/// content, mode, owner or name changes it. Records are length-prefixed, so the digest is
/// deterministic across runs and machines and no two trees share one by framing accident.
pub fn content_digest(
    src_root: &Path,
    src: &str,
    follow_symlink: bool,
    allow_wildcard: bool,
    allow_empty_wildcard: bool,
    source_owner: Option<Ownership>,
) -> Result<Digest, FileOpError> {
    let root = open_root(src_root)?;
    let matches = find_sources(root.as_fd(), src, allow_wildcard, allow_empty_wildcard)?;
    let mut hasher = Hasher {
        out: Sha256Writer::new(io::sink()),
        owner: source_owner,
    };
    hasher.put(FORMAT);
    for rel in &matches {
        let source = open_source(root.as_fd(), rel, follow_symlink)?;
        let (_, base) = split_last(rel);
        hasher.put(b"M");
        hasher.field(base);
        let base_shown = shown(rel);
        let top = hasher.visit(source.dir.as_fd(), &source.name, &source.stat, b"", &base_shown)?;
        let mut stack: Vec<Dir> = top.into_iter().collect();
        while let Some(dir) = stack.last_mut() {
            let Some(name) = dir.names.pop() else {
                stack.pop();
                continue;
            };
            let child = [&dir.rel[..], if dir.rel.is_empty() { b"" } else { b"/" }, &name].concat();
            let path = join_shown(&base_shown, &child);
            let st = match rfs::statat(&dir.fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => continue,
                other => other.map_err(failed("stat", &path))?,
            };
            let next = hasher.visit(dir.fd.as_fd(), &name, &st, &child, &path)?;
            stack.extend(next);
        }
    }
    let (digest, _, _) = hasher.out.finish();
    Ok(digest)
}

/// A directory being walked: its fd, names left (reversed) and path relative to the match.
struct Dir {
    fd: OwnedFd,
    names: Vec<Vec<u8>>,
    rel: Vec<u8>,
}

struct Hasher {
    out: Sha256Writer<io::Sink>,
    owner: Option<Ownership>,
}

impl Hasher {
    fn put(&mut self, bytes: &[u8]) {
        // Writing to a sink through the hashing writer cannot fail.
        let _ = self.out.write_all(bytes);
    }

    fn num(&mut self, n: u64) {
        self.put(&n.to_le_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        self.num(bytes.len() as u64);
        self.put(bytes);
    }

    /// Hashes the entry `name` of `dir`; returns the directory to walk next for a directory.
    fn visit(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &rfs::Stat,
        rel: &[u8],
        path: &str,
    ) -> Result<Option<Dir>, FileOpError> {
        let kind = FileType::from_raw_mode(st.st_mode);
        let (mut link, mut xattrs, mut walk, mut content) = (Vec::new(), Vec::new(), None, None);
        match kind {
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rfs::openat(dir, name, flags, Mode::empty()).map_err(failed("open", path))?;
                xattrs = read_xattrs(fd.as_fd()).map_err(failed("read xattrs of", path))?;
                let mut names = read_names(fd.as_fd()).map_err(failed("list", path))?;
                names.reverse();
                walk = Some(Dir {
                    fd,
                    names,
                    rel: rel.to_vec(),
                });
            }
            FileType::RegularFile => {
                let fd = open_regular(dir, name, st).map_err(failed("open", path))?;
                xattrs = read_xattrs(fd.as_fd()).map_err(failed("read xattrs of", path))?;
                content = Some(fd);
            }
            FileType::Symlink => {
                link = rfs::readlinkat(dir, name, Vec::new())
                    .map_err(failed("read symlink", path))?
                    .into_bytes();
            }
            _ => {}
        }
        self.record(rel, st, kind, &link, &xattrs);
        if let Some(fd) = content {
            let length = io::copy(&mut File::from(fd), &mut self.out).map_err(failed("read", path))?;
            self.num(length);
        }
        Ok(walk)
    }

    fn record(&mut self, rel: &[u8], st: &rfs::Stat, kind: FileType, link: &[u8], xattrs: &[Xattr]) {
        let tag = match kind {
            FileType::RegularFile => b'f',
            FileType::Directory => b'd',
            FileType::Symlink => b'l',
            FileType::CharacterDevice => b'c',
            FileType::BlockDevice => b'b',
            FileType::Fifo => b'p',
            FileType::Socket => b's',
            FileType::Unknown => b'?',
        };
        let (uid, gid) = self.owner.map_or((st.st_uid, st.st_gid), |o| (o.uid, o.gid));
        let (major, minor) = match kind {
            FileType::CharacterDevice | FileType::BlockDevice => {
                (rfs::major(st.st_rdev), rfs::minor(st.st_rdev))
            }
            _ => (0, 0),
        };
        self.put(b"E");
        self.field(rel);
        self.put(&[tag]);
        for n in [st.st_mode & 0o7777, uid, gid, major, minor] {
            self.num(n.into());
        }
        self.field(link);
        let kept: Vec<&Xattr> = xattrs.iter().filter(|(n, _)| xattr_allowed(n)).collect();
        self.num(kept.len() as u64);
        for (name, value) in kept {
            self.field(name);
            self.field(value);
        }
    }
}
