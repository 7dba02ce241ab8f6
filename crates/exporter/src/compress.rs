//! Layer compression: gzip in parallel members, zstd with its own worker threads, or none, each
//! deterministic for the same input, level and codec.
//!
//! gzip: the tar is cut into chunks of [`GZIP_CHUNK`] bytes, each compressed on a thread of its
//! own as a complete gzip member (no time, no name, the "unknown" OS byte), and the members are
//! written in order. A multi-member stream is one valid gzip file (RFC 1952 §2.2; Go's reader,
//! which containerd and Docker use, and every `gunzip` read it whole), so one big layer uses
//! every core, and since the chunks do not depend on the number of threads, the bytes do not
//! either. A layer smaller than one chunk is one member, as a plain `gzip -n` would write it.
//!
//! zstd: libzstd's multi-threaded mode, whose output does not depend on the number of workers.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Read, Write};
use std::thread::JoinHandle;

use flate2::GzBuilder;
use flate2::read::MultiGzDecoder;

use crate::Compression;

/// The size of the independently compressed gzip members.
pub(crate) const GZIP_CHUNK: usize = 4 << 20;

/// The threads a compressor may keep busy: the machine's cores.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A layer compressor writing into `W`.
pub(crate) enum Sink<W: Write + Send + 'static> {
    Gzip(ParallelGzip<W>),
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
    Plain(BufWriter<W>),
}

impl<W: Write + Send + 'static> Sink<W> {
    /// A compressor for `compression` at `level` (`None`: the codec's default).
    pub(crate) fn new(out: W, compression: Compression, level: Option<i32>) -> io::Result<Sink<W>> {
        Ok(match compression {
            Compression::Gzip => {
                let level = level.map_or(flate2::Compression::default(), |l| {
                    flate2::Compression::new(l.clamp(0, 9) as u32)
                });
                Sink::Gzip(ParallelGzip::new(out, level))
            }
            Compression::Zstd => {
                // BuildKit's default zstd level is 3 (the library's default).
                let mut encoder = zstd::stream::write::Encoder::new(out, level.unwrap_or(3).clamp(1, 22))?;
                encoder.multithread(threads() as u32)?;
                encoder.include_checksum(false)?;
                Sink::Zstd(Box::new(encoder))
            }
            Compression::Uncompressed => Sink::Plain(BufWriter::with_capacity(64 * 1024, out)),
        })
    }

    /// Flushes everything (trailers included) and returns the destination.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Sink::Gzip(gzip) => gzip.finish(),
            Sink::Zstd(encoder) => encoder.finish(),
            Sink::Plain(writer) => writer.into_inner().map_err(io::IntoInnerError::into_error),
        }
    }
}

impl<W: Write + Send + 'static> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Gzip(w) => w.write(buf),
            Sink::Zstd(w) => w.write(buf),
            Sink::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Gzip(w) => w.flush(),
            Sink::Zstd(w) => w.flush(),
            Sink::Plain(w) => w.flush(),
        }
    }
}

/// A reader of a layer blob compressed with `compression`.
pub(crate) fn decoder<R: Read + 'static>(
    input: R,
    compression: oci::media_type::Compression,
) -> io::Result<Box<dyn Read>> {
    use oci::media_type::Compression as Blob;
    Ok(match compression {
        // Multi-member gzip streams (pigz, and kiln's own) are valid layers too.
        Blob::Gzip => Box::new(MultiGzDecoder::new(io::BufReader::new(input))),
        Blob::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
        Blob::None => Box::new(input),
    })
}

/// gzip members compressed on worker threads and written in order.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    level: flate2::Compression,
    chunk: Vec<u8>,
    /// Members being compressed, oldest first.
    pending: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    /// Whether any member was started (an empty input still needs one).
    started: bool,
}

impl<W: Write> ParallelGzip<W> {
    fn new(out: W, level: flate2::Compression) -> ParallelGzip<W> {
        ParallelGzip {
            out,
            level,
            chunk: Vec::with_capacity(GZIP_CHUNK),
            pending: VecDeque::new(),
            started: false,
        }
    }

    /// Compresses the current chunk on a thread of its own, writing finished members while
    /// more than a few are in flight (so memory stays bounded at about two chunks per core).
    fn start_member(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(GZIP_CHUNK));
        let level = self.level;
        self.pending
            .push_back(std::thread::spawn(move || member(&data, level)));
        self.started = true;
        while self.pending.len() > threads() * 2 {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(handle) = self.pending.pop_front() {
            let bytes = handle
                .join()
                .map_err(|_| io::Error::other("a gzip worker thread panicked"))??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() || !self.started {
            self.start_member()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(GZIP_CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == GZIP_CHUNK {
            self.start_member()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are written when complete; nothing partial can be flushed.
        Ok(())
    }
}

/// The sample a chunk's compressibility is judged by.
const SAMPLE: usize = 64 << 10;

/// One complete gzip member of `data`, with a header that never varies. A chunk whose first
/// [`SAMPLE`] bytes do not shrink by 2% at the fastest level (random data, or data compressed
/// already) is stored rather than searched for matches it does not have: the same bytes for the
/// same chunk, at a fraction of the time.
fn member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let level = if level.level() > 0 && data.len() >= SAMPLE && !compressible(&data[..SAMPLE])? {
        flate2::Compression::none()
    } else {
        level
    };
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2 + 64), level);
    encoder.write_all(data)?;
    encoder.finish()
}

/// Whether `sample` shrinks by at least 2% at the fastest deflate level.
fn compressible(sample: &[u8]) -> io::Result<bool> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::with_capacity(sample.len()), flate2::Compression::fast());
    encoder.write_all(sample)?;
    let compressed = encoder.finish()?;
    Ok(compressed.len() * 100 < sample.len() * 98)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8], compression: Compression, level: Option<i32>) -> Vec<u8> {
        let mut sink = Sink::new(Vec::new(), compression, level).unwrap();
        // Odd write sizes, as a tar writer makes them.
        for piece in data.chunks(7_777) {
            sink.write_all(piece).unwrap();
        }
        sink.finish().unwrap()
    }

    fn decompress(bytes: &[u8], compression: oci::media_type::Compression) -> Vec<u8> {
        let mut out = Vec::new();
        decoder(io::Cursor::new(bytes.to_vec()), compression)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn parallel_gzip_is_deterministic_and_reads_back_whole() {
        let data: Vec<u8> = (0..GZIP_CHUNK * 2 + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let first = compress(&data, Compression::Gzip, None);
        assert_eq!(first, compress(&data, Compression::Gzip, None));
        assert_eq!(decompress(&first, oci::media_type::Compression::Gzip), data);
        assert!(
            first.len() < data.len() / 10,
            "compressible data shrinks: {}",
            first.len()
        );
        // Three members, each with the fixed header (mtime 0, OS 255).
        let headers = first
            .windows(10)
            .filter(|w| *w == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])
            .count();
        assert!(headers >= 3, "{headers} member headers");
        // A small layer is one member, exactly what a single-threaded encoder writes.
        let small = b"hello layer".repeat(100);
        let mut single = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::default());
        single.write_all(&small).unwrap();
        assert_eq!(
            compress(&small, Compression::Gzip, None),
            single.finish().unwrap()
        );
        // An empty input is still a valid gzip stream.
        assert_eq!(
            decompress(
                &compress(b"", Compression::Gzip, None),
                oci::media_type::Compression::Gzip
            ),
            b""
        );
        // The level changes the bytes, not the content.
        let best = compress(&data, Compression::Gzip, Some(9));
        assert_eq!(decompress(&best, oci::media_type::Compression::Gzip), data);
        // Incompressible chunks are stored, not searched: barely larger than the input, and
        // still deterministic and readable.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..GZIP_CHUNK + 100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let stored = compress(&random, Compression::Gzip, None);
        assert_eq!(stored, compress(&random, Compression::Gzip, None));
        assert!(
            stored.len() < random.len() + random.len() / 100,
            "{}",
            stored.len()
        );
        assert_eq!(decompress(&stored, oci::media_type::Compression::Gzip), random);
    }

    #[test]
    fn zstd_is_deterministic_and_reads_back() {
        let data: Vec<u8> = (0..3_000_000).map(|i| (i % 97) as u8).collect();
        let first = compress(&data, Compression::Zstd, None);
        assert_eq!(first, compress(&data, Compression::Zstd, None));
        assert_eq!(&first[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
        assert_eq!(decompress(&first, oci::media_type::Compression::Zstd), data);
        // kiln's pull path (a pure-Rust decoder) reads it too.
        let mut out = Vec::new();
        fsops::fileop::zstd_frames(io::Cursor::new(first))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let fast = compress(&data, Compression::Zstd, Some(1));
        assert_eq!(decompress(&fast, oci::media_type::Compression::Zstd), data);
    }
}
