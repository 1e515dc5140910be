//! A cap on how fast a backup reads its source, for a backup that shares
//! the disk with a tracker that serves (the online mode).
//!
//! An online backup of a large SQLite file reads it as fast as the disk
//! gives it and writes the artifact as fast: the tracker's own reads and
//! WAL fsyncs then queue behind a deep stream of the backup's requests,
//! and its announces wait. A [`ReadPace`] spreads the reading over time
//! instead: every reader of the source asks it, after each read, how long
//! to wait so that the bytes read so far never run ahead of the rate.
//! The readers are the read pass (through [`PacedReader`]) and SQLite's
//! own `integrity_check` (which reads through its own connection; it
//! counts what its thread read with [`thread_bytes_read`]).
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

/// A reader that sleeps as its [`ReadPace`] asks after every read.
pub struct PacedReader<R> {
    inner: R,
    pace: ReadPace,
}

impl<R> PacedReader<R> {
    /// Wraps `inner`, paced by `pace`.
    pub fn new(inner: R, pace: ReadPace) -> Self {
        PacedReader { inner, pace }
    }
}

impl<R: Read> Read for PacedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let wait = self.pace.add(n as u64);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(n)
    }
}

/// Bytes the calling thread has read through `read(2)`/`pread(2)` since it
/// started (`rchar` of `/proc/thread-self/io`), or `None` where the kernel
/// does not say (no procfs, another OS). Used to pace a reader we do not
/// own, such as SQLite's, from a callback on its own thread.
pub fn thread_bytes_read() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
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

    #[test]
    fn a_paced_reader_takes_as_long_as_its_rate_says() {
        let data = vec![7u8; 256 << 10];
        let started = Instant::now();
        let mut out = Vec::new();
        PacedReader::new(&data[..], ReadPace::new(1 << 20))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // 256 KiB at 1 MiB/s: a quarter of a second at least.
        assert!(started.elapsed() >= Duration::from_millis(240));
    }

    #[test]
    fn this_thread_counts_what_it_reads() {
        let before = thread_bytes_read().expect("Linux says what a thread read");
        let path = std::env::temp_dir().join(format!("read-pace-{}", std::process::id()));
        std::fs::write(&path, vec![1u8; 100_000]).unwrap();
        let read = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read.len(), 100_000);
        let after = thread_bytes_read().unwrap();
        assert!(after - before >= 100_000, "{before} -> {after}");
    }
}
