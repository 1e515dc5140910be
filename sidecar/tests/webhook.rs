//! Webhook notifications through a real local HTTP listener: failures are
//! always posted, successes only when asked, and the JSON names the event.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::*;

/// Accepts HTTP requests in a thread, sending each JSON body to the channel.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn failure_is_posted() {
    let dir = tempfile::tempdir().unwrap();
    let (url, rx) = receiver();
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path())
        .env("SQLITE_DATABASE_PATH", dir.path().join("missing.db"))
        .env("BACKUP_WEBHOOK_URL", &url)
        .arg("once"));
    assert_eq!(out.status.code(), Some(1));
    let body = rx.recv_timeout(Duration::from_secs(5)).expect("no webhook");
    assert_eq!(body["event"], "backup_failed");
    assert!(
        body["error"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
}

#[test]
fn success_is_posted_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    make_sqlite(&db, 3);
    let (url, rx) = receiver();
    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("b"))
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_WEBHOOK_URL", &url)
        .arg("once"));
    assert!(out.status.success());
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "success posted unasked"
    );

    let out = run(sidecar(None)
        .env("BACKUP_DIR", dir.path().join("b"))
        .env("SQLITE_DATABASE_PATH", &db)
        .env("BACKUP_WEBHOOK_URL", &url)
        .env("BACKUP_WEBHOOK_ON_SUCCESS", "true")
        .arg("once"));
    assert!(out.status.success());
    let body = rx.recv_timeout(Duration::from_secs(5)).expect("no webhook");
    assert_eq!(body["event"], "backup_succeeded");
    // `-once`, or `-once-2` when both runs fall in the same second.
    assert!(body["backup"].as_str().unwrap().contains("-once"), "{body}");
}
