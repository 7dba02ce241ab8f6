//! Content digests of copy sources: the cache key of a COPY (BuildKit's `contenthash`).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci::{Digest, Sha256Writer};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::error::{FileOpError, failed};
use super::filter::{self, Filters, State, Verdict};
use super::hashcache::{HashCache, Reader};
use super::options::CopyOptions;
use super::source::{check_required, copy_sources, open_source};
use super::support::{join_shown, open_root, shown, split_last};
use crate::inroot::{is_dir, open_regular, read_names};
use crate::user::Ownership;
use crate::xattr::{Xattr, read_xattrs, xattr_allowed};

/// Version tag hashed first, so a change of the record format changes every digest.
const FORMAT: &[u8] = b"kiln.fileop.content.v2\0";

/// The digest of what [`copy`](super::copy) with these options reads.
///
/// Only the source side of `options` counts: `src` is matched exactly as `copy` matches it
/// (same wildcard, `follow_symlink`, not-found and `required_paths` rules), and the same
/// entries are selected (`include_patterns`, `exclude_patterns`, `context_excludes`). For
/// every match, in order, it hashes the match's name, then walks the match depth-first with
/// names sorted by bytes and hashes one record per selected entry: its path relative to the
/// match, type, permission bits, uid and gid (or `source_owner`), symlink target, device
/// numbers and the xattrs `copy` carries over (sorted), followed for regular files by their
/// content and length. A directory that is only walked gets its record just before the first
/// entry selected below it (that is when `copy` creates it), and none if nothing is. Times are
/// not included, so touching a file keeps the digest; changing a selected file's content,
/// mode, owner or name changes it, and changing an entry that is not selected does not.
/// Records are length-prefixed, so the digest is deterministic across runs and machines and no
/// two trees share one by framing accident.
pub fn content_digest(src_root: &Path, options: &CopyOptions) -> Result<Digest, FileOpError> {
    digest_with(src_root, options, None)
}

/// [`content_digest`], remembering file digests in `cache` (and using what it remembers), so
/// that hashing a tree again reads only the files that changed. The digest is the same with or
/// without a cache.
pub fn content_digest_cached(
    src_root: &Path,
    options: &CopyOptions,
    cache: &HashCache,
) -> Result<Digest, FileOpError> {
    digest_with(src_root, options, Some(cache))
}

/// What [`content_digest_cached`] hashed, entry by entry: each selected entry's path (as
/// `COPY` shows it, from the source root) and a 64-bit fingerprint of its record (type,
/// permission bits, owner, symlink target, content digest and length), sorted by path.
/// Comparing two listings names the files that made two content digests differ.
pub type Listing = Vec<(String, u64)>;

/// [`content_digest_cached`], also returning the [`Listing`] of what was hashed.
pub fn content_listing_cached(
    src_root: &Path,
    options: &CopyOptions,
    cache: &HashCache,
) -> Result<(Digest, Listing), FileOpError> {
    let mut listing = Vec::new();
    let digest = digest_into(src_root, options, Some(cache), Some(&mut listing))?;
    listing.sort();
    Ok((digest, listing))
}

fn digest_with(
    src_root: &Path,
    options: &CopyOptions,
    cache: Option<&HashCache>,
) -> Result<Digest, FileOpError> {
    digest_into(src_root, options, cache, None)
}

fn digest_into(
    src_root: &Path,
    options: &CopyOptions,
    cache: Option<&HashCache>,
    listing: Option<&mut Listing>,
) -> Result<Digest, FileOpError> {
    let filters = Filters::new(options)?;
    let root = open_root(src_root)?;
    check_required(root.as_fd(), options, &filters)?;
    let matches = copy_sources(root.as_fd(), options, &filters)?;
    let mut hasher = Hasher {
        out: Sha256Writer::new(io::sink()),
        owner: options.source_owner,
        cache: cache.map(HashCache::reader),
        listing,
    };
    hasher.put(FORMAT);
    let filtering = filters.is_active();
    for rel in &matches {
        let source = open_source(root.as_fd(), rel, options.follow_symlink)?;
        let (_, base) = split_last(rel);
        hasher.put(b"M");
        hasher.field(base);
        let base_shown = shown(rel);
        let top = hasher.visit(
            source.dir.as_fd(),
            &source.name,
            &source.stat,
            b"",
            &base_shown,
            true,
        )?;
        let mut stack: Vec<Dir> = top.into_iter().collect();
        if let Some(top) = stack.first_mut() {
            top.state = filters.top(rel).1;
        }
        while let Some(dir) = stack.last_mut() {
            let Some(name) = dir.names.pop() else {
                stack.pop();
                continue;
            };
            let child = filter::join(&dir.rel, &name);
            let path = join_shown(&base_shown, &child);
            let st = match rfs::statat(&dir.fd, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => continue,
                other => other.map_err(failed("stat", &path))?,
            };
            let (verdict, state) = if filtering {
                let root_rel = filter::join(rel, &child);
                filters.check(&child, &root_rel, is_dir(&st), &dir.state)
            } else {
                (Verdict::Take, State::default())
            };
            if verdict == Verdict::Skip {
                continue;
            }
            let take = verdict == Verdict::Take;
            if take {
                // Directories walked so far without a record get it now, outermost first.
                for pending in stack.iter_mut() {
                    if let Some((st, xattrs)) = pending.pending.take() {
                        hasher.record(&pending.rel, &st, FileType::Directory, b"", &xattrs);
                    }
                }
            }
            let Some(dir) = stack.last() else { break };
            let next = hasher.visit(dir.fd.as_fd(), &name, &st, &child, &path, take)?;
            stack.extend(next.map(|mut d| {
                d.state = state;
                d
            }));
        }
    }
    let (digest, _, _) = hasher.out.finish();
    Ok(digest)
}

/// A directory being walked: its fd, names left (reversed), path relative to the match, what
/// the filters matched for it, and, while it is only walked and has no record yet, what its
/// record needs.
struct Dir {
    fd: OwnedFd,
    names: Vec<Vec<u8>>,
    rel: Vec<u8>,
    state: State,
    pending: Option<(rfs::Stat, Vec<Xattr>)>,
}

struct Hasher<'a> {
    out: Sha256Writer<io::Sink>,
    owner: Option<Ownership>,
    cache: Option<Reader<'a>>,
    listing: Option<&'a mut Listing>,
}

impl Hasher<'_> {
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

    /// Hashes the entry `name` of `dir` (when `take`; otherwise it is a directory only walked,
    /// whose record is kept pending); returns the directory to walk next for a directory.
    fn visit(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        st: &rfs::Stat,
        rel: &[u8],
        path: &str,
        take: bool,
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
                    state: State::default(),
                    pending: None,
                });
            }
            FileType::RegularFile if take => {
                // The content is hashed on its own; the tree digest takes that digest, so a
                // remembered one stands in for reading the file.
                let remembered = self.cache.as_mut().and_then(|c| c.get(st));
                let (digest, size, file_xattrs) = match remembered {
                    Some(entry) => (entry.content, st.st_size as u64, entry.xattrs),
                    None => {
                        let fd = open_regular(dir, name, st).map_err(failed("open", path))?;
                        let file_xattrs = read_xattrs(fd.as_fd()).map_err(failed("read xattrs of", path))?;
                        let mut writer = Sha256Writer::new(io::sink());
                        let size =
                            io::copy(&mut File::from(fd), &mut writer).map_err(failed("read", path))?;
                        let (digest, _, _) = writer.finish();
                        let raw = digest_bytes(&digest);
                        if let Some(cache) = &self.cache
                            && size == st.st_size as u64
                        {
                            cache.put(st, raw, file_xattrs.clone());
                        }
                        (raw, size, file_xattrs)
                    }
                };
                xattrs = file_xattrs;
                content = Some((digest, size));
            }
            FileType::Symlink => {
                link = rfs::readlinkat(dir, name, Vec::new())
                    .map_err(failed("read symlink", path))?
                    .into_bytes();
            }
            _ => {}
        }
        if !take {
            if let Some(walk) = &mut walk {
                walk.pending = Some((*st, xattrs));
            }
            return Ok(walk);
        }
        self.record(rel, st, kind, &link, &xattrs);
        if let Some((digest, length)) = content {
            self.put(b"C");
            self.put(&digest);
            self.num(length);
        }
        if let Some(listing) = self.listing.as_deref_mut() {
            let (uid, gid) = self.owner.map_or((st.st_uid, st.st_gid), |o| (o.uid, o.gid));
            let mut print = Fnv::default();
            for n in [u64::from(st.st_mode), u64::from(uid), u64::from(gid)] {
                print.write(&n.to_le_bytes());
            }
            print.write(&link);
            if let Some((digest, length)) = content {
                print.write(&digest);
                print.write(&length.to_le_bytes());
            }
            listing.push((path.to_string(), print.0));
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

/// 64-bit FNV-1a: a stable fingerprint for [`Listing`] entries (not for security: the
/// content digest inside is what identifies content).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The raw 32 bytes of a sha256 digest.
fn digest_bytes(digest: &Digest) -> [u8; 32] {
    let mut raw = [0u8; 32];
    for (i, byte) in raw.iter_mut().enumerate() {
        // A Digest always holds 64 lowercase hex characters.
        *byte = u8::from_str_radix(&digest.hex()[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    raw
}
