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
//! No reflection: a packet whose connection id is not valid for its source
//! address (a spoofed source cannot have received one) is answered only
//! with the short error [`BAD_CONNECTION_ID`], and only when that reply is
//! no longer than the packet itself; otherwise it is dropped. Only senders
//! that proved they receive at their address get longer answers (the
//! connect reply is exactly as long as the connect).
//!
//! Memory stays bounded whatever arrives: each worker owns one receive and
//! one send buffer, nothing is queued per client, and connection ids need
//! no table. Malformed packets are counted and logged per packet only at
//! `trace` level; the totals are logged at shutdown.

pub mod connection;
pub mod wire;

use std::net::SocketAddr;
use std::ops::AddAssign;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::durability::Receipt;
use crate::tracker::{canonical, Tracker};
use connection::ConnectionIds;
use wire::{BadPacket, Request};

/// Largest datagram read; longer ones are truncated by the kernel and then
/// decoded as whatever fits (a scrape of at most 74 hashes is 1496 bytes).
pub const MAX_PACKET: usize = 2048;

/// Error text for a missing, forged or expired connection id: short
/// enough that the error packet (36 bytes) is no longer than the shortest
/// request carrying a connection id it answers (a scrape of one torrent).
pub const BAD_CONNECTION_ID: &str = "bad connection id: reconnect";

/// Shared by the workers of one listener.
pub struct UdpTracker {
    tracker: Arc<Tracker>,
    ids: ConnectionIds,
}

/// Datagrams one worker handled, by [`Outcome`]; each worker counts its
/// own and [`UdpTracker::serve`] sums them for the shutdown log, so no
/// counter is shared between workers.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    answered: u64,
    errors: u64,
    dropped: u64,
}

impl Counts {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered => self.answered += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Dropped => self.dropped += 1,
        }
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.answered += other.answered;
        self.errors += other.errors;
        self.dropped += other.dropped;
    }
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
        Ok(UdpTracker {
            tracker,
            ids: ConnectionIds::new()?,
        })
    }

    /// Handles one datagram from `from`, writing the reply (if any) into
    /// `out` (cleared first). A receipt comes back with an announce that
    /// counted a completion: send the reply only once it is acknowledged.
    pub fn handle(
        &self,
        packet: &[u8],
        from: SocketAddr,
        out: &mut Vec<u8>,
    ) -> (Outcome, Option<Receipt>) {
        out.clear();
        let mut receipt = None;
        let outcome = self.respond(packet, from, out, &mut receipt);
        (outcome, receipt)
    }

    fn respond(
        &self,
        packet: &[u8],
        from: SocketAddr,
        out: &mut Vec<u8>,
        receipt: &mut Option<Receipt>,
    ) -> Outcome {
        let Some((cid, action, tid)) = wire::header(packet) else {
            tracing::trace!(%from, "udp packet dropped: shorter than 16 bytes");
            return Outcome::Dropped;
        };
        let bucket = self.ids.bucket_now();
        if action != wire::ACTION_CONNECT && !self.ids.check(cid, from, bucket) {
            // Unauthenticated: never answer with more bytes than arrived.
            tracing::trace!(%from, "udp request with a bad connection id");
            wire::error_response(out, tid, BAD_CONNECTION_ID);
            if out.len() > packet.len() {
                return Outcome::Dropped;
            }
            return Outcome::Error;
        }
        let req = match wire::parse(packet) {
            Ok(r) => r,
            Err(BadPacket::Drop(why)) => {
                tracing::trace!(%from, why, "udp packet dropped");
                return Outcome::Dropped;
            }
            Err(BadPacket::Error {
                transaction_id,
                problem,
            }) => {
                tracing::trace!(%from, %problem, "udp request rejected");
                wire::error_response(out, transaction_id, problem);
                return Outcome::Error;
            }
        };
        match req {
            Request::Connect { .. } => {
                wire::connect_response(out, tid, self.ids.issue(from, bucket));
            }
            Request::Announce { announce, .. } => {
                match self.tracker.announce(&announce, from.ip()) {
                    Ok(reply) => {
                        *receipt = reply.receipt;
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
                        wire::error_response(out, tid, refusal.message());
                        return Outcome::Error;
                    }
                }
            }
            Request::Scrape { info_hashes, .. } => {
                wire::scrape_response(out, tid, self.tracker.scrape(&info_hashes));
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
            .map(|_| tokio::spawn(self.clone().worker(socket.clone(), stop.clone())))
            .collect();
        let mut total = Counts::default();
        for t in tasks {
            if let Ok(counts) = t.await {
                total += counts;
            }
        }
        tracing::info!(
            answered = total.answered,
            errors = total.errors,
            dropped = total.dropped,
            "udp tracker stopped"
        );
    }

    /// One worker: receives, answers and counts datagrams until `stop`
    /// turns true.
    async fn worker(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        mut stop: watch::Receiver<bool>,
    ) -> Counts {
        let mut buf = vec![0u8; MAX_PACKET];
        let mut out = Vec::with_capacity(MAX_PACKET);
        let mut counts = Counts::default();
        // Built once: a fresh wait per datagram would take the watch's lock
        // and register a waiter for every packet. Polled first, so a
        // steady stream of datagrams cannot keep the worker from stopping.
        let stopped = stop.wait_for(|s| *s);
        tokio::pin!(stopped);
        loop {
            let (n, from) = tokio::select! {
                biased;
                _ = &mut stopped => break,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // E.g. ICMP port unreachable reported on Linux; not fatal.
                        tracing::trace!(error = %e, "udp receive error");
                        continue;
                    }
                },
            };
            let (outcome, receipt) = self.handle(&buf[..n], from, &mut out);
            counts.count(outcome);
            if let Some(receipt) = receipt {
                // A completion: answered once durable, without holding up
                // this worker (the journal writer batches the waiters).
                let (me, socket, reply) = (self.clone(), socket.clone(), out.clone());
                tokio::spawn(async move {
                    me.tracker.buffer.acknowledged(receipt).await;
                    if let Err(e) = socket.send_to(&reply, from).await {
                        tracing::trace!(%from, error = %e, "udp send failed");
                    }
                });
            } else if outcome != Outcome::Dropped {
                if let Err(e) = socket.send_to(&out, from).await {
                    tracing::trace!(%from, error = %e, "udp send failed");
                }
            }
        }
        counts
    }
}
