//! Wiring: opens the database, starts the coordinator with the tracker's
//! hooks, binds every listener and runs until shutdown, then flushes.
//!
//! This is the file to read for "how does a tracker embed the coordinator":
//! besides the hooks (`hooks.rs`) and the one `admit_announce` call in the
//! core (`tracker.rs`), everything the embedding needs happens in [`run`].
//! The protocol adapters (`http/`, `udp/`) only decode, call the core and
//! encode; this file is the only one that knows all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use maintenance_coordinator::{AnnounceGate, Coordinator, MaintenanceConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{TrackerConfig, PASSWORD_ENV};
use crate::hooks::TrackerHooks;
use crate::http::{health_router, tracker_router};
use crate::peers::PeerStore;
use crate::tracker::Tracker;
use crate::udp::UdpTracker;
use crate::writebehind::WriteBehind;

/// Any start-up or run-time failure, with its context in the text.
pub type RunError = Box<dyn std::error::Error + Send + Sync>;

fn announce_listening(kind: &str, addr: SocketAddr) {
    use std::io::Write;
    // A stable line on stdout, read by tests and scripts to learn OS-assigned ports.
    println!("reference-tracker: {kind} listening on {addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(kind, %addr, "listening");
}

async fn bind(kind: &str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot bind {kind} on {addr}: {e}"))?;
    announce_listening(kind, l.local_addr()?);
    Ok(l)
}

/// Runs the tracker until `shutdown` resolves, then stops serving, flushes
/// every pending count and closes the database.
pub async fn run(
    cfg: TrackerConfig,
    mconf: MaintenanceConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    // Persistence: open, load the counts, put the write-behind buffer in front.
    check_database_folder(&cfg.database)?;
    let store = crate::store::open(&cfg.database, std::env::var(PASSWORD_ENV).ok())
        .await
        .map_err(|e| format!("cannot open database ({:?}): {e}", cfg.database.driver))?;
    let counts = store.load_completed().await?;
    tracing::info!(store = %store.describe(), torrents = counts.len(), "database open");
    // Increments journaled before a crash but not in the database yet.
    let (buffer, replayed) = WriteBehind::open(
        store,
        cfg.database.completion_journal.clone().into(),
        cfg.database.journal_durability,
    )
    .await?;
    let buffer = Arc::new(buffer);
    let replayed_total: u64 = replayed.values().sum();
    if replayed_total > 0 {
        tracing::info!(completions = replayed_total, journal = %cfg.database.completion_journal,
            "replayed completions from the journal");
    }
    let mut counts: std::collections::HashMap<_, _> = counts.into_iter().collect();
    for (hash, n) in replayed {
        *counts.entry(hash).or_insert(0) += n;
    }
    let peers = PeerStore::new();
    peers.load_completed(counts);

    // --- Embedding the coordinator: start it with our hooks, take its gate. ---
    let coordinator = if mconf.enabled || mconf.bind.is_some() {
        let hooks = Arc::new(TrackerHooks::new(buffer.clone()));
        Some(Coordinator::start(mconf, hooks).await?)
    } else {
        None
    };
    let gate = coordinator
        .as_ref()
        .map(|c| c.gate())
        .unwrap_or_else(AnnounceGate::always_open);

    let state = Arc::new(Tracker {
        peers,
        buffer: buffer.clone(),
        gate: gate.clone(),
        interval: cfg.interval,
        interval_min: cfg.interval_min,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let serve = |listener: TcpListener, router: Router, mut rx: watch::Receiver<bool>| {
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            maintenance_http::serve(listener, router, stop, Default::default()).await
        })
    };
    for addr in &cfg.http_trackers {
        let l = bind("http_tracker", *addr).await?;
        servers.push(serve(l, tracker_router(state.clone()), stop_rx.clone()));
    }
    for addr in &cfg.udp_trackers {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| format!("cannot bind udp_tracker on {addr}: {e}"))?;
        announce_listening("udp_tracker", socket.local_addr()?);
        let udp = Arc::new(
            UdpTracker::new(state.clone())
                .map_err(|e| format!("cannot draw the connection-id key: {e}"))?,
        );
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let rx = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            udp.serve(socket, workers, rx).await;
            Ok(())
        }));
    }
    if let Some(c) = &coordinator {
        if let Some(addr) = c.config().bind {
            // The maintenance API on its own port; it stops with `shutdown()`.
            let l = bind("maintenance_api", addr).await?;
            let c = c.clone();
            tokio::spawn(async move { c.serve(l).await });
        }
    }
    // Last, so a health check that answers means every listener, the
    // maintenance API included, is bound (a sidecar started with the
    // tracker waits for "healthy", not for a lucky retry).
    if let Some(addr) = cfg.health_check {
        let l = bind("health_check_api", addr).await?;
        servers.push(serve(l, health_router(), stop_rx.clone()));
    }

    let flusher = buffer
        .clone()
        .spawn_flusher(gate.clone(), cfg.database.flush_interval);
    let journal_sync = buffer.clone().spawn_journal_sync();
    let ttl = Duration::from_secs(cfg.max_peer_timeout as u64);
    let expiry_state = state.clone();
    let expiry = tokio::spawn(async move {
        let every = (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            tokio::time::sleep(every).await;
            let gone = expiry_state.peers.expire(Instant::now(), ttl);
            if gone > 0 {
                tracing::debug!(gone, "expired silent peers");
            }
        }
    });

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        // Long-polls may hold a connection open; do not wait for them forever.
        let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
    }
    buffer.stop_flusher(flusher).await;
    journal_sync.abort();
    expiry.abort();
    if let Some(c) = coordinator {
        c.shutdown().await;
    }
    if buffer.is_quiesced() {
        buffer.resume().await?;
    }
    let written = buffer.flush().await?;
    buffer.quiesce().await?;
    tracing::info!(flushed = written, "counts flushed, database closed");
    Ok(())
}

/// SQLite creates its journal and WAL next to the database, so its folder
/// must be writable. Checked first, so a wrong owner is named at start-up
/// instead of SQLite's "unable to open database file".
fn check_database_folder(db: &crate::config::DatabaseConfig) -> Result<(), RunError> {
    if db.driver != crate::config::Driver::Sqlite3 {
        return Ok(());
    }
    let folder = match std::path::Path::new(&db.path).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // A missing folder is created, as the store always did; only one that
    // exists but cannot be written stops start-up.
    let _ = std::fs::create_dir_all(&folder);
    maintenance_preflight::writable_dir("the folder of core.database.path", &folder)
        .map_err(|e| RunError::from(e.to_string()))
}
