//! The SQLite side of a window, on connections of the embedding's own
//! (torrust-actix's pool is left alone): WAL mode at start, then
//! `wal_checkpoint(TRUNCATE)` and the snapshot pin at the end of the
//! quiesce, and the unpin.
//!
//! The pin is a read transaction begun right after the checkpoint emptied
//! the WAL: it reads the main file alone, and while it is open SQLite's
//! checkpointer cannot copy any frame back into that file. So the file
//! stays frozen byte for byte while torrust-actix commits again after the
//! release (its commits stay in `-wal` until the unpin), and the sidecar
//! reads it at its own pace. That needs WAL mode: in rollback-journal mode
//! the same read lock would block every save. A file found in rollback-journal
//! mode is switched to WAL once at start (logged), before torrust-actix
//! opens it; if SQLite cannot switch it, the start is refused with the fix.
//!
//! sqlx, not rusqlite: torrust-actix links SQLite through sqlx, and one
//! binary can link only one SQLite.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use maintenance_coordinator::PinMode;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use tokio::sync::Mutex;

/// Why the SQLite file could not be prepared or pinned.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The DSN of `[database] path` is not one sqlx reads.
    #[error(
        "database.path {dsn:?} is not an SQLite DSN sqlx reads ({source}); write sqlite://FILE"
    )]
    Dsn {
        /// The configured DSN.
        dsn: String,
        /// sqlx's complaint.
        source: sqlx::Error,
    },
    /// The file stays in another journal mode.
    #[error(
        "{path} is in journal mode {mode:?} and SQLite did not switch it to WAL{reason}; \
         the snapshot pin needs WAL. Stop every process that has the file open \
         (an upstream torrust-actix, a sqlite3 shell) and start again, or switch it \
         once by hand: sqlite3 {path} 'PRAGMA journal_mode=WAL;'"
    )]
    NotWal {
        /// The database file.
        path: String,
        /// The mode SQLite reports.
        mode: String,
        /// What SQLite said, if anything.
        reason: String,
    },
    /// The checkpoint could not empty the WAL.
    #[error("wal_checkpoint(TRUNCATE) on {path} was blocked by a reader (log {log} frames, {done} checkpointed)")]
    CheckpointBlocked {
        /// The database file.
        path: String,
        /// Frames in the WAL.
        log: i64,
        /// Frames copied back.
        done: i64,
    },
    /// Any other SQLite error.
    #[error("sqlite {path}: {source}")]
    Sql {
        /// The database file.
        path: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
}

/// The embedding's handle on torrust-actix's SQLite file.
pub struct SqliteFile {
    options: SqliteConnectOptions,
    path: PathBuf,
    /// The snapshot pin: a connection inside a read transaction.
    pin: Mutex<Option<SqliteConnection>>,
    pinned: std::sync::atomic::AtomicBool,
}

impl SqliteFile {
    /// Opens the file named by torrust-actix's `database.path` DSN (creating
    /// it when missing, as torrust-actix does) and makes sure it is in WAL
    /// mode, switching it if needed. Call before torrust-actix opens it.
    pub async fn prepare(dsn: &str) -> Result<Self, SqliteError> {
        let options = SqliteConnectOptions::from_str(dsn)
            .map_err(|source| SqliteError::Dsn {
                dsn: dsn.to_owned(),
                source,
            })?
            .create_if_missing(true);
        let path = options.get_filename().to_owned();
        let file = SqliteFile {
            options,
            path,
            pin: Mutex::new(None),
            pinned: false.into(),
        };
        file.ensure_wal().await?;
        Ok(file)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn sql(&self) -> impl Fn(sqlx::Error) -> SqliteError + '_ {
        move |source| SqliteError::Sql {
            path: self.describe(),
            source,
        }
    }

    async fn connect(&self) -> Result<SqliteConnection, SqliteError> {
        SqliteConnection::connect_with(&self.options)
            .await
            .map_err(self.sql())
    }

    async fn ensure_wal(&self) -> Result<(), SqliteError> {
        let mut conn = self.connect().await?;
        let mode: String = match sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
        {
            Ok(row) => row.get(0),
            // Locked by another process: the same fix applies.
            Err(e) => {
                return Err(SqliteError::NotWal {
                    path: self.describe(),
                    mode: "unknown".into(),
                    reason: format!(" ({e})"),
                })
            }
        };
        if mode.eq_ignore_ascii_case("wal") {
            log::info!("[MAINTENANCE] {} is in WAL mode", self.describe());
            return conn.close().await.map_err(self.sql());
        }
        let switched = sqlx::query("PRAGMA journal_mode=WAL")
            .fetch_one(&mut conn)
            .await
            .map(|row| row.get::<String, _>(0));
        let _ = conn.close().await;
        match switched {
            Ok(now) if now.eq_ignore_ascii_case("wal") => {
                log::warn!(
                    "[MAINTENANCE] switched {} from journal mode {mode} to WAL (permanent; \
                     the snapshot pin needs it; torrust-actix works unchanged in WAL)",
                    self.describe()
                );
                Ok(())
            }
            Ok(now) => Err(SqliteError::NotWal {
                path: self.describe(),
                mode: now,
                reason: String::new(),
            }),
            Err(e) => Err(SqliteError::NotWal {
                path: self.describe(),
                mode,
                reason: format!(" ({e})"),
            }),
        }
    }

    /// `wal_checkpoint(TRUNCATE)`, then the pin: a read transaction on a
    /// connection of our own, begun while the WAL is empty. Call once every
    /// write is flushed and none can start (the gate holds them).
    pub async fn checkpoint_and_pin(&self) -> Result<(), SqliteError> {
        let mut pin = self.pin.lock().await;
        if pin.is_some() {
            return Ok(());
        }
        let mut conn = self.connect().await?;
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await
            .map_err(self.sql())?;
        let (busy, log, done): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if busy != 0 {
            return Err(SqliteError::CheckpointBlocked {
                path: self.describe(),
                log,
                done,
            });
        }
        sqlx::raw_sql("BEGIN; SELECT count(*) FROM sqlite_master;")
            .execute(&mut conn)
            .await
            .map_err(self.sql())?;
        *pin = Some(conn);
        self.pinned.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The pin held, if any: writes go on into the WAL around the frozen file.
    pub fn pin_mode(&self) -> Option<PinMode> {
        self.pinned
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(PinMode::WritesContinue)
    }

    /// Ends the pin's read transaction and checkpoints what was committed
    /// meanwhile back into the main file.
    pub async fn unpin(&self) -> Result<(), SqliteError> {
        let Some(mut conn) = self.pin.lock().await.take() else {
            return Ok(());
        };
        self.pinned
            .store(false, std::sync::atomic::Ordering::SeqCst);
        sqlx::raw_sql("COMMIT;")
            .execute(&mut conn)
            .await
            .map_err(self.sql())?;
        // A busy checkpoint here is harmless: SQLite's automatic one
        // catches up later.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await
            .map_err(self.sql())?;
        conn.close().await.map_err(self.sql())
    }

    /// Bytes in the `-wal` file (it grows while pinned).
    pub fn wal_bytes(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn journal_mode(path: &Path) -> String {
        let mut c = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
        sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_rollback_journal_file_is_switched_to_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let mut c = SqliteConnection::connect_with(
                &SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            sqlx::raw_sql("PRAGMA journal_mode=DELETE; CREATE TABLE t (x);")
                .execute(&mut c)
                .await
                .unwrap();
        }
        assert_eq!(journal_mode(&path).await, "delete");
        let file = SqliteFile::prepare(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert_eq!(journal_mode(&path).await, "wal");
        assert_eq!(file.path(), path);
    }

    #[tokio::test]
    async fn a_file_another_connection_holds_locked_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut holder = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .busy_timeout(std::time::Duration::ZERO),
        )
        .await
        .unwrap();
        sqlx::raw_sql("PRAGMA journal_mode=DELETE; CREATE TABLE t (x); BEGIN EXCLUSIVE;")
            .execute(&mut holder)
            .await
            .unwrap();
        let dsn = format!("sqlite://{}", path.display());
        let e = match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            SqliteFile::prepare(&dsn),
        )
        .await
        .expect("refused within the busy timeout")
        {
            Ok(_) => panic!("a locked rollback-journal file was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("PRAGMA journal_mode=WAL"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
    }

    #[tokio::test]
    async fn the_pin_keeps_the_main_file_frozen_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let dsn = format!("sqlite://{}", path.display());
        let file = SqliteFile::prepare(&dsn).await.unwrap();
        let mut writer =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
                .await
                .unwrap();
        sqlx::raw_sql("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .execute(&mut writer)
            .await
            .unwrap();
        file.checkpoint_and_pin().await.unwrap();
        assert_eq!(file.pin_mode(), Some(PinMode::WritesContinue));
        let frozen = std::fs::read(&path).unwrap();
        for i in 0..50 {
            sqlx::query("INSERT INTO t VALUES (?)")
                .bind(i)
                .execute(&mut writer)
                .await
                .unwrap();
        }
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut writer)
            .await
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), frozen, "main file changed");
        assert!(file.wal_bytes() > 0);
        file.unpin().await.unwrap();
        assert_eq!(file.pin_mode(), None);
        assert_eq!(file.wal_bytes(), 0, "the unpin checkpoints the WAL");
        let n: i64 = sqlx::query("SELECT count(*) FROM t")
            .fetch_one(&mut writer)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 51);
    }
}
