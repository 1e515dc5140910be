//! `maintenance-sidecar run` without a coordinator but with its own window
//! (`BACKUP_WINDOW`, on the coordinator's schedule code): it takes one
//! online backup when the window is open, and none outside it. The
//! database is a real SQLite file in WAL mode, written to meanwhile.

use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use maintenance_e2e::*;

/// `HH:MM-HH:MM` (UTC) from `from_min` to `to_min` minutes from now.
fn window(from_min: i64, to_min: i64) -> String {
    let at = |m: i64| {
        let t = Utc::now() + chrono::Duration::minutes(m);
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    format!("{}-{}", at(from_min), at(to_min))
}

fn env(db: &std::path::Path, backups: &std::path::Path, window: &str) -> Vec<(String, String)> {
    vec![
        ("BACKUP_DIR".into(), backups.display().to_string()),
        ("SQLITE_DATABASE_PATH".into(), db.display().to_string()),
        ("BACKUP_WINDOW".into(), window.into()),
        ("BACKUP_TIMEZONE".into(), "UTC".into()),
    ]
}

#[test]
fn run_backs_up_online_once_inside_its_own_window() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let backups = dir.path().join("backups");
    make_tracker_sqlite(&db, &[(info_hash(1, 1), 5)], 1 << 20);
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut sidecar = spawn_sidecar(dir.path(), "window", &env(&db, &backups, &window(-1, 3)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while published(&backups).is_empty() {
        // The tracker's writes go on meanwhile.
        writer
            .execute("UPDATE torrents SET completed = completed + 1", [])
            .unwrap();
        n += 1;
        assert!(
            sidecar.try_wait().is_none(),
            "sidecar exited:\n{}",
            sidecar.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "no backup in the open window:\n{}",
            sidecar.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // One backup per window: no second one follows.
    std::thread::sleep(Duration::from_secs(2));
    let all = published(&backups);
    assert_eq!(all.len(), 1, "{all:?}");
    let m = manifest(&all[0]);
    assert_eq!(m["mode"], "run");
    assert_eq!(m["consistency"], "online");
    assert_eq!(m["verified"], true);
    assert!(sidecar.log_text().contains("pinned: checkpointed"));
    assert!(n > 0);
    assert_eq!(sidecar.terminate(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn run_outside_its_window_waits_and_backs_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let backups = dir.path().join("backups");
    make_tracker_sqlite(&db, &[(info_hash(1, 1), 5)], 0);
    let mut sidecar = spawn_sidecar(dir.path(), "later", &env(&db, &backups, &window(120, 125)));
    std::thread::sleep(Duration::from_secs(3));
    assert!(sidecar.try_wait().is_none(), "{}", sidecar.log_text());
    assert!(published(&backups).is_empty());
    assert!(
        sidecar
            .log_text()
            .contains("online backups in the sidecar's own window"),
        "{}",
        sidecar.log_text()
    );
    assert_eq!(sidecar.terminate(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_bad_window_is_named_with_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_tracker_sqlite(&db, &[], 0);
    let out = sidecar_output(&env(&db, &dir.path().join("b"), "25:00-03:00"), &["run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BACKUP_WINDOW") && stderr.contains("HH:MM-HH:MM"),
        "{stderr}"
    );
}
