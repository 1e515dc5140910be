//! The HTTP adapter: axum routes that decode HTTP tracker requests, call the
//! transport-neutral core ([`crate::tracker::Tracker`]) and bencode its
//! answers. Nothing here decides tracker semantics.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::bencode::{dict, Value};
use crate::tracker::Tracker;

pub mod announce;
pub mod scrape;

/// A 200 OK with a bencoded body.
pub fn bencoded(v: Value) -> Response {
    bencoded_bytes(v.encode())
}

/// A 200 OK with a body already bencoded (the coordinator's refusal).
pub fn bencoded_bytes(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A 200 OK whose bencoded body is only a `failure reason`.
pub fn failure(reason: &str) -> Response {
    bencoded(dict([("failure reason", Value::str(reason))]))
}

/// `GET /health_check`: `{"status":"Ok"}`, as Torrust answers. It never
/// touches the gate, so it stays up during a window.
pub async fn health_check() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "Ok" }))
}

/// The routes of the health check listener: `/health_check` only.
pub fn health_router() -> Router {
    Router::new().route("/health_check", get(health_check))
}

/// The tracker's routes: `/announce`, `/scrape`, `/health_check`.
pub fn tracker_router(tracker: Arc<Tracker>) -> Router {
    Router::new()
        .route("/announce", get(announce::announce))
        .route("/scrape", get(scrape::scrape))
        .route("/health_check", get(health_check))
        .with_state(tracker)
}
