//! Real TCP connections against [`serve`]: timeouts, long requests, peer
//! addresses and shutdown.

use std::time::Instant;

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const SHORT: Duration = Duration::from_millis(300);

async fn start(router: Router) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    let options = ServeOptions {
        header_read_timeout: SHORT,
    };
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        serve(listener, router, stop, options).await.unwrap();
    });
    (addr, tx, task)
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(SHORT * 3).await;
                "slow"
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
}

/// Reads until the peer closes; returns what was read and when it closed.
async fn read_to_close(s: &mut TcpStream) -> (String, Instant) {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after 5 s"),
        }
    }
    (String::from_utf8_lossy(&all).into_owned(), Instant::now())
}

#[tokio::test]
async fn a_partial_request_head_is_dropped_after_the_timeout() {
    let (addr, _stop, _task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let began = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (body, closed) = read_to_close(&mut s).await;
    let held = closed - began;
    assert!(
        !body.contains("hello"),
        "answered a partial request: {body}"
    );
    assert!(
        held >= SHORT - Duration::from_millis(50),
        "closed too early: {held:?}"
    );
    assert!(held < SHORT * 5, "held for {held:?}");
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_timeout() {
    let (addr, _stop, _task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let began = Instant::now();
    let (_, closed) = read_to_close(&mut s).await;
    assert!(closed - began < SHORT * 5);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let (addr, _stop, _task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let answered = Instant::now();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("hello"));
    let (_, closed) = read_to_close(&mut s).await;
    let idle = closed - answered;
    assert!(idle >= SHORT - Duration::from_millis(50), "{idle:?}");
    assert!(idle < SHORT * 5, "{idle:?}");
}

#[tokio::test]
async fn a_request_answered_slower_than_the_timeout_is_not_cut() {
    let (addr, _stop, _task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (body, _) = read_to_close(&mut s).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("slow"), "{body}");
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let (addr, _stop, _task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (body, _) = read_to_close(&mut s).await;
    assert!(body.ends_with(&me.to_string()), "{body}");
}

#[tokio::test]
async fn shutdown_lets_the_current_request_finish_then_returns() {
    let (addr, stop, task) = start(app()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send_replace(true);
    let (body, _) = read_to_close(&mut s).await;
    assert!(body.ends_with("slow"), "{body}");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[test]
fn exhaustion_backs_off_from_100ms_to_1s_and_resets() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(is_resource_exhaustion(&e));
        assert!(!is_resource_exhaustion(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        let mut x = Exhaustion::default();
        let pauses: Vec<u64> = (0..7)
            .map(|_| x.failed(&listener, &e).as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        x.recovered(&listener);
        assert_eq!(x.failed(&listener, &e), ACCEPT_BACKOFF_MIN);
    });
}

/// Serves a route that panics, asks it three times on one kept connection,
/// and expects a `500` with the JSON error body each time. Run in a child
/// process by [`a_panicking_handler_answers_500_json_and_logs_one_line`],
/// which reads its log.
#[tokio::test]
#[ignore = "run as a child process by a_panicking_handler_answers_500_json_and_logs_one_line"]
async fn panicking_handler_child() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let router = app().route(
        "/boom",
        get(|| async {
            let wait: f64 = 1e20;
            let _ = std::time::Duration::from_secs_f64(wait);
            "unreachable"
        }),
    );
    let (addr, _stop, _task) = start(router).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /boom?secret=x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let err: maintenance_proto::ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(err.code, maintenance_proto::ErrorCode::Internal);
    }
    // The connection and the server survive.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (body, _) = read_to_close(&mut s).await;
    assert!(body.ends_with("hello"), "{body}");
    eprintln!("CHILD-DONE");
}

#[test]
fn a_panicking_handler_answers_500_json_and_logs_one_line() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::panicking_handler_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("RUST_BACKTRACE", "full")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stderr.contains("CHILD-DONE"),
        "child failed:\n{stdout}\n{stderr}"
    );
    let panic_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(panic_lines.len(), 3, "one line per panic:\n{stderr}");
    for line in &panic_lines {
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("path=/boom"), "{line}");
        assert!(!line.contains("secret"), "the query is not logged: {line}");
        assert!(line.contains("cannot convert float seconds"), "{line}");
    }
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("RUST_BACKTRACE"),
        "a backtrace was printed:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        4,
        "only the three panic lines and the child's end:\n{stderr}"
    );
}
