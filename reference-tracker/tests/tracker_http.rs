//! Announce, scrape and health check over HTTP against the real binary:
//! every field decoded and checked, both peer encodings, and the failure
//! reasons for bad requests.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use common::*;
use reference_tracker::bencode::Value;

fn int(v: &Value, key: &str) -> i64 {
    v.get(key)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("no integer {key:?} in {v:?}"))
}

fn failure_reason(v: &Value) -> String {
    v.get("failure reason")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no failure reason in {v:?}"))
        .to_owned()
}

#[tokio::test]
async fn announce_returns_dict_and_compact_peers() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let hash = info_hash(1, 1);
    let seeder = info_hash(2, 1);
    let leecher = info_hash(2, 2);

    let first = t
        .announce(
            &hash,
            &seeder,
            6881,
            "&uploaded=10&downloaded=0&left=0&event=started",
        )
        .await;
    assert_eq!(int(&first, "interval"), 120);
    assert_eq!(int(&first, "min interval"), 60);
    assert_eq!(int(&first, "complete"), 1);
    assert_eq!(int(&first, "incomplete"), 0);
    assert_eq!(first.get("peers"), Some(&Value::List(vec![])));
    assert!(first.get("failure reason").is_none());

    // Dictionary form: the other peer with its raw id, ip and port.
    let dict_form = t
        .announce(&hash, &leecher, 51413, "&left=1000&event=started&compact=0")
        .await;
    assert_eq!(int(&dict_form, "complete"), 1);
    assert_eq!(int(&dict_form, "incomplete"), 1);
    let peers = dict_form.get("peers").and_then(Value::as_list).unwrap();
    assert_eq!(peers.len(), 1);
    let p = &peers[0];
    assert_eq!(
        p.get("peer id").and_then(Value::as_bytes),
        Some(&seeder[..])
    );
    assert_eq!(p.get("ip").and_then(Value::as_str), Some("127.0.0.1"));
    assert_eq!(p.get("port").and_then(Value::as_int), Some(6881));
    assert_eq!(p.as_dict().unwrap().len(), 3);

    // Compact form (BEP 23): 6 bytes, IPv4 then big-endian port.
    let compact = t
        .announce(&hash, &leecher, 51413, "&left=1000&compact=1")
        .await;
    let bytes = compact.get("peers").and_then(Value::as_bytes).unwrap();
    let mut want = Ipv4Addr::LOCALHOST.octets().to_vec();
    want.extend_from_slice(&6881u16.to_be_bytes());
    assert_eq!(bytes, &want[..]);
    assert_eq!(int(&compact, "complete"), 1);
    assert_eq!(int(&compact, "incomplete"), 1);

    // numwant caps the list; no_peer_id drops the id.
    let none = t
        .announce(&hash, &leecher, 51413, "&left=1000&compact=1&numwant=0")
        .await;
    assert_eq!(none.get("peers").and_then(Value::as_bytes), Some(&[][..]));
    let no_id = t
        .announce(&hash, &leecher, 51413, "&left=1000&no_peer_id=1")
        .await;
    let p = &no_id.get("peers").and_then(Value::as_list).unwrap()[0];
    assert!(p.get("peer id").is_none());

    // Stopped leaves the swarm.
    let stopped = t
        .announce(&hash, &seeder, 6881, "&left=0&event=stopped")
        .await;
    assert_eq!(int(&stopped, "complete"), 0);
    assert_eq!(int(&stopped, "incomplete"), 1);
    t.stop();
}

#[tokio::test]
async fn scrape_reports_every_requested_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let a = info_hash(1, 10);
    let b = info_hash(1, 11);
    let unknown = info_hash(1, 12);
    t.announce(&a, &info_hash(2, 1), 1000, "&left=0&event=completed")
        .await;
    t.announce(&a, &info_hash(2, 2), 1001, "&left=0&event=completed")
        .await;
    t.announce(&a, &info_hash(2, 3), 1002, "&left=5&event=started")
        .await;
    t.announce(&b, &info_hash(2, 4), 1003, "&left=5").await;

    let v = t.scrape(&[a, b, unknown]).await;
    let files = v.get("files").and_then(Value::as_dict).unwrap();
    assert_eq!(files.len(), 3);
    let check = |h: &[u8; 20], complete, downloaded, incomplete| {
        let f = files
            .get(&h[..])
            .unwrap_or_else(|| panic!("no entry in {v:?}"));
        assert_eq!(int(f, "complete"), complete, "{f:?}");
        assert_eq!(int(f, "downloaded"), downloaded, "{f:?}");
        assert_eq!(int(f, "incomplete"), incomplete, "{f:?}");
        assert_eq!(f.as_dict().unwrap().len(), 3);
    };
    check(&a, 2, 2, 1);
    check(&b, 0, 0, 1);
    check(&unknown, 0, 0, 0);

    let missing = t.get_bencode("/scrape").await;
    assert_eq!(failure_reason(&missing), "missing param info_hash");
    let short = t.get_bencode("/scrape?info_hash=abc").await;
    assert!(failure_reason(&short).starts_with("invalid param info_hash"));
    t.stop();
}

#[tokio::test]
async fn bad_announces_get_a_failure_reason() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let h = urlencode(&info_hash(1, 1));
    let p = urlencode(&info_hash(2, 1));
    let cases = [
        (
            format!("/announce?peer_id={p}&port=1"),
            "missing param info_hash",
        ),
        (
            format!("/announce?info_hash=%00%01&peer_id={p}&port=1"),
            "invalid param info_hash",
        ),
        (
            format!("/announce?info_hash={h}&port=1"),
            "missing param peer_id",
        ),
        (
            format!("/announce?info_hash={h}&peer_id=short&port=1"),
            "invalid param peer_id",
        ),
        (
            format!("/announce?info_hash={h}&peer_id={p}"),
            "missing param port",
        ),
        (
            format!("/announce?info_hash={h}&peer_id={p}&port=99999"),
            "invalid param port",
        ),
        (
            format!("/announce?info_hash={h}&peer_id={p}&port=abc"),
            "invalid param port",
        ),
        (
            format!("/announce?info_hash={h}&peer_id={p}&port=1&event=bogus"),
            "invalid param event",
        ),
        (
            format!("/announce?info_hash=%zz&peer_id={p}&port=1"),
            "invalid param info_hash",
        ),
        ("/announce".to_owned(), "missing param info_hash"),
    ];
    for (path, want) in cases {
        let v = t.get_bencode(&path).await;
        let reason = failure_reason(&v);
        assert!(
            reason.starts_with(want),
            "{path}: got {reason:?}, want {want:?}"
        );
        assert_eq!(v.as_dict().unwrap().len(), 1, "{v:?}");
    }
    t.stop();
}

#[tokio::test]
async fn health_check_answers_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    for addr in [t.http, t.health] {
        let resp = t
            .client
            .get(format!("http://{addr}/health_check"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "Ok"}));
    }
    t.stop();
}

#[tokio::test]
async fn a_missing_database_folder_is_created_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("storage/tracker/lib/database/sqlite3.db");
    let config = sqlite_config(dir.path(), "reject").replace(
        &format!("path = \"{}\"", dir.path().join("tracker.db").display()),
        &format!("path = \"{}\"", db.display()),
    );
    assert!(config.contains("storage/tracker/lib"), "{config}");
    let t = start(dir.path(), &config);
    let resp = t
        .client
        .get(format!("http://{}/health_check", t.health))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(db.parent().unwrap().is_dir());
    t.stop();
}

#[test]
fn help_and_bad_config_are_answered() {
    let bin = env!("CARGO_BIN_EXE_reference-tracker");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("--config"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[core.database]\ndriver = \"postgres\"\n").unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("core.database.driver"), "{err}");
    assert!(err.contains("postgres"), "{err}");

    std::fs::write(&cfg, "[maintenance]\nannounce_policy = \"sometimes\"\n").unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("announce_policy"), "{err}");

    let out = Command::new(bin)
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("missing.toml"));
}

/// A SIGTERM that arrives as soon as the first listener is announced is a
/// clean shutdown (exit 0, counts flushed), never the signal's default
/// action: the handlers are installed before anything is served.
#[test]
fn sigterm_right_after_the_first_listener_is_a_clean_shutdown() {
    let bin = env!("CARGO_BIN_EXE_reference-tracker");
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tracker.toml");
        std::fs::write(&cfg, sqlite_config(dir.path(), "reject")).unwrap();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.contains(" listening on "), "{line}");
        // SAFETY: the child is not reaped yet, so its pid is still its own.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "round {round}: exited with {:?}; log:\n{log}",
            out.status
        );
        assert!(log.contains("counts flushed"), "round {round}: {log}");
    }
}

/// Two instances on one host with the same default configuration (the
/// journal defaults to `<database>.completions`): the second refuses to
/// start with a message naming the journal and the fix.
#[tokio::test]
async fn a_second_tracker_on_the_same_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = sqlite_config(dir.path(), "reject");
    let first = start(dir.path(), &config);
    let journal = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("tracker.db.completions");
    assert!(
        first.logs().contains(&journal.display().to_string()),
        "the absolute journal path is logged:\n{}",
        first.logs()
    );
    let refusal = expect_refusal(dir.path(), &config, &[]);
    // The whole message, single-spaced, as the README quotes it.
    let j = journal.display();
    let message = format!(
        "completion journal {j} is in use by another tracker process (it holds {j}.lock); \
         every tracker instance needs a journal of its own: set [core.database] \
         completion_journal to a different file for each instance (or start each from \
         its own folder), or stop the other process"
    );
    assert!(
        refusal.contains(&message),
        "expected {message:?} in:\n{refusal}"
    );
    let line = refusal
        .lines()
        .find(|l| l.contains("is in use by another tracker"))
        .unwrap();
    assert!(!line.contains("  "), "a run of spaces in {line:?}");
    first.stop();
}
