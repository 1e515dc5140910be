//! HTTP client for the coordinator API (`/maintenance/v1`).
//!
//! [`Coordinators`] holds a list of endpoints so one sidecar can later
//! coordinate a single window across several tracker instances (DESIGN
//! section 7); today the runner drives the first. Errors are split into
//! "unreachable" (retry with backoff) and "refused" (the coordinator said
//! no, with a stable [`ErrorCode`]).

use std::sync::Arc;
use std::time::Duration;

use maintenance_proto::{
    AbortRequest, Ack, BackupReport, ClaimRequest, CompleteRequest, CompleteResponse, ErrorBody,
    ErrorCode, LeaseResponse, OpenWindowRequest, OpenWindowResponse, ReleaseRequest,
    StatusResponse, UnpinResponse, WindowId, WindowRequest, API_PREFIX, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{CoordinatorConfig, Secret};
use crate::status_conn::StatusConnection;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Network error, timeout or 5xx: worth retrying.
    #[error("coordinator {url} unreachable: {message}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The coordinator refused the call (4xx with an error body).
    #[error("coordinator {url} refused: {} ({})", body.message, body.code.as_str())]
    Refused {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
}

impl ClientError {
    /// The error code when the coordinator refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { body, .. } => Some(body.code),
            ClientError::Unreachable { .. } => None,
        }
    }

    /// True for a 409 (stale window, wrong state, claimed by another).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Refused { status: 409, .. })
    }
}

/// One coordinator endpoint.
#[derive(Debug, Clone)]
pub struct Coordinator {
    http: reqwest::Client,
    base: String,
    /// The path part of `base`, for requests on `status_conn`.
    base_path: String,
    /// Status calls go over one kept connection (plain HTTP only).
    status_conn: Option<Arc<StatusConnection>>,
    token: Option<Secret>,
    /// The lease id the last successful claim answered, with its window
    /// (protocol 3): every later call on that window carries it. Shared by
    /// the clones of this endpoint (the lease keeper's among them).
    lease: Arc<std::sync::Mutex<Option<(WindowId, String)>>>,
}

impl Coordinator {
    /// A client for the coordinator at `base_url` (scheme://host:port).
    pub fn new(base_url: &str, token: Option<Secret>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let base = format!("{}{API_PREFIX}", base_url.trim_end_matches('/'));
        let base_path = reqwest::Url::parse(&base)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        Ok(Coordinator {
            http,
            status_conn: StatusConnection::for_url(&base).map(Arc::new),
            base,
            base_path,
            token,
            lease: Arc::default(),
        })
    }

    /// The API base URL, for log lines.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Decodes a finished response: `T` on success, otherwise the error
    /// (5xx counts as unreachable).
    fn decode<T: DeserializeOwned>(&self, status: u16, body: &[u8]) -> Result<T, ClientError> {
        let url = self.base.clone();
        if (200..300).contains(&status) {
            return serde_json::from_slice(body).map_err(|e| ClientError::Unreachable {
                url,
                message: format!("bad response body: {e}"),
            });
        }
        let text = String::from_utf8_lossy(body);
        if status >= 500 {
            return Err(ClientError::Unreachable {
                url,
                message: format!("HTTP {status}: {text}"),
            });
        }
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| {
            ErrorBody::new(ErrorCode::InvalidRequest, format!("HTTP {status}: {text}"))
        });
        Err(ClientError::Refused { url, status, body })
    }

    /// Sends `req` on the pooled client and decodes the answer.
    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        self.decode(status, &body)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let mut req = self
            .http
            .post(format!("{}/{path}", self.base))
            .timeout(Duration::from_secs(15))
            .json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        self.send(req).await
    }

    /// `GET status`; with `wait`, long-polls until the version differs from
    /// `since` or `wait` seconds pass.
    pub async fn status(&self, wait: Option<(u64, u64)>) -> Result<StatusResponse, ClientError> {
        let (query, timeout) = match wait {
            Some((secs, since)) => (format!("?wait={secs}&since={since}"), secs + 10),
            None => (String::new(), 10),
        };
        let timeout = Duration::from_secs(timeout);
        match &self.status_conn {
            Some(conn) => {
                let path = format!("{}/status{query}", self.base_path);
                let (status, body) =
                    conn.get(&path, timeout)
                        .await
                        .map_err(|message| ClientError::Unreachable {
                            url: self.base.clone(),
                            message,
                        })?;
                self.decode(status, &body)
            }
            None => {
                let req = self
                    .http
                    .get(format!("{}/status{query}", self.base))
                    .timeout(timeout);
                self.send(req).await
            }
        }
    }

    /// `POST claim`.
    pub async fn claim(
        &self,
        window_id: &WindowId,
        sidecar_id: &str,
    ) -> Result<LeaseResponse, ClientError> {
        let body = ClaimRequest {
            window_id: window_id.clone(),
            sidecar_id: sidecar_id.to_owned(),
            protocol_version: Some(PROTOCOL_VERSION),
            lease_id: self.lease_of(window_id),
        };
        let lease: LeaseResponse = self.post("claim", &body).await?;
        if let Some(id) = &lease.lease_id {
            *self.lease.lock().unwrap() = Some((window_id.clone(), id.clone()));
        }
        Ok(lease)
    }

    /// The lease id the claim of `window_id` answered, if any (none from a
    /// coordinator older than protocol 3).
    fn lease_of(&self, window_id: &WindowId) -> Option<String> {
        self.lease
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(w, _)| w == window_id)
            .map(|(_, id)| id.clone())
    }

    /// `POST heartbeat`: extends the lease.
    pub async fn heartbeat(&self, window_id: &WindowId) -> Result<LeaseResponse, ClientError> {
        self.post(
            "heartbeat",
            &WindowRequest {
                window_id: window_id.clone(),
                lease_id: self.lease_of(window_id),
            },
        )
        .await
    }

    /// `POST release`: snapshots taken, the tracker may resume. With
    /// `keep_pin` the tracker resumes but keeps its snapshot pin until
    /// [`Coordinator::unpin`] (protocol 2; a version-1 coordinator ignores
    /// the field and answers without `pinned`).
    pub async fn release(&self, window_id: &WindowId, keep_pin: bool) -> Result<Ack, ClientError> {
        self.post(
            "release",
            &ReleaseRequest {
                window_id: window_id.clone(),
                keep_pin,
                lease_id: self.lease_of(window_id),
            },
        )
        .await
    }

    /// `POST unpin`: the read under the pin is over. Succeeds only when the
    /// instance that owns the window held the pin without interruption
    /// until this call; any error means the read is not proven consistent.
    pub async fn unpin(&self, window_id: &WindowId) -> Result<UnpinResponse, ClientError> {
        self.post(
            "unpin",
            &WindowRequest {
                window_id: window_id.clone(),
                lease_id: self.lease_of(window_id),
            },
        )
        .await
    }

    /// `POST complete` with the report (idempotent).
    pub async fn complete(
        &self,
        window_id: &WindowId,
        report: BackupReport,
    ) -> Result<CompleteResponse, ClientError> {
        let body = CompleteRequest {
            window_id: window_id.clone(),
            report,
            lease_id: self.lease_of(window_id),
        };
        self.post("complete", &body).await
    }

    /// `POST abort`: ends the running window (operator call).
    pub async fn abort(
        &self,
        window_id: Option<WindowId>,
        reason: &str,
    ) -> Result<Ack, ClientError> {
        let body = AbortRequest {
            window_id,
            reason: Some(reason.to_owned()),
        };
        self.post("abort", &body).await
    }

    /// `POST windows`: opens an ad hoc window now (operator call).
    pub async fn open_window(&self, duration_secs: u64) -> Result<OpenWindowResponse, ClientError> {
        self.post("windows", &OpenWindowRequest { duration_secs })
            .await
    }
}

/// All configured coordinators.
#[derive(Debug, Clone)]
pub struct Coordinators {
    endpoints: Vec<Coordinator>,
}

impl Coordinators {
    /// Clients for every configured URL; errors when there is none.
    pub fn from_config(cfg: &CoordinatorConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !cfg.urls.is_empty(),
            "no coordinator URL configured (set MAINTENANCE_URL or coordinator.url)"
        );
        Self::from_urls(&cfg.urls, cfg.token.as_ref())
    }

    /// Clients for these base URLs, all with `token`.
    pub fn from_urls(urls: &[String], token: Option<&Secret>) -> anyhow::Result<Self> {
        let endpoints = urls
            .iter()
            .map(|u| Coordinator::new(u, token.cloned()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Coordinators { endpoints })
    }

    /// Clients for every instance: the configured URLs, or with
    /// `resolve = "each-address"` every address their host names resolve
    /// to now (`discovery.rs`).
    pub async fn discover(cfg: &CoordinatorConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !cfg.urls.is_empty(),
            "no coordinator URL configured (set MAINTENANCE_URL or coordinator.url)"
        );
        let urls = crate::discovery::instances(cfg).await?;
        Self::from_urls(&urls, cfg.token.as_ref())
    }

    /// The endpoint the runner drives.
    pub fn primary(&self) -> &Coordinator {
        &self.endpoints[0]
    }

    /// Every endpoint.
    pub fn all(&self) -> &[Coordinator] {
        &self.endpoints
    }
}
