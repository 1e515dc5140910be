//! The orchestrator: the coordinated loop that gathers a round (claims
//! every ready window, asks the round policy whether to go on), takes the
//! one snapshot through the release adapter, publishes, completes every
//! window and notifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use maintenance_proto::{BackupReport, ErrorCode, LeaseResponse, State, WindowId};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::complete::{complete_all, first_window, record_instances, take_live};
use super::release::FleetRelease;
use super::round::{check_losses, decide, lock, Decision, Phase, Round, SharedRound, Slot};
use super::watch::{Member, Seen};
use crate::backup;
use crate::base::cancel::CancelToken;
use crate::client::{ClientError, Coordinators};
use crate::config::{Config, Resolve};
use crate::lease::LeaseKeeper;
use crate::retention::prune_quietly;
use crate::wake::ReadyFileWatch;
use crate::webhook::{self, Notification};

/// Runs the coordinated loop until `stop`.
pub async fn run(
    cfg: &Config,
    coords: Coordinators,
    stop: watch::Receiver<bool>,
) -> std::process::ExitCode {
    let mut fleet = Fleet::start(cfg, coords, stop.clone());
    fleet.announce();
    while !fleet.stopping() {
        fleet.watch.ensure();
        if let Some(round) = fleet.gather().await {
            fleet.back_up(round).await;
            // The instances are resolved again before the next window.
            fleet.rediscover_at = fleet.rediscover_at.map(|_| Instant::now());
        }
        if fleet.rediscover_at.is_some_and(|t| Instant::now() >= t) {
            fleet.rediscover_at = Some(Instant::now() + crate::discovery::INTERVAL);
            if let Some(coords) = fleet.rediscover().await {
                fleet.stop_watchers();
                fleet = Fleet::start(cfg, coords, stop.clone());
                fleet.announce();
            }
        }
    }
    fleet.stop_watchers();
    std::process::ExitCode::SUCCESS
}

struct Fleet<'a> {
    cfg: &'a Config,
    members: Vec<Member>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    watch: ReadyFileWatch,
    /// With `resolve = "each-address"`: when to resolve the instances
    /// again (checked only while no window is claimed).
    rediscover_at: Option<Instant>,
}

impl<'a> Fleet<'a> {
    fn start(cfg: &'a Config, coords: Coordinators, stop: watch::Receiver<bool>) -> Self {
        let wake = Arc::new(Notify::new());
        let members = coords
            .all()
            .iter()
            .map(|coord| Member::watch(coord, cfg, &wake))
            .collect();
        Fleet {
            cfg,
            members,
            wake,
            stop,
            watch: ReadyFileWatch::new(cfg.coordinator.ready_file.clone()),
            rediscover_at: (cfg.coordinator.resolve == Resolve::EachAddress)
                .then(|| Instant::now() + crate::discovery::INTERVAL),
        }
    }

    /// Logs the instances watched.
    fn announce(&self) {
        let urls: Vec<&str> = self.members.iter().map(Member::url).collect();
        tracing::info!(
            "waiting for maintenance windows from {} (sidecar id {})",
            urls.join(", "),
            self.cfg.sidecar_id
        );
        if self.members.len() > 1 {
            tracing::info!(
                "{} tracker instances, one backup: require = {}, gather timeout {} s",
                self.members.len(),
                self.cfg.coordinator.require.as_str(),
                self.cfg.coordinator.gather_timeout_secs
            );
        }
    }

    fn stop_watchers(&self) {
        for m in &self.members {
            m.watcher.abort();
        }
    }

    /// Resolves the instances again: `Some` when they changed. A failed
    /// resolution keeps the instances known (one warning).
    async fn rediscover(&self) -> Option<Coordinators> {
        let coords = match Coordinators::discover(&self.cfg.coordinator).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "{e:#}; keeping the {} instance(s) known",
                    self.members.len()
                );
                return None;
            }
        };
        let now: Vec<&str> = coords.all().iter().map(|c| c.url()).collect();
        let before: Vec<&str> = self.members.iter().map(Member::url).collect();
        if now == before {
            return None;
        }
        tracing::info!(
            "tracker instances changed: {} -> {}",
            before.join(", "),
            now.join(", ")
        );
        Some(coords)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn several(&self) -> bool {
        self.members.len() > 1
    }

    /// The window the ready file announces, and the member it belongs to
    /// (the only one, or the one whose instance id the file names).
    fn hint(&self) -> Option<(usize, WindowId)> {
        let doc = self.watch.read()?;
        let id = doc.window_id.clone().filter(|_| doc.ready)?;
        let i = if self.several() {
            self.members
                .iter()
                .position(|m| m.status().is_some_and(|s| s.instance_id == doc.instance_id))?
        } else {
            0
        };
        (!self.members[i].refused.contains(&id)).then_some((i, id))
    }

    /// Member `i`'s claimable window, if any.
    fn candidate(&self, i: usize, hint: &Option<(usize, WindowId)>) -> Option<WindowId> {
        let m = &self.members[i];
        if m.retry_claim_at.is_some_and(|t| t > Instant::now()) {
            return None;
        }
        if let Some((h, id)) = hint {
            if *h == i {
                tracing::info!("ready file announces window {id}");
                return Some(id.clone());
            }
        }
        let s = m.status()?;
        match &s.window_id {
            Some(id) if s.state == State::Ready && !m.refused.contains(id) => {
                tracing::info!("coordinator {} reports window {id} ready", m.url());
                Some(id.clone())
            }
            _ => None,
        }
    }

    /// Claims every ready window until the round can go on (or fails);
    /// `None` means "loop again".
    async fn gather(&mut self) -> Option<SharedRound> {
        let urls = self.members.iter().map(|m| m.url().to_owned()).collect();
        let round: SharedRound =
            Arc::new(Mutex::new(Round::new(self.cfg.coordinator.require, urls)));
        let gather = Duration::from_secs(self.cfg.coordinator.gather_timeout_secs);
        let mut deadline: Option<Instant> = None;
        loop {
            if self.stopping() {
                self.abandon(&round, "the sidecar is shutting down", true)
                    .await;
                return None;
            }
            let hint = self.hint();
            let waiting = lock(&round).waiting();
            let claims: Vec<(usize, WindowId)> = waiting
                .iter()
                .filter_map(|&i| self.candidate(i, &hint).map(|w| (i, w)))
                .collect();
            self.claim_all(&round, claims).await;
            if let Some(why) = check_losses(&round, &self.members) {
                self.abandon(&round, &why, true).await;
                return None;
            }
            if !lock(&round).has_live() {
                if lock(&round).slots.iter().any(Option::is_some) {
                    return None; // everything claimed was lost: start over
                }
                deadline = None;
                if self.rediscover_at.is_some_and(|t| Instant::now() >= t) {
                    return None; // nothing claimed: run() resolves the instances again
                }
            } else {
                let due = *deadline.get_or_insert_with(|| Instant::now() + gather);
                match decide(
                    &round,
                    &self.members,
                    gather,
                    due - gather,
                    Instant::now() >= due,
                ) {
                    Decision::Go => return Some(round),
                    Decision::Fail(why) => {
                        self.abandon(&round, &why, true).await;
                        return None;
                    }
                    Decision::Wait => {}
                }
            }
            let next_retry = self.members.iter().filter_map(|m| m.retry_claim_at).min();
            // While a window is claimed the instances are not resolved again.
            let rediscover = self.rediscover_at.filter(|_| !lock(&round).has_live());
            let until = [deadline, next_retry, rediscover]
                .into_iter()
                .flatten()
                .min();
            self.wait(until).await;
        }
    }

    /// Claims the given windows concurrently and records the outcomes.
    async fn claim_all(&mut self, round: &SharedRound, claims: Vec<(usize, WindowId)>) {
        if claims.is_empty() {
            return;
        }
        let sidecar = self.cfg.sidecar_id.clone();
        let calls = claims.iter().map(|(i, w)| {
            let coord = self.members[*i].coord.clone();
            let (w, sidecar) = (w.clone(), sidecar.clone());
            async move { coord.claim(&w, &sidecar).await }
        });
        let results = join_all(calls).await;
        for ((i, window), result) in claims.into_iter().zip(results) {
            match result {
                Ok(lease) => self.hold(round, i, window, lease),
                Err(e) => self.claim_failed(i, window, e),
            }
        }
    }

    /// A claim succeeded: heartbeat it and add it to the round.
    fn hold(&mut self, round: &SharedRound, i: usize, window: WindowId, lease: LeaseResponse) {
        crate::metrics::get().claim("claimed");
        let m = &mut self.members[i];
        m.claim_backoff.reset();
        m.retry_claim_at = None;
        if m.unreachable().is_some() {
            m.poke.notify_one();
        }
        tracing::info!(
            "claimed window {window}: lease {:.0} s, window ends {}",
            lease.lease_ttl_secs,
            lease.window_end
        );
        let pin = lease.pin.is_some();
        if let Some(p) = &lease.pin {
            tracing::info!(
                "window {window}: the tracker pins the snapshot ({:?}, until {}); it resumes before the read",
                p.mode,
                p.ends_by
            );
        }
        let keeper_lost = Arc::new(Mutex::new(None));
        let keeper = {
            let (lost, wake) = (keeper_lost.clone(), self.wake.clone());
            LeaseKeeper::start(m.coord.clone(), window.clone(), lease, move |why| {
                *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                wake.notify_one();
            })
        };
        let view = m.view.borrow().clone();
        let instance_id = match &view.seen {
            Seen::Status(s) => Some(s.instance_id.clone()),
            _ => None,
        };
        lock(round).slots[i] = Some(Slot {
            coord: m.coord.clone(),
            window,
            instance_id,
            claimed_seq: view.seq,
            keeper,
            keeper_lost,
            pin,
            phase: Phase::Held,
        });
    }

    fn claim_failed(&mut self, i: usize, window: WindowId, e: ClientError) {
        let m = &mut self.members[i];
        if e.is_conflict() {
            crate::metrics::get().claim("conflict");
            tracing::info!("window {window} cannot be claimed: {e}");
            if m.refused.len() > 1000 {
                m.refused.clear();
            }
            m.refused.insert(window);
            return;
        }
        crate::metrics::get().claim("error");
        let delay = m.claim_backoff.next_delay();
        m.retry_claim_at = Some(Instant::now() + delay);
        if e.code() == Some(ErrorCode::Unauthorized) {
            tracing::error!(
                "claim refused: the token is wrong or missing (check MAINTENANCE_TOKEN / MAINTENANCE_TOKEN_FILE); retrying in {} s",
                delay.as_secs()
            );
        } else {
            tracing::warn!("claim failed: {e}; retrying in {} s", delay.as_secs());
        }
    }

    /// Ends every live window of the round as failed, at once (each tracker
    /// resumes), with the same report. `before_backup`: the round ends
    /// before its backup started, so this writes the round's `backup
    /// finished` line (a running backup writes its own when it stops).
    ///
    /// A round in which nothing was claimed is no backup: that is an idle
    /// sidecar shutting down (a failed `require` decision and a lost lease
    /// need a claimed window). It ends nothing and writes no line, or every
    /// restart would add a failed backup to the log's history.
    async fn abandon(&mut self, round: &SharedRound, why: &str, before_backup: bool) {
        let (report, targets, window) = {
            let mut r = lock(round);
            if r.slots.iter().all(Option::is_none) {
                return;
            }
            let window = r.name_window();
            r.cancelled.get_or_insert_with(|| why.to_owned());
            let report = BackupReport {
                error: Some(format!("backup cancelled on every instance: {why}")),
                participation: Some(r.participation()),
                ..BackupReport::default()
            };
            (report, take_live(&mut r), window)
        };
        tracing::error!("backup cancelled on every instance: {why}");
        if before_backup {
            // Like every backup, this one ends with its summary line.
            backup::RunResult {
                result: Err(anyhow::anyhow!("backup cancelled on every instance: {why}")),
                durations_secs: Default::default(),
                verify_failed: false,
            }
            .finish("run", window.as_ref().map(|w| w.as_str()), false);
        }
        complete_all(&targets, &report).await;
        {
            let r = lock(round);
            record_instances(&r, false);
            r.slots.iter().flatten().for_each(|s| s.keeper.stop());
        }
        self.forget_claimed(round);
        self.notify(&report, None).await;
    }

    /// A window of a finished round is never claimed again (a late status
    /// or ready file may still show it ready), nor taken for a window that
    /// ended without this sidecar.
    fn forget_claimed(&mut self, round: &SharedRound) {
        let claimed: Vec<(usize, WindowId)> = lock(round)
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s.window.clone())))
            .collect();
        for (i, w) in claimed {
            self.members[i].refused.insert(w);
        }
    }

    /// Sleeps until something may have changed: a status, a lost lease,
    /// the ready file, `until`, or shutdown.
    async fn wait(&mut self, until: Option<Instant>) {
        let mut stop = self.stop.clone();
        let sleep = async {
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.wake.notified() => {},
            _ = self.watch.changed() => {},
            _ = sleep => {},
            _ = stop.changed() => {},
        }
    }

    /// Takes one snapshot for every claimed instance, releases each,
    /// publishes, and completes each with the same report.
    async fn back_up(&mut self, round: SharedRound) {
        let cfg = self.cfg;
        let Some(window) = lock(&round).name_window() else {
            return;
        };
        let cancel = CancelToken::new();
        let mut job = {
            let (cfg, round, cancel, window) =
                (cfg.clone(), round.clone(), cancel.clone(), window.clone());
            let rt = tokio::runtime::Handle::current();
            let pin_offered = lock(&round).live().all(|(_, s)| s.pin);
            tokio::task::spawn_blocking(move || {
                let mut release = FleetRelease {
                    rt,
                    round,
                    pin_offered,
                    pinned: Vec::new(),
                };
                backup::run(&cfg, Some(window.as_str()), cancel, &mut release)
            })
        };
        let mut stop = self.stop.clone();
        let wake = self.wake.clone();
        let run = loop {
            tokio::select! {
                r = &mut job => break r.expect("backup thread panicked"),
                _ = wake.notified() => {
                    if let Some(why) = check_losses(&round, &self.members) {
                        cancel.cancel();
                        self.abandon(&round, &why, false).await;
                    }
                }
                _ = stop.wait_for(|s| *s), if !cancel.is_cancelled() => cancel.cancel(),
            }
        };
        let cancelled = lock(&round).cancelled.clone();
        let mut report = run.report();
        report.participation = Some(lock(&round).participation());
        // Summary line and metrics first: once `complete` is in, the outcome
        // is visible to everyone, and the sidecar's metrics must agree with it.
        run.finish("run", Some(window.as_str()), cancelled.is_some());
        if let Some(why) = &cancelled {
            tracing::error!("window {window}: {why}; backup abandoned, nothing published");
            report
                .error
                .get_or_insert_with(|| format!("lease lost: {why}"));
        } else {
            match &run.result {
                Ok(p) => {
                    tracing::info!("window {window}: backup {} published", p.manifest.name);
                    report.remote =
                        crate::offsite::upload_published(cfg, p, "run", Some(window.as_str()))
                            .await;
                }
                Err(e) => tracing::error!("window {window}: backup failed: {e:#}"),
            }
            let targets = take_live(&mut lock(&round));
            complete_all(&targets, &report).await;
        }
        {
            let r = lock(&round);
            if cancelled.is_none() {
                // A cancelled round was recorded and notified by `abandon`.
                record_instances(&r, run.result.is_ok());
            }
            r.slots.iter().flatten().for_each(|s| s.keeper.stop());
        }
        self.forget_claimed(&round);
        if cancelled.is_none() {
            self.notify(&report, Some(window.as_str())).await;
        }
        if run.result.is_ok() {
            prune_quietly(cfg);
        }
    }

    /// The one webhook notification of a backup, with a warning when an
    /// instance was missing.
    async fn notify(&self, report: &BackupReport, window: Option<&str>) {
        let window = window
            .map(str::to_owned)
            .or_else(|| first_window(report).map(|w| w.to_string()));
        webhook::notify(
            &self.cfg.webhook,
            &Notification::for_report(&self.cfg.sidecar_id, "run", window.as_deref(), report),
        )
        .await;
    }
}
