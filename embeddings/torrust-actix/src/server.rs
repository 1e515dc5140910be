//! The composition: torrust-actix's tracker state and background work as
//! its `main.rs` sets them up, the coordinator with our hooks, and the
//! listeners behind the gate. Stops on SIGTERM or SIGINT with a final save.
//!
//! Left out of upstream's `main.rs`: the API listeners (their table-clearing
//! endpoints write outside the write-behind, so they would need a gate of
//! their own), TLS listeners, WebRTC and cluster mode, the console
//! statistics, and writing `config.toml` back at exit (see README.md).

use std::sync::Arc;
use std::time::Duration;

use maintenance_coordinator::{Coordinator, StartError};
use tokio_shutdown::Shutdown;
use torrust_actix::database::enums::database_drivers::DatabaseDrivers;
use torrust_actix::stats::enums::stats_event::StatsEvent;
use torrust_actix::tracker::structs::torrent_tracker::TorrentTracker;

use crate::config::{EmbeddingConfig, Persistence};
use crate::hooks::TorrustHooks;
use crate::persistence::{periodic_save, Saver};
use crate::sqlite_pin::{SqliteError, SqliteFile};

/// Why the tracker could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The SQLite file could not be prepared (WAL mode).
    #[error(transparent)]
    Sqlite(#[from] SqliteError),
    /// The coordinator could not start.
    #[error(transparent)]
    Coordinator(#[from] StartError),
    /// A listener could not be bound.
    #[error("{0}")]
    Listen(#[from] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(String),
}

/// Announces a bound listener on stdout, one line each, in the form the
/// tests and operators read: `torrust-actix-maintained: KIND listening on ADDR`.
fn announce_listener(kind: &str, addr: std::net::SocketAddr) {
    println!("torrust-actix-maintained: {kind} listening on {addr}");
}

/// Loads what torrust-actix keeps in the database, as its `main.rs` does.
async fn load(tracker: &Arc<TorrentTracker>) {
    let c = &tracker.config;
    if !c.database.persistent {
        tracker.set_stats(
            StatsEvent::Completed,
            c.tracker_config.total_downloads as i64,
        );
        return;
    }
    tracker.load_torrents(tracker.clone()).await;
    if c.tracker_config.whitelist_enabled {
        tracker.load_whitelist(tracker.clone()).await;
    }
    if c.tracker_config.blacklist_enabled {
        tracker.load_blacklist(tracker.clone()).await;
    }
    if c.tracker_config.keys_enabled {
        tracker.load_keys(tracker.clone()).await;
    }
    if c.tracker_config.users_enabled {
        tracker.load_users(tracker.clone()).await;
    }
    if c.database.update_peers && !tracker.reset_seeds_peers(tracker.clone()).await {
        log::error!("[BOOT] resetting the seeds and peers columns failed");
    }
}

/// Runs the tracker until SIGTERM or SIGINT.
pub async fn run(config: EmbeddingConfig) -> Result<(), RunError> {
    let shutdown = Shutdown::new().map_err(|e| RunError::Signals(e.to_string()))?;
    let tables = Persistence::of(&config.tracker);
    let db = &config.tracker.database;
    let sqlite = if tables.any() && db.engine == DatabaseDrivers::sqlite3 {
        Some(Arc::new(SqliteFile::prepare(&db.path).await?))
    } else {
        None
    };
    // `true`: create the tables if missing (upstream's --create-database,
    // CREATE TABLE IF NOT EXISTS), so a fresh file just works.
    let tracker = Arc::new(TorrentTracker::new(config.tracker.clone(), true).await);
    load(&tracker).await;

    let saver = Arc::new(Saver::new(tracker.clone(), tables));
    let hooks = TorrustHooks::new(saver.clone(), sqlite.clone());
    let coordinator = Coordinator::start(config.maintenance.clone(), Arc::new(hooks)).await?;
    let gate = coordinator.gate();
    if let Some(addr) = coordinator.serve_configured().await? {
        announce_listener("maintenance_api", addr);
    }

    let mut http = Vec::new();
    for h in config.tracker.http_server.iter().filter(|h| h.enabled) {
        let l = crate::http_listeners::start(tracker.clone(), h, gate.clone())?;
        announce_listener("http_tracker", l.addr);
        http.push(l);
    }
    let mut udp = Vec::new();
    for u in config.tracker.udp_server.iter().filter(|u| u.enabled) {
        let l = crate::udp_listener::start(tracker.clone(), u, gate.clone())?;
        announce_listener("udp_tracker", l.addr);
        udp.push(l);
    }

    let tc = &config.tracker.tracker_config;
    let cleanup = tokio::spawn({
        let tracker = tracker.clone();
        let shutdown = shutdown.clone();
        let (timeout, rtc_timeout) = (
            Duration::from_secs(tc.peers_timeout),
            Duration::from_secs(tc.rtc_peers_timeout),
        );
        async move {
            let sharding = tracker.torrents_sharding.clone();
            sharding
                .cleanup_threads(tracker, shutdown, timeout, rtc_timeout, tables.torrents)
                .await;
        }
    });
    let keys_cleanup = tc.keys_enabled.then(|| {
        let tracker = tracker.clone();
        let every = Duration::from_secs(tc.keys_cleanup_interval.max(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                tracker.clean_keys();
            }
        })
    });
    let stop_saving = Arc::new(tokio::sync::Notify::new());
    let saves = tables.any().then(|| {
        tokio::spawn(periodic_save(
            saver.clone(),
            gate.clone(),
            sqlite.clone(),
            Duration::from_secs(db.persistent_interval.max(1)),
            stop_saving.clone(),
        ))
    });
    log::info!("[BOOT] torrust-actix-maintained ready");

    shutdown.handle().await;
    log::info!("[SHUTDOWN] stopping the listeners");
    for l in &http {
        l.handle.stop(true).await;
    }
    for l in &udp {
        l.stop();
    }
    // Ends any window (its hooks resume and unpin), so writes are open again.
    coordinator.shutdown().await;
    stop_saving.notify_one();
    if let Some(saves) = saves {
        let _ = saves.await;
    }
    if let Some(k) = keys_cleanup {
        k.abort();
    }
    let _ = cleanup.await;
    if tables.any() {
        log::info!("[SHUTDOWN] saving what is pending");
        if let Err(e) = saver.save_everything_pending().await {
            log::error!("[SHUTDOWN] {e}");
        }
    }
    log::info!("[SHUTDOWN] done");
    Ok(())
}
