//! `once`, `verify`, `restore` and `list` with real SQLite files, through
//! the real binary.

mod common;

use std::path::Path;

use common::*;

fn round_trip(compression: &str, ext: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 5000);
    let cfg = sqlite_config(dir.path(), &db, &format!("compression = \"{compression}\""));

    let out = run(sidecar(Some(&cfg)).arg("once"));
    assert!(out.status.success());
    let backups = published(&dir.path().join("backups"));
    assert_eq!(backups.len(), 1);
    let name = backups[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.ends_with("-once"), "{name}");
    assert!(backups[0]
        .join(format!("sqlite-tracker.db.{ext}"))
        .is_file());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(backups[0].join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["verified"], true);
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["artifacts"][0]["engine"], "sqlite");
    assert_eq!(
        std::fs::read_link(dir.path().join("backups/latest")).unwrap(),
        Path::new(&name)
    );

    let out = run(sidecar(Some(&cfg)).args(["verify", "latest"]));
    assert!(out.status.success());

    let restored = dir.path().join("restored.db");
    let out = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(&restored));
    assert!(out.status.success());
    assert_eq!(sqlite_rows(&restored), sqlite_rows(&db));
    assert_eq!(sqlite_rows(&restored).len(), 5000);
}

#[test]
fn sqlite_backup_restore_gives_same_rows_zstd() {
    round_trip("zstd", "zst");
}

#[test]
fn sqlite_backup_restore_gives_same_rows_gzip() {
    round_trip("gzip", "gz");
}

#[test]
fn sqlite_with_unchecked_wal_uses_backup_api_and_keeps_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 10);
    // A second connection commits into the WAL and is kept open so the WAL
    // is not checkpointed into the main file.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; INSERT INTO torrents VALUES ('late', 99);")
        .unwrap();
    let cfg = sqlite_config(dir.path(), &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    drop(conn);
    let restored = dir.path().join("restored.db");
    assert!(run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(&restored))
    .status
    .success());
    let rows = sqlite_rows(&restored);
    assert_eq!(rows.len(), 11);
    assert!(rows.contains(&("late".into(), 99)));
}

#[test]
fn restore_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 3);
    let cfg = sqlite_config(dir.path(), &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());

    let target = dir.path().join("live.db");
    make_sqlite(&target, 1);
    let before = std::fs::read(&target).unwrap();
    let out = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(&target));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(&target).unwrap(), before, "target changed");

    let out = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--force", "--to"])
        .arg(&target));
    assert!(out.status.success());
    assert_eq!(sqlite_rows(&target).len(), 3);
}

#[test]
fn verify_detects_a_corrupted_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 2000);
    let cfg = sqlite_config(dir.path(), &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backup = &published(&dir.path().join("backups"))[0];
    let artifact = backup.join("sqlite-tracker.db.zst");
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();

    let out = run(sidecar(Some(&cfg)).args(["verify"]).arg(backup));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAILED") && stdout.contains("sha256"),
        "{stdout}"
    );

    // A restore of the corrupted artifact is refused too.
    let out = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(dir.path().join("x.db")));
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn list_shows_backups_with_status() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 1);
    let cfg = sqlite_config(dir.path(), &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let out = run(sidecar(Some(&cfg)).arg("list"));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NAME") && stdout.contains("verified (latest)"),
        "{stdout}"
    );
}

#[test]
fn missing_database_fails_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("absent.db");
    let cfg = sqlite_config(dir.path(), &db, "");
    let out = run(sidecar(Some(&cfg)).arg("once"));
    assert_eq!(out.status.code(), Some(1));
    assert_nothing_published(&dir.path().join("backups"));
}

#[test]
fn files_engine_archives_listed_paths_and_reports_missing() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("sub")).unwrap();
    std::fs::write(etc.join("tracker.toml"), "a = 1\n").unwrap();
    std::fs::write(etc.join("sub/x"), "x").unwrap();
    let paths = dir.path().join("paths.txt");
    std::fs::write(
        &paths,
        format!(
            "# config\n\n{}\n{}\n",
            etc.display(),
            dir.path().join("nope").display()
        ),
    )
    .unwrap();
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("backups"))
        .env("BACKUP_PATHS_FILE", &paths)
        .arg("once"));
    assert!(out.status.success());
    let backup = &published(&dir.path().join("backups"))[0];
    let manifest = std::fs::read_to_string(backup.join("manifest.json")).unwrap();
    assert!(manifest.contains("nope"), "{manifest}");
    let to = dir.path().join("restored");
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("backups"))
        .args(["restore", "latest", "--to"])
        .arg(&to));
    assert!(out.status.success());
    let rel = etc.strip_prefix("/").unwrap();
    assert_eq!(
        std::fs::read_to_string(to.join(rel).join("tracker.toml")).unwrap(),
        "a = 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(to.join(rel).join("sub/x")).unwrap(),
        "x"
    );
}

#[test]
fn two_backups_in_the_same_second_both_publish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 3);
    let cfg = sqlite_config(dir.path(), &db, "keep_last = 10");
    for _ in 0..3 {
        assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    }
    assert_eq!(published(&dir.path().join("backups")).len(), 3);
}

/// The original compose file mounts the tracker's data volume read-only.
#[test]
fn database_on_a_read_only_mount_is_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    make_sqlite(&data.join("tracker.db"), 50);
    let sh = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let (data_s, ro_s) = (data.to_str().unwrap(), ro.to_str().unwrap());
    if !sh(&["--bind", data_s, ro_s]) {
        assert!(std::env::var_os("CI").is_none(), "bind mount failed in CI");
        eprintln!("skipped: cannot bind-mount here");
        return;
    }
    let remounted = sh(&["-o", "remount,bind,ro", ro_s]);
    let cfg = sqlite_config(dir.path(), &ro.join("tracker.db"), "");
    let out = run(sidecar(Some(&cfg)).arg("once"));
    let _ = std::process::Command::new("umount").arg(&ro).status();
    assert!(remounted, "remount read-only failed");
    assert!(out.status.success());
    // Expected every night in the compose stack: explained, not a warning.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("as expected on a read-only mount"), "{log}");
    assert!(
        !log.contains("WARN"),
        "a read-only mount must not warn: {log}"
    );
    let restored = dir.path().join("restored.db");
    assert!(run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(&restored))
    .status
    .success());
    assert_eq!(sqlite_rows(&restored).len(), 50);
}

#[test]
fn a_missing_paths_file_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 3);
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("backups"))
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_PATHS_FILE", dir.path().join("no-such-paths.txt"))
        .arg("once"));
    assert!(out.status.success());
    let backup = &published(&dir.path().join("backups"))[0];
    let manifest = std::fs::read_to_string(backup.join("manifest.json")).unwrap();
    assert!(manifest.contains("no-such-paths.txt"), "{manifest}");
    assert!(run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("backups"))
        .args(["verify", "latest"]))
    .status
    .success());
}

/// The default number of zstd workers follows the cores the process may
/// use: under `taskset` to one CPU it is one, whatever the host has;
/// `BACKUP_ZSTD_WORKERS` overrides it. The artifact restores either way.
#[test]
fn zstd_workers_follow_the_affinity_mask_unless_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 2000);
    let cfg = sqlite_config(dir.path(), &db, "");
    let sidecar_cmd = sidecar(Some(&cfg));
    let mut pinned = std::process::Command::new("taskset");
    pinned
        .args(["-c", "0"])
        .arg(sidecar_cmd.get_program())
        .args(sidecar_cmd.get_args())
        .arg("once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    let out = run(&mut pinned);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        zstd_workers_line(&out).starts_with("zstd workers: 1 (1 cores usable"),
        "{}",
        zstd_workers_line(&out)
    );
    let out = run(sidecar(Some(&cfg))
        .env("BACKUP_ZSTD_WORKERS", "3")
        .arg("once"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        zstd_workers_line(&out).starts_with("zstd workers: 3 (BACKUP_ZSTD_WORKERS"),
        "{}",
        zstd_workers_line(&out)
    );
    let restored = dir.path().join("restored.db");
    let out =
        run(sidecar(Some(&cfg)).args(["restore", "latest", "--to", restored.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sqlite_rows(&restored), sqlite_rows(&db));
}

/// The sidecar's `zstd workers: …` log line, from that text on.
fn zstd_workers_line(out: &std::process::Output) -> String {
    let text = text(out);
    text.lines()
        .find(|l| l.contains("zstd workers: "))
        .map(|l| l[l.find("zstd workers: ").unwrap()..].to_owned())
        .unwrap_or_else(|| panic!("no zstd workers line in:\n{text}"))
}

/// A CPU cgroup made for one test process: a quota of `cpus` CPUs, removed
/// on drop. `None` where no CPU controller can be written (not root, no
/// cgroupfs).
struct CpuQuota(std::path::PathBuf);

impl CpuQuota {
    fn new(cpus: u32) -> Option<CpuQuota> {
        let name = format!("sidecar-test-{}", std::process::id());
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
        let (dir, file, value) = if v2 {
            let dir = std::path::Path::new("/sys/fs/cgroup").join(&name);
            (dir, "cpu.max", format!("{} 100000", cpus * 100_000))
        } else {
            let dir = std::path::Path::new("/sys/fs/cgroup/cpu").join(&name);
            (dir, "cpu.cfs_quota_us", (cpus * 100_000).to_string())
        };
        std::fs::create_dir(&dir).ok()?;
        let quota = CpuQuota(dir);
        if !v2 {
            std::fs::write(quota.0.join("cpu.cfs_period_us"), "100000").ok()?;
        }
        std::fs::write(quota.0.join(file), value).ok()?;
        Some(quota)
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The zstd workers' default follows a container's CPU quota (a cgroup's
/// `cpu.max`, or `cpu.cfs_quota_us` under cgroup v1), not only the
/// affinity mask: a sidecar limited to one CPU on a bigger host compresses
/// on one worker. Needs a writable CPU controller (root); says SKIPPED
/// without one.
#[test]
fn zstd_workers_follow_a_cgroup_cpu_quota() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(quota) = CpuQuota::new(1) else {
        eprintln!("SKIPPED: no writable CPU cgroup controller here (needs root)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 2000);
    let cfg = sqlite_config(dir.path(), &db, "");
    let sidecar_cmd = sidecar(Some(&cfg));
    // The shell moves itself into the cgroup, then becomes the sidecar.
    let out = run(std::process::Command::new("sh")
        .arg("-c")
        .arg("echo $$ > \"$1/cgroup.procs\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&quota.0)
        .arg(sidecar_cmd.get_program())
        .args(sidecar_cmd.get_args())
        .arg("once")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        zstd_workers_line(&out).starts_with("zstd workers: 1 (1 cores usable"),
        "under a one-CPU quota on a {cores}-core host: {}",
        zstd_workers_line(&out)
    );
}
