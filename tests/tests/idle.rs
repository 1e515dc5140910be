//! An idle sidecar must idle. `maintenance-sidecar run` beside a real,
//! idle reference tracker is watched from the outside for more than 10 s:
//! its CPU time (`/proc/<pid>/stat`), the TCP connections it opens to the
//! maintenance API (`/proc/net/tcp`) and its log volume. Then the tracker
//! stops, and the timestamps of the sidecar's retry lines must follow the
//! documented backoff (1 s, 2 s, 4 s, 8 s, ... up to 30 s).
//!
//! Before the fix, the sidecar woke on inotify events caused by its own
//! reads of the ready file: a full core, ~580 new connections a second, and
//! with the tracker down a "retrying in 30 s" line that retried at once.

use std::time::{Duration, Instant};

use maintenance_e2e::*;

/// `(time, message)` of every JSON log line.
fn log_lines(text: &str) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let t = v["timestamp"].as_str()?.parse().ok()?;
            Some((t, v["message"].as_str()?.to_owned()))
        })
        .collect()
}

#[test]
fn idle_sidecar_sleeps_on_one_connection_and_backs_off_when_the_tracker_stops() {
    let dir = tempdir();
    let d = dir.path();
    let mut t = Tracker::start(d, &TrackerConfig::sqlite(d, "reject"));
    let maint = t.maintenance.unwrap();
    // A short long-poll, so that connection reuse shows within the run:
    // five polls in 10 s, all on one connection.
    let config = d.join("sidecar.toml");
    std::fs::write(&config, "[coordinator]\nlong_poll_secs = 2\n").unwrap();
    let mut env = sidecar_env(&t, &d.join("backups"));
    set_env(&mut env, "SIDECAR_CONFIG", &config.display().to_string());
    set_env(&mut env, "LOG_FORMAT", "json");

    let conns = ConnectionCounter::start(maint);
    let sidecar = spawn_sidecar(d, "idle", &env);
    wait_until(Duration::from_secs(10), "the sidecar waiting", || {
        sidecar
            .log_text()
            .contains("waiting for maintenance windows")
    });
    assert!(
        sidecar.log_text().contains("watching"),
        "the ready file is not watched, so the test would prove nothing:\n{}",
        sidecar.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));

    // Idle, tracker up.
    let pid = sidecar.pid();
    let cpu0 = cpu_time(pid).unwrap();
    let lines0 = log_lines(&sidecar.log_text()).len();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu = cpu_time(pid).unwrap() - cpu0;
    let elapsed = t0.elapsed();
    let opened = conns.finish();
    let log = sidecar.log_text();
    let new_lines = log_lines(&log).len() - lines0;
    eprintln!(
        "idle, tracker up, {elapsed:?}: cpu {cpu:?}, connections opened {opened}, log lines {new_lines}"
    );
    assert!(
        cpu < Duration::from_millis(200),
        "an idle sidecar used {cpu:?} of CPU in {elapsed:?}"
    );
    assert_eq!(
        opened, 1,
        "connections opened to the maintenance API (one kept long-poll connection expected)"
    );
    assert!(new_lines <= 2, "{new_lines} log lines while idle:\n{log}");
    assert_eq!(t.status().state, State::Idle);

    // Tracker down: the retries follow the backoff.
    let down_at = chrono::Utc::now();
    let cpu0 = cpu_time(pid).unwrap();
    t.proc.terminate(Duration::from_secs(10));
    let want = [1u64, 2, 4, 8, 16];
    let since_down = || -> Vec<_> {
        log_lines(&sidecar.log_text())
            .into_iter()
            .filter(|(t, _)| *t >= down_at)
            .collect()
    };
    let is_retry = |(_, m): &&(_, String)| m.contains("retrying in");
    // Retries at about 0, 1, 3, 7 and 15 s after the tracker went away.
    wait_until(Duration::from_secs(25), "five retries", || {
        since_down().iter().filter(is_retry).count() >= want.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_time(pid).unwrap() - cpu0;
    let lines = since_down();
    let retries: Vec<_> = lines.iter().filter(is_retry).collect();
    eprintln!("tracker down: cpu {cpu:?}, log lines {lines:#?}");
    assert!(
        cpu < Duration::from_millis(300),
        "a sidecar waiting for its coordinator used {cpu:?} of CPU"
    );
    assert_eq!(
        lines.len(),
        retries.len(),
        "one log line per retry and nothing else: {lines:#?}"
    );
    assert_eq!(retries.len(), want.len(), "{retries:#?}");
    for (i, pair) in retries.windows(2).enumerate() {
        let said = format!("retrying in {} s", want[i]);
        assert!(pair[0].1.contains(&said), "expected {said:?}: {pair:#?}");
        let gap = (pair[1].0 - pair[0].0).to_std().unwrap();
        let delay = Duration::from_secs(want[i]);
        assert!(
            gap >= delay - Duration::from_millis(50) && gap <= delay + Duration::from_millis(1500),
            "retry {} came {gap:?} after the previous one, announced {delay:?}: {retries:#?}",
            i + 1
        );
    }
    assert!(retries[0].1.contains("unreachable"), "{retries:#?}");
}
