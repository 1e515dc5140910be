//! The round policy: one backup attempt across the fleet ([`Round`]: per
//! instance its claimed window or why it is missing), when it goes on,
//! waits or fails under `require` ([`decide`]), and which windows ended
//! under it ([`check_losses`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use maintenance_proto::{InstanceReport, Participation, WindowId};
use tokio::time::Instant;

use super::watch::{ended, Member, Missing, Seen};
use crate::client::Coordinator;
use crate::config::Require;
use crate::lease::LeaseKeeper;
use crate::webhook;

/// Where a claimed window stands in the current backup.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Phase {
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
pub(super) struct Slot {
    pub(super) coord: Coordinator,
    pub(super) window: WindowId,
    pub(super) instance_id: Option<String>,
    pub(super) claimed_seq: u64,
    pub(super) keeper: LeaseKeeper,
    pub(super) keeper_lost: LostFlag,
    /// The claim offered a snapshot pin (protocol 2).
    pub(super) pin: bool,
    pub(super) phase: Phase,
}

/// One backup attempt across the fleet: per member, its claimed window or
/// why it is missing.
pub(super) struct Round {
    pub(super) require: Require,
    pub(super) urls: Vec<String>,
    pub(super) slots: Vec<Option<Slot>>,
    pub(super) missing: Vec<Option<Missing>>,
    /// Set when a lost window cancelled the backup everywhere.
    pub(super) cancelled: Option<String>,
}

impl Round {
    pub(super) fn new(require: Require, urls: Vec<String>) -> Self {
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
    pub(super) fn live(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|s| matches!(s.phase, Phase::Held | Phase::Released))
                .map(|s| (i, s))
        })
    }

    pub(super) fn has_live(&self) -> bool {
        self.live().next().is_some()
    }

    /// Members neither claimed nor given up on.
    pub(super) fn waiting(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_none() && self.missing[i].is_none())
            .collect()
    }

    /// The window id that names the backup: the first claimed one.
    pub(super) fn name_window(&self) -> Option<WindowId> {
        self.slots.iter().flatten().map(|s| s.window.clone()).next()
    }

    /// Every instance, whether it took part, and why not.
    pub(super) fn participation(&self) -> Participation {
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
pub(super) type SharedRound = Arc<Mutex<Round>>;

/// The round, even when a thread panicked holding it.
pub(super) fn lock(round: &SharedRound) -> std::sync::MutexGuard<'_, Round> {
    round.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a slot's lease keeper gave up, once it did.
pub(super) type LostFlag = Arc<Mutex<Option<String>>>;

/// What [`decide`] says about a round.
pub(super) enum Decision {
    /// Not yet: wait for more instances.
    Wait,
    /// Take the snapshot.
    Go,
    /// End every claimed window as failed (the reason).
    Fail(String),
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
pub(super) fn decide(
    round: &SharedRound,
    members: &[Member],
    gather: Duration,
    first_claim: Instant,
    timed_out: bool,
) -> Decision {
    let mut r = lock(round);
    let since = first_claim.checked_sub(gather).unwrap_or(first_claim);
    let reachable = r.require == Require::Reachable;
    let mut gone = Vec::new();
    for i in r.waiting() {
        if let Some(gone_why) = members[i].window_ended_since(since) {
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
        if !timed_out && waiting.iter().any(|&i| members[i].window_under_way()) {
            return Decision::Wait;
        }
        for i in waiting {
            let m = &members[i];
            let why = format!("no window under way (state {})", m.state_text());
            r.missing[i] = Some(m.missing(why));
        }
        let names = webhook::missing_list(&r.participation());
        return Decision::Fail(format!("instance(s) missing, require = all: {names}"));
    }
    let waiting = r.waiting();
    if waiting.is_empty() {
        if !gone.is_empty() {
            going_without(&r);
        }
        return Decision::Go;
    }
    let unreachable: Vec<Option<String>> =
        waiting.iter().map(|&i| members[i].unreachable()).collect();
    let all_down = reachable && unreachable.iter().all(Option::is_some);
    if !timed_out && !all_down {
        return Decision::Wait;
    }
    for (&i, down) in waiting.iter().zip(unreachable) {
        let why = match down {
            Some(e) => format!("unreachable: {e}"),
            None => {
                let state = members[i].state_text();
                format!(
                    "not ready within {} s of the first instance (state {state})",
                    gather.as_secs()
                )
            }
        };
        r.missing[i] = Some(members[i].missing(why));
    }
    if reachable {
        going_without(&r);
        Decision::Go
    } else {
        let names = webhook::missing_list(&r.participation());
        Decision::Fail(format!("instance(s) missing, require = all: {names}"))
    }
}

/// Logs that a `reachable` round goes on without its missing instances.
fn going_without(r: &Round) {
    tracing::warn!(
        "require = reachable: backing up without {}; the manifest and the report name them",
        webhook::missing_list(&r.participation())
    );
}

/// Notes windows that ended under us. Returns the reason when the
/// backup must be cancelled everywhere (`all`, or nothing left).
pub(super) fn check_losses(round: &SharedRound, members: &[Member]) -> Option<String> {
    let mut r = lock(round);
    if r.cancelled.is_some() {
        return None;
    }
    let several = members.len() > 1;
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
            let view = members[i].view.borrow();
            if view.seq <= slot.claimed_seq {
                return None;
            }
            match &view.seen {
                Seen::Unreachable(e) if several => Some(format!("coordinator unreachable: {e}")),
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
