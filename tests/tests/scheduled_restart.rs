//! A tracker restarted inside its scheduled window after the window
//! completed does not run the window again.
//!
//! The host fallback restarts the tracker, and so do crashes and operators;
//! a fresh coordinator inside today's window would otherwise quiesce the
//! tracker again and the sidecar would take a second backup. The real
//! tracker and the real sidecar (`run`, left running across the restart,
//! ready to claim) prove it: one window, one backup, and the next window is
//! tomorrow's.

use std::time::Duration;

use chrono::{Timelike, Utc};
use maintenance_e2e::*;

#[test]
fn restart_inside_a_completed_scheduled_window_does_not_reopen_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrackerConfig::sqlite(dir.path(), "reject").fixed_ports();
    // A window that began at the start of this minute and lasts four more.
    let now = Utc::now();
    let start = now - chrono::Duration::seconds(i64::from(now.second()));
    let window = format!(
        "{}-{}",
        start.format("%H:%M"),
        (start + chrono::Duration::minutes(5)).format("%H:%M")
    );
    let env = [
        ("MAINTENANCE_ENABLED", "true"),
        ("MAINTENANCE_WINDOW", window.as_str()),
        ("MAINTENANCE_TIMEZONE", "UTC"),
    ];
    // The window is due at once: the coordinator opens it at start-up.
    let tracker = Tracker::start_with_env(dir.path(), &cfg, &env);

    let backups = dir.path().join("backups");
    let _sidecar = spawn_sidecar(dir.path(), "run", &sidecar_env(&tracker, &backups));
    let opened = tracker.wait_state(State::Ready, Duration::from_secs(15));
    let id = opened.window_id.expect("scheduled window id").to_string();
    let outcome = tracker.wait_outcome(&id, Duration::from_secs(30));
    assert_eq!(outcome.outcome, Outcome::Completed, "{outcome:?}");
    assert_eq!(published(&backups).len(), 1);
    let record_path = cfg.ready_file.with_file_name("last-window.json");
    assert!(
        poll(Duration::from_secs(5), || record_path.exists()),
        "no last-window.json next to the ready file"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["window_id"], id.as_str());
    assert_eq!(record["outcome"], "completed");

    // Restart inside the window (the sidecar keeps running).
    drop(tracker);
    let tracker = Tracker::start_with_env(dir.path(), &cfg, &env);
    let reopened = poll(Duration::from_secs(4), || {
        let st = tracker.status();
        st.state != State::Idle || !st.last_outcomes.is_empty()
    });
    let st = tracker.status();
    assert!(
        !reopened,
        "the completed window ran again after the restart: {st:?}\ntracker log:\n{}",
        tracker.proc.log_text()
    );
    let next = st.next_window.expect("next scheduled window");
    assert!(
        next.start > Utc::now() + chrono::Duration::hours(23),
        "next window should be tomorrow's: {next:?}"
    );
    assert_eq!(published(&backups).len(), 1, "a second backup was taken");
    assert!(
        tracker
            .proc
            .log_text()
            .contains("already completed; it does not run again"),
        "{}",
        tracker.proc.log_text()
    );
    // The tracker serves normally inside the window's span.
    complete_n(&tracker, &info_hash(3, 1), 1, 4);
}
