//! An online backup reads the tracker's SQLite file from the disk no
//! faster than `BACKUP_ONLINE_READ_LIMIT_MIBPS` (default 64 MiB/s), so the
//! tracker's own reads and fsyncs are not queued behind it; `0` reads as
//! fast as the disk gives. The file is a real WAL-mode SQLite file on a
//! real disk (the target folder: a tmpfs has no disk reads to count),
//! dropped from the page cache before each backup.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

/// Writes `path` back and drops its pages from the page cache, so the
/// next read comes from the disk (no root needed).
fn drop_from_page_cache(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// One `once --online` of `db` from a cold cache, with `limit` set (or
/// not); returns the sidecar's stderr and how long it took.
fn online_backup(db: &Path, backups: &Path, limit: Option<&str>) -> (String, Duration) {
    drop_from_page_cache(db);
    let mut env = vec![
        ("BACKUP_DIR".to_owned(), backups.display().to_string()),
        ("SQLITE_DATABASE_PATH".to_owned(), db.display().to_string()),
    ];
    if let Some(limit) = limit {
        env.push((
            "BACKUP_ONLINE_READ_LIMIT_MIBPS".to_owned(),
            limit.to_owned(),
        ));
    }
    let started = Instant::now();
    let out = sidecar_output(&env, &["once", "--online"]);
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the online backup failed:\n{log}");
    (log, took)
}

#[test]
fn an_online_backup_reads_the_disk_no_faster_than_its_limit() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = dir.path().join("tracker.db");
    let backups = dir.path().join("backups");
    make_tracker_sqlite(&db, &[(info_hash(1, 1), 5)], 24 << 20);

    // 24 MiB at 8 MiB/s: three seconds at least, however fast the disk.
    let (log, took) = online_backup(&db, &backups, Some("8"));
    assert!(log.contains("online read paced at 8 MiB/s"), "{log}");
    assert!(
        took >= Duration::from_millis(2500),
        "24 MiB read at 8 MiB/s in {took:?}:\n{log}"
    );

    // Unset: the default pace.
    let (log, _) = online_backup(&db, &backups, None);
    assert!(log.contains("online read paced at 64 MiB/s"), "{log}");

    // 0: no pace at all.
    let (log, _) = online_backup(&db, &backups, Some("0"));
    assert!(!log.contains("online read paced"), "{log}");

    // Every one of them is a whole, verified backup.
    assert_eq!(published(&backups).len(), 3);
    let out = sidecar_output(
        &[("BACKUP_DIR".to_owned(), backups.display().to_string())],
        &["verify", "latest"],
    );
    assert!(out.status.success());
}

#[test]
fn a_bad_limit_is_named_with_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_tracker_sqlite(&db, &[(info_hash(1, 1), 5)], 0);
    let out = sidecar_output(
        &[
            (
                "BACKUP_DIR".to_owned(),
                dir.path().join("b").display().to_string(),
            ),
            ("SQLITE_DATABASE_PATH".to_owned(), db.display().to_string()),
            (
                "BACKUP_ONLINE_READ_LIMIT_MIBPS".to_owned(),
                "fast".to_owned(),
            ),
        ],
        &["once", "--online"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("BACKUP_ONLINE_READ_LIMIT_MIBPS") && err.contains("0 for no limit"),
        "{err}"
    );
    assert!(published(&dir.path().join("b")).is_empty());
}
