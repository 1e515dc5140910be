//! "Acknowledged means durable": a tracker killed with SIGKILL under a
//! load of `completed` announces, in the middle of a `defer-writes` window
//! (every count only in memory and in the completion journal), loses none
//! of the completions it answered. Run five times, each kill at another
//! moment of the load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maintenance_e2e::*;
use maintenance_proto::State;

/// Threads sending `completed` announces of new peers on `hash`, each on
/// its own kept connection, until `stop`; counts the answered ones.
fn completions_load(
    addr: std::net::SocketAddr,
    hash: [u8; 20],
    threads: u32,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let Ok(mut conn) = KeepAlive::connect(addr) else {
                    return;
                };
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let path = announce_path(&hash, t << 20 | i, "completed");
                    match conn.get(&path) {
                        Ok((200, body)) if !body.windows(7).any(|w| w == b"failure") => {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok((code, body)) => panic!(
                            "announce refused: {code} {}",
                            String::from_utf8_lossy(&body)
                        ),
                        // The kill: this one was not answered.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

#[test]
fn sigkill_under_load_in_a_defer_writes_window_loses_no_acknowledged_completion() {
    let dir = tempdir();
    let d = dir.path();
    let config = TrackerConfig::sqlite(d, "defer-writes").fixed_ports();
    let mut t = Tracker::start(d, &config);
    let threads = 8;
    for round in 0..5u32 {
        let hash = info_hash(0xD0, round);
        t.api().open_window(120);
        t.wait_state(State::Ready, Duration::from_secs(15));
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicU64::new(0));
        let load = completions_load(t.http, hash, threads, stop.clone(), acknowledged.clone());
        // Kill at a different moment of the journal's rhythm each round.
        std::thread::sleep(Duration::from_millis(700 + 137 * round as u64));
        t.proc.sigkill();
        stop.store(true, Ordering::SeqCst);
        for h in load {
            h.join().unwrap();
        }
        let answered = acknowledged.load(Ordering::SeqCst);
        assert!(
            answered > 100,
            "round {round}: too little load ({answered})"
        );
        t = t.restart();
        let counted = t.scrape_downloaded(&[hash])[0] as u64;
        eprintln!("round {round}: {answered} acknowledged, {counted} counted after the restart");
        assert!(
            counted >= answered,
            "round {round}: {} acknowledged completions lost ({answered} answered, {counted} counted)",
            answered - counted
        );
        // At most the requests in flight at the kill were counted unanswered.
        assert!(
            counted <= answered + threads as u64,
            "round {round}: {counted} counted for {answered} answered"
        );
        // The replayed counts reach the database (before the next window
        // pauses writes again).
        wait_until(Duration::from_secs(60), "replayed counts flushed", || {
            sqlite_counts(&d.join("tracker.db"))
                .get(&hex(&hash))
                .copied()
                == Some(counted as i64)
        });
    }
    assert!(t.proc.terminate(Duration::from_secs(20)).success());
}
