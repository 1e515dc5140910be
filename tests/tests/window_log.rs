//! The tracker logs exactly one "window ended" line per window, on every
//! path: completion after the tracker resumed (the normal path with an
//! early release), a released window whose lease runs out, and completion
//! while the tracker is still quiesced.

use std::time::Duration;

use maintenance_e2e::*;
use serde_json::json;

/// The log lines that end window `id`.
fn ended_lines(t: &Tracker, id: &str) -> Vec<String> {
    t.proc
        .log_text()
        .lines()
        .filter(|l| l.contains("window ended") && l.contains(id))
        .map(str::to_owned)
        .collect()
}

/// Opens a window and claims it once the tracker is quiesced.
fn open_and_claim(t: &Tracker) -> String {
    let api = t.api();
    let id = api.open_window(60);
    t.wait_state(State::Ready, Duration::from_secs(20));
    let (code, body) = api.post("claim", json!({"window_id": id, "sidecar_id": "s1"}));
    assert_eq!(code, 200, "{body}");
    id
}

/// Waits for the window's outcome, then checks it was logged exactly once.
fn assert_one_ended_line(t: &Tracker, id: &str, outcome: &str) {
    t.wait_outcome(id, Duration::from_secs(20));
    wait_until(Duration::from_secs(5), "window ended line", || {
        !ended_lines(t, id).is_empty()
    });
    // Give a duplicate the chance to appear before counting.
    std::thread::sleep(Duration::from_millis(500));
    let lines = ended_lines(t, id);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("outcome={outcome}")),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("refused="), "{}", lines[0]);
}

#[test]
fn one_window_ended_line_per_window_on_every_path() {
    let dir = tempdir();
    let t = Tracker::start(dir.path(), &TrackerConfig::sqlite(dir.path(), "reject"));
    let api = t.api();
    let report = json!({"artifacts": [], "durations_secs": {}});

    // Released, the tracker resumes, then the sidecar completes.
    let id = open_and_claim(&t);
    assert_eq!(api.post("release", json!({"window_id": id})).0, 200);
    wait_until(Duration::from_secs(20), "released window parked", || {
        let st = t.status();
        st.state == State::Idle && st.released_window.is_some()
    });
    assert!(ended_lines(&t, &id).is_empty(), "ended before completion");
    let (code, body) = api.post("complete", json!({"window_id": id, "report": report}));
    assert_eq!(code, 200, "{body}");
    assert_one_ended_line(&t, &id, "completed");

    // Released, then the sidecar goes silent: the lease (2 s) runs out.
    let id = open_and_claim(&t);
    assert_eq!(api.post("release", json!({"window_id": id})).0, 200);
    assert_one_ended_line(&t, &id, "expired");

    // Ended by the sidecar while still quiesced (no release): only a
    // failure may be reported before the release.
    let id = open_and_claim(&t);
    let failed = json!({"artifacts": [], "durations_secs": {}, "error": "dump failed"});
    let (code, body) = api.post("complete", json!({"window_id": id, "report": failed}));
    assert_eq!(code, 200, "{body}");
    assert_one_ended_line(&t, &id, "failed");
}
