//! How many threads compress an artifact with zstd.
//!
//! The default follows the cores this process may use:
//! [`std::thread::available_parallelism`] counts the CPUs of the
//! scheduler affinity mask (`sched_getaffinity`, so `taskset` and cpusets)
//! and lowers that to a cgroup CPU quota (cgroup v2 `cpu.max`, cgroup v1
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us`), as a container's `--cpus`
//! sets. It is capped at [`MAX_DEFAULT_WORKERS`] so the sidecar stays
//! within its 64 MiB RSS budget: each worker holds a few 2 MiB jobs (about
//! 7 MiB each, measured in BENCHMARKS.md), beside the pipeline's buffers.
//! `BACKUP_ZSTD_WORKERS=N` overrides it (1 compresses on the pipeline's own
//! compression thread, for a host that must keep a core for the tracker).
//!
//! An online backup (no coordinator: the tracker serves throughout)
//! defaults to one worker: on 2 cores beside an unmodified Torrust under
//! load, one worker took the announces' p99 from 34–45 ms to 18–21 ms in
//! the same runs, and the backup no longer (the integrity check and the
//! digest proof bound it; BENCHMARKS.md section 18).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Set once, before any backup, by a process that backs up online.
static ONLINE: AtomicBool = AtomicBool::new(false);

/// Makes the default one worker for this process: the backups it takes
/// share the cores with a tracker that serves. `BACKUP_ZSTD_WORKERS`
/// still wins. Call before the first [`workers`].
pub fn prefer_one_for_online() {
    ONLINE.store(true, Ordering::SeqCst);
}

/// The environment variable that sets the number of workers.
pub const WORKERS_ENV: &str = "BACKUP_ZSTD_WORKERS";

/// The most workers the default picks, whatever the cores (memory).
pub const MAX_DEFAULT_WORKERS: u32 = 4;

/// The most workers `BACKUP_ZSTD_WORKERS` may ask for.
pub const MAX_WORKERS: u32 = 16;

/// The default for `cores` usable cores.
pub fn default_for(cores: usize) -> u32 {
    u32::try_from(cores)
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_DEFAULT_WORKERS)
}

/// The number of zstd workers: `BACKUP_ZSTD_WORKERS` when set, else the
/// default for the usable cores. Logged once per process.
pub fn workers() -> u32 {
    static CHOSEN: OnceLock<u32> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let asked = std::env::var(WORKERS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match asked {
            Some(n) => {
                let n = n.clamp(1, MAX_WORKERS);
                tracing::info!("zstd workers: {n} ({WORKERS_ENV}; {cores} cores usable)");
                n
            }
            None if ONLINE.load(Ordering::SeqCst) => {
                tracing::info!(
                    "zstd workers: 1 (an online backup leaves the other cores to the tracker; {WORKERS_ENV} overrides)"
                );
                1
            }
            None => {
                let n = default_for(cores);
                tracing::info!(
                    "zstd workers: {n} ({cores} cores usable after affinity and cgroup quota, at most {MAX_DEFAULT_WORKERS}; {WORKERS_ENV} overrides)"
                );
                n
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_follows_the_cores_within_the_memory_cap() {
        assert_eq!(super::default_for(0), 1);
        assert_eq!(super::default_for(1), 1);
        assert_eq!(super::default_for(2), 2);
        assert_eq!(super::default_for(64), super::MAX_DEFAULT_WORKERS);
    }
}
