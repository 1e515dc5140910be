//! The in-memory swarm state: who is sharing which torrent, and how many
//! times each torrent was completed.
//!
//! Peers are never persisted (a tracker's swarms rebuild themselves within one
//! announce interval), so they live here and expire when a peer stops
//! announcing. Completed counts are seeded from the database at start-up and
//! then counted here first; the write-behind buffer carries the increments to
//! the database later, which is what lets announces carry on while the
//! database is quiesced.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A torrent's 20-byte SHA-1 info hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The 40 lower-case hex characters stored in the `torrents` table.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 40 hex characters (either case).
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        if s.len() != 40 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(InfoHash(out))
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A peer's self-chosen 20-byte id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeerId(pub [u8; 20]);

/// The announce event (BEP 3); `None` is a regular interval announce.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Event {
    /// The peer just started downloading.
    Started,
    /// The peer finished the download: counts towards `completed`.
    Completed,
    /// The peer is leaving the swarm.
    Stopped,
    /// A periodic announce.
    #[default]
    None,
}

/// One peer in one swarm.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Peer id.
    pub id: PeerId,
    /// Address other peers connect to.
    pub ip: IpAddr,
    /// Port other peers connect to.
    pub port: u16,
    /// Bytes left to download; 0 means seeder.
    pub left: u64,
    /// Last announce.
    pub updated: Instant,
}

impl Peer {
    /// True when the peer has the whole torrent.
    pub fn is_seeder(&self) -> bool {
        self.left == 0
    }
}

/// Swarm totals, as reported by announce and scrape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwarmStats {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
    /// Times the torrent was completed (persisted plus not yet flushed).
    pub downloaded: u64,
}

#[derive(Default)]
struct Swarm {
    peers: HashMap<PeerId, Peer>,
    completed: u64,
}

impl Swarm {
    fn stats(&self) -> SwarmStats {
        let complete = self.peers.values().filter(|p| p.is_seeder()).count() as u64;
        SwarmStats {
            complete,
            incomplete: self.peers.len() as u64 - complete,
            downloaded: self.completed,
        }
    }
}

/// What an announce changed and what it answers.
#[derive(Debug)]
pub struct AnnounceOutcome {
    /// Other peers of the swarm, at most `numwant`.
    pub peers: Vec<Peer>,
    /// Totals after this announce.
    pub stats: SwarmStats,
    /// True when this announce counted a completion (to be persisted).
    pub counted_completion: bool,
}

/// All swarms, behind one lock (announces are short, and this is a
/// reference tracker, not a benchmark winner).
#[derive(Default)]
pub struct PeerStore {
    swarms: Mutex<HashMap<InfoHash, Swarm>>,
}

impl PeerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seeds completed counts loaded from the database.
    pub fn load_completed(&self, counts: impl IntoIterator<Item = (InfoHash, u64)>) {
        let mut swarms = self.swarms.lock().unwrap();
        for (hash, n) in counts {
            swarms.entry(hash).or_default().completed = n;
        }
    }

    /// Records an announce and returns up to `numwant` other peers.
    pub fn announce(
        &self,
        hash: InfoHash,
        peer: Peer,
        event: Event,
        numwant: usize,
    ) -> AnnounceOutcome {
        let mut swarms = self.swarms.lock().unwrap();
        let swarm = swarms.entry(hash).or_default();
        let id = peer.id;
        let counted_completion = event == Event::Completed;
        if counted_completion {
            swarm.completed += 1;
        }
        if event == Event::Stopped {
            swarm.peers.remove(&id);
        } else {
            swarm.peers.insert(id, peer);
        }
        let peers = swarm
            .peers
            .values()
            .filter(|p| p.id != id)
            .take(numwant)
            .cloned()
            .collect();
        AnnounceOutcome {
            peers,
            stats: swarm.stats(),
            counted_completion,
        }
    }

    /// Totals for one torrent; zeros for an unknown one.
    pub fn stats(&self, hash: &InfoHash) -> SwarmStats {
        self.swarms
            .lock()
            .unwrap()
            .get(hash)
            .map(Swarm::stats)
            .unwrap_or_default()
    }

    /// Drops peers not heard from within `ttl`, and swarms left with neither
    /// peers nor completions. Returns how many peers went.
    pub fn expire(&self, now: Instant, ttl: Duration) -> usize {
        let mut swarms = self.swarms.lock().unwrap();
        let mut gone = 0;
        swarms.retain(|_, s| {
            let before = s.peers.len();
            s.peers
                .retain(|_, p| now.saturating_duration_since(p.updated) < ttl);
            gone += before - s.peers.len();
            !s.peers.is_empty() || s.completed > 0
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8, left: u64, at: Instant) -> Peer {
        Peer {
            id: PeerId([n; 20]),
            ip: "10.0.0.1".parse().unwrap(),
            port: 6881,
            left,
            updated: at,
        }
    }

    #[test]
    fn counts_seeders_leechers_and_completions() {
        let store = PeerStore::new();
        let h = InfoHash([1; 20]);
        let now = Instant::now();
        store.announce(h, peer(1, 10, now), Event::Started, 50);
        let out = store.announce(h, peer(2, 0, now), Event::Completed, 50);
        assert!(out.counted_completion);
        assert_eq!(out.peers.len(), 1);
        assert_eq!(out.peers[0].id, PeerId([1; 20]));
        assert_eq!(
            out.stats,
            SwarmStats {
                complete: 1,
                incomplete: 1,
                downloaded: 1
            }
        );
        store.announce(h, peer(1, 10, now), Event::Stopped, 50);
        assert_eq!(store.stats(&h).incomplete, 0);
    }

    #[test]
    fn expires_silent_peers_but_keeps_counts() {
        let store = PeerStore::new();
        let h = InfoHash([2; 20]);
        let then = Instant::now();
        store.announce(h, peer(1, 0, then), Event::Completed, 50);
        let gone = store.expire(then + Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(gone, 1);
        assert_eq!(
            store.stats(&h),
            SwarmStats {
                complete: 0,
                incomplete: 0,
                downloaded: 1
            }
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHash::from_hex("zz"), None);
    }
}
