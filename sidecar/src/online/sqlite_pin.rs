//! The SQLite self-pin: the frozen main file of a live WAL database, taken
//! from outside, without the tracker's help.
//!
//! `PRAGMA wal_checkpoint(TRUNCATE)` moves every committed frame into the
//! main file and empties the `-wal`; a read transaction begun while the
//! `-wal` is still empty reads the main file alone, and while it is open no
//! checkpoint may write into the main file (SQLite's checkpointer needs the
//! lock such a reader holds). The tracker's commits go on into the `-wal`
//! meanwhile. Two things can go wrong, and both are handled here:
//!
//! * the tracker commits between the checkpoint and the read: then the read
//!   transaction would see WAL frames and a checkpoint could move them into
//!   the main file under the reader. The `-wal` is checked empty after the
//!   read transaction began; if not, the transaction ends and the pin is
//!   retried, within `BACKUP_SQLITE_PIN_TIMEOUT`;
//! * the checkpoint finds the tracker writing: it is retried with a short
//!   busy timeout each time (the tracker's writers wait at most that long),
//!   a pause between attempts lets them through.
//!
//! The pin records the main file's change counter (header bytes 24..28) and
//! size, and [`SelfPin::finish`] checks both again after the read: a
//! change abandons the backup. A watcher thread bounds the `-wal`'s growth
//! while pinned (`BACKUP_SQLITE_WAL_LIMIT_MIB`): past it the backup is
//! cancelled with that reason and the pin dropped, so the tracker's next
//! checkpoint can reuse the `-wal`. The read transaction is a plain SQLite
//! lock: a killed sidecar drops it with its process.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::base::cancel::CancelToken;
use crate::engine::sqlite::rollback_refusal;

/// How long one checkpoint attempt may wait for the tracker's writer; the
/// tracker's announces wait at most this long for the checkpoint.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(100);

/// How often the watcher looks at the `-wal`'s size.
const WAL_POLL: Duration = Duration::from_millis(100);

/// What the main file looks like at the pin, compared after the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// The header's file change counter.
    pub change_counter: u32,
    /// The file's length in bytes.
    pub size: u64,
}

impl FileStamp {
    /// Reads the stamp of the database file `db`.
    pub fn read(db: &Path) -> anyhow::Result<FileStamp> {
        let mut file = File::open(db).with_context(|| format!("open {}", db.display()))?;
        let size = file.metadata()?.len();
        let mut header = [0u8; 100];
        file.read_exact(&mut header)
            .with_context(|| format!("{}: shorter than a SQLite header", db.display()))?;
        Ok(FileStamp {
            change_counter: u32::from_be_bytes(header[24..28].try_into()?),
            size,
        })
    }
}

/// The path of `db`'s `-wal` file.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(wal_path(db))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A held pin: the read transaction on the main file alone, and the
/// watcher of the `-wal`'s growth.
pub struct SelfPin {
    conn: Option<Connection>,
    db: PathBuf,
    at_pin: FileStamp,
    pinned_at: Instant,
    watcher: Option<WalWatcher>,
}

impl std::fmt::Debug for SelfPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfPin")
            .field("db", &self.db)
            .field("at_pin", &self.at_pin)
            .finish()
    }
}

enum Attempt {
    Pinned,
    Retry(&'static str),
}

impl SelfPin {
    /// Checkpoints and pins `db`, retrying for up to `timeout`; then
    /// watches the `-wal`, cancelling `cancel` once it exceeds
    /// `wal_limit_bytes`.
    pub fn take(
        db: &Path,
        timeout: Duration,
        wal_limit_bytes: u64,
        cancel: CancelToken,
    ) -> anyhow::Result<SelfPin> {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| {
            format!(
                "open {} read-write to checkpoint and pin it (the online mode needs the database folder writable, as SQLite readers of a WAL database do)",
                db.display()
            )
        })?;
        conn.busy_timeout(CHECKPOINT_BUSY)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("{}", rollback_refusal(db, &mode));
        }
        let started = Instant::now();
        let deadline = started + timeout;
        let mut pause = Duration::from_millis(20);
        let mut attempts = 0u32;
        let mut last_reason: &str;
        loop {
            attempts += 1;
            match try_pin(&conn, db) {
                Ok(Attempt::Pinned) => break,
                Ok(Attempt::Retry(why)) => last_reason = why,
                Err(e) if is_busy(&e) => last_reason = "the checkpoint found the database busy",
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(e).with_context(|| format!("pin {}", db.display()));
                }
            }
            cancel.check()?;
            if Instant::now() >= deadline {
                bail!(
                    "could not pin {} within {} s ({attempts} attempts; last: {last_reason}): the tracker kept writing through every checkpoint; nothing was read and the tracker is untouched (raise BACKUP_SQLITE_PIN_TIMEOUT, or back up at a quieter hour)",
                    db.display(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        let at_pin = FileStamp::read(db)?;
        tracing::info!(
            db = %db.display(),
            attempts,
            pin_ms = started.elapsed().as_millis() as u64,
            size = at_pin.size,
            change_counter = at_pin.change_counter,
            "pinned: checkpointed, read transaction on the main file alone"
        );
        let watcher = WalWatcher::start(db.to_owned(), wal_limit_bytes, cancel);
        Ok(SelfPin {
            conn: Some(conn),
            db: db.to_owned(),
            at_pin,
            pinned_at: Instant::now(),
            watcher: Some(watcher),
        })
    }

    /// The main file's stamp at the pin.
    pub fn at_pin(&self) -> FileStamp {
        self.at_pin
    }

    /// After the last read: the main file must be as it was at the pin and
    /// the `-wal` within its limit; then the read transaction ends.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let peak = self.watcher.take().map(WalWatcher::stop).unwrap_or(0);
        let now = FileStamp::read(&self.db)?;
        let conn = self.conn.take();
        if let Some(c) = &conn {
            c.execute_batch("COMMIT")?;
        }
        drop(conn);
        anyhow::ensure!(
            now == self.at_pin,
            "the main file of {} changed while pinned (change counter {} -> {}, size {} -> {} bytes): something wrote into it past the pin, so the copy may be torn; the backup is abandoned",
            self.db.display(),
            self.at_pin.change_counter,
            now.change_counter,
            self.at_pin.size,
            now.size
        );
        tracing::info!(
            db = %self.db.display(),
            pinned_secs = self.pinned_at.elapsed().as_secs_f64(),
            wal_peak_bytes = peak,
            "unpinned: the main file was unchanged for the whole read"
        );
        Ok(())
    }
}

impl Drop for SelfPin {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
        if let Some(c) = self.conn.take() {
            let _ = c.execute_batch("ROLLBACK");
            tracing::info!(db = %self.db.display(), "pin dropped");
        }
    }
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<rusqlite::Error>()
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|c| matches!(c, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// One checkpoint and read-transaction attempt.
fn try_pin(conn: &Connection, db: &Path) -> anyhow::Result<Attempt> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Ok(Attempt::Retry(
            "the checkpoint could not finish (a writer or reader was busy)",
        ));
    }
    conn.execute_batch("BEGIN DEFERRED")?;
    // The first read fixes the transaction's snapshot.
    let read: rusqlite::Result<i64> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    if let Err(e) = read {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    // Still empty after the snapshot was fixed: no frame existed when it
    // was, so the transaction reads the main file alone.
    if wal_len(db) != 0 {
        conn.execute_batch("ROLLBACK")?;
        return Ok(Attempt::Retry(
            "the tracker committed between the checkpoint and the read",
        ));
    }
    Ok(Attempt::Pinned)
}

/// The thread that bounds the `-wal` while pinned.
struct WalWatcher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl WalWatcher {
    fn start(db: PathBuf, limit: u64, cancel: CancelToken) -> WalWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                let len = wal_len(&db);
                peak = peak.max(len);
                if len > limit {
                    let why = format!(
                        "the -wal of {} grew to {} MiB while pinned, past BACKUP_SQLITE_WAL_LIMIT_MIB = {} MiB; the pin is dropped so the tracker can checkpoint (raise the limit, or back up at a quieter hour)",
                        db.display(),
                        len >> 20,
                        limit >> 20
                    );
                    tracing::error!("{why}");
                    cancel.cancel_because(why);
                    break;
                }
                std::thread::sleep(WAL_POLL);
            }
            peak
        });
        WalWatcher { stop, handle }
    }

    /// Stops the watcher; the largest `-wal` it saw.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(dir: &Path) -> (PathBuf, Connection) {
        let db = dir.join("t.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        (db, c)
    }

    #[test]
    fn pinned_main_file_stays_frozen_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = wal_db(dir.path());
        let pin = SelfPin::take(&db, Duration::from_secs(5), 1 << 30, CancelToken::new()).unwrap();
        let before = std::fs::read(&db).unwrap();
        for i in 0..200 {
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        // A checkpoint by the writer cannot move frames past the pin.
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), before, "main file changed");
        assert!(wal_len(&db) > 0);
        pin.finish().unwrap();
        // Unpinned: the writer's checkpoint empties the WAL again.
        let busy: i64 = writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0);
        assert_eq!(wal_len(&db), 0);
    }

    #[test]
    fn wal_growth_past_the_limit_cancels_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = wal_db(dir.path());
        let cancel = CancelToken::new();
        let pin = SelfPin::take(&db, Duration::from_secs(5), 64 << 10, cancel.clone()).unwrap();
        let blob = vec![7u8; 16 << 10];
        for _ in 0..16 {
            writer
                .execute("INSERT INTO t VALUES (?1)", [&blob])
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cancel.is_cancelled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = cancel.check().unwrap_err().to_string();
        assert!(e.contains("BACKUP_SQLITE_WAL_LIMIT_MIB"), "{e}");
        drop(pin);
        let busy: i64 = writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "the dropped pin still blocks the checkpoint");
    }

    #[test]
    fn a_changed_main_file_abandons_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let (db, writer) = wal_db(dir.path());
        let pin = SelfPin::take(&db, Duration::from_secs(5), 1 << 30, CancelToken::new()).unwrap();
        // A writer that ignores the pin: the file grows behind SQLite's back.
        writer.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&db).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 4096]).unwrap();
        let e = pin.finish().unwrap_err().to_string();
        assert!(e.contains("changed while pinned"), "{e}");
    }

    #[test]
    fn rollback_journal_files_are_refused_with_the_conversion() {
        use crate::engine::sqlite::journal_mode;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t(x);")
            .unwrap();
        assert_eq!(journal_mode(&db).unwrap(), "delete");
        let e = SelfPin::take(&db, Duration::from_secs(1), 1 << 30, CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("maintenance-sidecar sqlite-wal"), "{e}");
    }
}
