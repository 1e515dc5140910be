//! Keeping a large artifact from sitting dirty in the page cache.
//!
//! Left alone, the kernel lets a backup's artifact pile up dirty in memory
//! (`vm.dirty_ratio` is 20 % of RAM by default: gigabytes), then writes it
//! out in one burst, at the latest at the artifact's final fsync. On the
//! same disk, every fsync of the tracker's database waits behind that
//! burst: an unmodified Torrust served announces in 2.6 ms at the 99th
//! percentile without a backup and stalled up to 4.7 s at the end of an
//! online one (BENCHMARKS.md section 18).
//!
//! [`WritebackPacer`] does what PostgreSQL's `*_flush_after` settings do:
//! after every [`CHUNK`] written it starts that chunk's writeback at once
//! (`sync_file_range(WRITE)`, which does not wait) and waits for the chunk
//! before it. At most two chunks are dirty at any time, the disk writes
//! steadily, and the final fsync finds almost nothing left. Where the file
//! system does not support the call, pacing switches itself off: it is an
//! optimisation, never a reason to fail a backup.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Bytes written between two writeback starts.
pub const CHUNK: u64 = 1 << 20;

/// Paces the writeback of one file written sequentially from offset 0.
#[derive(Debug)]
pub struct WritebackPacer {
    written: u64,
    /// Everything below this offset has had its writeback started.
    started: u64,
    enabled: bool,
}

impl Default for WritebackPacer {
    fn default() -> Self {
        WritebackPacer {
            written: 0,
            started: 0,
            enabled: true,
        }
    }
}

impl WritebackPacer {
    /// Records `n` more bytes written to `file`; starts and waits for
    /// writeback as whole chunks complete.
    ///
    /// ```
    /// use maintenance_sidecar::base::writeback::{WritebackPacer, CHUNK};
    /// use std::io::Write;
    ///
    /// let mut file = tempfile::tempfile().unwrap();
    /// let mut pacer = WritebackPacer::default();
    /// let block = vec![7u8; CHUNK as usize];
    /// for _ in 0..3 {
    ///     file.write_all(&block).unwrap();
    ///     pacer.wrote(&file, block.len());
    /// }
    /// assert_eq!(pacer.started(), 3 * CHUNK);
    /// ```
    pub fn wrote(&mut self, file: &File, n: usize) {
        self.written += n as u64;
        while self.enabled && self.written - self.started >= CHUNK {
            let fd = file.as_raw_fd();
            let start = self.started;
            // SAFETY: plain system calls on an open descriptor and a byte
            // range of it; they touch no memory of ours.
            let mut rc = unsafe {
                libc::sync_file_range(
                    fd,
                    start as libc::off64_t,
                    CHUNK as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            if rc == 0 && start >= CHUNK {
                rc = unsafe {
                    libc::sync_file_range(
                        fd,
                        (start - CHUNK) as libc::off64_t,
                        CHUNK as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WAIT_BEFORE
                            | libc::SYNC_FILE_RANGE_WRITE
                            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                    )
                };
            }
            if rc != 0 {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "sync_file_range refused; the artifact's writeback is left to the kernel"
                );
                self.enabled = false;
                return;
            }
            self.started += CHUNK;
        }
    }

    /// Bytes whose writeback has been started.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Whether pacing is on (off once the file system refused it).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The kernel tells dirty pages only machine-wide (`Dirty:` in
    /// /proc/meminfo, shared with every other process), so this checks the
    /// pacer's bookkeeping and that the bytes are intact; BENCHMARKS.md
    /// section 18 measures the effect.
    #[test]
    fn whole_chunks_are_started_and_the_bytes_are_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let mut file = File::create(&path).unwrap();
        let mut pacer = WritebackPacer::default();
        let piece: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let mut total = 0u64;
        while total < 3 * CHUNK + 5 {
            file.write_all(&piece).unwrap();
            pacer.wrote(&file, piece.len());
            total += piece.len() as u64;
        }
        assert!(pacer.enabled());
        assert_eq!(pacer.started(), total / CHUNK * CHUNK);
        file.sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len() as u64, total);
        assert!(back.chunks(piece.len()).all(|c| c == &piece[..c.len()]));
    }

    #[test]
    fn a_file_that_refuses_the_call_switches_pacing_off() {
        // A pipe is not a regular file: sync_file_range fails with ESPIPE.
        let (read, write) = std::io::pipe().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(write));
        let mut pacer = WritebackPacer::default();
        pacer.wrote(&file, CHUNK as usize);
        assert!(!pacer.enabled());
        assert_eq!(pacer.started(), 0);
        drop(read);
    }
}
