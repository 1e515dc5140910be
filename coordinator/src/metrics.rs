//! Prometheus metrics of the coordinator, served at
//! `GET /maintenance/v1/metrics` in the OpenMetrics text format.
//!
//! Counters are bumped where things happen (the gate for refusals, the
//! machine for outcomes, the runner for phase durations); the state gauge is
//! refreshed at scrape time. Names follow Prometheus conventions: `_total`
//! for counters, `_seconds` for durations.

use std::sync::Arc;

use maintenance_proto::{Outcome, State};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 10 ms .. ~5.8 h
    Histogram::new(exponential_buckets(0.01, 2.5, 16))
}

/// Handles to every metric; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    state: Family<StateLabel, Gauge>,
    windows: Family<OutcomeLabel, Counter>,
    window_duration: Histogram,
    quiesced: Histogram,
    phases: HistogramFamily<PhaseLabel>,
    lease_expiries: Counter,
    pin_held: Gauge,
    pinned: Histogram,
    wal_bytes: Gauge,
}

impl Metrics {
    /// Registers everything; `refused` and `deferred` are the gate's counters.
    pub(crate) fn new(refused: Counter, deferred: Counter) -> Self {
        let mut registry = Registry::default();
        let state = Family::<StateLabel, Gauge>::default();
        let windows = Family::<OutcomeLabel, Counter>::default();
        let window_duration = duration_histogram();
        let quiesced = duration_histogram();
        let phases: HistogramFamily<PhaseLabel> =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let lease_expiries = Counter::default();
        let pin_held = Gauge::default();
        let pinned = duration_histogram();
        let wal_bytes = Gauge::default();
        registry.register(
            "maintenance_pin_held",
            "1 while the tracker holds a snapshot pin (the database's main file is frozen)",
            pin_held.clone(),
        );
        registry.register(
            "maintenance_pinned_seconds",
            "How long each snapshot pin was held",
            pinned.clone(),
        );
        registry.register(
            "maintenance_wal_bytes",
            "Size of the database's write-ahead log as the tracker reports it; grows while pinned",
            wal_bytes.clone(),
        );
        registry.register(
            "maintenance_state",
            "Current coordinator state (1 for the current one)",
            state.clone(),
        );
        registry.register(
            "maintenance_windows",
            "Windows ended, by outcome",
            windows.clone(),
        );
        registry.register(
            "maintenance_window_duration_seconds",
            "From a window's opening to its recorded outcome",
            window_duration.clone(),
        );
        registry.register(
            "maintenance_quiesced_seconds",
            "How long each window kept the tracker from serving normally (gate closed or writes paused)",
            quiesced.clone(),
        );
        registry.register(
            "maintenance_phase_duration_seconds",
            "Time spent in each phase of a window",
            phases.clone(),
        );
        registry.register(
            "maintenance_lease_expiries",
            "Windows ended because the sidecar's lease ran out",
            lease_expiries.clone(),
        );
        registry.register(
            "maintenance_announces_refused",
            "Announces refused during windows (policy reject)",
            refused,
        );
        registry.register(
            "maintenance_writes_deferred",
            "Database writes deferred during windows",
            deferred,
        );
        for s in State::ALL {
            let _ = state.get_or_create(&StateLabel { state: s.as_str() });
        }
        for o in [
            Outcome::Completed,
            Outcome::Failed,
            Outcome::Expired,
            Outcome::Aborted,
        ] {
            let _ = windows.get_or_create(&OutcomeLabel {
                outcome: o.as_str(),
            });
        }
        Metrics {
            registry: Arc::new(registry),
            state,
            windows,
            window_duration,
            quiesced,
            phases,
            lease_expiries,
            pin_held,
            pinned,
            wal_bytes,
        }
    }

    pub(crate) fn pin_held_for(&self, secs: f64) {
        self.pinned.observe(secs.max(0.0));
    }

    pub(crate) fn window_ended(&self, outcome: Outcome, duration_secs: f64, quiesced_secs: f64) {
        self.windows
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
        self.window_duration.observe(duration_secs.max(0.0));
        self.quiesced.observe(quiesced_secs.max(0.0));
    }

    pub(crate) fn lease_expired(&self) {
        self.lease_expiries.inc();
    }

    pub(crate) fn phase_finished(&self, phase: State, secs: f64) {
        self.phases
            .get_or_create(&PhaseLabel {
                phase: phase.as_str(),
            })
            .observe(secs.max(0.0));
    }

    /// Renders the exposition, with the state gauge set to `current`, the
    /// pin gauge to `pin_held` and the WAL gauge to `wal_bytes` (when the
    /// tracker reports it).
    pub(crate) fn render(&self, current: State, pin_held: bool, wal_bytes: Option<u64>) -> String {
        self.pin_held.set(i64::from(pin_held));
        if let Some(bytes) = wal_bytes {
            self.wal_bytes.set(bytes.min(i64::MAX as u64) as i64);
        }
        for s in State::ALL {
            self.state
                .get_or_create(&StateLabel { state: s.as_str() })
                .set(i64::from(s == current));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Counter::default(), Counter::default())
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
