//! `GET /scrape` (BEP 48): swarm totals for one or more torrents.
//!
//! The HTTP side of a scrape: the `info_hash` parameters are decoded here,
//! the totals come from the core ([`Tracker::scrape`]), and are bencoded
//! here. Scrape only reads memory, so it stays up during a maintenance
//! window under either policy.

use std::sync::Arc;

use axum::extract::{RawQuery as AxumRawQuery, State};
use axum::response::Response;

use super::{bencoded, failure};
use crate::bencode::{dict, Value};
use crate::peers::InfoHash;
use crate::query::RawQuery;
use crate::tracker::{Tracker, MAX_SCRAPE};

/// Parses the `info_hash` parameters; the error is the `failure reason`.
pub fn parse(query: &str) -> Result<Vec<InfoHash>, String> {
    let q = RawQuery::parse(query)
        .map_err(|e| format!("invalid param {}: bad percent-encoding", e.key))?;
    let mut out = Vec::new();
    for v in q.get_all("info_hash") {
        let bytes: [u8; 20] = v.try_into().map_err(|_| {
            format!(
                "invalid param info_hash: expected 20 bytes (percent-encoded), got {}",
                v.len()
            )
        })?;
        if out.len() < MAX_SCRAPE {
            out.push(InfoHash(bytes));
        }
    }
    if out.is_empty() {
        return Err("missing param info_hash".into());
    }
    Ok(out)
}

/// The handler.
pub async fn scrape(
    State(tracker): State<Arc<Tracker>>,
    AxumRawQuery(query): AxumRawQuery,
) -> Response {
    let hashes = match parse(query.as_deref().unwrap_or("")) {
        Ok(h) => h,
        Err(reason) => return failure(&reason),
    };
    let files = hashes
        .iter()
        .zip(tracker.scrape(&hashes))
        .map(|(h, s)| {
            (
                h.0.to_vec(),
                dict([
                    ("complete", Value::Int(s.complete as i64)),
                    ("downloaded", Value::Int(s.downloaded as i64)),
                    ("incomplete", Value::Int(s.incomplete as i64)),
                ]),
            )
        })
        .collect();
    bencoded(dict([("files", Value::Dict(files))]))
}
