//! The BEP 15 packet formats: decoding requests and encoding responses,
//! with no I/O and no tracker state, so every malformed case is unit-tested.
//!
//! All integers are big-endian. Requests start with a 64-bit connection id
//! (the protocol magic for connect), a 32-bit action and a 32-bit
//! transaction id. A packet too short to carry a transaction id, or a
//! connect without the protocol magic, is not a tracker request and is
//! dropped; anything else that is wrong gets an error packet (action 3)
//! naming the problem, echoing the transaction id (`mod.rs` decides whether
//! the sender is answered at all: see its reflection rule).

use std::net::IpAddr;

use crate::peers::{Event, InfoHash, PeerId, SwarmStats};
use crate::tracker::{Announce, DEFAULT_NUMWANT, MAX_NUMWANT, MAX_SCRAPE};

/// The magic `protocol_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// `action` of a connect.
pub const ACTION_CONNECT: u32 = 0;
/// `action` of an announce.
pub const ACTION_ANNOUNCE: u32 = 1;
/// `action` of a scrape.
pub const ACTION_SCRAPE: u32 = 2;
/// `action` of an error response.
pub const ACTION_ERROR: u32 = 3;
/// Bytes of an announce request without extensions (BEP 41 options after
/// them are ignored).
pub const ANNOUNCE_LEN: usize = 98;
/// Bytes of the common request header.
pub const HEADER_LEN: usize = 16;

/// A decoded request.
#[derive(Debug, Clone)]
pub enum Request {
    /// Asks for a connection id.
    Connect {
        /// Echoed in the response.
        transaction_id: u32,
    },
    /// An announce.
    Announce {
        /// From an earlier connect.
        connection_id: u64,
        /// Echoed in the response.
        transaction_id: u32,
        /// The announce itself.
        announce: Announce,
    },
    /// A scrape of up to [`MAX_SCRAPE`] torrents (more are ignored).
    Scrape {
        /// From an earlier connect.
        connection_id: u64,
        /// Echoed in the response.
        transaction_id: u32,
        /// The torrents.
        info_hashes: Vec<InfoHash>,
    },
}

impl Request {
    /// The connection id a non-connect request carries.
    pub fn connection_id(&self) -> Option<u64> {
        match self {
            Request::Connect { .. } => None,
            Request::Announce { connection_id, .. } | Request::Scrape { connection_id, .. } => {
                Some(*connection_id)
            }
        }
    }

    /// The transaction id to echo.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Request::Connect { transaction_id }
            | Request::Announce { transaction_id, .. }
            | Request::Scrape { transaction_id, .. } => *transaction_id,
        }
    }
}

/// Why a packet is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPacket {
    /// Not a tracker request at all (too short, or a connect without the
    /// magic): dropped without an answer, so forged sources get nothing.
    Drop(&'static str),
    /// A request with a problem: answered with an error packet.
    Error {
        /// Echoed in the error packet.
        transaction_id: u32,
        /// What is wrong (its text is the error packet's message).
        problem: Problem,
    },
}

/// What is wrong with a request answered by an error packet. Kept as data
/// and written straight into the reply, so a malformed packet costs no
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// An announce shorter than [`ANNOUNCE_LEN`] (its length).
    AnnounceTooShort(usize),
    /// An announce event outside 0-3.
    InvalidEvent(u32),
    /// An announce with port 0.
    PortZero,
    /// A scrape whose info-hash bytes are not a non-zero multiple of 20.
    ScrapeLength(usize),
    /// An action other than connect, announce or scrape.
    UnknownAction(u32),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::AnnounceTooShort(n) => {
                write!(f, "announce too short: {n} bytes, expected {ANNOUNCE_LEN}")
            }
            Problem::InvalidEvent(n) => write!(
                f,
                "invalid event {n}: expected 0 (none), 1 (completed), 2 (started) or 3 (stopped)"
            ),
            Problem::PortZero => f.write_str("invalid port 0: expected 1-65535"),
            Problem::ScrapeLength(n) => write!(
                f,
                "scrape carries {n} bytes of info hashes: expected a non-zero multiple of 20"
            ),
            Problem::UnknownAction(n) => write!(
                f,
                "unknown action {n}: expected 0 (connect), 1 (announce) or 2 (scrape)"
            ),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn twenty_at(b: &[u8], at: usize) -> [u8; 20] {
    b[at..at + 20].try_into().unwrap()
}

/// The common header of a datagram: connection id, action, transaction
/// id; `None` when it is shorter than [`HEADER_LEN`].
pub fn header(b: &[u8]) -> Option<(u64, u32, u32)> {
    (b.len() >= HEADER_LEN).then(|| (u64_at(b, 0), u32_at(b, 8), u32_at(b, 12)))
}

/// Decodes one datagram.
pub fn parse(b: &[u8]) -> Result<Request, BadPacket> {
    if b.len() < HEADER_LEN {
        return Err(BadPacket::Drop("shorter than 16 bytes"));
    }
    let connection_id = u64_at(b, 0);
    let action = u32_at(b, 8);
    let transaction_id = u32_at(b, 12);
    let error = |problem| BadPacket::Error {
        transaction_id,
        problem,
    };
    match action {
        ACTION_CONNECT if connection_id == PROTOCOL_ID => Ok(Request::Connect { transaction_id }),
        ACTION_CONNECT => Err(BadPacket::Drop("connect without the protocol id")),
        ACTION_ANNOUNCE => {
            if b.len() < ANNOUNCE_LEN {
                return Err(error(Problem::AnnounceTooShort(b.len())));
            }
            let event = match u32_at(b, 80) {
                0 => Event::None,
                1 => Event::Completed,
                2 => Event::Started,
                3 => Event::Stopped,
                n => return Err(error(Problem::InvalidEvent(n))),
            };
            let port = u16::from_be_bytes([b[96], b[97]]);
            if port == 0 {
                return Err(error(Problem::PortZero));
            }
            let num_want = u32_at(b, 92) as i32;
            let numwant = if num_want <= 0 {
                DEFAULT_NUMWANT
            } else {
                (num_want as usize).min(MAX_NUMWANT)
            };
            Ok(Request::Announce {
                connection_id,
                transaction_id,
                announce: Announce {
                    info_hash: InfoHash(twenty_at(b, 16)),
                    peer_id: PeerId(twenty_at(b, 36)),
                    downloaded: u64_at(b, 56),
                    left: u64_at(b, 64),
                    uploaded: u64_at(b, 72),
                    event,
                    numwant,
                    port,
                },
            })
        }
        ACTION_SCRAPE => {
            let rest = &b[HEADER_LEN..];
            if rest.is_empty() || !rest.len().is_multiple_of(20) {
                return Err(error(Problem::ScrapeLength(rest.len())));
            }
            let info_hashes = rest
                .chunks_exact(20)
                .take(MAX_SCRAPE)
                .map(|c| InfoHash(c.try_into().unwrap()))
                .collect();
            Ok(Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            })
        }
        n => Err(error(Problem::UnknownAction(n))),
    }
}

/// Appends a connect response.
pub fn connect_response(out: &mut Vec<u8>, transaction_id: u32, connection_id: u64) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&connection_id.to_be_bytes());
}

/// Appends an announce response: `interval`, leechers, seeders, then the
/// peers of the requester's address family only (6 bytes each for IPv4,
/// 18 for IPv6, as BEP 15 fixes the format by the request's family).
pub fn announce_response(
    out: &mut Vec<u8>,
    transaction_id: u32,
    interval: u32,
    stats: &SwarmStats,
    peers: impl IntoIterator<Item = (IpAddr, u16)>,
    ipv6: bool,
) {
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&saturate(stats.incomplete).to_be_bytes());
    out.extend_from_slice(&saturate(stats.complete).to_be_bytes());
    for (ip, port) in peers {
        match ip {
            IpAddr::V4(v4) if !ipv6 => out.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) if ipv6 => out.extend_from_slice(&v6.octets()),
            _ => continue,
        }
        out.extend_from_slice(&port.to_be_bytes());
    }
}

/// Appends a scrape response: seeders, completed, leechers per torrent.
pub fn scrape_response(
    out: &mut Vec<u8>,
    transaction_id: u32,
    stats: impl IntoIterator<Item = SwarmStats>,
) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for s in stats {
        out.extend_from_slice(&saturate(s.complete).to_be_bytes());
        out.extend_from_slice(&saturate(s.downloaded).to_be_bytes());
        out.extend_from_slice(&saturate(s.incomplete).to_be_bytes());
    }
}

/// Appends an error response, formatting `message` straight into `out`.
pub fn error_response(out: &mut Vec<u8>, transaction_id: u32, message: impl std::fmt::Display) {
    use std::io::Write;
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{message}");
}

fn saturate(n: u64) -> u32 {
    n.min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cid: u64, action: u32, tid: u32) -> Vec<u8> {
        let mut b = cid.to_be_bytes().to_vec();
        b.extend_from_slice(&action.to_be_bytes());
        b.extend_from_slice(&tid.to_be_bytes());
        b
    }

    fn announce_packet(event: u32, num_want: i32, port: u16) -> Vec<u8> {
        let mut b = header(77, ACTION_ANNOUNCE, 0xABCD);
        b.extend_from_slice(&[0x11; 20]);
        b.extend_from_slice(b"-LT2080-abcdefghijkl");
        b.extend_from_slice(&5u64.to_be_bytes()); // downloaded
        b.extend_from_slice(&6u64.to_be_bytes()); // left
        b.extend_from_slice(&7u64.to_be_bytes()); // uploaded
        b.extend_from_slice(&event.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // ip
        b.extend_from_slice(&9u32.to_be_bytes()); // key
        b.extend_from_slice(&num_want.to_be_bytes());
        b.extend_from_slice(&port.to_be_bytes());
        assert_eq!(b.len(), ANNOUNCE_LEN);
        b
    }

    fn error_of(r: Result<Request, BadPacket>) -> (u32, String) {
        match r {
            Err(BadPacket::Error {
                transaction_id,
                problem,
            }) => (transaction_id, problem.to_string()),
            other => panic!("expected an error packet, got {other:?}"),
        }
    }

    #[test]
    fn connect_needs_the_magic() {
        let r = parse(&header(PROTOCOL_ID, 0, 42)).unwrap();
        assert!(matches!(r, Request::Connect { transaction_id: 42 }));
        assert_eq!(r.connection_id(), None);
        assert!(matches!(parse(&header(1, 0, 42)), Err(BadPacket::Drop(_))));
        let mut out = Vec::new();
        connect_response(&mut out, 42, 0x0102_0304_0506_0708);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 42, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn short_packets_are_dropped() {
        for n in 0..HEADER_LEN {
            let b = vec![0u8; n];
            assert!(matches!(parse(&b), Err(BadPacket::Drop(_))), "{n} bytes");
        }
    }

    #[test]
    fn decodes_an_announce() {
        let r = parse(&announce_packet(1, -1, 6881)).unwrap();
        assert_eq!((r.connection_id(), r.transaction_id()), (Some(77), 0xABCD));
        let Request::Announce { announce: a, .. } = r else {
            panic!("not an announce")
        };
        assert_eq!(a.info_hash, InfoHash([0x11; 20]));
        assert_eq!(&a.peer_id.0, b"-LT2080-abcdefghijkl");
        assert_eq!((a.downloaded, a.left, a.uploaded), (5, 6, 7));
        assert_eq!(
            (a.event, a.numwant, a.port),
            (Event::Completed, DEFAULT_NUMWANT, 6881)
        );
        for (code, event) in [(0, Event::None), (2, Event::Started), (3, Event::Stopped)] {
            let Request::Announce { announce, .. } = parse(&announce_packet(code, 5, 1)).unwrap()
            else {
                panic!()
            };
            assert_eq!((announce.event, announce.numwant), (event, 5));
        }
        let Request::Announce { announce, .. } = parse(&announce_packet(0, 100_000, 1)).unwrap()
        else {
            panic!()
        };
        assert_eq!(announce.numwant, MAX_NUMWANT);
        // BEP 41 options after the fixed part are ignored.
        let mut long = announce_packet(0, 1, 1);
        long.extend_from_slice(&[2, 5, b'/', b'a', b'n', b'n', b'o']);
        assert!(parse(&long).is_ok());
    }

    #[test]
    fn bad_announces_get_errors_naming_the_problem() {
        let full = announce_packet(0, 1, 6881);
        for n in HEADER_LEN..ANNOUNCE_LEN {
            let (tid, msg) = error_of(parse(&full[..n]));
            assert_eq!(tid, 0xABCD);
            assert!(msg.contains("announce too short"), "{msg}");
        }
        let (_, msg) = error_of(parse(&announce_packet(4, 1, 6881)));
        assert!(msg.contains("invalid event 4"), "{msg}");
        let (_, msg) = error_of(parse(&announce_packet(0, 1, 0)));
        assert!(msg.contains("invalid port 0"), "{msg}");
    }

    #[test]
    fn unknown_action_gets_an_error() {
        let (tid, msg) = error_of(parse(&header(77, 3, 9)));
        assert_eq!(tid, 9);
        assert!(msg.contains("unknown action 3"), "{msg}");
        let (_, msg) = error_of(parse(&header(77, u32::MAX, 9)));
        assert!(msg.contains("unknown action"), "{msg}");
    }

    #[test]
    fn scrape_takes_whole_hashes() {
        let mut b = header(77, ACTION_SCRAPE, 5);
        b.extend_from_slice(&[1; 20]);
        b.extend_from_slice(&[2; 20]);
        let Request::Scrape { info_hashes, .. } = parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(info_hashes, [InfoHash([1; 20]), InfoHash([2; 20])]);
        b.push(0);
        let (_, msg) = error_of(parse(&b));
        assert!(msg.contains("multiple of 20"), "{msg}");
        let (_, msg) = error_of(parse(&header(77, ACTION_SCRAPE, 5)));
        assert!(msg.contains("0 bytes"), "{msg}");
        let mut many = header(77, ACTION_SCRAPE, 5);
        many.extend(std::iter::repeat_n(7u8, 20 * (MAX_SCRAPE + 10)));
        let Request::Scrape { info_hashes, .. } = parse(&many).unwrap() else {
            panic!()
        };
        assert_eq!(info_hashes.len(), MAX_SCRAPE);
    }

    #[test]
    fn encodes_responses() {
        let stats = SwarmStats {
            complete: 2,
            incomplete: 3,
            downloaded: 4,
        };
        let peers = [
            ("10.0.0.1".parse().unwrap(), 6881),
            ("2001:db8::1".parse().unwrap(), 6882),
        ];
        let mut v4 = Vec::new();
        announce_response(&mut v4, 7, 120, &stats, peers, false);
        assert_eq!(
            v4,
            [
                0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 120, 0, 0, 0, 3, 0, 0, 0, 2, 10, 0, 0, 1, 0x1A,
                0xE1
            ]
        );
        let mut v6 = Vec::new();
        announce_response(&mut v6, 7, 120, &stats, peers, true);
        assert_eq!(v6.len(), 20 + 18);
        assert_eq!(&v6[20..22], &[0x20, 0x01]);
        assert_eq!(&v6[36..], &6882u16.to_be_bytes());

        let mut s = Vec::new();
        scrape_response(&mut s, 8, [stats]);
        assert_eq!(
            s,
            [0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 3]
        );

        let mut e = Vec::new();
        error_response(&mut e, 9, "no");
        assert_eq!(e, [0, 0, 0, 3, 0, 0, 0, 9, b'n', b'o']);
    }
}
