//! Reading a file while it is being written.
//!
//! The digest proof of a pinned SQLite backup decodes the artifact as it is
//! produced instead of in a pass of its own afterwards, yet it must still
//! read what reached the file, not what the encoder meant to write. The
//! writer ([`FollowedFile`]) publishes how many bytes the file holds after
//! every write (a watermark); a [`Follower`] opens the same file and reads
//! up to that watermark, waiting when it has caught up. It sees the end of
//! the file only when the writer finished; a writer dropped unfinished (a
//! failed or cancelled backup) makes the follower fail, never end early.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What a follower's read says when the writer was dropped unfinished: a
/// consequence of the writer's own failure, which that writer reports.
pub const ABANDONED: &str = "its writing stopped before the end";

use crate::base::cancel::CancelToken;
use crate::base::writeback::WritebackPacer;

/// How often a waiting follower looks at its cancellation token.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Where the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Writing,
    Finished,
    Abandoned,
}

/// Bytes written so far and whether more will come, shared by the writer
/// and its followers.
#[derive(Debug)]
struct Watermark {
    state: Mutex<(u64, End)>,
    moved: Condvar,
}

impl Watermark {
    fn set(&self, written: u64, end: End) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = (written, end);
        self.moved.notify_all();
    }
}

/// A file being written whose written bytes its followers may read.
#[derive(Debug)]
pub struct FollowedFile {
    file: Option<File>,
    path: PathBuf,
    written: u64,
    mark: Arc<Watermark>,
    /// Artifacts are the large files: their writeback is paced.
    pacer: WritebackPacer,
}

impl FollowedFile {
    /// Wraps `file`, opened for writing at `path`.
    pub fn new(file: File, path: &Path) -> Self {
        FollowedFile {
            file: Some(file),
            path: path.to_owned(),
            written: 0,
            mark: Arc::new(Watermark {
                state: Mutex::new((0, End::Writing)),
                moved: Condvar::new(),
            }),
            pacer: WritebackPacer::default(),
        }
    }

    /// What opens followers of this file, kept by whoever hands the file
    /// itself to another thread.
    pub fn handle(&self) -> FollowHandle {
        FollowHandle {
            path: self.path.clone(),
            mark: self.mark.clone(),
        }
    }

    /// Opens the file again for reading what is written, from its start;
    /// `cancel` stops a follower that waits for more.
    pub fn follow(&self, cancel: CancelToken) -> io::Result<Follower> {
        self.handle().follow(cancel)
    }

    /// Every byte is written: followers read to the end. Returns the file.
    pub fn finish(mut self) -> File {
        self.mark.set(self.written, End::Finished);
        self.file.take().expect("file present until finish")
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until finish")
    }
}

impl Write for FollowedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file().write(buf)?;
        self.written += n as u64;
        self.mark.set(self.written, End::Writing);
        let file = self.file.as_ref().expect("file present until finish");
        self.pacer.wrote(file, n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for FollowedFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.mark.set(self.written, End::Abandoned);
        }
    }
}

/// Opens followers of one [`FollowedFile`].
#[derive(Debug, Clone)]
pub struct FollowHandle {
    path: PathBuf,
    mark: Arc<Watermark>,
}

impl FollowHandle {
    /// Opens the file for reading what is written, from its start; `cancel`
    /// stops a follower that waits for more.
    pub fn follow(&self, cancel: CancelToken) -> io::Result<Follower> {
        Ok(Follower {
            file: File::open(&self.path)?,
            path: self.path.clone(),
            mark: self.mark.clone(),
            pos: 0,
            cancel,
        })
    }
}

/// Reads a [`FollowedFile`] up to what its writer has written.
#[derive(Debug)]
pub struct Follower {
    file: File,
    path: PathBuf,
    mark: Arc<Watermark>,
    pos: u64,
    cancel: CancelToken,
}

impl Follower {
    /// Bytes that may be read now; 0 at the end. Waits while the writer is
    /// behind.
    fn available(&self) -> io::Result<u64> {
        let mut s = self.mark.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let (written, end) = *s;
            if written > self.pos {
                return Ok(written - self.pos);
            }
            match end {
                End::Finished => return Ok(0),
                End::Abandoned => {
                    return Err(io::Error::other(format!(
                        "{}: {ABANDONED}",
                        self.path.display()
                    )))
                }
                End::Writing => {}
            }
            self.cancel.check()?;
            s = self
                .mark
                .moved
                .wait_timeout(s, CANCEL_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.available()?;
        if available == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: shorter ({} bytes) than what was written to it",
                    self.path.display(),
                    self.pos
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followed(dir: &Path) -> (FollowedFile, PathBuf) {
        let path = dir.join("a.zst");
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        (FollowedFile::new(file, &path), path)
    }

    #[test]
    fn a_follower_reads_everything_written_while_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = followed(dir.path());
        let mut f = w.follow(CancelToken::new()).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            f.read_to_end(&mut got).map(|_| got)
        });
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let chunk = i.to_le_bytes().repeat(1000);
            w.write_all(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        w.finish();
        assert!(reader.join().unwrap().unwrap() == expected);
    }

    #[test]
    fn an_abandoned_writer_is_an_error_not_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = followed(dir.path());
        let mut f = w.follow(CancelToken::new()).unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        let e = f.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("stopped before the end"), "{e}");
    }

    #[test]
    fn a_waiting_follower_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = followed(dir.path());
        let cancel = CancelToken::new();
        let mut f = w.follow(cancel.clone()).unwrap();
        let reader = std::thread::spawn(move || f.read(&mut [0u8; 16]));
        std::thread::sleep(Duration::from_millis(150));
        cancel.cancel();
        let e = reader.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        drop(w);
    }
}
