//! Keeps a claimed window's lease alive with heartbeats every ttl/3.
//!
//! A 409 on heartbeat means the coordinator ended the window (lease
//! expired, deadline, abort): the owner is told at once (`on_lost`), which
//! cancels the backup, and nothing is published. If the coordinator is
//! unreachable the keeper retries until the lease's own expiry time, then
//! gives up the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use maintenance_proto::{LeaseResponse, WindowId};
use tokio::task::JoinHandle;

use crate::client::Coordinator;

/// A running heartbeat task.
pub struct LeaseKeeper {
    handle: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

fn period(ttl_secs: f64) -> Duration {
    Duration::from_secs_f64((ttl_secs / 3.0).clamp(0.1, 60.0))
}

impl LeaseKeeper {
    /// Starts heartbeating `window_id`; calls `on_lost` with the reason,
    /// once, when the lease is lost.
    pub fn start(
        coord: Coordinator,
        window_id: WindowId,
        lease: LeaseResponse,
        on_lost: impl FnOnce(String) + Send + 'static,
    ) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let lost2 = lost.clone();
        let handle = tokio::spawn(async move {
            let mut ttl = lease.lease_ttl_secs;
            let mut expires = lease.lease_expires_at;
            loop {
                tokio::time::sleep(period(ttl)).await;
                match coord.heartbeat(&window_id).await {
                    Ok(l) => {
                        ttl = l.lease_ttl_secs;
                        expires = l.lease_expires_at;
                        tracing::debug!("heartbeat ok for {window_id}, lease until {expires}");
                    }
                    Err(e) if e.is_conflict() => {
                        tracing::error!(
                            "lease lost for window {window_id}: {e}; abandoning the backup"
                        );
                        lost2.store(true, Ordering::SeqCst);
                        on_lost(format!("lease lost: {e}"));
                        return;
                    }
                    Err(e) => {
                        if Utc::now() >= expires {
                            tracing::error!(
                                "lease for window {window_id} expired while the coordinator was unreachable ({e}); abandoning the backup"
                            );
                            lost2.store(true, Ordering::SeqCst);
                            on_lost(format!("lease expired while unreachable: {e}"));
                            return;
                        }
                        tracing::warn!(
                            "heartbeat failed ({e}); retrying before the lease ends at {expires}"
                        );
                    }
                }
            }
        });
        LeaseKeeper { handle, lost }
    }

    /// True once the lease is known lost.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops heartbeating (idempotent).
    pub fn stop(&self) {
        self.handle.abort();
    }
}
