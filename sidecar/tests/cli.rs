//! Command-line behaviour: help, bad configuration, exit codes.

mod common;

use common::*;

#[test]
fn help_answers_and_lists_subcommands() {
    let out = run(sidecar(None).arg("--help"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "once",
        "verify",
        "restore",
        "list",
        "prune",
        "BACKUP_MODE",
        "Exit codes",
    ] {
        assert!(text.contains(word), "help lacks {word}: {text}");
    }
}

#[test]
fn bad_env_value_names_key_value_and_allowed() {
    let out = run(sidecar(None)
        .env("BACKUP_RETENTION_DAYS", "seven")
        .arg("list"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BACKUP_RETENTION_DAYS") && err.contains("seven") && err.contains("allowed"),
        "{err}"
    );
}

#[test]
fn unknown_config_key_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "keep_dayz = 3\n").unwrap();
    let out = run(sidecar(Some(&cfg)).arg("list"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep_dayz"));
}

#[test]
fn once_without_engine_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(sidecar(None).env("BACKUP_DIR", dir.path()).arg("once"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no engine"));
    // The same for `run`, and through BACKUP_MODE.
    let out = run(sidecar(None).env("BACKUP_DIR", dir.path()).arg("run"));
    assert_eq!(out.status.code(), Some(2));
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path())
        .env("BACKUP_MODE", "single"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn open_window_without_url_or_token_is_a_configuration_error() {
    let out = run(sidecar(None).arg("open-window"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAINTENANCE_URL"));
    let out = run(sidecar(None)
        .env("MAINTENANCE_URL", "http://127.0.0.1:9")
        .arg("open-window"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAINTENANCE_TOKEN"));
}

#[test]
fn backup_mode_single_without_subcommand_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    make_sqlite(&db, 4);
    let out = run(sidecar(None)
        .env("BACKUP_MODE", "single")
        .env("BACKUP_DIR", dir.path().join("b"))
        .env("SQLITE_DATABASE_PATH", &db));
    assert!(out.status.success());
    assert_eq!(published(&dir.path().join("b")).len(), 1);
}

#[test]
fn continuous_mode_without_coordinator_backs_up_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    make_sqlite(&db, 4);
    let mut child = sidecar(None)
        .env("BACKUP_MODE", "continuous")
        .env("BACKUP_INTERVAL", "1")
        .env("BACKUP_KEEP_LAST", "10")
        .env("BACKUP_DIR", dir.path().join("b"))
        .env("SQLITE_DATABASE_PATH", &db)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let n = published(&dir.path().join("b")).len();
    assert!(n >= 2, "expected a backup every second, got {n}");
}

#[test]
fn run_without_coordinator_or_interval_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    make_sqlite(&db, 1);
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path())
        .env("SQLITE_DATABASE_PATH", &db)
        .arg("run"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAINTENANCE_URL"));
}

#[test]
fn status_probe_exit_code_follows_the_newest_verified_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let backups = dir.path().join("backups");
    make_sqlite(&db, 3);
    let probe = |extra: &[&str]| {
        run(sidecar(None)
            .env("BACKUP_DIR", &backups)
            .env("SQLITE_DATABASE_PATH", &db)
            .args(["status", "--probe"])
            .args(extra))
    };
    // Nothing due yet: no backup, no coordinator that saw a window end.
    let out = probe(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("no backup yet"), "{}", text(&out));

    let once = run(sidecar(None)
        .env("BACKUP_DIR", &backups)
        .env("SQLITE_DATABASE_PATH", &db)
        .arg("once"));
    assert!(once.status.success());
    let out = probe(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("healthy: newest verified backup"),
        "{}",
        text(&out)
    );
    let out = probe(&["--max-age-hours", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no verified backup younger than 0 h"),
        "{}",
        text(&out)
    );

    // The age limit means nothing without --probe: a usage error.
    let out =
        run(sidecar(None)
            .env("BACKUP_DIR", &backups)
            .args(["status", "--max-age-hours", "3"]));
    assert_eq!(out.status.code(), Some(2));
}
