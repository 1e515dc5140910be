//! Benchmark: what a tracker with the coordinator embedded and its sidecar
//! cost in CPU and memory, the figures the Kubernetes manifests' requests
//! and limits are taken from (`deploy/kubernetes/`).
//!
//! The reference tracker on SQLite (`defer-writes`, the Kubernetes
//! default) and `maintenance-sidecar run` beside it:
//! 1. at rest for `--idle-secs`;
//! 2. under a paced load of `--rate` announces a second for `--secs`, each
//!    from a new peer over `--torrents` torrents (kept connections), so the
//!    swarm grows to rate × secs peers;
//! 3. a window opened under the same load, the sidecar backing up the
//!    `--pad-mib` database.
//!
//! CPU is the process's user + system time over the phase's wall time
//! (`/proc/<pid>/stat`), memory its resident set (VmRSS) at the end of a
//! phase and its peak (VmHWM).
//!
//! ```text
//! bench footprint [--rate 1000] [--secs 30] [--idle-secs 20] [--torrents 10000] [--pad-mib 1024] [--dir D]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maintenance_e2e::*;

/// Options of `bench footprint`.
#[derive(Debug, clap::Args)]
pub struct FootprintOpts {
    /// Announces per second of the paced load.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Seconds at rest.
    #[arg(long, default_value_t = 20)]
    idle_secs: u64,
    /// Torrents the peers spread over.
    #[arg(long, default_value_t = 10_000)]
    torrents: u32,
    /// MiB of padding in the database, so the window's backup lasts.
    #[arg(long, default_value_t = 1024)]
    pad_mib: u64,
    /// Work folder.
    #[arg(long, default_value = "/var/tmp/maintenance-bench/footprint")]
    dir: PathBuf,
}

/// CPU use of a few processes over a phase, in % of one core.
struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<Duration>,
    began: Instant,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            start: pids.iter().map(|p| cpu_time(*p).unwrap()).collect(),
            began: Instant::now(),
        }
    }

    fn percent(&self) -> Vec<f64> {
        let wall = self.began.elapsed().as_secs_f64();
        self.pids
            .iter()
            .zip(&self.start)
            .map(|(p, s)| (cpu_time(*p).unwrap() - *s).as_secs_f64() / wall * 100.0)
            .collect()
    }
}

/// A paced load: `rate` announces a second from four kept connections,
/// each from a new peer; counts the served ones.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, rate: u32, torrents: u32) -> Load {
        const THREADS: u32 = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let every = Duration::from_secs_f64(THREADS as f64 / rate as f64);
        let threads = (0..THREADS)
            .map(|t| {
                let (stop, served) = (stop.clone(), served.clone());
                std::thread::spawn(move || {
                    let mut conn = KeepAlive::connect(addr).expect("connect");
                    let mut next = Instant::now();
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += every;
                        let peer = (t << 28) | i;
                        let hash = info_hash(0x3c, (i * THREADS + t) % torrents);
                        let event = if i.is_multiple_of(4) { "completed" } else { "" };
                        if let Ok((200, _)) = conn.get(&announce_path(&hash, peer, event)) {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            served,
            threads,
        }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.served.load(Ordering::Relaxed)
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(o: FootprintOpts) {
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir).unwrap();
    let cfg = TrackerConfig::sqlite(&o.dir, "defer-writes");
    if let Db::Sqlite(db) = &cfg.db {
        make_tracker_sqlite(db, &[], o.pad_mib << 20);
    }
    let tracker = Tracker::start(&o.dir, &cfg);
    let backups = o.dir.join("backups");
    let sidecar = spawn_sidecar(&o.dir, "footprint", &sidecar_env(&tracker, &backups));
    let (tp, sp) = (tracker.proc.pid(), sidecar.pid());
    println!(
        "# footprint: reference-tracker (SQLite, defer-writes) and maintenance-sidecar run, {}",
        bin_dir().display()
    );
    std::thread::sleep(Duration::from_secs(3));

    let meter = CpuMeter::start(&[tp, sp]);
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let idle_cpu = meter.percent();
    let idle_rss = (vm_rss_kib(tp).unwrap_or(0), vm_rss_kib(sp).unwrap_or(0));
    println!(
        "RESULT footprint at rest ({} s): tracker CPU {:.3} % of a core, RSS {:.1} MiB; sidecar CPU {:.3} %, RSS {:.1} MiB",
        o.idle_secs,
        idle_cpu[0],
        mib(idle_rss.0),
        idle_cpu[1],
        mib(idle_rss.1)
    );

    let load = Load::start(tracker.http, o.rate, o.torrents);
    let meter = CpuMeter::start(&[tp, sp]);
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(o.secs));
    let load_cpu = meter.percent();
    let wall = began.elapsed().as_secs_f64();
    let served_before_window = load.served.load(Ordering::Relaxed);
    let load_rss = vm_rss_kib(tp).unwrap_or(0);
    println!(
        "RESULT footprint under load: {:.0} announces/s served for {:.0} s ({} peers over {} torrents): tracker CPU {:.1} % of a core, RSS {:.1} MiB (peak {:.1} MiB)",
        served_before_window as f64 / wall,
        wall,
        served_before_window,
        o.torrents,
        load_cpu[0],
        mib(load_rss),
        mib(vm_hwm_kib(tp).unwrap_or(0))
    );

    let meter = CpuMeter::start(&[tp, sp]);
    let id = tracker.api().open_window(120);
    let outcome = tracker.wait_outcome(&id, Duration::from_secs(120));
    let window_cpu = meter.percent();
    let window_secs = meter.began.elapsed().as_secs_f64();
    let served = load.finish();
    assert_eq!(
        outcome.outcome,
        Outcome::Completed,
        "the window did not complete"
    );
    println!(
        "RESULT footprint window under load ({window_secs:.1} s, {} peers in the swarm): tracker CPU {:.1} %, peak RSS {:.1} MiB; sidecar CPU {:.1} %, peak RSS {:.1} MiB",
        served,
        window_cpu[0],
        mib(vm_hwm_kib(tp).unwrap_or(0)),
        window_cpu[1],
        mib(vm_hwm_kib(sp).unwrap_or(0))
    );
}
