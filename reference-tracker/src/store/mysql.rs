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

use super::{mark_from_row, mark_to_row, redact, Store, StoreError, JOURNAL_TABLE, SELECT_MARK};
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
    sqlx::query(JOURNAL_TABLE).execute(&pool).await?;
    Ok(pool)
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:pass@host:port/db`), creating the
    /// table if needed. `password_override` replaces the URL's password.
    pub async fn open(url: &str, password_override: Option<String>) -> Result<Self, StoreError> {
        let mut options = MySqlConnectOptions::from_str(url)?;
        if let Some(pw) = password_override {
            options = options.password(&pw);
        }
        let pool = connect(&options).await?;
        Ok(MysqlStore {
            options,
            described: format!("mysql {}", redact(url)),
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
        sqlx::query(
            "INSERT INTO tracker_journal (id, generation, applied_offset) VALUES (1, ?, ?)
             ON DUPLICATE KEY UPDATE generation = VALUES(generation),
             applied_offset = VALUES(applied_offset)",
        )
        .bind(generation)
        .bind(offset)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_journal_mark(&self) -> Result<Option<JournalMark>, StoreError> {
        let pool = self.pool()?;
        let row = sqlx::query(SELECT_MARK).fetch_optional(&pool).await?;
        Ok(match row {
            Some(r) => Some(mark_from_row(r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
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
