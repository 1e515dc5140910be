//! Fault injection with the real processes: each test breaks one thing in
//! the middle of a window and then checks that the tracker serves normally,
//! no completed count is lost, and nothing is published that should not be.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use maintenance_e2e::*;

/// A "dump program" that keeps the sidecar busy (mid-backup, window still
/// claimed, heartbeats running) for `secs` and then fails.
fn slow_dump(dir: &Path, secs: u32) -> Vec<(String, String)> {
    let script = dir.join("slow-dump.sh");
    write_script(&script, &format!("#!/bin/sh\nexec sleep {secs}\n"));
    vec![
        ("BACKUP_MYSQL_ENABLED".into(), "true".into()),
        ("MYSQL_DATABASE".into(), "tracker".into()),
        ("MYSQL_DUMP_COMMAND".into(), script.display().to_string()),
    ]
}

/// The tracker answers announces and counts completions into the database.
fn assert_serves_and_persists(t: &Tracker, hash: &[u8; 20], want_before: i64, db: &Path) {
    assert_eq!(
        t.scrape_downloaded(&[*hash]),
        vec![want_before],
        "counts lost"
    );
    t.announce_ok(hash, 7777, "completed");
    assert_eq!(t.scrape_downloaded(&[*hash]), vec![want_before + 1]);
    let h = hex(hash);
    wait_until(Duration::from_secs(10), "new completion persisted", || {
        sqlite_counts(db).get(&h) == Some(&(want_before + 1))
    });
}

#[test]
fn sidecar_sigkill_while_claimed_expires_at_lease_loss_and_publishes_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "reject"));
    let a = info_hash(1, 1);
    complete_n(&t, &a, 1, 4);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    env.extend(slow_dump(d, 30));
    let mut sidecar = spawn_sidecar(d, "killed", &env);

    let id = t.api().open_window(60);
    t.wait_state(State::Claimed, Duration::from_secs(15));
    wait_until(Duration::from_secs(10), "sidecar mid-backup", || {
        !staging_dirs(&backups).is_empty()
    });
    // Refused while claimed (policy reject).
    assert!(t.announce(&a, 50, "").get("failure reason").is_some());
    sidecar.sigkill();

    // lease_ttl is 2 s: the window ends at lease loss, long before its 60 s deadline.
    let o = t.wait_outcome(&id, Duration::from_secs(10));
    assert_eq!(o.outcome, Outcome::Expired, "{o:?}");
    assert!(
        o.reason.as_deref().unwrap_or("").contains("lease"),
        "reason should name the lease: {o:?}"
    );
    assert!((o.ended_at - o.opened_at).num_seconds() < 15, "{o:?}");
    assert_eq!(t.status().state, State::Idle);
    assert_serves_and_persists(&t, &a, 4, &d.join("tracker.db"));

    assert!(
        published(&backups).is_empty(),
        "published: {:?}",
        published(&backups)
    );
    assert!(std::fs::symlink_metadata(backups.join("latest")).is_err());
    // The crashed run's staging folder is swept by the next prune.
    let out = sidecar_output(&env, &["prune"]);
    assert!(out.status.success());
    assert_nothing_published(&backups);
}

#[test]
fn tracker_sigkill_while_ready_then_restart_rewrites_stale_ready_file_and_live_db_is_not_backed_up()
{
    let dir = tempdir();
    let d = dir.path();
    let cfg = TrackerConfig::sqlite(d, "reject").fixed_ports();
    let db = d.join("tracker.db");
    let mut t = Tracker::start(d, &cfg);
    let a = info_hash(2, 1);
    complete_n(&t, &a, 1, 3);
    let old_id = t.api().open_window(60);
    let st = t.wait_state(State::Ready, Duration::from_secs(10));
    wait_until(Duration::from_secs(5), "ready file says ready", || {
        std::fs::read_to_string(&cfg.ready_file)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|v| v["ready"] == true)
    });
    t.proc.sigkill();

    // The dead tracker left a ready file inviting a backup.
    let stale: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg.ready_file).unwrap()).unwrap();
    assert_eq!(stale["ready"], true);
    assert_eq!(stale["window_id"], old_id.as_str());
    // The quiesce hook flushed the counts before `ready`: nothing lost.
    assert_eq!(sqlite_counts(&db).get(&hex(&a)), Some(&3));

    // A sidecar starting now sees the stale file but cannot claim.
    let backups = d.join("backups");
    let env = sidecar_env_for(&cfg, t.maintenance.unwrap(), &backups);
    let sidecar = spawn_sidecar(d, "s", &env);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(published(&backups).is_empty());

    drop(t);
    let t = Tracker::start(d, &cfg);
    // Start-up rewrote the stale file before serving.
    let fresh: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg.ready_file).unwrap()).unwrap();
    assert_eq!(
        fresh["ready"], false,
        "stale ready file not rewritten: {fresh}"
    );
    assert_ne!(fresh["instance_id"], stale["instance_id"]);
    assert_ne!(t.status().instance_id, st.instance_id);
    assert_eq!(t.status().state, State::Idle);

    // The tracker writes its live database; the sidecar must not copy it.
    assert_serves_and_persists(&t, &a, 3, &db);
    complete_n(&t, &a, 100, 5);
    std::thread::sleep(Duration::from_secs(3));
    let log = sidecar.log_text();
    assert!(
        !log.contains("claimed window"),
        "sidecar claimed a window of a live tracker:\n{log}"
    );
    assert!(
        published(&backups).is_empty(),
        "backup of a live database: {:?}",
        published(&backups)
    );
    assert!(staging_dirs(&backups).is_empty());
    assert!(!t
        .status()
        .last_outcomes
        .iter()
        .any(|o| o.window_id.as_str() == old_id));

    // The same sidecar backs up the next real window.
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(40));
    assert_eq!(
        o.outcome,
        Outcome::Completed,
        "{o:?}\n{}",
        sidecar.log_text()
    );
    assert_eq!(published(&backups).len(), 1);
    let restored = d.join("restored.db");
    assert!(sidecar_output(
        &env,
        &["restore", "latest", "--to", restored.to_str().unwrap()]
    )
    .status
    .success());
    assert_eq!(sqlite_counts(&restored).get(&hex(&a)), Some(&9));
}

#[test]
fn coordinator_unreachable_sidecar_backs_off_publishes_nothing_and_recovers() {
    let dir = tempdir();
    let d = dir.path();
    let cfg = TrackerConfig::sqlite(d, "reject").fixed_ports();
    let maint: std::net::SocketAddr = format!("127.0.0.1:{}", cfg.maintenance_port)
        .parse()
        .unwrap();
    let backups = d.join("backups");
    let env = sidecar_env_for(&cfg, maint, &backups);
    let mut sidecar = spawn_sidecar(d, "s", &env);
    std::thread::sleep(Duration::from_millis(2500));
    let log = sidecar.log_text();
    assert!(
        log.contains("unreachable") && log.contains("retrying"),
        "no clear back-off message:\n{log}"
    );
    // Backing off, not spinning: a handful of attempts in 2.5 s.
    let attempts = log.matches("retrying").count();
    assert!(
        (1..=6).contains(&attempts),
        "{attempts} attempts in 2.5 s:\n{log}"
    );
    assert!(
        sidecar.try_wait().is_none(),
        "sidecar exited while the coordinator was down"
    );
    assert_nothing_published(&backups);

    let t = Tracker::start(d, &cfg);
    let a = info_hash(3, 1);
    complete_n(&t, &a, 1, 2);
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(40));
    assert_eq!(
        o.outcome,
        Outcome::Completed,
        "{o:?}\n{}",
        sidecar.log_text()
    );
    assert!(sidecar.log_text().contains("reachable again"));
    assert_eq!(published(&backups).len(), 1);
    assert_serves_and_persists(&t, &a, 2, &d.join("tracker.db"));

    // Down again mid-life: the tracker goes away, then comes back; the
    // sidecar keeps going and backs up the next window.
    drop(t);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sidecar.try_wait().is_none());
    let t = Tracker::start(d, &cfg);
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(40));
    assert_eq!(
        o.outcome,
        Outcome::Completed,
        "{o:?}\n{}",
        sidecar.log_text()
    );
    assert_eq!(published(&backups).len(), 2);
}

#[test]
fn wrong_token_sidecar_fails_to_claim_publishes_nothing_and_says_why() {
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "reject"));
    let a = info_hash(4, 1);
    complete_n(&t, &a, 1, 2);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    let wrong = "wrong-token-zyxwvutsrqponmlk";
    set_env(&mut env, "MAINTENANCE_TOKEN", wrong);
    let sidecar = spawn_sidecar(d, "badtoken", &env);

    let id = t.api().open_window(4);
    t.wait_state(State::Ready, Duration::from_secs(10));
    wait_until(
        Duration::from_secs(10),
        "a clear token error in the sidecar log",
        || sidecar.log_text().contains("token is wrong"),
    );
    // The window is never claimed and ends at its deadline.
    let o = t.wait_outcome(&id, Duration::from_secs(15));
    assert_eq!(o.outcome, Outcome::Expired, "{o:?}");
    assert_eq!(t.status().state, State::Idle);
    assert_serves_and_persists(&t, &a, 2, &d.join("tracker.db"));
    assert_nothing_published(&backups);
    let log = sidecar.log_text();
    assert!(!log.contains("claimed window"), "{log}");
    assert!(
        !log.contains(wrong) && !t.proc.log_text().contains(wrong),
        "token leaked into a log"
    );
    assert!(
        !t.proc.log_text().contains(TOKEN),
        "token leaked into the tracker log"
    );
}

#[test]
fn stale_or_foreign_window_id_gets_409_and_changes_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "defer-writes"));
    let api = t.api();
    let code = |r: &(u16, serde_json::Value)| (r.0, r.1["code"].as_str().unwrap_or("").to_owned());
    let report =
        serde_json::json!({"backup": null, "artifacts": [], "durations_secs": {}, "error": null});

    // Unauthenticated and wrong-token calls.
    let bad = Api {
        addr: api.addr,
        token: "not-the-token-000000000".into(),
        leases: Default::default(),
    };
    assert_eq!(
        code(&bad.post("windows", serde_json::json!({"duration_secs": 30}))),
        (401, "unauthorized".into())
    );
    let (c, _) = http(
        api.addr,
        "POST",
        "/maintenance/v1/windows",
        None,
        Some(br#"{"duration_secs":30}"#),
    )
    .unwrap();
    assert_eq!(c, 401);
    assert_eq!(t.status().state, State::Idle);

    let w1 = api.open_window(30);
    t.wait_state(State::Ready, Duration::from_secs(10));
    let v0 = t.status().version;
    let bogus = "20261126T000000Z-deadbeef-1";
    assert_eq!(
        code(&api.post(
            "claim",
            serde_json::json!({"window_id": bogus, "sidecar_id": "x"})
        )),
        (409, "stale_window".into())
    );
    let st = t.status();
    assert_eq!(
        (st.state, st.version),
        (State::Ready, v0),
        "a stale claim changed the state"
    );

    let (c, lease) = api.post(
        "claim",
        serde_json::json!({"window_id": w1, "sidecar_id": "s1"}),
    );
    assert_eq!(c, 200, "{lease}");
    assert_eq!(
        code(&api.post(
            "claim",
            serde_json::json!({"window_id": w1, "sidecar_id": "s2"})
        )),
        (409, "already_claimed".into())
    );
    for call in ["heartbeat", "release"] {
        assert_eq!(
            code(&api.post(call, serde_json::json!({"window_id": bogus}))),
            (409, "stale_window".into()),
            "{call}"
        );
    }
    assert_eq!(
        code(&api.post(
            "complete",
            serde_json::json!({"window_id": bogus, "report": report})
        )),
        (409, "stale_window".into())
    );
    let st = t.status();
    assert_eq!(st.state, State::Claimed);
    assert_eq!(st.window_id.as_ref().unwrap().as_str(), w1);
    assert!(st.last_outcomes.is_empty(), "{st:?}");

    assert_eq!(
        api.post("heartbeat", serde_json::json!({"window_id": w1}))
            .0,
        200
    );
    assert_eq!(
        api.post("release", serde_json::json!({"window_id": w1})).0,
        200
    );
    t.wait_state(State::Idle, Duration::from_secs(10));
    let (c, r1) = api.post(
        "complete",
        serde_json::json!({"window_id": w1, "report": report}),
    );
    assert_eq!(
        (c, r1["outcome"].as_str()),
        (200, Some("completed")),
        "{r1}"
    );
    // Completion is idempotent.
    let (c, r2) = api.post(
        "complete",
        serde_json::json!({"window_id": w1, "report": report}),
    );
    assert_eq!((c, &r2), (200, &r1));

    // The old window's id is stale for the next window.
    let w2 = api.open_window(30);
    assert_ne!(w1, w2);
    t.wait_state(State::Ready, Duration::from_secs(10));
    for call in ["heartbeat", "release"] {
        assert_eq!(
            code(&api.post(call, serde_json::json!({"window_id": w1}))),
            (409, "stale_window".into()),
            "{call}"
        );
    }
    assert_eq!(
        code(&api.post(
            "claim",
            serde_json::json!({"window_id": w1, "sidecar_id": "s1"})
        )),
        (409, "stale_window".into())
    );
    let st = t.status();
    assert_eq!(
        (st.state, st.window_id.as_ref().unwrap().as_str()),
        (State::Ready, w2.as_str())
    );
    assert_eq!(st.last_outcomes.len(), 1);
    assert_eq!(
        api.post(
            "abort",
            serde_json::json!({"window_id": w2, "reason": "test"})
        )
        .0,
        200
    );
    let o = t.wait_outcome(&w2, Duration::from_secs(10));
    assert_eq!(o.outcome, Outcome::Aborted);
    t.wait_state(State::Idle, Duration::from_secs(10));
    t.announce_ok(&info_hash(5, 1), 1, "started");
}

#[test]
fn dump_failing_midway_fails_the_window_and_publishes_nothing() {
    let Some(m) = maria() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = m.create_db("dumpfail");
    let t = start_mysql_tracker(d, &m, &db.name, "reject");
    let a = info_hash(6, 1);
    complete_n(&t, &a, 1, 3);
    // Enough rows that the real dump is cut off in the middle.
    m.sql(&format!(
        "USE `{0}`; CREATE TABLE padding (id INT PRIMARY KEY, v VARCHAR(200));
         INSERT INTO padding SELECT seq, REPEAT('x', 200) FROM seq_1_to_5000;",
        db.name
    ));
    // Runs the real mariadb-dump, keeps only the first 8 KiB, then dies.
    let wrapper = dump_script(
        d,
        "dump-dies.sh",
        "mariadb-dump \"$@\" | head -c 8192\necho 'mariadb-dump: Got error: 2013: Lost connection to server during query' >&2\nexit 2",
    );
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    env.extend(m.sidecar_env(&db.name));
    let mut failing = env.clone();
    failing.push(("MYSQL_DUMP_COMMAND".into(), wrapper.display().to_string()));
    let mut sidecar = spawn_sidecar(d, "failing", &failing);

    let err = failed_window(&t, &sidecar, &backups);
    assert!(
        err.contains("exit") || err.contains("status") || err.contains("2013"),
        "unclear error: {err}"
    );
    assert_eq!(t.status().state, State::Idle);
    // Tracker serves; counts intact in MariaDB.
    t.announce_ok(&a, 99, "completed");
    assert_eq!(t.scrape_downloaded(&[a]), vec![4]);
    wait_until(Duration::from_secs(10), "count persisted", || {
        m.counts(&db.name).get(&hex(&a)) == Some(&4)
    });

    // With the real dump the next window succeeds.
    sidecar.terminate(Duration::from_secs(10));
    let sidecar = spawn_sidecar(d, "good", &env);
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(
        o.outcome,
        Outcome::Completed,
        "{o:?}\n{}",
        sidecar.log_text()
    );
    assert_eq!(published(&backups).len(), 1);
    assert!(sidecar_output(&env, &["verify", "latest"]).status.success());
}

/// Unmounts on drop.
struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_during_publish_fails_the_window_and_publishes_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("tracker.db");
    let a = info_hash(8, 1);
    // ~12 MiB of incompressible data: the compressed artifact (streamed
    // from the pinned file, no raw copy) does not fit in the 10 MiB tmpfs.
    make_tracker_sqlite(&db, &[(a, 3)], 12 << 20);
    let backups = d.join("backups");
    std::fs::create_dir(&backups).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=10m", "tmpfs"])
        .arg(&backups)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!(
            "SKIPPED: mount -t tmpfs was refused (not root?); full-disk e2e test did not run"
        );
        return;
    }
    let _guard = Tmpfs(backups.clone());

    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "reject"));
    assert_eq!(t.scrape_downloaded(&[a]), vec![3]);
    let env = sidecar_env(&t, &backups);
    let sidecar = spawn_sidecar(d, "full", &env);
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{}", sidecar.log_text());
    let err = o
        .report
        .as_ref()
        .and_then(|r| r.error.clone())
        .unwrap_or_default();
    assert!(
        err.contains("No space left"),
        "error should say the disk is full: {err}"
    );
    assert_eq!(t.status().state, State::Idle);
    assert_serves_and_persists(&t, &a, 3, &db);
    wait_until(Duration::from_secs(5), "failure logged", || {
        sidecar.log_text().contains("backup failed")
    });
    assert_nothing_published(&backups);
}

#[test]
fn window_deadline_reached_while_sidecar_still_working_tracker_serves_by_the_deadline() {
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "reject"));
    let a = info_hash(9, 1);
    complete_n(&t, &a, 1, 2);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    env.extend(slow_dump(d, 12));
    let sidecar = spawn_sidecar(d, "slow", &env);

    let id = t.api().open_window(4);
    let st = t.wait_state(State::Claimed, Duration::from_secs(10));
    let end = st.current_window.expect("current window").end;
    // Heartbeats keep the lease (2 s) alive past several TTLs...
    std::thread::sleep(Duration::from_millis(2500));
    let st = t.status();
    assert_eq!(
        st.state,
        State::Claimed,
        "lease should be held by heartbeats: {st:?}"
    );
    assert!(t.announce(&a, 40, "").get("failure reason").is_some());
    // ...but the window's end is a hard deadline.
    wait_until(Duration::from_secs(10), "announces served again", || {
        t.announce(&a, 41, "").get("failure reason").is_none()
    });
    let served_at = chrono::Utc::now();
    let late = (served_at - end).num_milliseconds();
    assert!(late < 1000, "tracker served {late} ms after the deadline");
    let o = t.wait_outcome(&id, Duration::from_secs(5));
    assert_eq!(o.outcome, Outcome::Expired, "{o:?}");
    assert!(
        o.reason.as_deref().unwrap_or("").contains("deadline"),
        "{o:?}"
    );
    assert_serves_and_persists(&t, &a, 2, &d.join("tracker.db"));

    // The sidecar learns it lost the window and publishes nothing.
    wait_until(
        Duration::from_secs(25),
        "sidecar gives up the window",
        || {
            let l = sidecar.log_text();
            l.contains("lease lost") || l.contains("backup failed") || l.contains("refused")
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        published(&backups).is_empty(),
        "published after the deadline: {:?}",
        published(&backups)
    );
    assert!(std::fs::symlink_metadata(backups.join("latest")).is_err());
}

#[test]
fn two_sidecars_racing_exactly_one_claims_each_window_one_backup() {
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "defer-writes"));
    complete_n(&t, &info_hash(10, 1), 1, 2);
    let mut sidecars = Vec::new();
    for name in ["s1", "s2"] {
        let mut env = sidecar_env(&t, &d.join(format!("backups-{name}")));
        set_env(&mut env, "BACKUP_SIDECAR_ID", name);
        sidecars.push(spawn_sidecar(d, name, &env));
    }
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        let id = t.api().open_window(60);
        let o = t.wait_outcome(&id, Duration::from_secs(30));
        assert_eq!(o.outcome, Outcome::Completed, "{o:?}");
        let claimers: Vec<&str> = ["s1", "s2"]
            .into_iter()
            .zip(&sidecars)
            .filter(|(_, p)| p.log_text().contains(&format!("claimed window {id}")))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(claimers.len(), 1, "window {id} claimed by {claimers:?}");
        let backups: Vec<_> = ["s1", "s2"]
            .iter()
            .flat_map(|n| published(&d.join(format!("backups-{n}"))))
            .filter(|p| p.to_string_lossy().ends_with(&id))
            .collect();
        assert_eq!(backups.len(), 1, "backups of {id}: {backups:?}");
        t.wait_state(State::Idle, Duration::from_secs(5));
    }
    let total: usize = ["s1", "s2"]
        .iter()
        .map(|n| published(&d.join(format!("backups-{n}"))).len())
        .sum();
    assert_eq!(total, 3);
}

/// Opens a window that `sidecar` must fail: the outcome is `failed` with no
/// artifact, the sidecar logs it and nothing is published in `backups`.
/// Returns the error the sidecar reported.
fn failed_window(t: &Tracker, sidecar: &Proc, backups: &Path) -> String {
    let id = t.api().open_window(60);
    let o = t.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{}", sidecar.log_text());
    let report = o
        .report
        .expect("a failed window carries the sidecar's report");
    assert!(report.artifacts.is_empty(), "{report:?}");
    wait_until(Duration::from_secs(5), "failure logged", || {
        sidecar.log_text().contains("backup failed")
    });
    assert_nothing_published(backups);
    report.error.unwrap_or_default()
}

/// A PostgreSQL tracker with `rows` padding rows (so a dump is well over
/// 8 KiB) and a sidecar whose dump program is `body` (a shell script);
/// returns the tracker, the backup folder, the script and the sidecar.
fn postgres_window_with_dump(
    pg: &Pg,
    d: &Path,
    db: &PgDb,
    body: &str,
) -> (Tracker, std::path::PathBuf, std::path::PathBuf, Proc) {
    let t = start_postgres_tracker(d, pg, &db.name, "reject");
    pg.sql_in(
        &db.name,
        "CREATE TABLE padding AS SELECT g AS id, repeat('x', 200) AS v FROM generate_series(1, 5000) g",
    );
    let wrapper = dump_script(d, "pg-dump-wrapper.sh", body);
    let backups = d.join("backups");
    let env = sidecar_env_with_dump(
        &t,
        &backups,
        pg.sidecar_env(&db.name),
        "POSTGRES_DUMP_COMMAND",
        &wrapper,
    );
    let sidecar = spawn_sidecar(d, "pg", &env);
    (t, backups, wrapper, sidecar)
}

/// Connections the sidecar left open on the server (its snapshot
/// connection and pg_dump's).
fn sidecar_sessions(pg: &Pg, db: &str) -> usize {
    pg.scalar(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()
             AND (application_name LIKE 'maintenance-sidecar%' OR application_name = 'pg_dump')"
        ),
    )
}

#[test]
fn postgres_dump_killed_midway_fails_the_window_and_publishes_nothing() {
    let Some(pg) = postgres() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = pg.create_db("pgkilled");
    // The real pg_dump, cut after 8 KiB, then the wrapper dies of SIGKILL.
    let (t, backups, _wrapper, sidecar) =
        postgres_window_with_dump(&pg, d, &db, "pg_dump \"$@\" | head -c 8192\nkill -KILL $$");
    let a = info_hash(6, 2);
    complete_n(&t, &a, 1, 3);
    let err = failed_window(&t, &sidecar, &backups);
    assert!(
        err.contains("postgres dump") && err.contains("signal"),
        "unclear error: {err}"
    );
    wait_until(Duration::from_secs(10), "no sidecar session left", || {
        sidecar_sessions(&pg, &db.name) == 0
    });
    t.announce_ok(&a, 99, "completed");
    wait_until(Duration::from_secs(10), "count persisted", || {
        pg.counts(&db.name).get(&hex(&a)) == Some(&4)
    });
}

/// The window is aborted while the dump streams (after the release): the
/// next heartbeat finds the lease gone, the dump's whole process group is
/// killed, and nothing is published.
#[test]
fn postgres_lease_lost_mid_dump_kills_the_dump_and_publishes_nothing() {
    let Some(pg) = postgres() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = pg.create_db("pglease");
    let marker = d.join("dump-running");
    let (t, backups, wrapper, sidecar) = postgres_window_with_dump(
        &pg,
        d,
        &db,
        &format!(
            "touch {}\npg_dump \"$@\" | {{ head -c 4096; sleep 60; cat; }}",
            marker.display()
        ),
    );
    let id = t.api().open_window(60);
    wait_until(Duration::from_secs(15), "dump streaming", || {
        marker.exists()
    });
    wait_until(Duration::from_secs(10), "tracker released", || {
        t.status().state == State::Idle
    });
    let (code, body) = t.api().post(
        "abort",
        serde_json::json!({"window_id": id, "reason": "test: lease lost"}),
    );
    assert_eq!(code, 200, "{body}");
    wait_until(Duration::from_secs(15), "sidecar gives up", || {
        sidecar.log_text().contains("lease lost")
    });
    let script = wrapper.display().to_string();
    wait_until(Duration::from_secs(10), "dump process group killed", || {
        !Command::new("pgrep")
            .args(["-f", &script])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    wait_until(Duration::from_secs(10), "no sidecar session left", || {
        sidecar_sessions(&pg, &db.name) == 0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_nothing_published(&backups);
    t.announce_ok(&info_hash(6, 3), 1, "completed");
}

/// A PostgreSQL tracker killed with SIGKILL in a `defer-writes` window
/// (counts only in memory and in the completion journal): the restart
/// replays every acknowledged completion, and a second SIGKILL after the
/// replayed counts reached the database does not count them again.
#[test]
fn postgres_tracker_sigkill_in_a_defer_writes_window_loses_and_doubles_no_completion() {
    let Some(pg) = postgres() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = pg.create_db("journal");
    let h = info_hash(9, 1);
    let key = hex(&h);
    let in_db = || pg.counts(&db.name).get(&key).copied();

    let mut t = start_postgres_tracker(d, &pg, &db.name, "defer-writes");
    complete_n(&t, &h, 0, 3);
    wait_until(Duration::from_secs(10), "3 counts in the db", || {
        in_db() == Some(3)
    });
    t.api().open_window(60);
    t.wait_state(State::Ready, Duration::from_secs(15));
    complete_n(&t, &h, 3, 20);
    // Past the journal's 100 ms sync interval; then no chance to flush.
    std::thread::sleep(Duration::from_millis(400));
    t.proc.sigkill();
    assert_eq!(in_db(), Some(3), "the window let a write through");

    let mut t = start_postgres_tracker(d, &pg, &db.name, "defer-writes");
    assert_eq!(t.scrape_downloaded(&[h]), vec![23]);
    assert!(t.proc.log_text().contains("replayed completions"));
    wait_until(Duration::from_secs(10), "23 counts in the db", || {
        in_db() == Some(23)
    });
    std::thread::sleep(Duration::from_millis(300));
    t.proc.sigkill();

    let mut t = start_postgres_tracker(d, &pg, &db.name, "defer-writes");
    assert_eq!(t.scrape_downloaded(&[h]), vec![23]);
    assert!(t.proc.terminate(Duration::from_secs(20)).success());
    assert_eq!(in_db(), Some(23));
}
