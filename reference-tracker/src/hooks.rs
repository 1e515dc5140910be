//! The tracker's side of the maintenance window: what "quiesce" and
//! "resume" mean for this tracker.
//!
//! Quiesce writes every pending completed count, checkpoints the database
//! (`PRAGMA wal_checkpoint(TRUNCATE)` for SQLite) and closes it; resume
//! reopens it, after which the flusher writes whatever was deferred.

use std::sync::Arc;

use async_trait::async_trait;
use maintenance_coordinator::{HookError, MaintenanceHooks, WindowInfo};

use crate::writebehind::WriteBehind;

/// Quiesce/resume hooks over the write-behind buffer and its store.
pub struct TrackerHooks {
    buffer: Arc<WriteBehind>,
}

impl TrackerHooks {
    /// Hooks acting on `buffer` and its store.
    pub fn new(buffer: Arc<WriteBehind>) -> Self {
        TrackerHooks { buffer }
    }
}

#[async_trait]
impl MaintenanceHooks for TrackerHooks {
    async fn quiesce(&self, window: &WindowInfo) -> Result<(), HookError> {
        let written = self
            .buffer
            .quiesce()
            .await
            .map_err(|e| -> HookError { format!("quiesce failed: {e}").into() })?;
        tracing::info!(
            window = %window.window_id,
            flushed = written,
            store = %self.buffer.store().describe(),
            "database flushed, checkpointed and closed"
        );
        Ok(())
    }

    async fn resume(&self, window: &WindowInfo) -> Result<(), HookError> {
        self.buffer
            .resume()
            .await
            .map_err(|e| -> HookError { format!("reopening the database failed: {e}").into() })?;
        tracing::info!(
            window = %window.window_id,
            deferred = self.buffer.pending_total(),
            "database reopened; deferred counts flow again"
        );
        Ok(())
    }
}
