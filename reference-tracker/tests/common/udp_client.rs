//! A minimal BEP 15 client for the end-to-end tests. It builds (with the
//! test harness's `maintenance_e2e::udp`) and decodes packets byte by byte
//! on its own, not with the tracker's `wire` module, so a mistake in the
//! tracker's encoding cannot cancel out in the tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The connect magic, and the request header (shared with the UDP
/// benchmark).
pub use maintenance_e2e::udp::{header, PROTOCOL_ID as MAGIC};

/// A decoded answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpAnnounce {
    /// Action 1.
    Peers {
        /// Seconds.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeders.
        seeders: u32,
        /// The peers, in the family of the request.
        peers: Vec<SocketAddr>,
    },
    /// Action 3: the message.
    Error(String),
}

/// One client socket talking to one UDP tracker.
pub struct UdpClient {
    /// The socket (its address is what connection ids are bound to).
    pub sock: UdpSocket,
    server: SocketAddr,
    tid: u32,
}

/// A 98-byte announce request. `event`: 0 none, 1 completed, 2 started, 3 stopped.
pub fn announce_packet(
    cid: u64,
    tid: u32,
    hash: &[u8; 20],
    peer_id: &[u8; 20],
    port: u16,
    event: u32,
    left: u64,
) -> Vec<u8> {
    maintenance_e2e::udp::Announce {
        info_hash: hash,
        peer_id,
        event,
        left,
        key: 0x1234,
        num_want: -1,
        port,
    }
    .packet(cid, tid)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

impl UdpClient {
    /// A fresh socket on loopback, in the server's family.
    pub fn new(server: SocketAddr) -> Self {
        let local: SocketAddr = match server.ip() {
            IpAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
        };
        Self::bind(server, local)
    }

    /// A socket bound to `local` (e.g. another loopback address).
    pub fn bind(server: SocketAddr, local: SocketAddr) -> Self {
        let sock = UdpSocket::bind(local).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        UdpClient {
            sock,
            server,
            tid: 0x5EED_0000,
        }
    }

    /// Sends `packet` and returns the reply echoing `tid`, retrying a few
    /// times; `None` when nothing comes back.
    pub fn exchange(&mut self, packet: &[u8], tid: u32) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        for _ in 0..6 {
            self.sock.send_to(packet, self.server).unwrap();
            while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                assert_eq!(from, self.server);
                if n >= 8 && be32(&buf, 4) == tid {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }

    /// Sends `packet` once and waits `wait` for any datagram.
    pub fn send_expect_silence(&mut self, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.sock.send_to(packet, self.server).unwrap();
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        let r = self
            .sock
            .recv_from(&mut buf)
            .ok()
            .map(|(n, _)| buf[..n].to_vec());
        self.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        r
    }

    fn next_tid(&mut self) -> u32 {
        self.tid = self.tid.wrapping_add(1);
        self.tid
    }

    /// Connect: returns the connection id.
    pub fn connect(&mut self) -> u64 {
        let tid = self.next_tid();
        let r = self
            .exchange(&header(MAGIC, 0, tid), tid)
            .expect("no answer to connect");
        assert_eq!(r.len(), 16, "connect response {r:?}");
        assert_eq!(be32(&r, 0), 0, "connect response action {r:?}");
        u64::from_be_bytes(r[8..16].try_into().unwrap())
    }

    /// Announces and decodes the answer.
    pub fn announce(
        &mut self,
        cid: u64,
        hash: &[u8; 20],
        peer_id: &[u8; 20],
        port: u16,
        event: u32,
        left: u64,
    ) -> UdpAnnounce {
        let tid = self.next_tid();
        let p = announce_packet(cid, tid, hash, peer_id, port, event, left);
        let r = self.exchange(&p, tid).expect("no answer to announce");
        decode_announce(&r, self.server.is_ipv6())
    }

    /// Scrapes: `(seeders, completed, leechers)` per torrent, or the error.
    pub fn scrape(
        &mut self,
        cid: u64,
        hashes: &[[u8; 20]],
    ) -> Result<Vec<(u32, u32, u32)>, String> {
        let tid = self.next_tid();
        let mut p = header(cid, 2, tid);
        for h in hashes {
            p.extend_from_slice(h);
        }
        let r = self.exchange(&p, tid).expect("no answer to scrape");
        match be32(&r, 0) {
            2 => {
                assert_eq!(r.len(), 8 + 12 * hashes.len(), "scrape response {r:?}");
                Ok(r[8..]
                    .chunks_exact(12)
                    .map(|c| (be32(c, 0), be32(c, 4), be32(c, 8)))
                    .collect())
            }
            3 => Err(String::from_utf8_lossy(&r[8..]).into_owned()),
            a => panic!("scrape answered with action {a}: {r:?}"),
        }
    }
}

/// Decodes an announce response or an error packet.
pub fn decode_announce(r: &[u8], ipv6: bool) -> UdpAnnounce {
    match be32(r, 0) {
        1 => {
            assert!(r.len() >= 20, "announce response {r:?}");
            let size = if ipv6 { 18 } else { 6 };
            assert_eq!((r.len() - 20) % size, 0, "peer list length {r:?}");
            let peers = r[20..]
                .chunks_exact(size)
                .map(|c| {
                    let port = u16::from_be_bytes([c[size - 2], c[size - 1]]);
                    let ip: IpAddr = if ipv6 {
                        <[u8; 16]>::try_from(&c[..16]).unwrap().into()
                    } else {
                        <[u8; 4]>::try_from(&c[..4]).unwrap().into()
                    };
                    SocketAddr::new(ip, port)
                })
                .collect();
            UdpAnnounce::Peers {
                interval: be32(r, 8),
                leechers: be32(r, 12),
                seeders: be32(r, 16),
                peers,
            }
        }
        3 => UdpAnnounce::Error(String::from_utf8_lossy(&r[8..]).into_owned()),
        a => panic!("announce answered with action {a}: {r:?}"),
    }
}
