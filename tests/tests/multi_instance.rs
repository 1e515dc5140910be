//! Several tracker instances on one database, one sidecar, one backup.
//!
//! Three real `reference-tracker` processes write their completed counts to
//! one MariaDB (or PostgreSQL) database, each under its own announce load;
//! one `maintenance-sidecar run` is pointed at all three coordinators
//! (`MAINTENANCE_URL` with three URLs). Checked from outside: the windows'
//! outcomes on every instance, the published backup and its manifest, and
//! a restore of it, whose counts must equal the sum of what the three
//! trackers acknowledged before their windows opened (under `reject` an
//! announce is either acknowledged and flushed by the quiesce, or refused).
//! The failure rules too: an instance killed mid-window, one whose quiesce
//! fails (its database user loses its writes), windows opening within and
//! beyond the skew tolerance (`gather_timeout_secs`), under both policies;
//! and every failed round's one `backup finished` line (an instance never
//! ready under `all`, a shutdown while gathering).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use maintenance_e2e::*;
use maintenance_proto::{BackupReport, Participation};

const HASHES: u32 = 4;
/// Well within the 60 s windows `open-window` opens.
const WINDOW: Duration = Duration::from_secs(40);
/// Well before the gather timeout of 10 s.
const SOON: Duration = Duration::from_secs(5);

fn hashes() -> Vec<[u8; 20]> {
    (0..HASHES).map(|n| info_hash(16, n)).collect()
}

/// Completions from one load thread, split at the tracker's window.
#[derive(Debug, Default, Clone)]
struct Acked {
    /// Per info hash (hex): acknowledged before the first refusal, so
    /// flushed by the quiesce and inside the snapshot.
    before: BTreeMap<String, i64>,
    /// Every acknowledged completion, before and after the window.
    total: BTreeMap<String, i64>,
    refused: u64,
}

/// One thread announcing completions on one tracker until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Acked>,
}

impl Load {
    fn start(http: SocketAddr, first_peer: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut acked = Acked::default();
            let hs = hashes();
            let mut peer = first_peer;
            while !flag.load(Ordering::SeqCst) {
                let h = &hs[(peer % HASHES) as usize];
                let path = announce_path(h, peer, "completed");
                peer += 1;
                let Ok((200, body)) = http_get(http, &path) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let v = decode(&body).expect("bencoded announce answer");
                if v.get("failure reason").is_some() {
                    acked.refused += 1;
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                *acked.total.entry(hex(h)).or_default() += 1;
                if acked.refused == 0 {
                    *acked.before.entry(hex(h)).or_default() += 1;
                }
            }
            acked
        });
        Load { stop, handle }
    }

    fn finish(self) -> Acked {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("load thread")
    }
}

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http(addr, "GET", path, None, None)
}

fn sum(parts: &[Acked], f: impl Fn(&Acked) -> &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for p in parts {
        for (h, n) in f(p) {
            *out.entry(h.clone()).or_default() += n;
        }
    }
    out
}

/// The database side: MariaDB or PostgreSQL.
enum Server {
    Maria(Maria, MariaDb),
    Pg(Pg, PgDb),
}

impl Server {
    fn maria(m: Maria) -> Server {
        let db = m.create_db("multi");
        Server::Maria(m, db)
    }

    fn pg(pg: Pg) -> Server {
        let db = pg.create_db("multi");
        Server::Pg(pg, db)
    }

    fn start_tracker(&self, dir: &Path) -> Tracker {
        match self {
            Server::Maria(m, db) => start_mysql_tracker(dir, m, &db.name, "reject"),
            Server::Pg(pg, db) => start_postgres_tracker(dir, pg, &db.name, "reject"),
        }
    }

    fn sidecar_env(&self) -> Vec<(String, String)> {
        match self {
            Server::Maria(m, db) => m.sidecar_env(&db.name),
            Server::Pg(pg, db) => pg.sidecar_env(&db.name),
        }
    }

    fn counts(&self) -> BTreeMap<String, i64> {
        match self {
            Server::Maria(m, db) => m.counts(&db.name),
            Server::Pg(pg, db) => pg.counts(&db.name),
        }
    }

    /// Restores the latest backup into a fresh database; its counts.
    fn restored_counts(&self, env: &[(String, String)]) -> BTreeMap<String, i64> {
        let restore = |name: &str| {
            let out = sidecar_output(env, &["restore", "latest", "--database", name]);
            assert!(
                out.status.success(),
                "restore: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        match self {
            Server::Maria(m, _) => {
                let target = m.create_db("restored");
                restore(&target.name);
                m.counts(&target.name)
            }
            Server::Pg(pg, _) => {
                let target = pg.create_db("restored");
                restore(&target.name);
                pg.counts(&target.name)
            }
        }
    }
}

/// Three trackers on one database and the sidecar environment for all.
struct Fleet {
    dir: tempfile::TempDir,
    trackers: Vec<Tracker>,
    env: Vec<(String, String)>,
    backups: PathBuf,
}

fn fleet(server: &Server, require: &str, extra: &[(&str, &str)]) -> Fleet {
    let dir = tempdir();
    let trackers: Vec<Tracker> = (0..3)
        .map(|i| server.start_tracker(&dir.path().join(format!("t{i}"))))
        .collect();
    fleet_of(dir, trackers, server, require, extra)
}

/// The sidecar environment for `trackers`, started in `dir`.
fn fleet_of(
    dir: tempfile::TempDir,
    trackers: Vec<Tracker>,
    server: &Server,
    require: &str,
    extra: &[(&str, &str)],
) -> Fleet {
    let backups = dir.path().join("backups");
    let mut env = sidecar_env(&trackers[0], &backups);
    env.extend(server.sidecar_env());
    set_env(&mut env, "MAINTENANCE_URL", &maintenance_urls(&trackers));
    set_env(&mut env, "MAINTENANCE_REQUIRE", require);
    set_env(&mut env, "MAINTENANCE_GATHER_TIMEOUT", "10");
    for (k, v) in extra {
        set_env(&mut env, k, v);
    }
    Fleet {
        dir,
        trackers,
        env,
        backups,
    }
}

impl Fleet {
    fn d(&self) -> &Path {
        self.dir.path()
    }

    /// Opens a window on all three through `maintenance-sidecar
    /// open-window`; the ids in tracker order.
    fn open_windows(&self) -> Vec<String> {
        let out = sidecar_output(&self.env, &["open-window", "--duration", "60"]);
        assert!(
            out.status.success(),
            "open-window: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ids: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 3, "one window per instance: {text}");
        for (t, id) in self.trackers.iter().zip(&ids) {
            let line = text.lines().find(|l| l.starts_with(id.as_str())).unwrap();
            assert!(
                line.ends_with(&format!("http://{}/maintenance/v1", t.maintenance.unwrap())),
                "{text}"
            );
        }
        ids
    }
}

/// Happy path: load on all three, one window each, one backup whose
/// restore holds exactly the completions acknowledged before the windows.
fn three_instances_one_backup(server: &Server, require: &str) {
    let f = fleet(server, require, &[]);
    let sidecar = spawn_waiting_sidecar(f.d(), "fleet", &f.env);
    let loads: Vec<Load> = f
        .trackers
        .iter()
        .enumerate()
        .map(|(i, t)| Load::start(t.http, 1 + i as u32 * 1_000_000))
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let ids = f.open_windows();
    let outcomes: Vec<_> = f
        .trackers
        .iter()
        .zip(&ids)
        .map(|(t, id)| t.wait_outcome(id, Duration::from_secs(40)))
        .collect();
    // Some acknowledged completions after the resume too.
    std::thread::sleep(Duration::from_millis(300));
    let acked: Vec<Acked> = loads.into_iter().map(Load::finish).collect();
    let log = sidecar.log_text();
    let first = outcomes[0].report.clone().expect("report");
    for o in &outcomes {
        assert_eq!(o.outcome, Outcome::Completed, "{o:?}\n{log}");
        assert_eq!(
            o.report.as_ref(),
            Some(&first),
            "the same report on every instance"
        );
    }
    for a in &acked {
        assert!(a.refused > 0, "the load never met a window: {a:?}");
        assert!(
            !a.before.is_empty(),
            "no completion before the window: {a:?}"
        );
    }
    let part = first.participation.expect("participation in the report");
    assert_eq!(part.require, require);
    assert_eq!(part.instances.len(), 3);
    for (i, id) in part.instances.iter().zip(&ids) {
        assert!(i.took_part, "{part:?}");
        assert_eq!(i.window_id.as_ref().map(|w| w.as_str()), Some(id.as_str()));
    }
    let published = published(&f.backups);
    assert_eq!(published.len(), 1, "one backup for three windows");
    let manifest = manifest(&published[0]);
    assert_eq!(
        manifest["participation"]["instances"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        manifest["name"].as_str(),
        first.backup.as_deref(),
        "{manifest}"
    );

    let want_snapshot = sum(&acked, |a| &a.before);
    assert_eq!(
        server.restored_counts(&f.env),
        want_snapshot,
        "restored counts = the sum of what the three acknowledged before their windows"
    );
    let want_live = sum(&acked, |a| &a.total);
    wait_until(
        Duration::from_secs(10),
        "every acknowledged completion in the live database",
        || server.counts() == want_live,
    );
}

#[test]
fn mariadb_three_instances_require_all_one_backup_with_the_sum_of_their_counts() {
    let Some(m) = maria() else { return };
    three_instances_one_backup(&Server::maria(m), "all");
}

#[test]
fn mariadb_three_instances_require_reachable_one_backup_with_the_sum_of_their_counts() {
    let Some(m) = maria() else { return };
    three_instances_one_backup(&Server::maria(m), "reachable");
}

#[test]
fn postgres_three_instances_one_backup_with_the_sum_of_their_counts() {
    let Some(pg) = postgres() else { return };
    three_instances_one_backup(&Server::pg(pg), "all");
}

/// A dump that waits `secs` before running the real one, so the windows
/// stay claimed long enough to kill an instance in the middle.
fn slow_dump_env(dir: &Path, secs: f64) -> (String, String) {
    let script = dump_script(
        dir,
        "slow-dump.sh",
        &format!("sleep {secs}\nexec mariadb-dump \"$@\""),
    );
    ("MYSQL_DUMP_COMMAND".into(), script.display().to_string())
}

/// Opens windows on all three, waits until all are claimed, then kills the
/// third tracker; returns the fleet, the sidecar, the ids and when the
/// kill happened.
fn kill_one_mid_window(server: &Server, require: &str) -> (Fleet, Proc, Vec<String>, Instant) {
    let mut f = fleet(server, require, &[]);
    let (k, v) = slow_dump_env(f.d(), 3.0);
    set_env(&mut f.env, &k, &v);
    let sidecar = spawn_sidecar(f.d(), "fleet", &f.env);
    for t in &f.trackers {
        complete_n(t, &info_hash(17, 1), 1, 2);
    }
    let ids = f.open_windows();
    wait_until(Duration::from_secs(10), "all three claimed", || {
        f.trackers
            .iter()
            .all(|t| t.status().state == State::Claimed)
    });
    f.trackers[2].proc.sigkill();
    (f, sidecar, ids, Instant::now())
}

#[test]
fn mariadb_instance_killed_mid_window_require_all_fails_everywhere_at_once_nothing_published() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, ids, killed) = kill_one_mid_window(&server, "all");
    for (t, id) in f.trackers.iter().zip(&ids).take(2) {
        let o = t.wait_outcome(id, Duration::from_secs(10));
        assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{}", sidecar.log_text());
        let err = o.report.and_then(|r| r.error).unwrap_or_default();
        assert!(err.contains("cancelled on every instance"), "{err}");
        assert!(
            err.contains(&t_url(&f.trackers[2])),
            "the error names the lost instance: {err}"
        );
    }
    let resumed = killed.elapsed();
    assert!(
        resumed < Duration::from_secs(2),
        "the others resumed {resumed:?} after the kill (the dump alone takes 3 s)"
    );
    for t in f.trackers.iter().take(2) {
        assert_eq!(t.status().state, State::Idle);
        t.announce_ok(&info_hash(17, 2), 99, "");
    }
    // Every backup ends with one `backup finished` line: after it nothing
    // can be published any more.
    wait_until(Duration::from_secs(15), "the backup given up", || {
        sidecar.log_text().contains("backup finished")
    });
    assert_nothing_published(&f.backups);
    assert!(
        sidecar.log_text().contains("lease lost"),
        "{}",
        sidecar.log_text()
    );
}

fn t_url(t: &Tracker) -> String {
    format!("http://{}/maintenance/v1", t.maintenance.unwrap())
}

/// The windows of the first two instances, each ended as `want` within
/// `within` of opening, with the same report from the sidecar; returns
/// that report.
fn first_two_ended(
    f: &Fleet,
    sidecar: &Proc,
    ids: &[String],
    want: Outcome,
    within: Duration,
) -> BackupReport {
    let mut reports = Vec::new();
    for (t, id) in f.trackers.iter().zip(ids).take(2) {
        let o = t.wait_outcome(id, Duration::from_secs(20));
        assert_eq!(o.outcome, want, "{o:?}\n{}", sidecar.log_text());
        assert!(
            o.quiesced_secs < within.as_secs_f64(),
            "resumed {} s after opening:\n{}",
            o.quiesced_secs,
            sidecar.log_text()
        );
        reports.push(o.report.expect("the sidecar's report"));
    }
    assert_eq!(reports[0], reports[1], "the same report on both instances");
    reports.swap_remove(0)
}

#[test]
fn mariadb_instance_killed_mid_window_require_reachable_goes_on_and_names_the_missing_one() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, ids, _) = kill_one_mid_window(&server, "reachable");
    first_two_ended(&f, &sidecar, &ids, Outcome::Completed, WINDOW);
    let published = published(&f.backups);
    assert_eq!(published.len(), 1);
    let manifest = manifest(&published[0]);
    let instances = manifest["participation"]["instances"].as_array().unwrap();
    assert_eq!(manifest["participation"]["require"], "reachable");
    assert_eq!(instances.len(), 3);
    let missing: Vec<_> = instances
        .iter()
        .filter(|i| i["took_part"] == false)
        .collect();
    assert_eq!(missing.len(), 1, "{manifest}");
    assert_eq!(missing[0]["url"], t_url(&f.trackers[2]));
    assert_eq!(missing[0]["window_id"], ids[2].as_str());
    assert!(
        missing[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{manifest}"
    );
    assert!(
        sidecar.log_text().contains("missing"),
        "{}",
        sidecar.log_text()
    );
}

/// A MariaDB user of its own for one tracker instance, allowed to write
/// `torrents` through table grants that can be revoked while it runs (a
/// table grant change applies to the next statement of an open connection).
/// Revoking them is a real way to make that instance's write-behind flush,
/// and so its quiesce, fail while the other instances work.
struct OwnUser {
    maria: Maria,
    name: String,
    db: String,
}

impl OwnUser {
    /// Creates the user for `db`, whose tables must exist already: it may
    /// read, create and delete anywhere in `db`, and insert and update each
    /// of its tables through a table grant.
    fn create(m: &Maria, db: &str) -> OwnUser {
        let name = format!("fq{}", &unique_db_name("u")[4..]);
        let user = format!("'{name}'@'127.0.0.1'");
        let tables = m.sql(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}'"
        ));
        let grants: String = tables
            .lines()
            .map(|t| format!("GRANT INSERT, UPDATE ON `{db}`.`{t}` TO {user};"))
            .collect();
        assert!(grants.contains("`torrents`"), "{tables}");
        m.sql(&format!(
            "CREATE USER {user} IDENTIFIED BY 'own-pass';
             GRANT SELECT, CREATE, DELETE ON `{db}`.* TO {user}; {grants}"
        ));
        OwnUser {
            maria: Maria {
                user: name.clone(),
                password: "own-pass".into(),
                ..m.clone()
            },
            name,
            db: db.to_owned(),
        }
    }

    /// From the next statement on, this user cannot write `torrents`.
    fn revoke_writes(&self) {
        self.admin().sql(&format!(
            "REVOKE INSERT, UPDATE ON `{}`.`torrents` FROM '{}'@'127.0.0.1'",
            self.db, self.name
        ));
    }

    fn admin(&self) -> Maria {
        let m = maria().expect("TEST_MARIADB_URL");
        assert_ne!(m.user, self.name);
        m
    }
}

impl Drop for OwnUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::panic::catch_unwind(|| {
            maria().map(|m| m.sql(&format!("DROP USER IF EXISTS '{name}'@'127.0.0.1'")))
        });
    }
}

/// How long the second instance's quiesce is held up by a row lock.
const HELD: Duration = Duration::from_secs(3);

/// Three trackers on MariaDB, the third as a user of its own; after a
/// completion of each has reached the database, the third loses its
/// writes to `torrents` and acknowledges one more completion, so its
/// quiesce (which must flush it) fails. The second one flushes only when
/// it quiesces, and that flush waits for a row lock held by another
/// session for [`HELD`], so its window is still under way (quiescing) when
/// the third one's has failed. Windows are then opened on all three;
/// returns the fleet, the sidecar, the ids and the user.
fn quiesce_fails_on_one(server: &Server, require: &str) -> (Fleet, Proc, Vec<String>, OwnUser) {
    let Server::Maria(m, db) = server else {
        unreachable!("MariaDB only")
    };
    let dir = tempdir();
    let mut trackers = vec![server.start_tracker(&dir.path().join("t0"))];
    let d1 = dir.path().join("t1");
    let mut cfg = TrackerConfig::with_db(&d1, Db::Mysql(m.url(&db.name)), "reject");
    // Its periodic flush runs once, at start: its completions reach the
    // database only through the quiesce.
    cfg.flush_interval = "1h";
    trackers.push(Tracker::start_with_env(&d1, &cfg, &m.tracker_env()));
    let own = OwnUser::create(m, &db.name);
    trackers.push(start_mysql_tracker(
        &dir.path().join("t2"),
        &own.maria,
        &db.name,
        "reject",
    ));
    let f = fleet_of(dir, trackers, server, require, &[]);
    let sidecar = spawn_waiting_sidecar(f.d(), "fleet", &f.env);
    let h = info_hash(18, 1);
    for (i, t) in f.trackers.iter().enumerate() {
        complete_n(t, &h, 1 + 100 * i as u32, 1);
    }
    wait_until(Duration::from_secs(10), "two completions flushed", || {
        server.counts().get(&hex(&h)) == Some(&2)
    });
    own.revoke_writes();
    f.trackers[2].announce_ok(&h, 1000, "completed");
    let locker = m.clone();
    // The sleep names the database, so this test's session is told apart
    // from the others' in the process list.
    let sql = format!(
        "BEGIN; SELECT completed FROM `{}`.torrents WHERE info_hash = '{}' FOR UPDATE; \
         DO SLEEP({}), '{}'; COMMIT;",
        db.name,
        hex(&h),
        HELD.as_secs(),
        db.name
    );
    std::thread::spawn(move || locker.sql(&sql));
    let holding = format!(
        "SELECT COUNT(*) FROM information_schema.processlist \
         WHERE info LIKE 'DO SLEEP%{}%'",
        db.name
    );
    wait_until(Duration::from_secs(5), "the row lock held", || {
        m.sql(&holding).trim() == "1"
    });
    let ids = f.open_windows();
    (f, sidecar, ids, own)
}

/// The third instance's window ended `failed` by its own quiesce, with the
/// database's refusal as the reason.
fn assert_quiesce_failed(t: &Tracker, id: &str) -> WindowOutcome {
    let o = t.wait_outcome(id, Duration::from_secs(10));
    assert_eq!(o.outcome, Outcome::Failed, "{o:?}");
    let reason = o.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("quiesce hook failed") && reason.contains("denied"),
        "{reason}"
    );
    o
}

/// The second instance's window was held up by the row lock, so it was
/// still under way when the third one's had failed.
fn assert_held_up(t: &Tracker, id: &str) {
    let o = t.wait_outcome(id, Duration::from_secs(1));
    assert!(
        o.quiesced_secs >= HELD.as_secs_f64() - 1.5,
        "the row lock did not hold the flush up: {o:?}"
    );
}

/// The failed instance in a participation: not taking part, its window,
/// and why.
fn assert_names_failed_quiesce(part: &Participation, t: &Tracker, id: &str) {
    let missing: Vec<_> = part.missing().collect();
    assert_eq!(missing.len(), 1, "{part:?}");
    assert_eq!(missing[0].url, t_url(t));
    assert_eq!(missing[0].window_id.as_ref().map(|w| w.as_str()), Some(id));
    assert_eq!(missing[0].instance_id, Some(t.status().instance_id));
    let reason = missing[0].reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("quiesce hook failed") && reason.contains("denied"),
        "{reason}"
    );
}

#[test]
fn mariadb_quiesce_fails_on_one_instance_require_all_the_others_resume_at_once_nothing_published() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, ids, _own) = quiesce_fails_on_one(&server, "all");
    assert_quiesce_failed(&f.trackers[2], &ids[2]);
    // The gather timeout is 10 s and the windows last 60 s: these
    // instances resume as soon as the third one's window failed and the
    // second one (held up by the row lock) was claimed, with one report.
    let report = first_two_ended(&f, &sidecar, &ids, Outcome::Failed, SOON);
    assert_held_up(&f.trackers[1], &ids[1]);
    let err = report.error.clone().unwrap_or_default();
    assert!(
        err.contains("cancelled on every instance") && err.contains(&t_url(&f.trackers[2])),
        "{err}"
    );
    let part = report.participation.as_ref().expect("participation");
    assert_eq!(part.require, "all");
    assert_names_failed_quiesce(part, &f.trackers[2], &ids[2]);
    for t in f.trackers.iter().take(2) {
        assert_eq!(t.status().state, State::Idle);
        t.announce_ok(&info_hash(18, 2), 99, "");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_nothing_published(&f.backups);
    let log = sidecar.log_text();
    assert!(!log.contains("published"), "{log}");
    // Like every backup, the failed round ends with one summary line.
    let line = one_failed_summary_line(&log);
    assert!(line.contains("cancelled on every instance"), "{line}");
}

#[test]
fn mariadb_quiesce_fails_on_one_instance_require_reachable_goes_on_and_names_it() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, ids, _own) = quiesce_fails_on_one(&server, "reachable");
    assert_quiesce_failed(&f.trackers[2], &ids[2]);
    // Gone on without waiting for the 10 s gather timeout, but with the
    // second instance, held up by the row lock.
    let report = first_two_ended(&f, &sidecar, &ids, Outcome::Completed, SOON);
    assert_held_up(&f.trackers[1], &ids[1]);
    let part = report.participation.as_ref().expect("participation");
    assert_eq!(part.require, "reachable");
    assert_names_failed_quiesce(part, &f.trackers[2], &ids[2]);
    let published = published(&f.backups);
    assert_eq!(published.len(), 1);
    let manifest = manifest(&published[0]);
    let in_manifest: Participation =
        serde_json::from_value(manifest["participation"].clone()).expect("participation");
    assert_eq!(&in_manifest, part, "{manifest}");
    assert_eq!(manifest["name"].as_str(), report.backup.as_deref());
}

/// The instances' windows open at different times (clock skew, start-up):
/// within the gather timeout they still make one backup.
#[test]
fn mariadb_windows_opening_seconds_apart_within_the_tolerance_make_one_backup() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let f = fleet(&server, "all", &[]);
    let sidecar = spawn_waiting_sidecar(f.d(), "fleet", &f.env);
    let mut ids = Vec::new();
    for (i, t) in f.trackers.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
        // Different window lengths too, as from different configs.
        ids.push(t.api().open_window(40 + 10 * i as u64));
    }
    let outcomes: Vec<_> = f
        .trackers
        .iter()
        .zip(&ids)
        .map(|(t, id)| t.wait_outcome(id, Duration::from_secs(30)))
        .collect();
    for o in &outcomes {
        assert_eq!(
            o.outcome,
            Outcome::Completed,
            "{o:?}\n{}",
            sidecar.log_text()
        );
    }
    assert!(
        outcomes[0].quiesced_secs >= 2.5,
        "the first instance waited for the others: {outcomes:?}"
    );
    assert_eq!(published(&f.backups).len(), 1);
}

/// Opens windows on the first two instances at once and on the third 4 s
/// later, with a gather timeout of 2 s: beyond the tolerance. Returns the
/// fleet, the sidecar, the ids and the outcomes.
fn windows_apart_beyond_the_tolerance(
    server: &Server,
    require: &str,
) -> (Fleet, Proc, Vec<String>, Vec<WindowOutcome>) {
    let f = fleet(server, require, &[("MAINTENANCE_GATHER_TIMEOUT", "2")]);
    let sidecar = spawn_waiting_sidecar(f.d(), "fleet", &f.env);
    let mut ids: Vec<String> = f.trackers[..2]
        .iter()
        .map(|t| t.api().open_window(60))
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    ids.push(f.trackers[2].api().open_window(60));
    let outcomes = f
        .trackers
        .iter()
        .zip(&ids)
        .map(|(t, id)| t.wait_outcome(id, Duration::from_secs(20)))
        .collect();
    (f, sidecar, ids, outcomes)
}

/// The instances that `report` names as missing, as tracker indexes, and
/// the reason of each.
fn missing_in(f: &Fleet, report: &BackupReport) -> Vec<(usize, String)> {
    let part = report.participation.as_ref().expect("participation");
    assert_eq!(part.instances.len(), 3, "{part:?}");
    part.missing()
        .map(|i| {
            let n = f
                .trackers
                .iter()
                .position(|t| t_url(t) == i.url)
                .expect("a configured instance");
            (n, i.reason.clone().unwrap_or_default())
        })
        .collect()
}

/// Windows further apart than `gather_timeout_secs` under `all`: each round
/// fails (the first two instances at the first round's gather deadline,
/// before the third one's window even opens), every instance resumes, and
/// nothing is published.
#[test]
fn mariadb_windows_apart_beyond_the_tolerance_require_all_every_round_fails_nothing_published() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, _ids, outcomes) = windows_apart_beyond_the_tolerance(&server, "all");
    let log = sidecar.log_text();
    for o in &outcomes {
        assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{log}");
    }
    for o in &outcomes[..2] {
        assert!(
            o.ended_at < outcomes[2].opened_at,
            "the first round ended before the third window opened: {outcomes:?}"
        );
        let report = o.report.as_ref().expect("report");
        let missing = missing_in(&f, report);
        assert_eq!(missing.len(), 1, "{report:?}");
        assert_eq!(missing[0].0, 2);
        assert!(missing[0].1.contains("not ready within 2 s"), "{missing:?}");
    }
    assert_eq!(outcomes[0].report, outcomes[1].report);
    let third = outcomes[2].report.as_ref().expect("report");
    let missing: Vec<usize> = missing_in(&f, third).into_iter().map(|m| m.0).collect();
    assert_eq!(missing, vec![0, 1], "{third:?}");
    for t in &f.trackers {
        assert_eq!(t.status().state, State::Idle);
    }
    assert_nothing_published(&f.backups);
    assert!(!log.contains("published"), "{log}");
    // Each failed round ends with its summary line, naming the missing.
    let finished = finished_lines(&log);
    assert_eq!(finished.len(), 2, "one line per round:\n{log}");
    for line in finished {
        assert!(
            line.contains("outcome=\"failed\"")
                && line.contains("instance(s) missing, require = all"),
            "{line}"
        );
    }
}

/// `maintenance-sidecar run` (see `spawn_sidecar`), once it is waiting
/// for maintenance windows.
fn spawn_waiting_sidecar(dir: &std::path::Path, name: &str, env: &[(String, String)]) -> Proc {
    let sidecar = spawn_sidecar(dir, name, env);
    wait_until(Duration::from_secs(10), "sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
    sidecar
}

/// The sidecar's `backup finished` lines.
fn finished_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("backup finished"))
        .collect()
}

/// The log's one `backup finished` line, which says the backup failed.
fn one_failed_summary_line(log: &str) -> &str {
    let finished = finished_lines(log);
    assert_eq!(finished.len(), 1, "{log}");
    assert!(
        finished[0].contains("outcome=\"failed\""),
        "{}",
        finished[0]
    );
    finished[0]
}

/// Two SQLite trackers under `dir` (`t0`, `t1`), `reject` policy, each on
/// a database of its own.
fn two_sqlite_trackers(dir: &std::path::Path) -> Vec<Tracker> {
    (0..2)
        .map(|i| {
            let d = dir.join(format!("t{i}"));
            std::fs::create_dir_all(&d).unwrap();
            Tracker::start(&d, &TrackerConfig::sqlite(&d, "reject"))
        })
        .collect()
}

/// Two SQLite trackers (their own databases: no backup is taken) behind
/// one sidecar with `require = all` and a gather timeout of `gather` s.
fn two_trackers_require_all(
    gather: &str,
) -> (tempfile::TempDir, Vec<Tracker>, Vec<(String, String)>) {
    let dir = tempdir();
    let trackers = two_sqlite_trackers(dir.path());
    let mut env = sidecar_env(&trackers[0], &dir.path().join("backups"));
    set_env(&mut env, "MAINTENANCE_URL", &maintenance_urls(&trackers));
    set_env(&mut env, "MAINTENANCE_REQUIRE", "all");
    set_env(&mut env, "MAINTENANCE_GATHER_TIMEOUT", gather);
    (dir, trackers, env)
}

/// `require = all` with an instance that never becomes ready: the round
/// fails at the gather deadline, the claimed instance resumes with a
/// failure, nothing is published, and the round ends with one `backup
/// finished` line.
#[test]
fn an_instance_never_ready_under_require_all_ends_the_round_with_one_failed_summary_line() {
    let (dir, trackers, env) = two_trackers_require_all("2");
    let sidecar = spawn_waiting_sidecar(dir.path(), "never-ready", &env);
    let id = trackers[0].api().open_window(60);
    let o = trackers[0].wait_outcome(&id, Duration::from_secs(20));
    let log = sidecar.log_text();
    assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{log}");
    assert_eq!(trackers[1].status().state, State::Idle);
    assert_nothing_published(&dir.path().join("backups"));
    let line = one_failed_summary_line(&log);
    assert!(
        line.contains(&format!("window_id=\"{id}\""))
            && line.contains("instance(s) missing, require = all")
            && line.contains("not ready within 2 s"),
        "{line}"
    );
}

/// A shutdown while the round gathers (one window claimed, the other
/// instance not ready yet) cancels the claimed window and ends the round
/// with one `backup finished` line. An idle sidecar's shutdown, with
/// nothing claimed, is no backup and writes none.
#[test]
fn a_shutdown_while_gathering_ends_the_round_with_one_failed_summary_line() {
    let (dir, trackers, env) = two_trackers_require_all("60");
    let mut idle = spawn_waiting_sidecar(dir.path(), "idle", &env);
    assert!(idle.terminate(Duration::from_secs(20)).success());
    let log = idle.log_text();
    assert!(finished_lines(&log).is_empty(), "{log}");

    let mut sidecar = spawn_waiting_sidecar(dir.path(), "gathering", &env);
    let id = trackers[0].api().open_window(60);
    wait_until(Duration::from_secs(20), "the window claimed", || {
        sidecar.log_text().contains(&format!("claimed window {id}"))
    });
    assert!(sidecar.terminate(Duration::from_secs(20)).success());
    let o = trackers[0].wait_outcome(&id, Duration::from_secs(5));
    let log = sidecar.log_text();
    assert_eq!(o.outcome, Outcome::Failed, "{o:?}\n{log}");
    assert_nothing_published(&dir.path().join("backups"));
    let line = one_failed_summary_line(&log);
    assert!(
        line.contains(&format!("window_id=\"{id}\""))
            && line.contains("the sidecar is shutting down"),
        "{line}"
    );
}

/// The same under `reachable`: two partial backups, each naming the
/// instances it lacks.
#[test]
fn mariadb_windows_apart_beyond_the_tolerance_require_reachable_partial_backups_name_the_missing() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, _ids, outcomes) = windows_apart_beyond_the_tolerance(&server, "reachable");
    let log = sidecar.log_text();
    for o in &outcomes {
        assert_eq!(o.outcome, Outcome::Completed, "{o:?}\n{log}");
    }
    assert_eq!(outcomes[0].report, outcomes[1].report);
    let first = outcomes[0].report.as_ref().expect("report");
    let missing = missing_in(&f, first);
    assert_eq!(missing.len(), 1, "{first:?}");
    assert_eq!(missing[0].0, 2);
    assert!(missing[0].1.contains("not ready within 2 s"), "{missing:?}");
    let second = outcomes[2].report.as_ref().expect("report");
    let missing: Vec<usize> = missing_in(&f, second).into_iter().map(|m| m.0).collect();
    assert_eq!(missing, vec![0, 1], "{second:?}");
    let mut names: Vec<String> = published(&f.backups)
        .iter()
        .map(|b| manifest(b)["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut want = vec![
        first.backup.clone().unwrap(),
        second.backup.clone().unwrap(),
    ];
    want.sort();
    assert_eq!(names, want, "two partial backups");
}

/// An idle sidecar with several coordinators keeps one long-poll
/// connection to each, and no more.
#[test]
fn idle_sidecar_holds_one_long_poll_connection_per_coordinator() {
    let dir = tempdir();
    let trackers = two_sqlite_trackers(dir.path());
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, "[coordinator]\nlong_poll_secs = 2\n").unwrap();
    let mut env = sidecar_env(&trackers[0], &dir.path().join("backups"));
    set_env(&mut env, "MAINTENANCE_URL", &maintenance_urls(&trackers));
    set_env(&mut env, "SIDECAR_CONFIG", &config.display().to_string());
    let conns: Vec<ConnectionCounter> = trackers
        .iter()
        .map(|t| ConnectionCounter::start(t.maintenance.unwrap()))
        .collect();
    let mut sidecar = spawn_waiting_sidecar(dir.path(), "idle", &env);
    // Three long-polls of 2 s on each coordinator.
    std::thread::sleep(Duration::from_secs(7));
    for (c, t) in conns.into_iter().zip(&trackers) {
        let url = t.maintenance.unwrap();
        assert_eq!(c.finish(), 1, "connections opened to {url}");
    }
    assert!(
        sidecar.try_wait().is_none(),
        "the sidecar exited:\n{}",
        sidecar.log_text()
    );
}
