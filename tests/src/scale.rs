//! Generator of the large SQLite database of the `scale` benchmark.
//!
//! The database has the upstream tracker's schema: `torrents(id, info_hash
//! TEXT UNIQUE, completed)` with its unique index, filled with realistic
//! rows (40 lower-case hex characters, skewed completed counts). Two tables
//! share that schema:
//!
//! - `torrents`, the table the tracker loads at start-up, with a realistic
//!   number of torrents for a large public tracker (`live_rows`);
//! - `torrents_history` (and `torrents_history_2`, `_3`, ... copies of it
//!   beyond 1 GiB), same columns and index, holding the bulk of the size. The reference tracker keeps every loaded torrent in memory, so a
//!   16 GiB `torrents` table (about 150 million rows) could not be loaded
//!   on the benchmark machine; the backup path, which is what is measured,
//!   reads pages and does not care which table they belong to.
//!
//! Generating must be fast (minutes for 16 GiB): journaling and syncing are
//! off while generating, rows are inserted in large transactions, and the
//! info hashes are generated in ascending order so both B-trees (table and
//! unique index) grow by appending instead of splitting random pages. The
//! database is switched to WAL mode at the end, as the tracker uses it.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection};

/// Bytes per row of the table plus its index, measured on generated data
/// (used only to spread the ascending hashes over the whole hash space).
const BYTES_PER_ROW_ESTIMATE: u64 = 110;

/// Size of the generated history table; beyond it, the history is copied
/// into more tables of the same schema (inserting rows one by one costs
/// about 2.5 µs each, so 16 GiB of single inserts would take many minutes of
/// CPU on a busy machine).
const HISTORY_BASE_BYTES: u64 = 1 << 30;

/// Rows per transaction (at most).
const BATCH: u64 = 1_000_000;

/// What was generated.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Rows in `torrents`.
    pub live_rows: u64,
    /// Rows in the `torrents_history` tables.
    pub history_rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Seconds the generation took.
    pub secs: f64,
}

/// A small, fast, deterministic pseudo-random generator (SplitMix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Writes `v` as `out.len()` lower-case hex digits.
fn put_hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for o in out.iter_mut().rev() {
        *o = DIGITS[(v & 15) as usize];
        v >>= 4;
    }
}

/// Fills `table` with ascending info hashes spread over the hash space of
/// about `rows_estimate` rows, until `done(rows so far)` says stop. The
/// spacing leaves room for twice the estimate (or a batch, if more) and
/// saturates beyond, so the prefixes never wrap around.
fn fill(
    conn: &mut Connection,
    table: &str,
    rows_estimate: u64,
    seed: u64,
    mut done: impl FnMut(&Connection, u64) -> bool,
) -> u64 {
    let batch = BATCH.min(rows_estimate.max(1000));
    let stride = u64::MAX / rows_estimate.max(batch).saturating_mul(2);
    let mut rng = SplitMix(seed);
    let mut buf = [0u8; 40];
    let mut rows = 0u64;
    loop {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "INSERT INTO {table} (id, info_hash, completed) VALUES (?1, ?2, ?3)"
                ))
                .unwrap();
            for _ in 0..batch {
                rows += 1;
                let r = rng.next();
                // 16 ascending digits, then 24 random ones: sorted, and as
                // varied as real SHA-1 hashes in everything but the order.
                put_hex(&mut buf[..16], rows.saturating_mul(stride));
                put_hex(&mut buf[16..28], r >> 16);
                put_hex(&mut buf[28..], rng.next() >> 16);
                // Most torrents are completed a few times, a few very often.
                let completed = match r & 0xff {
                    0 => (r >> 8) % 100_000,
                    1..=15 => (r >> 8) % 5_000,
                    _ => (r >> 8) % 60,
                };
                let hex = std::str::from_utf8(&buf).unwrap();
                stmt.execute(params![rows as i64, hex, completed as i64])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        if done(conn, rows) {
            return rows;
        }
    }
}

fn file_bytes(conn: &Connection) -> u64 {
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    (pages * size) as u64
}

/// Creates `db` (which must not exist) of at least `bytes` bytes, with
/// `live_rows` rows (rounded up to a million) in `torrents`.
pub fn generate(db: &Path, bytes: u64, live_rows: u64) -> Generated {
    let started = Instant::now();
    assert!(!db.exists(), "{} exists already", db.display());
    let mut conn = Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=OFF;
         PRAGMA synchronous=OFF;
         PRAGMA cache_size=-131072;
         CREATE TABLE torrents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            info_hash TEXT NOT NULL UNIQUE,
            completed INTEGER DEFAULT 0 NOT NULL);
         CREATE TABLE torrents_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            info_hash TEXT NOT NULL UNIQUE,
            completed INTEGER DEFAULT 0 NOT NULL);",
    )
    .unwrap();
    let live = fill(&mut conn, "torrents", live_rows, 1, |_, n| n >= live_rows);
    let base_bytes = bytes.min(HISTORY_BASE_BYTES);
    let history_estimate = (base_bytes / BYTES_PER_ROW_ESTIMATE).saturating_sub(live);
    let base_rows = fill(
        &mut conn,
        "torrents_history",
        history_estimate,
        2,
        |c, _| file_bytes(c) >= base_bytes,
    );
    let mut history = base_rows;
    let mut copy = 2;
    while file_bytes(&conn) < bytes {
        // SQLite's transfer optimisation copies the records and index
        // entries of an identical table without decoding them.
        conn.execute_batch(&format!(
            "CREATE TABLE torrents_history_{copy} (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                info_hash TEXT NOT NULL UNIQUE,
                completed INTEGER DEFAULT 0 NOT NULL);
             INSERT INTO torrents_history_{copy} SELECT * FROM torrents_history;"
        ))
        .unwrap();
        history += base_rows;
        copy += 1;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    Generated {
        live_rows: live,
        history_rows: history,
        bytes: std::fs::metadata(db).unwrap().len(),
        secs: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_fixed_width() {
        let mut b = [0u8; 16];
        put_hex(&mut b, 0xab);
        assert_eq!(&b, b"00000000000000ab");
    }

    #[test]
    fn generated_database_has_the_tracker_schema_and_sorted_unique_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("scale.db");
        let g = generate(&db, 1, 1);
        let conn = Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM torrents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as u64, g.live_rows);
        let bad: i64 = conn
            .query_row(
                "SELECT count(*) FROM torrents WHERE length(info_hash) != 40 OR info_hash GLOB '*[^0-9a-f]*'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(bad, 0);
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        for table in ["torrents", "torrents_history"] {
            // The tracker's schema: columns, primary key, unique info_hash.
            let columns: Vec<(String, String, bool, bool)> = conn
                .prepare(&format!("PRAGMA table_info({table})"))
                .unwrap()
                .query_map([], |r| {
                    Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(5)? > 0))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let expected = [
                ("id", "INTEGER", false, true),
                ("info_hash", "TEXT", true, false),
                ("completed", "INTEGER", true, false),
            ]
            .map(|(n, t, not_null, pk)| (n.to_owned(), t.to_owned(), not_null, pk));
            assert_eq!(columns, expected, "{table}");
            let unique: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM pragma_index_list('{table}') l \
                         JOIN pragma_index_info(l.name) i \
                         WHERE l.\"unique\" AND i.name = 'info_hash'"
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(unique, 1, "{table}: no unique index on info_hash");
            // Ascending ids have ascending hashes.
            let unsorted: i64 = conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {table} a JOIN {table} b ON b.id = a.id + 1 \
                         WHERE b.info_hash <= a.info_hash"
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(unsorted, 0, "{table}: hashes not in id order");
        }
    }
}
