//! zstd/gzip encoders and decoders behind one small interface, plus the
//! artifact writer (compress → encrypt when configured → hash → buffered
//! file) every engine uses. The encryption, hashing and writing run on a
//! thread of their own ([`crate::base::pipeline`]), beside the compression.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::base::cancel::CancelToken;
use crate::base::follow::{FollowHandle, FollowedFile, Follower};
use crate::base::hashing::HashingWriter;
use crate::base::pipeline::StageWriter;
use crate::config::Compression;
use crate::crypt::{self, Identities, Sealer, Sealing};

/// A compressing writer; call [`Encoder::finish`] to write the trailer.
pub enum Encoder<W: Write> {
    /// zstd frame.
    Zstd(zstd::Encoder<'static, W>),
    /// gzip member.
    Gzip(flate2::write::GzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// Starts a compressed stream into `inner`.
    pub fn new(kind: Compression, level: Option<i32>, inner: W) -> io::Result<Self> {
        Ok(match kind {
            Compression::Zstd => {
                let mut e = zstd::Encoder::new(inner, level.unwrap_or(3))?;
                // The frame carries a checksum of its content, checked by
                // every decompression (restore, drill, verify).
                e.include_checksum(true)?;
                // Worker threads by the usable cores (`zstd_workers.rs`).
                // zstd buffers a few jobs per worker, and its default job at
                // level 3 is 8 MiB: two workers took the sidecar to 74 MiB
                // peak RSS, past its 64 MiB budget; 2 MiB jobs bound that.
                let workers = crate::zstd_workers::workers();
                if workers > 1 {
                    e.multithread(workers)?;
                    e.set_parameter(zstd::zstd_safe::CParameter::JobSize(zstd_job_bytes()))?;
                }
                Encoder::Zstd(e)
            }
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(level.unwrap_or(6).clamp(0, 9) as u32),
            )),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
        }
    }
}

/// The size of one zstd worker's job: 2 MiB, or `BACKUP_ZSTD_JOB_MIB`.
fn zstd_job_bytes() -> u32 {
    std::env::var("BACKUP_ZSTD_JOB_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(2)
        .clamp(1, 64)
        << 20
}

/// A decompressing reader over `inner`.
pub fn decoder<'a, R: Read + 'a>(kind: Compression, inner: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match kind {
        Compression::Zstd => Box::new(zstd::Decoder::new(inner)?),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(inner))),
    })
}

/// Opens an artifact for reading its plaintext, picking the codec from its
/// name; an encrypted one (`.age`) needs `keys`. Only a regular file is
/// read, never through a symbolic link (see [`crate::base::regular_file`]).
pub fn open_decoded(path: &Path, keys: Option<&Identities>) -> io::Result<Box<dyn Read>> {
    decode_stream(path, crate::base::regular_file::open(path)?, keys)
}

/// Decodes the artifact bytes of `input`, named `path` (which gives the
/// codec and whether it is encrypted).
pub fn decode_stream<'a, R: Read + 'a>(
    path: &Path,
    input: R,
    keys: Option<&Identities>,
) -> io::Result<Box<dyn Read + 'a>> {
    let kind = Compression::from_path(path).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a .zst or .gz file", path.display()),
        )
    })?;
    let what = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if !crypt::is_encrypted(path) {
        return decoder(kind, input);
    }
    let keys = keys.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{what} is encrypted with age: give the identity with --identity FILE or BACKUP_AGE_IDENTITY_FILE"
            ),
        )
    })?;
    decoder(kind, keys.decrypt(&what, input)?)
}

/// A finished artifact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where it is.
    pub path: PathBuf,
    /// Compressed size.
    pub size_bytes: u64,
    /// SHA-256 of the compressed bytes.
    pub sha256: String,
    /// The content proof of an artifact whose source was hashed while it
    /// was read (a SQLite file under the pin); the verify phase compares its
    /// digests instead of decoding the artifact once more.
    pub proof: Option<ContentProof>,
}

/// What a source hashed while it was read, and its artifact read back
/// while it was written (`engine/pinned_passes.rs`), prove together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentProof {
    /// SHA-256 of the source bytes read.
    pub source_sha256: String,
    /// Bytes of the artifact file read back.
    pub artifact_bytes: u64,
    /// SHA-256 of the artifact file read back.
    pub artifact_sha256: String,
    /// Bytes the artifact read back decodes to.
    pub decoded_bytes: u64,
    /// SHA-256 of the decoded bytes.
    pub decoded_sha256: String,
}

/// The end of an artifact's pipeline, on the stage thread: encryption
/// (when configured), hash, buffered file.
type Sink = Sealer<HashingWriter<BufWriter<FollowedFile>>>;

/// Compressed, hashed, buffered output file: the caller's thread
/// compresses, a stage thread encrypts, hashes and writes. Dropping it
/// without [`ArtifactWriter::finish`] leaves a partial file the caller must
/// remove (staging is removed as a whole on failure).
pub struct ArtifactWriter {
    path: PathBuf,
    encoder: Encoder<StageWriter<(u64, String)>>,
    follow: FollowHandle,
}

impl ArtifactWriter {
    /// Creates `path` (must not exist) and starts a compressed stream,
    /// encrypted when `sealing` is given (the hash is of the ciphertext).
    pub fn create(
        path: &Path,
        kind: Compression,
        level: Option<i32>,
        sealing: Option<&Sealing>,
    ) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let followed = FollowedFile::new(file, path);
        let follow = followed.handle();
        let inner = HashingWriter::new(BufWriter::with_capacity(1 << 20, followed));
        let sealed: Sink = match sealing {
            Some(s) => s.seal(inner)?,
            None => Sealer::Plain(inner),
        };
        let stage = StageWriter::spawn("artifact-write", sealed, |sealed: Sink| {
            let hashing = sealed.finish()?;
            let (buf, size_bytes, sha256) = hashing.finish();
            let file = buf.into_inner().map_err(|e| e.into_error())?.finish();
            file.sync_all()?;
            Ok((size_bytes, sha256))
        })?;
        Ok(ArtifactWriter {
            path: path.to_owned(),
            encoder: Encoder::new(kind, level, stage)?,
            follow,
        })
    }

    /// The artifact's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader of the artifact file as it is written (the bytes on disk,
    /// encrypted when sealed); it ends when [`ArtifactWriter::finish`] has
    /// written the last byte, and fails if the writer is dropped unfinished.
    pub fn follow(&self, cancel: CancelToken) -> io::Result<Follower> {
        self.follow.follow(cancel)
    }

    /// Ends the stream, flushes and fsyncs the file.
    pub fn finish(self) -> io::Result<WrittenFile> {
        let (size_bytes, sha256) = self.encoder.finish()?.finish()?;
        Ok(WrittenFile {
            path: self.path,
            size_bytes,
            sha256,
            proof: None,
        })
    }
}

impl Write for ArtifactWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_codecs() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [Compression::Zstd, Compression::Gzip] {
            let path = dir.path().join(format!("x.{}", kind.extension()));
            let mut w = ArtifactWriter::create(&path, kind, None, None).unwrap();
            w.write_all(&b"hello ".repeat(1000)).unwrap();
            let written = w.finish().unwrap();
            assert_eq!(written.size_bytes, std::fs::metadata(&path).unwrap().len());
            let mut out = Vec::new();
            open_decoded(&path, None)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, b"hello ".repeat(1000));
            assert_eq!(
                crate::base::hashing::sha256_file(&path).unwrap().1,
                written.sha256
            );
        }
    }
}
