//! `maintenance-sidecar sqlite-wal PATH`: the one-time switch of a SQLite
//! file from rollback-journal mode to WAL, so that it can be backed up
//! online from then on. The mode is recorded in the file, so the tracker
//! opens it in WAL mode after its next start without any change of its
//! own.
//!
//! Run it with the tracker stopped: the switch needs the only lock on the
//! file, and a tracker that keeps a connection open across the switch
//! would go on in a mode it was not started in. The file is checked
//! (`quick_check`) first, so a damaged database is never rewritten.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};

/// What the conversion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    /// The file was switched from the named mode.
    Switched {
        /// The journal mode it had.
        from: String,
    },
    /// It already was in WAL mode; nothing changed.
    AlreadyWal,
}

/// Switches `db` to WAL mode (idempotent).
pub fn convert(db: &Path) -> anyhow::Result<Converted> {
    if !db.is_file() {
        bail!(
            "{} does not exist (give the tracker's SQLite database file)",
            db.display()
        );
    }
    let from = crate::engine::sqlite::journal_mode(db)?;
    if from == "wal" {
        return Ok(Converted::AlreadyWal);
    }
    crate::engine::sqlite::quick_check(db).with_context(|| {
        format!(
            "{} fails quick_check; not converting a damaged file",
            db.display()
        )
    })?;
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("open {} read-write", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .with_context(|| {
            format!(
                "switch {} to WAL (is the tracker still running? stop it first)",
                db.display()
            )
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "{} stayed in journal_mode={mode}: another process holds it open (stop the tracker first), or its folder is not writable",
            db.display()
        );
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Converted::Switched { from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_once_and_keeps_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);")
            .unwrap();
        assert_eq!(
            convert(&db).unwrap(),
            Converted::Switched {
                from: "delete".into()
            }
        );
        assert_eq!(crate::engine::sqlite::journal_mode(&db).unwrap(), "wal");
        assert_eq!(convert(&db).unwrap(), Converted::AlreadyWal);
        let x: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42);
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = convert(Path::new("/nonexistent/t.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/t.db"), "{e}");
    }
}
