//! A maintenance window with encryption and an off-site copy, end to end:
//! the real tracker and sidecar, a real S3-compatible server (moto) on
//! loopback. The window completes with the upload in its report; then,
//! with the local backups gone, `restore --remote latest` with the identity
//! gives a fresh tracker the counts of the snapshot.

use std::time::Duration;

use maintenance_e2e::s3::S3Server;
use maintenance_e2e::*;

#[test]
fn window_uploads_encrypted_backup_and_remote_restore_gives_same_counts() {
    let dir = tempdir();
    let Some(s3) = S3Server::start(dir.path(), "offsite") else {
        return;
    };
    let tracker = Tracker::start(dir.path(), &TrackerConfig::sqlite(dir.path(), "reject"));
    let (a, b) = (info_hash(9, 1), info_hash(9, 2));
    complete_n(&tracker, &a, 1, 4);
    complete_n(&tracker, &b, 100, 2);
    assert_eq!(tracker.scrape_downloaded(&[a, b]), vec![4, 2]);

    let identity = dir.path().join("keys/identity.txt");
    std::fs::create_dir_all(identity.parent().unwrap()).unwrap();
    let out = sidecar_output(&[], &["keygen", "--out", identity.to_str().unwrap()]);
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let backups = dir.path().join("backups");
    let mut env = sidecar_env(&tracker, &backups);
    env.extend(s3.sidecar_env("nightly"));
    set_env(&mut env, "BACKUP_AGE_RECIPIENTS", &public);
    let sidecar = spawn_sidecar(dir.path(), "offsite", &env);
    let id = tracker.api().open_window(60);
    let outcome = tracker.wait_outcome(&id, Duration::from_secs(120));
    assert_eq!(
        outcome.outcome,
        Outcome::Completed,
        "{outcome:?}\n{}",
        sidecar.log_text()
    );
    let report = outcome.report.expect("report");
    let remote = report.remote.expect("the report carries the upload");
    assert!(remote.uploaded, "{remote:?}\n{}", sidecar.log_text());
    assert_eq!(remote.remote, format!("s3://{}/nightly", s3.bucket()));
    assert!(remote.bytes > report.artifacts[0].size_bytes);
    // The upload came after the release (the tracker was not kept paused).
    let log = sidecar.log_text();
    let released = log.find("released window").expect("release logged");
    let uploaded = log.find("upload finished").expect("upload logged");
    assert!(released < uploaded, "{log}");
    assert!(!log.contains(&s3.secret_access_key));
    // Writes after the window do not reach the backup.
    complete_n(&tracker, &a, 50, 3);

    std::fs::remove_dir_all(&backups).unwrap();
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let restored = fresh.join("tracker.db");
    let out = sidecar_output(
        &env,
        &[
            "restore",
            "--remote",
            "latest",
            "--to",
            restored.to_str().unwrap(),
            "--identity",
            identity.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let t2 = Tracker::start(&fresh, &TrackerConfig::sqlite(&fresh, "reject"));
    assert_eq!(t2.scrape_downloaded(&[a, b]), vec![4, 2]);
    assert_eq!(tracker.scrape_downloaded(&[a, b]), vec![7, 2]);
}
