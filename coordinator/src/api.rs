//! The HTTP API under `/maintenance/v1`, as an axum [`Router`] the tracker
//! mounts in its own server or serves on the `[maintenance] bind` address.
//!
//! Reads (`status`, `health`, `metrics`) are open; every `POST` needs the
//! bearer token. Every error is a JSON [`ErrorBody`] with a stable code.
//! Handlers only call [`Machine`](crate::machine::Machine) transitions; the
//! runner performs the effects, with one exception: a release reopens the
//! announce turnstile itself (see `release`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State as AxumState};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration as ChronoDuration;
use maintenance_proto::{
    AbortRequest, ClaimRequest, CompleteRequest, ErrorBody, ErrorCode, HealthResponse,
    OpenWindowRequest, OpenWindowResponse, ReleaseRequest, UnpinResponse, WindowRequest,
    WindowSpan, API_PREFIX, MIN_SIDECAR_PROTOCOL, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::{info, warn};

use crate::machine::{Now, Rejection};
use crate::shared::Shared;

/// Longest a long-poll may wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Longest ad hoc window.
const MAX_ADHOC_SECS: u64 = 86_400;
/// Largest request body accepted (a backup report is a few KiB).
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/claim", post(claim))
        .route("/heartbeat", post(heartbeat))
        .route("/release", post(release))
        .route("/unpin", post(unpin))
        .route("/complete", post(complete))
        .route("/windows", post(open_window))
        .route("/abort", post(abort))
        .with_state(shared);
    Router::new()
        .nest(API_PREFIX, api)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(json_errors))
}

/// Turns an error answered by axum itself (a body over the limit, an
/// unknown path, an extractor's plain-text rejection) into the JSON error body with a
/// stable code, like every other error of this API.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::BodyTooLarge,
            format!("request body over {MAX_BODY_BYTES} bytes; send a smaller body"),
        ),
        StatusCode::NOT_FOUND => (
            ErrorCode::NotFound,
            format!("no such endpoint; see {API_PREFIX}/status"),
        ),
        s if s.is_server_error() => (ErrorCode::Internal, format!("internal error ({s})")),
        s => (ErrorCode::InvalidRequest, format!("invalid request ({s})")),
    };
    ApiError(status, ErrorBody::new(code, message)).into_response()
}

/// An error answer: status code plus JSON body.
pub(crate) struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::StaleWindow
            | ErrorCode::WrongState
            | ErrorCode::AlreadyClaimed
            | ErrorCode::WindowBusy
            | ErrorCode::PinLost
            | ErrorCode::LeaseMismatch => StatusCode::CONFLICT,
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, ErrorBody::new(code, message))
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::new(r.code, r.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed: reads are GET, changes are POST",
    )
}

/// Proof that the request carried the right bearer token.
struct Authorized;

impl FromRequestParts<Arc<Shared>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = &shared.config.token else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "this coordinator has no token configured, so it accepts no changes; set maintenance.token_file or MAINTENANCE_TOKEN",
            ));
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match presented {
            Some(p) if token.matches(p) => Ok(Authorized),
            Some(_) => {
                warn!(path = %parts.uri.path(), "refused a request with a wrong bearer token");
                Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "wrong bearer token; use the token from maintenance.token / token_file",
                ))
            }
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>` header",
            )),
        }
    }
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
struct StatusQuery {
    /// Seconds to wait for a change.
    wait: Option<f64>,
    /// Return as soon as the version differs from this one.
    since: Option<u64>,
}

async fn status(
    AxumState(shared): AxumState<Arc<Shared>>,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("{e}; use ?wait=SECONDS&since=VERSION"),
        )
    })?;
    if let Some(wait) = query.wait {
        if !(wait.is_finite() && wait >= 0.0) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("wait={wait}: expected a number of seconds between 0 and 300"),
            ));
        }
        // Clamped before converting: `from_secs_f64` panics beyond u64 seconds.
        let wait = Duration::from_secs_f64(wait.min(MAX_WAIT.as_secs_f64()));
        let mut changes = shared.changed.subscribe();
        let since = query.since.unwrap_or_else(|| *changes.borrow_and_update());
        let _ = tokio::time::timeout(wait, changes.wait_for(|v| *v != since)).await;
    }
    Ok(Json(shared.status()).into_response())
}

async fn health(AxumState(shared): AxumState<Arc<Shared>>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        state: shared.read(|m| m.state()),
    })
}

async fn metrics(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let (state, pinned) = shared.read(|m| (m.state(), m.has_pin()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared
            .metrics
            .render(state, pinned, shared.hooks.wal_bytes()),
    )
        .into_response()
}

async fn claim(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<maintenance_proto::LeaseResponse> {
    let req: ClaimRequest = parse_body(&body)?;
    let spoken = req.protocol_version.unwrap_or(2);
    if spoken < MIN_SIDECAR_PROTOCOL {
        warn!(window_id = %req.window_id, sidecar = %req.sidecar_id, protocol = spoken,
            "refused the claim of a sidecar speaking an older protocol; upgrade it");
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "this coordinator speaks protocol {PROTOCOL_VERSION} and accepts claims from sidecars \
                 speaking {MIN_SIDECAR_PROTOCOL} or later (this claim speaks {spoken}): a lease now has a \
                 secret lease_id that every later call carries; upgrade maintenance-sidecar to the \
                 version of this tracker"
            ),
        ));
    }
    let ttl = shared.config.lease_ttl;
    let lease = shared.update(|m| {
        m.claim(
            &req.window_id,
            &req.sidecar_id,
            req.lease_id.as_deref(),
            Now::read(),
            ttl,
        )
    })?;
    info!(window_id = %req.window_id, sidecar = %req.sidecar_id, "window claimed");
    Ok(Json(lease))
}

async fn heartbeat(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<maintenance_proto::LeaseResponse> {
    let req: WindowRequest = parse_body(&body)?;
    let ttl = shared.config.lease_ttl;
    Ok(Json(shared.update(|m| {
        m.check_lease(&req.window_id, req.lease_id.as_deref(), "heartbeat")?;
        m.heartbeat(&req.window_id, Now::read(), ttl)
    })?))
}

async fn release(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<maintenance_proto::Ack> {
    let req: ReleaseRequest = parse_body(&body)?;
    // The snapshot is taken, so announces (they only touch memory) flow
    // again from the moment the release is recorded, under the machine's
    // lock: whoever learns of it, from this answer or from the status, is
    // served. Left to the runner, they would stay refused until it woke up
    // and rewrote the readiness file. Database writes still wait for the
    // runner's resume hook.
    let ack = shared.update(|m| {
        m.check_lease(&req.window_id, req.lease_id.as_deref(), "release")?;
        let ack = m.release(&req.window_id, req.keep_pin, Now::read())?;
        shared.gate.open_announces();
        Ok::<_, Rejection>(ack)
    })?;
    info!(
        window_id = %req.window_id, pinned = ack.pinned,
        "released: tracker resuming{}",
        if ack.pinned { "; the snapshot stays pinned until unpin" } else { "" }
    );
    Ok(Json(ack))
}

async fn unpin(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<UnpinResponse> {
    let req: WindowRequest = parse_body(&body)?;
    let done = shared.update(|m| {
        m.check_lease(&req.window_id, req.lease_id.as_deref(), "unpin")?;
        m.unpin(&req.window_id, Now::read())
    })?;
    info!(window_id = %req.window_id, held_secs = done.held_secs, "sidecar finished reading: unpinning");
    Ok(Json(done))
}

async fn complete(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<maintenance_proto::CompleteResponse> {
    let req: CompleteRequest = parse_body(&body)?;
    let done = shared.update(|m| {
        m.check_lease(&req.window_id, req.lease_id.as_deref(), "complete")?;
        m.complete(&req.window_id, req.report, Now::read())
    })?;
    info!(window_id = %req.window_id, outcome = %done.outcome, "sidecar completed the window");
    Ok(Json(done))
}

async fn open_window(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<OpenWindowResponse> {
    let req: OpenWindowRequest = parse_body(&body)?;
    if req.duration_secs == 0 || req.duration_secs > MAX_ADHOC_SECS {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "duration_secs={}: expected 1..={MAX_ADHOC_SECS}",
                req.duration_secs
            ),
        ));
    }
    let clock = Now::read();
    let now = clock.wall;
    let span = WindowSpan {
        start: now,
        end: now + ChronoDuration::seconds(req.duration_secs as i64),
    };
    let info = shared.update(|m| m.open(span, clock))?;
    info!(window_id = %info.window_id, duration_secs = req.duration_secs, "operator opened an ad hoc window");
    Ok(Json(OpenWindowResponse {
        window_id: info.window_id,
        window: span,
    }))
}

async fn abort(
    _: Authorized,
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<maintenance_proto::Ack> {
    let req: AbortRequest = if body.is_empty() {
        AbortRequest::default()
    } else {
        parse_body(&body)?
    };
    let ack = shared.update(|m| m.abort(req.window_id.as_ref(), req.reason, Now::read()))?;
    info!(window_id = %ack.window_id, "operator aborted the window");
    Ok(Json(ack))
}
