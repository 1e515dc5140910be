//! Benchmark: what "acknowledged means durable" costs. The `completed`
//! announce's latency (p50, p99) and throughput, and an ordinary
//! announce's beside it, for `journal_durability = "interval"` (answer at
//! once, the earlier behaviour), `"write"` (the default: answer once the
//! journal record is written) and `"fsync"` (once it is synced), side by
//! side in one run, the modes' order rotated every round.
//!
//! ```text
//! bench durability [--secs 5] [--conns 16] [--rounds 3] [--dir D]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

use super::{median, percentile};

const MODES: [&str; 3] = ["interval", "write", "fsync"];

/// Options of `bench durability`.
#[derive(Debug, clap::Args)]
pub struct DurabilityOpts {
    /// Seconds of load per mode and round.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Concurrent kept connections.
    #[arg(long, default_value_t = 16)]
    conns: u32,
    /// Rounds (the modes' order rotates every round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Work folder.
    #[arg(long, default_value = "/var/tmp/maintenance-bench/durability")]
    dir: PathBuf,
}

/// Latencies (seconds) of `conns` kept connections announcing for `secs`,
/// after a 300 ms warm-up; `completed` makes each a completion of a new
/// peer, otherwise a re-announce from a bounded set of peers.
fn load(addr: std::net::SocketAddr, conns: u32, secs: f64, completed: bool, tag: u8) -> Vec<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let begin = Instant::now() + Duration::from_millis(300);
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = KeepAlive::connect(addr).expect("connect");
                let mut lat = Vec::new();
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let hash = info_hash(tag, c % 8);
                    let (peer, event) = if completed {
                        (c << 20 | i, "completed")
                    } else {
                        (c << 8 | (i & 0xFF), "")
                    };
                    let t = Instant::now();
                    let (code, _) = conn
                        .get(&announce_path(&hash, peer, event))
                        .expect("announce");
                    assert_eq!(code, 200);
                    if t >= begin {
                        lat.push(t.elapsed().as_secs_f64());
                    }
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300) + Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// `(p50 ms, p99 ms, per second)` of each round's latencies.
#[derive(Default)]
struct Figures {
    p50: Vec<f64>,
    p99: Vec<f64>,
    rate: Vec<f64>,
}

impl Figures {
    fn add(&mut self, mut lat: Vec<f64>, secs: f64) {
        self.rate.push(lat.len() as f64 / secs);
        self.p50.push(median(&lat) * 1e3);
        self.p99.push(percentile(&mut lat, 0.99) * 1e3);
    }

    /// Medians over the rounds.
    fn medians(&mut self) -> (f64, f64, f64) {
        (median(&self.p50), median(&self.p99), median(&self.rate))
    }
}

pub fn run(o: DurabilityOpts) {
    std::fs::create_dir_all(&o.dir).unwrap();
    let mut completed: Vec<Figures> = MODES.iter().map(|_| Figures::default()).collect();
    let mut ordinary: Vec<Figures> = MODES.iter().map(|_| Figures::default()).collect();
    for round in 0..o.rounds {
        for k in 0..MODES.len() {
            let m = (round + k) % MODES.len();
            let d = o.dir.join(format!("{}-{round}", MODES[m]));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            let mut c = TrackerConfig::sqlite(&d, "reject");
            c.flush_interval = "1s";
            c.journal_durability = Some(MODES[m]);
            let mut t = Tracker::start(&d, &c);
            completed[m].add(load(t.http, o.conns, o.secs, true, 0xC0), o.secs);
            ordinary[m].add(load(t.http, o.conns, o.secs, false, 0xC1), o.secs);
            assert!(t.proc.terminate(Duration::from_secs(30)).success());
            let _ = std::fs::remove_dir_all(&d);
            eprintln!("round {round}: {} done", MODES[m]);
        }
    }
    println!(
        "\n## journal_durability: {} connections, {} s a measurement, {} rounds (medians)\n",
        o.conns, o.secs, o.rounds
    );
    println!("| mode | completed p50 ms | completed p99 ms | completed/s | ordinary p50 ms | ordinary p99 ms | ordinary/s |");
    println!("|---|---|---|---|---|---|---|");
    let mut base = None;
    for (m, mode) in MODES.iter().enumerate() {
        let (cp50, cp99, crate_) = completed[m].medians();
        let (op50, op99, orate) = ordinary[m].medians();
        let (bp50, brate) = *base.get_or_insert((cp50, crate_));
        println!(
            "| {mode} | {cp50:.3} ({:.2}x) | {cp99:.3} | {crate_:.0} ({:.2}x) | {op50:.3} | {op99:.3} | {orate:.0} |",
            cp50 / bp50,
            crate_ / brate
        );
    }
}
