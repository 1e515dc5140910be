//! Persistence of completed-download counts, behind one trait so SQLite,
//! MySQL/MariaDB and PostgreSQL are interchangeable.
//!
//! The schema is the upstream Torrust tracker's `torrents(id, info_hash,
//! completed)` table, so an existing Torrust database can be pointed at this
//! tracker and back. The trait is shaped by the maintenance window: besides
//! loading and writing counts, a store can be *quiesced* (flushed to its
//! files and closed, so a backup sees consistent, untouched files) and
//! *resumed* (reopened). A store may end its quiesce with a snapshot *pin*
//! that keeps the main file frozen after the tracker resumes, until unpin.

pub mod mysql;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use maintenance_coordinator::PinMode;

use crate::config::{DatabaseConfig, Driver};
use crate::journal::JournalMark;
use crate::peers::InfoHash;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// MySQL/MariaDB or PostgreSQL (both through `sqlx`) said no.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// The store is quiesced: nothing may touch the database until resume.
    #[error("the database is closed for a maintenance window")]
    Closed,
    /// A row whose `info_hash` is not 40 hex characters.
    #[error("torrents row with a malformed info_hash {0:?}")]
    BadRow(String),
    /// A blocking task died.
    #[error("database task failed: {0}")]
    Task(String),
}

/// A database holding completed counts.
#[async_trait]
pub trait Store: Send + Sync {
    /// Every torrent's completed count.
    async fn load_completed(&self) -> Result<Vec<(InfoHash, u64)>, StoreError>;

    /// Adds `delta` to each torrent's count (creating rows as needed) and
    /// records `mark` (how far the completion journal is applied), all in
    /// one transaction: either every increment and the mark land or nothing
    /// does.
    async fn add_completed(
        &self,
        deltas: &[(InfoHash, u64)],
        mark: JournalMark,
    ) -> Result<(), StoreError>;

    /// The journal mark stored by the last [`Store::add_completed`], if any.
    async fn load_journal_mark(&self) -> Result<Option<JournalMark>, StoreError>;

    /// Makes the database ready for a backup: SQLite checkpoints
    /// (`wal_checkpoint(TRUNCATE)`) and closes the file, MySQL closes its
    /// pool (until [`Store::resume`] their calls return
    /// [`StoreError::Closed`]); PostgreSQL needs nothing beyond the flush
    /// done before this call, since its dump reads an exported snapshot.
    async fn quiesce(&self) -> Result<(), StoreError>;

    /// Reopens after [`Store::quiesce`]. A no-op when open.
    async fn resume(&self) -> Result<(), StoreError>;

    /// After [`Store::quiesce`]: the snapshot pin the store now holds (the
    /// main file frozen until [`Store::unpin`]), if it takes one.
    fn pin_mode(&self) -> Option<PinMode> {
        None
    }

    /// Drops the pin taken by [`Store::quiesce`]. A no-op without one.
    async fn unpin(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Size of the write-ahead log, for stores that have one.
    fn wal_bytes(&self) -> Option<u64> {
        None
    }

    /// Human-readable location, with no password in it.
    fn describe(&self) -> String;
}

/// The one-row table holding the [`JournalMark`]: `generation` and
/// `applied_offset` are stored as signed 64-bit integers (the generation's
/// bits reinterpreted).
pub(crate) const JOURNAL_TABLE: &str = "CREATE TABLE IF NOT EXISTS tracker_journal (
    id INTEGER PRIMARY KEY,
    generation BIGINT NOT NULL,
    applied_offset BIGINT NOT NULL
)";

/// Reads the stored mark (same SQL on every engine).
pub(crate) const SELECT_MARK: &str =
    "SELECT generation, applied_offset FROM tracker_journal WHERE id = 1";

/// A mark as the two signed columns of `tracker_journal`.
pub(crate) fn mark_to_row(mark: JournalMark) -> (i64, i64) {
    (mark.generation as i64, mark.offset as i64)
}

/// The two signed columns of `tracker_journal` as a mark.
pub(crate) fn mark_from_row(generation: i64, offset: i64) -> JournalMark {
    JournalMark {
        generation: generation as u64,
        offset: offset.max(0) as u64,
    }
}

/// Opens the store named by the config, creating the schema if needed.
///
/// `password_override` (from `TRACKER_DATABASE_PASSWORD`) replaces the
/// password of a `mysql://` or `postgresql://` URL, so it need not be
/// written in the file.
pub async fn open(
    cfg: &DatabaseConfig,
    password_override: Option<String>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match cfg.driver {
        Driver::Sqlite3 => {
            Arc::new(sqlite::SqliteStore::open(cfg.path.clone().into(), cfg.journal_mode).await?)
        }
        Driver::Mysql => Arc::new(mysql::MysqlStore::open(&cfg.path, password_override).await?),
        Driver::Postgresql => {
            Arc::new(postgres::PostgresStore::open(&cfg.path, password_override).await?)
        }
    })
}

/// Removes the password from a database URL, for logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("mysql://u:secret@db:3306/t"),
            "mysql://u:***@db:3306/t"
        );
        assert_eq!(
            super::redact("postgresql://u:p@ss@db:5432/t"),
            "postgresql://u:***@db:5432/t"
        );
        assert_eq!(super::redact("mysql://db/t"), "mysql://db/t");
    }
}
