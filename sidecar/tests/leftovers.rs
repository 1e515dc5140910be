//! Nothing but the published folder (and `latest`) may remain in the
//! backup folder after a backup, and `prune` sweeps what a killed process
//! left: its staging folder and its verify copy with the copy's SQLite
//! `-wal`/`-shm`. A verify copy of a process that is still running is kept.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A WAL-mode tracker database padded to about `mib` MiB.
fn padded_sqlite(path: &Path, mib: u32) {
    make_sqlite(path, 100);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE pad (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
         INSERT INTO pad SELECT randomblob(65536) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);",
        mib * 16
    ))
    .unwrap();
}

#[test]
fn a_sqlite_backup_leaves_only_the_published_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 500);
    let cfg = sqlite_config(dir.path(), &db, "compression_level = 1");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backups = dir.path().join("backups");
    let published = published(&backups);
    assert_eq!(published.len(), 1);
    let name = published[0].file_name().unwrap().to_string_lossy();
    assert_eq!(names_in(&backups), vec![name.to_string(), "latest".into()]);
    // `verify` of the published backup leaves nothing either.
    assert!(run(sidecar(Some(&cfg)).args(["verify", "latest"]))
        .status
        .success());
    assert_eq!(names_in(&backups), vec![name.to_string(), "latest".into()]);
}

#[test]
fn prune_sweeps_what_a_sidecar_killed_during_verify_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    padded_sqlite(&db, 4);
    let cfg = sqlite_config(dir.path(), &db, "compression_level = 1");
    let backups = dir.path().join("backups");

    let mut child = sidecar(Some(&cfg))
        .arg("once")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let verifying = loop {
        if names_in(&backups).iter().any(|n| n.starts_with(".verify-")) {
            break true;
        }
        if t.elapsed() > Duration::from_secs(120) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        verifying,
        "never saw the verify copy: {:?}",
        names_in(&backups)
    );
    let left = names_in(&backups);
    assert!(
        left.iter().any(|n| n.starts_with(".verify-"))
            && left.iter().any(|n| n.starts_with(".staging-")),
        "{left:?}"
    );
    assert!(published(&backups).is_empty());

    // A verify copy owned by a live process (this test) stays.
    let live = format!(
        ".verify-{}-{}-Live01",
        maintenance_sidecar::base::temp::host_name(),
        std::process::id()
    );
    std::fs::write(backups.join(&live), b"in use").unwrap();

    let out = run(sidecar(Some(&cfg)).arg("prune"));
    assert!(out.status.success());
    assert_eq!(names_in(&backups), vec![live]);
}

/// Starts `restore latest --to <db> --force --check full` (of a database
/// large enough to take a while) and stops it (SIGSTOP) as soon as its
/// temporary file exists beside the target. Killed there, it leaves that
/// temporary file. (A FIFO in the artifact's place once held it; an
/// artifact is now refused unless it is a regular file.)
fn killed_restore(cfg: &Path, db: &Path) -> String {
    let folder = db.parent().unwrap();
    let mut child = sidecar(Some(cfg))
        .args(["restore", "latest", "--force", "--check", "full", "--to"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let temp = loop {
        if let Some(n) = names_in(folder)
            .into_iter()
            .find(|n| n.starts_with(".restore-"))
        {
            // SAFETY: a signal to the child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
            break n;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none(),
            "the restore never created its temporary file: {:?}",
            names_in(folder)
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    // Still running (stopped): prune keeps the file in use.
    let out = run(sidecar(Some(cfg)).arg("prune"));
    assert!(out.status.success());
    assert!(
        folder.join(&temp).exists(),
        "prune removed a live restore's file"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(folder.join(&temp).exists());
    temp
}

#[test]
fn a_killed_restore_s_temp_file_is_swept_by_prune_and_by_the_next_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("tracker.db");
    make_sqlite(&db, 200_000);
    let cfg = sqlite_config(dir.path(), &db, "compression_level = 1");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());

    // 1. prune knows the target (the configured database) and sweeps it.
    let temp = killed_restore(&cfg, &db);
    assert!(temp.ends_with("-tracker.db"), "{temp}");
    let out = run(sidecar(Some(&cfg)).args(["prune", "--dry-run"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&temp));
    assert!(data.join(&temp).exists());
    assert!(run(sidecar(Some(&cfg)).arg("prune")).status.success());
    let left = names_in(&data);
    assert!(!left.iter().any(|n| n.starts_with(".restore-")), "{left:?}");

    // 2. The next restore of the same target sweeps it first; a killed
    // restore's file for another database in the folder is not its own.
    killed_restore(&cfg, &db);
    let other = format!(
        ".restore-{}-4999999-AbC123-other.db",
        maintenance_sidecar::base::temp::host_name()
    );
    std::fs::write(data.join(&other), b"x").unwrap();
    let out = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--force", "--to"])
        .arg(&db));
    assert!(out.status.success());
    assert_eq!(names_in(&data), [other, "tracker.db".to_owned()]);
    assert_eq!(sqlite_rows(&db).len(), 200_000);
}
