//! The start-up step on the journal marks, shared by the two `sqlx` engines
//! (MySQL/MariaDB and PostgreSQL; SQLite has its own, on `rusqlite`): move
//! the one-row mark of earlier versions into `tracker_journal_marks`, then
//! sweep rows untouched for [`super::STALE_MARK_AGE`]. Only the SQL text
//! differs between the engines (placeholders, upsert syntax), so it comes
//! in a [`MarksSql`].

use sqlx::{Database, Executor, IntoArguments, Pool, Row};

use super::{
    log_legacy_moved, now_secs, stale_before, DELETE_LEGACY, LEGACY_TABLE, SELECT_LEGACY_FOR_UPDATE,
};

/// The statements of one engine.
pub(crate) struct MarksSql {
    /// `COUNT(*)` of tables named by the one parameter in the current
    /// database or schema.
    pub table_exists: &'static str,
    /// Upserts (generation, offset, updated_at), keeping the larger offset.
    pub upsert: &'static str,
    /// Deletes the rows whose `updated_at` is below the one parameter.
    pub sweep: &'static str,
}

/// Moves the legacy row, if any, in one transaction holding its row lock (a
/// second instance starting at once waits, then finds the row gone), then
/// sweeps stale rows. Returns the sweep's result, whose row count the
/// caller logs ([`super::log_swept`]): `sqlx` has no trait for it.
pub(crate) async fn prepare<DB>(
    pool: &Pool<DB>,
    sql: &MarksSql,
    describe: &str,
) -> Result<DB::QueryResult, sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB>,
    &'static str: sqlx::Type<DB> + sqlx::Encode<'static, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let now = now_secs();
    let legacy: i64 = sqlx::query_scalar(sql.table_exists)
        .bind(LEGACY_TABLE)
        .fetch_one(pool)
        .await?;
    if legacy > 0 {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(SELECT_LEGACY_FOR_UPDATE)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = row {
            let (generation, offset): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            upsert::<DB>(&mut tx, sql.upsert, generation, offset).await?;
            sqlx::query(DELETE_LEGACY).execute(&mut *tx).await?;
            tx.commit().await?;
            log_legacy_moved(describe, generation, offset);
        }
    }
    sqlx::query(sql.sweep)
        .bind(stale_before(now))
        .execute(pool)
        .await
}

/// Runs `sql` (the engine's upsert of a mark row) for one generation, with
/// `updated_at` = now, on `conn` (the caller's transaction).
pub(crate) async fn upsert<DB>(
    conn: &mut DB::Connection,
    sql: &'static str,
    generation: i64,
    offset: i64,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: sqlx::Type<DB> + for<'q> sqlx::Encode<'q, DB>,
{
    sqlx::query(sql)
        .bind(generation)
        .bind(offset)
        .bind(now_secs())
        .execute(conn)
        .await?;
    Ok(())
}
