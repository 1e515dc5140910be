//! `run` against the real coordinator (`maintenance-coordinator`) embedded
//! in this test process with a real SQLite database: an ad hoc window ends
//! with a published, verified backup and outcome `completed`; a sidecar
//! SIGKILLed mid-backup publishes nothing and the window expires; a sidecar
//! started before its coordinator keeps retrying and then backs up.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use maintenance_coordinator::{
    Coordinator, HookError, MaintenanceConfig, MaintenanceHooks, WindowInfo,
};
use maintenance_proto::{Outcome, State, WindowId, WindowOutcome};
use maintenance_sidecar::config::Secret;

const TOKEN: &str = "0123456789abcdef-sidecar-test-token";

/// The tracker's side: checkpoint on quiesce, count resumes.
struct CheckpointHooks {
    db: PathBuf,
    resumed: AtomicU32,
}

#[async_trait::async_trait]
impl MaintenanceHooks for CheckpointHooks {
    async fn quiesce(&self, _window: &WindowInfo) -> Result<(), HookError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(db)?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok::<_, rusqlite::Error>(())
        })
        .await??;
        Ok(())
    }

    async fn resume(&self, _window: &WindowInfo) -> Result<(), HookError> {
        self.resumed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A scheduled window twelve hours away, so only ad hoc windows run.
fn far_window() -> String {
    let start = chrono::Utc::now() + chrono::Duration::hours(12);
    let end = start + chrono::Duration::minutes(5);
    format!("{}-{}", start.format("%H:%M"), end.format("%H:%M"))
}

struct Tracker {
    coordinator: Coordinator,
    hooks: Arc<CheckpointHooks>,
    url: String,
}

async fn start_tracker(dir: &Path, db: &Path, listener: tokio::net::TcpListener) -> Tracker {
    let text = format!(
        "enabled = true\nwindow = \"{}\"\ntoken = \"{TOKEN}\"\nlease_ttl = \"2s\"\ndrain_timeout = \"1s\"\nready_file = \"{}\"\n",
        far_window(),
        dir.join("ready/ready.json").display()
    );
    std::fs::create_dir_all(dir.join("ready")).unwrap();
    let config = MaintenanceConfig::from_toml_str(&text).unwrap();
    let hooks = Arc::new(CheckpointHooks {
        db: db.to_owned(),
        resumed: AtomicU32::new(0),
    });
    let coordinator = Coordinator::start(config, hooks.clone()).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = coordinator.clone();
    tokio::spawn(async move { server.serve(listener).await });
    Tracker {
        coordinator,
        hooks,
        url: format!("http://{addr}"),
    }
}

fn spawn_sidecar(dir: &Path, db: &Path, url: &str, extra: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("sidecar.log")).unwrap();
    let mut cmd = sidecar(None);
    cmd.arg("run")
        .env("MAINTENANCE_URL", url)
        .env("MAINTENANCE_TOKEN", TOKEN)
        .env("MAINTENANCE_READY_FILE", dir.join("ready/ready.json"))
        .env("SQLITE_DATABASE_PATH", db)
        .env("BACKUP_DIR", dir.join("backups"))
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn sidecar")
}

fn sidecar_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sidecar.log")).unwrap_or_default()
}

async fn open_window(url: &str) -> WindowId {
    let client =
        maintenance_sidecar::client::Coordinator::new(url, Some(Secret::new(TOKEN))).unwrap();
    client.open_window(60).await.expect("open window").window_id
}

async fn wait_outcome(
    c: &Coordinator,
    id: &WindowId,
    limit: Duration,
    dir: &Path,
) -> WindowOutcome {
    let t = Instant::now();
    loop {
        if let Some(o) = c
            .status()
            .last_outcomes
            .into_iter()
            .find(|o| &o.window_id == id)
        {
            return o;
        }
        assert!(
            t.elapsed() < limit,
            "no outcome for {id} after {limit:?}; status {:?}\nsidecar log:\n{}",
            c.status(),
            sidecar_log(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a window on `tracker` and waits (at most 30 s) until the sidecar
/// completed it; returns the outcome for further checks.
async fn completed_window(tracker: &Tracker, dir: &Path) -> WindowOutcome {
    let id = open_window(&tracker.url).await;
    let outcome = wait_outcome(&tracker.coordinator, &id, Duration::from_secs(30), dir).await;
    assert_eq!(
        outcome.outcome,
        Outcome::Completed,
        "{outcome:?}\n{}",
        sidecar_log(dir)
    );
    outcome
}

/// Starts a tracker and a sidecar whose MySQL "dump" hangs for `dump_secs`,
/// opens a window, and returns once the window is claimed and the backup is
/// under way (after the SQLite snapshot, a staging folder exists).
async fn claimed_mid_backup(dir: &Path, dump_secs: u32) -> (Tracker, Child, WindowId, PathBuf) {
    let db = dir.join("tracker.db");
    make_sqlite(&db, 100);
    let slow = dir.join("slow-dump.sh");
    std::fs::write(&slow, format!("#!/bin/sh\nsleep {dump_secs}\n")).unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir, &db, listener).await;
    let child = spawn_sidecar(
        dir,
        &db,
        &tracker.url,
        &[
            ("BACKUP_MYSQL_ENABLED", "true"),
            ("MYSQL_DATABASE", "tracker"),
            ("MYSQL_DUMP_COMMAND", slow.to_str().unwrap()),
        ],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = open_window(&tracker.url).await;
    let backups = dir.join("backups");
    let t = Instant::now();
    while tracker.coordinator.status().state != State::Claimed || staging_dirs(&backups).is_empty()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never claimed: {}",
            sidecar_log(dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (tracker, child, id, backups)
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("sidecar did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_backs_up_an_ad_hoc_window_and_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 700);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    let child = spawn_sidecar(dir.path(), &db, &tracker.url, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let outcome = completed_window(&tracker, dir.path()).await;
    let id = outcome.window_id.clone();
    let report = outcome.report.expect("report");
    assert!(report.error.is_none());
    assert_eq!(report.artifacts.len(), 1);
    assert!(report.durations_secs.contains_key("snapshot"));
    let name = report.backup.expect("backup name");
    assert!(name.ends_with(id.as_str()), "{name} vs {id}");
    assert_eq!(tracker.coordinator.status().state, State::Idle);
    assert!(tracker.hooks.resumed.load(Ordering::SeqCst) >= 1);

    let backups = dir.path().join("backups");
    assert_eq!(published(&backups), vec![backups.join(&name)]);
    let log = sidecar_log(dir.path());
    assert!(
        log.contains("claimed window") && log.contains("released window"),
        "{log}"
    );

    let status = terminate(child);
    assert!(status.success(), "sidecar exit {status}");

    let out = run(sidecar(None)
        .env("BACKUP_DIR", &backups)
        .args(["verify", &name]));
    assert!(out.status.success());
    let restored = dir.path().join("restored.db");
    let out = run(sidecar(None)
        .env("BACKUP_DIR", &backups)
        .args(["restore", &name, "--to"])
        .arg(&restored));
    assert!(out.status.success());
    assert_eq!(sqlite_rows(&restored), sqlite_rows(&db));
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_killed_mid_backup_publishes_nothing_and_the_window_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, mut child, id, backups) = claimed_mid_backup(dir.path(), 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let outcome = wait_outcome(
        &tracker.coordinator,
        &id,
        Duration::from_secs(15),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.outcome, Outcome::Expired, "{outcome:?}");
    assert_eq!(
        tracker.coordinator.status().state,
        State::Idle,
        "tracker did not resume"
    );
    assert!(tracker.hooks.resumed.load(Ordering::SeqCst) >= 1);
    assert!(
        published(&backups).is_empty(),
        "published: {:?}",
        published(&backups)
    );
    assert!(std::fs::symlink_metadata(backups.join("latest")).is_err());

    // The crashed run's staging folder is swept by the next prune.
    assert!(!staging_dirs(&backups).is_empty());
    assert!(run(sidecar(None).env("BACKUP_DIR", &backups).arg("prune"))
        .status
        .success());
    assert!(staging_dirs(&backups).is_empty());
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_started_before_its_coordinator_retries_then_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 10);
    // Reserve a port, free it, and point the sidecar at it while nothing listens.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let child = spawn_sidecar(dir.path(), &db, &url, &[]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        sidecar_log(dir.path()).contains("unreachable"),
        "{}",
        sidecar_log(dir.path())
    );
    assert!(published(&dir.path().join("backups")).is_empty());

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    let id = open_window(&url).await;
    let outcome = wait_outcome(
        &tracker.coordinator,
        &id,
        Duration::from_secs(30),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.outcome, Outcome::Completed, "{outcome:?}");
    assert_eq!(published(&dir.path().join("backups")).len(), 1);
    terminate(child);
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_lost_mid_backup_stops_cleans_staging_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, child, id, backups) = claimed_mid_backup(dir.path(), 30).await;
    // An operator aborts the window: the next heartbeat gets 409.
    let op = maintenance_sidecar::client::Coordinator::new(&tracker.url, Some(Secret::new(TOKEN)))
        .unwrap();
    op.abort(Some(id.clone()), "test abort").await.unwrap();

    let t = Instant::now();
    while !staging_dirs(&backups).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "staging not cleaned after lease loss (the hung dump must be killed): {}",
            sidecar_log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = wait_outcome(
        &tracker.coordinator,
        &id,
        Duration::from_secs(5),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.outcome, Outcome::Aborted);
    assert!(published(&backups).is_empty());
    assert!(std::fs::symlink_metadata(backups.join("latest")).is_err());
    let log = sidecar_log(dir.path());
    assert!(log.contains("lease lost"), "{log}");
    // The sidecar survives and keeps waiting for the next window.
    let status = terminate(child);
    assert!(status.success(), "{status}");
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_ready_file_never_triggers_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 10);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    let child = spawn_sidecar(dir.path(), &db, &tracker.url, &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A stale or forged readiness file claims a window the coordinator does
    // not know; only the HTTP claim may authorise a backup.
    let doc = serde_json::json!({
        "protocol_version": 1, "instance_id": "someone-else", "state": "ready",
        "ready": true, "window_id": "forged-window", "window_end": null,
        "written_at": chrono::Utc::now(), "pid": 1
    });
    let tmp = dir.path().join("ready/.tmp");
    std::fs::write(&tmp, doc.to_string()).unwrap();
    std::fs::rename(&tmp, dir.path().join("ready/ready.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = sidecar_log(dir.path());
    assert!(
        log.contains("forged-window"),
        "ready file not noticed: {log}"
    );
    assert!(log.contains("cannot be claimed"), "{log}");
    assert!(!log.contains("backup started"), "{log}");
    let backups = dir.path().join("backups");
    assert!(published(&backups).is_empty());
    assert!(staging_dirs(&backups).is_empty());
    assert_eq!(tracker.coordinator.status().state, State::Idle);
    terminate(child);
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_ready_file_neither_hangs_nor_bloats_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 10);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    // The sidecar watches a path only the "attacker" writes; the windows
    // reach it over HTTP.
    let hostile = dir.path().join("ready/planted.json");
    let hostile_str = hostile.to_str().unwrap().to_owned();
    let child = spawn_sidecar(
        dir.path(),
        &db,
        &tracker.url,
        &[("MAINTENANCE_READY_FILE", hostile_str.as_str())],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A 1 GiB sparse file renamed into place: once read whole.
    let tmp = dir.path().join("ready/.planted");
    std::fs::File::create(&tmp)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::fs::rename(&tmp, &hostile).unwrap();
    completed_window(&tracker, dir.path()).await;
    let peak = maintenance_e2e::vm_hwm_kib(child.id()).expect("VmHWM in /proc/PID/status");
    assert!(
        peak < 256 * 1024,
        "the sidecar's peak RSS reached {peak} KiB after the 1 GiB ready file"
    );
    let log = sidecar_log(dir.path());
    assert!(
        log.contains("ready file ignored") && log.contains("1073741824 bytes, more than"),
        "{log}"
    );

    // A FIFO: opening it for reading once waited for a writer for good.
    std::fs::remove_file(&hostile).unwrap();
    let c = std::ffi::CString::new(hostile_str.as_str()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    completed_window(&tracker, dir.path()).await;
    let log = sidecar_log(dir.path());
    assert!(log.contains("is a FIFO, not a regular file"), "{log}");
    assert_eq!(
        log.matches("is a FIFO").count(),
        1,
        "the same problem is warned about once: {log}"
    );
    assert!(terminate(child).success());
    tracker.coordinator.shutdown().await;
}

/// Waits for the sidecar's "metrics listening on http://ADDR/metrics" line.
fn metrics_addr(dir: &Path) -> String {
    let t = Instant::now();
    loop {
        let log = sidecar_log(dir);
        if let Some(rest) = log.split("metrics listening on http://").nth(1) {
            return rest.split('/').next().unwrap().to_owned();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no metrics listener: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_run_backs_up_a_window_and_the_dashboard_queries_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 500);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    let child = spawn_sidecar(
        dir.path(),
        &db,
        &tracker.url,
        &[("SIDECAR_METRICS_BIND", "127.0.0.1:0")],
    );
    let addr = metrics_addr(dir.path());
    let before = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || http_get(&addr, "/metrics")
    })
    .await
    .unwrap();
    let ok = "maintenance_backups_total{result=\"success\"}";
    assert_eq!(sample(&before, ok), Some(0.0), "{before}");
    assert_eq!(
        sample(&before, "maintenance_backup_last_success_timestamp_seconds"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "maintenance_backup_bytes{engine=\"sqlite\"}"),
        None
    );

    let id = open_window(&tracker.url).await;
    let outcome = wait_outcome(
        &tracker.coordinator,
        &id,
        Duration::from_secs(30),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.outcome, Outcome::Completed, "{outcome:?}");

    let (after, coord) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        let url = tracker.url.trim_start_matches("http://").to_owned();
        move || {
            (
                http_get(&addr, "/metrics"),
                http_get(&url, "/maintenance/v1/metrics"),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(sample(&after, ok), Some(1.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "maintenance_backup_claims_total{result=\"claimed\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert!(sample(&after, "maintenance_backup_bytes{engine=\"sqlite\"}").unwrap() > 0.0);
    let ts = sample(&after, "maintenance_backup_last_success_timestamp_seconds").unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 120.0..=now + 5.0).contains(&ts), "{ts} vs {now}");
    assert_eq!(
        sample(
            &after,
            "maintenance_backup_phase_duration_seconds_count{phase=\"snapshot\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "maintenance_backup_verify_failures_total"),
        Some(0.0)
    );
    assert_eq!(
        sample(&coord, "maintenance_windows_total{outcome=\"completed\"}"),
        Some(1.0),
        "{coord}"
    );
    let log = sidecar_log(dir.path());
    let summary = log
        .lines()
        .find(|l| l.contains("backup finished"))
        .unwrap_or_else(|| panic!("no summary line: {log}"));
    assert!(
        summary.contains("outcome=\"success\"") && summary.contains(id.as_str()),
        "{summary}"
    );

    // Every metric the dashboard and the alert rules query is exposed by
    // the real coordinator or the real sidecar.
    let mut names = exposed_names(&after);
    names.extend(exposed_names(&coord));
    let mut queried: Vec<(String, String)> = dashboard_exprs(&monitoring("grafana-dashboard.json"));
    let alerts = std::fs::read_to_string(monitoring("alerts.yml")).unwrap();
    queried.extend(
        alerts
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr:"))
            .map(|e| ("alerts.yml".to_owned(), e.trim().to_owned())),
    );
    assert!(queried.len() > 10);
    for (title, expr) in &queried {
        for name in metric_names_in(expr) {
            assert!(
                names.contains(&name),
                "{title}: {expr} queries {name}, which neither endpoint exposes.\nsidecar:\n{after}\ncoordinator:\n{coord}"
            );
        }
    }

    // A restarted sidecar seeds the last-success gauges from BACKUP_DIR.
    terminate(child);
    std::fs::remove_file(dir.path().join("sidecar.log")).unwrap();
    let child = spawn_sidecar(
        dir.path(),
        &db,
        &tracker.url,
        &[("SIDECAR_METRICS_BIND", "127.0.0.1:0")],
    );
    let addr = metrics_addr(dir.path());
    let seeded = tokio::task::spawn_blocking(move || http_get(&addr, "/metrics"))
        .await
        .unwrap();
    let ts2 = sample(&seeded, "maintenance_backup_last_success_timestamp_seconds").unwrap();
    assert!((ts - ts2).abs() < 60.0, "{ts} vs seeded {ts2}");
    assert!(sample(&seeded, "maintenance_backup_bytes{engine=\"sqlite\"}").unwrap() > 0.0);
    terminate(child);
    tracker.coordinator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_coordinator_state_outcomes_and_backups() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    make_sqlite(&db, 50);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tracker = start_tracker(dir.path(), &db, listener).await;
    let child = spawn_sidecar(dir.path(), &db, &tracker.url, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = open_window(&tracker.url).await;
    let outcome = wait_outcome(
        &tracker.coordinator,
        &id,
        Duration::from_secs(30),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.outcome, Outcome::Completed);
    terminate(child);
    let name = outcome.report.unwrap().backup.unwrap();

    let backups = dir.path().join("backups");
    let url = tracker.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(sidecar(None)
            .arg("status")
            .env("BACKUP_DIR", &backups)
            .env("MAINTENANCE_URL", &url))
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("state         idle"), "{text}");
    assert!(text.contains("next window"), "{text}");
    assert!(text.contains(" UTC ") && text.contains("local "), "{text}");
    assert!(text.contains("completed"), "{text}");
    // The outcome is a second old at most: it is past, so "… ago".
    let line = text.lines().find(|l| l.contains(id.as_str())).unwrap();
    assert!(line.contains("s ago)") && !line.contains("(in "), "{line}");
    assert!(text.contains(id.as_str()), "{text}");
    assert!(text.contains(&name), "{text}");
    assert!(!text.contains("UNREACHABLE"), "{text}");
    tracker.coordinator.shutdown().await;
}
