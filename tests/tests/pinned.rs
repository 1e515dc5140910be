//! Pinned SQLite snapshots (protocol 2) with the real processes: the
//! tracker resumes at release while its pin keeps the main database file
//! frozen, the sidecar streams that file into the artifact and unpins after
//! the last byte. Checked here: the file's bytes do not change while pinned
//! under continuous writes, every write is in the database after the unpin,
//! the restored backup has exactly the counts acknowledged when the pin was
//! taken (both policies, WAL and rollback-journal mode), and a tracker or
//! sidecar killed in the middle of the read publishes nothing and leaves
//! the database checkpointed. The read, the `integrity_check` and the
//! digest proof run side by side: a corrupt page fails them all, and a
//! lost lease or a killed sidecar in the middle of them leaves no pass
//! running and nothing that `prune` does not sweep.
//!
//! The read is slowed down with the sidecar's test-only throttle
//! (`SIDECAR_TEST_READ_DELAY_MS_PER_MIB`), so "in the middle of the read"
//! is a wide, deterministic interval rather than a race.

use std::path::{Path, PathBuf};
use std::time::Duration;

use maintenance_e2e::*;

const THROTTLE_ENV: &str = "SIDECAR_TEST_READ_DELAY_MS_PER_MIB";
/// Size of the padding that makes the database worth reading slowly.
const PAD: u64 = 8 << 20;

fn wal_of(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(wal_of(db)).map(|m| m.len()).unwrap_or(0)
}

/// A tracker on a padded database (so the throttled read takes a while).
/// Ports are OS-assigned unless `fixed` (a restart needs the same ones).
fn start(dir: &Path, policy: &'static str, journal: Option<&'static str>, fixed: bool) -> Tracker {
    let db = dir.join("tracker.db");
    make_tracker_sqlite(&db, &[], PAD);
    let mut cfg = TrackerConfig::sqlite(dir, policy);
    if fixed {
        cfg = cfg.fixed_ports();
    }
    cfg.journal_mode = journal;
    Tracker::start(dir, &cfg)
}

/// Waits until the tracker resumed while keeping the pin of its window.
/// From the moment the status shows the release, announces flow (the
/// coordinator reopens them with the release, not later when its runner
/// gets to it), so the completions sent next must all be served.
fn wait_pinned_and_resumed(t: &Tracker) {
    wait_until(
        Duration::from_secs(30),
        "released with the pin kept",
        || t.status().pin.is_some_and(|p| p.kept_after_release),
    );
}

fn pinned_flow(policy: &'static str, journal: Option<&'static str>) {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("tracker.db");
    let t = start(d, policy, journal, false);
    let a = info_hash(9, 1);
    complete_n(&t, &a, 1, 6);
    let h = hex(&a);
    wait_until(Duration::from_secs(10), "counts persisted", || {
        sqlite_counts(&db).get(&h) == Some(&6)
    });

    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    // 8 MiB at 400 ms per MiB: about 3 s of reading under the pin.
    set_env(&mut env, THROTTLE_ENV, "400");
    let sidecar = spawn_sidecar(d, "pinned", &env);
    let id = t.api().open_window(120);
    wait_pinned_and_resumed(&t);
    let frozen = std::fs::read(&db).unwrap();

    // The tracker serves and writes while the file is read.
    complete_n(&t, &a, 100, 20);
    assert_eq!(t.scrape_downloaded(&[a]), vec![26]);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        t.status().pin.is_some(),
        "the read should still be running (throttled)\n{}",
        sidecar.log_text()
    );
    assert!(
        std::fs::read(&db).unwrap() == frozen,
        "the main file changed while pinned"
    );
    if journal == Some("delete") {
        // Rollback journal: writers wait for the unpin.
        assert_eq!(sqlite_counts(&db).get(&h), Some(&6), "written while pinned");
    } else {
        assert!(wal_len(&db) > 0, "the writes should be in the -wal file");
    }

    let o = t.wait_outcome(&id, Duration::from_secs(60));
    assert_eq!(
        o.outcome,
        Outcome::Completed,
        "{o:?}\n{}",
        sidecar.log_text()
    );
    // The unpin decided the pin's end; the runner drops it right after
    // (the status shows the pin until the hook has run).
    wait_until(Duration::from_secs(5), "pin dropped", || {
        t.status().pin.is_none()
    });
    let log = sidecar.log_text();
    assert!(log.contains("through the whole read; unpinned"), "{log}");
    let rel = log.find("released window").unwrap();
    let read = log.find("sqlite read under the pin").unwrap_or(usize::MAX);
    assert!(rel < read, "the release must come before the read:\n{log}");

    // Every write reaches the database after the unpin; the WAL is
    // checkpointed back into the main file.
    wait_until(
        Duration::from_secs(10),
        "writes persisted after unpin",
        || sqlite_counts(&db).get(&h) == Some(&26),
    );
    if journal != Some("delete") {
        wait_until(Duration::from_secs(10), "WAL checkpointed", || {
            wal_len(&db) == 0
        });
    }

    // The backup has exactly the counts acknowledged when the pin was taken.
    let backup = published(&backups).pop().expect("one backup");
    let m = manifest(&backup);
    let artifact = m["artifacts"][0]["path"].as_str().unwrap().to_owned();
    assert_eq!(m["content_checks"][&artifact], "integrity_check", "{m}");
    assert!(
        !backups.join(".staging").exists() && staging_dirs(&backups).is_empty(),
        "no raw copy or staging left"
    );
    let restored = d.join("restored.db");
    let out = sidecar_output(
        &env,
        &["restore", "latest", "--to", restored.to_str().unwrap()],
    );
    assert!(out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("header check ok (integrity_check skipped"),
        "the pinned source passed integrity_check at backup time, so a restore \
         needs only the header check:\n{said}"
    );
    assert!(
        log.contains("integrity_check of the pinned source: ok"),
        "the backup checked the frozen source:\n{log}"
    );
    assert_eq!(sqlite_counts(&restored).get(&h), Some(&6));
    assert_eq!(std::fs::read(&restored).unwrap().len(), frozen.len());
    let out = sidecar_output(&env, &["verify", "latest"]);
    assert!(
        out.status.success(),
        "verify (decompress + integrity_check)"
    );
}

#[test]
fn wal_reject_file_frozen_while_pinned_writes_after_unpin_restore_has_pinned_counts() {
    pinned_flow("reject", None);
}

#[test]
fn wal_defer_writes_file_frozen_while_pinned_writes_after_unpin_restore_has_pinned_counts() {
    pinned_flow("defer-writes", None);
}

#[test]
fn rollback_journal_writes_wait_for_the_unpin_and_restore_has_pinned_counts() {
    pinned_flow("defer-writes", Some("delete"));
}

#[test]
fn rollback_journal_reject_policy_also_backs_up_under_the_pin() {
    pinned_flow("reject", Some("delete"));
}

#[test]
fn tracker_killed_mid_read_then_restarted_and_written_publishes_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("tracker.db");
    let mut t = start(d, "reject", None, true);
    let a = info_hash(9, 2);
    complete_n(&t, &a, 1, 4);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    // 8 MiB at 1.5 s per MiB: the read lasts about 12 s.
    set_env(&mut env, THROTTLE_ENV, "1500");
    let sidecar = spawn_sidecar(d, "reader", &env);
    let id = t.api().open_window(120);
    wait_pinned_and_resumed(&t);
    let old_instance = t.status().instance_id;
    complete_n(&t, &a, 100, 10);
    std::thread::sleep(Duration::from_millis(300));
    t.proc.sigkill();

    // Restart on the same database and write heavily: opening the database
    // checkpoints the orphaned WAL into the main file under the reader.
    let t = t.restart();
    assert_ne!(t.status().instance_id, old_instance);
    for i in 0..20 {
        complete_n(&t, &info_hash(10, i), 1, 20);
    }
    let h = hex(&a);
    wait_until(
        Duration::from_secs(10),
        "writes of the restarted tracker",
        || sqlite_counts(&db).len() >= 21 && sqlite_counts(&db).get(&h) == Some(&14),
    );
    wait_until(
        Duration::from_secs(40),
        "sidecar gives the window up",
        || sidecar.log_text().contains("backup finished"),
    );
    let log = sidecar.log_text();
    assert!(
        log.contains("lease lost") || log.contains("pin was not held"),
        "the sidecar must abandon the read:\n{log}"
    );
    assert!(!log.contains("backup published"), "{log}");
    assert!(published(&backups).is_empty(), "{log}");
    // The new instance never completed the old window.
    assert!(!t
        .status()
        .last_outcomes
        .iter()
        .any(|o| o.window_id.as_str() == id && o.outcome == Outcome::Completed));
    let out = sidecar_output(&env, &["prune"]);
    assert!(out.status.success());
    assert_nothing_published(&backups);
}

#[test]
fn sidecar_killed_mid_read_lease_expires_pin_drops_wal_checkpointed() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("tracker.db");
    let t = start(d, "reject", None, false);
    let a = info_hash(9, 3);
    complete_n(&t, &a, 1, 5);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    set_env(&mut env, THROTTLE_ENV, "1500");
    let mut sidecar = spawn_sidecar(d, "killed", &env);
    let id = t.api().open_window(120);
    wait_pinned_and_resumed(&t);
    let frozen = std::fs::read(&db).unwrap();
    complete_n(&t, &a, 100, 15);
    let h = hex(&a);
    wait_until(Duration::from_secs(10), "writes in the WAL", || {
        wal_len(&db) > 0
    });
    assert!(std::fs::read(&db).unwrap() == frozen);
    sidecar.sigkill();

    // lease_ttl is 2 s: the lease expires, the window ends, the pin drops.
    let o = t.wait_outcome(&id, Duration::from_secs(15));
    assert_eq!(o.outcome, Outcome::Expired, "{o:?}");
    wait_until(Duration::from_secs(10), "pin dropped", || {
        t.status().pin.is_none()
    });
    wait_until(
        Duration::from_secs(10),
        "WAL checkpointed after the pin",
        || wal_len(&db) == 0 && sqlite_counts(&db).get(&h) == Some(&20),
    );
    assert!(std::fs::read(&db).unwrap() != frozen);
    assert!(published(&backups).is_empty());
    // Serving and persisting as usual.
    t.announce_ok(&a, 9000, "completed");
    wait_until(Duration::from_secs(10), "new write persisted", || {
        sqlite_counts(&db).get(&h) == Some(&21)
    });
}

/// Breaks the first page of the `padding` table (the tracker never reads
/// it, so it starts and serves as usual): a b-tree page starts with its
/// type, 2, 5, 10 or 13, and 0xFF is none of them.
fn corrupt_padding_root(db: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let conn = rusqlite::Connection::open(db).unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'padding'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(((root - 1) * page) as u64)).unwrap();
    f.write_all(&[0xFF]).unwrap();
    f.sync_all().unwrap();
}

/// The frozen source passes `integrity_check` before anything is
/// published (and a restore relies on that record): a database with a
/// corrupt page gives a failed window and no backup, and the tracker keeps
/// serving.
#[test]
fn a_corrupt_pinned_source_fails_its_check_and_nothing_is_published() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("tracker.db");
    make_tracker_sqlite(&db, &[], PAD);
    corrupt_padding_root(&db);
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "defer-writes"));
    let a = info_hash(9, 3);
    complete_n(&t, &a, 1, 3);
    let backups = d.join("backups");
    let env = sidecar_env(&t, &backups);
    let sidecar = spawn_sidecar(d, "corrupt", &env);
    let id = t.api().open_window(120);
    let out = t.wait_outcome(&id, Duration::from_secs(60));
    let log = sidecar.log_text();
    assert_eq!(out.outcome, Outcome::Failed, "{log}");
    assert!(
        log.contains("check the pinned source") && log.contains("integrity_check of"),
        "the failure names the check:\n{log}"
    );
    assert!(
        log.contains("pinned pass integrity_check: failed") && log.contains("stopping the others"),
        "the failed check stops the other passes:\n{log}"
    );
    assert!(!log.contains("backup published"), "{log}");
    assert!(published(&backups).is_empty(), "{log}");
    assert_nothing_published(&backups);
    complete_n(&t, &a, 2, 1);
}

/// The names of the sidecar's threads that run the passes over the pinned
/// file and its artifact (`/proc/<pid>/task/*/comm`).
fn pass_threads(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("pass-") || n == "artifact-write")
        .collect();
    names.sort();
    names
}

/// Waits until the read (its reading thread), the check and the digest
/// proof all run at once.
fn wait_passes_overlapping(sidecar: &Proc) {
    wait_until(
        Duration::from_secs(30),
        "the three passes running side by side",
        || {
            let running = pass_threads(sidecar.pid());
            ["pass-check", "pass-proof", "pass-read"]
                .iter()
                .all(|p| running.iter().any(|r| r == p))
        },
    );
}

/// A window whose pinned passes all run, slowed down (about 12 s of
/// reading, and the check alike).
struct Overlapping {
    t: Tracker,
    backups: PathBuf,
    env: Vec<(String, String)>,
    sidecar: Proc,
    id: String,
}

/// Starts a tracker and a sidecar in `d` and a window, and waits until its
/// three passes run side by side.
fn overlapping(d: &Path, name: &str) -> Overlapping {
    let t = start(d, "reject", None, false);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    set_env(&mut env, THROTTLE_ENV, "1500");
    let sidecar = spawn_sidecar(d, name, &env);
    let id = t.api().open_window(120);
    wait_pinned_and_resumed(&t);
    wait_passes_overlapping(&sidecar);
    Overlapping {
        t,
        backups,
        env,
        sidecar,
        id,
    }
}

/// Entries of a folder, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An operator abort ends the window while the read and the (slowed)
/// check both run: the sidecar's lease is lost, every pass stops (each
/// says so, and no pass thread is left), nothing is published or
/// unpinned, and the backup folder is empty again.
#[test]
fn a_lost_lease_during_the_overlapped_passes_stops_them_all_and_publishes_nothing() {
    let dir = tempdir();
    let Overlapping {
        t,
        backups,
        sidecar,
        id,
        ..
    } = overlapping(dir.path(), "lease");
    let (code, body) = t.api().post(
        "abort",
        serde_json::json!({"window_id": id, "reason": "test: lease lost mid-passes"}),
    );
    assert_eq!(code, 200, "{body}");
    wait_until(Duration::from_secs(30), "the backup gives up", || {
        sidecar.log_text().contains("backup finished")
    });
    let log = sidecar.log_text();
    assert!(log.contains("lease lost"), "{log}");
    for pass in ["read", "integrity_check", "digest proof"] {
        assert!(
            log.contains(&format!("pinned pass {pass}: stopped")),
            "the {pass} pass must stop when the lease is lost:\n{log}"
        );
    }
    assert!(
        pass_threads(sidecar.pid()).is_empty(),
        "pass threads outlived the backup: {:?}",
        pass_threads(sidecar.pid())
    );
    assert!(!log.contains("unpinned"), "{log}");
    assert!(!log.contains("backup published"), "{log}");
    assert_eq!(
        t.wait_outcome(&id, Duration::from_secs(10)).outcome,
        Outcome::Aborted
    );
    assert_nothing_published(&backups);
    assert!(
        entries(&backups).is_empty(),
        "left in the backup folder: {:?}",
        entries(&backups)
    );
}

/// A sidecar killed while the passes run leaves its staging folder (with
/// the partial artifact the proof was following) and nothing beside the
/// database (the check's connection is immutable: no `-shm`, no `-wal` of
/// its own); the next `prune` sweeps the folder, leaving the backup
/// folder empty.
#[test]
fn a_sidecar_killed_during_the_overlapped_passes_leaves_nothing_prune_does_not_sweep() {
    let dir = tempdir();
    let d = dir.path();
    let Overlapping {
        t,
        backups,
        env,
        mut sidecar,
        id,
    } = overlapping(d, "killed-passes");
    sidecar.sigkill();
    let left = entries(&backups);
    assert!(
        left.iter().any(|n| n.starts_with(".staging-")),
        "the kill should leave the partial work: {left:?}"
    );
    // Beside the database, only the tracker's own companions (SQLite's and
    // its completion journal with its lock file).
    let beside_db: Vec<String> = entries(d)
        .into_iter()
        .filter(|n| n.starts_with("tracker.db"))
        .collect();
    assert!(
        beside_db.iter().all(|n| [
            "tracker.db",
            "tracker.db-wal",
            "tracker.db-shm",
            "tracker.db.completions",
            "tracker.db.completions.lock"
        ]
        .contains(&n.as_str())),
        "files left beside the database: {beside_db:?}"
    );
    let out = sidecar_output(&env, &["prune"]);
    assert!(out.status.success());
    assert_nothing_published(&backups);
    assert!(
        entries(&backups).is_empty(),
        "prune left: {:?}",
        entries(&backups)
    );
    assert_eq!(
        t.wait_outcome(&id, Duration::from_secs(15)).outcome,
        Outcome::Expired
    );
}
