//! A cap on how fast a backup reads its source, for a backup that shares
//! the disk with a tracker that serves (the online mode).
//!
//! An online backup of a large SQLite file reads it as fast as the disk
//! gives it and writes the artifact as fast: the tracker's own reads and
//! WAL fsyncs then queue behind a deep stream of the backup's requests,
//! and its announces wait. A [`ReadPace`] spreads the reading over time
//! instead: every reader of the source asks it, after each read, how long
//! to wait so that the bytes fetched from the disk so far never run ahead
//! of the rate. What counts is what the disk delivered
//! ([`thread_disk_reads`], the kernel's count for the reading thread), not
//! what was read: a second reader of the same file mostly hits the page
//! cache the first one filled, and that costs the tracker nothing. The
//! readers are the read pass (through [`PacedReader`]) and SQLite's own
//! `integrity_check` (its own connection; a callback on its thread
//! counts).
//!
//! ```
//! use maintenance_sidecar::base::read_pace::{PacedReader, ReadPace};
//! use std::io::Read;
//!
//! let pace = ReadPace::new(64 << 20); // 64 MiB/s
//! let mut reader = PacedReader::new(&b"frozen bytes"[..], pace.clone());
//! let mut out = Vec::new();
//! reader.read_to_end(&mut out).unwrap();
//! assert_eq!(out, b"frozen bytes");
//! ```

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A read-rate budget shared by the readers of one source: together they
/// read at most `bytes_per_sec` on average since the pace was made.
#[derive(Clone, Debug)]
pub struct ReadPace {
    bytes_per_sec: u64,
    started: Instant,
    read: Arc<AtomicU64>,
}

impl ReadPace {
    /// A pace of `bytes_per_sec` (at least 1), starting now.
    pub fn new(bytes_per_sec: u64) -> Self {
        ReadPace {
            bytes_per_sec: bytes_per_sec.max(1),
            started: Instant::now(),
            read: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The rate, in bytes a second.
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Counts `bytes` more read by any of the readers and returns how long
    /// the caller should wait before it reads again.
    pub fn add(&self, bytes: u64) -> Duration {
        let total = self.read.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let due = Duration::from_secs_f64(total as f64 / self.bytes_per_sec as f64);
        due.saturating_sub(self.started.elapsed())
    }
}

/// A reader that sleeps as its [`ReadPace`] asks after every read; it
/// counts what the disk delivered for the read, or the bytes read where
/// the kernel does not say.
pub struct PacedReader<R> {
    inner: R,
    pace: ReadPace,
    /// The reading thread's disk reads counted so far, taken on the first
    /// read (the reader may be built on one thread and read on another).
    counted: Option<u64>,
}

impl<R> PacedReader<R> {
    /// Wraps `inner`, paced by `pace`.
    pub fn new(inner: R, pace: ReadPace) -> Self {
        PacedReader {
            inner,
            pace,
            counted: None,
        }
    }
}

impl<R: Read> Read for PacedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.counted.is_none() {
            self.counted = thread_disk_reads();
        }
        let n = self.inner.read(buf)?;
        let fetched = match (self.counted, thread_disk_reads()) {
            (Some(before), Some(now)) => {
                self.counted = Some(now);
                now.saturating_sub(before)
            }
            _ => n as u64,
        };
        let wait = self.pace.add(fetched);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(n)
    }
}

/// Bytes the storage delivered for the calling thread's reads since it
/// started (`read_bytes` of `/proc/thread-self/io`: page-cache hits do not
/// count, read-ahead does), or `None` where the kernel does not say (no
/// procfs, no task I/O accounting, another OS). Used to pace a reader we
/// do not own, such as SQLite's, from a callback on its own thread.
pub fn thread_disk_reads() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_asks_to_wait_once_ahead() {
        let pace = ReadPace::new(1 << 20);
        let other = pace.clone();
        // Half a second's worth read at once: about half a second to wait.
        let wait = pace.add(512 << 10);
        assert!(wait > Duration::from_millis(400), "{wait:?}");
        // The clone shares the count: another half second on top.
        let wait = other.add(512 << 10);
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }

    #[test]
    fn a_reader_behind_its_pace_does_not_wait() {
        let pace = ReadPace::new(u64::MAX);
        assert_eq!(pace.add(1 << 30), Duration::ZERO);
    }

    /// A cold file on a real disk, dropped from the page cache (no root
    /// needed). (Beside the crate: a tmpfs has no storage to count.)
    fn cold_file(bytes: usize) -> tempfile::NamedTempFile {
        use std::os::fd::AsRawFd;
        let file = tempfile::NamedTempFile::new_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        std::fs::write(file.path(), vec![1u8; bytes]).unwrap();
        let f = std::fs::File::open(file.path()).unwrap();
        f.sync_all().unwrap();
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        file
    }

    #[test]
    fn a_paced_reader_takes_as_long_as_the_disk_reads_at_its_rate() {
        let file = cold_file(512 << 10);
        let started = Instant::now();
        let mut out = Vec::new();
        PacedReader::new(
            std::fs::File::open(file.path()).unwrap(),
            ReadPace::new(1 << 20),
        )
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out.len(), 512 << 10);
        // 512 KiB from the disk at 1 MiB/s: half a second at least.
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        // The same file again, now in the page cache: no disk, no wait.
        let started = Instant::now();
        let mut out = Vec::new();
        let pace = ReadPace::new(1 << 20);
        PacedReader::new(std::fs::File::open(file.path()).unwrap(), pace.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 512 << 10);
        assert!(
            pace.add(0) < Duration::from_millis(100),
            "cached reads were counted"
        );
        assert!(started.elapsed() < Duration::from_millis(450));
    }

    /// A file read from the disk counts; read again from the page cache,
    /// it does not.
    #[test]
    fn this_thread_counts_what_the_disk_delivered() {
        let file = cold_file(4 << 20);
        let before = thread_disk_reads().expect("Linux counts a thread's disk reads");
        assert_eq!(std::fs::read(file.path()).unwrap().len(), 4 << 20);
        let cold = thread_disk_reads().unwrap() - before;
        assert!(cold >= 4 << 20, "a cold read of 4 MiB counted {cold} bytes");
        let before = thread_disk_reads().unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap().len(), 4 << 20);
        let warm = thread_disk_reads().unwrap() - before;
        assert!(warm < 1 << 20, "a cached read counted {warm} bytes");
    }
}
