//! A real BitTorrent client library (libtorrent, through its Debian Python
//! binding `python3-libtorrent`) announces to the real binary: a seeder and
//! a leecher find each other only through the tracker, transfer a file, and
//! scrape then reports the completion. Over UDP (BEP 15) the same happens
//! across maintenance windows: under `reject` the client sees the
//! maintenance error and recovers after the window; under `defer-writes` it
//! downloads during the window. Skipped when the binding is missing.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// A Python interpreter that can import libtorrent.
fn python_with_libtorrent() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import libtorrent"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn libtorrent_seeder_and_leecher_meet_through_the_tracker() {
    let Some(python) = python_with_libtorrent() else {
        eprintln!("skipping: python3-libtorrent is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(dir.path(), &sqlite_config(dir.path(), "defer-writes"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libtorrent_smoke.py");
    let url = format!("http://{}", t.http);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(url).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent smoke test failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("scrape reports the completion"), "{stdout}");
    t.stop();
    // The completion reached the database (libtorrent 2 makes hybrid
    // torrents, so it may announce under the v1 and the v2 hash).
    let counts = sqlite_counts(&db);
    assert!(
        !counts.is_empty() && counts.values().all(|&n| n == 1),
        "{counts:?}"
    );
}

/// Runs `scripts/libtorrent_udp.py MODE udp://ADDR` against a tracker with
/// policy `mode`, then checks that the leecher's completion reached the
/// database.
async fn libtorrent_over_udp(mode: &'static str) {
    let Some(python) = python_with_libtorrent() else {
        eprintln!("skipping: python3-libtorrent is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(
        dir.path(),
        &with_udp(&sqlite_config(dir.path(), mode), &["127.0.0.1:0"]),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libtorrent_udp.py");
    let url = format!("udp://{}/announce", t.udp[0]);
    let api = format!("http://{}/maintenance/v1", t.maintenance.unwrap());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(mode)
            .arg(url)
            .env("MAINTENANCE_API", api)
            .env("MAINTENANCE_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent UDP test ({mode}) failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("OK {mode}")), "{stdout}");
    // The leecher's completion, announced over UDP, reaches the database
    // while the tracker runs (libtorrent 2 may announce the v1 and the
    // truncated v2 hash of its hybrid torrent: each is counted once).
    wait_until(
        Duration::from_secs(10),
        "completion in the database",
        || {
            let counts = sqlite_counts(&db);
            !counts.is_empty() && counts.values().all(|&n| n == 1)
        },
    );
    t.stop();
}

#[tokio::test]
async fn libtorrent_over_udp_sees_the_reject_window_and_recovers() {
    libtorrent_over_udp("reject").await;
}

#[tokio::test]
async fn libtorrent_over_udp_keeps_getting_peers_through_defer_writes() {
    libtorrent_over_udp("defer-writes").await;
}
