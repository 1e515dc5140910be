//! What quiesce, resume and unpin mean for torrust-actix.
//!
//! By the time `quiesce` runs, the coordinator has closed the write
//! turnstile and waited for the periodic save in flight (and, under
//! `reject`, for every announce in flight), so nothing else writes:
//! - **flush**: torrust-actix's own saves of everything pending
//!   ([`save_everything_pending`]);
//! - **SQLite**: `wal_checkpoint(TRUNCATE)` and the snapshot pin
//!   ([`SqliteFile`]);
//! - **MySQL/MariaDB, PostgreSQL**: nothing more, as in the reference
//!   tracker: the sidecar's dump opens its own consistent snapshot and
//!   releases the tracker as soon as it exists (MariaDB: the dump's first
//!   table; PostgreSQL: its exported snapshot), and the gate keeps the
//!   saves away until the resume.
//!
//! `resume` has nothing to reopen (torrust-actix's pool stayed open): once
//! it returns, the coordinator reopens the write turnstile and the next
//! periodic save writes what announces changed meanwhile (with the SQLite
//! pin held, the saves already went on into the WAL; see
//! [`crate::persistence`]).

use std::sync::Arc;

use async_trait::async_trait;
use maintenance_coordinator::{HookError, MaintenanceHooks, PinMode, WindowInfo};

use crate::persistence::Saver;
use crate::sqlite_pin::SqliteFile;

/// The hooks over one torrust-actix tracker.
pub struct TorrustHooks {
    saver: Arc<Saver>,
    /// Set when the database is SQLite.
    sqlite: Option<Arc<SqliteFile>>,
}

impl TorrustHooks {
    /// Hooks flushing through `saver`, pinning `sqlite` when given.
    pub fn new(saver: Arc<Saver>, sqlite: Option<Arc<SqliteFile>>) -> Self {
        TorrustHooks { saver, sqlite }
    }
}

#[async_trait]
impl MaintenanceHooks for TorrustHooks {
    async fn quiesce(&self, window: &WindowInfo) -> Result<(), HookError> {
        let pending = self.saver.pending();
        let began = std::time::Instant::now();
        // No other save may slip in between the flush and the pin.
        let _only_us = self.saver.exclusive().await;
        self.saver.save_locked().await?;
        let saved = began.elapsed();
        if let Some(file) = &self.sqlite {
            file.checkpoint_and_pin().await?;
        }
        log::info!(
            "[MAINTENANCE] window {}: {pending} pending torrent updates saved in {} ms{}",
            window.window_id,
            saved.as_millis(),
            if self.sqlite.is_some() {
                format!(
                    "; SQLite checkpointed and pinned in {} ms",
                    (began.elapsed() - saved).as_millis()
                )
            } else {
                String::new()
            }
        );
        Ok(())
    }

    async fn resume(&self, window: &WindowInfo) -> Result<(), HookError> {
        log::info!(
            "[MAINTENANCE] window {}: saves resume ({} torrent updates wait for the next one)",
            window.window_id,
            self.saver.pending()
        );
        Ok(())
    }

    fn pin_mode(&self) -> Option<PinMode> {
        self.sqlite.as_ref()?.pin_mode()
    }

    async fn unpin(&self, window: &WindowInfo) -> Result<(), HookError> {
        if let Some(file) = &self.sqlite {
            let wal = file.wal_bytes();
            file.unpin().await?;
            log::info!(
                "[MAINTENANCE] window {}: snapshot pin dropped ({wal} bytes of WAL written while pinned, now checkpointed)",
                window.window_id
            );
        }
        Ok(())
    }

    fn wal_bytes(&self) -> Option<u64> {
        self.sqlite.as_ref().map(|f| f.wal_bytes())
    }
}
