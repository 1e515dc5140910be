//! Benchmark 5: the write pause of a PostgreSQL window, released as soon
//! as the sidecar has exported its snapshot, beside the pause if the
//! release waited for the end of the dump and beside the host-cron outage
//! (stop the tracker, back up, start), all on one `torrents` table in one
//! run; first on a small table, then on one of at least `--size-mib`.
//!
//! Needs the cluster of `TEST_POSTGRES_URL` (`scripts/test-postgres.sh`);
//! `BENCH_POSTGRES_DB` names an existing database to reuse for the large
//! table (it is filled only up to the size asked, never dropped).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

use super::{median, outage, run_load, stop_load, subdir, Opts, PACE};

/// Fills `torrents` of `db` until the table (heap only) holds at least
/// `mib` MiB; returns its size in MiB.
pub(super) fn grow_table(pg: &Pg, db: &str, mib: u64) -> f64 {
    let t = Instant::now();
    // ~84 bytes a row on disk (tuple header, id, 40-char hash, count).
    let want_rows = (mib << 20) / 84 + 1;
    let have: i64 = pg.scalar(db, "SELECT count(*) FROM torrents");
    if (have as u64) < want_rows {
        // The unique index is rebuilt once at the end, not per row.
        pg.sql_in(
            db,
            &format!(
                "ALTER TABLE torrents DROP CONSTRAINT torrents_info_hash_key;
                 INSERT INTO torrents (info_hash, completed)
                 SELECT lpad(to_hex(g), 40, '0'), g % 1000 FROM generate_series({}, {}) g;
                 ALTER TABLE torrents ADD CONSTRAINT torrents_info_hash_key UNIQUE (info_hash);",
                have + 1,
                want_rows
            ),
        );
        pg.sql_in(db, "VACUUM ANALYZE torrents");
    }
    let figures = pg.sql_in(
        db,
        "SELECT pg_relation_size('torrents'), pg_total_relation_size('torrents'), count(*) FROM torrents",
    );
    let [size, total, rows]: [f64; 3] = figures
        .trim()
        .split('|')
        .map(|v| v.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|v| panic!("table figures: {figures:?} ({v:?})"));
    let (size, total) = (size / 1048576.0, total / 1048576.0);
    println!(
        "# torrents: {rows} rows, table {size:.0} MiB, with index {total:.0} MiB (filled in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    size
}

/// One measured window: client-seen refusal span, the coordinator's
/// quiesced time, and the backup's phases.
struct PgRun {
    outage_secs: f64,
    refused: usize,
    quiesced_secs: f64,
    dump_after_release_secs: f64,
    total_secs: f64,
}

/// A tracker on `db` in a fresh `name` folder (lease 10 s), its backup
/// folder, and the sidecar environment for both.
fn tracker_and_sidecar_env(
    o: &Opts,
    pg: &Pg,
    db: &str,
    name: &str,
) -> (PathBuf, Tracker, PathBuf, Vec<(String, String)>) {
    let d = subdir(o, name);
    let mut cfg = tracker_config(&d, pg, db);
    cfg.lease_ttl = "10s";
    let t = Tracker::start_with_env(&d, &cfg, &pg.tracker_env());
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    env.extend(pg.sidecar_env(db));
    (d, t, backups, env)
}

/// A `reject` window with the sidecar in `run` mode (early release).
fn early_release(o: &Opts, pg: &Pg, db: &str, run: usize) -> PgRun {
    let (d, t, backups, env) = tracker_and_sidecar_env(o, pg, db, &format!("pg-early-{run}"));
    let sidecar = spawn_sidecar(&d, "bench", &env);
    std::thread::sleep(Duration::from_millis(500));
    let stop = Arc::new(AtomicBool::new(false));
    let (_, h) = run_load(t.http, 8, stop.clone(), false, true, PACE);
    std::thread::sleep(Duration::from_millis(500));
    let id = t.api().open_window(600);
    let out = t.wait_outcome(&id, Duration::from_secs(o.backup_cap_secs * 3));
    std::thread::sleep(Duration::from_millis(300));
    let ev = stop_load(&stop, h);
    assert_eq!(
        out.outcome,
        Outcome::Completed,
        "{out:?}\n{}",
        sidecar.log_text()
    );
    let report = out.report.clone().unwrap();
    let (refused, _, outage_secs) = outage(&ev);
    let phase = |p: &str| report.durations_secs.get(p).copied().unwrap_or(f64::NAN);
    drop(sidecar);
    drop(t);
    let _ = std::fs::remove_dir_all(&backups);
    PgRun {
        outage_secs,
        refused,
        quiesced_secs: out.quiesced_secs,
        dump_after_release_secs: phase("compress"),
        total_secs: phase("total"),
    }
}

/// The same window, but the tracker stays quiesced until the whole dump
/// is written: the window is held `ready` while `maintenance-sidecar once`
/// dumps (and verifies), then aborted, which resumes the tracker.
fn release_at_end(o: &Opts, pg: &Pg, db: &str) -> (f64, usize, f64) {
    let (_, t, backups, mut env) = tracker_and_sidecar_env(o, pg, db, "pg-late");
    env.retain(|(k, _)| !k.starts_with("MAINTENANCE_"));
    let stop = Arc::new(AtomicBool::new(false));
    let (_, h) = run_load(t.http, 8, stop.clone(), false, true, PACE);
    std::thread::sleep(Duration::from_millis(500));
    let id = t.api().open_window(600);
    t.wait_state(State::Ready, Duration::from_secs(30));
    let t0 = Instant::now();
    let out = sidecar_output(&env, &["once"]);
    assert!(out.status.success(), "sidecar once failed");
    let dump_secs = t0.elapsed().as_secs_f64();
    let (code, body) = t
        .api()
        .post("abort", serde_json::json!({ "window_id": id }));
    assert_eq!(code, 200, "{body}");
    t.wait_state(State::Idle, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let ev = stop_load(&stop, h);
    let (refused, _, span) = outage(&ev);
    drop(t);
    let _ = std::fs::remove_dir_all(&backups);
    (span, refused, dump_secs)
}

/// Host cron: SIGTERM the tracker, `maintenance-sidecar once`, start it
/// again; the outage clients see.
fn host_cron(o: &Opts, pg: &Pg, db: &str) -> (f64, usize, f64) {
    let d = subdir(o, "pg-hostcron");
    let mut cfg = tracker_config(&d, pg, db).fixed_ports();
    cfg.maintenance = false;
    let mut t = Tracker::start_with_env(&d, &cfg, &pg.tracker_env());
    let backups = d.join("backups");
    let mut env = vec![("BACKUP_DIR".to_owned(), backups.display().to_string())];
    env.push(("BACKUP_POSTGRES_ENABLED".into(), "true".into()));
    env.extend(pg.sidecar_env(db));
    let stop = Arc::new(AtomicBool::new(false));
    let (_, h) = run_load(t.http, 8, stop.clone(), false, true, PACE);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    t.proc.terminate(Duration::from_secs(60));
    let tb = Instant::now();
    let out = sidecar_output(&env, &["once"]);
    assert!(out.status.success(), "sidecar once failed");
    let backup_secs = tb.elapsed().as_secs_f64();
    let t2 = Tracker::start_with_env(&d, &cfg, &pg.tracker_env());
    let total = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let ev = stop_load(&stop, h);
    let (_, errors, span) = outage(&ev);
    drop(t2);
    let _ = std::fs::remove_dir_all(&backups);
    println!(
        "host-cron: stop + backup {backup_secs:.1} s + start = {total:.1} s down; outage seen by clients {span:.3} s ({errors} failed requests)"
    );
    (span, errors, backup_secs)
}

fn measure(o: &Opts, pg: &Pg, db: &str, label: &str, rounds: usize, baselines: bool) {
    let runs: Vec<PgRun> = (1..=rounds).map(|r| early_release(o, pg, db, r)).collect();
    for (i, r) in runs.iter().enumerate() {
        println!(
            "{label} early release run {}: write pause (quiesced) {:.3} s; refusal seen by clients {:.3} s ({} refused); dump streamed on after release {:.1} s; whole backup {:.1} s",
            i + 1,
            r.quiesced_secs,
            r.outage_secs,
            r.refused,
            r.dump_after_release_secs,
            r.total_secs
        );
    }
    let q: Vec<f64> = runs.iter().map(|r| r.quiesced_secs).collect();
    let s: Vec<f64> = runs.iter().map(|r| r.outage_secs).collect();
    let after: Vec<f64> = runs.iter().map(|r| r.dump_after_release_secs).collect();
    let (q, s, after) = (median(&q), median(&s), median(&after));
    println!(
        "RESULT postgres-early-{label}: median write pause {:.0} ms, refusal seen by clients {:.0} ms (goal <= 100 ms: {}); dump after release {after:.1} s",
        q * 1000.0,
        s * 1000.0,
        if q <= 0.1 { "met" } else { "NOT met" }
    );
    if baselines {
        let (late, late_refused, dump) = release_at_end(o, pg, db);
        println!(
            "{label} release at the end of the dump: refusal seen by clients {late:.3} s ({late_refused} refused), backup {dump:.1} s"
        );
        let (cron, _, _) = host_cron(o, pg, db);
        println!(
            "RESULT postgres-{label}: write pause early release {:.0} ms; release at dump end {late:.3} s ({:.0}x); host-cron outage {cron:.3} s ({:.0}x)",
            s * 1000.0,
            late / s.max(0.001),
            cron / s.max(0.001)
        );
    }
}

/// Runs benchmark 5; prints a skip line without `TEST_POSTGRES_URL`.
pub fn run(o: &Opts) {
    println!("\n## 5. PostgreSQL: write pause with early release vs release at dump end vs host cron (8 keep-alive announce connections, 2 ms pause each)");
    let Some(pg) = postgres() else {
        println!(
            "SKIPPED: TEST_POSTGRES_URL is not set (scripts/test-postgres.sh starts a cluster)"
        );
        return;
    };
    let small_db = pg.create_db("bench_small");
    create_schema(o, &pg, &small_db.name);
    let mib = grow_table(&pg, &small_db.name, (o.size_mib / 64).max(4));
    measure(
        o,
        &pg,
        &small_db.name,
        &format!("{mib:.0}MiB"),
        o.rounds.min(3),
        false,
    );
    drop(small_db);
    // BENCH_POSTGRES_DB names a database kept between runs (filled once).
    let (_guard, big) = match std::env::var("BENCH_POSTGRES_DB") {
        Ok(name) if !name.is_empty() => (None, name),
        _ => {
            let db = pg.create_db("bench");
            create_schema(o, &pg, &db.name);
            let name = db.name.clone();
            (Some(db), name)
        }
    };
    let mib = grow_table(&pg, &big, o.size_mib);
    measure(o, &pg, &big, &format!("{mib:.0}MiB"), o.rounds.min(3), true);
}

/// A `reject` tracker on database `db`, given the time to load the
/// millions of rows the benchmark fills.
fn tracker_config(d: &std::path::Path, pg: &Pg, db: &str) -> TrackerConfig {
    let mut cfg = TrackerConfig::with_db(d, Db::Postgres(pg.url(db)), "reject");
    cfg.start_timeout = Duration::from_secs(180);
    cfg
}

/// The tracker creates its schema on first start.
fn create_schema(o: &Opts, pg: &Pg, db: &str) {
    drop(start_postgres_tracker(
        &subdir(o, "pg-schema"),
        pg,
        db,
        "reject",
    ));
}
