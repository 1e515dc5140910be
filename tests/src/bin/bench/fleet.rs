//! `bench fleet`: one sidecar, N tracker instances on one MariaDB database
//! (the multi-instance deployment), with N = 1, 3 and 8 in one run.
//!
//! ```text
//! bench fleet [--windows W] [--sizes 1,3,8]     (needs TEST_MARIADB_URL etc.)
//! ```
//!
//! For every N: N real `reference-tracker` processes on one database, one
//! `maintenance-sidecar run` with all N URLs, and W windows opened on all
//! instances at once (`maintenance-sidecar open-window`). From the
//! trackers' own log timestamps, per window:
//!
//! - readiness-to-claim latency of every instance: the quiesce hook's
//!   `database flushed` → `window claimed`;
//! - slowest quiesce: from the first window's opening (the outcome's
//!   `opened_at`) to the last instance's `database flushed` (nothing can be
//!   snapshotted before every instance has flushed);
//! - total pause: from the first opening to the last instance serving
//!   again (`opened_at + quiesced_secs` of each outcome);
//! - snapshot: last `window claimed` → first `released` (the dump's start
//!   up to its first table, when MariaDB's snapshot exists);
//! - overhead = pause − slowest quiesce (claims, snapshot, releases).
//!   Goal: at N = 8 no more than 50 ms.
//!
//! Medians over the windows (latency: median and max over every instance
//! and window).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use maintenance_e2e::*;

/// `bench fleet`: one sidecar, N reference trackers on one MariaDB.
#[derive(Debug, clap::Args)]
pub struct FleetOpts {
    /// Windows per fleet size.
    #[arg(long, default_value_t = 10)]
    windows: usize,
    /// Fleet sizes (trackers per run).
    #[arg(long, value_delimiter = ',', default_value = "1,3,8")]
    sizes: Vec<usize>,
}

/// First time a log line mentions `what` and `id`.
fn at(log: &str, what: &str, id: &str) -> Option<DateTime<Utc>> {
    log.lines()
        .find(|l| l.contains(what) && l.contains(id))
        .and_then(super::log_time)
}

fn ms(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

struct Figures {
    latency: Vec<f64>,
    quiesce: Vec<f64>,
    pause: Vec<f64>,
    snapshot: Vec<f64>,
    overhead: Vec<f64>,
}

fn one_size(m: &Maria, dir: &Path, n: usize, windows: usize) -> Figures {
    let db = m.create_db("bench-fleet");
    let trackers: Vec<Tracker> = (0..n)
        .map(|i| start_mysql_tracker(&dir.join(format!("t{i}")), m, &db.name, "reject"))
        .collect();
    let backups = dir.join("backups");
    let mut env = sidecar_env(&trackers[0], &backups);
    env.extend(m.sidecar_env(&db.name));
    set_env(&mut env, "MAINTENANCE_URL", &maintenance_urls(&trackers));
    set_env(&mut env, "BACKUP_KEEP_LAST", "1");
    set_env(&mut env, "BACKUP_RETENTION_DAYS", "0");
    let sidecar = spawn_sidecar(dir, "fleet", &env);
    wait_until(Duration::from_secs(10), "sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
    for (i, t) in trackers.iter().enumerate() {
        complete_n(t, &info_hash(0xF1, i as u32), 1, 3);
    }
    let mut f = Figures {
        latency: Vec::new(),
        quiesce: Vec::new(),
        pause: Vec::new(),
        snapshot: Vec::new(),
        overhead: Vec::new(),
    };
    for _ in 0..windows {
        let out = sidecar_output(&env, &["open-window", "--duration", "60"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        let mut outcomes = Vec::new();
        for (t, id) in trackers.iter().zip(&ids) {
            let o = t.wait_outcome(id, Duration::from_secs(60));
            assert_eq!(
                o.outcome,
                Outcome::Completed,
                "{o:?}\n{}",
                sidecar.log_text()
            );
            outcomes.push(o);
        }
        let mut opened = Vec::new();
        let mut flushed = Vec::new();
        let mut claimed = Vec::new();
        let mut released = Vec::new();
        let mut resumed = Vec::new();
        for (t, (id, o)) in trackers.iter().zip(ids.iter().zip(&outcomes)) {
            let log = t.proc.log_text();
            let r = at(&log, "database flushed", id).expect("quiesce hook line");
            let c = at(&log, "window claimed", id).expect("claimed line");
            let rel = at(&log, "released: tracker resuming", id).expect("released line");
            f.latency.push(ms(r, c));
            opened.push(o.opened_at);
            flushed.push(r);
            claimed.push(c);
            released.push(rel);
            resumed
                .push(o.opened_at + chrono::Duration::microseconds((o.quiesced_secs * 1e6) as i64));
        }
        let first = *opened.iter().min().unwrap();
        let quiesce = ms(first, *flushed.iter().max().unwrap());
        let pause = ms(first, *resumed.iter().max().unwrap());
        let snapshot = ms(
            *claimed.iter().max().unwrap(),
            *released.iter().min().unwrap(),
        );
        f.quiesce.push(quiesce);
        f.pause.push(pause);
        f.snapshot.push(snapshot);
        f.overhead.push(pause - quiesce);
        // The sidecar finishes the backup (retention, webhook) before the
        // next window, as between nightly windows.
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(sidecar);
    drop(trackers);
    f
}

/// Entry point of `bench fleet`.
pub fn run(o: FleetOpts) {
    let Some(m) = maria() else {
        panic!("bench fleet needs a MariaDB: start one with scripts/test-mariadb.sh and export its TEST_MARIADB_* lines");
    };
    println!("# bench fleet: one sidecar, N reference trackers on one MariaDB database, {} windows per N", o.windows);
    println!("# binaries: {}", bin_dir().display());
    let mut rows = BTreeMap::new();
    for &n in &o.sizes {
        let dir = tempdir();
        let f = one_size(&m, dir.path(), n, o.windows);
        let lat_max = f.latency.iter().cloned().fold(0.0, f64::max);
        let row = (
            median(&f.latency),
            lat_max,
            median(&f.quiesce),
            median(&f.pause),
            median(&f.overhead),
            median(&f.snapshot),
        );
        println!(
            "N={n}: readiness-to-claim median {:.1} ms, max {:.1} ms; slowest quiesce {:.1} ms; pause {:.1} ms; overhead {:.1} ms (snapshot {:.1} ms)",
            row.0, row.1, row.2, row.3, row.4, row.5
        );
        rows.insert(n, row);
    }
    println!("\n| instances | readiness-to-claim median | max | slowest quiesce | total pause | pause − slowest quiesce | of which snapshot |");
    println!("|---|---|---|---|---|---|---|");
    for (n, r) in &rows {
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            r.0, r.1, r.2, r.3, r.4, r.5
        );
    }
    if let Some(r) = rows.get(&8) {
        println!(
            "RESULT fleet: N=8 pause {:.1} ms, slowest quiesce {:.1} ms, overhead {:.1} ms of which snapshot {:.1} ms (goal <= 50 ms): {}",
            r.3,
            r.2,
            r.4,
            r.5,
            if r.4 <= 50.0 { "met" } else { "NOT met" }
        );
    }
}
