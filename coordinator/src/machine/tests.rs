//! Every transition of the machine, its refusals, and its time-based ends.

use super::*;
use chrono::TimeZone;

const TTL: Duration = Duration::from_secs(30);

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn span() -> WindowSpan {
    WindowSpan {
        start: at(0),
        end: at(300),
    }
}

fn machine() -> Machine {
    Machine::new(
        "instance-one".into(),
        AnnouncePolicy::Reject,
        Metrics::default(),
    )
}

/// A machine whose window is ready, and that window's id.
fn ready() -> (Machine, WindowId) {
    let mut m = machine();
    let info = m.open(span(), at(0)).unwrap();
    assert_eq!(m.advance(State::Quiescing), Next::Continue);
    assert_eq!(m.advance(State::Ready), Next::Continue);
    (m, info.window_id)
}

fn claimed() -> (Machine, WindowId) {
    let (mut m, id) = ready();
    m.claim(&id, "sidecar-a", None, at(1), TTL).unwrap();
    (m, id)
}

fn ok_report() -> BackupReport {
    BackupReport {
        backup: Some("b".into()),
        ..BackupReport::default()
    }
}

#[test]
fn happy_path_records_completed() {
    let (mut m, id) = claimed();
    assert_eq!(m.state(), State::Claimed);
    assert_eq!(m.lease_expires_at(), Some(at(31)));
    // A success before the release is refused and changes nothing.
    let err = m.complete(&id, ok_report(), at(9)).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongState);
    assert!(err.message.contains("never released"), "{}", err.message);
    assert_eq!(m.state(), State::Claimed);
    m.release(&id, false, at(9)).unwrap();
    let done = m.complete(&id, ok_report(), at(10)).unwrap();
    assert_eq!(done.outcome, Outcome::Completed);
    assert_eq!(m.state(), State::Resuming);
    assert_eq!(m.next(), Next::Resume);
    let recorded = m.resumed(at(11)).unwrap();
    assert_eq!(recorded.outcome, Outcome::Completed);
    assert_eq!(recorded.quiesced_secs, 11.0);
    assert_eq!(recorded.report.unwrap().backup.as_deref(), Some("b"));
    assert_eq!(m.state(), State::Idle);
    assert!(m.active_window().is_none());
}

#[test]
fn window_ids_are_unique_per_occurrence_and_instance() {
    let mut a = machine();
    let first = a.open(span(), at(0)).unwrap().window_id;
    a.abort(None, None, at(1)).unwrap();
    a.resumed(at(1));
    let second = a.open(span(), at(2)).unwrap().window_id;
    assert_ne!(first, second);
    let mut b = Machine::new(
        "instance-two".into(),
        AnnouncePolicy::Reject,
        Metrics::default(),
    );
    let other = b.open(span(), at(0)).unwrap().window_id;
    assert_ne!(first, other);
}

#[test]
fn version_bumps_on_every_change() {
    let mut m = machine();
    let v0 = m.version();
    let info = m.open(span(), at(0)).unwrap();
    let v1 = m.version();
    assert!(v1 > v0);
    m.advance(State::Quiescing);
    assert!(m.version() > v1);
    let v2 = m.version();
    assert!(m.claim(&info.window_id, "s", None, at(1), TTL).is_err());
    assert_eq!(m.version(), v2, "a refused call changes nothing");
}

#[test]
fn claim_before_ready_is_wrong_state() {
    let mut m = machine();
    let info = m.open(span(), at(0)).unwrap();
    let err = m.claim(&info.window_id, "s", None, at(1), TTL).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongState);
    assert!(err.message.contains("draining"), "{}", err.message);
    assert_eq!(m.state(), State::Draining);
}

#[test]
fn stale_or_foreign_window_ids_are_refused_and_change_nothing() {
    let (mut m, id) = claimed();
    let foreign = WindowId::new("20261126T030000Z-otherins-1");
    let before = m.version();
    for err in [
        m.claim(&foreign, "s", None, at(2), TTL).unwrap_err(),
        m.heartbeat(&foreign, at(2), TTL).unwrap_err(),
        m.release(&foreign, false, at(2)).unwrap_err(),
        m.complete(&foreign, ok_report(), at(2)).unwrap_err(),
        m.abort(Some(&foreign), None, at(2)).unwrap_err(),
    ] {
        assert_eq!(err.code, ErrorCode::StaleWindow);
    }
    assert_eq!(m.version(), before);
    assert_eq!(m.state(), State::Claimed);
    assert_eq!(m.lease_expires_at(), Some(at(31)));
    // After the window ended, its id is stale too.
    m.abort(None, None, at(3)).unwrap();
    m.resumed(at(3));
    let err = m.heartbeat(&id, at(4), TTL).unwrap_err();
    assert_eq!(err.code, ErrorCode::StaleWindow);
    assert!(err.message.contains("aborted"), "{}", err.message);
}

#[test]
fn second_sidecar_cannot_claim_but_the_first_may_reclaim_with_its_lease_id() {
    let (mut m, id) = ready();
    let first = m.claim(&id, "sidecar-a", None, at(1), TTL).unwrap();
    let lease_id = first.lease_id.expect("a lease id");
    let err = m.claim(&id, "sidecar-b", None, at(2), TTL).unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyClaimed);
    let err = m
        .claim(&id, "sidecar-b", Some(&lease_id), at(2), TTL)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyClaimed);
    let err = m.claim(&id, "sidecar-a", None, at(2), TTL).unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyClaimed);
    let lease = m
        .claim(&id, "sidecar-a", Some(&lease_id), at(5), TTL)
        .unwrap();
    assert_eq!(lease.lease_expires_at, at(35));
    assert_eq!(lease.lease_id.as_deref(), Some(lease_id.as_str()));
}

#[test]
fn lease_ids_are_unguessable_and_checked_until_the_window_is_over() {
    let (mut m, id) = ready();
    // Nobody claimed it: nobody may act on its lease.
    let err = m.check_lease(&id, None, "unpin").unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongState);
    let lease_id = m
        .claim(&id, "sidecar-a", None, at(1), TTL)
        .unwrap()
        .lease_id
        .unwrap();
    assert_eq!(lease_id.len(), 32);
    let (mut other, other_id) = ready();
    let other_lease = other
        .claim(&other_id, "sidecar-a", None, at(1), TTL)
        .unwrap()
        .lease_id
        .unwrap();
    assert_ne!(lease_id, other_lease, "a fresh id per claim");
    for wrong in [
        None,
        Some(""),
        Some(other_lease.as_str()),
        Some(&lease_id[..31]),
    ] {
        let err = m.check_lease(&id, wrong, "heartbeat").unwrap_err();
        assert_eq!(err.code, ErrorCode::LeaseMismatch, "{wrong:?}");
        assert!(err.message.contains("sidecar-a"), "{}", err.message);
    }
    m.check_lease(&id, Some(&lease_id), "heartbeat").unwrap();
    // Released: the lease still guards heartbeat, unpin and complete.
    m.release(&id, false, at(2)).unwrap();
    m.resumed(at(3));
    assert!(m.released_window().is_some());
    assert_eq!(
        m.check_lease(&id, None, "complete").unwrap_err().code,
        ErrorCode::LeaseMismatch
    );
    m.check_lease(&id, Some(&lease_id), "complete").unwrap();
    m.complete(&id, ok_report(), at(4)).unwrap();
    // Over: the transitions answer (idempotent completion, stale ids).
    m.check_lease(&id, None, "complete").unwrap();
}

#[test]
fn heartbeat_extends_the_lease() {
    let (mut m, id) = claimed();
    let lease = m.heartbeat(&id, at(20), TTL).unwrap();
    assert_eq!(lease.lease_expires_at, at(50));
    assert!(m.expire_due(at(40)).is_empty());
    assert_eq!(m.state(), State::Claimed);
}

#[test]
fn lost_lease_expires_the_window() {
    let (mut m, _) = claimed();
    assert_eq!(m.next_deadline(), Some(at(31)));
    let reasons = m.expire_due(at(31));
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("lease lost"));
    assert_eq!(m.state(), State::Resuming);
    let o = m.resumed(at(32)).unwrap();
    assert_eq!(o.outcome, Outcome::Expired);
}

#[test]
fn no_claim_before_deadline_expires() {
    let (mut m, _) = ready();
    assert!(m.expire_due(at(299)).is_empty());
    let reasons = m.expire_due(at(300));
    assert!(reasons[0].contains("no sidecar claimed"), "{reasons:?}");
    let o = m.resumed(at(300)).unwrap();
    assert_eq!(o.outcome, Outcome::Expired);
}

#[test]
fn deadline_while_claimed_expires_even_with_a_live_lease() {
    let (mut m, id) = claimed();
    m.heartbeat(&id, at(290), TTL).unwrap();
    assert_eq!(m.next_deadline(), Some(at(300)));
    let reasons = m.expire_due(at(300));
    assert!(
        reasons[0].contains("deadline reached while claimed"),
        "{reasons:?}"
    );
    assert_eq!(m.resumed(at(300)).unwrap().outcome, Outcome::Expired);
}

#[test]
fn deadline_while_draining_expires() {
    let mut m = machine();
    m.open(span(), at(0)).unwrap();
    let reasons = m.expire_due(at(300));
    assert!(reasons[0].contains("while draining"));
    assert_eq!(m.advance(State::Quiescing), Next::Resume);
}

#[test]
fn release_resumes_early_and_complete_records_later() {
    let (mut m, id) = claimed();
    let ack = m.release(&id, false, at(2)).unwrap();
    assert_eq!(ack.state, State::Resuming);
    assert_eq!(m.next(), Next::Resume);
    // Releasing twice is harmless.
    assert!(m.release(&id, false, at(2)).is_ok());
    assert!(
        m.resumed(at(5)).is_none(),
        "no outcome yet: waits for complete"
    );
    assert_eq!(m.state(), State::Idle);
    let released = m.released_window().unwrap();
    assert_eq!(released.window_id, id);
    // Heartbeats keep the released window alive past the deadline.
    m.heartbeat(&id, at(290), TTL).unwrap();
    assert!(m.expire_due(at(310)).is_empty());
    // No new window while the old one awaits completion.
    let busy = m.open(span(), at(311)).unwrap_err();
    assert_eq!(busy.code, ErrorCode::WindowBusy);
    let done = m.complete(&id, ok_report(), at(312)).unwrap();
    assert_eq!(done.outcome, Outcome::Completed);
    assert!(m.released_window().is_none());
    let o = m.outcomes().next().unwrap();
    assert_eq!(o.quiesced_secs, 5.0, "downtime covers the snapshot only");
}

#[test]
fn released_window_whose_lease_runs_out_expires() {
    let (mut m, id) = claimed();
    m.release(&id, false, at(2)).unwrap();
    m.resumed(at(5));
    assert_eq!(m.next_deadline(), Some(at(31)));
    let reasons = m.expire_due(at(31));
    assert!(reasons[0].contains("after release"));
    assert_eq!(m.outcomes().next().unwrap().outcome, Outcome::Expired);
    let err = m.complete(&id, ok_report(), at(32)).unwrap_err();
    assert_eq!(err.code, ErrorCode::StaleWindow);
}

#[test]
fn complete_during_resume_after_release_is_kept() {
    let (mut m, id) = claimed();
    m.release(&id, false, at(2)).unwrap();
    let done = m.complete(&id, ok_report(), at(3)).unwrap();
    assert_eq!(done.outcome, Outcome::Completed);
    let o = m.resumed(at(4)).unwrap();
    assert_eq!(o.outcome, Outcome::Completed);
    assert!(m.released_window().is_none());
}

#[test]
fn complete_is_idempotent() {
    let (mut m, id) = claimed();
    m.release(&id, false, at(2)).unwrap();
    m.complete(&id, ok_report(), at(3)).unwrap();
    // While resuming and after.
    assert_eq!(
        m.complete(&id, ok_report(), at(3)).unwrap().outcome,
        Outcome::Completed
    );
    m.resumed(at(4));
    let again = m.complete(&id, ok_report(), at(5)).unwrap();
    assert_eq!(again.outcome, Outcome::Completed);
    assert_eq!(m.outcomes().count(), 1, "recorded once");
}

#[test]
fn report_with_error_fails_the_window() {
    let (mut m, id) = claimed();
    let report = BackupReport {
        error: Some("disk full".into()),
        ..BackupReport::default()
    };
    assert_eq!(
        m.complete(&id, report, at(3)).unwrap().outcome,
        Outcome::Failed
    );
    let o = m.resumed(at(3)).unwrap();
    assert_eq!(o.outcome, Outcome::Failed);
    assert_eq!(o.reason.as_deref(), Some("disk full"));
}

#[test]
fn complete_without_claim_is_refused() {
    let (mut m, id) = ready();
    let err = m.complete(&id, ok_report(), at(3)).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongState);
}

#[test]
fn abort_ends_any_phase() {
    for phase in [
        State::Draining,
        State::Quiescing,
        State::Ready,
        State::Claimed,
    ] {
        let mut m = machine();
        let info = m.open(span(), at(0)).unwrap();
        if phase != State::Draining {
            m.advance(State::Quiescing);
        }
        if matches!(phase, State::Ready | State::Claimed) {
            m.advance(State::Ready);
        }
        if phase == State::Claimed {
            m.claim(&info.window_id, "s", None, at(1), TTL).unwrap();
        }
        assert_eq!(m.state(), phase);
        let ack = m.abort(None, Some("disk swap".into()), at(2)).unwrap();
        assert_eq!(ack.window_id, info.window_id);
        let o = m.resumed(at(2)).unwrap();
        assert_eq!(o.outcome, Outcome::Aborted);
        assert_eq!(o.reason.as_deref(), Some("disk swap"));
    }
}

#[test]
fn abort_of_a_released_window_records_it() {
    let (mut m, id) = claimed();
    m.release(&id, false, at(2)).unwrap();
    m.resumed(at(3));
    m.abort(None, None, at(4)).unwrap();
    assert_eq!(m.outcomes().next().unwrap().outcome, Outcome::Aborted);
    assert!(m.open(span(), at(5)).is_ok());
}

#[test]
fn abort_with_nothing_running_is_wrong_state() {
    let mut m = machine();
    assert_eq!(
        m.abort(None, None, at(0)).unwrap_err().code,
        ErrorCode::WrongState
    );
}

#[test]
fn hook_failure_ends_the_window_once() {
    let mut m = machine();
    m.open(span(), at(0)).unwrap();
    m.advance(State::Quiescing);
    m.fail(Outcome::Failed, "quiesce hook failed: boom".into());
    // A later deadline does not overwrite the first decision.
    assert!(m.expire_due(at(400)).is_empty());
    assert_eq!(m.advance(State::Ready), Next::Resume);
    let o = m.resumed(at(1)).unwrap();
    assert_eq!(o.outcome, Outcome::Failed);
    assert_eq!(o.reason.as_deref(), Some("quiesce hook failed: boom"));
}

#[test]
fn open_while_running_is_busy() {
    let (mut m, _) = ready();
    assert_eq!(
        m.open(span(), at(1)).unwrap_err().code,
        ErrorCode::WindowBusy
    );
}

#[test]
fn outcomes_are_bounded_newest_first() {
    let mut m = machine();
    for i in 0..30 {
        m.open(span(), at(i)).unwrap();
        m.abort(None, Some(format!("n{i}")), at(i)).unwrap();
        m.resumed(at(i));
    }
    let reasons: Vec<_> = m.outcomes().map(|o| o.reason.clone().unwrap()).collect();
    assert_eq!(reasons.len(), OUTCOMES_KEPT);
    assert_eq!(reasons[0], "n29");
    let totals = m.metrics.render(State::Idle, false, None);
    assert!(
        totals.contains("maintenance_windows_total{outcome=\"aborted\"} 30"),
        "{totals}"
    );
}

/// The wall clock said the window had just begun (stepped forward into it,
/// then corrected, or stepped back during it): elapsed time still ends it.
#[test]
fn elapsed_time_caps_a_window_whatever_the_wall_clock_says() {
    let (mut m, id) = claimed();
    let cap = Duration::from_secs(300) + ELAPSED_MARGIN;
    assert_eq!(m.elapsed_cap(), Some(cap));
    // Heartbeats keep the lease; the wall clock went back to the start.
    m.heartbeat(&id, at(2), TTL).unwrap();
    assert!(m.expire_due(at(2)).is_empty());
    assert_eq!(m.expire_elapsed(cap - Duration::from_millis(1)), None);
    assert_eq!(m.state(), State::Claimed);
    let reason = m.expire_elapsed(cap).expect("cut at the cap");
    assert!(reason.contains("elapsed"), "{reason}");
    assert_eq!(m.state(), State::Resuming);
    assert_eq!(m.next(), Next::Resume);
    assert_eq!(m.elapsed_cap(), None);
    assert_eq!(m.expire_elapsed(cap * 2), None, "ends once");
    let recorded = m.resumed(at(3)).unwrap();
    assert_eq!(recorded.outcome, Outcome::Expired);
}

#[test]
fn elapsed_cap_applies_in_every_phase_but_not_to_released_windows() {
    let mut m = machine();
    m.open(span(), at(0)).unwrap();
    assert_eq!(m.state(), State::Draining);
    assert!(m.expire_elapsed(Duration::from_secs(400)).is_some());
    m.resumed(at(1)).unwrap();

    let (mut m, id) = claimed();
    m.release(&id, false, at(2)).unwrap();
    assert_eq!(m.elapsed_cap(), None);
    assert_eq!(m.expire_elapsed(Duration::from_secs(10_000)), None);
}

// ---- pins ------------------------------------------------------------------

/// A claimed window whose tracker pinned the snapshot at quiesce.
fn pinned_claim(mode: PinMode) -> (Machine, WindowId) {
    let mut m = machine();
    let info = m.open(span(), at(0)).unwrap();
    m.advance(State::Quiescing);
    m.pinned(mode, at(1));
    m.advance(State::Ready);
    let lease = m
        .claim(&info.window_id, "sidecar-a", None, at(1), TTL)
        .unwrap();
    assert_eq!(
        lease.pin,
        Some(PinOffer {
            mode,
            ends_by: at(300)
        })
    );
    (m, info.window_id)
}

/// Releases with `keep_pin` and resumes; the pin is kept.
fn pinned_released(mode: PinMode) -> (Machine, WindowId) {
    let (mut m, id) = pinned_claim(mode);
    let ack = m.release(&id, true, at(2)).unwrap();
    assert!(ack.pinned);
    assert_eq!(m.pin_at_resume(at(2)), Some(mode));
    assert!(m.resumed(at(2)).is_none());
    assert!(m.pin_to_drop().is_none(), "kept while the sidecar reads");
    (m, id)
}

#[test]
fn no_pin_is_offered_when_the_tracker_holds_none() {
    let (mut m, id) = ready();
    assert_eq!(m.claim(&id, "s", None, at(1), TTL).unwrap().pin, None);
    let ack = m.release(&id, true, at(2)).unwrap();
    assert!(!ack.pinned);
    assert_eq!(m.pin_at_resume(at(2)), None);
    assert_eq!(m.unpin(&id, at(3)).unwrap_err().code, ErrorCode::WrongState);
}

#[test]
fn unpin_confirms_a_pin_held_throughout_and_ends_it() {
    let (mut m, id) = pinned_released(PinMode::WritesContinue);
    assert!(m.pin_status().unwrap().kept_after_release);
    m.heartbeat(&id, at(20), TTL).unwrap();
    let done = m.unpin(&id, at(41)).unwrap();
    assert_eq!(done.held_secs, 40.0);
    let (info, mode, reason) = m.pin_to_drop().unwrap();
    assert_eq!(
        (info.window_id, mode),
        (id.clone(), PinMode::WritesContinue)
    );
    assert!(reason.contains("finished reading"));
    // Repeated before and after the runner dropped it: the same answer.
    assert_eq!(m.unpin(&id, at(42)).unwrap().held_secs, 40.0);
    assert_eq!(m.pin_dropped(), Some(40.0));
    assert_eq!(m.unpin(&id, at(43)).unwrap().held_secs, 40.0);
    assert!(m.pin_status().is_none());
    m.complete(&id, ok_report(), at(44)).unwrap();
    assert_eq!(m.outcomes().next().unwrap().outcome, Outcome::Completed);
}

#[test]
fn a_release_without_keep_pin_ends_the_pin_before_resume() {
    // A version-1 sidecar: it releases after copying.
    let (mut m, id) = pinned_claim(PinMode::WritesContinue);
    assert!(!m.release(&id, false, at(9)).unwrap().pinned);
    assert_eq!(m.pin_at_resume(at(9)), None);
    assert!(m.pin_to_drop().is_some());
    assert_eq!(m.pin_dropped(), Some(8.0));
    // A release without keep_pin means the sidecar finished reading, so a
    // late unpin confirms the pin with the time it was held.
    assert_eq!(m.unpin(&id, at(10)).unwrap().held_secs, 8.0);
}

#[test]
fn the_deadline_ends_a_kept_pin_and_unpin_then_reports_it_lost() {
    let (mut m, id) = pinned_released(PinMode::WritesContinue);
    m.heartbeat(&id, at(290), TTL).unwrap();
    assert_eq!(m.next_deadline(), Some(at(300)));
    let reasons = m.expire_due(at(300));
    assert!(reasons[0].contains("deadline"), "{reasons:?}");
    let err = m.unpin(&id, at(301)).unwrap_err();
    assert_eq!(err.code, ErrorCode::PinLost);
    assert!(err.message.contains("deadline"), "{}", err.message);
    m.pin_dropped();
    assert_eq!(m.unpin(&id, at(302)).unwrap_err().code, ErrorCode::PinLost);
}

#[test]
fn a_lost_lease_after_release_ends_the_pin() {
    let (mut m, id) = pinned_released(PinMode::WritesWait);
    m.expire_due(at(31));
    assert_eq!(m.outcomes().next().unwrap().outcome, Outcome::Expired);
    let (_, mode, reason) = m.pin_to_drop().unwrap();
    assert_eq!(mode, PinMode::WritesWait);
    assert!(reason.contains("lease lost"), "{reason}");
    m.pin_dropped();
    assert_eq!(m.unpin(&id, at(32)).unwrap_err().code, ErrorCode::PinLost);
}

#[test]
fn abort_and_complete_end_the_pin() {
    let (mut m, id) = pinned_released(PinMode::WritesContinue);
    m.abort(None, None, at(5)).unwrap();
    assert!(m.pin_to_drop().unwrap().2.contains("aborted"));
    m.pin_dropped();
    assert_eq!(m.unpin(&id, at(6)).unwrap_err().code, ErrorCode::PinLost);

    let (mut m, id) = pinned_released(PinMode::WritesContinue);
    m.complete(&id, ok_report(), at(5)).unwrap();
    assert!(m.pin_to_drop().is_some());
}

#[test]
fn a_window_ending_before_release_drops_the_pin_and_no_window_opens_while_pinned() {
    let (mut m, id) = pinned_claim(PinMode::WritesWait);
    m.expire_due(at(31)); // lease lost before any release
    assert_eq!(m.pin_at_resume(at(31)), None);
    m.resumed(at(31));
    let busy = m.open(span(), at(32)).unwrap_err();
    assert_eq!(busy.code, ErrorCode::WindowBusy);
    m.pin_dropped();
    assert_eq!(m.unpin(&id, at(33)).unwrap_err().code, ErrorCode::PinLost);
    assert!(m.open(span(), at(34)).is_ok());
}

#[test]
fn shutdown_ends_a_pin() {
    let (mut m, _) = pinned_released(PinMode::WritesContinue);
    m.end_pin_now("the coordinator is shutting down", at(3));
    assert!(m.pin_to_drop().unwrap().2.contains("shutting down"));
}

/// The wall clock stepped back a day in the middle of a window (as seen
/// in a log: `quiesced_secs=-86374.988`): every reported duration still
/// comes from the monotonic clock.
#[test]
fn durations_come_from_the_monotonic_clock_when_the_wall_clock_steps() {
    let day = chrono::Duration::days(1);
    let both = |wall: DateTime<Utc>, mono: u64| Now {
        wall,
        mono: Duration::from_secs(mono),
    };
    let mut m = machine();
    let id = m.open(span(), both(at(0), 1000)).unwrap().window_id;
    m.advance(State::Quiescing);
    m.pinned(PinMode::WritesContinue, both(at(0), 1000));
    m.advance(State::Ready);
    m.claim(&id, "s", None, both(at(1), 1001), TTL).unwrap();
    // The wall clock is stepped back by a day here.
    m.release(&id, true, both(at(2) - day, 1002)).unwrap();
    assert!(
        m.resumed(both(at(3) - day, 1003)).is_none(),
        "parked until complete"
    );
    let unpinned = m.unpin(&id, both(at(10) - day, 1010)).unwrap();
    assert_eq!(unpinned.held_secs, 10.0);
    m.complete(&id, ok_report(), both(at(20) - day, 1020))
        .unwrap();
    let outcome = m.outcomes().next().unwrap().clone();
    assert_eq!(outcome.quiesced_secs, 3.0);
    assert_eq!(
        outcome.ended_at,
        at(20) - day,
        "instants stay wall-clock times"
    );
    assert_eq!(m.pin_dropped(), Some(10.0));

    // Stepped forward, a window ending by abort: still the elapsed time.
    let id = m.open(span(), both(at(30), 2000)).unwrap().window_id;
    m.abort(Some(&id), None, both(at(30) + day, 2004)).unwrap();
    let outcome = m.resumed(both(at(31) + day, 2005)).unwrap();
    assert_eq!(outcome.quiesced_secs, 5.0);
}
