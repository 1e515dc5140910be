//! The tracker's side of the maintenance window: what "quiesce" and
//! "resume" mean for this tracker.
//!
//! Quiesce writes every pending completed count, checkpoints the database
//! (`PRAGMA wal_checkpoint(TRUNCATE)` for SQLite) and closes it; resume
//! reopens it, after which the flusher writes whatever was deferred.
//! A SQLite store ends its quiesce with a snapshot pin (a read transaction
//! on a connection of its own), dropped by `unpin`.

use std::sync::Arc;

use async_trait::async_trait;
use maintenance_coordinator::{HookError, MaintenanceHooks, PinMode, WindowInfo};

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

    fn pin_mode(&self) -> Option<PinMode> {
        self.buffer.store().pin_mode()
    }

    async fn unpin(&self, window: &WindowInfo) -> Result<(), HookError> {
        let wal_bytes = self.buffer.store().wal_bytes();
        self.buffer
            .store()
            .unpin()
            .await
            .map_err(|e| -> HookError { format!("unpinning the database failed: {e}").into() })?;
        tracing::info!(
            window = %window.window_id,
            wal_bytes_while_pinned = wal_bytes.unwrap_or(0),
            "snapshot pin dropped; the write-ahead log is checkpointed"
        );
        Ok(())
    }

    fn wal_bytes(&self) -> Option<u64> {
        self.buffer.store().wal_bytes()
    }
}
