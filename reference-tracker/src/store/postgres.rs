//! The PostgreSQL driver, over a small `sqlx` connection pool.
//!
//! The schema is the one the upstream Torrust tracker's PostgreSQL driver
//! creates: `torrents(id, info_hash UNIQUE, completed)`.
//!
//! Quiescing needs nothing from PostgreSQL beyond the flush the write-behind
//! buffer does before it: the sidecar's `pg_dump` reads inside an MVCC
//! snapshot that it exports itself, so the pool stays open and resume is
//! instant. While the window holds, the coordinator's gate keeps the
//! flusher from writing, which is all the consistency the backup needs.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use super::marks::{self, MarksSql};
use super::{
    generation_to_row, log_swept, mark_from_row, mark_to_row, redact, Store, StoreError,
    MARKS_TABLE,
};
use crate::journal::JournalMark;
use crate::peers::InfoHash;

/// A PostgreSQL database holding the `torrents` table.
pub struct PostgresStore {
    described: String,
    pool: PgPool,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS torrents (
    id SERIAL PRIMARY KEY,
    info_hash VARCHAR(40) NOT NULL UNIQUE,
    completed INTEGER DEFAULT 0 NOT NULL
)";

/// Upserts the row of one generation; the offset never moves back (the
/// legacy move may meet a row the flush already advanced).
const UPSERT_MARK: &str =
    "INSERT INTO tracker_journal_marks (generation, applied_offset, updated_at)
     VALUES ($1, $2, $3)
     ON CONFLICT (generation) DO UPDATE SET
     applied_offset = GREATEST(tracker_journal_marks.applied_offset, EXCLUDED.applied_offset),
     updated_at = EXCLUDED.updated_at";

/// The start-up step on the marks in PostgreSQL's dialect.
const MARKS_SQL: MarksSql = MarksSql {
    table_exists: "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = $1",
    upsert: UPSERT_MARK,
    sweep: "DELETE FROM tracker_journal_marks WHERE updated_at < $1",
};

impl PostgresStore {
    /// Connects to `url` (`postgresql://user:pass@host:port/db`), creating
    /// the table if needed. `password_override` replaces the URL's password.
    pub async fn open(url: &str, password_override: Option<String>) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(pw) = password_override {
            options = options.password(&pw);
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await?;
        // Concurrent first starts may race on CREATE TABLE IF NOT EXISTS
        // (a unique violation in pg_type); the loser finds the table there.
        for (ddl, table) in [(SCHEMA, "torrents"), (MARKS_TABLE, "tracker_journal_marks")] {
            if let Err(e) = sqlx::query(ddl).execute(&pool).await {
                let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(&pool)
                    .await?;
                if !exists {
                    return Err(e.into());
                }
            }
        }
        let described = format!("postgresql {}", redact(url));
        let swept = marks::prepare(&pool, &MARKS_SQL, &described).await?;
        log_swept(&described, swept.rows_affected());
        Ok(PostgresStore { described, pool })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load_completed(&self) -> Result<Vec<(InfoHash, u64)>, StoreError> {
        let rows = sqlx::query("SELECT info_hash, completed FROM torrents")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let hex: String = row.try_get(0)?;
            let n: i32 = row.try_get(1)?;
            let hash = InfoHash::from_hex(&hex).ok_or(StoreError::BadRow(hex))?;
            out.push((hash, n.max(0) as u64));
        }
        Ok(out)
    }

    async fn add_completed(
        &self,
        deltas: &[(InfoHash, u64)],
        mark: JournalMark,
    ) -> Result<(), StoreError> {
        let (generation, offset) = mark_to_row(mark);
        let mut tx = self.pool.begin().await?;
        for (hash, n) in deltas {
            sqlx::query(
                "INSERT INTO torrents (info_hash, completed) VALUES ($1, $2)
                 ON CONFLICT (info_hash) DO UPDATE SET completed = torrents.completed + EXCLUDED.completed",
            )
            .bind(hash.to_hex())
            .bind(i32::try_from(*n).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        }
        marks::upsert::<sqlx::Postgres>(&mut tx, UPSERT_MARK, generation, offset).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_journal_mark(&self, generation: u64) -> Result<Option<JournalMark>, StoreError> {
        let g = generation_to_row(generation);
        let offset: Option<i64> = sqlx::query_scalar(
            "SELECT applied_offset FROM tracker_journal_marks WHERE generation = $1",
        )
        .bind(g)
        .fetch_optional(&self.pool)
        .await?;
        Ok(offset.map(|o| mark_from_row(g, o)))
    }

    async fn forget_journal_marks(&self, generations: &[u64]) -> Result<(), StoreError> {
        let gens: Vec<i64> = generations.iter().map(|&g| generation_to_row(g)).collect();
        sqlx::query("DELETE FROM tracker_journal_marks WHERE generation = ANY($1)")
            .bind(gens)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Nothing to do: the buffer was flushed before this call and the
    /// dump reads its own snapshot, so the connections stay open.
    async fn quiesce(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn resume(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}
