//! When a `completed` announce may be answered: after its journal record
//! reached the kernel, after it reached the disk, or at once.
//!
//! A client told "ok" for a completion must not lose it to a crash of the
//! tracker. The journal writer (`WriteBehind::spawn_journal_sync`) writes
//! whatever was appended since its last write in one `write(2)` (a group
//! commit: every announce in flight meanwhile shares it) and publishes how
//! far it got in [`Progress`]; the announce handlers wait there for their
//! [`Receipt`] before answering. Ordinary announces never wait.

use std::time::Duration;

use tokio::sync::watch;

/// How far a `completed` announce's journal record must have gone before
/// the announce is answered (`[core.database] journal_durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `"write"` (default): handed to the kernel with `write(2)`; survives
    /// any crash of the process. `fdatasync` follows within
    /// [`SYNC_INTERVAL`], so a power cut loses at most that.
    #[default]
    Write,
    /// `"fsync"`: also `fdatasync`ed (one per group commit); survives a
    /// power cut.
    Fsync,
    /// `"interval"`: answered at once; the journal is written and synced
    /// within [`SYNC_INTERVAL`] (a SIGKILL loses the last interval's
    /// acknowledged completions). The behaviour of earlier versions.
    Interval,
}

/// How long written journal bytes may wait for their `fdatasync` (and, with
/// [`Durability::Interval`], appended records for their write).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

impl Durability {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Write => "write",
            Durability::Fsync => "fsync",
            Durability::Interval => "interval",
        }
    }

    /// Parses a config value (case-insensitive).
    pub fn parse(s: &str) -> Option<Durability> {
        [Durability::Write, Durability::Fsync, Durability::Interval]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

/// The position of one appended journal record (records appended since
/// start, never reset by compaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Receipt(pub u64);

/// How many appended records are written, and how many synced.
pub struct Progress {
    written: watch::Sender<u64>,
    synced: watch::Sender<u64>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            written: watch::Sender::new(0),
            synced: watch::Sender::new(0),
        }
    }
}

fn advance(to: &watch::Sender<u64>, upto: u64) {
    to.send_if_modified(|v| {
        let moved = upto > *v;
        if moved {
            *v = upto;
        }
        moved
    });
}

impl Progress {
    /// Records up to `upto` are in the kernel.
    pub fn written(&self, upto: u64) {
        advance(&self.written, upto);
    }

    /// Records up to `upto` are on disk (and so in the kernel).
    pub fn synced(&self, upto: u64) {
        advance(&self.written, upto);
        advance(&self.synced, upto);
    }

    /// Records on disk so far.
    pub fn synced_upto(&self) -> u64 {
        *self.synced.borrow()
    }

    /// Returns once `receipt` is as durable as `durability` asks.
    pub async fn wait(&self, durability: Durability, receipt: Receipt) {
        let progress = match durability {
            Durability::Interval => return,
            Durability::Write => &self.written,
            Durability::Fsync => &self.synced,
        };
        let mut rx = progress.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|v| *v >= receipt.0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_values_and_defaults_to_write() {
        assert_eq!(Durability::default(), Durability::Write);
        for d in [Durability::Write, Durability::Fsync, Durability::Interval] {
            assert_eq!(Durability::parse(d.as_str()), Some(d));
        }
        assert_eq!(Durability::parse("FSYNC"), Some(Durability::Fsync));
        assert_eq!(Durability::parse("always"), None);
    }

    #[tokio::test]
    async fn waits_for_the_write_or_the_sync_its_mode_asks() {
        let p = std::sync::Arc::new(Progress::default());
        let short = Duration::from_millis(50);
        // Interval never waits.
        p.wait(Durability::Interval, Receipt(5)).await;
        let pending = |d| {
            let p = p.clone();
            tokio::spawn(async move { p.wait(d, Receipt(2)).await })
        };
        let write = pending(Durability::Write);
        let fsync = pending(Durability::Fsync);
        p.written(1);
        tokio::time::sleep(short).await;
        assert!(!write.is_finished());
        p.written(2);
        tokio::time::timeout(Duration::from_secs(5), write)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(short).await;
        assert!(!fsync.is_finished(), "written is not synced");
        p.synced(3);
        tokio::time::timeout(Duration::from_secs(5), fsync)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.synced_upto(), 3);
    }
}
