//! The SQLite driver: one connection to a WAL-mode database file (or a
//! rollback-journal one, `journal_mode = "delete"`).
//!
//! Quiescing checkpoints the WAL into the main file with
//! `PRAGMA wal_checkpoint(TRUNCATE)`, closes the connection, and then takes
//! the snapshot **pin**: a read transaction on a connection of its own,
//! started while the WAL is empty. Such a reader reads only the main file,
//! and while it is held SQLite's checkpointer cannot copy any frame back
//! into that file, so the main file stays byte for byte frozen even after
//! the tracker resumes and commits again (new commits stay in the `-wal`
//! file, which grows until the unpin). The unpin ends the read transaction
//! and checkpoints the WAL (TRUNCATE).
//!
//! We use WAL because of that: in rollback-journal mode the same pin (a
//! SHARED lock) blocks every commit, so writes have to stay deferred until
//! the unpin ([`PinMode::WritesWait`]); the store supports that mode for
//! databases that must stay in it (the upstream tracker's default).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maintenance_coordinator::PinMode;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    generation_to_row, log_legacy_moved, log_swept, mark_from_row, mark_to_row, now_secs,
    stale_before, Store, StoreError, DELETE_LEGACY, LEGACY_TABLE, MARKS_TABLE,
};
use crate::config::JournalMode;
use crate::journal::JournalMark;
use crate::peers::InfoHash;

/// A SQLite database file holding the `torrents` table.
pub struct SqliteStore {
    path: PathBuf,
    journal: JournalMode,
    conn: Arc<Mutex<Option<Connection>>>,
    /// The snapshot pin: a connection inside a read transaction.
    pin: Arc<Mutex<Option<Connection>>>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS torrents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    info_hash TEXT NOT NULL UNIQUE,
    completed INTEGER DEFAULT 0 NOT NULL
)";

fn connect(path: &PathBuf, journal: JournalMode) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let want = match journal {
        JournalMode::Wal => "wal",
        JournalMode::Delete => "delete",
    };
    let mode: String = conn.query_row(&format!("PRAGMA journal_mode={want}"), [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case(want) {
        tracing::warn!(path = %path.display(), mode, want, "SQLite did not switch journal mode");
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(MARKS_TABLE)?;
    Ok(conn)
}

/// Upserts the row of one generation; the offset never moves back (the
/// legacy move may meet a row the flush already advanced).
const UPSERT_MARK: &str =
    "INSERT INTO tracker_journal_marks (generation, applied_offset, updated_at)
     VALUES (?1, ?2, ?3)
     ON CONFLICT(generation) DO UPDATE SET
     applied_offset = max(applied_offset, excluded.applied_offset),
     updated_at = excluded.updated_at";

/// The start-up step on the marks: moves the legacy one-row mark, if any,
/// and sweeps stale rows, in one `BEGIN IMMEDIATE` transaction (so two
/// processes starting at once take turns).
fn prepare_marks(conn: &mut Connection, describe: &str) -> Result<(), rusqlite::Error> {
    let now = now_secs();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let legacy: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        params![LEGACY_TABLE],
        |r| r.get(0),
    )?;
    if legacy {
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT generation, applied_offset FROM tracker_journal WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((generation, offset)) = row {
            tx.execute(UPSERT_MARK, params![generation, offset, now])?;
            tx.execute(DELETE_LEGACY, [])?;
            log_legacy_moved(describe, generation, offset);
        }
    }
    let swept = tx.execute(
        "DELETE FROM tracker_journal_marks WHERE updated_at < ?1",
        params![stale_before(now)],
    )?;
    tx.commit()?;
    log_swept(describe, swept as u64);
    Ok(())
}

/// Opens the pin: a read transaction that has read the schema, so its
/// snapshot is fixed from here on.
fn take_pin(path: &Path) -> Result<Connection, rusqlite::Error> {
    let pin = Connection::open(path)?;
    pin.busy_timeout(std::time::Duration::from_secs(5))?;
    pin.execute_batch("BEGIN; SELECT count(*) FROM sqlite_master;")?;
    Ok(pin)
}

/// The `-wal` file next to `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` in the journal
    /// mode asked for (WAL unless told otherwise).
    pub async fn open(path: PathBuf, journal: JournalMode) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Task(format!("creating {}: {e}", dir.display())))?;
            }
        }
        let p = path.clone();
        let describe = format!("sqlite3 {}", path.display());
        let conn = tokio::task::spawn_blocking(move || {
            let mut conn = connect(&p, journal)?;
            prepare_marks(&mut conn, &describe)?;
            Ok::<_, rusqlite::Error>(conn)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(SqliteStore {
            path,
            journal,
            conn: Arc::new(Mutex::new(Some(conn))),
            pin: Arc::new(Mutex::new(None)),
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap();
            match guard.as_mut() {
                Some(c) => f(c),
                None => Err(StoreError::Closed),
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_completed(&self) -> Result<Vec<(InfoHash, u64)>, StoreError> {
        self.with_conn(|c| {
            let mut stmt = c.prepare("SELECT info_hash, completed FROM torrents")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (hex, n) = row?;
                let hash = InfoHash::from_hex(&hex).ok_or(StoreError::BadRow(hex))?;
                out.push((hash, n.max(0) as u64));
            }
            Ok(out)
        })
        .await
    }

    async fn add_completed(
        &self,
        deltas: &[(InfoHash, u64)],
        mark: JournalMark,
    ) -> Result<(), StoreError> {
        let (generation, offset) = mark_to_row(mark);
        let deltas: Vec<(String, i64)> = deltas
            .iter()
            .map(|(h, n)| (h.to_hex(), *n as i64))
            .collect();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO torrents (info_hash, completed) VALUES (?1, ?2)
                     ON CONFLICT(info_hash) DO UPDATE SET completed = completed + excluded.completed",
                )?;
                for (hex, n) in &deltas {
                    stmt.execute(params![hex, n])?;
                }
            }
            tx.execute(UPSERT_MARK, params![generation, offset, now_secs()])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn load_journal_mark(&self, generation: u64) -> Result<Option<JournalMark>, StoreError> {
        let g = generation_to_row(generation);
        self.with_conn(move |c| {
            let offset: Option<i64> = c
                .query_row(
                    "SELECT applied_offset FROM tracker_journal_marks WHERE generation = ?1",
                    params![g],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(offset.map(|o| mark_from_row(g, o)))
        })
        .await
    }

    async fn forget_journal_marks(&self, generations: &[u64]) -> Result<(), StoreError> {
        let gens: Vec<i64> = generations.iter().map(|&g| generation_to_row(g)).collect();
        self.with_conn(move |c| {
            let tx = c.transaction()?;
            for g in &gens {
                tx.execute(
                    "DELETE FROM tracker_journal_marks WHERE generation = ?1",
                    params![g],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn quiesce(&self) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        let pin = self.pin.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap();
            if let Some(c) = guard.as_ref() {
                let (busy, log, done): (i64, i64, i64) =
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?;
                if busy != 0 {
                    return Err(StoreError::Task(format!(
                        "wal_checkpoint(TRUNCATE) was blocked (log {log}, checkpointed {done})"
                    )));
                }
            }
            if let Some(c) = guard.take() {
                c.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
            }
            let mut pin = pin.lock().unwrap();
            if pin.is_none() {
                *pin = Some(take_pin(&path)?);
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn resume(&self) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let journal = self.journal;
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap();
            if guard.is_none() {
                *guard = Some(connect(&path, journal)?);
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn pin_mode(&self) -> Option<PinMode> {
        self.pin.lock().unwrap().as_ref()?;
        Some(match self.journal {
            JournalMode::Wal => PinMode::WritesContinue,
            JournalMode::Delete => PinMode::WritesWait,
        })
    }

    async fn unpin(&self) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        let pin = self.pin.clone();
        let journal = self.journal;
        tokio::task::spawn_blocking(move || {
            if let Some(p) = pin.lock().unwrap().take() {
                p.execute_batch("COMMIT;")?;
                p.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
            }
            // What was committed while pinned is in the WAL: write it back
            // now rather than at the next automatic checkpoint.
            if journal == JournalMode::Wal {
                if let Some(c) = conn.lock().unwrap().as_ref() {
                    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn wal_bytes(&self) -> Option<u64> {
        (self.journal == JournalMode::Wal).then(|| {
            std::fs::metadata(wal_path(&self.path))
                .map(|m| m.len())
                .unwrap_or(0)
        })
    }

    fn describe(&self) -> String {
        format!("sqlite3 {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(generation: u64, offset: u64) -> JournalMark {
        JournalMark { generation, offset }
    }

    #[tokio::test]
    async fn each_generation_keeps_its_own_mark() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db"), JournalMode::Wal)
            .await
            .unwrap();
        let h = InfoHash([1; 20]);
        let (a, b) = (u64::MAX - 1, 7);
        store.add_completed(&[(h, 2)], mark(a, 64)).await.unwrap();
        store.add_completed(&[(h, 3)], mark(b, 40)).await.unwrap();
        store.add_completed(&[(h, 1)], mark(a, 88)).await.unwrap();
        assert_eq!(store.load_journal_mark(a).await.unwrap(), Some(mark(a, 88)));
        assert_eq!(store.load_journal_mark(b).await.unwrap(), Some(mark(b, 40)));
        assert_eq!(store.load_journal_mark(9).await.unwrap(), None);
        store.forget_journal_marks(&[a, 9]).await.unwrap();
        assert_eq!(store.load_journal_mark(a).await.unwrap(), None);
        assert_eq!(store.load_journal_mark(b).await.unwrap(), Some(mark(b, 40)));
        assert_eq!(store.load_completed().await.unwrap(), vec![(h, 6)]);
    }

    /// During a rolling upgrade an instance of the earlier version may
    /// write the one-row mark again after it was moved: the next start
    /// moves it again, never moving a generation's offset back.
    #[tokio::test]
    async fn the_legacy_row_moves_at_each_start_keeping_the_larger_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(path.clone(), JournalMode::Wal)
            .await
            .unwrap();
        store
            .add_completed(&[(InfoHash([2; 20]), 1)], mark(5, 88))
            .await
            .unwrap();
        drop(store);
        let legacy = |g: i64, o: i64| {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS tracker_journal (id INTEGER PRIMARY KEY,
                 generation BIGINT NOT NULL, applied_offset BIGINT NOT NULL)",
            )
            .unwrap();
            c.execute(
                "INSERT OR REPLACE INTO tracker_journal VALUES (1, ?1, ?2)",
                params![g, o],
            )
            .unwrap();
        };
        let rows = || {
            let c = Connection::open(&path).unwrap();
            c.query_row("SELECT COUNT(*) FROM tracker_journal", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        };
        let reopen = || SqliteStore::open(path.clone(), JournalMode::Wal);
        legacy(5, 40);
        let store = reopen().await.unwrap();
        assert_eq!(rows(), 0);
        assert_eq!(store.load_journal_mark(5).await.unwrap(), Some(mark(5, 88)));
        drop(store);
        legacy(-3, 64);
        let store = reopen().await.unwrap();
        let g = -3i64 as u64;
        assert_eq!(store.load_journal_mark(g).await.unwrap(), Some(mark(g, 64)));
        drop(store);
        legacy(5, 112);
        let store = reopen().await.unwrap();
        assert_eq!(rows(), 0);
        assert_eq!(
            store.load_journal_mark(5).await.unwrap(),
            Some(mark(5, 112))
        );
    }
}
