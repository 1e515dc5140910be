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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

const HASHES: u32 = 4;

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
    let backups = dir.path().join("backups");
    let mut env = sidecar_env(&trackers[0], &backups);
    env.extend(server.sidecar_env());
    let urls: Vec<String> = trackers
        .iter()
        .map(|t| format!("http://{}", t.maintenance.unwrap()))
        .collect();
    set_env(&mut env, "MAINTENANCE_URL", &urls.join(","));
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
    let sidecar = spawn_sidecar(f.d(), "fleet", &f.env);
    wait_until(Duration::from_secs(10), "sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
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
    std::thread::sleep(Duration::from_secs(3));
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

#[test]
fn mariadb_instance_killed_mid_window_require_reachable_goes_on_and_names_the_missing_one() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let (f, sidecar, ids, _) = kill_one_mid_window(&server, "reachable");
    let mut reports = Vec::new();
    for (t, id) in f.trackers.iter().zip(&ids).take(2) {
        let o = t.wait_outcome(id, Duration::from_secs(20));
        assert_eq!(
            o.outcome,
            Outcome::Completed,
            "{o:?}\n{}",
            sidecar.log_text()
        );
        reports.push(o.report.unwrap());
    }
    assert_eq!(reports[0], reports[1], "the same report on both instances");
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

/// The instances' windows open at different times (clock skew, start-up):
/// within the gather timeout they still make one backup.
#[test]
fn mariadb_windows_opening_seconds_apart_within_the_tolerance_make_one_backup() {
    let Some(m) = maria() else { return };
    let server = Server::maria(m);
    let f = fleet(&server, "all", &[]);
    let sidecar = spawn_sidecar(f.d(), "fleet", &f.env);
    wait_until(Duration::from_secs(10), "sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
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

/// An idle sidecar with several coordinators keeps one long-poll
/// connection to each, and no more.
#[test]
fn idle_sidecar_holds_one_long_poll_connection_per_coordinator() {
    let dir = tempdir();
    let trackers: Vec<Tracker> = (0..2)
        .map(|i| {
            let d = dir.path().join(format!("t{i}"));
            std::fs::create_dir_all(&d).unwrap();
            Tracker::start(&d, &TrackerConfig::sqlite(&d, "reject"))
        })
        .collect();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, "[coordinator]\nlong_poll_secs = 2\n").unwrap();
    let mut env = sidecar_env(&trackers[0], &dir.path().join("backups"));
    let urls: Vec<String> = trackers
        .iter()
        .map(|t| format!("http://{}", t.maintenance.unwrap()))
        .collect();
    set_env(&mut env, "MAINTENANCE_URL", &urls.join(","));
    set_env(&mut env, "SIDECAR_CONFIG", &config.display().to_string());
    let conns: Vec<ConnectionCounter> = trackers
        .iter()
        .map(|t| ConnectionCounter::start(t.maintenance.unwrap()))
        .collect();
    let mut sidecar = spawn_sidecar(dir.path(), "idle", &env);
    wait_until(Duration::from_secs(10), "the sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
    // Three long-polls of 2 s on each coordinator.
    std::thread::sleep(Duration::from_secs(7));
    for (c, url) in conns.into_iter().zip(&urls) {
        assert_eq!(c.finish(), 1, "connections opened to {url}");
    }
    assert!(
        sidecar.try_wait().is_none(),
        "the sidecar exited:\n{}",
        sidecar.log_text()
    );
}
