//! Completion: `complete` with one report to every claimed window at once
//! (retried while the coordinator is unreachable and the lease held), and
//! the per-instance metrics of a finished round.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use maintenance_proto::{BackupReport, WindowId};

use super::round::{LostFlag, Phase, Round};
use crate::base::backoff::Backoff;
use crate::client::{ClientError, Coordinator};

/// The window that names a cancelled backup: the first one that took
/// part, else the first one named at all.
pub(super) fn first_window(report: &BackupReport) -> Option<&WindowId> {
    let instances = &report.participation.as_ref()?.instances;
    instances
        .iter()
        .filter(|i| i.took_part)
        .chain(instances)
        .find_map(|i| i.window_id.as_ref())
}

/// A window to complete: its coordinator, id and lost flag.
pub(super) type Target = (Coordinator, WindowId, LostFlag);

/// Marks every live slot done and returns what `complete` needs.
pub(super) fn take_live(r: &mut Round) -> Vec<Target> {
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
pub(super) fn record_instances(r: &Round, ok: bool) {
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

/// Sends `complete` with the same report to every target concurrently.
pub(super) async fn complete_all(targets: &[Target], report: &BackupReport) {
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
