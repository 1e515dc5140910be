//! Benchmarks (run by hand, never timed tests). Each comparison runs side
//! by side with its baseline in one run and prints medians and ratios.
//!
//! ```text
//! cargo build --release -p reference-tracker -p maintenance-sidecar
//! cargo run --release -p maintenance-e2e --bin bench -- all      # 1 GiB database
//! cargo run --release -p maintenance-e2e --bin bench -- smoke    # 10 MiB, seconds
//! bench -- gate | downtime | snapshot | claim | idle | udp | postgres   [--size-mib N] [--dir D] [--rounds N] [--windows N] [--idle-secs S]   (bench -- help: every option, clap)
//! bench -- rto --db DB [--dir D] [--rounds N] [--no-full] [--artifact-from-cli] [--drop-db-after-backup]   # see bench/rto.rs
//! bench -- fleet [--windows 10] [--sizes 1,3,8]   # one sidecar, N trackers on one MariaDB; see bench/fleet.rs
//! bench -- offsite [--size-mib 2048] [--rounds 3] [--dir D]   # upload to moto vs rclone copy; see bench/offsite.rs
//! bench -- durability [--secs 5] [--conns 16] [--rounds 3]   # completed announces per journal_durability; see bench/durability.rs
//! BENCH_BASELINE_SIDECAR=/path/to/old/maintenance-sidecar bench -- idle | rto   # side by side with an older build
//! bench -- udp-announce ADDR N     # N lockstep UDP announces (for scripts/bench-gate-instructions.sh udp)
//! ```
//!
//! `idle` watches `maintenance-sidecar run` beside an idle tracker, then
//! with the tracker stopped: CPU share, connections (tracker up) and
//! attempts (tracker down) per minute, log lines per minute.
//!
//! `udp` measures raw UDP (BEP 15) announces per second, coordinator idle
//! and maintenance disabled side by side (wall clock, so only indicative on
//! a shared host; the instruction-count script gives the gate ratio).
//!
//! `postgres` (also part of `all` and `smoke`) needs `TEST_POSTGRES_URL`
//! (`scripts/test-postgres.sh`); without it, it prints a skip line.
//!
//! `downtime` also reports the sidecar's peak RSS (VmHWM) during the
//! backup and the sidecar's snapshot throughput; `snapshot` compares `cp`
//! and `sqlite3 .backup`, idle and while the tracker writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use maintenance_e2e::*;

#[path = "bench/dumps.rs"]
mod dumps;
#[path = "bench/fleet.rs"]
mod fleet;
#[path = "bench/rto.rs"]
mod rto;
#[path = "bench/scale.rs"]
mod scale;

#[path = "bench/postgres.rs"]
mod postgres;

#[path = "bench/offsite.rs"]
mod offsite;

#[path = "bench/durability.rs"]
mod durability;

#[path = "bench/torrust.rs"]
mod torrust;

#[path = "bench/footprint.rs"]
mod footprint;

struct Opts {
    size_mib: u64,
    dir: PathBuf,
    rounds: usize,
    round_secs: f64,
    conns: usize,
    windows: usize,
    backup_cap_secs: u64,
    idle_secs: u64,
}

/// The benchmarks (see the module doc); without a subcommand, `all`.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// The options of the suite modes; each default depends on `smoke`.
#[derive(Debug, Default, clap::Args)]
struct SuiteArgs {
    /// Database size (default 1024, smoke 10).
    #[arg(long)]
    size_mib: Option<u64>,
    /// Work folder (default /var/tmp/maintenance-bench; smoke: a fresh
    /// temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds (default 11, smoke 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per load round (default 3, smoke 0.5).
    #[arg(long)]
    round_secs: Option<f64>,
    /// Concurrent load connections.
    #[arg(long, default_value_t = 32)]
    conns: usize,
    /// Windows (default 100, smoke 3).
    #[arg(long)]
    windows: Option<usize>,
    /// Seconds per idle phase (default 60, smoke 2).
    #[arg(long)]
    idle_secs: Option<u64>,
}

/// What to run.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Every suite benchmark on a 1 GiB database.
    All(SuiteArgs),
    /// Every suite benchmark on 10 MiB, in seconds.
    Smoke(SuiteArgs),
    /// Gate overhead on announces.
    Gate(SuiteArgs),
    /// Tracker downtime during a backup.
    Downtime(SuiteArgs),
    /// Snapshot methods compared.
    Snapshot(SuiteArgs),
    /// Claim latency.
    Claim(SuiteArgs),
    /// An idle sidecar's cost.
    Idle(SuiteArgs),
    /// Raw UDP announces per second.
    Udp(SuiteArgs),
    /// PostgreSQL early release.
    Postgres(SuiteArgs),
    /// Restore time (bench/rto.rs).
    Rto(rto::RtoOpts),
    /// Off-site upload (bench/offsite.rs).
    Offsite(offsite::OffsiteOpts),
    /// Pinned snapshots of a large database (bench/scale.rs).
    Scale(scale::ScaleOpts),
    /// One sidecar, N trackers (bench/fleet.rs).
    Fleet(fleet::FleetOpts),
    /// The dump pipelines beside the dump tools alone (bench/dumps.rs).
    Dumps(dumps::DumpsOpts),
    /// What acknowledged-means-durable costs (bench/durability.rs).
    Durability(durability::DurabilityOpts),
    /// Online backup of the unmodified Torrust tracker (bench/torrust.rs).
    Torrust(torrust::TorrustOpts),
    /// The tracker's and sidecar's CPU and memory (bench/footprint.rs).
    Footprint(footprint::FootprintOpts),
    /// COUNT lockstep UDP announces to ADDR.
    UdpAnnounce {
        /// The tracker's UDP address.
        addr: std::net::SocketAddr,
        /// Announces to send.
        count: u32,
    },
}

fn main() {
    let (mode, args) = match Cli::parse().mode.unwrap_or(Mode::All(SuiteArgs::default())) {
        Mode::Rto(o) => return rto::run(o),
        Mode::Offsite(o) => return offsite::run(o),
        Mode::Scale(o) => return scale::run(o),
        Mode::Fleet(o) => return fleet::run(o),
        Mode::Durability(o) => return durability::run(o),
        Mode::Dumps(o) => return dumps::run(o),
        Mode::Torrust(o) => return torrust::run(o),
        Mode::Footprint(o) => return footprint::run(o),
        Mode::UdpAnnounce { addr, count } => return udp_announce_lockstep(addr, count),
        Mode::All(a) => ("all", a),
        Mode::Smoke(a) => ("smoke", a),
        Mode::Gate(a) => ("gate", a),
        Mode::Downtime(a) => ("downtime", a),
        Mode::Snapshot(a) => ("snapshot", a),
        Mode::Claim(a) => ("claim", a),
        Mode::Idle(a) => ("idle", a),
        Mode::Udp(a) => ("udp", a),
        Mode::Postgres(a) => ("postgres", a),
    };
    let smoke = mode == "smoke";
    let mut o = Opts {
        size_mib: args.size_mib.unwrap_or(if smoke { 10 } else { 1024 }),
        dir: args
            .dir
            .unwrap_or_else(|| PathBuf::from("/var/tmp/maintenance-bench")),
        rounds: args.rounds.unwrap_or(if smoke { 1 } else { 11 }),
        round_secs: args.round_secs.unwrap_or(if smoke { 0.5 } else { 3.0 }),
        conns: args.conns,
        windows: args.windows.unwrap_or(if smoke { 3 } else { 100 }),
        backup_cap_secs: if smoke { 20 } else { 180 },
        idle_secs: args.idle_secs.unwrap_or(if smoke { 2 } else { 60 }),
    };
    if smoke {
        o.dir =
            std::env::temp_dir().join(format!("maintenance-bench-smoke-{}", std::process::id()));
    }
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir).unwrap();
    println!(
        "# maintenance benchmarks: mode {mode}, database {} MiB, workdir {}",
        o.size_mib,
        o.dir.display()
    );
    println!("# binaries: {}", bin_dir().display());
    println!("# host: {} cores, {}", cores(), mem_total());
    let all = mode == "all" || smoke;
    if all || mode == "gate" {
        gate(&o);
    }
    if all || mode == "downtime" || mode == "snapshot" {
        let db = o.dir.join("big/tracker.db");
        make_big_db(&db, o.size_mib);
        if all || mode == "downtime" {
            downtime(&o, &db);
        }
        if all || mode == "snapshot" {
            snapshot(&o, &db);
        }
    }
    if all || mode == "claim" {
        claim_latency(&o);
    }
    if all || mode == "idle" {
        idle(&o);
    }
    if mode == "all" || mode == "udp" {
        udp_throughput(&o);
    }
    if all || mode == "postgres" {
        postgres::run(&o);
    }
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&o.dir);
    }
    println!("# done");
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .map(|kb| format!("MemTotal {kb}"))
        .unwrap_or_default()
}

/// A SQLite tracker in `subdir(o, name)` for a gate-overhead comparison:
/// coordinator idle (`maintenance`) or absent, flushing every second, with
/// a UDP listener when `udp_port` is given.
fn baseline_tracker(o: &Opts, name: &str, maintenance: bool, udp_port: Option<u16>) -> Tracker {
    let d = subdir(o, name);
    let mut c = TrackerConfig::sqlite(&d, "reject");
    c.flush_interval = "1s";
    c.maintenance = maintenance;
    c.udp_port = udp_port;
    Tracker::start(&d, &c)
}

/// The `p` quantile of `v` by nearest rank (`0.99` for a p99, `1.0` for the
/// maximum); for a p50, use [`median`].
fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// Events per second counted by `count` over `secs`, after a 300 ms warm-up.
fn rate_after_warmup(count: &AtomicU64, secs: f64) -> f64 {
    std::thread::sleep(Duration::from_millis(300));
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let n = count.load(Ordering::Relaxed) - c0;
    n as f64 / t0.elapsed().as_secs_f64()
}

fn subdir(o: &Opts, name: &str) -> PathBuf {
    let d = o.dir.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------
// Load generator

#[derive(Default)]
struct Events {
    ev: Vec<Event>,
}

/// One answer: (time it came, kind, latency) with kind 0 = served,
/// 1 = refused, 2 = connection error.
type Event = (Instant, u8, Duration);

/// Keep-alive announce load on `addr` from `conns` threads until `stop`.
/// `completed` makes every request an `event=completed` of a new peer.
fn run_load(
    addr: std::net::SocketAddr,
    conns: usize,
    stop: Arc<AtomicBool>,
    completed: bool,
    record: bool,
    pace: Duration,
) -> (Arc<AtomicU64>, Vec<std::thread::JoinHandle<Events>>) {
    let count = Arc::new(AtomicU64::new(0));
    let handles = (0..conns)
        .map(|c| {
            let stop = stop.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                let mut ev = Events::default();
                let mut conn: Option<KeepAlive> = None;
                let mut i: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    i = i.wrapping_add(1);
                    let hash = info_hash(0xB0, (c as u32 * 7 + i) % 64);
                    // Re-announces from a bounded set of peers (as real
                    // clients do), except completions, which need new peers.
                    let peer = if completed {
                        (c as u32) << 20 | (i & 0xFFFFF)
                    } else {
                        (c as u32) << 8 | (i & 0xFF)
                    };
                    let path = announce_path(&hash, peer, if completed { "completed" } else { "" });
                    if conn.is_none() {
                        conn = KeepAlive::connect(addr).ok();
                    }
                    let sent = Instant::now();
                    let res = match conn.as_mut() {
                        Some(k) => k.get(&path),
                        None => Err(std::io::Error::other("connect")),
                    };
                    let kind = match res {
                        Ok((200, body)) => {
                            if body.windows(14).any(|w| w == b"failure reason") {
                                1
                            } else {
                                count.fetch_add(1, Ordering::Relaxed);
                                0
                            }
                        }
                        _ => {
                            conn = None;
                            std::thread::sleep(Duration::from_millis(2));
                            2
                        }
                    };
                    if record {
                        let now = Instant::now();
                        ev.ev.push((now, kind, now - sent));
                    }
                    if !pace.is_zero() {
                        std::thread::sleep(pace);
                    }
                }
                ev
            })
        })
        .collect();
    (count, handles)
}

fn stop_load(stop: &AtomicBool, handles: Vec<std::thread::JoinHandle<Events>>) -> Vec<Event> {
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Event> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap().ev)
        .collect();
    all.sort_by_key(|e| e.0);
    all
}

/// (refused count, errors count, outage span in seconds): from the first
/// non-served response to the first served one after the last non-served.
fn outage(ev: &[Event]) -> (usize, usize, f64) {
    let refused = ev.iter().filter(|e| e.1 == 1).count();
    let errors = ev.iter().filter(|e| e.1 == 2).count();
    let first = ev.iter().position(|e| e.1 != 0);
    let last = ev.iter().rposition(|e| e.1 != 0);
    let span = match (first, last) {
        (Some(f), Some(l)) => {
            let end = ev[l..]
                .iter()
                .find(|e| e.1 == 0)
                .map(|e| e.0)
                .unwrap_or(ev[l].0);
            // Start at the last success before the first failure (the outage
            // began somewhere after it) for a conservative figure.
            let start = ev[..f]
                .iter()
                .rev()
                .find(|e| e.1 == 0)
                .map(|e| e.0)
                .unwrap_or(ev[f].0);
            end.duration_since(start).as_secs_f64()
        }
        _ => 0.0,
    };
    (refused, errors, span)
}

// ---------------------------------------------------------------------------
// 1. Gate overhead

fn gate(o: &Opts) {
    println!(
        "\n## 1. gate overhead: announce throughput, coordinator idle vs maintenance disabled"
    );
    println!("# three trackers: `idle` (coordinator embedded, idle), `off` and `off2` (no [maintenance]);");
    println!(
        "# off2/off is an A/A control: the noise floor of this machine for the same comparison."
    );
    let mk = |name: &str, maintenance: bool| baseline_tracker(o, name, maintenance, None);
    let trackers = [
        mk("gate-idle", true),
        mk("gate-off", false),
        mk("gate-off2", false),
    ];
    assert_eq!(trackers[0].status().state, State::Idle);
    let measure = |t: &Tracker| -> f64 {
        let stop = Arc::new(AtomicBool::new(false));
        let (count, h) = run_load(t.http, o.conns, stop.clone(), false, false, Duration::ZERO);
        let rate = rate_after_warmup(&count, o.round_secs);
        stop_load(&stop, h);
        rate
    };
    let mut rates: [Vec<f64>; 3] = [vec![], vec![], vec![]];
    let (mut ratios, mut aa) = (vec![], vec![]);
    for r in 0..o.rounds {
        // Rotate which tracker goes first.
        let mut got = [0.0; 3];
        for k in 0..3 {
            let i = (r + k) % 3;
            got[i] = measure(&trackers[i]);
        }
        println!(
            "round {r}: idle {:.0} req/s, off {:.0} req/s, off2 {:.0} req/s; idle/off {:.3}, A/A off2/off {:.3}",
            got[0], got[1], got[2], got[0] / got[1], got[2] / got[1]
        );
        for i in 0..3 {
            rates[i].push(got[i]);
        }
        ratios.push(got[0] / got[1]);
        aa.push(got[2] / got[1]);
    }
    // Paired rounds: idle and off loaded at the same time (half the
    // connections each), so machine noise hits both alike.
    let mut paired = vec![];
    for r in 0..o.rounds {
        let sa = Arc::new(AtomicBool::new(false));
        let sb = Arc::new(AtomicBool::new(false));
        let (ca, ha) = run_load(
            trackers[0].http,
            o.conns / 2,
            sa.clone(),
            false,
            false,
            Duration::ZERO,
        );
        let (cb, hb) = run_load(
            trackers[1].http,
            o.conns / 2,
            sb.clone(),
            false,
            false,
            Duration::ZERO,
        );
        std::thread::sleep(Duration::from_millis(300));
        let (a0, b0) = (ca.load(Ordering::Relaxed), cb.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs_f64(o.round_secs));
        let (a, b) = (
            ca.load(Ordering::Relaxed) - a0,
            cb.load(Ordering::Relaxed) - b0,
        );
        stop_load(&sa, ha);
        stop_load(&sb, hb);
        let secs = o.round_secs;
        println!(
            "paired round {r}: idle {:.0} req/s, off {:.0} req/s, ratio {:.3}",
            a as f64 / secs,
            b as f64 / secs,
            a as f64 / b as f64
        );
        paired.push(a as f64 / b as f64);
    }
    let mp = median(&paired);
    let [ri, ro, ro2] = rates;
    let (mi, mo, mo2) = (median(&ri), median(&ro), median(&ro2));
    let (mr, ma) = (median(&ratios), median(&aa));
    println!(
        "RESULT gate-alternating: median idle {mi:.0} req/s, off {mo:.0} req/s, off2 {mo2:.0} req/s; median per-round ratio idle/off {mr:.3} (goal >= 0.98: {}); A/A control off2/off {ma:.3}",
        if mr >= 0.98 { "met" } else { "NOT met" }
    );
    println!(
        "RESULT gate-paired: median ratio idle/off with both loaded at once {mp:.3} (goal >= 0.98: {})",
        if mp >= 0.98 { "met" } else { "NOT met" }
    );
}

// ---------------------------------------------------------------------------
// Big database

fn make_big_db(db: &Path, size_mib: u64) {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let t = Instant::now();
    let torrents: Vec<([u8; 20], i64)> = (0..64)
        .map(|i| (info_hash(0xB0, i), 1000 + i as i64))
        .collect();
    make_tracker_sqlite(db, &torrents, size_mib << 20);
    // Write the fresh database out so its writeback does not slow the first run.
    let _ = Command::new("sync").status();
    let size = std::fs::metadata(db).unwrap().len();
    println!(
        "\n# generated {} ({:.1} MiB, random blobs + 64 torrents) in {:.1} s",
        db.display(),
        size as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
}

fn db_size(db: &Path) -> f64 {
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
}

// ---------------------------------------------------------------------------
// 2. Downtime (+ 5. peak RSS, sidecar snapshot throughput)

/// Pause between requests on each of the 8 downtime-measuring connections
/// (about 3-4k announces/s in all): fine enough resolution, without the load
/// generator starving the sidecar of CPU on a 2-core machine.
const PACE: Duration = Duration::from_millis(2);

struct WindowRun {
    refused: usize,
    errors: usize,
    outage_secs: f64,
    snapshot_secs: f64,
    quiesced_secs: f64,
    total_secs: f64,
    hwm_kib: u64,
    /// Peak bytes of every file under the backup folder during the window
    /// (staging, artifact, temporary copies).
    peak_backup_bytes: u64,
    /// Peak size of the database's `-wal` file during the window.
    peak_wal_bytes: u64,
    /// Compressed bytes of the published backup.
    artifact_bytes: u64,
    /// Announce latency (ms) before the window opened: (p50, p99).
    idle_ms: (f64, f64),
    /// Announce latency (ms) from the window's opening to its outcome.
    backup_ms: (f64, f64),
    /// How long the sidecar held the pin (its log), when it said.
    pin_secs: Option<f64>,
}

/// (p50, p99) in ms of the served announces of `ev` in `[from, to)`.
fn latency_ms(ev: &[Event], from: Instant, to: Instant) -> (f64, f64) {
    let mut ms: Vec<f64> = ev
        .iter()
        .filter(|e| e.1 == 0 && e.0 >= from && e.0 < to)
        .map(|e| e.2.as_secs_f64() * 1000.0)
        .collect();
    if ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (median(&ms), percentile(&mut ms, 0.99))
}

/// The pin time the sidecar logs at the unpin (`pin held for X s`).
fn pin_secs(log: &str) -> Option<f64> {
    let rest = &log[log.find("pin held for ")? + "pin held for ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Bytes of every file under `dir`, recursively (0 when it is missing).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Samples the peaks of the backup folder and the `-wal` file every 50 ms
/// until `stop`; returns (peak backup bytes, peak WAL bytes).
fn sample_disk(
    backups: PathBuf,
    db: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut wal = db.into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (mut disk, mut wal_peak) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            disk = disk.max(tree_bytes(&backups));
            wal_peak = wal_peak.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(50));
        }
        (disk, wal_peak)
    })
}

fn window_run(
    o: &Opts,
    db: &Path,
    policy: &'static str,
    completed_load: bool,
    run: usize,
) -> WindowRun {
    let d = subdir(o, &format!("window-{policy}-{run}"));
    let mut cfg = TrackerConfig::with_db(&d, Db::Sqlite(db.to_owned()), policy);
    cfg.lease_ttl = "10s";
    let t = Tracker::start(&d, &cfg);
    let backups = d.join("backups");
    let mut env = sidecar_env(&t, &backups);
    // `BACKUP_ZSTD_WORKERS=1 bench scale` compares single-threaded zstd.
    if let Ok(n) = std::env::var("BACKUP_ZSTD_WORKERS") {
        set_env(&mut env, "BACKUP_ZSTD_WORKERS", &n);
    }
    let sidecar = spawn_sidecar(&d, "bench", &env);
    std::thread::sleep(Duration::from_millis(500));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_disk(backups.clone(), db.to_owned(), stop.clone());
    let (_, h) = run_load(t.http, 8, stop.clone(), completed_load, true, PACE);
    let load_started = Instant::now();
    // Long enough an idle sample for the announce latency's p99.
    std::thread::sleep(Duration::from_secs(3));
    let opened = Instant::now();
    // A window that ends without a backup is retried, so the figures are
    // still measured, and the retry is said.
    let mut outcome = None;
    for attempt in 1..=3 {
        // The window outlasts the backup: at 16 GiB on a loaded host the
        // pinned read alone takes longer than ten minutes.
        let id = t.api().open_window(o.backup_cap_secs.max(600));
        let out = t.wait_outcome(&id, Duration::from_secs(o.backup_cap_secs.max(60) * 3));
        if out.outcome == Outcome::Completed {
            outcome = Some(out);
            break;
        }
        println!(
            "WARNING {policy}: window attempt {attempt} ended {} ({}) without a backup; retrying",
            out.outcome,
            out.reason.clone().unwrap_or_default()
        );
        t.wait_state(State::Idle, Duration::from_secs(30));
    }
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let ev = stop_load(&stop, h);
    let idle_ms = latency_ms(&ev, load_started + Duration::from_millis(500), opened);
    let backup_ms = latency_ms(&ev, opened, ended);
    let (peak_backup_bytes, peak_wal_bytes) = sampler.join().unwrap();
    let outcome = outcome
        .unwrap_or_else(|| panic!("no window completed in 3 attempts\n{}", sidecar.log_text()));
    let hwm_kib = vm_hwm_kib(sidecar.pid()).unwrap_or(0);
    let report = outcome.report.clone().unwrap();
    let artifact_bytes = report.artifacts.iter().map(|a| a.size_bytes).sum();
    let (refused, errors, outage_secs) = outage(&ev);
    let pin_secs = pin_secs(&sidecar.log_text());
    drop(sidecar);
    drop(t);
    let _ = std::fs::remove_dir_all(&backups);
    WindowRun {
        refused,
        errors,
        outage_secs,
        snapshot_secs: report
            .durations_secs
            .get("snapshot")
            .copied()
            .unwrap_or(f64::NAN),
        quiesced_secs: outcome.quiesced_secs,
        total_secs: report
            .durations_secs
            .get("total")
            .copied()
            .unwrap_or(f64::NAN),
        hwm_kib,
        peak_backup_bytes,
        peak_wal_bytes,
        artifact_bytes,
        idle_ms,
        backup_ms,
        pin_secs,
    }
}

fn print_reject(label: &str, r: &WindowRun, size: f64) {
    let beyond = r.outage_secs - r.snapshot_secs;
    println!(
        "{label}: refused {} announces over {:.3} s; sidecar snapshot {:.3} s ({:.0} MiB/s); refusal beyond snapshot {:.0} ms (goal < 100 ms: {}); coordinator quiesced_secs {:.3}; whole backup {:.1} s; connection errors {}",
        r.refused,
        r.outage_secs,
        r.snapshot_secs,
        size / r.snapshot_secs,
        beyond * 1000.0,
        if beyond < 0.1 { "met" } else { "NOT met" },
        r.quiesced_secs,
        r.total_secs,
        r.errors
    );
}

fn downtime(o: &Opts, db: &Path) {
    let size = db_size(db);
    println!("\n## 2. downtime on a {size:.0} MiB SQLite database (8 keep-alive announce connections, each pausing 2 ms between requests, running throughout)");
    // `reject` runs before and after `defer-writes`, so an order effect
    // (the freshly generated database still being written back) shows as a
    // difference between its two runs instead of between the policies.
    let first = window_run(o, db, "reject", false, 1);
    print_reject(
        "reject (run 1, first window after generation)",
        &first,
        size,
    );
    let dw = window_run(o, db, "defer-writes", true, 1);
    println!(
        "defer-writes: refused {} announces, connection errors {} (goal 0: {}); writes paused {:.3} s; sidecar snapshot {:.3} s ({:.0} MiB/s); peak RSS {:.1} MiB",
        dw.refused,
        dw.errors,
        if dw.refused + dw.errors == 0 { "met" } else { "NOT met" },
        dw.quiesced_secs,
        dw.snapshot_secs,
        size / dw.snapshot_secs,
        dw.hwm_kib as f64 / 1024.0
    );

    let r = window_run(o, db, "reject", false, 2);
    print_reject("reject (run 2, after defer-writes)", &r, size);
    println!(
        "RESULT rss: sidecar peak RSS (VmHWM) during the {size:.0} MiB backup: {:.1} MiB (goal <= 64 MiB: {})",
        first.hwm_kib.max(r.hwm_kib) as f64 / 1024.0,
        if first.hwm_kib.max(r.hwm_kib) <= 64 * 1024 { "met" } else { "NOT met" }
    );

    let (span, _) = host_cron(o, db);
    println!(
        "RESULT downtime: reject refusal {:.3} s (snapshot {:.3} s, beyond {:.0} ms; run 1: {:.3} s, beyond {:.0} ms); defer-writes refused {}; host-cron outage {span:.3} s; ratio host-cron / reject outage {:.1}x",
        r.outage_secs,
        r.snapshot_secs,
        (r.outage_secs - r.snapshot_secs) * 1000.0,
        first.outage_secs,
        (first.outage_secs - first.snapshot_secs) * 1000.0,
        dw.refused + dw.errors,
        span / r.outage_secs
    );
    println!(
        "RESULT snapshot-sidecar: quiesced (reject run 2, idle db) {:.3} s = {:.0} MiB/s (run 1: {:.3} s); defer-writes window under completed-announce load {:.3} s = {:.0} MiB/s",
        r.snapshot_secs,
        size / r.snapshot_secs,
        first.snapshot_secs,
        dw.snapshot_secs,
        size / dw.snapshot_secs
    );
}

/// The host-cron path of the original note: SIGTERM the tracker, `cp` the
/// database, start it again, until `/health_check` answers; prints the
/// parts and returns (the outage seen by clients, the whole stop-to-healthy
/// time), in seconds.
fn host_cron(o: &Opts, db: &Path) -> (f64, f64) {
    let d = subdir(o, "hostcron");
    let mut cfg = TrackerConfig::with_db(&d, Db::Sqlite(db.to_owned()), "reject").fixed_ports();
    cfg.maintenance = false;
    let mut t = Tracker::start(&d, &cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let (_, h) = run_load(t.http, 8, stop.clone(), false, true, PACE);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    t.proc.terminate(Duration::from_secs(60));
    let stopped = t0.elapsed().as_secs_f64();
    let tc = Instant::now();
    let copy = d.join("backup.db");
    let st = Command::new("cp").arg(db).arg(&copy).status().unwrap();
    assert!(st.success());
    let cp_secs = tc.elapsed().as_secs_f64();
    let t = Tracker::start(&d, &cfg);
    let total = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let ev = stop_load(&stop, h);
    let (_, errors, span) = outage(&ev);
    drop(t);
    let _ = std::fs::remove_file(&copy);
    println!(
        "host-cron: stop {stopped:.3} s + cp {cp_secs:.3} s + start until /health_check {:.3} s = {total:.3} s down; announce outage seen by clients {span:.3} s ({errors} failed requests); everything beyond the copy: {:.0} ms",
        total - stopped - cp_secs,
        (total - cp_secs) * 1000.0
    );
    (span, total)
}

// ---------------------------------------------------------------------------
// 3. Snapshot throughput: cp and sqlite3 .backup, idle and under writes

fn timed_cmd(mut cmd: Command, cap: Duration) -> Option<f64> {
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success().then(|| t.elapsed().as_secs_f64());
        }
        if t.elapsed() > cap {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn snapshot(o: &Opts, db: &Path) {
    let size = db_size(db);
    println!(
        "\n## 3. SQLite snapshot throughput on {size:.0} MiB (sidecar figures are in section 2)"
    );
    let d = subdir(o, "snap");
    let out = d.join("copy.db");
    let cap = Duration::from_secs(o.backup_cap_secs);
    let fmt = |r: Option<f64>| match r {
        Some(s) => format!("{s:.3} s = {:.0} MiB/s", size / s),
        None => format!("did not finish within {} s", cap.as_secs()),
    };
    let cp = |_: ()| {
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new("cp");
        c.arg(db).arg(&out);
        timed_cmd(c, cap)
    };
    let backup = |_: ()| {
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new("sqlite3");
        c.arg(db).arg(format!(".backup '{}'", out.display()));
        timed_cmd(c, cap)
    };
    let cp_idle = cp(());
    let cp_sync = {
        let _ = std::fs::remove_file(&out);
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "cp '{}' '{}' && sync '{}'",
            db.display(),
            out.display(),
            out.display()
        ));
        timed_cmd(c, cap)
    };
    let bk_idle = backup(());
    println!(
        "idle: cp {}; cp + fsync of the copy {}; sqlite3 .backup {}",
        fmt(cp_idle),
        fmt(cp_sync),
        fmt(bk_idle)
    );

    // Under writes: the real tracker counting completed announces, flushing every 100 ms.
    let td = subdir(o, "snap-tracker");
    let cfg = TrackerConfig::with_db(&td, Db::Sqlite(db.to_owned()), "reject");
    let t = Tracker::start(&td, &cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let (count, h) = run_load(
        t.http,
        4,
        stop.clone(),
        true,
        false,
        Duration::from_millis(1),
    );
    std::thread::sleep(Duration::from_millis(500));
    let c0 = count.load(Ordering::Relaxed);
    let cp_busy = cp(());
    let bk_busy = backup(());
    let writes = count.load(Ordering::Relaxed) - c0;
    stop_load(&stop, h);
    drop(t);
    let _ = std::fs::remove_file(&out);
    println!(
        "under writes ({writes} completed announces written behind every 100 ms during the copies): cp {} (not a consistent copy of a WAL database in use); sqlite3 .backup {}",
        fmt(cp_busy),
        fmt(bk_busy)
    );
    println!(
        "RESULT snapshot-baselines: cp idle {}; cp + fsync idle {}; sqlite3 .backup idle {}; cp under writes {}; sqlite3 .backup under writes {}",
        fmt(cp_idle),
        fmt(cp_sync),
        fmt(bk_idle),
        fmt(cp_busy),
        fmt(bk_busy)
    );
}

// ---------------------------------------------------------------------------
// 4. Readiness-to-claim latency

fn log_time(line: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    // Strip ANSI colour codes, then the first token is an RFC 3339 time.
    let mut clean = String::new();
    let mut esc = false;
    for ch in line.chars() {
        if ch == '\u{1b}' {
            esc = true;
        } else if esc {
            if ch == 'm' {
                esc = false;
            }
        } else {
            clean.push(ch);
        }
    }
    let tok = clean.split_whitespace().next()?;
    chrono::DateTime::parse_from_rfc3339(tok)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn claim_latency(o: &Opts) {
    println!("\n## 4. readiness-to-claim latency over {} ad hoc windows (tracker log timestamps: end of the quiesce hook, right before readiness is published -> `window claimed`)", o.windows);
    let d = subdir(o, "claim");
    let db = d.join("tracker.db");
    make_tracker_sqlite(&db, &[(info_hash(0xC0, 1), 5)], 0);
    let t = Tracker::start(&d, &TrackerConfig::sqlite(&d, "reject"));
    let backups = d.join("backups");
    let env = sidecar_env(&t, &backups);
    let sidecar = spawn_sidecar(&d, "claim", &env);
    std::thread::sleep(Duration::from_millis(500));
    let ids = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..o.windows {
        let id = t.api().open_window(60);
        let out = t.wait_outcome(&id, Duration::from_secs(60));
        assert_eq!(
            out.outcome,
            Outcome::Completed,
            "{out:?}\n{}",
            sidecar.log_text()
        );
        ids.lock().unwrap().push(id);
        // Let the sidecar finish its post-backup work (retention, webhook)
        // and go back to waiting, as it would between daily windows.
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = t.proc.log_text();
    let mut lat = Vec::new();
    for id in ids.lock().unwrap().iter() {
        let ready = log
            .lines()
            .find(|l| {
                l.contains("database flushed, checkpointed and closed") && l.contains(id.as_str())
            })
            .and_then(log_time);
        let claimed = log
            .lines()
            .find(|l| l.contains("window claimed") && l.contains(id.as_str()))
            .and_then(log_time);
        if let (Some(r), Some(c)) = (ready, claimed) {
            let ms = (c - r).num_microseconds().unwrap() as f64 / 1000.0;
            if ms > 100.0 {
                println!("slow claim: window {id} claimed {ms:.1} ms after ready");
            }
            lat.push(ms);
        }
    }
    assert!(!lat.is_empty(), "no ready/claimed pairs in the tracker log");
    let n = lat.len();
    let buckets = [
        (0.0, 10.0),
        (10.0, 50.0),
        (50.0, 100.0),
        (100.0, 250.0),
        (250.0, f64::INFINITY),
    ];
    let hist: Vec<String> = buckets
        .iter()
        .map(|(lo, hi)| {
            format!(
                "[{lo}, {hi}) ms: {}",
                lat.iter().filter(|&&x| x >= *lo && x < *hi).count()
            )
        })
        .collect();
    println!("distribution: {}", hist.join(", "));
    let (p50, p99, max) = (
        median(&lat),
        percentile(&mut lat, 0.99),
        percentile(&mut lat, 1.0),
    );
    println!("RESULT claim-latency: n {n}, p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
}

// ---------------------------------------------------------------------------
// 6. Idle sidecar

/// What one idle phase cost.
struct IdleFigures {
    secs: f64,
    cpu_share: f64,
    connections: usize,
    log_lines: usize,
    retries: usize,
}

impl IdleFigures {
    fn per_min(&self, n: usize) -> f64 {
        n as f64 * 60.0 / self.secs
    }
}

/// Watches `sidecar` for `secs`: CPU time from /proc, connections to
/// `maint` from /proc/net/tcp, log lines and retry lines.
fn watch_idle(sidecar: &Proc, maint: std::net::SocketAddr, secs: f64) -> IdleFigures {
    let conns = ConnectionCounter::start(maint);
    let lines = |p: &Proc| p.log_text().lines().count();
    let retries = |p: &Proc| p.log_text().matches("retrying in").count();
    let (l0, r0) = (lines(sidecar), retries(sidecar));
    let cpu0 = cpu_time(sidecar.pid()).unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = cpu_time(sidecar.pid()).unwrap() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    IdleFigures {
        secs: wall,
        cpu_share: cpu.as_secs_f64() / wall,
        connections: conns.finish(),
        log_lines: lines(sidecar) - l0,
        retries: retries(sidecar) - r0,
    }
}

/// Tracker up, then stopped, with the sidecar at `binary`.
fn idle_run(o: &Opts, label: &str, binary: &Path, secs: f64) {
    let d = subdir(o, &format!("idle-{label}"));
    let mut t = Tracker::start(&d, &TrackerConfig::sqlite(&d, "reject"));
    let maint = t.maintenance.unwrap();
    let env = sidecar_env(&t, &d.join("backups"));
    let sidecar = spawn_sidecar_of(binary, &d, label, &env);
    std::thread::sleep(Duration::from_secs(1));
    let up = watch_idle(&sidecar, maint, secs);
    t.proc.terminate(Duration::from_secs(10));
    let down = watch_idle(&sidecar, maint, secs);
    drop(sidecar);
    println!(
        "RESULT idle-{label}: tracker up {:.0} s: CPU {:.3} % of a core, {} connections = {:.1}/min, {:.1} log lines/min; \
         tracker down {:.0} s: CPU {:.3} % of a core, {} attempts = {:.1}/min, {:.1} log lines/min",
        up.secs,
        up.cpu_share * 100.0,
        up.connections,
        up.per_min(up.connections),
        up.per_min(up.log_lines),
        down.secs,
        down.cpu_share * 100.0,
        down.retries,
        down.per_min(down.retries),
        down.per_min(down.log_lines),
    );
}

fn idle(o: &Opts) {
    println!(
        "\n## 6. idle sidecar: `run` beside an idle tracker ({} s), then with the tracker stopped ({} s)",
        o.idle_secs, o.idle_secs
    );
    idle_run(
        o,
        "sidecar",
        &bin("maintenance-sidecar"),
        o.idle_secs as f64,
    );
    if let Some(old) = std::env::var_os("BENCH_BASELINE_SIDECAR") {
        // The spinning build opens hundreds of connections a second; its
        // TIME_WAIT sockets would exhaust ephemeral ports in a long run.
        let secs = (o.idle_secs as f64).min(10.0);
        println!(
            "baseline {} ({secs} s per phase)",
            Path::new(&old).display()
        );
        idle_run(o, "baseline", Path::new(&old), secs);
    }
}

// ---------------------------------------------------------------------------
// UDP (BEP 15) announces

/// A 98-byte announce of peer `n` (64 torrents, 200 peers, as the HTTP
/// instruction-count run).
fn udp_announce(connection_id: u64, tid: u32, n: u32) -> Vec<u8> {
    udp::Announce {
        info_hash: &info_hash(b'U', n % 64),
        peer_id: &peer_id(n % 200),
        event: 0,
        left: 0,
        key: n,
        num_want: 50,
        port: 6881 + (n % 200) as u16,
    }
    .packet(connection_id, tid)
}

/// One client socket: connects, then announces.
struct UdpLoad {
    sock: std::net::UdpSocket,
    cid: u64,
    tid: u32,
}

impl UdpLoad {
    fn new(server: std::net::SocketAddr) -> Self {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(server).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut me = UdpLoad {
            sock,
            cid: 0,
            tid: 1,
        };
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            me.sock
                .send(&udp::header(udp::PROTOCOL_ID, 0, me.tid))
                .unwrap();
            if let Ok(16) = me.sock.recv(&mut buf) {
                me.cid = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                return me;
            }
        }
        panic!("no connect answer from {server}");
    }

    /// Sends `depth` announces, then reads their answers; returns how many
    /// announce responses (action 1) came back.
    fn burst(&mut self, depth: u32, first_peer: u32) -> u64 {
        for k in 0..depth {
            self.tid = self.tid.wrapping_add(1);
            let _ = self
                .sock
                .send(&udp_announce(self.cid, self.tid, first_peer + k));
        }
        let mut buf = [0u8; 2048];
        let mut got = 0;
        for _ in 0..depth {
            match self.sock.recv(&mut buf) {
                Ok(n) if n >= 20 && buf[..4] == [0, 0, 0, 1] => got += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    }
}

/// `bench udp-announce ADDR N`: N announces one at a time; exits non-zero
/// unless all were answered.
fn udp_announce_lockstep(server: std::net::SocketAddr, n: u32) {
    let mut c = UdpLoad::new(server);
    let mut answered = 0;
    for i in 0..n {
        answered += c.burst(1, i);
    }
    println!("udp-announce: {answered} of {n} announces answered");
    if answered != n as u64 {
        std::process::exit(1);
    }
}

fn udp_throughput(o: &Opts) {
    println!("\n## UDP announces per second, coordinator idle vs maintenance disabled");
    let mk = |name: &str, maintenance: bool| baseline_tracker(o, name, maintenance, Some(0));
    let trackers = [mk("udp-idle", true), mk("udp-off", false)];
    let clients = cores().max(2);
    let measure = |t: &Tracker| -> f64 {
        let server = t.udp.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..clients as u32)
            .map(|k| {
                let (stop, count) = (stop.clone(), count.clone());
                std::thread::spawn(move || {
                    let mut c = UdpLoad::new(server);
                    let mut peer = k * 1000;
                    while !stop.load(Ordering::Relaxed) {
                        count.fetch_add(c.burst(16, peer), Ordering::Relaxed);
                        peer = peer.wrapping_add(16);
                    }
                })
            })
            .collect();
        let rate = rate_after_warmup(&count, o.round_secs);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().unwrap();
        }
        rate
    };
    let (mut idle, mut off, mut ratios) = (vec![], vec![], vec![]);
    for r in 0..o.rounds {
        let (a, b) = if r % 2 == 0 {
            let a = measure(&trackers[0]);
            (a, measure(&trackers[1]))
        } else {
            let b = measure(&trackers[1]);
            (measure(&trackers[0]), b)
        };
        println!(
            "round {r}: idle {a:.0} announces/s, off {b:.0} announces/s, idle/off {:.3}",
            a / b
        );
        idle.push(a);
        off.push(b);
        ratios.push(a / b);
    }
    println!(
        "RESULT udp-announces: median idle {:.0}/s, off {:.0}/s ({clients} client sockets, 16 in flight each); median per-round ratio idle/off {:.3}",
        median(&idle),
        median(&off),
        median(&ratios)
    );
}
