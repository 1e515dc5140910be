//! `GET /announce` (BEP 3), with compact peers (BEP 23, BEP 7 for IPv6) and
//! the maintenance refusal (BEP 31 `retry in`).
//!
//! The HTTP side of an announce only: the query string is decoded into the
//! core's [`Announce`], the core ([`Tracker::announce`]) passes the gate and
//! updates the swarm, and the answer or the refusal is bencoded here. Under
//! policy `reject` a closed gate turns the announce into a bencoded failure
//! whose `interval` tells clients to come back when the window is expected
//! to end; under `defer-writes` the gate always admits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery as AxumRawQuery, State};
use axum::response::Response;

use super::{bencoded, bencoded_bytes, failure};
use crate::bencode::{dict, Value};
use crate::peers::{Event, InfoHash, Peer, PeerId};
use crate::query::RawQuery;
use crate::tracker::{Announce, AnnounceReply, Tracker, DEFAULT_NUMWANT, MAX_NUMWANT};

/// A parsed HTTP announce: the core's fields plus the HTTP-only options.
#[derive(Debug, Clone)]
pub struct AnnounceRequest {
    /// What the core needs.
    pub announce: Announce,
    /// `compact=1`.
    pub compact: bool,
    /// `no_peer_id=1`: omit `peer id` in the dictionary form.
    pub no_peer_id: bool,
}

/// Reads a 20-byte parameter.
pub(crate) fn twenty_bytes(q: &RawQuery, key: &str) -> Result<[u8; 20], String> {
    let v = q.get(key).ok_or_else(|| format!("missing param {key}"))?;
    v.try_into().map_err(|_| {
        format!(
            "invalid param {key}: expected 20 bytes (percent-encoded), got {}",
            v.len()
        )
    })
}

fn number(q: &RawQuery, key: &str) -> Result<Option<u64>, String> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "invalid param {key}: {:?} is not a non-negative integer",
                    String::from_utf8_lossy(v)
                )
            }),
    }
}

impl AnnounceRequest {
    /// Parses the raw query string; the error is the `failure reason`.
    pub fn parse(query: &str) -> Result<Self, String> {
        let q = RawQuery::parse(query)
            .map_err(|e| format!("invalid param {}: bad percent-encoding", e.key))?;
        let info_hash = InfoHash(twenty_bytes(&q, "info_hash")?);
        let peer_id = PeerId(twenty_bytes(&q, "peer_id")?);
        let port = match number(&q, "port")? {
            None => return Err("missing param port".into()),
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(p) => return Err(format!("invalid param port: {p} is not in 1-65535")),
        };
        let event = match q.get_str("event") {
            None | Some("") | Some("empty") | Some("paused") => Event::None,
            Some("started") => Event::Started,
            Some("completed") => Event::Completed,
            Some("stopped") => Event::Stopped,
            Some(other) => {
                return Err(format!(
                    "invalid param event: {other:?} is not started, completed or stopped"
                ))
            }
        };
        let numwant = number(&q, "numwant")?
            .map(|n| (n as usize).min(MAX_NUMWANT))
            .unwrap_or(DEFAULT_NUMWANT);
        Ok(AnnounceRequest {
            announce: Announce {
                info_hash,
                peer_id,
                port,
                uploaded: number(&q, "uploaded")?.unwrap_or(0),
                downloaded: number(&q, "downloaded")?.unwrap_or(0),
                left: number(&q, "left")?.unwrap_or(0),
                event,
                numwant,
            },
            compact: q.get_str("compact") == Some("1"),
            no_peer_id: q.get_str("no_peer_id") == Some("1"),
        })
    }
}

/// Encodes peers: compact strings (`peers` for IPv4, `peers6` for IPv6) or a
/// list of dictionaries.
fn peers_fields(peers: &[Peer], req: &AnnounceRequest) -> Vec<(&'static str, Value)> {
    if req.compact {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for p in peers {
            match p.ip {
                IpAddr::V4(ip) => {
                    v4.extend_from_slice(&ip.octets());
                    v4.extend_from_slice(&p.port.to_be_bytes());
                }
                IpAddr::V6(ip) => {
                    v6.extend_from_slice(&ip.octets());
                    v6.extend_from_slice(&p.port.to_be_bytes());
                }
            }
        }
        let mut out = vec![("peers", Value::Bytes(v4))];
        if !v6.is_empty() {
            out.push(("peers6", Value::Bytes(v6)));
        }
        out
    } else {
        let list = peers
            .iter()
            .map(|p| {
                let mut fields = vec![
                    ("ip", Value::str(&p.ip.to_string())),
                    ("port", Value::Int(p.port as i64)),
                ];
                if !req.no_peer_id {
                    fields.push(("peer id", Value::Bytes(p.id.0.to_vec())));
                }
                dict(fields)
            })
            .collect();
        vec![("peers", Value::List(list))]
    }
}

/// The answer to an admitted announce.
pub fn reply_body(reply: &AnnounceReply, req: &AnnounceRequest) -> Value {
    let mut fields = vec![
        ("interval", Value::Int(reply.interval as i64)),
        ("min interval", Value::Int(reply.interval_min as i64)),
        ("complete", Value::Int(reply.stats.complete as i64)),
        ("incomplete", Value::Int(reply.stats.incomplete as i64)),
    ];
    fields.extend(peers_fields(&reply.peers, req));
    dict(fields)
}

/// The handler.
pub async fn announce(
    State(tracker): State<Arc<Tracker>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    AxumRawQuery(query): AxumRawQuery,
) -> Response {
    let req = match AnnounceRequest::parse(query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(reason) => return failure(&reason),
    };
    match tracker.announce(&req.announce, remote.ip()) {
        Ok(reply) => {
            if let Some(receipt) = reply.receipt {
                tracker.buffer.acknowledged(receipt).await;
            }
            bencoded(reply_body(&reply, &req))
        }
        Err(refusal) => bencoded_bytes(refusal.bencoded_failure()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HASH: &str = "%124Vx%9A%BC%DE%F0%124Vx%9A%BC%DE%F0%124Vx";
    const PEER: &str = "-qB4650-abcdefghijkl";

    #[test]
    fn parses_a_full_announce() {
        let r = AnnounceRequest::parse(&format!(
            "info_hash={HASH}&peer_id={PEER}&port=6881&uploaded=1&downloaded=2&left=3&event=completed&numwant=999&compact=1"
        ))
        .unwrap();
        assert!(r.compact);
        let r = r.announce;
        assert_eq!(
            r.info_hash.to_hex(),
            "123456789abcdef0123456789abcdef012345678"
        );
        assert_eq!(&r.peer_id.0, PEER.as_bytes());
        assert_eq!((r.port, r.uploaded, r.downloaded, r.left), (6881, 1, 2, 3));
        assert_eq!(r.event, Event::Completed);
        assert_eq!(r.numwant, MAX_NUMWANT);
    }

    #[test]
    fn names_the_bad_param() {
        let cases = [
            (format!("peer_id={PEER}&port=1"), "missing param info_hash"),
            (
                format!("info_hash=abc&peer_id={PEER}&port=1"),
                "invalid param info_hash",
            ),
            (format!("info_hash={HASH}&port=1"), "missing param peer_id"),
            (
                format!("info_hash={HASH}&peer_id={PEER}"),
                "missing param port",
            ),
            (
                format!("info_hash={HASH}&peer_id={PEER}&port=70000"),
                "invalid param port",
            ),
            (
                format!("info_hash={HASH}&peer_id={PEER}&port=x"),
                "invalid param port",
            ),
            (
                format!("info_hash={HASH}&peer_id={PEER}&port=1&event=x"),
                "invalid param event",
            ),
            (
                format!("info_hash={HASH}&peer_id={PEER}&port=1&left=-1"),
                "invalid param left",
            ),
        ];
        for (q, want) in cases {
            let e = AnnounceRequest::parse(&q).unwrap_err();
            assert!(e.starts_with(want), "{q}: {e}");
        }
    }

    #[test]
    fn the_refusal_decodes_with_its_delay() {
        let r = maintenance_coordinator::Refusal {
            retry_after: Duration::from_millis(61_200),
        };
        let v = crate::bencode::decode(&r.bencoded_failure()).unwrap();
        assert_eq!(v.get("interval"), Some(&Value::Int(62)));
        assert_eq!(v.get("min interval"), Some(&Value::Int(62)));
        assert_eq!(v.get("retry in"), Some(&Value::Int(2)));
        assert!(v.get("failure reason").is_some());
    }
}
