//! The SQLite driver: one connection to a WAL-mode database file.
//!
//! Quiescing checkpoints the WAL into the main file with
//! `PRAGMA wal_checkpoint(TRUNCATE)` and then closes the connection, so while
//! a window is `ready` the database file is complete on its own and no
//! process of ours writes to it: a plain copy of it is a consistent backup.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::{Store, StoreError};
use crate::peers::InfoHash;

/// A SQLite database file holding the `torrents` table.
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS torrents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    info_hash TEXT NOT NULL UNIQUE,
    completed INTEGER DEFAULT 0 NOT NULL
)";

fn connect(path: &PathBuf) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite did not switch to WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Task(format!("creating {}: {e}", dir.display())))?;
            }
        }
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || connect(&p))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(SqliteStore {
            path,
            conn: Arc::new(Mutex::new(Some(conn))),
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

    async fn add_completed(&self, deltas: &[(InfoHash, u64)]) -> Result<(), StoreError> {
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
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn quiesce(&self) -> Result<(), StoreError> {
        let conn = self.conn.clone();
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
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn resume(&self) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap();
            if guard.is_none() {
                *guard = Some(connect(&path)?);
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn describe(&self) -> String {
        format!("sqlite3 {}", self.path.display())
    }
}
