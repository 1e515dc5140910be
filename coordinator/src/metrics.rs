//! Prometheus text exposition of the coordinator's state, served at
//! `GET /maintenance/v1/metrics`.

use std::fmt::Write;

use maintenance_proto::State;

use crate::shared::Shared;

const STATES: [State; 6] = [
    State::Idle,
    State::Draining,
    State::Quiescing,
    State::Ready,
    State::Claimed,
    State::Resuming,
];

/// Renders every metric as Prometheus text format 0.0.4.
pub(crate) fn render(shared: &Shared) -> String {
    let (state, totals, last) = shared.read(|m| {
        (
            m.state(),
            m.outcome_totals(),
            m.outcomes().next().map(|o| o.quiesced_secs),
        )
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP maintenance_state Current coordinator state (1 for the current one)."
    );
    let _ = writeln!(out, "# TYPE maintenance_state gauge");
    for s in STATES {
        let _ = writeln!(
            out,
            "maintenance_state{{state=\"{s}\"}} {}",
            u8::from(s == state)
        );
    }
    let _ = writeln!(
        out,
        "# HELP maintenance_windows_total Windows ended, by outcome."
    );
    let _ = writeln!(out, "# TYPE maintenance_windows_total counter");
    for (outcome, n) in totals {
        let _ = writeln!(
            out,
            "maintenance_windows_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP maintenance_announces_refused_total Announces refused during windows."
    );
    let _ = writeln!(out, "# TYPE maintenance_announces_refused_total counter");
    let _ = writeln!(
        out,
        "maintenance_announces_refused_total {}",
        shared.gate.refused_total()
    );
    let _ = writeln!(
        out,
        "# HELP maintenance_writes_deferred_total Database writes deferred during windows."
    );
    let _ = writeln!(out, "# TYPE maintenance_writes_deferred_total counter");
    let _ = writeln!(
        out,
        "maintenance_writes_deferred_total {}",
        shared.gate.deferred_total()
    );
    if let Some(secs) = last {
        let _ = writeln!(out, "# HELP maintenance_last_window_quiesced_seconds How long the last window kept the tracker from serving normally.");
        let _ = writeln!(out, "# TYPE maintenance_last_window_quiesced_seconds gauge");
        let _ = writeln!(out, "maintenance_last_window_quiesced_seconds {secs}");
    }
    out
}
