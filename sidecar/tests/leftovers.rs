//! Nothing but the published folder (and `latest`) may remain in the
//! backup folder after a backup, and `prune` sweeps what a killed process
//! left: its staging folder and its verify copy with the copy's SQLite
//! `-wal`/`-shm`. A verify copy of a process that is still running is kept.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn config(dir: &Path, db: &Path) -> std::path::PathBuf {
    let cfg = dir.join("sidecar.toml");
    std::fs::write(
        &cfg,
        format!(
            "backup_dir = \"{}\"\ncompression_level = 1\n[sqlite]\npath = \"{}\"\n",
            dir.join("backups").display(),
            db.display()
        ),
    )
    .unwrap();
    cfg
}

fn names(dir: &Path) -> Vec<String> {
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
    let cfg = config(dir.path(), &db);
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backups = dir.path().join("backups");
    let published = published(&backups);
    assert_eq!(published.len(), 1);
    let name = published[0].file_name().unwrap().to_string_lossy();
    assert_eq!(names(&backups), vec![name.to_string(), "latest".into()]);
    // `verify` of the published backup leaves nothing either.
    assert!(run(sidecar(Some(&cfg)).args(["verify", "latest"]))
        .status
        .success());
    assert_eq!(names(&backups), vec![name.to_string(), "latest".into()]);
}

#[test]
fn prune_sweeps_what_a_sidecar_killed_during_verify_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    padded_sqlite(&db, 4);
    let cfg = config(dir.path(), &db);
    let backups = dir.path().join("backups");

    let mut child = sidecar(Some(&cfg))
        .arg("once")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let verifying = loop {
        if names(&backups).iter().any(|n| n.starts_with(".verify-")) {
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
        names(&backups)
    );
    let left = names(&backups);
    assert!(
        left.iter().any(|n| n.starts_with(".verify-"))
            && left.iter().any(|n| n.starts_with(".staging-")),
        "{left:?}"
    );
    assert!(published(&backups).is_empty());

    // A verify copy owned by a live process (this test) stays.
    let live = format!(
        ".verify-{}-{}-Live01",
        maintenance_sidecar::staging::host_name(),
        std::process::id()
    );
    std::fs::write(backups.join(&live), b"in use").unwrap();

    let out = run(sidecar(Some(&cfg)).arg("prune"));
    assert!(out.status.success());
    assert_eq!(names(&backups), vec![live]);
}
