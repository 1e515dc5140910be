//! The watcher side of the fleet: one task per coordinator long-polls its
//! status on one kept connection and publishes what it saw ([`View`]);
//! [`Member`] reads that view (ready, unreachable, a window that ended
//! without this sidecar).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use maintenance_proto::{State, StatusResponse, WindowId, WindowOutcome};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::base::backoff::Backoff;
use crate::client::{ClientError, Coordinator};
use crate::config::Config;

/// What a status watcher last saw of its coordinator.
#[derive(Debug, Clone, Default)]
pub(super) enum Seen {
    /// No answer yet.
    #[default]
    Unknown,
    /// The last status call failed.
    Unreachable(String),
    /// The last status.
    Status(Arc<StatusResponse>),
}

/// [`Seen`] with a sequence number, so a view can be told apart from one
/// taken before a claim.
#[derive(Debug, Clone, Default)]
pub(super) struct View {
    pub(super) seen: Seen,
    pub(super) seq: u64,
    /// When the watcher first saw each recorded outcome of the status
    /// (`None` for those already there at its first answer): a window that
    /// ended on its own (a failed quiesce, its deadline) is matched to a
    /// round by this local time, not by the instance's clock.
    pub(super) ended_seen: Arc<SeenOutcomes>,
}

/// One configured coordinator (one tracker instance).
pub(super) struct Member {
    pub(super) coord: Coordinator,
    pub(super) view: watch::Receiver<View>,
    pub(super) watcher: tokio::task::JoinHandle<()>,
    /// Cuts the watcher's backoff short (a claim just proved the
    /// coordinator reachable).
    pub(super) poke: Arc<Notify>,
    pub(super) refused: HashSet<WindowId>,
    pub(super) claim_backoff: Backoff,
    pub(super) retry_claim_at: Option<Instant>,
}

impl Member {
    /// Starts watching `coord`'s status (waking `wake` at every answer).
    pub(super) fn watch(coord: &Coordinator, cfg: &Config, wake: &Arc<Notify>) -> Member {
        let (tx, view) = watch::channel(View::default());
        let poke = Arc::new(Notify::new());
        let watcher = tokio::spawn(watch_status(
            coord.clone(),
            cfg.coordinator.long_poll_secs,
            Duration::from_secs(cfg.coordinator.max_backoff_secs),
            tx,
            (wake.clone(), poke.clone()),
        ));
        Member {
            coord: coord.clone(),
            view,
            watcher,
            poke,
            refused: HashSet::new(),
            claim_backoff: Backoff::new(Duration::from_secs(cfg.coordinator.max_backoff_secs)),
            retry_claim_at: None,
        }
    }

    pub(super) fn url(&self) -> &str {
        self.coord.url()
    }

    pub(super) fn status(&self) -> Option<Arc<StatusResponse>> {
        match &self.view.borrow().seen {
            Seen::Status(s) => Some(s.clone()),
            _ => None,
        }
    }

    pub(super) fn unreachable(&self) -> Option<String> {
        match &self.view.borrow().seen {
            Seen::Unreachable(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// Missing for `reason`, with what its last status showed.
    pub(super) fn missing(&self, reason: String) -> Missing {
        let status = self.status();
        Missing {
            reason,
            instance_id: status.as_ref().map(|s| s.instance_id.clone()),
            window_id: status.and_then(|s| s.window_id.clone()),
        }
    }

    /// The state its last status showed, or `unknown`.
    pub(super) fn state_text(&self) -> String {
        self.status()
            .map(|s| s.state.to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Its last status shows a window on its way to `ready` (or ready)
    /// that this sidecar has not claimed yet.
    pub(super) fn window_under_way(&self) -> bool {
        self.status().is_some_and(|s| {
            matches!(s.state, State::Draining | State::Quiescing | State::Ready)
                && s.window_id
                    .as_ref()
                    .is_some_and(|w| !self.refused.contains(w))
        })
    }

    /// Why this instance cannot join the round any more: a window of it
    /// that this sidecar never claimed ended (say its quiesce hook failed)
    /// and the watcher saw that at or after `since`.
    pub(super) fn window_ended_since(&self, since: Instant) -> Option<Missing> {
        let view = self.view.borrow();
        let Seen::Status(s) = &view.seen else {
            return None;
        };
        s.last_outcomes
            .iter()
            .find(|o| {
                !self.refused.contains(&o.window_id)
                    && view
                        .ended_seen
                        .get(&o.window_id)
                        .is_some_and(|t| t.is_some_and(|t| t >= since))
            })
            .map(|o| Missing {
                reason: format!(
                    "its window {} ended before it was ready: {}",
                    o.window_id,
                    ended(o)
                ),
                instance_id: Some(s.instance_id.clone()),
                window_id: Some(o.window_id.clone()),
            })
    }
}

/// An instance given up on before it was claimed.
#[derive(Debug, Clone)]
pub(super) struct Missing {
    pub(super) reason: String,
    /// What its last status showed: its instance id and its window (the
    /// one that ended, or the one still under way), for the report.
    pub(super) instance_id: Option<String>,
    pub(super) window_id: Option<WindowId>,
}

/// `outcome (reason)` of an ended window.
pub(super) fn ended(o: &WindowOutcome) -> String {
    format!(
        "{}{}",
        o.outcome.as_str(),
        o.reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )
}

/// Long-polls one coordinator's status forever on its kept connection,
/// publishing every answer (or failure) and waking the fleet. A failed
/// call is retried after 1, 2, 4, ... s (capped), with one log line each;
/// only `poke` (a successful claim) cuts a backoff short.
async fn watch_status(
    coord: Coordinator,
    long_poll_secs: u64,
    max_backoff: Duration,
    tx: watch::Sender<View>,
    (wake, poke): (Arc<Notify>, Arc<Notify>),
) {
    let mut since: Option<u64> = None;
    let mut backoff = Backoff::new(max_backoff);
    let mut unreachable = false;
    let mut seq = 0;
    // `None` until the first answer, whose outcomes are history.
    let mut ended_seen: Option<Arc<SeenOutcomes>> = None;
    let metrics = crate::metrics::get();
    loop {
        let result = coord.status(since.map(|v| (long_poll_secs, v))).await;
        seq += 1;
        match result {
            Ok(status) => {
                if unreachable {
                    tracing::info!("coordinator {} reachable again", coord.url());
                }
                unreachable = false;
                backoff.reset();
                since = Some(status.version);
                metrics.instance_up(coord.url(), true);
                let seen = note_outcomes(ended_seen.take(), &status.last_outcomes);
                ended_seen = Some(seen.clone());
                tx.send_replace(View {
                    seen: Seen::Status(Arc::new(status)),
                    seq,
                    ended_seen: seen,
                });
                wake.notify_one();
            }
            Err(e) => {
                let delay = backoff.next_delay();
                match &e {
                    ClientError::Unreachable { .. } => {
                        tracing::warn!("{e}; retrying in {} s", delay.as_secs())
                    }
                    ClientError::Refused { .. } => {
                        tracing::error!("status refused: {e}; retrying in {} s", delay.as_secs())
                    }
                }
                unreachable = true;
                since = None;
                metrics.instance_up(coord.url(), false);
                tx.send_replace(View {
                    seen: Seen::Unreachable(e.to_string()),
                    seq,
                    ended_seen: ended_seen.clone().unwrap_or_default(),
                });
                wake.notify_one();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = poke.notified() => {},
                }
            }
        }
    }
}

/// Per recorded outcome, when a watcher first saw it (`None`: it was
/// there at the watcher's first answer).
pub(super) type SeenOutcomes = HashMap<WindowId, Option<Instant>>;

/// When each of `outcomes` was first seen: kept from `before`, now for a
/// new one, `None` for all at the first answer (`before` is `None`). Only
/// outcomes still listed are kept, so the map stays as short as the list.
fn note_outcomes(
    before: Option<Arc<SeenOutcomes>>,
    outcomes: &[WindowOutcome],
) -> Arc<SeenOutcomes> {
    let now = before.as_ref().map(|_| Instant::now());
    if let Some(b) = &before {
        if b.len() == outcomes.len() && outcomes.iter().all(|o| b.contains_key(&o.window_id)) {
            return b.clone();
        }
    }
    Arc::new(
        outcomes
            .iter()
            .map(|o| {
                let at = match &before {
                    Some(b) => b.get(&o.window_id).copied().unwrap_or(now),
                    None => None,
                };
                (o.window_id.clone(), at)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use maintenance_proto::Outcome;

    fn outcome(id: &str) -> WindowOutcome {
        WindowOutcome {
            window_id: WindowId::new(id),
            outcome: Outcome::Failed,
            opened_at: chrono::Utc::now(),
            ended_at: chrono::Utc::now(),
            quiesced_secs: 0.0,
            reason: Some("quiesce hook failed: denied".into()),
            report: None,
        }
    }

    #[test]
    fn outcomes_at_the_first_answer_are_history_later_ones_are_timed() {
        let first = note_outcomes(None, &[outcome("a")]);
        assert_eq!(first.get(&WindowId::new("a")), Some(&None));
        let before = Instant::now();
        let second = note_outcomes(Some(first), &[outcome("b"), outcome("a")]);
        assert_eq!(second.get(&WindowId::new("a")), Some(&None));
        let b = second.get(&WindowId::new("b")).copied().flatten();
        assert!(b.is_some_and(|t| t >= before), "{second:?}");
        // Unchanged list: the same map; a dropped outcome is forgotten.
        let third = note_outcomes(Some(second.clone()), &[outcome("b"), outcome("a")]);
        assert!(Arc::ptr_eq(&second, &third));
        let fourth = note_outcomes(Some(third), &[outcome("c"), outcome("b")]);
        assert_eq!(fourth.len(), 2);
        assert_eq!(fourth.get(&WindowId::new("b")).copied().flatten(), b);
        assert_eq!(ended(&outcome("a")), "failed (quiesce hook failed: denied)");
    }
}
