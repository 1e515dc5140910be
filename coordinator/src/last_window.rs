//! The last scheduled window that completed, kept on disk across restarts.
//!
//! A tracker restarted inside its daily window (a crash, the host fallback
//! restarting it, an operator) starts a fresh coordinator, which would see
//! "now is inside today's window" and run the window again: a second
//! quiesce and a second backup. So when a scheduled window completes, its
//! span is written next to the readiness file (`last-window.json` in the
//! same folder, which the compose stack keeps on a volume); at start-up the
//! runner reads it back and does not reopen that span. Only a `completed`
//! window is recorded: one that failed or expired may still be retried
//! within its span after a restart.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use maintenance_proto::{Outcome, WindowId, WindowSpan};
use serde::{Deserialize, Serialize};

/// File name of the record, in the readiness file's folder.
pub(crate) const FILE_NAME: &str = "last-window.json";

/// What is kept about the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LastWindow {
    /// The scheduled span that ran.
    pub(crate) span: WindowSpan,
    /// Its id (for the log).
    pub(crate) window_id: WindowId,
    /// How it ended (always `completed` when written by the runner).
    pub(crate) outcome: Outcome,
    /// When the outcome was recorded.
    pub(crate) ended_at: DateTime<Utc>,
}

/// Reads and writes the record at one path.
#[derive(Debug, Clone)]
pub(crate) struct LastWindowFile {
    path: PathBuf,
}

impl LastWindowFile {
    /// The record that belongs with the readiness file `ready_file`.
    pub(crate) fn next_to(ready_file: &Path) -> Self {
        LastWindowFile {
            path: ready_file.with_file_name(FILE_NAME),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The record, if there is a readable one. A missing file is normal; a
    /// damaged one is logged and ignored (the worst case is one window
    /// run twice, as without the record).
    pub(crate) fn read(&self) -> Option<LastWindow> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the last completed window; a window running now may run again");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring a damaged last-window record; it is rewritten after the next completed window");
                None
            }
        }
    }

    /// Atomically replaces the record.
    pub(crate) fn write(&self, record: &LastWindow) -> io::Result<()> {
        let mut body = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        body.push(b'\n');
        crate::atomic_file::replace(&self.path, &body)
    }

    /// The start of the span that must not run again: the recorded one, if
    /// it completed.
    pub(crate) fn completed_start(&self) -> Option<DateTime<Utc>> {
        self.read()
            .filter(|r| r.outcome == Outcome::Completed)
            .map(|r| r.span.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(outcome: Outcome) -> LastWindow {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).unwrap();
        LastWindow {
            span: WindowSpan {
                start,
                end: start + chrono::Duration::minutes(5),
            },
            window_id: WindowId::new("abc-1"),
            outcome,
            ended_at: start + chrono::Duration::minutes(1),
        }
    }

    #[test]
    fn round_trip_next_to_the_ready_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = LastWindowFile::next_to(&dir.path().join("ready.json"));
        assert_eq!(file.path(), dir.path().join(FILE_NAME));
        assert_eq!(file.read(), None);
        file.write(&record(Outcome::Completed)).unwrap();
        assert_eq!(file.read(), Some(record(Outcome::Completed)));
        assert_eq!(
            file.completed_start(),
            Some(record(Outcome::Completed).span.start)
        );
    }

    #[test]
    fn only_a_completed_window_blocks_its_span() {
        let dir = tempfile::tempdir().unwrap();
        let file = LastWindowFile::next_to(&dir.path().join("ready.json"));
        file.write(&record(Outcome::Failed)).unwrap();
        assert_eq!(file.completed_start(), None);
    }

    #[test]
    fn a_damaged_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = LastWindowFile::next_to(&dir.path().join("ready.json"));
        std::fs::write(file.path(), "{not json").unwrap();
        assert_eq!(file.read(), None);
    }
}
