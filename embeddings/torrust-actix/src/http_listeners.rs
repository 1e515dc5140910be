//! torrust-actix's HTTP tracker listeners, assembled here instead of by its
//! `http_service`: the same `App` (compression, CORS, its routes from
//! `http_service_routes`) and the same server settings, with the gate
//! middleware ([`crate::http_gate`]) wrapped around the routes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{App, HttpServer};
use maintenance_coordinator::AnnounceGate;
use torrust_actix::config::structs::http_trackers_config::HttpTrackersConfig;
use torrust_actix::http::http::{http_service_cors, http_service_routes};
use torrust_actix::http::structs::http_service_data::HttpServiceData;
use torrust_actix::tracker::structs::torrent_tracker::TorrentTracker;

/// A bound, running HTTP tracker listener.
pub struct HttpListener {
    /// The address it is bound to (the real port when the config said 0).
    pub addr: SocketAddr,
    /// Stops it.
    pub handle: ServerHandle,
}

/// Binds `config.bind_address` and starts serving torrust-actix's routes
/// behind the gate, in a task of the current runtime.
pub fn start(
    tracker: Arc<TorrentTracker>,
    config: &HttpTrackersConfig,
    gate: AnnounceGate,
) -> std::io::Result<HttpListener> {
    let listener = TcpListener::bind(&config.bind_address).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on http_server bind_address {}: {e}; pick a free address",
                config.bind_address
            ),
        )
    })?;
    let addr = listener.local_addr()?;
    let data = Arc::new(HttpServiceData {
        torrent_tracker: tracker,
        http_trackers_config: Arc::new(config.clone()),
    });
    let server = HttpServer::new(move || {
        let gate = gate.clone();
        // The last wrap is the outermost: CORS and compression (as
        // upstream) apply to refusals too.
        App::new()
            .wrap(from_fn(move |req, next| {
                crate::http_gate::gate_announces(gate.clone(), req, next)
            }))
            .wrap(Compress::default())
            .wrap(http_service_cors())
            .configure(http_service_routes(data.clone()))
    })
    .keep_alive(Duration::from_secs(config.keep_alive))
    .client_request_timeout(Duration::from_secs(config.request_timeout))
    .client_disconnect_timeout(Duration::from_secs(config.disconnect_timeout))
    .workers(config.threads.max(1) as usize)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(HttpListener { addr, handle })
}
