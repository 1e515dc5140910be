//! The UDP adapter (BEP 15): connect, announce and scrape over datagrams.
//!
//! Each datagram is decoded (`wire.rs`), its connection id checked
//! (`connection.rs`), the transport-neutral core ([`Tracker`]) called, and
//! the answer encoded into one reply datagram. The gate lives in the core,
//! so an announce during a `reject` window gets an error packet (action 3)
//! whose message names the maintenance and the retry time, while connect
//! and scrape keep working; under `defer-writes` announces are answered as
//! usual.
//!
//! Memory stays bounded whatever arrives: each worker owns one receive and
//! one send buffer, nothing is queued per client, and connection ids need
//! no table. Malformed packets are counted and logged per packet only at
//! `trace` level; the totals are logged at shutdown.

pub mod connection;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::tracker::{canonical, Tracker};
use connection::ConnectionIds;
use wire::{BadPacket, Request};

/// Largest datagram read; longer ones are truncated by the kernel and then
/// decoded as whatever fits (a scrape of at most 74 hashes is 1496 bytes).
pub const MAX_PACKET: usize = 2048;

/// Error text for a missing, forged or expired connection id.
pub const BAD_CONNECTION_ID: &str = "connection id is invalid or expired: send a new connect";

/// Counters of one UDP listener.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Requests answered with a connect, announce or scrape response.
    pub answered: AtomicU64,
    /// Requests answered with an error packet (malformed, bad connection
    /// id, or refused by a maintenance window).
    pub errors: AtomicU64,
    /// Datagrams dropped without an answer (not tracker requests).
    pub dropped: AtomicU64,
}

/// Shared by the workers of one listener.
pub struct UdpTracker {
    tracker: Arc<Tracker>,
    ids: ConnectionIds,
    /// This listener's counters.
    pub stats: UdpStats,
}

/// What [`UdpTracker::handle`] decided about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a response.
    Answered,
    /// `out` holds an error packet.
    Error,
    /// Nothing to send.
    Dropped,
}

impl UdpTracker {
    /// A UDP front end over `tracker`, with fresh random connection-id keys.
    pub fn new(tracker: Arc<Tracker>) -> Result<Self, getrandom::Error> {
        Ok(Self::with_ids(tracker, ConnectionIds::new()?))
    }

    /// Same, with given connection ids (tests).
    pub fn with_ids(tracker: Arc<Tracker>, ids: ConnectionIds) -> Self {
        UdpTracker {
            tracker,
            ids,
            stats: UdpStats::default(),
        }
    }

    /// Handles one datagram from `from`, writing the reply (if any) into
    /// `out` (cleared first).
    pub fn handle(&self, packet: &[u8], from: SocketAddr, out: &mut Vec<u8>) -> Outcome {
        out.clear();
        let outcome = self.respond(packet, from, out);
        let counter = match outcome {
            Outcome::Answered => &self.stats.answered,
            Outcome::Error => &self.stats.errors,
            Outcome::Dropped => &self.stats.dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    fn respond(&self, packet: &[u8], from: SocketAddr, out: &mut Vec<u8>) -> Outcome {
        let req = match wire::parse(packet) {
            Ok(r) => r,
            Err(BadPacket::Drop(why)) => {
                tracing::trace!(%from, why, "udp packet dropped");
                return Outcome::Dropped;
            }
            Err(BadPacket::Error {
                transaction_id,
                message,
            }) => {
                tracing::trace!(%from, %message, "udp request rejected");
                wire::error_response(out, transaction_id, &message);
                return Outcome::Error;
            }
        };
        let tid = req.transaction_id();
        let bucket = self.ids.bucket_now();
        if let Some(cid) = req.connection_id() {
            if !self.ids.check(cid, from, bucket) {
                tracing::trace!(%from, "udp request with a bad connection id");
                wire::error_response(out, tid, BAD_CONNECTION_ID);
                return Outcome::Error;
            }
        }
        match req {
            Request::Connect { .. } => {
                wire::connect_response(out, tid, self.ids.issue(from, bucket));
            }
            Request::Announce { announce, .. } => {
                match self.tracker.announce(&announce, from.ip()) {
                    Ok(reply) => {
                        let ipv6 = canonical(from.ip()).is_ipv6();
                        wire::announce_response(
                            out,
                            tid,
                            reply.interval,
                            &reply.stats,
                            reply.peers.iter().map(|p| (p.ip, p.port)),
                            ipv6,
                        );
                    }
                    Err(refusal) => {
                        wire::error_response(out, tid, &refusal.message());
                        return Outcome::Error;
                    }
                }
            }
            Request::Scrape { info_hashes, .. } => {
                wire::scrape_response(out, tid, &self.tracker.scrape(&info_hashes));
            }
        }
        Outcome::Answered
    }

    /// Serves `socket` with `workers` tasks until `stop` turns true.
    pub async fn serve(
        self: Arc<Self>,
        socket: UdpSocket,
        workers: usize,
        stop: watch::Receiver<bool>,
    ) {
        let socket = Arc::new(socket);
        let tasks: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let (me, socket, mut stop) = (self.clone(), socket.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; MAX_PACKET];
                    let mut out = Vec::with_capacity(MAX_PACKET);
                    loop {
                        let (n, from) = tokio::select! {
                            r = socket.recv_from(&mut buf) => match r {
                                Ok(x) => x,
                                Err(e) => {
                                    // E.g. ICMP port unreachable reported on Linux; not fatal.
                                    tracing::trace!(error = %e, "udp receive error");
                                    continue;
                                }
                            },
                            _ = stop.wait_for(|s| *s) => break,
                        };
                        if me.handle(&buf[..n], from, &mut out) != Outcome::Dropped {
                            if let Err(e) = socket.send_to(&out, from).await {
                                tracing::trace!(%from, error = %e, "udp send failed");
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!(
            answered = self.stats.answered.load(Ordering::Relaxed),
            errors = self.stats.errors.load(Ordering::Relaxed),
            dropped = self.stats.dropped.load(Ordering::Relaxed),
            "udp tracker stopped"
        );
    }
}
