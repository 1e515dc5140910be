//! torrust-actix's write-behind, driven by us: its periodic batch save, now
//! behind the coordinator's write turnstile, and the flush of everything
//! pending that a window's quiesce and the shutdown run.
//!
//! Upstream's `main.rs` owns this loop; an embedder that composes the
//! library's pieces owns it instead, which is the seam. Each tick takes a
//! [`WritePass`](maintenance_coordinator::WritePass) first, so while a
//! window holds the writes the pending updates simply wait in
//! torrust-actix's memory (`torrents_updates` and friends). The saves
//! themselves are torrust-actix's own (`save_torrent_updates`, ...);
//! nothing of its SQL is copied here.
//!
//! One exception keeps a crash's loss within upstream's own bound (at most
//! `persistent_interval` of updates): once the SQLite snapshot pin is held,
//! the main file is frozen whatever is committed (commits stay in `-wal`),
//! so the ticks save again right away instead of waiting for the sidecar's
//! release. Without that, a crash while a window waits for its sidecar
//! would lose every update since the window opened, up to the window's
//! whole length.

use std::sync::Arc;
use std::time::Duration;

use maintenance_coordinator::AnnounceGate;
use torrust_actix::tracker::structs::torrent_tracker::TorrentTracker;

use crate::config::Persistence;
use crate::sqlite_pin::SqliteFile;

/// A save of one table failed; torrust-actix has put its updates back.
#[derive(Debug, thiserror::Error)]
#[error("torrust-actix could not save its pending {0} to the database (they stay pending; see its log above)")]
pub struct SaveFailed(pub &'static str);

/// Runs torrust-actix's saves, one at a time (the periodic save, a
/// window's flush and the final save never overlap).
pub struct Saver {
    tracker: Arc<TorrentTracker>,
    tables: Persistence,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Saver {
    /// Saves `tables` of `tracker`.
    pub fn new(tracker: Arc<TorrentTracker>, tables: Persistence) -> Self {
        Saver {
            tracker,
            tables,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Torrent updates waiting for the next save.
    pub fn pending(&self) -> i64 {
        self.tracker.get_stats().torrents_updates
    }

    /// Holds off every other save until the guard drops (a window's
    /// flush keeps it through the checkpoint and the pin).
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.one_at_a_time.lock().await
    }

    /// Runs torrust-actix's saves of every persisted table, waiting for
    /// any save under way. The caller decides when writes are allowed.
    pub async fn save_everything_pending(&self) -> Result<(), SaveFailed> {
        let _one = self.one_at_a_time.lock().await;
        self.save_locked().await
    }

    /// The saves, for a caller already holding [`Saver::exclusive`].
    pub async fn save_locked(&self) -> Result<(), SaveFailed> {
        let t = &self.tracker;
        // Torrents are saved even when not persistent: upstream's save then
        // only empties the queue (and feeds the cache), as its loop does.
        t.save_torrent_updates(t.clone())
            .await
            .map_err(|()| SaveFailed("torrents"))?;
        if self.tables.whitelist {
            t.save_whitelist_updates(t.clone())
                .await
                .map_err(|()| SaveFailed("whitelist"))?;
        }
        if self.tables.blacklist {
            t.save_blacklist_updates(t.clone())
                .await
                .map_err(|()| SaveFailed("blacklist"))?;
        }
        if self.tables.keys {
            t.save_key_updates(t.clone())
                .await
                .map_err(|()| SaveFailed("keys"))?;
        }
        if self.tables.users {
            t.save_user_updates(t.clone())
                .await
                .map_err(|()| SaveFailed("users"))?;
        }
        Ok(())
    }
}

/// Upstream's periodic save, every `interval`: under a write pass, or
/// while the SQLite pin freezes the main file. Returns once `stop` is
/// notified, never in the middle of a save (a save cut short would lose
/// the updates it had taken from the queue).
pub async fn periodic_save(
    saver: Arc<Saver>,
    gate: AnnounceGate,
    sqlite: Option<Arc<SqliteFile>>,
    interval: Duration,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.notified() => return,
        }
        let pass = gate.begin_write();
        let pinned = sqlite.as_ref().is_some_and(|f| f.pin_mode().is_some());
        if pass.is_none() && !pinned {
            log::info!(
                "[MAINTENANCE] database save deferred ({} torrent updates wait): a maintenance window holds the writes",
                saver.pending()
            );
            continue;
        }
        if let Err(e) = saver.save_everything_pending().await {
            log::error!("[MAINTENANCE] periodic save: {e}");
        }
    }
}
