//! Online backups of a tracker that does not embed the coordinator, against
//! the real, unmodified Torrust tracker 3.0.0 (built from crates.io by
//! `scripts/build-torrust-tracker.sh`, path in `TORRUST_TRACKER_BIN`; run
//! as a separate process only). Skipped when the variable is unset, except
//! under `CI`, where that is an error.
//!
//! Checked: a rollback-journal file is refused with the conversion advice,
//! `sqlite-wal` converts it and the next online backup works; under a paced
//! load of started+completed announces (and a libtorrent seeder and
//! leecher) online backups run while Torrust never stops, no announce fails,
//! no database write is lost, its log shows no locked/busy error, the
//! backup verifies, holds exactly what was committed at the pin (marker
//! rows before and after, per-torrent counts between what was acknowledged
//! before the backup started and what was sent before the pin), and Torrust
//! starts on the restored file and serves; a sidecar killed mid-read drops
//! its pin with its process and Torrust's own checkpoint writes into the
//! main file again; a WAL limit hit mid-read abandons the backup and
//! Torrust is unaffected; MariaDB with a MyISAM table is refused and all
//! InnoDB passes under load.
//!
//! Two quirks of Torrust 3.0.0 shape these tests: it ignores SIGTERM
//! (SIGINT stops it), and it does not load the persisted completed counts
//! when it starts, so restored counts are read from the file itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use maintenance_e2e::torrust::*;
use maintenance_e2e::*;

const THROTTLE_ENV: &str = "SIDECAR_TEST_READ_DELAY_MS_PER_MIB";

fn open_writer(db: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn marker(db: &Path, name: &str) {
    open_writer(db)
        .execute(
            "INSERT INTO torrents (info_hash, completed) VALUES (?1, 1)",
            [name],
        )
        .unwrap();
}

/// Starts `once --online` in the background; its log in `dir/name.log`.
fn spawn_once_online(dir: &Path, name: &str, env: &[(String, String)]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&log).unwrap();
    let child = sidecar_cmd(env)
        .args(["once", "--online"])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    Proc::from_child(child, log, name.to_owned())
}

fn wait_log(p: &mut Proc, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !p.log_text().contains(needle) {
        let exited = p.try_wait().is_some();
        assert!(
            !exited || p.log_text().contains(needle),
            "{} exited before {needle:?}:\n{}",
            p.name,
            p.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}:\n{}",
            p.name,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_exit(p: &mut Proc, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = p.try_wait() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not finish:\n{}",
            p.name,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A WAL database in Torrust's schema, padded so a throttled read lasts.
fn padded_wal_db(dir: &Path, pad_mib: u64) -> PathBuf {
    let db = dir.join("tracker.db");
    make_tracker_sqlite(&db, &[], pad_mib << 20);
    db
}

/// A libtorrent seeder and leecher meeting through the tracker, when the
/// Python binding is installed (it is in CI).
fn spawn_libtorrent(http: SocketAddr) -> Option<std::thread::JoinHandle<std::process::Output>> {
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import libtorrent"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../reference-tracker/scripts/libtorrent_smoke.py"
    );
    let url = format!("http://{http}");
    Some(std::thread::spawn(move || {
        Command::new(python).arg(script).arg(url).output().unwrap()
    }))
}

#[test]
fn rollback_journal_file_is_refused_then_converted_and_backed_up_online() {
    let Some(bin) = torrust_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let db = dir.path().join("tracker.db");
    let t = Torrust::start(
        &bin,
        dir.path(),
        "rollback",
        "sqlite3",
        &db.display().to_string(),
    );
    for peer in 1..=3 {
        t.announce(&torrent(0), peer, "started").unwrap();
        t.announce(&torrent(0), peer, "completed").unwrap();
    }
    assert_eq!(journal_mode(&db), "delete", "Torrust 3.0.0's own default");
    let env = online_env(&db, &backups);
    let out = sidecar_output(&env, &["once", "--online"]);
    assert_eq!(out.status.code(), Some(4), "refusal exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rollback-journal mode"), "{stderr}");
    assert!(
        stderr.contains("maintenance-sidecar sqlite-wal"),
        "{stderr}"
    );
    assert_nothing_published(&backups);
    assert_eq!(journal_mode(&db), "delete", "the refusal changed nothing");

    // The one-time step, with the tracker stopped.
    t.stop();
    let out = sidecar_output(&env, &["sqlite-wal", &db.display().to_string()]);
    assert!(out.status.success());
    assert_eq!(journal_mode(&db), "wal");
    assert_eq!(file_counts(&db)[0], 3, "the conversion kept the rows");

    let mut t = Torrust::start(
        &bin,
        dir.path(),
        "wal",
        "sqlite3",
        &db.display().to_string(),
    );
    t.announce(&torrent(1), 9, "started").unwrap();
    let out = sidecar_output(&env, &["once", "--online"]);
    assert!(out.status.success(), "online backup after the conversion");
    // An online backup yields to the tracker: idle I/O class, one worker.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("online backup in the idle I/O class"), "{log}");
    assert!(
        log.contains("zstd workers: 1 (an online backup leaves the other cores"),
        "{log}"
    );
    let backup = published(&backups).pop().unwrap();
    assert_eq!(manifest(&backup)["consistency"], "online");
    assert!(sidecar_output(&env, &["verify", "latest"]).status.success());
    assert!(t.running());
    t.assert_no_database_errors();
    t.stop();
}

#[test]
fn online_backups_under_load_never_stop_torrust_and_hold_the_pinned_state() {
    let Some(bin) = torrust_bin() else { return };
    let mut l = loaded(&bin, "load", Duration::from_millis(5), 100);
    let libtorrent = spawn_libtorrent(l.t.http);
    let (db, backups, env) = (l.db.clone(), l.backups.clone(), l.env.clone());
    let dir_path = l.dir.path().to_owned();

    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(500));
        marker(&db, &format!("marker-before-{round}"));
        let started = Instant::now();
        let mut sidecar = spawn_once_online(&dir_path, &format!("online-{round}"), &env);
        wait_log(
            &mut sidecar,
            "pinned: checkpointed",
            Duration::from_secs(30),
        );
        let pinned_seen = Instant::now();
        marker(&db, &format!("marker-after-{round}"));
        let status = wait_exit(&mut sidecar, Duration::from_secs(120));
        assert!(
            status.success(),
            "online backup {round} failed:\n{}",
            sidecar.log_text()
        );
        assert!(l.t.running(), "Torrust stopped during backup {round}");

        let backup = published(&backups).pop().unwrap();
        let m = manifest(&backup);
        assert_eq!(m["consistency"], "online");
        assert_eq!(m["verified"], true);
        assert!(sidecar_output(&env, &["verify", backup.to_str().unwrap()])
            .status
            .success());
        let restored = dir_path.join(format!("restored-{round}.db"));
        assert!(sidecar_output(
            &env,
            &[
                "restore",
                backup.to_str().unwrap(),
                "--to",
                restored.to_str().unwrap()
            ]
        )
        .status
        .success());
        let rows = sqlite_counts(&restored);
        assert!(
            rows.contains_key(&format!("marker-before-{round}")),
            "marker before the pin is missing"
        );
        assert!(
            !rows.contains_key(&format!("marker-after-{round}")),
            "marker after the pin is in the backup"
        );
        // What was acknowledged before the backup started is in; what was
        // sent after the pin was seen is not.
        let done = l.load.completions();
        let lower = counts_where(&done, |c| c.answered < started);
        let upper = counts_where(&done, |c| c.sent < pinned_seen);
        let got = file_counts(&restored);
        for i in 0..TORRENTS {
            assert!(
                lower[i] <= got[i] && got[i] <= upper[i],
                "torrent {i}: {} in the backup, outside [{}, {}] (acknowledged before the start, sent before the pin)",
                got[i],
                lower[i],
                upper[i]
            );
        }
        assert!(
            lower.iter().sum::<i64>() > 0,
            "the load made no completion before the backup"
        );
    }

    if let Some(h) = libtorrent {
        // The seeder and the leecher found each other through Torrust's
        // announces during the backups. (Whether Torrust's scrape then
        // counts the completion under the v1 hash of libtorrent 2's hybrid
        // torrent varies from run to run; that is Torrust's counting, not
        // the backup's business, so only the transfer is required here.)
        let out = h.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("leecher downloaded the payload through peers from the tracker"),
            "libtorrent against Torrust failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _dir = l.finish_unaffected();

    // Torrust starts on the restored file and serves (it does not load the
    // counts: those were checked in the file).
    let restored = dir_path.join("restored-1.db");
    let mut r = Torrust::start(
        &bin,
        &dir_path,
        "restored",
        "sqlite3",
        &restored.display().to_string(),
    );
    r.announce(&torrent(0), 1, "started").unwrap();
    assert!(r.running());
    r.stop();
}

/// Torrust on a padded WAL file under a paced load, and the environment
/// of an online sidecar for it whose read is throttled to `throttle_ms`
/// per MiB.
struct Loaded {
    dir: tempfile::TempDir,
    backups: PathBuf,
    db: PathBuf,
    t: Torrust,
    load: Load,
    env: Vec<(String, String)>,
}

fn loaded(bin: &Path, name: &str, pace: Duration, throttle_ms: u32) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let db = padded_wal_db(dir.path(), 16);
    let t = Torrust::start(bin, dir.path(), name, "sqlite3", &db.display().to_string());
    let load = Load::start(t.http, pace);
    let mut env = online_env(&db, &backups);
    env.push((THROTTLE_ENV.into(), throttle_ms.to_string()));
    Loaded {
        dir,
        backups,
        db,
        t,
        load,
        env,
    }
}

impl Loaded {
    /// Stops the load and checks Torrust came through untouched: every
    /// announce served, nothing holds the WAL (a full checkpoint finds no
    /// reader and empties it), still running, no database error logged,
    /// every acknowledged completion in the database (Torrust drops a
    /// failed write silently); then stops Torrust. The test folder lives on
    /// in what it returns.
    fn finish_unaffected(self) -> tempfile::TempDir {
        let mut t = self.t;
        let done = self.load.finish();
        let busy: i64 = open_writer(&self.db)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "something still holds the WAL");
        assert_eq!(wal_len(&self.db), 0);
        assert!(t.running(), "Torrust stopped");
        t.assert_no_database_errors();
        assert_eq!(
            file_counts(&self.db),
            counts_where(&done, |_| true),
            "writes lost"
        );
        t.stop();
        self.dir
    }
}

#[test]
fn killed_sidecar_drops_its_pin_and_torrust_checkpoints_again() {
    let Some(bin) = torrust_bin() else { return };
    let l = loaded(&bin, "kill", Duration::from_millis(2), 2000);
    let db = l.db.clone();
    let mut sidecar = spawn_once_online(l.dir.path(), "killed", &l.env);
    wait_log(
        &mut sidecar,
        "pinned: checkpointed",
        Duration::from_secs(30),
    );
    let frozen = std::fs::read(&db).unwrap();
    // Enough commits for Torrust's automatic checkpoint (1000 pages).
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal_len(&db) < 6 << 20 {
        assert!(Instant::now() < deadline, "the WAL did not grow under load");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        frozen,
        "the main file moved while pinned"
    );
    sidecar.sigkill();
    // The read transaction died with the process: Torrust's own next
    // checkpoint writes the frames into the main file.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&db).unwrap() == frozen {
        assert!(
            Instant::now() < deadline,
            "Torrust's checkpoints never reached the main file after the kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A killed run leaves its staging folder to the next prune.
    assert!(
        published(&l.backups).is_empty(),
        "{:?}",
        published(&l.backups)
    );
    assert!(sidecar_output(&l.env, &["prune"]).status.success());
    assert_nothing_published(&l.backups);
    l.finish_unaffected();
}

#[test]
fn wal_limit_hit_mid_read_abandons_the_backup_and_torrust_is_unaffected() {
    let Some(bin) = torrust_bin() else { return };
    let mut l = loaded(&bin, "limit", Duration::from_millis(2), 1000);
    l.env
        .push(("BACKUP_SQLITE_WAL_LIMIT_MIB".into(), "1".into()));
    let mut sidecar = spawn_once_online(l.dir.path(), "limit", &l.env);
    let status = wait_exit(&mut sidecar, Duration::from_secs(120));
    assert_eq!(status.code(), Some(1), "{}", sidecar.log_text());
    let log = sidecar.log_text();
    assert!(log.contains("pinned: checkpointed"), "{log}");
    assert!(log.contains("BACKUP_SQLITE_WAL_LIMIT_MIB"), "{log}");
    assert_nothing_published(&l.backups);
    l.finish_unaffected();
}

#[test]
fn mariadb_myisam_is_refused_and_innodb_passes_under_load() {
    let Some(bin) = torrust_bin() else { return };
    let Some(maria) = maria() else { return };
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let name = unique_db_name("torrust");
    maria.sql(&format!("CREATE DATABASE {name}"));
    let url = format!(
        "mysql://{}:{}@{}:{}/{name}",
        maria.user, maria.password, maria.host, maria.port
    );
    let mut t = Torrust::start(&bin, dir.path(), "mysql", "mysql", &url);
    let load = Load::start(t.http, Duration::from_millis(5));
    let env = vec![
        ("BACKUP_DIR".to_owned(), backups.display().to_string()),
        ("BACKUP_SQLITE_ENABLED".into(), "false".into()),
        ("BACKUP_MYSQL_ENABLED".into(), "true".into()),
        ("MYSQL_HOST".into(), maria.host.clone()),
        ("MYSQL_PORT".into(), maria.port.clone()),
        ("MYSQL_USER".into(), maria.user.clone()),
        ("MYSQL_PASSWORD".into(), maria.password.clone()),
        ("MYSQL_DATABASE".into(), name.clone()),
    ];
    std::thread::sleep(Duration::from_millis(500));
    let out = sidecar_output(&env, &["once", "--online"]);
    assert!(out.status.success(), "InnoDB online backup");
    let backup = published(&backups).pop().unwrap();
    assert_eq!(manifest(&backup)["consistency"], "online");
    assert!(t.running());

    maria.sql(&format!(
        "CREATE TABLE {name}.legacy_stats (x INT) ENGINE=MyISAM"
    ));
    let out = sidecar_output(&env, &["once", "--online"]);
    assert_eq!(out.status.code(), Some(4), "MyISAM refusal exit code");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("legacy_stats (MyISAM)"), "{stderr}");
    assert!(
        stderr.contains("ALTER TABLE `legacy_stats` ENGINE=InnoDB"),
        "{stderr}"
    );
    assert_eq!(
        published(&backups).len(),
        1,
        "the refusal published nothing"
    );
    load.finish();
    assert!(t.running());
    t.stop();
    maria.sql(&format!("DROP DATABASE {name}"));
}
