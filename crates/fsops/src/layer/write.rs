//! Writing the layer tar of an overlayfs upper directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use tar::{EntryType, Header};

use super::error::LayerError;
use super::names::{OPAQUE_MARKER, OVERLAY_XATTR_PREFIX, WHITEOUT_PREFIX};
use crate::inroot::read_names;
use crate::xattr::{Xattr, read_xattrs};

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries written (PAX extension headers not counted).
    pub entries: u64,
    /// Bytes of tar written, including the end-of-archive blocks.
    pub bytes: u64,
    /// True when the layer has no entries at all; kiln drops such layers from images.
    pub is_empty: bool,
    /// Things left out: sockets, and xattrs whose names are not UTF-8.
    pub skipped: u64,
}

/// Largest value of the 8-byte octal uid/gid fields of a ustar header.
const MAX_OCTAL_ID: u64 = 0o7_777_777;
/// Largest value of the 12-byte octal size field of a ustar header.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;
/// Length of the ustar name and linkname fields.
const NAME_LEN: usize = 100;

/// Writes the OCI layer tar of the overlayfs upper directory `upper` to `out`.
///
/// The output is deterministic: the same tree always gives the same bytes.
/// - The tree is walked depth-first, parents before children, siblings sorted by the bytes of
///   their names. Paths are relative without a leading `./`; directories end in `/`
///   (`etc/`, `etc/passwd`). The upper directory itself has no entry.
/// - Headers are ustar with numeric uid/gid, empty user and group names, mode including
///   setuid/setgid/sticky, and mtime in whole seconds (sub-second parts are dropped, as docker
///   does; times before 1970 become 0). Longer paths and link targets, ids and sizes that do not
///   fit the ustar fields go into PAX records, so nothing is truncated.
/// - A character device 0/0 (overlayfs whiteout), or a regular file carrying the newer
///   `trusted.overlay.whiteout` xattr, becomes an empty regular file `.wh.<name>`; a directory
///   with `trusted.overlay.opaque=y` is followed by a `.wh..wh..opq` entry inside it. These
///   markers have mode 0, uid/gid 0 and mtime 0, so they do not depend on when the deletion
///   happened.
/// - Regular files that are hard links of each other (same device and inode) become one file
///   entry and tar hard links to the first path written.
/// - xattrs of files and directories, except `trusted.overlay.*`, become PAX
///   `SCHILY.xattr.<name>` records sorted by name. xattrs of symlinks and device nodes are not
///   read. Sockets are skipped and counted.
pub fn write_layer(upper: &Path, out: impl Write) -> Result<LayerStats, LayerError> {
    write_layer_clamped(upper, out, None)
}

/// [`write_layer`] with every mtime later than `clamp` (Unix seconds) written as `clamp`:
/// `rewrite-timestamp=true` with `SOURCE_DATE_EPOCH`, so that files a build made at different
/// times give the same layer.
pub fn write_layer_clamped(
    upper: &Path,
    out: impl Write,
    clamp: Option<u64>,
) -> Result<LayerStats, LayerError> {
    let root = rfs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::OpenDir {
        path: upper.to_path_buf(),
        source: e.into(),
    })?;
    let mut writer = Writer {
        tar: tar::Builder::new(Counter { inner: out, count: 0 }),
        stats: LayerStats::default(),
        links: BTreeMap::new(),
        clamp,
    };
    let root_xattrs = read_xattrs(root.as_fd()).map_err(failed(b"", "read xattrs of"))?;
    if is_opaque(&root_xattrs) {
        writer.marker(OPAQUE_MARKER.to_vec())?;
    }
    let names = read_names(root.as_fd()).map_err(failed(b"", "list"))?;
    let mut stack = vec![Frame::new(root, Vec::new(), names)];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.pop() else {
            stack.pop();
            continue;
        };
        if let Some(child) = writer.visit(top.fd.as_fd(), &top.prefix, &name)? {
            stack.push(child);
        }
    }
    let mut counter = writer
        .tar
        .into_inner()
        .map_err(failed(b"", "finish the tar of"))?;
    counter.inner.flush().map_err(failed(b"", "flush the tar of"))?;
    Ok(LayerStats {
        bytes: counter.count,
        is_empty: writer.stats.entries == 0,
        ..writer.stats
    })
}

/// A directory being walked.
struct Frame {
    fd: OwnedFd,
    /// Path of the directory in the tar, with a trailing `/` (empty for the upper dir).
    prefix: Vec<u8>,
    /// Names not visited yet, in reverse order so `pop` yields the smallest.
    names: Vec<Vec<u8>>,
}

impl Frame {
    fn new(fd: OwnedFd, prefix: Vec<u8>, mut names: Vec<Vec<u8>>) -> Frame {
        names.reverse();
        Frame { fd, prefix, names }
    }
}

struct Writer<W: Write> {
    tar: tar::Builder<Counter<W>>,
    stats: LayerStats,
    /// First tar path of each multiply-linked regular file, by (device, inode).
    links: BTreeMap<(u64, u64), Vec<u8>>,
    /// The latest mtime written, if clamped.
    clamp: Option<u64>,
}

fn failed<'a, E: Into<io::Error>>(path: &'a [u8], action: &'static str) -> impl FnOnce(E) -> LayerError + 'a {
    move |source| LayerError::Write {
        path: String::from_utf8_lossy(path).into_owned(),
        action,
        source: source.into(),
    }
}

fn is_opaque(xattrs: &[Xattr]) -> bool {
    xattrs
        .iter()
        .any(|(name, value)| name == b"trusted.overlay.opaque" && value == b"y")
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

impl<W: Write> Writer<W> {
    /// Writes the entry `name` of directory `dir`; returns the frame to descend into when it
    /// is a directory.
    fn visit(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &[u8],
        name: &[u8],
    ) -> Result<Option<Frame>, LayerError> {
        let path = join(prefix, name);
        let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(failed(&path, "stat"))?;
        let file_type = FileType::from_raw_mode(st.st_mode);
        let mut header = Header::new_ustar();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(st.st_uid.into());
        header.set_gid(st.st_gid.into());
        let mtime = u64::try_from(st.st_mtime).unwrap_or(0);
        header.set_mtime(self.clamp.map_or(mtime, |clamp| mtime.min(clamp)));
        header.set_size(0);
        let open = |flags: OFlags| {
            let flags = flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rfs::openat(dir, name, flags, Mode::empty()).map_err(failed(&path, "open"))
        };
        match file_type {
            FileType::Directory => {
                let fd = open(OFlags::DIRECTORY)?;
                let xattrs = read_xattrs(fd.as_fd()).map_err(failed(&path, "read xattrs of"))?;
                let names = read_names(fd.as_fd()).map_err(failed(&path, "list"))?;
                let dir_path = join(&path, b"/");
                header.set_entry_type(EntryType::Directory);
                self.append(header, &dir_path, None, &xattrs, io::empty())?;
                if is_opaque(&xattrs) {
                    self.marker(join(&dir_path, OPAQUE_MARKER))?;
                }
                return Ok(Some(Frame::new(fd, dir_path, names)));
            }
            FileType::RegularFile => {
                let fd = open(OFlags::empty())?;
                // Describe the file actually opened, in case it changed since the statat.
                let st = rfs::fstat(&fd).map_err(failed(&path, "stat"))?;
                let xattrs = read_xattrs(fd.as_fd()).map_err(failed(&path, "read xattrs of"))?;
                if xattrs.iter().any(|(n, _)| n == b"trusted.overlay.whiteout") {
                    return self.marker(join(prefix, &join(WHITEOUT_PREFIX, name)));
                }
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        header.set_entry_type(EntryType::Link);
                        self.append(header, &path, Some(&first), &[], io::empty())?;
                        return Ok(None);
                    }
                    self.links.insert(key, path.clone());
                }
                let size = u64::try_from(st.st_size).unwrap_or(0);
                header.set_entry_type(EntryType::Regular);
                header.set_size(size);
                let data = Exact {
                    inner: File::from(fd),
                    left: size,
                };
                self.append(header, &path, None, &xattrs, data)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name, Vec::new())
                    .map_err(failed(&path, "read link"))?
                    .into_bytes();
                header.set_entry_type(EntryType::Symlink);
                self.append(header, &path, Some(&target), &[], io::empty())?;
            }
            FileType::CharacterDevice if st.st_rdev == 0 => {
                self.marker(join(prefix, &join(WHITEOUT_PREFIX, name)))?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match file_type {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                header.set_entry_type(kind);
                if kind != EntryType::Fifo {
                    // Both always succeed on a ustar header.
                    let _ = header.set_device_major(rfs::major(st.st_rdev));
                    let _ = header.set_device_minor(rfs::minor(st.st_rdev));
                }
                self.append(header, &path, None, &[], io::empty())?;
            }
            _ => self.stats.skipped += 1,
        }
        Ok(None)
    }

    /// Writes a whiteout or opaque marker: an empty regular file with zeroed metadata.
    fn marker(&mut self, path: Vec<u8>) -> Result<Option<Frame>, LayerError> {
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.append(header, &path, None, &[], io::empty())?;
        Ok(None)
    }

    /// Writes one entry, preceded by a PAX header when a value does not fit the ustar fields or
    /// there are xattrs.
    fn append(
        &mut self,
        mut header: Header,
        path: &[u8],
        link: Option<&[u8]>,
        xattrs: &[Xattr],
        data: impl Read,
    ) -> Result<(), LayerError> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let fields = header.as_old_mut();
        if path.len() > NAME_LEN {
            pax.push(("path".into(), path.to_vec()));
        }
        // With a PAX path the ustar name is only a fallback for old readers, so truncate it.
        let n = path.len().min(NAME_LEN);
        fields.name[..n].copy_from_slice(&path[..n]);
        if let Some(link) = link {
            if link.len() > NAME_LEN {
                pax.push(("linkpath".into(), link.to_vec()));
            }
            let n = link.len().min(NAME_LEN);
            fields.linkname[..n].copy_from_slice(&link[..n]);
        }
        for (key, value) in [
            ("uid", header.uid()),
            ("gid", header.gid()),
            ("size", header.size()),
        ] {
            let limit = if key == "size" {
                MAX_OCTAL_SIZE
            } else {
                MAX_OCTAL_ID
            };
            // Reading back a field we just wrote cannot fail; treat a failure as "fits".
            let value = value.unwrap_or(0);
            if value > limit {
                pax.push((key.into(), value.to_string().into_bytes()));
            }
        }
        for (name, value) in xattrs {
            if name.starts_with(OVERLAY_XATTR_PREFIX) {
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(name) => pax.push((format!("SCHILY.xattr.{name}"), value.clone())),
                // PAX keys are UTF-8; such names do not occur on Linux in practice.
                Err(_) => self.stats.skipped += 1,
            }
        }
        if !pax.is_empty() {
            let records = pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
            self.tar
                .append_pax_extensions(records)
                .map_err(failed(path, "write pax header for"))?;
        }
        header.set_cksum();
        self.tar.append(&header, data).map_err(failed(path, "write"))?;
        self.stats.entries += 1;
        Ok(())
    }
}

/// Counts the bytes written through it.
struct Counter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `left` bytes from `inner`: a file that shrank while being written would
/// otherwise corrupt the archive, and one that grew is cut at the size in its header.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being written",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
