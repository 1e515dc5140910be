//! Reading and hashing an artifact file on a thread of its own, ahead of
//! the decoder that consumes it.
//!
//! A restore used to decompress and compute the SHA-256 of the compressed
//! bytes on one thread; with a second core free, the hash is now done
//! beside the decoding instead of in between. With the CPU's SHA extensions
//! the hash is a small share of a restore (BENCHMARKS.md, `rto`: no
//! measurable change at 1 GiB); it matters where hashing is slower. The
//! reader thread reads the file in large chunks, hashes each one, and
//! hands it over a bounded
//! channel; the consumer gives the emptied buffers back, so memory stays at
//! a few chunks ([`CHUNK`] × ([`DEPTH`] + 2)) however large the artifact.
//!
//! The same thread reads the pinned SQLite file of a backup (hashing it:
//! the digest the artifact must decode to) and a dump tool's stdout (not
//! hashing it), so reading never waits on compression ([`ReadAhead::spawn_reader`]).
//!
//! The digest is only available once the consumer has read the file to its
//! end ([`FileDigest::result`]); a read error on the thread reaches the consumer
//! as an error naming the file (never as an early end of file), and the
//! thread is joined when the consumer is dropped, so it never outlives it.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

/// Bytes per read of the artifact file, and per message to the consumer.
pub const CHUNK: usize = 1 << 20;

/// Chunks that may wait in the channel, read and hashed but not consumed.
pub const DEPTH: usize = 4;

/// What the reader thread sends.
enum Message {
    /// A hashed chunk: the buffer (always [`CHUNK`] long) and how much of it
    /// holds data.
    Chunk(Vec<u8>, usize),
    /// The end of the file, with its size and lower-case hex SHA-256.
    End(u64, String),
    /// A read failed; the file is not complete.
    Failed(io::Error),
}

/// Size and SHA-256 of the whole file, set when the consumer reaches its
/// end; shared because the [`ReadAhead`] usually ends up owned by a decoder.
#[derive(Clone, Default)]
pub struct FileDigest(Arc<Mutex<Option<(u64, String)>>>);

impl FileDigest {
    /// (bytes, lower-case hex digest) of the whole file, or `None` when the
    /// consumer has not read it to its end.
    pub fn result(&self) -> Option<(u64, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The consuming side: a [`Read`] over the file's bytes, hashed by the
/// reader thread.
pub struct ReadAhead {
    chunks: Option<Receiver<Message>>,
    recycle: Sender<Vec<u8>>,
    current: Option<(Vec<u8>, usize)>,
    pos: usize,
    state: State,
    digest: FileDigest,
    thread: Option<JoinHandle<()>>,
    name: String,
}

/// Where the consumer is.
enum State {
    Reading,
    Ended,
    /// The message of the error already returned, repeated on later reads.
    Failed(io::ErrorKind, String),
}

impl ReadAhead {
    /// Starts the reader thread over `file`, named `path` in errors.
    pub fn spawn(file: File, path: &Path) -> io::Result<(ReadAhead, FileDigest)> {
        let name = format!("artifact {}", path.display());
        Self::spawn_reader(file, &name, "artifact-hash", true)
    }

    /// Starts the thread `thread` reading `source` (named `name` in
    /// errors), hashing it when `hash` is set (else the digest is empty).
    /// Chunks are handed over full (1 MiB) or at the end.
    pub fn spawn_reader(
        source: impl Read + Send + 'static,
        name: &str,
        thread: &str,
        hash: bool,
    ) -> io::Result<(ReadAhead, FileDigest)> {
        Self::start(source, name, thread, hash, true)
    }

    /// Starts the thread `thread` reading a pipe `source` (named `name` in
    /// errors), handing over what each read returns at once: the consumer
    /// of a dump's output must see its first bytes (the snapshot point)
    /// as soon as the tool writes them, not once a whole chunk is filled.
    pub fn spawn_stream(
        source: impl Read + Send + 'static,
        name: &str,
        thread: &str,
    ) -> io::Result<ReadAhead> {
        Self::start(source, name, thread, false, false).map(|(reader, _)| reader)
    }

    fn start(
        source: impl Read + Send + 'static,
        name: &str,
        thread: &str,
        hash: bool,
        whole_chunks: bool,
    ) -> io::Result<(ReadAhead, FileDigest)> {
        let (chunks_tx, chunks) = mpsc::sync_channel(DEPTH);
        let (recycle, recycled) = mpsc::channel();
        let name = name.to_owned();
        let thread_name = name.clone();
        let hasher = hash.then(Sha256::new);
        let thread = std::thread::Builder::new()
            .name(thread.into())
            .spawn(move || {
                read_and_hash(
                    source,
                    hasher,
                    whole_chunks,
                    &thread_name,
                    &chunks_tx,
                    &recycled,
                )
            })?;
        let digest = FileDigest::default();
        Ok((
            ReadAhead {
                chunks: Some(chunks),
                recycle,
                current: None,
                pos: 0,
                state: State::Reading,
                digest: digest.clone(),
                thread: Some(thread),
                name,
            },
            digest,
        ))
    }

    /// Takes the next message; `false` when there is no more data.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if let Some((buf, _)) = self.current.take() {
            // The thread may already be gone (end of file): nothing to do.
            let _ = self.recycle.send(buf);
        }
        self.pos = 0;
        let received = match &self.chunks {
            Some(rx) => rx.recv(),
            None => Err(mpsc::RecvError),
        };
        match received {
            Ok(Message::Chunk(buf, n)) => {
                self.current = Some((buf, n));
                Ok(true)
            }
            Ok(Message::End(bytes, sha256)) => {
                self.state = State::Ended;
                *self.digest.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((bytes, sha256));
                Ok(false)
            }
            Ok(Message::Failed(e)) => {
                self.state = State::Failed(e.kind(), e.to_string());
                Err(e)
            }
            Err(mpsc::RecvError) => {
                let msg = format!(
                    "read {}: the reading thread stopped before the end",
                    self.name
                );
                self.state = State::Failed(io::ErrorKind::Other, msg.clone());
                Err(io::Error::other(msg))
            }
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some((buf, n)) = &self.current {
                if self.pos < *n {
                    let k = out.len().min(n - self.pos);
                    out[..k].copy_from_slice(&buf[self.pos..self.pos + k]);
                    self.pos += k;
                    return Ok(k);
                }
            }
            match &self.state {
                State::Reading => {}
                State::Ended => return Ok(0),
                State::Failed(kind, msg) => return Err(io::Error::new(*kind, msg.clone())),
            }
            self.next_chunk()?;
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing the channel makes a pending or next send fail, which ends
        // the thread; then wait for it.
        drop(self.chunks.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reader thread: reads `file` to its end in [`CHUNK`]s, hashes them
/// (with `hasher`, when given) and sends them; stops early when the
/// consumer is gone.
fn read_and_hash(
    mut file: impl Read,
    mut hasher: Option<Sha256>,
    whole_chunks: bool,
    name: &str,
    chunks: &SyncSender<Message>,
    recycled: &Receiver<Vec<u8>>,
) {
    let mut total = 0u64;
    loop {
        // A buffer is only allocated when none came back: at most DEPTH in
        // the channel, one at the consumer, one here.
        let mut buf = match recycled.try_recv() {
            Ok(buf) => buf,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => vec![0u8; CHUNK],
        };
        let read = if whole_chunks {
            fill(&mut file, &mut buf)
        } else {
            read_some(&mut file, &mut buf)
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("read {name}: {e}"));
                let _ = chunks.send(Message::Failed(e));
                return;
            }
        };
        if n == 0 {
            let digest = hasher.map(|h| hex::encode(h.finalize()));
            let _ = chunks.send(Message::End(total, digest.unwrap_or_default()));
            return;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        total += n as u64;
        if chunks.send(Message::Chunk(buf, n)).is_err() {
            return;
        }
    }
}

/// One read that returned bytes (or the end), retried when interrupted.
fn read_some(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(path: &Path) -> (ReadAhead, FileDigest) {
        ReadAhead::spawn(File::open(path).unwrap(), path).unwrap()
    }

    #[test]
    fn reads_and_hashes_a_file_of_several_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zst");
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (mut r, digest) = spawn(&path);
        assert_eq!(digest.result(), None);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(got == data, "the bytes read differ from the file");
        assert_eq!(
            digest.result(),
            Some((
                data.len() as u64,
                crate::base::hashing::sha256_reader(&data[..]).unwrap().1
            ))
        );
        assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0, "stays at its end");
    }

    #[test]
    fn a_read_error_is_an_error_naming_the_file_not_an_end() {
        // Reading a directory fails with EISDIR after a successful open: a
        // real read error on the reader thread.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dir.zst");
        std::fs::create_dir(&path).unwrap();
        let (mut r, digest) = spawn(&path);
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("dir.zst"), "{e}");
        let again = r.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(again.to_string(), e.to_string());
        assert_eq!(digest.result(), None);
    }

    #[test]
    fn dropping_early_ends_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.zst");
        std::fs::write(&path, vec![7u8; (DEPTH + 4) * CHUNK]).unwrap();
        let (mut r, digest) = spawn(&path);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        // The thread is blocked on the full channel; drop must not hang.
        drop(r);
        assert_eq!(digest.result(), None);
    }
}
