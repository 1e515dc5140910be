//! `run`: the autonomous loop.
//!
//! Wait for a ready window (ready-file event or status long-poll, whichever
//! comes first) → claim over HTTP → heartbeat while working → snapshot →
//! `release` → compress, verify, publish → upload off-site (when a remote is
//! configured; the tracker already runs again) → `complete` with the report.
//! Nothing is backed up unless the claim succeeded; a coordinator that is
//! down is retried with exponential backoff (capped), and a stale or foreign
//! window is simply skipped. The coordinated loop itself, for one or several
//! coordinators, is in `fleet/`; this file starts it (or the uncoordinated
//! interval loop) with metrics and signal handling.

use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use super::shared::require_engine;
use super::EXIT_USAGE;
use crate::client::Coordinators;
use crate::config::{Config, Resolve};
use crate::retention::prune_quietly;

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
        seed_metrics(&cfg.backup_dir);
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
        if let Some(schedule) = &cfg.online.schedule {
            return match crate::online::schedule_loop::run(cfg, schedule, stop).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("maintenance-sidecar run: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
        if cfg.interval_secs > 0 {
            return interval_loop(cfg, stop).await;
        }
        eprintln!("maintenance-sidecar run: no coordinator configured (set MAINTENANCE_URL, or BACKUP_WINDOW for online backups of a tracker without one), and BACKUP_INTERVAL is 0");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut stop = stop;
    let mut backoff = Duration::from_secs(1);
    let coords = loop {
        match Coordinators::discover(&cfg.coordinator).await {
            Ok(c) => break c,
            // A headless Service has no address until a tracker pod runs.
            Err(e) if cfg.coordinator.resolve == Resolve::EachAddress => {
                tracing::warn!("{e:#}; retrying in {} s", backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return ExitCode::SUCCESS,
                }
                backoff = (backoff * 2).min(Duration::from_secs(cfg.coordinator.max_backoff_secs));
            }
            Err(e) => {
                eprintln!("maintenance-sidecar run: {e:#}");
                return ExitCode::from(EXIT_USAGE);
            }
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
        super::once::once(cfg).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(cfg.interval_secs)) => {},
            _ = stop.changed() => return ExitCode::SUCCESS,
        }
    }
}

/// Hands the metrics what is already on disk: the newest verified backup
/// (so a restarted sidecar does not report "never") and the drill record
/// the separate `drill` processes leave.
pub fn seed_metrics(backup_dir: &std::path::Path) {
    let metrics = crate::metrics::get();
    if let Ok(entries) = crate::retention::scan(backup_dir) {
        if let Some(m) = entries
            .into_iter()
            .filter_map(|e| e.manifest.ok())
            .find(|m| m.verified)
        {
            metrics.seed_from_backup(&m);
        }
    }
    let dir = backup_dir.to_owned();
    metrics.watch_drills(Box::new(move || {
        crate::ops::drill::last(&dir).map(|r| r.finished_at)
    }));
}
