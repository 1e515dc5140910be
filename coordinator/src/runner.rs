//! The runner: one task that drives windows through their phases and owns
//! every effect (gate, hooks, readiness file), reading top to bottom like
//! the protocol.
//!
//! HTTP handlers change the [`Machine`](crate::machine::Machine) directly
//! (claim, release, complete, abort) and wake this task; the runner notices
//! at its next step and performs the resume. Time-based transitions (drain
//! and quiesce timeouts, the window deadline, lost leases) are applied here.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use maintenance_proto::{Outcome, PinMode, State, WindowId, WindowSpan};
use tracing::{error, info, warn};

use crate::hooks::WindowInfo;
use crate::last_window::{LastWindow, LastWindowFile};
use crate::machine::{Next, Now};
use crate::shared::{Shared, WindowCounts};
use maintenance_schedule::Schedule;

/// Longest the runner sleeps before looking at the wall clock again, so a
/// clock step (NTP, suspend) never delays a window by more than this.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// How a bounded phase ended.
enum Phase<T> {
    Done(T),
    TimedOut,
    Interrupted,
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let last_window = shared
        .readiness
        .as_ref()
        .map(|f| LastWindowFile::next_to(f.path()));
    // A scheduled window that completed before a restart does not run again.
    let mut last_scheduled_start = last_window.as_ref().and_then(|f| f.completed_start());
    if let (Some(start), Some(file)) = (last_scheduled_start, &last_window) {
        info!(
            %start, path = %file.path().display(),
            "the scheduled window starting then already completed; it does not run again"
        );
    }
    // The scheduled window whose outcome is still to be recorded.
    let mut awaiting: Option<(WindowId, WindowSpan)> = None;
    loop {
        drop_pin_if_ended(&shared, true).await;
        if let Some(info) = shared.read(|m| m.active_window().cloned()) {
            run_window(&shared, info).await;
            continue;
        }
        if *shutdown.borrow() {
            shared.update(|m| m.end_pin_now("the coordinator is shutting down", Now::read()));
            drop_pin_if_ended(&shared, true).await;
            return;
        }
        record_completed(&shared, last_window.as_ref(), &mut awaiting).await;
        let clock = Now::read();
        let now = clock.wall;
        for reason in shared.update(|m| m.expire_due(clock)) {
            warn!(%reason, "released window expired");
        }
        let scheduled = if shared.config.enabled {
            due_or_next(&shared.config.schedule, now, last_scheduled_start)
        } else {
            None
        };
        shared.set_next_scheduled(scheduled);
        if let Some(span) = scheduled.filter(|s| s.start <= now) {
            last_scheduled_start = Some(span.start);
            shared.set_next_scheduled(shared.config.schedule.next_after(span.start));
            match shared.update(|m| m.open(span, clock)) {
                Ok(info) => {
                    info!(window_id = %info.window_id, "scheduled window is due");
                    awaiting = Some((info.window_id, span));
                }
                Err(rejection) => warn!(
                    start = %span.start, reason = %rejection.message,
                    "skipping scheduled window"
                ),
            }
            continue;
        }
        let wake_at = [
            scheduled.map(|s| s.start),
            shared.read(|m| m.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min();
        tokio::select! {
            _ = tokio::time::sleep(wall_wait(wake_at)) => {}
            _ = shared.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Once the awaited scheduled window has an outcome, forgets it, and if it
/// completed, records its span on disk so a restart inside the span does
/// not run it again.
async fn record_completed(
    shared: &Arc<Shared>,
    file: Option<&LastWindowFile>,
    awaiting: &mut Option<(WindowId, WindowSpan)>,
) {
    let Some((id, span)) = awaiting.clone() else {
        return;
    };
    let Some((outcome, ended_at)) = shared.read(|m| {
        m.outcomes()
            .find(|o| o.window_id == id)
            .map(|o| (o.outcome, o.ended_at))
    }) else {
        return;
    };
    *awaiting = None;
    let Some(file) = file.filter(|_| outcome == Outcome::Completed).cloned() else {
        return;
    };
    let record = LastWindow {
        span,
        window_id: id,
        outcome,
        ended_at,
    };
    let path = file.path().display().to_string();
    match tokio::task::spawn_blocking(move || file.write(&record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(
            %path, error = %e,
            "cannot record the completed window; a restart inside it would run it again: check the folder is writable"
        ),
        Err(e) => error!(error = %e, "last-window writer panicked"),
    }
}

/// The scheduled window to open now or next, skipping the one already run.
fn due_or_next(
    schedule: &Schedule,
    now: DateTime<Utc>,
    last_start: Option<DateTime<Utc>>,
) -> Option<WindowSpan> {
    let span = schedule.current_or_next(now)?;
    if Some(span.start) == last_start {
        schedule.next_after(span.start)
    } else {
        Some(span)
    }
}

async fn run_window(shared: &Arc<Shared>, info: WindowInfo) {
    let config = &shared.config;
    let gate = &shared.gate;
    let window_id = info.window_id.clone();
    let refused_before = gate.refused_total();
    let deferred_before = gate.deferred_total();
    info!(
        %window_id, start = %info.span.start, end = %info.span.end, policy = %info.policy,
        "maintenance window opened: draining"
    );

    let opened = Instant::now();
    let mut phase_started = opened;
    let mut phase_done = |phase: State| {
        shared
            .metrics
            .phase_finished(phase, phase_started.elapsed().as_secs_f64());
        phase_started = Instant::now();
    };

    // draining: the gate closes; requests already admitted finish.
    gate.close(info.policy, info.span.end.timestamp_millis());
    match phase(shared, opened, gate.drained(), config.drain_timeout).await {
        Phase::Done(()) => {}
        Phase::TimedOut => {
            let (announces, writes) = gate.in_flight();
            shared.update(|m| {
                m.fail(
                    Outcome::Expired,
                    format!(
                        "drain timeout: {announces} announces and {writes} writes still in flight after {:?}; raise maintenance.drain_timeout",
                        config.drain_timeout
                    ),
                )
            });
        }
        Phase::Interrupted => {}
    }
    phase_done(State::Draining);

    // quiescing: the tracker flushes and checkpoints.
    if shared.update(|m| m.advance(State::Quiescing)) == Next::Continue {
        info!(%window_id, "drained: quiescing");
        match phase(shared, opened, shared.hooks.quiesce(&info), config.quiesce_timeout).await {
            Phase::Done(Ok(())) => {
                if let Some(mode) = shared.hooks.pin_mode() {
                    shared.update(|m| m.pinned(mode, Now::read()));
                    info!(%window_id, ?mode, "the database's main file is pinned");
                }
            }
            Phase::Done(Err(e)) => {
                shared.update(|m| m.fail(Outcome::Failed, format!("quiesce hook failed: {e}")))
            }
            Phase::TimedOut => shared.update(|m| {
                m.fail(
                    Outcome::Failed,
                    format!(
                        "quiesce hook did not finish within {:?}; raise maintenance.quiesce_timeout or check the database",
                        config.quiesce_timeout
                    ),
                )
            }),
            Phase::Interrupted => {}
        }
        phase_done(State::Quiescing);
    }

    // ready and claimed: publish readiness, then wait for the sidecar (or the
    // deadline, a lost lease, an abort).
    if shared.update(|m| m.advance(State::Ready)) == Next::Continue {
        publish_readiness(shared).await;
        info!(%window_id, deadline = %info.span.end, "quiesced: ready for backup");
        phase(shared, opened, std::future::pending::<()>(), Duration::MAX).await;
        phase_done(State::Ready);
    }

    // resuming: the tracker serves again, announces first. A pin the
    // sidecar keeps while reading stays; any other pin is dropped first.
    publish_readiness(shared).await;
    gate.open_announces();
    let kept_pin = shared.update(|m| m.pin_at_resume(Now::read()));
    drop_pin_if_ended(shared, false).await;
    match tokio::time::timeout(config.resume_timeout, shared.hooks.resume(&info)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            error!(%window_id, error = %e, "resume hook failed; the tracker must reopen its database itself")
        }
        Err(_) => {
            error!(%window_id, timeout = ?config.resume_timeout, "resume hook timed out; writes are reopened anyway")
        }
    }
    if kept_pin == Some(PinMode::WritesWait) {
        info!(%window_id, "writes stay deferred until the unpin (the pin blocks writers)");
    } else {
        gate.open_writes();
    }
    phase_done(State::Resuming);
    shared.note_window_counts(WindowCounts {
        window_id: window_id.clone(),
        refused: gate.refused_total() - refused_before,
        deferred: gate.deferred_total() - deferred_before,
    });
    // Recording the outcome logs the window's one "window ended" line
    // (`Shared::update`); a released window logs it on completion.
    let outcome = shared.update(|m| m.resumed(Now::read()));
    publish_readiness(shared).await;
    if outcome.is_none() {
        info!(
            %window_id,
            "tracker resumed after release; waiting for the sidecar's completion"
        );
    }
}

/// Drops a pin whose end the machine decided (sidecar done, lease lost,
/// deadline, abort, shutdown): the hook releases it, writes reopen when
/// `reopen_writes` (a pin that blocks writers kept them deferred after the
/// resume; during a window's own resume the runner reopens them), and the
/// machine forgets it.
async fn drop_pin_if_ended(shared: &Arc<Shared>, reopen_writes: bool) {
    let Some((info, mode, reason)) = shared.read(|m| m.pin_to_drop()) else {
        return;
    };
    let config = &shared.config;
    match tokio::time::timeout(config.resume_timeout, shared.hooks.unpin(&info)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(window_id = %info.window_id, error = %e, "unpin hook failed"),
        Err(_) => {
            error!(window_id = %info.window_id, timeout = ?config.resume_timeout, "unpin hook timed out")
        }
    }
    if reopen_writes && mode == PinMode::WritesWait {
        shared.gate.open_writes();
    }
    let held_secs = shared.update(|m| m.pin_dropped()).unwrap_or_default();
    shared.metrics.pin_held_for(held_secs);
    info!(window_id = %info.window_id, held_secs, %reason, "snapshot unpinned");
}

/// Rewrites the readiness file on the blocking pool: its fsyncs can take a
/// second under write load, and must never stall the tracker's runtime
/// threads (they serve announces and the claim that follows).
async fn publish_readiness(shared: &Arc<Shared>) {
    let shared = shared.clone();
    let written = tokio::task::spawn_blocking(move || shared.publish_readiness(Utc::now())).await;
    if let Err(e) = written {
        error!(error = %e, "readiness file writer panicked");
    }
}

/// Runs `work` until it finishes, `limit` passes, or the window must end
/// (a request ended it, or its deadline or lease ran out).
///
/// `opened` is when the window opened on the monotonic clock: the window
/// also ends once its length plus a margin has elapsed, whatever the wall
/// clock says.
async fn phase<T>(
    shared: &Shared,
    opened: Instant,
    work: impl Future<Output = T>,
    limit: Duration,
) -> Phase<T> {
    let limit = tokio::time::sleep(limit.min(Duration::from_secs(86_400 * 365)));
    tokio::select! {
        result = work => Phase::Done(result),
        _ = limit => Phase::TimedOut,
        _ = must_end(shared, opened) => Phase::Interrupted,
    }
}

/// Completes once the active window is ending, applying deadlines (wall
/// clock and elapsed time) on the way.
async fn must_end(shared: &Shared, opened: Instant) {
    loop {
        let clock = Now::read();
        let elapsed = opened.elapsed();
        let (next, deadline, cap) = shared.update(|m| {
            for reason in m.expire_due(clock) {
                warn!(%reason, "window expired");
            }
            if let Some(reason) = m.expire_elapsed(elapsed) {
                warn!(%reason, "window expired");
            }
            (m.next(), m.next_deadline(), m.elapsed_cap())
        });
        if next == Next::Resume {
            return;
        }
        // One timer: the nearer of the wall-clock deadline and the
        // monotonic cap (each bounded by MAX_SLEEP).
        let until_cap = cap.map_or(MAX_SLEEP, |c| c.saturating_sub(elapsed));
        tokio::select! {
            _ = tokio::time::sleep(wall_wait(deadline).min(until_cap)) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// How long to sleep until the wall-clock instant `at`, at most
/// [`MAX_SLEEP`] (so a stepped clock is re-read in time).
fn wall_wait(at: Option<DateTime<Utc>>) -> Duration {
    let wait = match at {
        Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
        None => MAX_SLEEP,
    };
    wait.min(MAX_SLEEP)
}
