//! Every listener of a real tracker process against slow and idle clients:
//! a partial request is dropped after the header-read timeout, and running
//! out of descriptors pauses the listeners without stopping them for good
//! or logging a line per failed accept.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use maintenance_e2e::*;

/// The header-read timeout of `maintenance_http::ServeOptions::default()`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends half a request head and returns what came back and after how long
/// the server closed the connection.
fn partial_request(addr: SocketAddr) -> (String, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HEADER_TIMEOUT * 3)).unwrap();
    let began = Instant::now();
    s.write_all(b"GET /health_check HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (String::from_utf8_lossy(&got).into_owned(), began.elapsed())
}

#[test]
fn a_partial_request_is_dropped_after_the_header_timeout_on_every_listener() {
    let dir = tempdir();
    let t = Tracker::start(dir.path(), &TrackerConfig::sqlite(dir.path(), "reject"));
    let addrs = [t.http, t.health, t.maintenance.unwrap()];
    let probes: Vec<_> = addrs
        .iter()
        .map(|&a| std::thread::spawn(move || partial_request(a)))
        .collect();
    for (addr, probe) in addrs.iter().zip(probes) {
        let (answer, held) = probe.join().unwrap();
        assert!(
            answer.is_empty(),
            "{addr} answered a partial request: {answer}"
        );
        assert!(
            held >= HEADER_TIMEOUT - Duration::from_secs(1) && held < HEADER_TIMEOUT * 2,
            "{addr} held a partial request for {held:?}"
        );
    }
    assert!(t.healthy());
}

/// Lowers the tracker's open-files limit (soft and hard) to `n`.
fn limit_open_files(pid: u32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Log lines about failed accepts (one per episode is the contract). Other
/// parts may log their own EMFILE once (the completion journal's
/// compaction does); they are not the listeners' lines.
fn exhaustion_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("cannot accept connections") && l.contains("Too many open files"))
        .count()
}

/// The most lines allowed over `held`: one per episode, and an episode
/// lasts at least until held connections time out and free descriptors.
fn allowed_lines(held: Duration) -> usize {
    2 + (held.as_secs_f64() / (HEADER_TIMEOUT.as_secs_f64() / 2.0)) as usize
}

#[test]
fn idle_connections_beyond_the_descriptor_limit_do_not_stop_the_listeners() {
    let dir = tempdir();
    let t = Tracker::start(dir.path(), &TrackerConfig::sqlite(dir.path(), "reject"));
    let hash = info_hash(0x5e, 1);
    t.announce_ok(&hash, 1, "completed");
    limit_open_files(t.proc.pid(), 64);

    // 300 idle connections, held for 6 s: a few dozen are accepted, the
    // rest wait in the backlog while accept fails with EMFILE.
    let began = Instant::now();
    let release = began + Duration::from_secs(6);
    let addr = t.http;
    let clients: Vec<_> = (0..300)
        .map(|_| {
            std::thread::spawn(move || {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
                std::thread::sleep(release.saturating_duration_since(Instant::now()));
                s.is_ok()
            })
        })
        .collect();
    std::thread::sleep(release.saturating_duration_since(Instant::now()));
    let held = began.elapsed();
    let during = exhaustion_lines(&t.proc.log_text());
    assert!(
        during >= 1 && during <= allowed_lines(held),
        "want one line per exhaustion episode, got {during} in {held:?}:\n{}",
        t.proc.log_text()
    );
    let connected = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert!(connected >= 150, "only {connected} idle clients connected");
    wait_until(
        Duration::from_secs(10),
        "announce after the idle clients left",
        || {
            matches!(
                http(
                    t.http,
                    "GET",
                    &announce_path(&hash, 2, "completed"),
                    None,
                    None
                ),
                Ok((200, _))
            )
        },
    );
    assert!(t.healthy(), "health listener");
    assert_eq!(t.api().status().state, maintenance_proto::State::Idle);
    assert_eq!(t.scrape_downloaded(&[hash]), vec![2]);
    assert!(
        t.proc.log_text().contains("accepting connections again"),
        "{}",
        t.proc.log_text()
    );
    // After the release the backlog drains in batches of about the free
    // descriptors (64 minus what the tracker holds): each batch can start
    // one more episode. A line per failed accept would be thousands.
    let drained_batches = 300 / 32;
    let after = exhaustion_lines(&t.proc.log_text());
    assert!(
        after <= allowed_lines(began.elapsed()) + drained_batches,
        "{after} exhaustion lines:\n{}",
        t.proc.log_text()
    );
}
