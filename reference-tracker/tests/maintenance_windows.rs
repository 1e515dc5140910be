//! Both announce policies across ad hoc maintenance windows, against the
//! real binary and a real SQLite file: refusals while `reject` keeps the
//! gate closed, no refusal and no lost count under `defer-writes`, an
//! untouched and consistent database file while the window is `ready`, and
//! counts that survive a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use maintenance_proto::State;
use reference_tracker::bencode::Value;

const STATE_TIMEOUT: Duration = Duration::from_secs(15);

fn int(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("no integer {key:?} in {v:?}"))
}

/// Announces `event=completed` from `n` new peers; asserts each is answered.
async fn complete_many(t: &Tracker, hash: &[u8; 20], first_peer: u32, n: u32) {
    for i in first_peer..first_peer + n {
        let v = t
            .announce(
                hash,
                &info_hash(9, i),
                10_000 + (i % 50_000) as u16,
                "&left=0&event=completed&compact=1",
            )
            .await;
        assert!(
            v.get("failure reason").is_none(),
            "announce {i} refused: {v:?}"
        );
        assert_eq!(int(&v, "interval"), 120);
    }
}

fn set_flush_interval(config: &str, value: &str) -> String {
    config.replace(
        "flush_interval = \"100ms\"",
        &format!("flush_interval = \"{value}\""),
    )
}

/// Copies the database (and its WAL, if any) and checks the copy.
fn check_copy(db: &Path, into: &Path, hash: &[u8; 20], want: i64) {
    std::fs::copy(db, into.join("copy.db")).unwrap();
    let wal = db.with_file_name("tracker.db-wal");
    if wal.exists() {
        std::fs::copy(&wal, into.join("copy.db-wal")).unwrap();
    }
    let conn = rusqlite::Connection::open(into.join("copy.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let counts = sqlite_counts(&into.join("copy.db"));
    assert_eq!(counts.get(&hex(hash)).copied(), Some(want), "{counts:?}");
}

#[tokio::test]
async fn reject_policy_refuses_announces_and_quiesces_a_consistent_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    // A flush interval far beyond the test: only the quiesce hook can have
    // written the counts the copy must hold.
    let config = set_flush_interval(&sqlite_config(dir.path(), "reject"), "1h");
    let t = start(dir.path(), &config);
    let hash = info_hash(1, 77);
    complete_many(&t, &hash, 0, 7).await;
    assert_eq!(t.status().await.state, State::Idle);

    t.open_window(10).await;
    let st = t.wait_state(State::Ready, STATE_TIMEOUT).await;
    assert!(st.window_id.is_some());

    // Quiesced: the file alone is consistent and already holds every count.
    let copy_dir = tempfile::tempdir().unwrap();
    check_copy(&db, copy_dir.path(), &hash, 7);
    // The file is rewritten just after the state turns `ready` (on the
    // blocking pool), so it may lag the status by a moment.
    let ready_file = dir.path().join("ready.json");
    wait_until(STATE_TIMEOUT, "ready.json saying ready", || {
        let ready: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ready_file).unwrap()).unwrap();
        ready["ready"] == serde_json::json!(true)
    });

    // Announces are refused with a retry interval until the window's end.
    let v = t
        .announce(&hash, &info_hash(9, 100), 7000, "&left=0&event=completed")
        .await;
    let reason = v
        .get("failure reason")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("announce not refused: {v:?}"));
    assert!(reason.contains("maintenance"), "{reason}");
    let interval = int(&v, "interval");
    assert!((3..=13).contains(&interval), "interval {interval}");
    assert_eq!(int(&v, "min interval"), interval);
    assert_eq!(int(&v, "retry in"), 1);
    assert!(v.get("peers").is_none());

    // Scrape and health stay up; the refused completion was not counted.
    assert_eq!(t.scraped_downloaded(&hash).await, 7);
    let health = t
        .client
        .get(format!("http://{}/health_check", t.http))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    t.abort().await;
    t.wait_state(State::Idle, STATE_TIMEOUT).await;
    let v = t
        .announce(&hash, &info_hash(9, 100), 7000, "&left=0&event=completed")
        .await;
    assert!(v.get("failure reason").is_none(), "{v:?}");
    assert_eq!(int(&v, "complete"), 8);
    assert_eq!(t.scraped_downloaded(&hash).await, 8);
    let outcome = &t.status().await.last_outcomes[0];
    assert_eq!(outcome.outcome, maintenance_proto::Outcome::Aborted);

    // Graceful shutdown flushes the count the 1 h flusher never wrote.
    t.stop();
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(8));
}

#[tokio::test]
async fn reject_window_that_expires_reopens_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let hash = info_hash(1, 78);
    t.open_window(2).await;
    t.wait_state(State::Ready, STATE_TIMEOUT).await;
    let v = t.announce(&hash, &info_hash(9, 1), 7000, "&left=0").await;
    assert!(v.get("failure reason").is_some(), "{v:?}");
    t.wait_state(State::Idle, STATE_TIMEOUT).await;
    let v = t.announce(&hash, &info_hash(9, 1), 7000, "&left=0").await;
    assert!(v.get("failure reason").is_none(), "{v:?}");
    assert_eq!(int(&v, "complete"), 1);
    let outcome = &t.status().await.last_outcomes[0];
    assert_eq!(outcome.outcome, maintenance_proto::Outcome::Expired);
    t.stop();
}

#[tokio::test]
async fn defer_writes_answers_everything_and_loses_no_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(dir.path(), &sqlite_config(dir.path(), "defer-writes"));
    let hash = info_hash(1, 79);

    complete_many(&t, &hash, 0, 20).await;
    wait_until(Duration::from_secs(10), "20 counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(20)
    });

    t.open_window(30).await;
    t.wait_state(State::Ready, STATE_TIMEOUT).await;
    let before: Vec<_> = db_files(&db).iter().map(|p| fingerprint(p)).collect();
    assert!(before[0].is_some(), "database file missing while ready");

    // Every announce is answered during the window, counts accrue in memory.
    complete_many(&t, &hash, 20, 30).await;
    assert_eq!(t.scraped_downloaded(&hash).await, 50);
    // Several flush intervals pass: the flusher must keep its hands off.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(t.status().await.state.is_quiesced());
    let copy_dir = tempfile::tempdir().unwrap();
    check_copy(&db, copy_dir.path(), &hash, 20);
    let after: Vec<_> = db_files(&db).iter().map(|p| fingerprint(p)).collect();
    assert_eq!(before, after, "database files changed while ready");

    t.abort().await;
    t.wait_state(State::Idle, STATE_TIMEOUT).await;
    wait_until(Duration::from_secs(10), "deferred counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(50)
    });

    complete_many(&t, &hash, 50, 10).await;
    wait_until(Duration::from_secs(10), "60 counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(60)
    });
    t.stop();

    // A restart loads the counts back.
    let t = start(dir.path(), &sqlite_config(dir.path(), "defer-writes"));
    assert_eq!(t.scraped_downloaded(&hash).await, 60);
    let v = t
        .announce(&hash, &info_hash(9, 1000), 7000, "&left=5")
        .await;
    assert_eq!(int(&v, "incomplete"), 1);
    t.stop();
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(60));
}

#[tokio::test]
async fn sidecar_claim_and_release_resume_the_tracker_early() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let hash = info_hash(1, 80);
    complete_many(&t, &hash, 0, 3).await;

    t.open_window(30).await;
    let st = t.wait_state(State::Ready, STATE_TIMEOUT).await;
    let window_id = st.window_id.unwrap();
    let (code, body) = t
        .post_api(
            "claim",
            serde_json::json!({"window_id": window_id, "sidecar_id": "test"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(t.status().await.state, State::Claimed);

    // What a sidecar does while it holds the lease: copy the quiesced file.
    let copy_dir = tempfile::tempdir().unwrap();
    check_copy(&db, copy_dir.path(), &hash, 3);
    let v = t.announce(&hash, &info_hash(9, 50), 7000, "&left=0").await;
    assert!(v.get("failure reason").is_some(), "{v:?}");

    // Release ("snapshot taken"): the tracker serves again before `complete`.
    let (code, body) = t
        .post_api("release", serde_json::json!({"window_id": window_id}))
        .await;
    assert_eq!(code, 200, "{body}");
    t.wait_state(State::Idle, STATE_TIMEOUT).await;
    let v = t
        .announce(&hash, &info_hash(9, 50), 7000, "&left=0&event=completed")
        .await;
    assert!(v.get("failure reason").is_none(), "{v:?}");
    wait_until(Duration::from_secs(10), "4 counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(4)
    });
    let (code, body) = t
        .post_api(
            "complete",
            serde_json::json!({"window_id": window_id, "report": {"artifacts": [], "durations_secs": {}}}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let outcome = &t.status().await.last_outcomes[0];
    assert_eq!(outcome.outcome, maintenance_proto::Outcome::Completed);
    t.stop();
}

#[tokio::test]
async fn a_lost_lease_resumes_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    t.open_window(60).await;
    let st = t.wait_state(State::Ready, STATE_TIMEOUT).await;
    let (code, body) = t
        .post_api(
            "claim",
            serde_json::json!({"window_id": st.window_id.unwrap(), "sidecar_id": "silent"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    // No heartbeat: the 2 s lease runs out long before the 60 s window.
    t.wait_state(State::Idle, Duration::from_secs(10)).await;
    let v = t
        .announce(&info_hash(1, 81), &info_hash(9, 1), 7000, "&left=0")
        .await;
    assert!(v.get("failure reason").is_none(), "{v:?}");
    let outcome = &t.status().await.last_outcomes[0];
    assert_eq!(outcome.outcome, maintenance_proto::Outcome::Expired);
    t.stop();
}

#[tokio::test]
async fn sigterm_during_a_window_persists_deferred_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let t = start(dir.path(), &sqlite_config(dir.path(), "defer-writes"));
    let hash = info_hash(1, 82);
    complete_many(&t, &hash, 0, 4).await;
    t.open_window(60).await;
    t.wait_state(State::Ready, STATE_TIMEOUT).await;
    complete_many(&t, &hash, 4, 9).await;
    t.stop();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(13));
    let ready: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ready.json")).unwrap()).unwrap();
    assert_eq!(ready["ready"], serde_json::json!(false), "{ready}");
}

#[tokio::test]
async fn sigkill_during_a_window_loses_no_acknowledged_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tracker.db");
    let config = sqlite_config(dir.path(), "defer-writes");
    let t = start(dir.path(), &config);
    let hash = info_hash(1, 83);
    complete_many(&t, &hash, 0, 4).await;
    wait_until(Duration::from_secs(10), "4 counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(4)
    });
    t.open_window(60).await;
    t.wait_state(State::Ready, STATE_TIMEOUT).await;
    complete_many(&t, &hash, 4, 25).await;
    assert_eq!(t.scraped_downloaded(&hash).await, 29);
    // More than the journal's sync interval, then SIGKILL (dropping the
    // handle kills the process): no chance to flush.
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(t);
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(4));

    // The restart replays the journal: every acknowledged completion counts.
    let t = start(dir.path(), &config);
    assert_eq!(t.scraped_downloaded(&hash).await, 29);
    assert!(t.logs().contains("replayed completions"), "{}", t.logs());
    wait_until(Duration::from_secs(10), "29 counts in the db", || {
        sqlite_counts(&db).get(&hex(&hash)).copied() == Some(29)
    });
    // Killed again once the replayed counts are in the database: they are
    // not counted a second time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(t);
    let t = start(dir.path(), &config);
    assert_eq!(t.scraped_downloaded(&hash).await, 29);
    complete_many(&t, &hash, 29, 1).await;
    t.stop();
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(30));
    let t = start(dir.path(), &config);
    assert_eq!(t.scraped_downloaded(&hash).await, 30);
    t.stop();
    assert_eq!(sqlite_counts(&db).get(&hex(&hash)).copied(), Some(30));
    // A clean stop leaves a journal with nothing to replay: its header only.
    let journal = dir.path().join("tracker.db.completions");
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 16);
}
