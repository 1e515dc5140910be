//! `run` across N >= 1 coordinators: one backup for every tracker instance
//! that writes to the same database.
//!
//! Each instance buffers its own writes, so a snapshot is complete only if
//! every instance has flushed and stays quiesced until it is taken. The
//! sidecar therefore treats the instances' windows as one:
//!
//! 1. **Watch.** One task per coordinator long-polls its status on one
//!    kept connection ([`watch_status`]); the ready file, when configured,
//!    is a wake-up hint for the instance that wrote it.
//! 2. **Gather.** Every instance that reports `ready` is claimed at once
//!    and its lease heartbeated ([`LeaseKeeper`]). From the first claim the
//!    others have `gather_timeout_secs` to become ready (their clocks,
//!    drains and quiesces differ). Past that, as soon as a missing
//!    instance is unreachable under `reachable`, or as soon as a missing
//!    instance's own window ended (its quiesce failed, say), [`Require`]
//!    decides: `all` fails the backup, `reachable` goes on without it.
//! 3. **Snapshot once, release each.** The snapshot is taken with every
//!    claimed instance quiesced; then each is released, concurrently. When
//!    every claim offered a snapshot pin (protocol 2, SQLite) each release
//!    keeps its pin and each is unpinned after the read (`release.rs`).
//! 4. **Complete each** with the same report, which (like the manifest)
//!    lists every instance, its window and whether it took part.
//!
//! **One window ending ends them all.** When an instance's window ends
//! before the backup is done (abort, deadline, lost lease, restart), or,
//! with several instances, its coordinator becomes unreachable, the backup
//! is cancelled and every other claimed window is completed as failed at
//! once (the trackers resume; nothing is published). Under `reachable` an
//! instance lost before the snapshot is only marked missing, and the backup
//! goes on while at least one instance remains.
//!
//! With one coordinator this is exactly the single-instance loop: claim as
//! soon as it is ready, an unreachable coordinator is left to the lease
//! keeper (retry until the lease expires).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use maintenance_proto::{
    BackupReport, ErrorCode, InstanceReport, LeaseResponse, Participation, State, StatusResponse,
    WindowId, WindowOutcome,
};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::backup;
use crate::base::backoff::Backoff;
use crate::base::cancel::CancelToken;
use crate::client::{ClientError, Coordinator, Coordinators};
use crate::config::{Config, Require};
use crate::lease::LeaseKeeper;
use crate::retention::prune_quietly;
use crate::wake::ReadyFileWatch;
use crate::webhook::{self, Notification};

/// What a status watcher last saw of its coordinator.
#[derive(Debug, Clone, Default)]
enum Seen {
    /// No answer yet.
    #[default]
    Unknown,
    /// The last status call failed.
    Unreachable(String),
    /// The last status.
    Status(Arc<StatusResponse>),
}

/// [`Seen`] with a sequence number, so a view can be told apart from one
/// taken before a claim.
#[derive(Debug, Clone, Default)]
struct View {
    seen: Seen,
    seq: u64,
    /// When the watcher first saw each recorded outcome of the status
    /// (`None` for those already there at its first answer): a window that
    /// ended on its own (a failed quiesce, its deadline) is matched to a
    /// round by this local time, not by the instance's clock.
    ended_seen: Arc<SeenOutcomes>,
}

/// One configured coordinator (one tracker instance).
struct Member {
    coord: Coordinator,
    view: watch::Receiver<View>,
    watcher: tokio::task::JoinHandle<()>,
    /// Cuts the watcher's backoff short (a claim just proved the
    /// coordinator reachable).
    poke: Arc<Notify>,
    refused: HashSet<WindowId>,
    claim_backoff: Backoff,
    retry_claim_at: Option<Instant>,
}

impl Member {
    fn url(&self) -> &str {
        self.coord.url()
    }

    fn status(&self) -> Option<Arc<StatusResponse>> {
        match &self.view.borrow().seen {
            Seen::Status(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn unreachable(&self) -> Option<String> {
        match &self.view.borrow().seen {
            Seen::Unreachable(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Missing for `reason`, with what its last status showed.
    fn missing(&self, reason: String) -> Missing {
        let status = self.status();
        Missing {
            reason,
            instance_id: status.as_ref().map(|s| s.instance_id.clone()),
            window_id: status.and_then(|s| s.window_id.clone()),
        }
    }

    /// The state its last status showed, or `unknown`.
    fn state_text(&self) -> String {
        self.status()
            .map(|s| s.state.to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Its last status shows a window on its way to `ready` (or ready)
    /// that this sidecar has not claimed yet.
    fn window_under_way(&self) -> bool {
        self.status().is_some_and(|s| {
            matches!(s.state, State::Draining | State::Quiescing | State::Ready)
                && s.window_id
                    .as_ref()
                    .is_some_and(|w| !self.refused.contains(w))
        })
    }

    /// Why this instance cannot join the round any more: a window of it
    /// that this sidecar never claimed ended (say its quiesce hook failed)
    /// and the watcher saw that at or after `since`.
    fn window_ended_since(&self, since: Instant) -> Option<Missing> {
        let view = self.view.borrow();
        let Seen::Status(s) = &view.seen else {
            return None;
        };
        s.last_outcomes
            .iter()
            .find(|o| {
                !self.refused.contains(&o.window_id)
                    && view
                        .ended_seen
                        .get(&o.window_id)
                        .is_some_and(|t| t.is_some_and(|t| t >= since))
            })
            .map(|o| Missing {
                reason: format!(
                    "its window {} ended before it was ready: {}",
                    o.window_id,
                    ended(o)
                ),
                instance_id: Some(s.instance_id.clone()),
                window_id: Some(o.window_id.clone()),
            })
    }
}

/// `outcome (reason)` of an ended window.
fn ended(o: &WindowOutcome) -> String {
    format!(
        "{}{}",
        o.outcome.as_str(),
        o.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )
}

/// Where a claimed window stands in the current backup.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Claimed, quiesced, waiting for the snapshot.
    Held,
    /// Released after the snapshot; waiting for `complete`.
    Released,
    /// Its window ended under us (the reason).
    Lost(String),
    /// `complete` was sent (or given up on).
    Done,
}

/// One claimed window.
struct Slot {
    coord: Coordinator,
    window: WindowId,
    instance_id: Option<String>,
    claimed_seq: u64,
    keeper: LeaseKeeper,
    keeper_lost: LostFlag,
    /// The claim offered a snapshot pin (protocol 2).
    pin: bool,
    phase: Phase,
}

/// An instance given up on before it was claimed.
#[derive(Debug, Clone)]
struct Missing {
    reason: String,
    /// What its last status showed: its instance id and its window (the
    /// one that ended, or the one still under way), for the report.
    instance_id: Option<String>,
    window_id: Option<WindowId>,
}

/// One backup attempt across the fleet: per member, its claimed window or
/// why it is missing.
struct Round {
    require: Require,
    urls: Vec<String>,
    slots: Vec<Option<Slot>>,
    missing: Vec<Option<Missing>>,
    /// Set when a lost window cancelled the backup everywhere.
    cancelled: Option<String>,
}

impl Round {
    fn new(require: Require, urls: Vec<String>) -> Self {
        let n = urls.len();
        Round {
            require,
            urls,
            slots: (0..n).map(|_| None).collect(),
            missing: vec![None; n],
            cancelled: None,
        }
    }

    /// Slots still taking part (held or released).
    fn live(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|s| matches!(s.phase, Phase::Held | Phase::Released))
                .map(|s| (i, s))
        })
    }

    fn has_live(&self) -> bool {
        self.live().next().is_some()
    }

    /// Members neither claimed nor given up on.
    fn waiting(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_none() && self.missing[i].is_none())
            .collect()
    }

    /// The window id that names the backup: the first claimed one.
    fn name_window(&self) -> Option<WindowId> {
        self.slots.iter().flatten().map(|s| s.window.clone()).next()
    }

    /// Every instance, whether it took part, and why not.
    fn participation(&self) -> Participation {
        let instances = self
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let slot = self.slots[i].as_ref();
                let lost = slot.and_then(|s| match &s.phase {
                    Phase::Lost(r) => Some(r.clone()),
                    _ => None,
                });
                let missing = self.missing[i].as_ref();
                let reason = missing.map(|m| m.reason.clone()).or(lost);
                InstanceReport {
                    url: url.clone(),
                    instance_id: slot
                        .and_then(|s| s.instance_id.clone())
                        .or_else(|| missing.and_then(|m| m.instance_id.clone())),
                    window_id: slot
                        .map(|s| s.window.clone())
                        .or_else(|| missing.and_then(|m| m.window_id.clone())),
                    took_part: slot.is_some() && reason.is_none(),
                    reason,
                }
            })
            .collect();
        Participation {
            require: self.require.as_str().to_owned(),
            instances,
        }
    }
}

/// A round behind a lock: the backup thread releases through it while the
/// async side watches for lost windows.
type SharedRound = Arc<Mutex<Round>>;

fn lock(round: &SharedRound) -> std::sync::MutexGuard<'_, Round> {
    round.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the coordinated loop until `stop`.
pub async fn run(
    cfg: &Config,
    coords: Coordinators,
    stop: watch::Receiver<bool>,
) -> std::process::ExitCode {
    let mut fleet = Fleet::start(cfg, coords, stop);
    let urls: Vec<&str> = fleet.members.iter().map(Member::url).collect();
    tracing::info!(
        "waiting for maintenance windows from {} (sidecar id {})",
        urls.join(", "),
        cfg.sidecar_id
    );
    if fleet.members.len() > 1 {
        tracing::info!(
            "{} tracker instances, one backup: require = {}, gather timeout {} s",
            fleet.members.len(),
            cfg.coordinator.require.as_str(),
            cfg.coordinator.gather_timeout_secs
        );
    }
    while !fleet.stopping() {
        fleet.watch.ensure();
        if let Some(round) = fleet.gather().await {
            fleet.back_up(round).await;
        }
    }
    for m in &fleet.members {
        m.watcher.abort();
    }
    std::process::ExitCode::SUCCESS
}

struct Fleet<'a> {
    cfg: &'a Config,
    members: Vec<Member>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    watch: ReadyFileWatch,
}

impl<'a> Fleet<'a> {
    fn start(cfg: &'a Config, coords: Coordinators, stop: watch::Receiver<bool>) -> Self {
        let wake = Arc::new(Notify::new());
        let members = coords
            .all()
            .iter()
            .map(|coord| {
                let (tx, view) = watch::channel(View::default());
                let poke = Arc::new(Notify::new());
                let watcher = tokio::spawn(watch_status(
                    coord.clone(),
                    cfg.coordinator.long_poll_secs,
                    Duration::from_secs(cfg.coordinator.max_backoff_secs),
                    tx,
                    (wake.clone(), poke.clone()),
                ));
                Member {
                    coord: coord.clone(),
                    view,
                    watcher,
                    poke,
                    refused: HashSet::new(),
                    claim_backoff: Backoff::new(Duration::from_secs(
                        cfg.coordinator.max_backoff_secs,
                    )),
                    retry_claim_at: None,
                }
            })
            .collect();
        Fleet {
            cfg,
            members,
            wake,
            stop,
            watch: ReadyFileWatch::new(cfg.coordinator.ready_file.clone()),
        }
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
                self.abandon(&round, "the sidecar is shutting down").await;
                return None;
            }
            let hint = self.hint();
            let waiting = lock(&round).waiting();
            let claims: Vec<(usize, WindowId)> = waiting
                .iter()
                .filter_map(|&i| self.candidate(i, &hint).map(|w| (i, w)))
                .collect();
            self.claim_all(&round, claims).await;
            if let Some(why) = self.check_losses(&round) {
                self.abandon(&round, &why).await;
                return None;
            }
            if !lock(&round).has_live() {
                if lock(&round).slots.iter().any(Option::is_some) {
                    return None; // everything claimed was lost: start over
                }
                deadline = None;
            } else {
                let due = *deadline.get_or_insert_with(|| Instant::now() + gather);
                match self.decide(&round, due - gather, Instant::now() >= due) {
                    Decision::Go => return Some(round),
                    Decision::Fail(why) => {
                        self.abandon(&round, &why).await;
                        return None;
                    }
                    Decision::Wait => {}
                }
            }
            let next_retry = self.members.iter().filter_map(|m| m.retry_claim_at).min();
            let until = [deadline, next_retry].into_iter().flatten().min();
            self.wait(until).await;
        }
    }

    /// Whether a round with at least one live claim, the first made at
    /// `first_claim`, goes on now.
    ///
    /// A waiting instance whose own window already ended (its quiesce
    /// failed, say) is missing at once: under `all` the round fails as
    /// soon as the other instances whose windows are under way are claimed
    /// (they could not resume sooner; so every one gets the same report),
    /// without waiting for the gather deadline. A window that ended up to
    /// `gather_timeout_secs` before the first claim belongs to this round
    /// (the skew tolerance).
    fn decide(&self, round: &SharedRound, first_claim: Instant, timed_out: bool) -> Decision {
        let mut r = lock(round);
        let gather = Duration::from_secs(self.cfg.coordinator.gather_timeout_secs);
        let since = first_claim.checked_sub(gather).unwrap_or(first_claim);
        let reachable = r.require == Require::Reachable;
        let mut gone = Vec::new();
        for i in r.waiting() {
            if let Some(gone_why) = self.members[i].window_ended_since(since) {
                tracing::warn!("{}: {}", r.urls[i], gone_why.reason);
                r.missing[i] = Some(gone_why);
                gone.push(i);
            }
        }
        if !reachable && r.missing.iter().any(Option::is_some) {
            // The round fails. Instances whose windows are under way
            // (draining, quiescing) cannot resume any sooner than they
            // become ready and are claimed: wait for them, so that one
            // report reaches every instance.
            let waiting = r.waiting();
            if !timed_out && waiting.iter().any(|&i| self.members[i].window_under_way()) {
                return Decision::Wait;
            }
            for i in waiting {
                let m = &self.members[i];
                let why = format!("no window under way (state {})", m.state_text());
                r.missing[i] = Some(m.missing(why));
            }
            let names = webhook::missing_list(&r.participation());
            return Decision::Fail(format!("instance(s) missing, require = all: {names}"));
        }
        let waiting = r.waiting();
        if waiting.is_empty() {
            if !gone.is_empty() {
                self.going_without(&r);
            }
            return Decision::Go;
        }
        let unreachable: Vec<Option<String>> = waiting
            .iter()
            .map(|&i| self.members[i].unreachable())
            .collect();
        let all_down = reachable && unreachable.iter().all(Option::is_some);
        if !timed_out && !all_down {
            return Decision::Wait;
        }
        for (&i, down) in waiting.iter().zip(unreachable) {
            let why = match down {
                Some(e) => format!("unreachable: {e}"),
                None => {
                    let state = self.members[i].state_text();
                    format!(
                        "not ready within {} s of the first instance (state {state})",
                        gather.as_secs()
                    )
                }
            };
            r.missing[i] = Some(self.members[i].missing(why));
        }
        if reachable {
            self.going_without(&r);
            Decision::Go
        } else {
            let names = webhook::missing_list(&r.participation());
            Decision::Fail(format!("instance(s) missing, require = all: {names}"))
        }
    }

    /// Logs that a `reachable` round goes on without its missing instances.
    fn going_without(&self, r: &Round) {
        tracing::warn!(
            "require = reachable: backing up without {}; the manifest and the report name them",
            webhook::missing_list(&r.participation())
        );
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

    /// Notes windows that ended under us. Returns the reason when the
    /// backup must be cancelled everywhere (`all`, or nothing left).
    fn check_losses(&self, round: &SharedRound) -> Option<String> {
        let mut r = lock(round);
        if r.cancelled.is_some() {
            return None;
        }
        let several = self.several();
        let mut newly = Vec::new();
        for (i, slot) in r.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if !matches!(slot.phase, Phase::Held | Phase::Released) {
                continue;
            }
            let why = slot
                .keeper_lost
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let why = why.or_else(|| {
                let view = self.members[i].view.borrow();
                if view.seq <= slot.claimed_seq {
                    return None;
                }
                match &view.seen {
                    Seen::Unreachable(e) if several => {
                        Some(format!("coordinator unreachable: {e}"))
                    }
                    Seen::Status(s) => s
                        .last_outcomes
                        .iter()
                        .find(|o| o.window_id == slot.window)
                        .map(|o| format!("window ended: {}", ended(o))),
                    _ => None,
                }
            });
            let Some(why) = why else { continue };
            let released = slot.phase == Phase::Released;
            tracing::error!(
                "lease lost for window {} on {}: {why}",
                slot.window,
                slot.coord.url()
            );
            slot.phase = Phase::Lost(why.clone());
            newly.push((i, why, released));
        }
        let mut cancel = None;
        for (i, why, released) in newly {
            let url = r.urls[i].clone();
            if r.require == Require::All {
                cancel.get_or_insert(format!("{url}: {why}"));
            } else if released {
                // It took part in the snapshot; it only misses the report.
                if let Some(s) = r.slots[i].as_mut() {
                    s.phase = Phase::Done;
                }
                tracing::warn!("{url} cannot be told the outcome: {why}");
            } else {
                tracing::warn!(
                    "require = reachable: {url} is missing from the backup, which goes on without it"
                );
            }
        }
        if cancel.is_none()
            && !r.has_live()
            && r.slots
                .iter()
                .flatten()
                .any(|s| matches!(s.phase, Phase::Lost(_)))
        {
            cancel = r.slots.iter().flatten().find_map(|s| match &s.phase {
                Phase::Lost(w) => Some(format!("{}: {w}", s.coord.url())),
                _ => None,
            });
        }
        if let Some(why) = &cancel {
            r.cancelled = Some(why.clone());
        }
        cancel
    }

    /// Ends every live window of the round as failed, at once (each tracker
    /// resumes), with the same report.
    async fn abandon(&mut self, round: &SharedRound, why: &str) {
        let (report, targets) = {
            let mut r = lock(round);
            if r.slots.iter().all(Option::is_none) {
                return; // nothing was claimed: nothing to end
            }
            r.cancelled.get_or_insert_with(|| why.to_owned());
            let report = BackupReport {
                error: Some(format!("backup cancelled on every instance: {why}")),
                participation: Some(r.participation()),
                ..BackupReport::default()
            };
            (report, take_live(&mut r))
        };
        tracing::error!("backup cancelled on every instance: {why}");
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
                    if let Some(why) = self.check_losses(&round) {
                        cancel.cancel();
                        self.abandon(&round, &why).await;
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

enum Decision {
    Wait,
    Go,
    Fail(String),
}

/// The window that names a cancelled backup: the first one that took
/// part, else the first one named at all.
fn first_window(report: &BackupReport) -> Option<&WindowId> {
    let instances = &report.participation.as_ref()?.instances;
    instances
        .iter()
        .filter(|i| i.took_part)
        .chain(instances)
        .find_map(|i| i.window_id.as_ref())
}

/// Why a slot's lease keeper gave up, once it did.
type LostFlag = Arc<Mutex<Option<String>>>;

/// A window to complete: its coordinator, id and lost flag.
type Target = (Coordinator, WindowId, LostFlag);

/// Marks every live slot done and returns what `complete` needs.
fn take_live(r: &mut Round) -> Vec<Target> {
    let mut out = Vec::new();
    for s in r.slots.iter_mut().flatten() {
        if matches!(s.phase, Phase::Held | Phase::Released) {
            s.phase = Phase::Done;
            out.push((s.coord.clone(), s.window.clone(), s.keeper_lost.clone()));
        }
    }
    out
}

/// Per-instance metrics of a finished (or cancelled) backup.
fn record_instances(r: &Round, ok: bool) {
    let p = r.participation();
    for i in &p.instances {
        let result = match (i.took_part, ok) {
            (false, _) => "missing",
            (true, true) => "completed",
            (true, false) => "failed",
        };
        crate::metrics::get().instance_window(&i.url, result);
    }
}

/// The fleet's side of [`backup::Release`], called from the backup
/// thread: releases every held window at once right after the snapshot,
/// unpins every pinned one after the read.
struct FleetRelease {
    rt: tokio::runtime::Handle,
    round: SharedRound,
    /// Every claimed window offered a pin (protocol 2).
    pin_offered: bool,
    /// Windows released with their pin kept.
    pinned: Vec<(Coordinator, WindowId)>,
}

impl backup::Release for FleetRelease {
    fn pin_offered(&self) -> bool {
        self.pin_offered
    }

    fn release(&mut self, keep_pin: bool) -> anyhow::Result<bool> {
        let held: Vec<(usize, Coordinator, WindowId)> = lock(&self.round)
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| s.phase == Phase::Held)
                    .map(|s| (i, s.coord.clone(), s.window.clone()))
            })
            .collect();
        let results = self.rt.block_on(join_all(
            held.iter()
                .map(|(_, c, w)| crate::release::release(c, w, keep_pin)),
        ));
        let mut r = lock(&self.round);
        if let Some(why) = &r.cancelled {
            anyhow::bail!("backup cancelled: {why}");
        }
        let mut kept = true;
        for ((i, coord, window), result) in held.into_iter().zip(results) {
            let Some(slot) = r.slots[i].as_mut() else {
                continue;
            };
            match result {
                Ok(pinned) => {
                    if slot.phase == Phase::Held {
                        slot.phase = Phase::Released;
                    }
                    if pinned {
                        self.pinned.push((coord, window));
                    }
                    kept &= pinned;
                }
                Err(e) => {
                    slot.phase = Phase::Lost(format!("{e:#}"));
                    // A pinned read needs every pin; `all` needs everyone.
                    if keep_pin || r.require == Require::All || !r.has_live() {
                        return Err(e);
                    }
                    tracing::warn!("{}: {e:#}; it is missing from the backup", r.urls[i]);
                }
            }
        }
        Ok(keep_pin && kept)
    }

    fn unpin(&mut self) -> anyhow::Result<()> {
        let results = self.rt.block_on(join_all(
            self.pinned.iter().map(|(c, w)| crate::release::unpin(c, w)),
        ));
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        Ok(())
    }

    fn participation(&self) -> Option<Participation> {
        Some(lock(&self.round).participation())
    }
}

/// Sends `complete` with the same report to every target concurrently.
async fn complete_all(targets: &[Target], report: &BackupReport) {
    join_all(
        targets
            .iter()
            .map(|(c, w, lost)| complete(c, w, report.clone(), lost)),
    )
    .await;
}

/// Posts `complete`, retrying while the coordinator is unreachable and the
/// lease is still held (the call is idempotent).
async fn complete(
    coord: &Coordinator,
    window: &WindowId,
    report: BackupReport,
    lost: &Mutex<Option<String>>,
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
                if lost.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
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

/// Long-polls one coordinator's status forever on its kept connection,
/// publishing every answer (or failure) and waking the fleet. A failed
/// call is retried after 1, 2, 4, ... s (capped), with one log line each;
/// only `poke` (a successful claim) cuts a backoff short.
async fn watch_status(
    coord: Coordinator,
    long_poll_secs: u64,
    max_backoff: Duration,
    tx: watch::Sender<View>,
    (wake, poke): (Arc<Notify>, Arc<Notify>),
) {
    let mut since: Option<u64> = None;
    let mut backoff = Backoff::new(max_backoff);
    let mut unreachable = false;
    let mut seq = 0;
    // `None` until the first answer, whose outcomes are history.
    let mut ended_seen: Option<Arc<SeenOutcomes>> = None;
    let metrics = crate::metrics::get();
    loop {
        let result = coord.status(since.map(|v| (long_poll_secs, v))).await;
        seq += 1;
        match result {
            Ok(status) => {
                if unreachable {
                    tracing::info!("coordinator {} reachable again", coord.url());
                }
                unreachable = false;
                backoff.reset();
                since = Some(status.version);
                metrics.instance_up(coord.url(), true);
                let seen = note_outcomes(ended_seen.take(), &status.last_outcomes);
                ended_seen = Some(seen.clone());
                tx.send_replace(View {
                    seen: Seen::Status(Arc::new(status)),
                    seq,
                    ended_seen: seen,
                });
                wake.notify_one();
            }
            Err(e) => {
                let delay = backoff.next_delay();
                match &e {
                    ClientError::Unreachable { .. } => {
                        tracing::warn!("{e}; retrying in {} s", delay.as_secs())
                    }
                    ClientError::Refused { .. } => {
                        tracing::error!("status refused: {e}; retrying in {} s", delay.as_secs())
                    }
                }
                unreachable = true;
                since = None;
                metrics.instance_up(coord.url(), false);
                tx.send_replace(View {
                    seen: Seen::Unreachable(e.to_string()),
                    seq,
                    ended_seen: ended_seen.clone().unwrap_or_default(),
                });
                wake.notify_one();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = poke.notified() => {},
                }
            }
        }
    }
}

/// Per recorded outcome, when a watcher first saw it (`None`: it was
/// there at the watcher's first answer).
type SeenOutcomes = HashMap<WindowId, Option<Instant>>;

/// When each of `outcomes` was first seen: kept from `before`, now for a
/// new one, `None` for all at the first answer (`before` is `None`). Only
/// outcomes still listed are kept, so the map stays as short as the list.
fn note_outcomes(
    before: Option<Arc<SeenOutcomes>>,
    outcomes: &[WindowOutcome],
) -> Arc<SeenOutcomes> {
    let now = before.as_ref().map(|_| Instant::now());
    if let Some(b) = &before {
        if b.len() == outcomes.len() && outcomes.iter().all(|o| b.contains_key(&o.window_id)) {
            return b.clone();
        }
    }
    Arc::new(
        outcomes
            .iter()
            .map(|o| {
                let at = match &before {
                    Some(b) => b.get(&o.window_id).copied().unwrap_or(now),
                    None => None,
                };
                (o.window_id.clone(), at)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use maintenance_proto::Outcome;

    fn outcome(id: &str) -> WindowOutcome {
        WindowOutcome {
            window_id: WindowId::new(id),
            outcome: Outcome::Failed,
            opened_at: chrono::Utc::now(),
            ended_at: chrono::Utc::now(),
            quiesced_secs: 0.0,
            reason: Some("quiesce hook failed: denied".into()),
            report: None,
        }
    }

    #[test]
    fn outcomes_at_the_first_answer_are_history_later_ones_are_timed() {
        let first = note_outcomes(None, &[outcome("a")]);
        assert_eq!(first.get(&WindowId::new("a")), Some(&None));
        let before = Instant::now();
        let second = note_outcomes(Some(first), &[outcome("b"), outcome("a")]);
        assert_eq!(second.get(&WindowId::new("a")), Some(&None));
        let b = second.get(&WindowId::new("b")).copied().flatten();
        assert!(b.is_some_and(|t| t >= before), "{second:?}");
        // Unchanged list: the same map; a dropped outcome is forgotten.
        let third = note_outcomes(Some(second.clone()), &[outcome("b"), outcome("a")]);
        assert!(Arc::ptr_eq(&second, &third));
        let fourth = note_outcomes(Some(third), &[outcome("c"), outcome("b")]);
        assert_eq!(fourth.len(), 2);
        assert_eq!(fourth.get(&WindowId::new("b")).copied().flatten(), b);
        assert_eq!(ended(&outcome("a")), "failed (quiesce hook failed: denied)");
    }
}
