//! Recognising and opening the archives `ADD` unpacks: tar streams, plain or compressed.
//!
//! The compression is told by magic bytes only (as moby's `DecompressStream` does), never by
//! the file name: gzip (`1f 8b 08`), bzip2 (`BZh`), xz (`fd 37 7a 58 5a 00`) and zstd
//! (`28 b5 2f fd`); anything else is read as is. A file is an archive when its (decompressed)
//! content starts with a valid tar header, checksum included, as Go's `tar.Reader.Next`
//! requires. Concatenated gzip members, bzip2 streams, xz streams and zstd frames are all read.
//! All decoders are pure Rust.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

/// The compression of a stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Tells the compression from the first bytes of a stream.
pub(super) fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if magic.starts_with(b"BZh") {
        Compression::Bzip2
    } else if magic.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
        Compression::Xz
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Opens `file` (from its start) as a decompressed stream.
pub(super) fn open(file: &mut File) -> io::Result<Box<dyn Read + '_>> {
    file.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 6];
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    let input = BufReader::new(file);
    Ok(match detect(&magic[..filled]) {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(input, true)),
        Compression::Zstd => Box::new(zstd_frames(input)),
    })
}

/// Whether `file` holds a tar archive (plain or compressed). Any read or decode error means no.
pub(super) fn is_tar(file: &mut File) -> bool {
    let Ok(stream) = open(file) else { return false };
    let mut archive = tar::Archive::new(stream);
    let first = match archive.entries() {
        Ok(mut entries) => entries.next(),
        Err(_) => return false,
    };
    matches!(first, Some(Ok(_)))
}

type ZstdDecoder<R> = ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>;

/// Decompresses a zstd stream of one or more concatenated frames (a zstd layer blob, say).
pub fn zstd_frames<R: BufRead>(input: R) -> impl Read {
    ZstdFrames {
        input: Some(input),
        frame: None,
    }
}

/// A zstd stream of one or more concatenated frames.
struct ZstdFrames<R: BufRead> {
    /// The input between frames (`None` while a frame decoder owns it).
    input: Option<R>,
    frame: Option<ZstdDecoder<R>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                // The frame is done: carry on with the input after it.
                self.input = self.frame.take().map(ZstdDecoder::into_inner);
            }
            let Some(mut input) = self.input.take() else {
                return Ok(0);
            };
            if input.fill_buf()?.is_empty() {
                self.input = Some(input);
                return Ok(0);
            }
            self.frame = Some(ZstdDecoder::new(input).map_err(io::Error::other)?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(detect(&[0x1f, 0x8b]), Compression::None);
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Xz);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"ustar"), Compression::None);
    }

    #[test]
    fn zstd_frames_are_concatenated() {
        use ruzstd::encoding::{CompressionLevel, compress_to_vec};
        let mut data = compress_to_vec(&b"first "[..], CompressionLevel::Fastest);
        data.extend(compress_to_vec(&b"second"[..], CompressionLevel::Fastest));
        let mut out = String::new();
        ZstdFrames {
            input: Some(&data[..]),
            frame: None,
        }
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "first second");
    }
}
