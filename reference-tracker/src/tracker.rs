//! The transport-neutral tracker core: what an announce and a scrape mean,
//! independent of whether they arrived over HTTP or UDP.
//!
//! Both protocol adapters (`http/` and `udp/`) decode their wire format into
//! an [`Announce`] or a list of info hashes, call [`Tracker`], and encode what
//! it returns. The core owns the swarm state, the write-behind buffer and
//! the maintenance gate, so the gate check and the completion counting exist
//! exactly once (the refusal's wording is the coordinator's, shared with
//! every embedder).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use maintenance_coordinator::{AnnounceGate, Refusal};

use crate::durability::Receipt;
use crate::peers::{Event, InfoHash, Peer, PeerId, PeerStore, SwarmStats};
use crate::writebehind::WriteBehind;

/// Peers returned when the client does not say how many it wants.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers ever returned.
pub const MAX_NUMWANT: usize = 200;
/// Most torrents answered in one scrape (as Torrust).
pub const MAX_SCRAPE: usize = 74;

/// An announce, decoded from either protocol.
#[derive(Debug, Clone)]
pub struct Announce {
    /// Torrent.
    pub info_hash: InfoHash,
    /// Announcing peer.
    pub peer_id: PeerId,
    /// Port the peer listens on.
    pub port: u16,
    /// Bytes uploaded so far.
    pub uploaded: u64,
    /// Bytes downloaded so far.
    pub downloaded: u64,
    /// Bytes left; 0 for a seeder.
    pub left: u64,
    /// The event.
    pub event: Event,
    /// Peers wanted, already capped at [`MAX_NUMWANT`].
    pub numwant: usize,
}

/// What an admitted announce answers.
#[derive(Debug)]
pub struct AnnounceReply {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds a client must wait at least.
    pub interval_min: u32,
    /// Swarm totals after this announce.
    pub stats: SwarmStats,
    /// Other peers of the swarm, at most `numwant`.
    pub peers: Vec<Peer>,
    /// Set when the announce counted a completion: answer it only after
    /// [`WriteBehind::acknowledged`] of this receipt.
    pub receipt: Option<Receipt>,
}

/// The tracker: swarms, persisted counts and the gate, shared by every
/// listener of every protocol.
pub struct Tracker {
    /// Swarms and completed counts.
    pub peers: PeerStore,
    /// Completed counts on their way to the database.
    pub buffer: Arc<WriteBehind>,
    /// The coordinator's gate (or an always-open one).
    pub gate: AnnounceGate,
    /// `interval` sent to clients.
    pub interval: u32,
    /// `min interval` sent to clients.
    pub interval_min: u32,
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Tracker {
    /// Handles an announce from `ip`: passes the gate (one atomic operation
    /// while no window runs), updates the swarm, counts a completion for the
    /// write-behind buffer, and returns the answer. The gate's pass is held
    /// until the swarm and the buffer are updated, so a window that starts
    /// draining now waits for this announce.
    /// A refusal carries the coordinator's wording ([`Refusal::message`]).
    pub fn announce(&self, a: &Announce, ip: IpAddr) -> Result<AnnounceReply, Refusal> {
        let _pass = self.gate.admit_announce()?;
        let peer = Peer {
            id: a.peer_id,
            ip: canonical(ip),
            port: a.port,
            left: a.left,
            updated: Instant::now(),
        };
        let out = self.peers.announce(a.info_hash, peer, a.event, a.numwant);
        let receipt = out
            .counted_completion
            .then(|| self.buffer.record_completion(a.info_hash));
        Ok(AnnounceReply {
            interval: self.interval,
            interval_min: self.interval_min,
            stats: out.stats,
            peers: out.peers,
            receipt,
        })
    }

    /// Totals of each torrent, in the order asked. Scrape only reads memory,
    /// so it stays up during a maintenance window under either policy.
    pub fn scrape<'a>(&'a self, hashes: &'a [InfoHash]) -> impl Iterator<Item = SwarmStats> + 'a {
        hashes.iter().map(|h| self.peers.stats(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let ip: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical(ip), "10.1.2.3".parse::<IpAddr>().unwrap());
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical(ip), ip);
    }
}
