//! Reading a published artifact back (restore, drill): the compressed bytes
//! are hashed as the decoder consumes them, so an artifact is read from disk
//! once, not once to hash and once to decompress. The reading and hashing
//! run on a thread of their own ([`ReadAhead`]), beside the decoding.
//!
//! Nothing decoded may be published before [`Readback::finish`] has compared
//! the size and SHA-256 with the manifest: callers decode into a private
//! temporary location and only move the result into place afterwards.

use std::io::{self, Read};
use std::path::Path;

use anyhow::ensure;
use maintenance_proto::Artifact;

use crate::base::read_ahead::{FileDigest, ReadAhead};
use crate::compress::decode_stream;
use crate::config::Compression;

/// A decoding reader over an artifact that checks its hash at the end.
pub struct Readback {
    decoded: Box<dyn Read>,
    digest: FileDigest,
    name: String,
    size_bytes: u64,
    sha256: String,
}

impl Readback {
    /// Opens `path`, the file of the manifest entry `artifact`; an
    /// encrypted one (`.age`) needs `keys`. The hash is of the bytes on
    /// disk (the ciphertext when encrypted).
    pub fn open(
        path: &Path,
        artifact: &Artifact,
        keys: Option<&crate::crypt::Identities>,
    ) -> anyhow::Result<Readback> {
        ensure!(
            Compression::from_path(path).is_some(),
            "{}: not a .zst or .gz file; the manifest names an artifact no engine writes",
            path.display()
        );
        let file = crate::base::regular_file::open(path)?;
        let (bytes, digest) = ReadAhead::spawn(file, path)
            .map_err(|e| anyhow::anyhow!("read artifact {}: {e}", path.display()))?;
        Ok(Readback {
            decoded: decode_stream(path, bytes, keys)?,
            digest,
            name: artifact.path.clone(),
            size_bytes: artifact.size_bytes,
            sha256: artifact.sha256.clone(),
        })
    }

    /// Reads what is left, then checks size and SHA-256 of the compressed
    /// bytes against the manifest. Errors name the artifact and say that
    /// nothing was restored.
    pub fn finish(mut self) -> anyhow::Result<()> {
        io::copy(&mut self.decoded, &mut io::sink())
            .map_err(|e| anyhow::anyhow!("{}: {e}; nothing was restored", self.name))?;
        // Dropping the decoder joins the reading thread.
        drop(self.decoded);
        let Some((size, sha)) = self.digest.result() else {
            anyhow::bail!(
                "{}: the decoder stopped before the end of the file (trailing data?); \
                 refusing to restore an artifact that was not read to its end",
                self.name
            );
        };
        ensure!(
            size == self.size_bytes && sha == self.sha256,
            "{}: size {size} / sha256 {sha} differ from the manifest ({} / {}); \
             refusing to restore a corrupted artifact (use another backup)",
            self.name,
            self.size_bytes,
            self.sha256
        );
        Ok(())
    }
}

impl Read for Readback {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoded.read(buf)
    }
}
