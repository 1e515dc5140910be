//! The maintenance API's status long-poll against hostile `wait` values,
//! on the real binary's listener (the coordinator's own `serve`): every
//! value gets a JSON answer, 400 for what is not a number of seconds and
//! 200 for the rest (a huge wait is clamped, not converted as is), on one
//! kept connection, and nothing in the log says a handler panicked.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use maintenance_proto::{ErrorBody, ErrorCode, StatusResponse};

/// One answer read from a kept HTTP/1.1 connection: status and body.
fn get(conn: &mut BufReader<TcpStream>, path: &str) -> (u16, String) {
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: tracker\r\n\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    conn.read_line(&mut line)
        .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
    assert!(line.starts_with("HTTP/1.1 "), "{path}: {line:?}");
    let code: u16 = line[9..12].parse().unwrap();
    let mut length = None;
    let mut json = false;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
        json |= header == "content-type: application/json";
    }
    assert!(json, "{path}: not a JSON answer");
    let mut body = vec![0; length.expect("content-length")];
    conn.read_exact(&mut body).unwrap();
    (code, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn hostile_wait_values_get_a_json_answer_and_never_panic_a_handler() {
    let dir = tempfile::tempdir().unwrap();
    let t = start(dir.path(), &sqlite_config(dir.path(), "reject"));
    let version = t.status().await.version;
    let addr = t.maintenance.unwrap();
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let status = "/maintenance/v1/status";

    // Not a number of seconds from 0 up: 400 with the JSON error body.
    for wait in [
        "-1", "-1e20", "NaN", "nan", "inf", "-inf", "infinity", "1e400", "-0.5", "soon",
    ] {
        let (code, body) = get(&mut conn, &format!("{status}?wait={wait}"));
        assert_eq!(code, 400, "wait={wait}: {body}");
        let err: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "wait={wait}: {body}");
    }
    // Numbers beyond any Duration are clamped to the longest wait; with a
    // `since` that is already stale the answer comes at once.
    for wait in ["1e20", "1.8446744073709552e19", "1e308", "0", "-0"] {
        let (code, body) = get(
            &mut conn,
            &format!("{status}?wait={wait}&since={}", version + 1000),
        );
        assert_eq!(code, 200, "wait={wait}: {body}");
        let s: StatusResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(s.version, version, "wait={wait}");
    }
    // A real long-poll of wait=1e20 is woken by a change.
    let t = std::sync::Arc::new(t);
    let opener = {
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            t.open_window(60).await;
        })
    };
    let began = Instant::now();
    let path = format!("{status}?wait=1e20&since={version}");
    let (code, body) = tokio::task::spawn_blocking(move || get(&mut conn, &path))
        .await
        .unwrap();
    opener.await.unwrap();
    assert_eq!(code, 200, "{body}");
    let s: StatusResponse = serde_json::from_str(&body).unwrap();
    assert!(s.version > version, "{body}");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );

    let logs = t.logs();
    assert!(
        !logs.to_lowercase().contains("panic"),
        "a handler panicked:\n{logs}"
    );
}
