//! The window state machine, in one place.
//!
//! ```text
//! idle ──open──▶ draining ──drained──▶ quiescing ──hook ok──▶ ready
//!   ▲                                                          │ claim
//!   │                                                          ▼
//!   └── resumed ◀── resuming ◀── complete / release / abort ◀── claimed
//!                        ▲        lease lost / deadline
//!                        └──────── (from any state: abort, deadline, failure)
//! ```
//!
//! Every transition is a method here that takes the current time, checks
//! its preconditions and either changes the state or returns a [`Rejection`]
//! and changes nothing. The machine does no I/O: the runner performs the
//! effects (gate, hooks, readiness file) and the HTTP API calls the methods
//! for sidecar and operator requests.
//!
//! A window that was *released* (snapshot taken, tracker resumed) is kept as
//! `released` until the sidecar completes it or its lease runs out, so every
//! window still ends with exactly one recorded outcome.
//!
//! **Pins (protocol 2).** When the tracker's quiesce leaves a pin (the main
//! database file frozen), the claim offers it; a release with `keep_pin`
//! resumes the tracker but keeps the pin until the sidecar says `unpin`
//! (it has read everything), or until the lease, the deadline, an abort or
//! `complete` ends it. Once the machine decides a pin ends, the runner
//! drops it (the hook) and clears it here; an `unpin` after any end other
//! than the sidecar's own is refused with `pin_lost`, so a sidecar never
//! publishes a read that the pin did not cover from start to end.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use maintenance_proto::{
    Ack, AnnouncePolicy, BackupReport, CompleteResponse, ErrorCode, LeaseResponse, Outcome,
    PinMode, PinOffer, PinStatus, ReleasedWindow, State, UnpinResponse, WindowId, WindowOutcome,
    WindowSpan,
};

use crate::hooks::WindowInfo;
use crate::metrics::Metrics;

/// How many outcomes the status keeps.
const OUTCOMES_KEPT: usize = 20;

/// How much longer than its configured length a window may last in elapsed
/// (monotonic) time before it is cut, whatever the wall clock says.
pub(crate) const ELAPSED_MARGIN: Duration = Duration::from_secs(5);

/// One reading of both clocks, taken by the caller of a transition: the
/// wall clock for instants shown to people and compared with the schedule
/// (opened at, lease expiry, deadlines), the monotonic clock for every
/// duration the machine reports (`quiesced_secs`, `held_secs`, the metrics'
/// window durations), so a stepped wall clock never makes one negative or
/// a day long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// The wall clock.
    pub(crate) wall: DateTime<Utc>,
    /// Monotonic time since an arbitrary origin of this process.
    pub(crate) mono: Duration,
}

impl Now {
    /// Reads both clocks.
    pub(crate) fn read() -> Now {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        Now {
            wall: Utc::now(),
            mono: origin.elapsed(),
        }
    }
}

/// Tests give a wall time alone when the two clocks agree (no step).
#[cfg(test)]
impl From<DateTime<Utc>> for Now {
    fn from(wall: DateTime<Utc>) -> Now {
        Now {
            wall,
            mono: Duration::from_millis(wall.timestamp_millis().max(0) as u64),
        }
    }
}

/// Seconds from `from` to `to` on the monotonic clock, in milliseconds.
fn secs_between(from: Duration, to: Duration) -> f64 {
    to.saturating_sub(from).as_millis() as f64 / 1000.0
}

/// A refused request: the code and an explanation naming the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable error code.
    pub code: ErrorCode,
    /// What happened and what to do.
    pub message: String,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
struct Claim {
    sidecar_id: String,
    /// The secret the claim answered; every later call must present it.
    lease_id: String,
    lease_expires_at: DateTime<Utc>,
}

/// True when `presented` is `lease_id` (compared in constant time).
fn lease_matches(lease_id: &str, presented: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(lease_id.as_bytes())))
}

/// How a window is ending, once decided.
#[derive(Debug, Clone)]
struct Ending {
    outcome: Outcome,
    reason: Option<String>,
    report: Option<BackupReport>,
}

#[derive(Debug, Clone)]
struct ActiveWindow {
    info: WindowInfo,
    opened_at: DateTime<Utc>,
    /// [`Now::mono`] at opening.
    opened_mono: Duration,
    claim: Option<Claim>,
    /// The sidecar said its snapshot is taken.
    released: bool,
    ending: Option<Ending>,
}

#[derive(Debug, Clone)]
struct Released {
    window_id: WindowId,
    opened_at: DateTime<Utc>,
    /// [`Now::mono`] at opening.
    opened_mono: Duration,
    quiesced_secs: f64,
    claim: Claim,
}

/// The pin the tracker holds for a window's snapshot.
#[derive(Debug, Clone)]
struct Pin {
    info: WindowInfo,
    mode: PinMode,
    since: DateTime<Utc>,
    /// [`Now::mono`] when the pin was taken.
    since_mono: Duration,
    /// The sidecar released the tracker but keeps reading under the pin.
    kept: bool,
    /// Decided: the pin ends (the runner drops it, then clears it).
    ending: Option<PinEnd>,
}

/// Why a pin ended.
#[derive(Debug, Clone)]
struct PinEnd {
    /// The sidecar said it finished reading (unpin, release, complete).
    by_sidecar: bool,
    reason: String,
    held_secs: f64,
}

/// What the runner must do next for the active window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Keep going with the current phase.
    Continue,
    /// Stop the phase and resume the tracker.
    Resume,
}

/// The coordinator's state. See the module docs.
#[derive(Debug)]
pub(crate) struct Machine {
    instance_id: String,
    policy: AnnouncePolicy,
    state: State,
    active: Option<ActiveWindow>,
    released: Option<Released>,
    pin: Option<Pin>,
    /// How the most recent pin ended, for an `unpin` arriving after it.
    last_pin_end: Option<(WindowId, PinEnd)>,
    outcomes: VecDeque<WindowOutcome>,
    version: u64,
    windows_opened: u64,
    windows_ended: u64,
    metrics: Metrics,
}

impl Machine {
    pub(crate) fn new(instance_id: String, policy: AnnouncePolicy, metrics: Metrics) -> Self {
        Machine {
            instance_id,
            policy,
            state: State::Idle,
            active: None,
            released: None,
            pin: None,
            last_pin_end: None,
            outcomes: VecDeque::new(),
            version: 1,
            windows_opened: 0,
            windows_ended: 0,
            metrics,
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub(crate) fn policy(&self) -> AnnouncePolicy {
        self.policy
    }

    pub(crate) fn active_window(&self) -> Option<&WindowInfo> {
        self.active.as_ref().map(|w| &w.info)
    }

    /// Recorded outcomes, newest first.
    pub(crate) fn outcomes(&self) -> impl Iterator<Item = &WindowOutcome> {
        self.outcomes.iter()
    }

    /// How many windows have ended (outcomes recorded) since start.
    pub(crate) fn windows_ended(&self) -> u64 {
        self.windows_ended
    }

    pub(crate) fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.active
            .as_ref()
            .and_then(|w| w.claim.as_ref())
            .map(|c| c.lease_expires_at)
    }

    pub(crate) fn released_window(&self) -> Option<ReleasedWindow> {
        self.released.as_ref().map(|r| ReleasedWindow {
            window_id: r.window_id.clone(),
            lease_expires_at: r.claim.lease_expires_at,
        })
    }

    /// True while the tracker holds a snapshot pin.
    pub(crate) fn has_pin(&self) -> bool {
        self.pin.is_some()
    }

    pub(crate) fn pin_status(&self) -> Option<PinStatus> {
        self.pin.as_ref().map(|p| PinStatus {
            window_id: p.info.window_id.clone(),
            mode: p.mode,
            since: p.since,
            ends_by: p.info.span.end,
            kept_after_release: p.kept,
        })
    }

    fn set_state(&mut self, state: State) {
        self.state = state;
        self.version += 1;
    }

    /// Records `outcome`; `secs` is the window's length on the monotonic
    /// clock.
    fn record(&mut self, outcome: WindowOutcome, secs: f64) {
        self.metrics
            .window_ended(outcome.outcome, secs, outcome.quiesced_secs);
        self.outcomes.push_front(outcome);
        self.outcomes.truncate(OUTCOMES_KEPT);
        self.windows_ended += 1;
        self.version += 1;
    }

    fn find_outcome(&self, id: &WindowId) -> Option<&WindowOutcome> {
        self.outcomes.iter().find(|o| &o.window_id == id)
    }

    /// Decides how the active window ends, unless already decided, and moves
    /// to `resuming`. Returns false when there was nothing to end.
    fn end_active(
        &mut self,
        outcome: Outcome,
        reason: Option<String>,
        report: Option<BackupReport>,
    ) -> bool {
        let Some(active) = self.active.as_mut() else {
            return false;
        };
        if active.ending.is_some() {
            return false;
        }
        active.ending = Some(Ending {
            outcome,
            reason,
            report,
        });
        self.set_state(State::Resuming);
        true
    }

    fn stale(&self, id: &WindowId) -> Rejection {
        match (&self.active, self.find_outcome(id)) {
            (_, Some(done)) => reject(
                ErrorCode::StaleWindow,
                format!(
                    "window {id} already ended as {}; wait for the next window",
                    done.outcome
                ),
            ),
            (Some(active), None) => reject(
                ErrorCode::StaleWindow,
                format!(
                    "window {id} is not the current window (current: {}); re-read the status",
                    active.info.window_id
                ),
            ),
            (None, None) => reject(
                ErrorCode::StaleWindow,
                format!("window {id} is unknown to this coordinator (instance {}); it may have restarted — re-read the status", self.instance_id),
            ),
        }
    }

    /// Current window matching `id` that has not started ending.
    fn live_window(&mut self, id: &WindowId) -> Result<&mut ActiveWindow, Rejection> {
        let stale = self.stale(id);
        match self.active.as_mut() {
            Some(active) if &active.info.window_id == id => {
                if active.ending.is_some() {
                    Err(reject(
                        ErrorCode::StaleWindow,
                        format!("window {id} is ending; the tracker is resuming"),
                    ))
                } else {
                    Ok(active)
                }
            }
            _ => Err(stale),
        }
    }

    // ---- transitions ------------------------------------------------------

    /// idle → draining. Refused while another window runs or awaits completion.
    pub(crate) fn open(
        &mut self,
        span: WindowSpan,
        now: impl Into<Now>,
    ) -> Result<WindowInfo, Rejection> {
        let clock: Now = now.into();
        let now = clock.wall;
        if let Some(active) = &self.active {
            return Err(reject(
                ErrorCode::WindowBusy,
                format!(
                    "window {} is running (state {}); abort it first or wait until it ends",
                    active.info.window_id, self.state
                ),
            ));
        }
        if let Some(released) = &self.released {
            return Err(reject(
                ErrorCode::WindowBusy,
                format!(
                    "window {} was released and still waits for the sidecar's completion; abort it first or wait",
                    released.window_id
                ),
            ));
        }
        if let Some(pin) = &self.pin {
            return Err(reject(
                ErrorCode::WindowBusy,
                format!(
                    "the snapshot of window {} is still pinned; wait until it is unpinned or abort it",
                    pin.info.window_id
                ),
            ));
        }
        self.windows_opened += 1;
        let short_instance: String = self.instance_id.chars().take(12).collect();
        let window_id = WindowId::new(format!("{short_instance}-{}", self.windows_opened));
        let info = WindowInfo {
            window_id,
            span,
            policy: self.policy,
        };
        self.active = Some(ActiveWindow {
            info: info.clone(),
            opened_at: now,
            opened_mono: clock.mono,
            claim: None,
            released: false,
            ending: None,
        });
        self.set_state(State::Draining);
        Ok(info)
    }

    /// draining → quiescing → ready, as the runner finishes each phase.
    /// Returns [`Next::Resume`] when the window is already ending.
    pub(crate) fn advance(&mut self, to: State) -> Next {
        match &self.active {
            Some(active) if active.ending.is_none() && !active.released => {
                debug_assert!(matches!(to, State::Quiescing | State::Ready));
                self.set_state(to);
                Next::Continue
            }
            _ => Next::Resume,
        }
    }

    /// Whether the runner should stop the current phase and resume.
    pub(crate) fn next(&self) -> Next {
        match &self.active {
            Some(active) if active.ending.is_none() && !active.released => Next::Continue,
            _ => Next::Resume,
        }
    }

    /// ready → claimed, with a new unguessable lease id. The same sidecar
    /// claiming again with that lease id (`presented`) renews its lease.
    pub(crate) fn claim(
        &mut self,
        id: &WindowId,
        sidecar_id: &str,
        presented: Option<&str>,
        now: impl Into<Now>,
        ttl: Duration,
    ) -> Result<LeaseResponse, Rejection> {
        let clock: Now = now.into();
        let now = clock.wall;
        let state = self.state;
        let active = self.live_window(id)?;
        let lease_expires_at = now + ttl;
        let lease_id = match (&mut active.claim, state) {
            (None, State::Ready) => {
                let lease_id = uuid::Uuid::new_v4().simple().to_string();
                active.claim = Some(Claim {
                    sidecar_id: sidecar_id.to_owned(),
                    lease_id: lease_id.clone(),
                    lease_expires_at,
                });
                lease_id
            }
            (Some(claim), _)
                if claim.sidecar_id == sidecar_id && lease_matches(&claim.lease_id, presented) =>
            {
                claim.lease_expires_at = lease_expires_at;
                claim.lease_id.clone()
            }
            (Some(claim), _) => {
                return Err(reject(
                    ErrorCode::AlreadyClaimed,
                    format!(
                        "window {id} is already claimed by sidecar {:?}; only one sidecar backs up a window \
                         (a claim is renewed only with the lease id its first answer carried)",
                        claim.sidecar_id
                    ),
                ))
            }
            (None, other) => {
                return Err(reject(
                    ErrorCode::WrongState,
                    format!("window {id} is {other}, not ready yet; long-poll the status and claim when it is ready"),
                ))
            }
        };
        let window_end = active.info.span.end;
        self.set_state(State::Claimed);
        let mut answer = lease(id, ttl, lease_expires_at, window_end);
        answer.pin = self.pin_offer(id);
        answer.lease_id = Some(lease_id);
        Ok(answer)
    }

    /// Refuses a call on window `id`'s lease (`heartbeat`, `release`,
    /// `unpin`, `complete`) that does not carry the claim's lease id
    /// (`409 lease_mismatch`), or that targets a live window nobody
    /// claimed (`409 wrong_state`). A window that is over passes: its
    /// transition answers (stale, idempotent completion, pin lost).
    pub(crate) fn check_lease(
        &self,
        id: &WindowId,
        presented: Option<&str>,
        call: &str,
    ) -> Result<(), Rejection> {
        let released = self.released.as_ref().filter(|r| &r.window_id == id);
        let active = self.active.as_ref().filter(|a| &a.info.window_id == id);
        let claim = released
            .map(|r| &r.claim)
            .or_else(|| active.and_then(|a| a.claim.as_ref()));
        match (claim, active) {
            (Some(claim), _) if lease_matches(&claim.lease_id, presented) => Ok(()),
            (Some(claim), _) => Err(reject(
                ErrorCode::LeaseMismatch,
                match presented {
                    None => format!(
                        "{call} of window {id} needs the lease_id its claim answered (protocol 3); \
                         only the claimant, sidecar {:?}, may {call} it",
                        claim.sidecar_id
                    ),
                    Some(_) => format!(
                        "wrong lease_id for window {id}: its lease belongs to sidecar {:?}, \
                         which alone may {call} it",
                        claim.sidecar_id
                    ),
                },
            )),
            (None, Some(_)) => Err(reject(
                ErrorCode::WrongState,
                format!("window {id} is not claimed: nobody may {call} it before a claim"),
            )),
            (None, None) => Ok(()),
        }
    }

    /// Extends the lease of a claimed or released window.
    pub(crate) fn heartbeat(
        &mut self,
        id: &WindowId,
        now: impl Into<Now>,
        ttl: Duration,
    ) -> Result<LeaseResponse, Rejection> {
        let clock: Now = now.into();
        let now = clock.wall;
        let lease_expires_at = now + ttl;
        if let Some(released) = self.released.as_mut().filter(|r| &r.window_id == id) {
            released.claim.lease_expires_at = lease_expires_at;
            self.version += 1;
            return Ok(lease(id, ttl, lease_expires_at, lease_expires_at));
        }
        let active = self.live_window(id)?;
        let Some(claim) = active.claim.as_mut() else {
            return Err(reject(
                ErrorCode::WrongState,
                format!("window {id} is not claimed; claim it first"),
            ));
        };
        claim.lease_expires_at = lease_expires_at;
        let window_end = active.info.span.end;
        self.version += 1;
        Ok(lease(id, ttl, lease_expires_at, window_end))
    }

    /// claimed → resuming, with the window kept open for `complete`.
    /// With `keep_pin`, the tracker's pin (if any) stays until `unpin`;
    /// without it the sidecar has finished reading and the pin ends.
    pub(crate) fn release(
        &mut self,
        id: &WindowId,
        keep_pin: bool,
        now: impl Into<Now>,
    ) -> Result<Ack, Rejection> {
        let clock: Now = now.into();
        let already = self.released.as_ref().is_some_and(|r| &r.window_id == id)
            || self
                .active
                .as_ref()
                .is_some_and(|a| &a.info.window_id == id && a.released);
        if already {
            return Ok(Ack {
                window_id: id.clone(),
                state: self.state,
                pinned: self.pin_held(id),
            });
        }
        let active = self.live_window(id)?;
        if active.claim.is_none() {
            return Err(reject(
                ErrorCode::WrongState,
                format!("window {id} is not claimed; claim it before releasing"),
            ));
        }
        active.released = true;
        self.set_state(State::Resuming);
        let pinned = match self.pin.as_mut() {
            Some(pin) if keep_pin && pin.ending.is_none() => {
                pin.kept = true;
                true
            }
            _ => {
                self.end_pin(true, "released: the sidecar finished reading", clock);
                false
            }
        };
        Ok(Ack {
            window_id: id.clone(),
            state: State::Resuming,
            pinned,
        })
    }

    /// The sidecar has read everything under the pin: confirms that the
    /// pin was held without interruption until now, and ends it.
    pub(crate) fn unpin(
        &mut self,
        id: &WindowId,
        now: impl Into<Now>,
    ) -> Result<UnpinResponse, Rejection> {
        let clock: Now = now.into();
        // How this window's pin ended: the live pin's decided end, or the
        // last ended pin's; `None` when it is live and undecided, or unknown.
        let ending = match self.pin.as_ref().filter(|p| &p.info.window_id == id) {
            Some(pin) if pin.ending.is_none() => {
                let held_secs = self.end_pin(true, "unpinned: the sidecar finished reading", clock);
                return Ok(UnpinResponse {
                    window_id: id.clone(),
                    held_secs,
                });
            }
            Some(pin) => pin.ending.clone(),
            None => self
                .last_pin_end
                .as_ref()
                .filter(|(last, _)| last == id)
                .map(|(_, end)| end.clone()),
        };
        match ending {
            Some(end) if end.by_sidecar => Ok(UnpinResponse {
                window_id: id.clone(),
                held_secs: end.held_secs,
            }),
            Some(end) => Err(reject(
                ErrorCode::PinLost,
                format!(
                    "the pin of window {id} ended before the read was confirmed ({}); abandon the backup",
                    end.reason
                ),
            )),
            None if self.find_outcome(id).is_some()
                || self.released.as_ref().is_some_and(|r| &r.window_id == id)
                || self
                    .active
                    .as_ref()
                    .is_some_and(|a| &a.info.window_id == id) =>
            {
                Err(reject(
                    ErrorCode::WrongState,
                    format!("window {id} holds no pin; the tracker did not offer one at claim"),
                ))
            }
            None => Err(self.stale(id)),
        }
    }

    /// Records the sidecar's report. Idempotent for the same window.
    pub(crate) fn complete(
        &mut self,
        id: &WindowId,
        report: BackupReport,
        now: impl Into<Now>,
    ) -> Result<CompleteResponse, Rejection> {
        let clock: Now = now.into();
        let now = clock.wall;
        let outcome = if report.error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Completed
        };
        let reason = report.error.clone();
        if let Some(done) = self.find_outcome(id) {
            return match done.outcome {
                Outcome::Completed | Outcome::Failed => Ok(CompleteResponse {
                    window_id: id.clone(),
                    outcome: done.outcome,
                }),
                _ => Err(self.stale(id)),
            };
        }
        if let Some(released) = self.released.take_if(|r| &r.window_id == id) {
            self.end_pin(true, "the sidecar completed the window", clock);
            self.record(
                WindowOutcome {
                    window_id: id.clone(),
                    outcome,
                    opened_at: released.opened_at,
                    ended_at: now,
                    quiesced_secs: released.quiesced_secs,
                    reason,
                    report: Some(report),
                },
                secs_between(released.opened_mono, clock.mono),
            );
            return Ok(CompleteResponse {
                window_id: id.clone(),
                outcome,
            });
        }
        if let Some(active) = self.active.as_mut().filter(|a| &a.info.window_id == id) {
            // Completing while the tracker is still resuming after a
            // release: the outcome is recorded once resume finishes.
            if active.released && active.ending.is_none() {
                active.ending = Some(Ending {
                    outcome,
                    reason,
                    report: Some(report),
                });
                self.version += 1;
                self.end_pin(true, "the sidecar completed the window", clock);
                return Ok(CompleteResponse {
                    window_id: id.clone(),
                    outcome,
                });
            }
            if let Some(ending) = &active.ending {
                if ending.report.is_some() {
                    return Ok(CompleteResponse {
                        window_id: id.clone(),
                        outcome: ending.outcome,
                    });
                }
            }
        }
        let active = self.live_window(id)?;
        if active.claim.is_none() {
            return Err(reject(
                ErrorCode::WrongState,
                format!("window {id} is not claimed; only the claiming sidecar completes it"),
            ));
        }
        if outcome == Outcome::Completed {
            return Err(reject(
                ErrorCode::WrongState,
                format!(
                    "window {id} was never released: a successful backup releases its snapshot \
                     before it completes; to end the window without a backup, complete it with \
                     an error"
                ),
            ));
        }
        self.end_active(outcome, reason, Some(report));
        Ok(CompleteResponse {
            window_id: id.clone(),
            outcome,
        })
    }

    /// An operator ends the running (or released) window.
    pub(crate) fn abort(
        &mut self,
        id: Option<&WindowId>,
        reason: Option<String>,
        now: impl Into<Now>,
    ) -> Result<Ack, Rejection> {
        let clock: Now = now.into();
        let now = clock.wall;
        let reason = Some(reason.unwrap_or_else(|| "aborted by an operator".into()));
        if let Some(released) = self
            .released
            .take_if(|r| id.is_none_or(|id| id == &r.window_id))
        {
            let window_id = released.window_id.clone();
            self.end_pin(false, "the window was aborted", clock);
            self.record(
                WindowOutcome {
                    window_id: window_id.clone(),
                    outcome: Outcome::Aborted,
                    opened_at: released.opened_at,
                    ended_at: now,
                    quiesced_secs: released.quiesced_secs,
                    reason,
                    report: None,
                },
                secs_between(released.opened_mono, clock.mono),
            );
            return Ok(Ack {
                window_id,
                state: self.state,
                pinned: false,
            });
        }
        let window_id = match (&self.active, id) {
            (Some(active), None) => active.info.window_id.clone(),
            (Some(active), Some(id)) if &active.info.window_id == id => id.clone(),
            (_, Some(id)) => return Err(self.stale(id)),
            (None, None) => {
                return Err(reject(
                    ErrorCode::WrongState,
                    "no window is running; nothing to abort",
                ))
            }
        };
        let active = self.active.as_mut().expect("checked above");
        match &mut active.ending {
            // A released window whose tracker is still resuming.
            None if active.released => {
                active.ending = Some(Ending {
                    outcome: Outcome::Aborted,
                    reason,
                    report: None,
                });
                self.version += 1;
                self.end_pin(false, "the window was aborted", clock);
            }
            None => {
                self.end_active(Outcome::Aborted, reason, None);
            }
            Some(_) => {}
        }
        Ok(Ack {
            window_id,
            state: self.state,
            pinned: false,
        })
    }

    /// The runner ends the window because something on the tracker side
    /// went wrong (a hook failed or timed out, draining took too long).
    pub(crate) fn fail(&mut self, outcome: Outcome, reason: String) {
        self.end_active(outcome, Some(reason), None);
    }

    /// Applies every time-based transition due at `now`: the window's hard
    /// deadline, a lost lease, and a released window whose lease ran out.
    /// Returns the reasons, for logging.
    pub(crate) fn expire_due(&mut self, now: impl Into<Now>) -> Vec<String> {
        let clock: Now = now.into();
        let now = clock.wall;
        let mut expired = Vec::new();
        if self
            .pin
            .as_ref()
            .is_some_and(|p| p.ending.is_none() && p.kept && now >= p.info.span.end)
        {
            let reason = "deadline reached while the snapshot was pinned".to_string();
            self.end_pin(false, &reason, clock);
            expired.push(reason);
        }
        if let Some(released) = self.released.take_if(|r| r.claim.lease_expires_at <= now) {
            let reason = format!(
                "lease lost after release: sidecar {:?} sent no heartbeat or completion",
                released.claim.sidecar_id
            );
            self.end_pin(false, &reason, clock);
            self.metrics.lease_expired();
            self.record(
                WindowOutcome {
                    window_id: released.window_id,
                    outcome: Outcome::Expired,
                    opened_at: released.opened_at,
                    ended_at: now,
                    quiesced_secs: released.quiesced_secs,
                    reason: Some(reason.clone()),
                    report: None,
                },
                secs_between(released.opened_mono, clock.mono),
            );
            expired.push(reason);
        }
        let state = self.state;
        let Some(active) = self.active.as_ref() else {
            return expired;
        };
        if active.ending.is_some() || active.released {
            return expired;
        }
        let reason =
            if let Some(claim) = active.claim.as_ref().filter(|c| c.lease_expires_at <= now) {
                self.metrics.lease_expired();
                Some(format!(
                    "lease lost: sidecar {:?} sent no heartbeat in time",
                    claim.sidecar_id
                ))
            } else if now >= active.info.span.end {
                Some(match state {
                    State::Ready => "deadline reached: no sidecar claimed the window".to_string(),
                    other => format!("deadline reached while {other}"),
                })
            } else {
                None
            };
        if let Some(reason) = reason {
            self.end_active(Outcome::Expired, Some(reason.clone()), None);
            expired.push(reason);
        }
        expired
    }

    /// The longest the active window may run in elapsed time since it was
    /// opened: its configured length plus [`ELAPSED_MARGIN`]. `None` when
    /// no window is running or it is already ending or released.
    pub(crate) fn elapsed_cap(&self) -> Option<Duration> {
        let active = self
            .active
            .as_ref()
            .filter(|a| a.ending.is_none() && !a.released)?;
        let length = (active.info.span.end - active.info.span.start)
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(length + ELAPSED_MARGIN)
    }

    /// Ends the active window when `elapsed` (monotonic time since it was
    /// opened, measured by the caller) reached [`elapsed_cap`](Self::elapsed_cap):
    /// a wall clock stepped forward into the window and corrected, or
    /// stepped backward during it, cannot keep it open longer. Returns the
    /// reason, for logging.
    pub(crate) fn expire_elapsed(&mut self, elapsed: Duration) -> Option<String> {
        let cap = self.elapsed_cap()?;
        if elapsed < cap {
            return None;
        }
        let reason = format!(
            "window length exceeded: open for {:.0} s of elapsed time (length plus {} s margin); the wall clock was stepped",
            elapsed.as_secs_f64(),
            ELAPSED_MARGIN.as_secs()
        );
        self.end_active(Outcome::Expired, Some(reason.clone()), None);
        Some(reason)
    }

    /// The next instant at which [`expire_due`](Self::expire_due) may act.
    pub(crate) fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let released = self.released.as_ref().map(|r| r.claim.lease_expires_at);
        let pin = self
            .pin
            .as_ref()
            .filter(|p| p.ending.is_none() && p.kept)
            .map(|p| p.info.span.end);
        let active = self
            .active
            .as_ref()
            .filter(|a| a.ending.is_none() && !a.released)
            .map(|a| match &a.claim {
                Some(c) => c.lease_expires_at.min(a.info.span.end),
                None => a.info.span.end,
            });
        [released, active, pin].into_iter().flatten().min()
    }

    /// resuming → idle, once the tracker serves again. Records the outcome,
    /// or parks a released window until its completion. Returns the
    /// recorded outcome, if any.
    pub(crate) fn resumed(&mut self, now: impl Into<Now>) -> Option<WindowOutcome> {
        let clock: Now = now.into();
        let now = clock.wall;
        let active = self.active.take()?;
        let quiesced_secs = secs_between(active.opened_mono, clock.mono);
        self.set_state(State::Idle);
        match (active.ending, active.claim) {
            (Some(ending), _) => {
                let outcome = WindowOutcome {
                    window_id: active.info.window_id,
                    outcome: ending.outcome,
                    opened_at: active.opened_at,
                    ended_at: now,
                    quiesced_secs,
                    reason: ending.reason,
                    report: ending.report,
                };
                self.record(outcome.clone(), quiesced_secs);
                Some(outcome)
            }
            (None, Some(claim)) if active.released => {
                self.released = Some(Released {
                    window_id: active.info.window_id,
                    opened_at: active.opened_at,
                    opened_mono: active.opened_mono,
                    quiesced_secs,
                    claim,
                });
                None
            }
            (None, _) => {
                // Unreachable by construction; record rather than lose it.
                let outcome = WindowOutcome {
                    window_id: active.info.window_id,
                    outcome: Outcome::Aborted,
                    opened_at: active.opened_at,
                    ended_at: now,
                    quiesced_secs,
                    reason: Some("window ended without a decision".into()),
                    report: None,
                };
                self.record(outcome.clone(), quiesced_secs);
                Some(outcome)
            }
        }
    }
}

// ---- pins ------------------------------------------------------------------

impl Machine {
    /// After a successful quiesce: the tracker holds a pin for the active
    /// window.
    pub(crate) fn pinned(&mut self, mode: PinMode, now: impl Into<Now>) {
        let clock: Now = now.into();
        let now = clock.wall;
        if let Some(active) = &self.active {
            self.pin = Some(Pin {
                info: active.info.clone(),
                mode,
                since: now,
                since_mono: clock.mono,
                kept: false,
                ending: None,
            });
            self.version += 1;
        }
    }

    fn pin_offer(&self, id: &WindowId) -> Option<PinOffer> {
        self.pin
            .as_ref()
            .filter(|p| &p.info.window_id == id && p.ending.is_none())
            .map(|p| PinOffer {
                mode: p.mode,
                ends_by: p.info.span.end,
            })
    }

    fn pin_held(&self, id: &WindowId) -> bool {
        self.pin
            .as_ref()
            .is_some_and(|p| &p.info.window_id == id && p.kept && p.ending.is_none())
    }

    /// Decides that the current pin ends (no-op without one, or when
    /// already decided); returns how long it was held.
    fn end_pin(&mut self, by_sidecar: bool, reason: &str, clock: Now) -> f64 {
        let Some(pin) = self.pin.as_mut() else {
            return 0.0;
        };
        if let Some(end) = &pin.ending {
            return end.held_secs;
        }
        let held_secs = secs_between(pin.since_mono, clock.mono);
        pin.ending = Some(PinEnd {
            by_sidecar,
            reason: reason.to_owned(),
            held_secs,
        });
        self.version += 1;
        held_secs
    }

    /// At resume: the mode of a pin the sidecar keeps while reading, or
    /// `None`, in which case any pin ends now (before the tracker resumes).
    pub(crate) fn pin_at_resume(&mut self, now: impl Into<Now>) -> Option<PinMode> {
        let clock: Now = now.into();
        let pin = self.pin.as_ref()?;
        if pin.kept && pin.ending.is_none() {
            return Some(pin.mode);
        }
        self.end_pin(
            false,
            "the tracker resumed without a release that kept the pin",
            clock,
        );
        None
    }

    /// A pin whose end is decided and that the runner must drop.
    pub(crate) fn pin_to_drop(&self) -> Option<(WindowInfo, PinMode, String)> {
        let pin = self.pin.as_ref()?;
        let end = pin.ending.as_ref()?;
        Some((pin.info.clone(), pin.mode, end.reason.clone()))
    }

    /// The runner dropped the pin.
    pub(crate) fn pin_dropped(&mut self) -> Option<f64> {
        let pin = self.pin.take()?;
        let end = pin.ending?;
        let held = end.held_secs;
        self.last_pin_end = Some((pin.info.window_id, end));
        self.version += 1;
        Some(held)
    }

    /// Ends any pin at once (coordinator shutdown).
    pub(crate) fn end_pin_now(&mut self, reason: &str, now: impl Into<Now>) {
        let clock: Now = now.into();
        self.end_pin(false, reason, clock);
    }
}

fn lease(
    id: &WindowId,
    ttl: Duration,
    lease_expires_at: DateTime<Utc>,
    window_end: DateTime<Utc>,
) -> LeaseResponse {
    LeaseResponse {
        window_id: id.clone(),
        lease_ttl_secs: ttl.as_secs_f64(),
        lease_expires_at,
        window_end,
        pin: None,
        lease_id: None,
    }
}

#[cfg(test)]
mod tests;
