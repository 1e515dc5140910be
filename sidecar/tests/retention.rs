//! Retention through `prune`: ages from manifests (not mtimes), keep_last,
//! keep_days, the newest verified backup always kept, crashed staging swept,
//! `--dry-run` deletes nothing.

mod common;

use std::path::Path;

use chrono::{Duration, Utc};
use common::*;

fn fake_backup(root: &Path, name: &str, age_days: i64, verified: bool) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Utc::now() - Duration::days(age_days);
    let manifest = serde_json::json!({
        "format_version": 1,
        "name": name,
        "started_at": started,
        "finished_at": started,
        "window_id": null,
        "mode": "once",
        "sidecar_id": "test",
        "engines": ["sqlite"],
        "artifacts": [],
        "verified": verified,
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

fn prune(root: &Path, keep_days: u32, keep_last: u32, dry_run: bool) -> String {
    let mut cmd = sidecar(None);
    cmd.env("BACKUP_DIR", root)
        .env("BACKUP_RETENTION_DAYS", keep_days.to_string())
        .env("BACKUP_KEEP_LAST", keep_last.to_string())
        .arg("prune");
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = run(&mut cmd);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(root: &Path) -> Vec<String> {
    published(root)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn prune_keeps_last_and_recent_and_uses_manifest_times() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Names sort opposite to age, so an mtime- or name-based rule would
    // choose differently from the manifest-based one.
    fake_backup(root, "a-new", 1, true);
    fake_backup(root, "b", 2, true);
    fake_backup(root, "c", 3, true);
    fake_backup(root, "d", 6, true);
    fake_backup(root, "e-old", 10, true);
    fake_backup(root, "f-older", 30, true);
    std::fs::create_dir(root.join("not-a-backup")).unwrap();
    let host = maintenance_sidecar::base::temp::host_name();
    let crashed = root.join(format!(".staging-20260101T000000.000Z-{host}-999999999"));
    std::fs::create_dir(&crashed).unwrap();
    // Another host's staging folder, recent: it may still be running.
    let foreign = root.join(".staging-20260101T000000.000Z-otherhost-1");
    std::fs::create_dir(&foreign).unwrap();

    let plan = prune(root, 7, 3, true);
    assert!(plan.contains("would remove"), "{plan}");
    assert_eq!(names(root).len(), 7, "dry run deleted something");
    assert!(crashed.exists());

    prune(root, 7, 3, false);
    assert_eq!(names(root), vec!["a-new", "b", "c", "d", "not-a-backup"]);
    assert_eq!(
        staging_dirs(root),
        vec![foreign.clone()],
        "crashed staging not swept, or foreign one swept"
    );

    prune(root, 0, 2, false);
    assert_eq!(names(root), vec!["a-new", "b", "not-a-backup"]);
}

#[test]
fn newest_verified_backup_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_backup(root, "newest-unverified", 20, false);
    fake_backup(root, "verified", 40, true);
    fake_backup(root, "oldest", 50, true);
    prune(root, 7, 0, false);
    assert_eq!(names(root), vec!["verified"]);
}
