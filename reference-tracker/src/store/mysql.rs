//! The MySQL/MariaDB driver, over a small `sqlx` connection pool.
//!
//! Quiescing commits what is pending and closes the pool: InnoDB needs no
//! checkpoint from a client for `mariadb-dump --single-transaction` to be
//! consistent, but closing guarantees the tracker issues no statement while
//! the sidecar dumps.

use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Row;

use super::marks::{self, MarksSql};
use super::{
    generation_to_row, log_swept, mark_from_row, mark_to_row, redact, Store, StoreError,
    MARKS_TABLE,
};
use crate::journal::JournalMark;
use crate::peers::InfoHash;

/// A MySQL/MariaDB database holding the `torrents` table.
pub struct MysqlStore {
    options: MySqlConnectOptions,
    described: String,
    pool: Mutex<Option<MySqlPool>>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS torrents (
    id integer PRIMARY KEY AUTO_INCREMENT,
    info_hash VARCHAR(40) NOT NULL UNIQUE,
    completed INTEGER DEFAULT 0 NOT NULL
)";

async fn connect(options: &MySqlConnectOptions) -> Result<MySqlPool, sqlx::Error> {
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options.clone())
        .await?;
    sqlx::query(SCHEMA).execute(&pool).await?;
    sqlx::query(MARKS_TABLE).execute(&pool).await?;
    Ok(pool)
}

/// Upserts the row of one generation; the offset never moves back (the
/// legacy move may meet a row the flush already advanced).
const UPSERT_MARK: &str =
    "INSERT INTO tracker_journal_marks (generation, applied_offset, updated_at)
     VALUES (?, ?, ?)
     ON DUPLICATE KEY UPDATE
     applied_offset = GREATEST(applied_offset, VALUES(applied_offset)),
     updated_at = VALUES(updated_at)";

/// The start-up step on the marks in MySQL's dialect.
const MARKS_SQL: MarksSql = MarksSql {
    table_exists: "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = DATABASE() AND table_name = ?",
    upsert: UPSERT_MARK,
    sweep: "DELETE FROM tracker_journal_marks WHERE updated_at < ?",
};

impl MysqlStore {
    /// Connects to `url` (`mysql://user:pass@host:port/db`), creating the
    /// table if needed. `password_override` replaces the URL's password.
    pub async fn open(url: &str, password_override: Option<String>) -> Result<Self, StoreError> {
        let mut options = MySqlConnectOptions::from_str(url)?;
        if let Some(pw) = password_override {
            options = options.password(&pw);
        }
        let pool = connect(&options).await?;
        let described = format!("mysql {}", redact(url));
        let swept = marks::prepare(&pool, &MARKS_SQL, &described).await?;
        log_swept(&described, swept.rows_affected());
        Ok(MysqlStore {
            options,
            described,
            pool: Mutex::new(Some(pool)),
        })
    }

    fn pool(&self) -> Result<MySqlPool, StoreError> {
        self.pool.lock().unwrap().clone().ok_or(StoreError::Closed)
    }
}

#[async_trait]
impl Store for MysqlStore {
    async fn load_completed(&self) -> Result<Vec<(InfoHash, u64)>, StoreError> {
        let pool = self.pool()?;
        let rows = sqlx::query("SELECT info_hash, completed FROM torrents")
            .fetch_all(&pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let hex: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
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
        let pool = self.pool()?;
        let mut tx = pool.begin().await?;
        for (hash, n) in deltas {
            sqlx::query(
                "INSERT INTO torrents (info_hash, completed) VALUES (?, ?)
                 ON DUPLICATE KEY UPDATE completed = completed + VALUES(completed)",
            )
            .bind(hash.to_hex())
            .bind(*n as i64)
            .execute(&mut *tx)
            .await?;
        }
        marks::upsert::<sqlx::MySql>(&mut tx, UPSERT_MARK, generation, offset).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_journal_mark(&self, generation: u64) -> Result<Option<JournalMark>, StoreError> {
        let pool = self.pool()?;
        let g = generation_to_row(generation);
        let offset: Option<i64> = sqlx::query_scalar(
            "SELECT applied_offset FROM tracker_journal_marks WHERE generation = ?",
        )
        .bind(g)
        .fetch_optional(&pool)
        .await?;
        Ok(offset.map(|o| mark_from_row(g, o)))
    }

    async fn forget_journal_marks(&self, generations: &[u64]) -> Result<(), StoreError> {
        let pool = self.pool()?;
        let mut tx = pool.begin().await?;
        for &g in generations {
            sqlx::query("DELETE FROM tracker_journal_marks WHERE generation = ?")
                .bind(generation_to_row(g))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn quiesce(&self) -> Result<(), StoreError> {
        let pool = self.pool.lock().unwrap().take();
        if let Some(pool) = pool {
            pool.close().await;
        }
        Ok(())
    }

    async fn resume(&self) -> Result<(), StoreError> {
        if self.pool.lock().unwrap().is_some() {
            return Ok(());
        }
        let pool = connect(&self.options).await?;
        *self.pool.lock().unwrap() = Some(pool);
        Ok(())
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}
