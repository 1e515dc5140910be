//! Benchmark: an online backup of the unmodified Torrust tracker 3.0.0 on a
//! large WAL-mode SQLite file, as its announcers see it, beside the host
//! fallback's stop-copy-start on the same file, in one run.
//!
//! A paced load of `started` + `completed` announces (a new TCP connection
//! each, as a BitTorrent client makes) runs the whole time. The phases:
//! quiet (no backup) for `--quiet-secs`; `maintenance-sidecar once
//! --online` until it exits, then quiet again; with `--baseline-sidecar`,
//! the same with that binary (an older build), side by side in one run;
//! with `--variant`, the same with this build and other settings;
//! then the real `compose/maintenance-backup.sh --force-stop` through
//! `tests/support/process-compose.sh` (Torrust stopped with SIGINT, the
//! kindest stop for it: it ignores SIGTERM). Announce latency p50/p99/max
//! and failures are counted per phase; the fallback's outage is what the
//! load saw: from the first failed announce to the first served one after.
//! `--drop-caches` starts each online backup with a cold page cache.
//!
//! ```text
//! bench torrust [--size-mib 4096] [--rate 100] [--quiet-secs 60]
//!     [--baseline-sidecar PATH [--baseline-first]] [--variant LABEL:KEY=VALUE,...]... [--drop-caches] [--nice N] [--no-fallback] [--dir D]
//! ```
//! Needs `TORRUST_TRACKER_BIN` (scripts/build-torrust-tracker.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maintenance_e2e::torrust::*;
use maintenance_e2e::*;

use super::{median, percentile};

/// An online backup by this build with settings of its own (`--variant`).
#[derive(Debug, Clone)]
struct Variant {
    label: String,
    env: Vec<(String, String)>,
}

/// Parses `LABEL:KEY=VALUE[,KEY=VALUE]`.
fn parse_variant(text: &str) -> Result<Variant, String> {
    let bad = || {
        format!("{text:?}: expected LABEL:KEY=VALUE[,KEY=VALUE], e.g. 64MiBps:BACKUP_ONLINE_READ_LIMIT_MIBPS=64")
    };
    let (label, pairs) = text.split_once(':').ok_or_else(bad)?;
    let env = pairs
        .split(',')
        .map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect::<Option<Vec<_>>>()
        .filter(|e| !label.is_empty() && e.iter().all(|(k, _)| !k.is_empty()))
        .ok_or_else(bad)?;
    Ok(Variant {
        label: label.to_owned(),
        env,
    })
}

/// Options of `bench torrust`.
#[derive(Debug, clap::Args)]
pub struct TorrustOpts {
    /// Size of the SQLite file (MiB of incompressible padding beside the
    /// torrents table). Reused from an earlier run when it is there.
    #[arg(long, default_value_t = 4096)]
    size_mib: u64,
    /// Announces per second of the paced load.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of load without a backup before and after the online one.
    #[arg(long, default_value_t = 60)]
    quiet_secs: u64,
    /// Runs the online backup under `nice -n N` (0: as is).
    #[arg(long, default_value_t = 0)]
    nice: i32,
    /// Backup folder (default: `run/backups` in the work folder, on the
    /// database's disk; a tmpfs path shows what the write I/O costs).
    #[arg(long)]
    backups: Option<PathBuf>,
    /// A second online backup by this sidecar binary (a baseline build),
    /// after the first and as long a quiet phase, in the same run.
    #[arg(long)]
    baseline_sidecar: Option<PathBuf>,
    /// Another online backup by this build with settings of its own, in the
    /// same run: `LABEL:KEY=VALUE[,KEY=VALUE]`, e.g. `64MiBps:BACKUP_ONLINE_READ_LIMIT_MIBPS=64`
    /// (repeatable; each after the others, with its own quiet phase).
    #[arg(long = "variant", value_parser = parse_variant)]
    variants: Vec<Variant>,
    /// Run the baseline's online backup first (order effects: the second
    /// read may find the host's cache warm).
    #[arg(long)]
    baseline_first: bool,
    /// Drop the page cache before each online backup (`sync`, then
    /// `/proc/sys/vm/drop_caches`; needs root), so each reads the file
    /// from the disk as a nightly backup does.
    #[arg(long)]
    drop_caches: bool,
    /// Skip the fallback's stop-copy-start.
    #[arg(long)]
    no_fallback: bool,
    /// Work folder (the database stays there between runs).
    #[arg(long, default_value = "/var/tmp/maintenance-bench/torrust")]
    dir: PathBuf,
}

/// One announce of the load: when it was sent (since the load began), how
/// long it took, whether it was served.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    secs: f64,
    ok: bool,
}

/// The paced load: `rate` announces a second from four threads, each peer
/// a `started` then a `completed`, every one a new connection.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    began: Instant,
}

const LOAD_THREADS: u32 = 4;
const LOAD_TORRENTS: usize = 64;

impl Load {
    fn start(client: TorrustClient, rate: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let began = Instant::now();
        let every = Duration::from_secs_f64(LOAD_THREADS as f64 / rate as f64);
        let threads = (0..LOAD_THREADS)
            .map(|t| {
                let (stop, samples) = (stop.clone(), samples.clone());
                std::thread::spawn(move || {
                    let mut next = began + every.mul_f64(t as f64 / LOAD_THREADS as f64);
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += every;
                        let peer = (t << 24) | (n / 2);
                        let event = if n.is_multiple_of(2) {
                            "started"
                        } else {
                            "completed"
                        };
                        let hash = torrent(peer as usize % LOAD_TORRENTS);
                        let sent = Instant::now();
                        let ok = client.announce(&hash, peer, event).is_ok();
                        samples.lock().unwrap().push(Sample {
                            at: (sent - began).as_secs_f64(),
                            secs: sent.elapsed().as_secs_f64(),
                            ok,
                        });
                        n += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            threads,
            began,
        }
    }

    /// Seconds since the load began.
    fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let mut v = self.samples.lock().unwrap().clone();
        v.sort_by(|a, b| a.at.total_cmp(&b.at));
        v
    }
}

/// Latency figures of the samples sent in `[from, to)`.
struct Phase {
    announces: usize,
    failed: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn phase(samples: &[Sample], ranges: &[(f64, f64)]) -> Phase {
    let within: Vec<&Sample> = samples
        .iter()
        .filter(|s| ranges.iter().any(|(a, b)| s.at >= *a && s.at < *b))
        .collect();
    let mut served: Vec<f64> = within
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.secs * 1e3)
        .collect();
    let failed = within.len() - served.len();
    let (p50_ms, p99_ms) = if served.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (median(&served), percentile(&mut served, 0.99))
    };
    Phase {
        announces: within.len(),
        failed,
        p50_ms,
        p99_ms,
        max_ms: served.iter().copied().fold(0.0, f64::max),
    }
}

/// From the first failed announce in `[from, to)` to the first served one
/// sent after it (seconds), with the count of failures; `None` if none failed.
fn outage(samples: &[Sample], from: f64, to: f64) -> Option<(f64, usize)> {
    let within: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let first = within.iter().position(|s| !s.ok)?;
    let last = within.iter().rposition(|s| !s.ok).unwrap();
    let back = within[last + 1..].iter().find(|s| s.ok)?;
    let failed = within.iter().filter(|s| !s.ok).count();
    Some((back.at + back.secs - within[first].at, failed))
}

/// Removes the artifacts of every published backup (keeps the manifests),
/// so a run at 4 GiB fits on the disk.
fn drop_artifacts(backups: &Path) {
    for dir in published(backups) {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() != "manifest.json" {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

pub fn run(o: TorrustOpts) {
    let bin = torrust_bin().expect("bench torrust needs TORRUST_TRACKER_BIN");
    std::fs::create_dir_all(&o.dir).unwrap();
    let db = o.dir.join(format!("torrust-{}mib.db", o.size_mib));
    if !db.exists() {
        let t = Instant::now();
        let partial = o.dir.join("torrust.db.partial");
        let _ = std::fs::remove_file(&partial);
        let torrents: Vec<([u8; 20], i64)> = (0..100_000u32)
            .map(|i| (info_hash(0x5a, i), i64::from(i % 50)))
            .collect();
        make_tracker_sqlite(&partial, &torrents, o.size_mib << 20);
        std::fs::rename(&partial, &db).unwrap();
        println!(
            "# generated {} ({} MiB) in {:.0} s",
            db.display(),
            std::fs::metadata(&db).unwrap().len() >> 20,
            t.elapsed().as_secs_f64()
        );
    }
    assert_eq!(
        journal_mode(&db),
        "wal",
        "the bench file must be in WAL mode"
    );
    let work = o.dir.join("run");
    let _ = std::fs::remove_dir_all(&work);
    let backups = o.backups.clone().unwrap_or_else(|| work.join("backups"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&backups).unwrap();
    let stack = ProcessStack::new(&work, &bin, &db, &backups);
    let config = stack.config.clone();
    stack.start_tracker();
    let pid = || stack.recorded_pid().unwrap_or(0);
    let pid_before = pid();
    println!(
        "# Torrust 3.0.0 (pid {pid_before}) on {} ({} MiB, WAL), load {} announces/s ({} threads, a new connection each)",
        db.display(),
        std::fs::metadata(&db).unwrap().len() >> 20,
        o.rate,
        LOAD_THREADS
    );
    println!("# sidecar: {}", bin_dir().display());

    let load = Load::start(TorrustClient { http: config.http }, o.rate);
    std::thread::sleep(Duration::from_secs(5)); // warm-up, not counted
    let mut quiet_ranges = Vec::new();
    let quiet = |load: &Load| {
        let range = (load.now(), load.now() + o.quiet_secs as f64);
        std::thread::sleep(Duration::from_secs(o.quiet_secs));
        range
    };
    quiet_ranges.push(quiet(&load));
    let this_build = maintenance_e2e::bin("maintenance-sidecar");
    let mut sidecars = vec![("this build".to_owned(), this_build.clone(), Vec::new())];
    if let Some(b) = &o.baseline_sidecar {
        sidecars.push(("baseline".to_owned(), b.clone(), Vec::new()));
    }
    if o.baseline_first {
        sidecars.reverse();
    }
    for v in &o.variants {
        sidecars.push((v.label.clone(), this_build.clone(), v.env.clone()));
    }
    let mut onlines = Vec::new();
    for (i, (label, binary, extra_env)) in sidecars.iter().enumerate() {
        if o.drop_caches {
            let st = Command::new("sh")
                .args(["-c", "sync && echo 1 > /proc/sys/vm/drop_caches"])
                .status()
                .unwrap();
            assert!(st.success(), "dropping the page cache needs root");
        }
        let err = work.join(format!("online-{i}.err"));
        let from = load.now();
        let started = Instant::now();
        let st = Command::new("nice")
            .args(["-n", &o.nice.to_string()])
            .arg(binary)
            .args(["once", "--online"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(stack.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(std::fs::File::create(work.join(format!("online-{i}.log"))).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let to = load.now();
        let log = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(st.success(), "the online backup ({label}) failed:\n{log}");
        drop_artifacts(&backups);
        onlines.push((label.as_str(), from, to, secs, log));
        quiet_ranges.push(quiet(&load));
    }
    let pid_after_online = pid();

    let mut fallback = None;
    if !o.no_fallback {
        let from = load.now();
        let started = Instant::now();
        let out = stack
            .fallback_command(&["--force-stop"])
            .env("STOP_SIGNAL", "INT")
            .output()
            .unwrap();
        let script_secs = started.elapsed().as_secs_f64();
        std::fs::write(work.join("fallback.log"), &out.stdout).unwrap();
        assert!(
            out.status.success(),
            "the fallback failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(3));
        fallback = Some((from, load.now(), script_secs));
        drop_artifacts(&backups);
    }
    let samples = load.finish();
    let pid_end = pid();
    let torrust_log = stack.tracker_log();
    drop(stack);

    let quiet = phase(&samples, &quiet_ranges);
    let quiet_secs = quiet_ranges.len() as f64 * o.quiet_secs as f64;
    println!("| phase | seconds | announces | failed | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, secs: f64, p: &Phase| {
        println!(
            "| {name} | {secs:.1} | {} | {} | {:.2} | {:.2} | {:.1} |",
            p.announces, p.failed, p.p50_ms, p.p99_ms, p.max_ms
        )
    };
    row("without a backup (every quiet phase)", quiet_secs, &quiet);
    let mut slowest: Vec<&Sample> = samples.iter().collect();
    slowest.sort_by(|a, b| b.secs.total_cmp(&a.secs));
    for (label, from, to, secs, log) in &onlines {
        let during = phase(&samples, &[(*from, *to)]);
        row(&format!("during `once --online` ({label})"), *secs, &during);
        for l in log
            .lines()
            .filter(|l| l.contains("unpinned") || l.contains("backup finished"))
        {
            println!("# sidecar ({label}): {}", l.trim());
        }
        println!(
            "RESULT torrust online backup ({label}): {:.1} s on {} MiB; announces failed {} (without: {}); p50 {:.2} ms vs {:.2} ms, p99 {:.2} ms vs {:.2} ms without = {:.2}x (goal 0 failed and <= 2x)",
            secs,
            o.size_mib,
            during.failed,
            quiet.failed,
            during.p50_ms,
            quiet.p50_ms,
            during.p99_ms,
            quiet.p99_ms,
            during.p99_ms / quiet.p99_ms,
        );
    }
    let when = |at: f64| {
        if let Some((label, ..)) = onlines.iter().find(|(_, f, t, ..)| at >= *f && at < *t) {
            format!("during the online backup ({label})")
        } else if quiet_ranges.iter().any(|(f, t)| at >= *f && at < *t) {
            "quiet".to_owned()
        } else {
            "between phases (artifact removal, fallback)".to_owned()
        }
    };
    for s in slowest.iter().take(5) {
        println!(
            "# slow announce at {:.1} s ({}): {:.0} ms, served {}",
            s.at,
            when(s.at),
            s.secs * 1e3,
            s.ok
        );
    }
    let locked = ["database is locked", "busy"]
        .iter()
        .any(|w| torrust_log.to_ascii_lowercase().contains(w));
    println!(
        "# Torrust pid before {pid_before}, after the online backups {pid_after_online}, at the end {pid_end}; locked/busy in its log: {locked}"
    );
    println!(
        "RESULT torrust never stopped by the online backups: {}",
        pid_before == pid_after_online
    );
    if let Some((from, to, script_secs)) = fallback {
        let after = phase(&samples, &[(from, to)]);
        match outage(&samples, from, to) {
            Some((secs, failed)) => println!(
                "RESULT torrust fallback --force-stop (SIGINT stop, once, start): outage {secs:.1} s seen by the load ({failed} of {} announces failed), script {script_secs:.1} s; the online backup's outage: 0 s",
                after.announces
            ),
            None => println!(
                "RESULT torrust fallback --force-stop: no failed announce seen (script {script_secs:.1} s): the load missed the outage"
            ),
        }
    }
}
