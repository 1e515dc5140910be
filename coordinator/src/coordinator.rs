//! The handle a tracker holds: starts the runner, hands out the gate and
//! the HTTP router, and shuts everything down in order.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use maintenance_proto::StatusResponse;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::MaintenanceConfig;
use crate::gate::AnnounceGate;
use crate::hooks::MaintenanceHooks;
use crate::shared::Shared;

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The readiness file could not be rewritten; a stale "ready" there
    /// could invite a backup of the live database.
    #[error("cannot rewrite the readiness file {path}: {source}; make its folder writable or change maintenance.ready_file")]
    ReadyFile {
        /// The configured path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The maintenance API could not listen on its address.
    #[error("cannot listen on maintenance.bind {addr}: {source}; pick a free address")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A running coordinator. Cheap to clone; all clones share one runner.
///
/// ```
/// use std::sync::Arc;
/// use maintenance_coordinator::{Coordinator, MaintenanceConfig, NoopHooks};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let config = MaintenanceConfig::from_toml_str(r#"
///     [maintenance]
///     enabled = true
///     window = "03:00-03:05"
///     token = "0123456789abcdef-secret"
/// "#).unwrap();
/// let coordinator = Coordinator::start(config, Arc::new(NoopHooks)).await.unwrap();
/// let gate = coordinator.gate();          // consult on every announce
/// let api = coordinator.router();         // mount or serve it
/// assert!(gate.admit_announce().is_ok());
/// # drop(api);
/// coordinator.shutdown().await;
/// # }
/// ```
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
    runner: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Coordinator {
    /// Rewrites any stale readiness file, then starts the runner task.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        config: MaintenanceConfig,
        hooks: Arc<dyn MaintenanceHooks>,
    ) -> Result<Coordinator, StartError> {
        let instance_id = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared::new(config, hooks, instance_id.clone()));
        if let Some(file) = &shared.readiness {
            if let Ok(old) = file.read() {
                if old.instance_id != instance_id && old.ready {
                    warn!(
                        path = %file.path().display(), old_instance = %old.instance_id,
                        "rewriting a readiness file left by an earlier instance that said ready"
                    );
                }
            }
            shared
                .write_readiness(Utc::now())
                .map_err(|source| StartError::ReadyFile {
                    path: file.path().display().to_string(),
                    source,
                })?;
        }
        info!(
            instance_id = %instance_id,
            enabled = shared.config.enabled,
            schedule = %shared.config.schedule,
            policy = %shared.config.announce_policy,
            "maintenance coordinator started"
        );
        let runner = tokio::spawn(crate::runner::run(shared.clone()));
        Ok(Coordinator {
            shared,
            runner: Arc::new(Mutex::new(Some(runner))),
        })
    }

    /// The gate the tracker consults on every announce and write.
    pub fn gate(&self) -> AnnounceGate {
        self.shared.gate.clone()
    }

    /// The HTTP API, with routes under `/maintenance/v1`. Merge it into the
    /// tracker's router or serve it with [`serve`](Self::serve).
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.shared.clone())
    }

    /// The configuration in force.
    pub fn config(&self) -> &MaintenanceConfig {
        &self.shared.config
    }

    /// The same body as `GET status`.
    pub fn status(&self) -> StatusResponse {
        self.shared.status()
    }

    /// Serves the API on `listener` until [`shutdown`](Self::shutdown),
    /// with the header-read and idle timeouts of [`maintenance_http::serve`].
    pub async fn serve(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let mut stop = self.shared.shutdown.subscribe();
        let stop = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        maintenance_http::serve(listener, self.router(), stop, Default::default()).await
    }

    /// Binds `maintenance.bind` and serves the API there in a background
    /// task. Returns the bound address, or `None` when no bind is set.
    pub async fn serve_configured(&self) -> Result<Option<SocketAddr>, StartError> {
        let Some(addr) = self.shared.config.bind else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.serve(listener).await {
                tracing::error!(error = %e, "maintenance API server stopped");
            }
        });
        info!(addr = %local, "maintenance API listening");
        Ok(Some(local))
    }

    /// Ends any running window (the tracker resumes), stops the runner and
    /// the API server, and leaves a not-ready readiness file.
    pub async fn shutdown(&self) {
        let _ = self.shared.update(|m| {
            m.abort(
                None,
                Some("coordinator shutting down".into()),
                crate::machine::Now::read(),
            )
        });
        self.shared.shutdown.send_replace(true);
        self.shared.wake.notify_one();
        let runner = self.runner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(runner) = runner {
            let _ = runner.await;
        }
        self.shared.publish_readiness(Utc::now());
    }
}
