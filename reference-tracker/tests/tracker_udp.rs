//! The UDP tracker (BEP 15) of the real binary, on loopback with
//! OS-assigned ports: connect/announce/scrape over IPv4 and IPv6, state
//! shared with HTTP, malformed and forged packets, the gate under `reject`
//! and `defer-writes`, and a bounded flood.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::udp_client::*;
use common::*;
use maintenance_proto::State;

/// `(leechers, seeders, peers)` of an announce answer; panics on an error.
fn peers_of(r: UdpAnnounce) -> (u32, u32, Vec<SocketAddr>) {
    match r {
        UdpAnnounce::Peers {
            leechers,
            seeders,
            peers,
            ..
        } => (leechers, seeders, peers),
        UdpAnnounce::Error(e) => panic!("announce refused: {e}"),
    }
}

fn ipv6_loopback() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn connect_announce_scrape_over_ipv4_and_ipv6_share_http_state() {
    let dir = tempfile::tempdir().unwrap();
    let v6 = ipv6_loopback();
    let mut addrs = vec!["127.0.0.1:0"];
    if v6 {
        addrs.push("[::1]:0");
    }
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "reject"), &addrs),
    );
    let hash = info_hash(b'U', 1);

    let mut a = UdpClient::new(t.udp[0]);
    let cid_a = a.connect();
    let r = a.announce(cid_a, &hash, &info_hash(b'a', 1), 6881, 2, 100);
    assert_eq!(
        r,
        UdpAnnounce::Peers {
            interval: 120,
            leechers: 1,
            seeders: 0,
            peers: vec![]
        }
    );

    // A second IPv4 client, a seeder, sees the first one.
    let mut b = UdpClient::new(t.udp[0]);
    let cid_b = b.connect();
    let (leechers, seeders, peers) =
        peers_of(b.announce(cid_b, &hash, &info_hash(b'b', 1), 6882, 1, 0));
    assert_eq!((leechers, seeders), (1, 1));
    assert_eq!(peers, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);

    // HTTP sees the UDP swarm and its completion.
    let v = t
        .announce(&hash, &info_hash(b'h', 1), 7000, "&compact=1&left=5")
        .await;
    assert_eq!(v.get("complete").and_then(|x| x.as_int()), Some(1));
    assert_eq!(v.get("incomplete").and_then(|x| x.as_int()), Some(2));
    assert_eq!(t.scraped_downloaded(&hash).await, 1);

    // UDP scrape, including an unknown torrent.
    let s = a.scrape(cid_a, &[hash, info_hash(b'U', 2)]).unwrap();
    assert_eq!(s, vec![(1, 1, 2), (0, 0, 0)]);

    if v6 {
        let mut c = UdpClient::new(t.udp[1]);
        let cid = c.connect();
        let (leechers, seeders, peers) =
            peers_of(c.announce(cid, &hash, &info_hash(b'c', 1), 6883, 2, 5));
        // Counts cover every peer; the peer list holds IPv6 peers only.
        assert_eq!((leechers, seeders), (3, 1));
        assert!(peers.is_empty(), "{peers:?}");
        let mut d = UdpClient::new(t.udp[1]);
        let cid = d.connect();
        let (_, _, peers) = peers_of(d.announce(cid, &hash, &info_hash(b'd', 1), 6884, 2, 5));
        assert_eq!(peers, vec!["[::1]:6883".parse::<SocketAddr>().unwrap()]);
    } else {
        eprintln!("no IPv6 loopback here: IPv6 response format checked by unit tests only");
    }

    // The completion reaches the database.
    let db = dir.path().join("tracker.db");
    wait_until(Duration::from_secs(10), "count in the database", || {
        sqlite_counts(&db).get(&hex(&hash)) == Some(&1)
    });
    t.stop();
}

#[tokio::test]
async fn malformed_and_forged_packets_get_errors_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "reject"), &["127.0.0.1:0"]),
    );
    let mut c = UdpClient::new(t.udp[0]);
    let quiet = Duration::from_millis(300);

    // Too short to carry a transaction id, or a connect without the magic:
    // no answer at all.
    for p in [vec![], vec![0u8; 15], header(0x1234, 0, 1)] {
        assert_eq!(c.send_expect_silence(&p, quiet), None, "{p:?}");
    }
    // Unknown action with a valid connection id: an error echoing the
    // transaction id.
    let valid = c.connect();
    let r = c.exchange(&header(valid, 9, 77), 77).unwrap();
    assert_eq!(&r[..8], &[0, 0, 0, 3, 0, 0, 0, 77]);
    assert!(String::from_utf8_lossy(&r[8..]).contains("unknown action 9"));

    // Announce and scrape with a connection id the tracker never issued.
    let hash = info_hash(b'M', 1);
    let r = c.announce(0xDEAD_BEEF, &hash, &info_hash(b'p', 1), 6881, 2, 1);
    assert!(
        matches!(&r, UdpAnnounce::Error(m) if m.contains("connection id")),
        "{r:?}"
    );
    let e = c.scrape(0xDEAD_BEEF, &[hash]).unwrap_err();
    assert!(e.contains("connection id"), "{e}");

    // A valid id issued to another IP address does not work from this one
    // (what stops announces with a spoofed source).
    let mut other = UdpClient::bind(t.udp[0], "127.0.0.2:0".parse().unwrap());
    let stolen = other.connect();
    let r = c.announce(stolen, &hash, &info_hash(b'p', 1), 6881, 2, 1);
    assert!(matches!(&r, UdpAnnounce::Error(_)), "{r:?}");

    // Truncated announce, bad event, bad scrape length: errors naming them.
    let cid = c.connect();
    let full = announce_packet(cid, 5, &hash, &info_hash(b'p', 1), 6881, 0, 1);
    let r = c.exchange(&full[..60], 5).unwrap();
    assert!(
        matches!(decode_announce(&r, false), UdpAnnounce::Error(m) if m.contains("too short")),
        "{r:?}"
    );
    let bad_event = announce_packet(cid, 6, &hash, &info_hash(b'p', 1), 6881, 9, 1);
    let r = c.exchange(&bad_event, 6).unwrap();
    assert!(
        matches!(decode_announce(&r, false), UdpAnnounce::Error(m) if m.contains("invalid event 9")),
        "{r:?}"
    );
    let mut scrape = header(cid, 2, 7);
    scrape.extend_from_slice(&[1; 21]);
    let r = c.exchange(&scrape, 7).unwrap();
    assert_eq!(&r[..4], &[0, 0, 0, 3]);

    // None of that created a peer, and the tracker still answers.
    assert_eq!(c.scrape(cid, &[hash]).unwrap(), vec![(0, 0, 0)]);
    // Nothing was logged per packet at info level or above.
    let logs = t.logs();
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("udp") && !l.contains("listening")),
        "per-packet logs:\n{logs}"
    );
    t.stop();
}

/// A packet whose connection id was not issued to its source address
/// (what a spoofed source sends) never gets more bytes back than it
/// carried: the short error when it fits, nothing otherwise.
#[tokio::test]
async fn unauthenticated_packets_are_never_answered_with_more_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "reject"), &["127.0.0.1:0"]),
    );
    let mut c = UdpClient::new(t.udp[0]);
    let quiet = Duration::from_millis(200);
    let mut other = UdpClient::bind(t.udp[0], "127.0.0.2:0".parse().unwrap());
    let foreign = other.connect();
    let hash = info_hash(b'R', 1);
    let mut packets = Vec::new();
    for cid in [0xDEAD_BEEF_u64, MAGIC, foreign] {
        for action in [1u32, 2, 3, 9, u32::MAX] {
            let mut p = header(cid, action, 41);
            packets.push(p.clone());
            p.extend_from_slice(&[0; 4]);
            packets.push(p.clone());
            p.extend_from_slice(&hash[..16]);
            packets.push(p.clone()); // 36 bytes: a one-torrent scrape
            p.extend_from_slice(&[0; 62]);
            packets.push(p.clone()); // 98 bytes: an announce
            p.extend_from_slice(&[7; 1300]);
            packets.push(p);
        }
        packets.push(announce_packet(
            cid,
            41,
            &hash,
            &info_hash(b'p', 1),
            6881,
            2,
            1,
        ));
    }
    let mut answered = 0;
    for p in &packets {
        if let Some(reply) = c.send_expect_silence(p, quiet) {
            answered += 1;
            assert!(
                reply.len() <= p.len(),
                "{} bytes answered to {} bytes: {:?}",
                reply.len(),
                p.len(),
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(&reply[..8], &[0, 0, 0, 3, 0, 0, 0, 41]);
            assert!(String::from_utf8_lossy(&reply[8..]).contains("connection id"));
        }
    }
    // A client whose id expired still learns why when its request is big
    // enough to carry the answer (every announce, every scrape).
    assert!(answered > 0, "nothing answered");
    let r = c.announce(0xDEAD_BEEF, &hash, &info_hash(b'p', 1), 6881, 2, 1);
    assert!(
        matches!(&r, UdpAnnounce::Error(m) if m.contains("reconnect")),
        "{r:?}"
    );
    let e = c.scrape(0xDEAD_BEEF, &[hash]).unwrap_err();
    assert!(e.contains("reconnect"), "{e}");
    t.stop();
}

#[tokio::test]
async fn reject_window_refuses_udp_announces_and_keeps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "reject"), &["127.0.0.1:0"]),
    );
    let hash = info_hash(b'R', 1);
    let mut c = UdpClient::new(t.udp[0]);
    let cid = c.connect();
    assert!(matches!(
        c.announce(cid, &hash, &info_hash(b'r', 1), 6881, 2, 1),
        UdpAnnounce::Peers { .. }
    ));

    t.open_window(60).await;
    t.wait_state(State::Ready, Duration::from_secs(10)).await;
    let r = c.announce(cid, &hash, &info_hash(b'r', 1), 6881, 0, 1);
    let UdpAnnounce::Error(msg) = r else {
        panic!("announce admitted during a reject window: {r:?}")
    };
    assert!(msg.contains("maintenance"), "{msg}");
    let secs: u64 = msg
        .rsplit("retry in ")
        .next()
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no retry time in {msg:?}"));
    assert!((50..=80).contains(&secs), "{msg}");
    // Connect and scrape stay open.
    let cid2 = c.connect();
    assert_eq!(c.scrape(cid2, &[hash]).unwrap(), vec![(0, 0, 1)]);

    t.abort().await;
    t.wait_state(State::Idle, Duration::from_secs(10)).await;
    // The id from before the window still works.
    assert!(matches!(
        c.announce(cid, &hash, &info_hash(b'r', 1), 6881, 0, 1),
        UdpAnnounce::Peers { leechers: 1, .. }
    ));
    t.stop();
}

#[tokio::test]
async fn defer_writes_window_answers_udp_and_persists_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "defer-writes"), &["127.0.0.1:0"]),
    );
    let hash = info_hash(b'D', 1);
    let mut seeder = UdpClient::new(t.udp[0]);
    let cid_s = seeder.connect();
    seeder.announce(cid_s, &hash, &info_hash(b's', 1), 6881, 2, 0);

    t.open_window(60).await;
    t.wait_state(State::Ready, Duration::from_secs(10)).await;
    let mut c = UdpClient::new(t.udp[0]);
    let cid = c.connect();
    let (_, seeders, peers) = peers_of(c.announce(cid, &hash, &info_hash(b'l', 1), 6882, 1, 0));
    assert_eq!(seeders, 2);
    assert_eq!(peers, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sqlite_counts(&db).get(&hex(&hash)),
        None,
        "written during the window"
    );

    t.abort().await;
    wait_until(Duration::from_secs(10), "deferred count written", || {
        sqlite_counts(&db).get(&hex(&hash)) == Some(&1)
    });
    t.stop();
}

/// A few hundred thousand datagrams from one socket, as fast as it can
/// send: malformed, forged and valid. The tracker keeps answering UDP and
/// HTTP, and its memory stays bounded.
#[tokio::test]
async fn flood_of_malformed_and_valid_packets_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), "reject"), &["127.0.0.1:0"]),
    );
    let server = t.udp[0];
    let mut c = UdpClient::new(server);
    let cid = c.connect();
    let hash = info_hash(b'F', 1);
    c.announce(cid, &hash, &info_hash(b'f', 0), 6881, 2, 1);
    let rss_before = vm_rss_kib(t.pid()).expect("VmRSS in /proc/PID/status");

    const PACKETS: u32 = 120_000;
    let started = Instant::now();
    let flood = tokio::task::spawn_blocking(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let mut sent = 0u32;
        for i in 0..PACKETS {
            let p = match i % 6 {
                0 => vec![0xFF; (i % 16) as usize],
                1 => header(MAGIC, 0, i),
                2 => header(i as u64, 7, i),
                3 => announce_packet(i as u64, i, &hash, &info_hash(b'x', i), 6881, 2, 1),
                4 => {
                    let mut p = header(i as u64, 2, i);
                    p.extend(std::iter::repeat_n(0xAB, 1500));
                    p
                }
                _ => {
                    let mut p =
                        announce_packet(cid, i, &hash, &info_hash(b'v', i % 50), 6881, 0, 1);
                    p.truncate(97 - (i % 3) as usize);
                    p
                }
            };
            // Replies pile up unread on this socket; the kernel drops them.
            if sock.send_to(&p, server).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    let sent = flood.await.unwrap();
    eprintln!(
        "flood: {sent} of {PACKETS} datagrams sent in {:?}",
        started.elapsed()
    );
    assert!(
        sent > PACKETS / 2,
        "the flood mostly failed to send: {sent}"
    );

    // Still serving both protocols.
    let cid = c.connect();
    let r = c.announce(cid, &hash, &info_hash(b'f', 1), 6882, 0, 1);
    assert!(matches!(r, UdpAnnounce::Peers { .. }), "{r:?}");
    let v = t
        .announce(&hash, &info_hash(b'h', 1), 7000, "&compact=1&left=5")
        .await;
    assert!(v.get("failure reason").is_none(), "{v:?}");
    // Truncated and forged announces created no peers: the swarm holds the
    // two UDP peers, the HTTP peer and nothing else.
    assert_eq!(c.scrape(cid, &[hash]).unwrap(), vec![(0, 0, 3)]);

    let rss_after = vm_rss_kib(t.pid()).expect("VmRSS in /proc/PID/status");
    eprintln!("tracker RSS: {rss_before} KiB before, {rss_after} KiB after the flood");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    t.stop();
}
