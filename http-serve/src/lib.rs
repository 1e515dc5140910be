//! The one HTTP/1 serve loop of the workspace.
//!
//! Every listener (the tracker's announce and health listeners, the
//! maintenance API, the sidecar's metrics) is served by [`serve`], because
//! `axum::serve` has neither a header-read timeout nor a back-off when
//! accepting fails for lack of descriptors. This crate depends on neither
//! the coordinator nor the sidecar, so it can be shared by both sides; it
//! also turns a panicking handler into a `500` JSON error (`catch_panic.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

mod catch_panic;
use catch_panic::{install_quiet_hook, CatchPanic};

/// The first pause after a failed accept for lack of descriptors.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between accepts while descriptors stay exhausted.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// A connection must deliver a complete request head within this time
    /// of starting to wait for one. hyper starts the timer when the
    /// connection opens and again after every response, so this is also
    /// the idle keep-alive timeout. It never cuts a request being answered.
    pub header_read_timeout: Duration,
}

impl Default for ServeOptions {
    /// A 10 s header-read (and idle keep-alive) timeout.
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, lets every connection finish its current request and returns
/// once all connections are closed.
///
/// Requests carry [`ConnectInfo<SocketAddr>`] with the peer's address.
/// A handler that panics is answered `500` with the project's JSON error
/// body (`{"code":"internal",…}`) and logged as one line, without a
/// backtrace; the connection and the process go on.
/// Accept failures for lack of descriptors or memory pause the loop
/// (100 ms doubling to 1 s) and are logged once per episode; other accept
/// failures concern one connection only and are skipped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{routing::get, Router};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let router = Router::new().route("/", get(|| async { "hi" }));
/// maintenance_http::serve(listener, router, async {}, Default::default())
///     .await
///     .unwrap();
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) -> io::Result<()> {
    install_quiet_hook();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    // Connections watch this to start their graceful shutdown; `serve`
    // waits until every connection has dropped its receiver.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut exhaustion = Exhaustion::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => {
                exhaustion.recovered(&listener);
                pair
            }
            Err(e) if is_resource_exhaustion(&e) => {
                let pause = exhaustion.failed(&listener, &e);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed for one connection");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            let mut router = router.clone();
            let (method, uri) = (req.method().clone(), req.uri().clone());
            let answer = async move {
                let response =
                    tower_service::Service::call(&mut router, req.map(axum::body::Body::new)).await;
                response.unwrap_or_else(|e| match e {})
            };
            let answer = CatchPanic::new(answer, method, uri);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => return log_connection_end(r),
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            log_connection_end(conn.await);
        });
    }
    drop(listener);
    drop(stop_rx);
    stop_tx.send_replace(true);
    stop_tx.closed().await;
    Ok(())
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts and resets are the client's business, not an operator's.
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// True when accepting failed because the process or the system ran out of
/// descriptors or socket memory: retrying at once would fail again.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// One episode of failed accepts: its back-off and its two log lines.
#[derive(Default)]
struct Exhaustion {
    failures: u64,
    pause: Duration,
}

impl Exhaustion {
    /// Records a failed accept and returns how long to pause.
    fn failed(&mut self, listener: &TcpListener, e: &io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(
                addr = %local(listener), error = %e,
                "cannot accept connections: out of descriptors; retrying with back-off \
                 until some are freed (raise the open-files limit if this recurs)"
            );
            self.pause = ACCEPT_BACKOFF_MIN;
        } else {
            self.pause = (self.pause * 2).min(ACCEPT_BACKOFF_MAX);
        }
        self.failures += 1;
        self.pause
    }

    /// Ends the episode, if any, after a successful accept.
    fn recovered(&mut self, listener: &TcpListener) {
        if self.failures > 0 {
            tracing::warn!(
                addr = %local(listener), failed_accepts = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a: SocketAddr| a.to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests;
