//! `run`: the autonomous loop.
//!
//! Wait for a ready window (ready-file event or status long-poll, whichever
//! comes first) → claim over HTTP → heartbeat while working → snapshot →
//! `release` → compress, verify, publish → upload off-site (when a remote is
//! configured; the tracker already runs again) → `complete` with the report.
//! Nothing is backed up unless the claim succeeded; a coordinator that is
//! down is retried with exponential backoff (capped), and a stale or foreign
//! window is simply skipped. The coordinated loop itself, for one or several
//! coordinators, is in `fleet.rs`; this file starts it (or the uncoordinated
//! interval loop) with metrics and signal handling.

use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use crate::client::Coordinators;
use crate::commands::{prune_quietly, require_engine, EXIT_USAGE};
use crate::config::Config;

/// Exponential backoff between retries, capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    current: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 1 s, doubling up to `max`.
    pub fn new(max: Duration) -> Self {
        Backoff {
            current: Duration::from_secs(1),
            max,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.max);
        d
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.current = Duration::from_secs(1);
    }
}

fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(cfg: &Config) -> ExitCode {
    if let Err(code) = require_engine(cfg, "run") {
        return code;
    }
    if let Some(bind) = cfg.metrics_bind {
        crate::metrics::get().seed_from_backups(&cfg.backup_dir);
        crate::metrics::get().watch_drills(&cfg.backup_dir);
        let seed_cfg = cfg.clone();
        tokio::spawn(async move { crate::offsite::seed_metrics(&seed_cfg).await });
        match crate::metrics::serve(bind).await {
            Ok(addr) => tracing::info!("metrics listening on http://{addr}/metrics"),
            Err(e) => {
                eprintln!(
                    "maintenance-sidecar run: cannot listen for metrics on {bind} (metrics.bind / SIDECAR_METRICS_BIND): {e}"
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let stop = shutdown_signal();
    if cfg.coordinator.urls.is_empty() {
        if cfg.interval_secs > 0 {
            return interval_loop(cfg, stop).await;
        }
        eprintln!("maintenance-sidecar run: no coordinator configured (set MAINTENANCE_URL), and BACKUP_INTERVAL is 0");
        return ExitCode::from(EXIT_USAGE);
    }
    let coords = match Coordinators::from_config(&cfg.coordinator) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maintenance-sidecar run: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if cfg.coordinator.token.is_none() {
        tracing::warn!("no MAINTENANCE_TOKEN configured: the coordinator will refuse claims (401)");
    }
    prune_quietly(cfg);
    crate::fleet::run(cfg, coords, stop).await
}

/// The uncoordinated loop of the original container (`BACKUP_MODE=continuous`
/// with `BACKUP_INTERVAL`): no quiescing, so only safe for databases that
/// tolerate it (MySQL with `--single-transaction`).
async fn interval_loop(cfg: &Config, mut stop: watch::Receiver<bool>) -> ExitCode {
    tracing::warn!(
        "no coordinator configured: uncoordinated backup every {} s",
        cfg.interval_secs
    );
    loop {
        crate::commands::once(cfg).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(cfg.interval_secs)) => {},
            _ = stop.changed() => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(30));
        let d: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay().as_secs(), 1);
    }
}
