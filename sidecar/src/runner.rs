//! `run`: the autonomous loop.
//!
//! Wait for a ready window (ready-file event or status long-poll, whichever
//! comes first) → claim over HTTP → heartbeat while working → snapshot →
//! `release` → compress, verify, publish → upload off-site (when a remote is
//! configured; the tracker already runs again) → `complete` with the report.
//! Nothing is backed up unless the claim succeeded; a coordinator that is
//! down is retried with exponential backoff (capped), and a stale or foreign
//! window is simply skipped.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use maintenance_proto::{ErrorCode, LeaseResponse, State, WindowId};
use tokio::sync::watch;

use crate::backup;
use crate::cancel::CancelToken;
use crate::client::{ClientError, Coordinator, Coordinators};
use crate::commands::{prune_quietly, require_engine, EXIT_USAGE};
use crate::config::Config;
use crate::lease::LeaseKeeper;
use crate::wake::ReadyFileWatch;
use crate::webhook::{self, Notification};

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
    Loop::new(cfg, coords.primary().clone(), stop).run().await
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

struct Loop<'a> {
    cfg: &'a Config,
    coord: Coordinator,
    stop: watch::Receiver<bool>,
    watch: ReadyFileWatch,
    refused: HashSet<WindowId>,
    backoff: Backoff,
    since: Option<u64>,
    unreachable: bool,
}

impl<'a> Loop<'a> {
    fn new(cfg: &'a Config, coord: Coordinator, stop: watch::Receiver<bool>) -> Self {
        Loop {
            cfg,
            coord,
            stop,
            watch: ReadyFileWatch::new(cfg.coordinator.ready_file.clone()),
            refused: HashSet::new(),
            backoff: Backoff::new(Duration::from_secs(cfg.coordinator.max_backoff_secs)),
            since: None,
            unreachable: false,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run(mut self) -> ExitCode {
        tracing::info!(
            "waiting for maintenance windows from {} (sidecar id {})",
            self.coord.url(),
            self.cfg.sidecar_id
        );
        while !self.stopping() {
            self.watch.ensure();
            if let Some(window) = self.next_candidate().await {
                self.try_claim(window).await;
            }
        }
        ExitCode::SUCCESS
    }

    fn hint(&self) -> Option<WindowId> {
        let doc = self.watch.read()?;
        let id = doc.window_id?;
        (doc.ready && !self.refused.contains(&id)).then_some(id)
    }

    fn note_reachable(&mut self) {
        if self.unreachable {
            tracing::info!("coordinator {} reachable again", self.coord.url());
        }
        self.unreachable = false;
        self.backoff.reset();
    }

    /// Waits out the next backoff delay after a failed call, logging one
    /// line. Only a shutdown cuts the wait short: not even the ready file,
    /// so a coordinator that is down is asked at most once per delay.
    async fn back_off(&mut self, why: &str) {
        self.back_off_at(tracing::Level::WARN, why).await
    }

    /// [`Self::back_off`] with the log line at `level`.
    async fn back_off_at(&mut self, level: tracing::Level, why: &str) {
        let delay = self.backoff.next_delay();
        if level == tracing::Level::ERROR {
            tracing::error!("{why}; retrying in {} s", delay.as_secs());
        } else {
            tracing::warn!("{why}; retrying in {} s", delay.as_secs());
        }
        self.unreachable = true;
        self.since = None;
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = stop.changed() => {},
        }
    }

    /// Waits for a window worth claiming; `None` means "loop again".
    ///
    /// One status call is in flight at a time, on the client's pooled
    /// connection. A ready-file event does not cancel it (that would cost a
    /// new connection per event): the file is read, and only a claimable
    /// window there ends the wait early.
    async fn next_candidate(&mut self) -> Option<WindowId> {
        if let Some(id) = self.hint() {
            tracing::info!("ready file announces window {id}");
            return Some(id);
        }
        let wait = self.since.map(|v| (self.cfg.coordinator.long_poll_secs, v));
        let coord = self.coord.clone();
        let mut stop = self.stop.clone();
        let poll = coord.status(wait);
        tokio::pin!(poll);
        let result = loop {
            tokio::select! {
                r = &mut poll => break r,
                _ = self.watch.changed() => {
                    if let Some(id) = self.hint() {
                        tracing::info!("ready file announces window {id}");
                        return Some(id);
                    }
                }
                _ = stop.changed() => return None,
            }
        };
        match result {
            Ok(status) => {
                self.note_reachable();
                self.since = Some(status.version);
                match status.window_id {
                    Some(id) if status.state == State::Ready && !self.refused.contains(&id) => {
                        tracing::info!("coordinator reports window {id} ready");
                        Some(id)
                    }
                    _ => None,
                }
            }
            Err(e @ ClientError::Unreachable { .. }) => {
                self.back_off(&e.to_string()).await;
                None
            }
            Err(e) => {
                self.back_off_at(tracing::Level::ERROR, &format!("status refused: {e}"))
                    .await;
                None
            }
        }
    }

    async fn try_claim(&mut self, window: WindowId) {
        match self.coord.claim(&window, &self.cfg.sidecar_id).await {
            Ok(lease) => {
                crate::metrics::get().claim("claimed");
                self.note_reachable();
                tracing::info!(
                    "claimed window {window}: lease {:.0} s, window ends {}",
                    lease.lease_ttl_secs,
                    lease.window_end
                );
                let stop = self.stop.clone();
                handle_window(self.cfg, &self.coord, window, lease, stop).await;
                self.since = None;
            }
            Err(e) if e.is_conflict() => {
                crate::metrics::get().claim("conflict");
                tracing::info!("window {window} cannot be claimed: {e}");
                if self.refused.len() > 1000 {
                    self.refused.clear();
                }
                self.refused.insert(window);
            }
            Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {
                crate::metrics::get().claim("error");
                self.back_off_at(
                    tracing::Level::ERROR,
                    "claim refused: the token is wrong or missing (check MAINTENANCE_TOKEN / MAINTENANCE_TOKEN_FILE)",
                )
                .await;
            }
            Err(e) => {
                crate::metrics::get().claim("error");
                self.back_off(&format!("claim failed: {e}")).await
            }
        }
    }
}

/// Runs the backup for a claimed window and reports it.
async fn handle_window(
    cfg: &Config,
    coord: &Coordinator,
    window: WindowId,
    lease: LeaseResponse,
    mut stop: watch::Receiver<bool>,
) {
    let cancel = CancelToken::new();
    let pin_offered = lease.pin.is_some();
    if let Some(pin) = &lease.pin {
        tracing::info!(
            "window {window}: the tracker pins the snapshot ({:?}, until {}); it resumes before the read",
            pin.mode,
            pin.ends_by
        );
    }
    let keeper = LeaseKeeper::start(coord.clone(), window.clone(), lease, cancel.clone());
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                cancel.cancel();
            }
        })
    };
    let run = {
        let cfg = cfg.clone();
        let coord = coord.clone();
        let window = window.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut release = crate::release::WindowRelease {
                rt,
                coord,
                window: window.clone(),
                pin_offered,
            };
            backup::run(&cfg, Some(window.as_str()), cancel, &mut release)
        })
        .await
        .expect("backup thread panicked")
    };
    stopper.abort();
    let mut report = run.report();
    let keeper_lost = keeper.lost();
    // Summary line and metrics first: once `complete` is in, the outcome
    // is visible to everyone, and the sidecar's metrics must agree with it.
    run.finish("run", Some(window.as_str()), keeper_lost);
    if keeper_lost {
        tracing::error!("window {window}: lease lost, backup abandoned, nothing published");
        report.error.get_or_insert_with(|| "lease lost".into());
    } else {
        match &run.result {
            Ok(p) => {
                tracing::info!("window {window}: backup {} published", p.manifest.name);
                report.remote =
                    crate::offsite::upload_published(cfg, p, "run", Some(window.as_str())).await;
            }
            Err(e) => tracing::error!("window {window}: backup failed: {e:#}"),
        }
        complete(coord, &window, report.clone(), &keeper).await;
    }
    keeper.stop();
    webhook::notify(
        &cfg.webhook,
        &Notification::for_report(&cfg.sidecar_id, "run", Some(window.as_str()), &report),
    )
    .await;
    if run.result.is_ok() {
        prune_quietly(cfg);
    }
}

/// Posts `complete`, retrying while the coordinator is unreachable and the
/// lease is still held (the call is idempotent).
async fn complete(
    coord: &Coordinator,
    window: &WindowId,
    report: maintenance_proto::BackupReport,
    keeper: &LeaseKeeper,
) {
    let mut backoff = Backoff::new(Duration::from_secs(10));
    loop {
        match coord.complete(window, report.clone()).await {
            Ok(r) => {
                tracing::info!("window {window} completed: outcome {}", r.outcome);
                return;
            }
            Err(e @ ClientError::Refused { .. }) => {
                tracing::error!("complete for window {window} refused: {e}");
                return;
            }
            Err(e) => {
                if keeper.lost() {
                    tracing::error!("could not report window {window} before the lease ended: {e}");
                    return;
                }
                let d = backoff.next_delay();
                tracing::warn!("complete failed ({e}); retrying in {} s", d.as_secs());
                tokio::time::sleep(d).await;
            }
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
