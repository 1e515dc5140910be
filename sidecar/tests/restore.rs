//! `restore` and `drill` through the real binary, on real SQLite files and
//! tarballs: nothing but the restored file remains, the replaced file's mode
//! and owner are kept, a failed restore (corrupted, truncated, unreadable or
//! mismatched artifact) changes nothing, a missing `--to` folder is refused
//! before any work (and, from a remote, before any download), a second
//! restore of the same target (a SQLite file, a files folder) is refused
//! while the first runs, a tar entry leaving the target or a special file
//! fails a files restore with nothing restored, the full integrity_check is
//! skipped only when the manifest records that it passed, and a drill
//! cleans up after itself.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use maintenance_proto::Artifact;
use maintenance_sidecar::compress::ArtifactWriter;
use maintenance_sidecar::config::Compression;
use maintenance_sidecar::manifest::Manifest;

/// A `once` backup of a 500-row database under `<dir>/backups`; returns
/// the config file.
fn backed_up(dir: &Path) -> PathBuf {
    let db = dir.join("tracker.db");
    make_sqlite(&db, 500);
    let cfg = sqlite_config(dir, &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    cfg
}

fn restore(cfg: &Path, to: &Path, extra: &[&str]) -> std::process::Output {
    run(sidecar(Some(cfg))
        .args(["restore", "latest"])
        .args(extra)
        .arg("--to")
        .arg(to))
}

#[test]
fn restore_into_an_empty_folder_leaves_only_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    let to = dir.path().join("empty");
    std::fs::create_dir(&to).unwrap();

    let out = restore(&cfg, &to, &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("header check ok"), "{stdout}");
    assert_eq!(names_in(&to), ["tracker.db"], "no -wal, -shm or temp file");
    assert_eq!(sqlite_rows(&to.join("tracker.db")).len(), 500);
}

#[test]
fn restore_over_a_file_keeps_its_mode_and_owner_and_removes_stale_companions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let target = live.join("tracker.db");
    make_sqlite(&target, 3);
    std::fs::write(live.join("tracker.db-wal"), b"stale").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let owned = std::os::unix::fs::chown(&target, Some(4242), Some(4343)).is_ok();

    let out = restore(&cfg, &target, &["--force", "--check", "full"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity_check ok"));
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644);
    if owned {
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    }
    assert_eq!(names_in(&live), ["tracker.db"]);
    assert_eq!(sqlite_rows(&target).len(), 500);
}

#[test]
fn a_new_file_takes_the_folder_owner() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    let folder = dir.path().join("data");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o750)).unwrap();
    if std::os::unix::fs::chown(&folder, Some(4242), Some(4343)).is_err() {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let target = folder.join("new.db");
    assert!(restore(&cfg, &target, &[]).status.success());
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!(names_in(&folder), ["new.db"]);
}

/// Backs up, damages the artifact with `damage`, then restores over a live
/// database with `--force`: the restore must fail with an error naming the
/// artifact and leave the live database and its `-wal` untouched. Returns
/// the error output.
fn damaged_restore_changes_nothing(damage: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    let backup = &published(&dir.path().join("backups"))[0];
    damage(&backup.join("sqlite-tracker.db.zst"));

    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let target = live.join("tracker.db");
    make_sqlite(&target, 3);
    std::fs::write(live.join("tracker.db-wal"), b"kept").unwrap();
    let before = std::fs::read(&target).unwrap();

    let out = restore(&cfg, &target, &["--force"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sqlite-tracker.db.zst"), "{stderr}");
    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert_eq!(std::fs::read(live.join("tracker.db-wal")).unwrap(), b"kept");
    assert_eq!(names_in(&live), ["tracker.db", "tracker.db-wal"]);
    stderr
}

#[test]
fn a_corrupted_artifact_changes_nothing() {
    damaged_restore_changes_nothing(|artifact| {
        let mut bytes = std::fs::read(artifact).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(artifact, bytes).unwrap();
    });
}

#[test]
fn an_artifact_that_decodes_but_differs_from_the_manifest_is_refused() {
    // A zstd skippable frame after the data: the decoder yields the same
    // database, only the size and SHA-256 check can notice.
    let stderr = damaged_restore_changes_nothing(|artifact| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(artifact)
            .unwrap();
        f.write_all(&0x184D_2A50u32.to_le_bytes()).unwrap();
        f.write_all(&4u32.to_le_bytes()).unwrap();
        f.write_all(b"junk").unwrap();
    });
    assert!(stderr.contains("differ from the manifest"), "{stderr}");
}

#[test]
fn a_truncated_artifact_changes_nothing() {
    damaged_restore_changes_nothing(|artifact| {
        let len = std::fs::metadata(artifact).unwrap().len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(artifact)
            .unwrap();
        f.set_len(len / 2).unwrap();
    });
}

#[test]
fn an_artifact_that_cannot_be_read_changes_nothing() {
    // A folder in the artifact's place: refused when it is opened, before
    // anything is read.
    let stderr = damaged_restore_changes_nothing(|artifact| {
        std::fs::remove_file(artifact).unwrap();
        std::fs::create_dir(artifact).unwrap();
    });
    assert!(
        stderr.contains("is a folder, not a regular file"),
        "{stderr}"
    );
}

/// A database that passes the header check and `quick_check` but fails
/// `integrity_check`: its index holds other values than its table.
fn index_mismatch_db(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a INTEGER, b INTEGER);
         CREATE INDEX t_a ON t (a);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO t SELECT i, i * 2 FROM n;
         PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET sql = 'CREATE INDEX t_a ON t (b)' WHERE name = 't_a';
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
}

/// A backup folder `<root>/<name>` holding `raw` compressed as the SQLite
/// artifact, with a manifest that records a passed integrity_check or not.
fn hand_made_backup(root: &Path, name: &str, raw: &[u8], engine: &str, checked: bool) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = if engine == "sqlite" {
        "sqlite-tracker.db.zst"
    } else {
        "files.tar.zst"
    };
    let mut w = ArtifactWriter::create(&dir.join(file), Compression::Zstd, None, None).unwrap();
    w.write_all(raw).unwrap();
    let written = w.finish().unwrap();
    let now = chrono::Utc::now();
    let mut content_checks = std::collections::BTreeMap::new();
    if checked {
        content_checks.insert(file.to_owned(), "integrity_check".to_owned());
    }
    Manifest {
        format_version: 1,
        name: name.to_owned(),
        started_at: now,
        finished_at: now,
        window_id: None,
        mode: "once".into(),
        sidecar_id: "test".into(),
        engines: vec![engine.to_owned()],
        artifacts: vec![Artifact {
            engine: engine.to_owned(),
            path: file.to_owned(),
            size_bytes: written.size_bytes,
            sha256: written.sha256,
        }],
        missing_paths: Vec::new(),
        verified: true,
        content_checks,
        tool_versions: Default::default(),
        durations_secs: Default::default(),
        encryption: None,
        participation: None,
        consistency: None,
    }
    .save(&dir)
    .unwrap();
    dir
}

#[test]
fn the_full_check_is_skipped_only_when_the_manifest_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let raw_db = dir.path().join("broken.db");
    index_mismatch_db(&raw_db);
    let raw = std::fs::read(&raw_db).unwrap();
    let root = dir.path().join("backups");
    let recorded = hand_made_backup(&root, "recorded", &raw, "sqlite", true);
    let unrecorded = hand_made_backup(&root, "unrecorded", &raw, "sqlite", false);
    let restore = |backup: &Path, to: &Path, extra: &[&str]| {
        run(sidecar(None)
            .env("BACKUP_DIR", &root)
            .arg("restore")
            .arg(backup)
            .args(extra)
            .arg("--to")
            .arg(to))
    };
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();

    // Recorded check, matching hash: the bytes are trusted (header check).
    let a = out_dir.join("a.db");
    assert!(restore(&recorded, &a, &[]).status.success());
    assert!(a.is_file());

    // --check full finds the damage and restores nothing.
    let b = out_dir.join("b.db");
    let out = restore(&recorded, &b, &["--check", "full"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrity_check"));

    // Without the record, the default falls back to the full check.
    let c = out_dir.join("c.db");
    let out = restore(&unrecorded, &c, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("integrity_check"));
    assert_eq!(names_in(&out_dir), ["a.db"]);

    // A drill always runs the full check, and cleans up either way.
    let out = run(sidecar(None)
        .env("BACKUP_DIR", &root)
        .arg("drill")
        .arg(&recorded));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(names_in(&root), ["recorded", "unrecorded"]);
}

#[test]
fn drill_restores_checks_reports_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    let root = dir.path().join("backups");
    let manifest = Manifest::load(&published(&root)[0]).unwrap();
    assert_eq!(
        manifest.content_checks.get("sqlite-tracker.db.zst"),
        Some(&"integrity_check".to_owned()),
        "a backup records the check its artifact passed"
    );
    let before = names_in(&root);

    let out = run(sidecar(Some(&cfg)).arg("drill"));
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("integrity_check ok") && stdout.contains("decompress"),
        "{stdout}"
    );
    let mut after = names_in(&root);
    after.retain(|n| n != ".last-drill.json");
    assert_eq!(after, before, "the drill left something behind");
    let record = maintenance_sidecar::ops::drill::last(&root).expect("drill record");
    assert_eq!(record.backup, manifest.name);
    assert!(record.restored_bytes > 0);

    // The metrics of a `run` process read the record.
    let metrics = maintenance_sidecar::metrics::get();
    maintenance_sidecar::cmd::run::seed_metrics(&root);
    let text = metrics.render();
    let ts = sample(&text, "maintenance_backup_last_drill_timestamp_seconds").unwrap();
    assert_eq!(ts, record.finished_at.timestamp_millis() as f64 / 1000.0);
}

#[test]
fn a_files_restore_that_fails_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, link: Option<&Path>, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("etc/ok.toml", tar::EntryType::Regular, None, b"a = 1\n");
    add("escape", tar::EntryType::Symlink, Some(&outside), b"");
    add("escape/planted", tar::EntryType::Regular, None, b"x");
    let raw = tar.into_inner().unwrap();
    let root = dir.path().join("backups");
    let backup = hand_made_backup(&root, "files", &raw, "files", false);

    let to = dir.path().join("restored");
    std::fs::create_dir(&to).unwrap();
    let out = run(sidecar(None)
        .env("BACKUP_DIR", &root)
        .arg("restore")
        .arg(&backup)
        .arg("--to")
        .arg(&to));
    assert_eq!(out.status.code(), Some(1));
    assert!(names_in(&to).is_empty(), "partial extraction left behind");
    assert!(names_in(&outside).is_empty(), "wrote outside the target");
}

/// `restore --to TARGET/` failed (exit 1) naming the missing folder.
fn assert_refused_missing_folder(out: &std::process::Output, log: &str, target: &str) {
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("--to {target}")) && log.contains("no such folder"),
        "the error should name the missing folder: {log}"
    );
}

#[test]
fn a_missing_target_folder_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = backed_up(dir.path());
    {
        let target = format!("{}/missing/", dir.path().display());
        let out = run(sidecar(Some(&cfg))
            .args(["restore", "latest", "--to"])
            .arg(&target));
        let log = text(&out);
        assert_refused_missing_folder(&out, &log, &target);
        assert!(
            !log.contains("decompress") && !log.contains("rename"),
            "it worked before checking the target: {log}"
        );
    }
    assert!(!dir.path().join("missing").exists());
    let debris: Vec<String> = names_in(dir.path())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
}

#[test]
fn a_missing_target_folder_is_refused_before_any_download() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("tracker.db");
    make_sqlite(&db, 50);
    let remote = d.join("remote");
    let cfg = sqlite_config(
        d,
        &db,
        &format!("[remote]\nurl = \"file://{}\"\n", remote.display()),
    );
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let backups = d.join("backups");
    let before = names_in(&backups);
    let name = published(&backups).remove(0);
    let name = name.file_name().unwrap();
    // The remote keeps the manifest but loses the artifact: a download
    // would fail on it, naming it.
    std::fs::remove_file(remote.join(name).join("sqlite-tracker.db.zst")).unwrap();
    let target = format!("{}/missing/", d.display());
    let out = run(sidecar(Some(&cfg))
        .args(["restore", "--remote", "latest", "--to"])
        .arg(&target));
    let log = text(&out);
    assert_refused_missing_folder(&out, &log, &target);
    assert!(
        !log.contains("sqlite-tracker.db.zst"),
        "it downloaded before checking the target: {log}"
    );
    assert!(!d.join("missing").exists());
    assert_eq!(names_in(&backups), before, "a temporary folder was left");
}

/// Waits until a `.restore-` temporary file exists in `folder`.
fn wait_for_restore_temp(folder: &Path, child: &mut std::process::Child) {
    let t = std::time::Instant::now();
    while !names_in(folder).iter().any(|n| n.starts_with(".restore-")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first restore ended before it could be caught in progress"
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

#[test]
fn a_second_restore_of_the_same_target_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 200_000);
    let cfg = sqlite_config(dir.path(), &db, "");
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());
    let first = published(&dir.path().join("backups")).remove(0);
    std::fs::remove_file(&db).unwrap();
    make_sqlite(&db, 7);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(run(sidecar(Some(&cfg)).arg("once")).status.success());

    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let target = live.join("tracker.db");
    let mut a = sidecar(Some(&cfg))
        .args(["restore", "--check", "full", "--to"])
        .arg(&target)
        .arg(&first)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_restore_temp(&live, &mut a);
    // Hold the first restore mid-way while the second one starts.
    unsafe { libc::kill(a.id() as i32, libc::SIGSTOP) };
    let b = run(sidecar(Some(&cfg))
        .args(["restore", "latest", "--to"])
        .arg(&target));
    unsafe { libc::kill(a.id() as i32, libc::SIGCONT) };
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", text(&a));
    let log = text(&b);
    assert_eq!(b.status.code(), Some(1), "both restores succeeded: {log}");
    assert!(log.contains("another restore into"), "{log}");
    assert_eq!(
        sqlite_rows(&target).len(),
        200_000,
        "the first restore's result was replaced"
    );
    assert_eq!(
        names_in(&live),
        ["tracker.db"],
        "a lock file or temp file was left"
    );
}

#[test]
fn a_second_files_restore_into_the_same_folder_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let tar_of = |files: &[(String, Vec<u8>)]| {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, path, &data[..]).unwrap();
        }
        tar.into_inner().unwrap()
    };
    let big: Vec<(String, Vec<u8>)> = (0..64u8)
        .map(|i| (format!("data/{i:02}.bin"), vec![i; 1 << 20]))
        .collect();
    let first = hand_made_backup(&root, "big", &tar_of(&big), "files", false);
    let other = [("other.toml".to_owned(), b"a = 1\n".to_vec())];
    let second = hand_made_backup(&root, "small", &tar_of(&other), "files", false);

    let live = dir.path().join("live");
    let target = live.join("etc");
    std::fs::create_dir_all(&target).unwrap();
    let restore = |backup: &Path| {
        let mut c = sidecar(None);
        c.env("BACKUP_DIR", &root)
            .arg("restore")
            .arg(backup)
            .arg("--to")
            .arg(&target);
        c
    };
    let mut a = restore(&first)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_restore_temp(&target, &mut a);
    // Hold the first restore mid-way while the second one starts.
    unsafe { libc::kill(a.id() as i32, libc::SIGSTOP) };
    let b = run(&mut restore(&second));
    unsafe { libc::kill(a.id() as i32, libc::SIGCONT) };
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", text(&a));
    let log = text(&b);
    assert_eq!(b.status.code(), Some(1), "both restores ran: {log}");
    assert!(
        log.contains(&format!("another restore into {}", target.display())),
        "{log}"
    );
    assert_eq!(names_in(&target), ["data"], "the second restore wrote");
    assert_eq!(names_in(&target.join("data")).len(), 64);
    assert_eq!(names_in(&live), ["etc"], "a lock file was left");
}

/// One tar entry: path, kind, data.
type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8]);

/// A files backup whose tar holds `entries`, written with raw headers so
/// that paths `tar::Builder` refuses can be made.
fn raw_tar_backup(root: &Path, entries: &[RawEntry]) -> PathBuf {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    hand_made_backup(root, "files", &tar.into_inner().unwrap(), "files", false)
}

#[test]
fn a_files_restore_refuses_dot_dot_entries_and_special_files() {
    use tar::EntryType::{Fifo, Regular};
    let cases: [(&[RawEntry], &str); 3] = [
        (
            &[
                ("ok.toml", Regular, b"a = 1\n"),
                ("../escaped", Regular, b"x"),
            ],
            "leaves the target folder",
        ),
        (
            &[
                ("ok.toml", Regular, b"a = 1\n"),
                ("/abs/escaped", Regular, b"x"),
            ],
            "leaves the target folder",
        ),
        (
            &[("ok.toml", Regular, b"a = 1\n"), ("pipe", Fifo, b"")],
            "a FIFO",
        ),
    ];
    for (entries, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups");
        let backup = raw_tar_backup(&root, entries);
        let to = dir.path().join("restored");
        std::fs::create_dir(&to).unwrap();
        let out = run(sidecar(None)
            .env("BACKUP_DIR", &root)
            .arg("restore")
            .arg(&backup)
            .arg("--to")
            .arg(&to));
        let log = text(&out);
        assert_eq!(out.status.code(), Some(1), "{entries:?} restored: {log}");
        assert!(
            log.contains(why) && log.contains("nothing was restored"),
            "{log}"
        );
        assert!(names_in(&to).is_empty(), "partial extraction left behind");
        assert!(!dir.path().join("escaped").exists());
    }
}
