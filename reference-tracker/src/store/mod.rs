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
//!
//! Next to `torrents`, each store keeps `tracker_journal_marks`: how far each
//! completion journal generation is applied ([`MARKS_TABLE`]), written in
//! the flush's transaction, so a journal replay never counts a completion
//! twice even with several tracker instances on one database.

mod marks;
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
    /// records `mark` (how far the completion journal is applied) in the
    /// row of `mark.generation`, all in one transaction: either every
    /// increment and the mark land or nothing does. Other generations'
    /// rows (other instances sharing the database) are not touched.
    async fn add_completed(
        &self,
        deltas: &[(InfoHash, u64)],
        mark: JournalMark,
    ) -> Result<(), StoreError>;

    /// The journal mark stored for `generation` by the last
    /// [`Store::add_completed`] of that generation, if any.
    async fn load_journal_mark(&self, generation: u64) -> Result<Option<JournalMark>, StoreError>;

    /// Deletes the marks of journal generations that were compacted away
    /// (their files no longer exist, so their rows can never be read).
    async fn forget_journal_marks(&self, generations: &[u64]) -> Result<(), StoreError>;

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

/// The table of [`JournalMark`]s: one row per journal generation, so that
/// tracker instances sharing a database never overwrite each other's mark.
/// `generation` and `applied_offset` are stored as signed 64-bit integers
/// (the generation's bits reinterpreted); `updated_at` (Unix seconds, the
/// tracker's clock) is set by every write and drives the stale-row sweep
/// ([`STALE_MARK_AGE`]).
pub(crate) const MARKS_TABLE: &str = "CREATE TABLE IF NOT EXISTS tracker_journal_marks (
    generation BIGINT NOT NULL PRIMARY KEY,
    applied_offset BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)";

/// The table of earlier versions: one mark (row `id = 1`) shared by every
/// instance. At every start its row, if any, moves to
/// [`MARKS_TABLE`] as the mark of the generation it names, in one
/// transaction that also deletes it (so the move happens once, whoever
/// starts first). The table itself is left in place: instances of the
/// earlier version still running during a rolling upgrade keep writing it,
/// and the next start moves their row too.
pub(crate) const LEGACY_TABLE: &str = "tracker_journal";

/// Reads the legacy row under a write lock (MySQL and PostgreSQL; SQLite
/// locks the whole database with `BEGIN IMMEDIATE` instead).
pub(crate) const SELECT_LEGACY_FOR_UPDATE: &str =
    "SELECT generation, applied_offset FROM tracker_journal WHERE id = 1 FOR UPDATE";

/// Empties the legacy table once its row has moved.
pub(crate) const DELETE_LEGACY: &str = "DELETE FROM tracker_journal WHERE id = 1";

/// A mark row untouched this long is deleted at start. The row of a
/// generation exists only between a flush and the compaction after it, and
/// every flush refreshes it; an older one is left over from a crash between
/// a compaction and the deletion of the row it retired, or from an
/// instance that crashed and stayed down (or never flushed) that long.
pub const STALE_MARK_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Now, in Unix seconds, for `updated_at`.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `updated_at` below which a row is swept.
pub(crate) fn stale_before(now: i64) -> i64 {
    now - STALE_MARK_AGE.as_secs() as i64
}

/// A generation as its signed column.
pub(crate) fn generation_to_row(generation: u64) -> i64 {
    generation as i64
}

/// A mark as the two signed columns of `tracker_journal_marks`.
pub(crate) fn mark_to_row(mark: JournalMark) -> (i64, i64) {
    (generation_to_row(mark.generation), mark.offset as i64)
}

/// The two signed columns of a mark row as a mark.
pub(crate) fn mark_from_row(generation: i64, offset: i64) -> JournalMark {
    JournalMark {
        generation: generation as u64,
        offset: offset.max(0) as u64,
    }
}

/// What the start-up found in the legacy table, for its log line.
pub(crate) fn log_legacy_moved(store: &str, generation: i64, offset: i64) {
    tracing::info!(store, generation = generation as u64, offset,
        "moved the journal mark of the earlier one-row layout (tracker_journal) to tracker_journal_marks");
}

/// Logs how many stale mark rows the start-up sweep deleted, when any.
pub(crate) fn log_swept(store: &str, rows: u64) {
    if rows > 0 {
        tracing::info!(
            store,
            rows,
            max_age_days = STALE_MARK_AGE.as_secs() / 86_400,
            "deleted journal marks untouched for too long"
        );
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
