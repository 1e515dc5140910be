//! The completion journal's mark per instance: tracker instances sharing one
//! MariaDB or PostgreSQL database each keep the mark of their own journal
//! generation, so an instance killed between a flush and the compaction
//! after it replays nothing the database already holds, whatever the other
//! instances flushed meanwhile. Also the move of the earlier one-row layout
//! (`tracker_journal`, row `id = 1`) on SQLite, MariaDB and PostgreSQL, with
//! two instances starting at once, and the start-up sweep of stale rows.
//!
//! The state "flushed but not compacted" is made with a real file-system
//! fault, not a hook: the journal is moved aside (the tracker keeps
//! appending to its open file) and a non-empty directory takes its name, so
//! the compaction's rename onto it fails (even for root) and the tracker
//! goes on with the flushed generation, as it does when compaction keeps
//! failing. The file is put back before the restart, as the crash left it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use maintenance_e2e::*;

/// One database on a test server, as the tests here need it.
enum Server {
    Sqlite(PathBuf),
    Maria(MariaDb),
    Pg(PgDb),
}

impl Server {
    fn maria() -> Option<Server> {
        Some(Server::Maria(maria()?.create_db("marks")))
    }

    fn pg() -> Option<Server> {
        Some(Server::Pg(postgres()?.create_db("marks")))
    }

    /// Runs SQL statements (`;`-separated) in the database; returns stdout.
    fn sql(&self, sql: &str) -> String {
        match self {
            Server::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                if sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
                    let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap();
                    n.to_string()
                } else {
                    conn.execute_batch(sql).unwrap();
                    String::new()
                }
            }
            Server::Maria(db) => db.maria.sql(&format!("USE `{}`; {sql}", db.name)),
            Server::Pg(db) => db.pg.sql_in(&db.name, sql),
        }
    }

    /// A single integer a `SELECT` returns.
    fn scalar(&self, sql: &str) -> i64 {
        let out = self.sql(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {out:?}: {e}"))
    }

    /// The completed count of `hash` in the database.
    fn completed(&self, hash: &[u8; 20]) -> Option<i64> {
        let key = hex(hash);
        match self {
            Server::Sqlite(db) => sqlite_counts(db).get(&key).copied(),
            Server::Maria(db) => db.maria.counts(&db.name).get(&key).copied(),
            Server::Pg(db) => db.pg.counts(&db.name).get(&key).copied(),
        }
    }

    /// A tracker config on this database, journaled in `dir`.
    fn config(&self, dir: &Path) -> TrackerConfig {
        let db = match self {
            Server::Sqlite(db) => Db::Sqlite(db.clone()),
            Server::Maria(db) => Db::Mysql(db.maria.url(&db.name)),
            Server::Pg(db) => Db::Postgres(db.pg.url(&db.name)),
        };
        TrackerConfig::with_db(dir, db, "reject")
    }

    /// The journal file of a tracker started with [`Server::config`].
    fn journal(&self, dir: &Path) -> PathBuf {
        match self {
            Server::Sqlite(db) => PathBuf::from(format!("{}.completions", db.display())),
            _ => self.config(dir).completion_journal,
        }
    }

    fn start(&self, dir: &Path) -> Tracker {
        let env = match self {
            Server::Sqlite(_) => vec![],
            Server::Maria(db) => db.maria.tracker_env(),
            Server::Pg(db) => db.pg.tracker_env(),
        };
        Tracker::start_with_env(dir, &self.config(dir), &env)
    }

    /// The `torrents` table and the earlier one-row `tracker_journal`, with
    /// the DDL the earlier versions used on this engine.
    fn create_legacy_schema(&self) {
        let id = match self {
            Server::Sqlite(_) => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Server::Maria(_) => "integer PRIMARY KEY AUTO_INCREMENT",
            Server::Pg(_) => "SERIAL PRIMARY KEY",
        };
        let text = match self {
            Server::Sqlite(_) => "TEXT",
            _ => "VARCHAR(40)",
        };
        self.sql(&format!(
            "CREATE TABLE torrents (
                id {id},
                info_hash {text} NOT NULL UNIQUE,
                completed INTEGER DEFAULT 0 NOT NULL
            );
            CREATE TABLE tracker_journal (
                id INTEGER PRIMARY KEY,
                generation BIGINT NOT NULL,
                applied_offset BIGINT NOT NULL
            )"
        ));
    }
}

/// The mark rows in the database.
fn mark_rows(s: &Server) -> i64 {
    s.scalar("SELECT COUNT(*) FROM tracker_journal_marks")
}

const HEADER: u64 = 16;
const RECORD: u64 = 24;

/// Writes a journal in the documented format: `RTJRNL01`, the generation,
/// then one record (info hash, little-endian count 1) per completion.
fn write_journal(path: &Path, generation: u64, completions: &[[u8; 20]]) {
    let mut bytes = b"RTJRNL01".to_vec();
    bytes.extend_from_slice(&generation.to_le_bytes());
    for hash in completions {
        bytes.extend_from_slice(hash);
        bytes.extend_from_slice(&1u32.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Makes the next compaction of the journal at `path` fail: the file moves
/// to `<path>.aside` (the tracker writes on through its open descriptor)
/// and a non-empty directory takes its name. Returns the aside path.
fn block_compaction(path: &Path) -> PathBuf {
    let aside = path.with_extension("aside");
    std::fs::rename(path, &aside).unwrap();
    std::fs::create_dir(path).unwrap();
    std::fs::write(path.join("keep"), b"").unwrap();
    aside
}

/// Undoes [`block_compaction`]: the journal is back under its name.
fn unblock_compaction(path: &Path, aside: &Path) {
    std::fs::remove_dir_all(path).unwrap();
    std::fs::rename(aside, path).unwrap();
}

fn wait_completed(s: &Server, hash: &[u8; 20], want: i64) {
    wait_until(
        Duration::from_secs(15),
        &format!("{want} completions in the database"),
        || s.completed(hash) == Some(want),
    );
}

/// Instance A flushes, instance B flushes after it, A dies before its
/// compaction: A's restart replays nothing, and the counts are exactly what
/// the two acknowledged.
fn two_instances_count_each_completion_once(s: Server) {
    let (da, db) = (tempdir(), tempdir());
    let h = info_hash(0x31, 1);
    let a = s.start(da.path());
    let b = s.start(db.path());

    let ja = s.journal(da.path());
    let aside = block_compaction(&ja);
    complete_n(&a, &h, 0, 7);
    wait_completed(&s, &h, 7);
    wait_until(Duration::from_secs(10), "A's failed compaction", || {
        a.proc
            .log_text()
            .contains("compacting the completion journal failed")
    });
    // A's flush is in the database, its journal still the flushed
    // generation, every record synced (within the 100 ms sync interval).
    wait_until(Duration::from_secs(5), "A's 7 journal records", || {
        std::fs::metadata(&aside).unwrap().len() == HEADER + 7 * RECORD
    });

    complete_n(&b, &h, 100, 4);
    wait_completed(&s, &h, 11);

    let mut a = a;
    a.proc.sigkill();
    unblock_compaction(&ja, &aside);
    let a = s.start(da.path());
    assert_eq!(a.scrape_downloaded(&[h]), vec![11], "A replayed its flush");
    // Past several flush intervals: a replay would have reached the database.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(s.completed(&h), Some(11));
    assert!(!a.proc.log_text().contains("replayed completions"));

    // One more completion on each, then clean stops: counted once, and no
    // mark row outlives its generation.
    complete_n(&a, &h, 200, 1);
    complete_n(&b, &h, 300, 1);
    wait_completed(&s, &h, 13);
    let (mut a, mut b) = (a, b);
    assert!(a.proc.terminate(Duration::from_secs(20)).success());
    assert!(b.proc.terminate(Duration::from_secs(20)).success());
    assert_eq!(s.completed(&h), Some(13));
    assert_eq!(mark_rows(&s), 0, "marks left after clean stops");
}

#[test]
fn mariadb_two_instances_killed_before_compaction_count_each_completion_once() {
    let Some(s) = Server::maria() else { return };
    two_instances_count_each_completion_once(s);
}

#[test]
fn postgres_two_instances_killed_before_compaction_count_each_completion_once() {
    let Some(s) = Server::pg() else { return };
    two_instances_count_each_completion_once(s);
}

/// A database of the earlier layout: `torrents` holds 3 completions of `h`
/// and `tracker_journal` the one mark, for generation `G` at 3 records.
/// Instance A's journal is that generation with 5 records (2 unapplied);
/// instance B's (another generation, no mark) holds 1 completion of `h2`.
/// Both start at once: each count lands once, the legacy row is gone.
/// Restarted, they count nothing again; a stale mark row is swept at start,
/// a recent one kept.
fn legacy_mark_moves_once(s: Server, two_instances: bool) {
    const G: u64 = 0x8123_4567_89ab_cdef; // the sign bit set: stored negative
    let (h, h2) = (info_hash(0x32, 1), info_hash(0x32, 2));
    s.create_legacy_schema();
    s.sql(&format!(
        "INSERT INTO torrents (info_hash, completed) VALUES ('{}', 3);
         INSERT INTO tracker_journal (id, generation, applied_offset) VALUES (1, {}, {})",
        hex(&h),
        G as i64,
        HEADER + 3 * RECORD
    ));
    let (da, db) = (tempdir(), tempdir());
    write_journal(&s.journal(da.path()), G, &[h; 5]);
    if two_instances {
        write_journal(&s.journal(db.path()), G ^ 1, &[h2]);
    }

    let (a, b) = std::thread::scope(|scope| {
        let b = two_instances.then(|| scope.spawn(|| s.start(db.path())));
        let a = s.start(da.path());
        (a, b.map(|b| b.join().unwrap()))
    });
    assert_eq!(a.scrape_downloaded(&[h]), vec![5]);
    wait_completed(&s, &h, 5);
    assert!(
        a.proc.log_text().contains("moved the journal mark")
            || b.as_ref()
                .is_some_and(|b| b.proc.log_text().contains("moved the journal mark"))
    );
    if b.is_some() {
        wait_completed(&s, &h2, 1);
    }
    assert_eq!(s.scalar("SELECT COUNT(*) FROM tracker_journal"), 0);

    // The sweep: rows untouched for 31 days go at the next start, 29 stay.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    s.sql(&format!(
        "INSERT INTO tracker_journal_marks (generation, applied_offset, updated_at)
         VALUES (11, 40, {}), (12, 40, {})",
        now - 31 * 86_400,
        now - 29 * 86_400
    ));
    let mut a = a;
    assert!(a.proc.terminate(Duration::from_secs(20)).success());
    let a = s.start(da.path());
    assert_eq!(
        s.sql("SELECT generation FROM tracker_journal_marks ORDER BY generation")
            .trim(),
        "12"
    );
    assert!(a
        .proc
        .log_text()
        .contains("deleted journal marks untouched"));
    assert_eq!(a.scrape_downloaded(&[h, h2]), vec![5, b.is_some() as i64]);
    let mut a = a;
    assert!(a.proc.terminate(Duration::from_secs(20)).success());
    if let Some(mut b) = b {
        assert!(b.proc.terminate(Duration::from_secs(20)).success());
        assert_eq!(s.completed(&h2), Some(1));
    }
    assert_eq!(s.completed(&h), Some(5));
}

#[test]
fn sqlite_legacy_mark_moves_once_and_stale_marks_are_swept() {
    let dir = tempdir();
    legacy_mark_moves_once(Server::Sqlite(dir.path().join("legacy.db")), false);
}

#[test]
fn mariadb_legacy_mark_moves_once_with_two_instances_starting_at_once() {
    let Some(s) = Server::maria() else { return };
    legacy_mark_moves_once(s, true);
}

#[test]
fn postgres_legacy_mark_moves_once_with_two_instances_starting_at_once() {
    let Some(s) = Server::pg() else { return };
    legacy_mark_moves_once(s, true);
}
