//! State shared by the runner task and the HTTP handlers.
//!
//! One mutex guards the [`Machine`]; every change goes through
//! [`Shared::update`], which bumps the change counter that long-polls watch
//! and wakes the runner. Nothing async ever runs under the lock.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use maintenance_proto::{
    ReadinessDocument, State, StatusResponse, WindowId, WindowOutcome, WindowSpan, PROTOCOL_VERSION,
};
use tokio::sync::{watch, Notify};

use crate::config::MaintenanceConfig;
use crate::gate::AnnounceGate;
use crate::hooks::MaintenanceHooks;
use crate::machine::Machine;
use crate::metrics::Metrics;
use crate::readiness::ReadinessFile;

pub(crate) struct Shared {
    pub(crate) config: MaintenanceConfig,
    pub(crate) gate: AnnounceGate,
    pub(crate) hooks: Arc<dyn MaintenanceHooks>,
    pub(crate) readiness: Option<ReadinessFile>,
    pub(crate) metrics: Metrics,
    machine: Mutex<Machine>,
    next_scheduled: Mutex<Option<WindowSpan>>,
    /// Carries the machine's version; long-polls wait on it.
    pub(crate) changed: watch::Sender<u64>,
    /// Wakes the runner after any change.
    pub(crate) wake: Notify,
    /// Flipped to true once on shutdown.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Announces refused and deferred during the last resumed window, for
    /// its "window ended" line (which may come later, on completion).
    window_counts: Mutex<Option<WindowCounts>>,
}

/// What the gate counted during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowCounts {
    pub(crate) window_id: WindowId,
    pub(crate) refused: u64,
    pub(crate) deferred: u64,
}

impl Shared {
    pub(crate) fn new(
        config: MaintenanceConfig,
        hooks: Arc<dyn MaintenanceHooks>,
        instance_id: String,
    ) -> Self {
        let readiness = config.ready_file.clone().map(ReadinessFile::new);
        let gate = AnnounceGate::always_open();
        let (refused, deferred) = gate.counters();
        let metrics = Metrics::new(refused, deferred);
        let machine = Machine::new(instance_id, config.announce_policy, metrics.clone());
        let (changed, _) = watch::channel(machine.version());
        let (shutdown, _) = watch::channel(false);
        Shared {
            config,
            gate,
            hooks,
            readiness,
            metrics,
            machine: Mutex::new(machine),
            next_scheduled: Mutex::new(None),
            changed,
            wake: Notify::new(),
            shutdown,
            window_counts: Mutex::new(None),
        }
    }

    /// Runs `f` on the machine; if it changed anything, wakes long-polls and
    /// the runner. Every window that `f` ended gets its one "window ended"
    /// log line here, whichever path ended it.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Machine) -> R) -> R {
        let (result, changed_to, ended) = {
            let mut machine = self.machine.lock().unwrap_or_else(|e| e.into_inner());
            let before = machine.version();
            let ended_before = machine.windows_ended();
            let result = f(&mut machine);
            let after = machine.version();
            let new_endings = (machine.windows_ended() - ended_before) as usize;
            let ended: Vec<WindowOutcome> = machine.outcomes().take(new_endings).cloned().collect();
            (result, (after != before).then_some(after), ended)
        };
        for outcome in ended.iter().rev() {
            self.log_window_ended(outcome);
        }
        if let Some(version) = changed_to {
            self.changed.send_replace(version);
            self.wake.notify_one();
        }
        result
    }

    /// Keeps what the gate counted during `window_id`, for its "window
    /// ended" line. Called by the runner before it records the resume.
    pub(crate) fn note_window_counts(&self, counts: WindowCounts) {
        *self.window_counts.lock().unwrap_or_else(|e| e.into_inner()) = Some(counts);
    }

    fn log_window_ended(&self, o: &WindowOutcome) {
        let counts = self
            .window_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|c| c.window_id == o.window_id);
        let (refused, deferred) = counts.map_or((0, 0), |c| (c.refused, c.deferred));
        tracing::info!(
            window_id = %o.window_id, outcome = %o.outcome, quiesced_secs = o.quiesced_secs,
            refused, deferred,
            reason = o.reason.as_deref().unwrap_or(""),
            backup = o.report.as_ref().and_then(|r| r.backup.as_deref()).unwrap_or(""),
            "window ended"
        );
    }

    /// Reads the machine without changing it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Machine) -> R) -> R {
        let machine = self.machine.lock().unwrap_or_else(|e| e.into_inner());
        f(&machine)
    }

    pub(crate) fn set_next_scheduled(&self, span: Option<WindowSpan>) {
        *self
            .next_scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = span;
    }

    pub(crate) fn status(&self) -> StatusResponse {
        let next_window = *self
            .next_scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.read(|m| StatusResponse {
            protocol_version: PROTOCOL_VERSION,
            instance_id: m.instance_id().to_owned(),
            state: m.state(),
            window_id: m.active_window().map(|w| w.window_id.clone()),
            version: m.version(),
            announce_policy: m.policy(),
            current_window: m.active_window().map(|w| w.span),
            next_window,
            lease_expires_at: m.lease_expires_at(),
            released_window: m.released_window(),
            last_outcomes: m.outcomes().cloned().collect(),
            pin: m.pin_status(),
        })
    }

    /// Rewrites the readiness file from the machine's current state. Does
    /// nothing when no file is configured.
    pub(crate) fn write_readiness(&self, now: DateTime<Utc>) -> std::io::Result<()> {
        let Some(file) = &self.readiness else {
            return Ok(());
        };
        let doc = self.read(|m| {
            let mut doc = ReadinessDocument::not_ready(m.instance_id(), m.state(), now);
            if m.state() == State::Ready {
                if let Some(window) = m.active_window() {
                    doc.ready = true;
                    doc.window_id = Some(window.window_id.clone());
                    doc.window_end = Some(window.span.end);
                }
            }
            doc
        });
        file.write(&doc)
    }

    /// [`write_readiness`](Self::write_readiness), logging a failure: once
    /// running, the HTTP status still works without the file.
    pub(crate) fn publish_readiness(&self, now: DateTime<Utc>) {
        if let Err(e) = self.write_readiness(now) {
            tracing::error!(
                path = %self.readiness.as_ref().map(|f| f.path().display().to_string()).unwrap_or_default(),
                error = %e,
                "cannot write the readiness file; sidecars watching it will not wake (the HTTP status still works): check the folder exists and is writable"
            );
        }
    }
}
