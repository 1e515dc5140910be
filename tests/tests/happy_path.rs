//! The whole flow with the real processes on loopback, on SQLite, MariaDB
//! and PostgreSQL, under both announce policies: the window opens, announces get
//! the policy's answer, the sidecar claims, snapshots, releases, publishes
//! exactly one verified backup and completes; the tracker serves normally
//! right after. The restore drills restore that backup into a fresh tracker
//! and compare scrape `downloaded` with the counts at the snapshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use maintenance_e2e::*;

const A: u32 = 1;
const B: u32 = 2;

struct Done {
    tracker: Tracker,
    backups: PathBuf,
    sidecar_env: Vec<(String, String)>,
    /// scrape `downloaded` of [A, B] when the snapshot was taken.
    at_snapshot: Vec<i64>,
    /// scrape `downloaded` of [A, B] after the window (includes deferred ones).
    after: Vec<i64>,
    _sidecar: Proc,
}

/// Runs one window on `tracker` and checks everything a happy path promises.
fn window_flow(dir: &Path, tracker: Tracker, extra_env: Vec<(String, String)>) -> Done {
    let (a, b) = (info_hash(7, A), info_hash(7, B));
    complete_n(&tracker, &a, 1, 5);
    complete_n(&tracker, &b, 100, 3);
    assert_eq!(tracker.scrape_downloaded(&[a, b]), vec![5, 3]);

    let api = tracker.api();
    let id = api.open_window(30);
    let st = tracker.wait_state(State::Ready, Duration::from_secs(10));
    assert_eq!(st.window_id.as_ref().map(|w| w.as_str()), Some(id.as_str()));
    // The status turns ready first; the file follows within milliseconds.
    let read_ready = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&tracker.config.ready_file).unwrap()).unwrap()
    };
    wait_until(Duration::from_secs(5), "ready file says ready", || {
        read_ready()["ready"] == true
    });
    let ready = read_ready();
    assert_eq!(ready["window_id"], id.as_str());

    // What announces get while the window waits for its sidecar.
    let policy = tracker.config.policy;
    let mut after = vec![5, 3];
    if policy == "reject" {
        for peer in [500, 501, 502] {
            let v = tracker.announce(&a, peer, "completed");
            let reason = v
                .get("failure reason")
                .and_then(Value::str)
                .unwrap_or_else(|| panic!("not refused: {v:?}"));
            assert!(reason.to_lowercase().contains("maintenance"), "{reason}");
            let interval = v
                .get("interval")
                .and_then(Value::int)
                .expect("interval on refusal");
            assert!(
                (1..=60).contains(&interval),
                "interval {interval} should be about the time left (30 s)"
            );
            assert!(
                v.get("min interval").and_then(Value::int).is_some(),
                "min interval: {v:?}"
            );
            assert!(
                v.get("retry in").and_then(Value::int).unwrap_or(0) >= 1,
                "retry in: {v:?}"
            );
        }
    } else {
        // defer-writes: served from memory, never refused; completions count.
        for peer in [500, 501] {
            let v = tracker.announce_ok(&a, peer, "completed");
            assert!(
                v.get("complete").and_then(Value::int).unwrap_or(0) >= 1,
                "{v:?}"
            );
        }
        after = vec![7, 3];
    }
    // Scrape and health stay up inside the window.
    assert_eq!(tracker.scrape_downloaded(&[a, b]), after);
    assert!(tracker.healthy());

    let backups = dir.join("backups");
    let mut env = sidecar_env(&tracker, &backups);
    env.extend(extra_env);
    let sidecar = spawn_sidecar(dir, "main", &env);
    let outcome = tracker.wait_outcome(&id, Duration::from_secs(60));
    assert_eq!(
        outcome.outcome,
        Outcome::Completed,
        "{outcome:?}\nsidecar log:\n{}",
        sidecar.log_text()
    );
    // Right after: serving normally.
    assert_eq!(tracker.status().state, State::Idle);
    tracker.announce_ok(&b, 900, "started");
    tracker.announce_ok(&a, 901, "");

    let report = outcome.report.expect("report");
    assert!(report.error.is_none(), "{report:?}");
    assert_eq!(report.artifacts.len(), 1, "{report:?}");
    let name = report.backup.clone().expect("backup name");
    assert_eq!(
        published(&backups),
        vec![backups.join(&name)],
        "exactly one backup"
    );
    assert!(staging_dirs(&backups).is_empty());
    let latest = std::fs::canonicalize(backups.join("latest")).expect("latest link");
    assert_eq!(latest, std::fs::canonicalize(backups.join(&name)).unwrap());
    let m = manifest(&backups.join(&name));
    assert_eq!(m["window_id"], id.as_str(), "{m}");
    assert_eq!(
        m["artifacts"][0]["sha256"],
        report.artifacts[0].sha256.as_str()
    );
    // The tracker resumed at release, before the sidecar finished: the
    // log shows release before publication.
    let log = sidecar.log_text();
    let rel = log.find("released window").expect("release logged");
    let publ = log.find("published").expect("publication logged");
    assert!(rel < publ, "release must come before publishing:\n{log}");
    assert!(!log.contains(TOKEN), "token leaked into the sidecar log");
    assert!(
        !tracker.proc.log_text().contains(TOKEN),
        "token leaked into the tracker log"
    );

    let out = sidecar_output(&env, &["verify", "latest"]);
    assert!(out.status.success(), "verify failed");

    // The deferred / new completions reach the database after resume.
    assert_eq!(tracker.scrape_downloaded(&[a, b]), after);
    Done {
        tracker,
        backups,
        sidecar_env: env,
        at_snapshot: vec![5, 3],
        after,
        _sidecar: sidecar,
    }
}

fn sqlite_flow(policy: &'static str) -> (tempfile::TempDir, Done) {
    let dir = tempdir();
    let tracker = Tracker::start(dir.path(), &TrackerConfig::sqlite(dir.path(), policy));
    let done = window_flow(dir.path(), tracker, vec![]);
    let db = dir.path().join("tracker.db");
    let (a, b) = (hex(&info_hash(7, A)), hex(&info_hash(7, B)));
    let want = done.after.clone();
    wait_until(
        Duration::from_secs(10),
        "counts persisted after resume",
        || {
            let c = sqlite_counts(&db);
            c.get(&a) == Some(&want[0]) && c.get(&b) == Some(&want[1])
        },
    );
    (dir, done)
}

#[test]
fn sqlite_reject_window_refuses_then_publishes_one_verified_backup() {
    sqlite_flow("reject");
}

#[test]
fn sqlite_defer_writes_window_never_refuses_and_publishes_one_verified_backup() {
    sqlite_flow("defer-writes");
}

/// Restores the backup into a new database file, starts a fresh tracker on
/// it, and compares scrape counts with those at the snapshot (the deferred
/// completions made while the window waited are not in the snapshot).
#[test]
fn sqlite_restore_drill_fresh_tracker_scrapes_snapshot_counts() {
    let (dir, done) = sqlite_flow("defer-writes");
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let restored = fresh.join("tracker.db");
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--to", restored.to_str().unwrap()],
    );
    assert!(out.status.success());
    // Restoring over a live database is refused without --force.
    let live = dir.path().join("tracker.db");
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--to", live.to_str().unwrap()],
    );
    assert!(
        !out.status.success(),
        "restore over the live database must be refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

    let t2 = Tracker::start(&fresh, &TrackerConfig::sqlite(&fresh, "reject"));
    let (a, b) = (info_hash(7, A), info_hash(7, B));
    assert_eq!(t2.scrape_downloaded(&[a, b]), done.at_snapshot);
    assert_ne!(
        done.at_snapshot, done.after,
        "the drill should tell snapshot and live counts apart"
    );
    t2.announce_ok(&a, 1, "completed");
    assert_eq!(t2.scrape_downloaded(&[a]), vec![done.at_snapshot[0] + 1]);
    drop(done.tracker);
    let _ = done.backups;
}

fn mariadb_flow(m: &Maria, policy: &'static str) -> (tempfile::TempDir, MariaDb, Done) {
    let dir = tempdir();
    let db = m.create_db("happy");
    let tracker = start_mysql_tracker(dir.path(), m, &db.name, policy);
    let done = window_flow(dir.path(), tracker, m.sidecar_env(&db.name));
    let (a, b) = (hex(&info_hash(7, A)), hex(&info_hash(7, B)));
    let want = done.after.clone();
    wait_until(
        Duration::from_secs(10),
        "counts persisted in MariaDB after resume",
        || {
            let c = m.counts(&db.name);
            c.get(&a) == Some(&want[0]) && c.get(&b) == Some(&want[1])
        },
    );
    (dir, db, done)
}

#[test]
fn mariadb_reject_window_refuses_then_publishes_one_verified_backup() {
    let Some(m) = maria() else { return };
    mariadb_flow(&m, "reject");
}

#[test]
fn mariadb_defer_writes_window_never_refuses_and_publishes_one_verified_backup() {
    let Some(m) = maria() else { return };
    mariadb_flow(&m, "defer-writes");
}

/// Runs one `reject` window on `t` with a sidecar whose dump program is
/// `script` (the real dump followed by a 4 s tail, set through `dump_var`)
/// and checks that announces are served again before the backup is
/// published and that the quiesced time stayed well under the tail.
/// Returns the sidecar's environment.
fn resumes_while_the_dump_streams(
    t: &Tracker,
    d: &Path,
    db_env: Vec<(String, String)>,
    dump_var: &str,
    script: &Path,
    a: &[u8; 20],
) -> Vec<(String, String)> {
    let backups = d.join("backups");
    let env = sidecar_env_with_dump(t, &backups, db_env, dump_var, script);
    let _sidecar = spawn_sidecar(d, "early", &env);

    let id = t.api().open_window(60);
    wait_until(
        Duration::from_secs(10),
        "announces served again while the dump streams",
        || t.status().state == State::Idle && t.announce(a, 60, "").get("failure reason").is_none(),
    );
    assert!(
        published(&backups).is_empty(),
        "the tracker resumed only after the backup was published"
    );
    let o = t.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(o.outcome, Outcome::Completed, "{o:?}");
    assert!(
        o.quiesced_secs < 3.5,
        "the tracker waited for the whole dump: quiesced {} s",
        o.quiesced_secs
    );
    assert_eq!(published(&backups).len(), 1);
    let out = sidecar_output(&env, &["verify", "latest"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env
}

/// With `--single-transaction` the dump's snapshot is fixed once it prints
/// its first table, so the tracker resumes then, while the dump streams on.
/// The dump here is the real one followed by a 4 s tail: with a release at
/// the end of the dump the tracker would refuse announces for over 4 s.
#[test]
fn mariadb_reject_tracker_resumes_while_the_dump_still_streams() {
    let Some(m) = maria() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = m.create_db("early");
    let t = start_mysql_tracker(d, &m, &db.name, "reject");
    let a = info_hash(12, 1);
    complete_n(&t, &a, 1, 3);
    let script = d.join("slow-tail-dump.sh");
    write_script(
        &script,
        "#!/bin/sh\nmariadb-dump \"$@\" || exit $?\nsleep 4\n",
    );
    let env = resumes_while_the_dump_streams(
        &t,
        d,
        m.sidecar_env(&db.name),
        "MYSQL_DUMP_COMMAND",
        &script,
        &a,
    );
    let restored = m.create_db("early_restored");
    let out = sidecar_output(&env, &["restore", "latest", "--database", &restored.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(m.counts(&restored.name).get(&hex(&a)), Some(&3));
}

/// Restores the dump into a new MariaDB database and starts a fresh tracker on it.
#[test]
fn mariadb_restore_drill_fresh_tracker_scrapes_snapshot_counts() {
    let Some(m) = maria() else { return };
    let (dir, _db, done) = mariadb_flow(&m, "defer-writes");
    let target = m.create_db("restored");
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--database", &target.name],
    );
    assert!(out.status.success());
    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let t2 = start_mysql_tracker(&fresh, &m, &target.name, "reject");
    let (a, b) = (info_hash(7, A), info_hash(7, B));
    assert_eq!(t2.scrape_downloaded(&[a, b]), done.at_snapshot);
    assert_ne!(done.at_snapshot, done.after);
}

fn postgres_flow(pg: &Pg, policy: &'static str) -> (tempfile::TempDir, PgDb, Done) {
    let dir = tempdir();
    let db = pg.create_db("happy");
    let tracker = start_postgres_tracker(dir.path(), pg, &db.name, policy);
    let done = window_flow(dir.path(), tracker, pg.sidecar_env(&db.name));
    let (a, b) = (hex(&info_hash(7, A)), hex(&info_hash(7, B)));
    let want = done.after.clone();
    wait_until(
        Duration::from_secs(10),
        "counts persisted in PostgreSQL after resume",
        || {
            let c = pg.counts(&db.name);
            c.get(&a) == Some(&want[0]) && c.get(&b) == Some(&want[1])
        },
    );
    (dir, db, done)
}

/// Restores the archive into a new database, refuses a second restore
/// into it without `--force`, and starts a fresh tracker on it whose
/// scrape counts are exactly those at the snapshot.
fn postgres_restore_drill(pg: &Pg, policy: &'static str) {
    let (dir, _db, done) = postgres_flow(pg, policy);
    let target = pg.create_db("restored");
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--database", &target.name],
    );
    assert!(out.status.success());
    let (a, b) = (info_hash(7, A), info_hash(7, B));
    let restored = pg.counts(&target.name);
    assert_eq!(restored.len(), 2, "{restored:?}");
    assert_eq!(restored.get(&hex(&a)), Some(&done.at_snapshot[0]));
    assert_eq!(restored.get(&hex(&b)), Some(&done.at_snapshot[1]));
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--database", &target.name],
    );
    assert!(!out.status.success(), "a non-empty target needs --force");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    pg.sql_in(&target.name, "UPDATE torrents SET completed = 0");
    let out = sidecar_output(
        &done.sidecar_env,
        &["restore", "latest", "--database", &target.name, "--force"],
    );
    assert!(out.status.success());
    assert_eq!(pg.counts(&target.name), restored);

    let fresh = dir.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let t2 = start_postgres_tracker(&fresh, pg, &target.name, "reject");
    assert_eq!(t2.scrape_downloaded(&[a, b]), done.at_snapshot);
}

#[test]
fn postgres_reject_window_publishes_one_verified_backup_restoring_exact_counts() {
    let Some(pg) = postgres() else { return };
    postgres_restore_drill(&pg, "reject");
}

#[test]
fn postgres_defer_writes_window_publishes_one_verified_backup_restoring_exact_counts() {
    let Some(pg) = postgres() else { return };
    postgres_restore_drill(&pg, "defer-writes");
}

/// A dump program wrapping the real `pg_dump` in `dir`: `before` runs
/// before it, `after` once it succeeded.
fn pg_dump_wrapper(dir: &Path, before: &str, after: &str) -> PathBuf {
    dump_script(
        dir,
        "pg-dump-wrapper.sh",
        &format!("{before}\npg_dump \"$@\" || exit $?\n{after}"),
    )
}

/// The tracker resumes once the snapshot is exported, while the dump
/// streams on. The dump here is the real one followed by a 4 s tail: with
/// a release at the end of the dump the tracker would refuse announces for
/// over 4 s.
#[test]
fn postgres_reject_tracker_resumes_while_the_dump_still_streams() {
    let Some(pg) = postgres() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = pg.create_db("early");
    let t = start_postgres_tracker(d, &pg, &db.name, "reject");
    let a = info_hash(12, 1);
    complete_n(&t, &a, 1, 3);
    let script = pg_dump_wrapper(d, "", "sleep 4");
    resumes_while_the_dump_streams(
        &t,
        d,
        pg.sidecar_env(&db.name),
        "POSTGRES_DUMP_COMMAND",
        &script,
        &a,
    );
}

/// The snapshot is fixed at the release: a completion counted after the
/// release (while `pg_dump` has not even started) reaches the database but
/// not the backup.
#[test]
fn postgres_write_after_release_is_absent_from_the_backup_and_present_in_the_database() {
    let Some(pg) = postgres() else { return };
    let dir = tempdir();
    let d = dir.path();
    let db = pg.create_db("afterrelease");
    let t = start_postgres_tracker(d, &pg, &db.name, "reject");
    let a = info_hash(13, 1);
    complete_n(&t, &a, 1, 3);
    // pg_dump starts only once the test says so, long after the release.
    let go = d.join("go");
    let script = pg_dump_wrapper(
        d,
        &format!("while [ ! -e {} ]; do sleep 0.05; done", go.display()),
        "",
    );
    let backups = d.join("backups");
    let env = sidecar_env_with_dump(
        &t,
        &backups,
        pg.sidecar_env(&db.name),
        "POSTGRES_DUMP_COMMAND",
        &script,
    );
    let _sidecar = spawn_sidecar(d, "after", &env);

    let id = t.api().open_window(60);
    wait_until(Duration::from_secs(10), "tracker released", || {
        t.status().state == State::Idle
    });
    t.announce_ok(&a, 99, "completed");
    wait_until(
        Duration::from_secs(10),
        "write after release persisted",
        || pg.counts(&db.name).get(&hex(&a)) == Some(&4),
    );
    std::fs::write(&go, "").unwrap();
    let o = t.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(o.outcome, Outcome::Completed, "{o:?}");

    let restored = pg.create_db("afterrelease_restored");
    let out = sidecar_output(&env, &["restore", "latest", "--database", &restored.name]);
    assert!(out.status.success());
    assert_eq!(pg.counts(&restored.name).get(&hex(&a)), Some(&3));
    assert_eq!(pg.counts(&db.name).get(&hex(&a)), Some(&4));
}

/// A busy tracker always has an announce in flight. Under `defer-writes`
/// announces keep flowing through the window, so the drain must not wait
/// for them (only for database writes); the window must still reach
/// `ready`, be claimed and complete while clients keep announcing.
#[test]
fn defer_writes_window_completes_while_announces_keep_flowing() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempdir();
    let d = dir.path();
    let t = Tracker::start(d, &TrackerConfig::sqlite(d, "defer-writes"));
    let backups = d.join("backups");
    let sidecar = spawn_sidecar(d, "busy", &sidecar_env(&t, &backups));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..4u32)
        .map(|c| {
            let (stop, refused, served, addr) =
                (stop.clone(), refused.clone(), served.clone(), t.http);
            std::thread::spawn(move || {
                let mut k = KeepAlive::connect(addr).unwrap();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let (code, body) = k
                        .get(&announce_path(
                            &info_hash(11, i % 8),
                            c << 8 | (i & 0xFF),
                            "",
                        ))
                        .unwrap();
                    assert_eq!(code, 200);
                    if body.windows(14).any(|w| w == b"failure reason") {
                        refused.fetch_add(1, Ordering::Relaxed);
                    } else {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let id = t.api().open_window(30);
        outcomes.push(t.wait_outcome(&id, Duration::from_secs(30)));
        t.wait_state(State::Idle, Duration::from_secs(10));
    }
    stop.store(true, Ordering::Relaxed);
    for h in load {
        h.join().unwrap();
    }
    assert_eq!(refused.load(Ordering::Relaxed), 0);
    assert!(served.load(Ordering::Relaxed) > 100);
    for o in &outcomes {
        assert_eq!(
            o.outcome,
            Outcome::Completed,
            "{o:?}\nsidecar log:\n{}",
            sidecar.log_text()
        );
    }
    assert_eq!(published(&backups).len(), 3);
}
