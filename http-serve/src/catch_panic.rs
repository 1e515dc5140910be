//! A request handler that panics must not take its connection down, nor
//! print a backtrace per request: an unauthenticated client could fill the
//! log. [`CatchPanic`] wraps the future answering one request; a panic in it
//! becomes a `500` with the JSON error body every API of the project uses
//! (`{"code":"internal","message":…}`), logged as one line.
//!
//! The process's panic hook runs before any unwinding can be caught, and the
//! default one prints the message (and, with `RUST_BACKTRACE`, a backtrace)
//! to stderr. [`install_quiet_hook`] wraps the hook once per process: while
//! a thread polls a request future it only records the message and its
//! location for [`CatchPanic`] to log; every other panic goes to the
//! previous hook unchanged.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maintenance_proto::{ErrorBody, ErrorCode};

thread_local! {
    /// True while this thread polls a request future.
    static IN_REQUEST: Cell<bool> = const { Cell::new(false) };
    /// The last panic caught on this thread while polling one: message and location.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps the process's panic hook (once) so that panics inside a request
/// future are recorded instead of printed.
pub(crate) fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_REQUEST.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("{}{location}", panic_message(info.payload()));
                CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

/// The future answering one request, with panics turned into a `500`.
pub(crate) struct CatchPanic<F> {
    inner: Pin<Box<F>>,
    method: Method,
    uri: Uri,
}

impl<F> CatchPanic<F> {
    /// Wraps `inner`, which answers `method uri`.
    pub(crate) fn new(inner: F, method: Method, uri: Uri) -> Self {
        CatchPanic {
            inner: Box::pin(inner),
            method,
            uri,
        }
    }
}

impl<F: Future<Output = Response>> Future for CatchPanic<F> {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let was = IN_REQUEST.with(|f| f.replace(true));
        let polled = catch_unwind(AssertUnwindSafe(|| self.inner.as_mut().poll(cx)));
        IN_REQUEST.with(|f| f.set(was));
        match polled {
            Ok(poll) => poll,
            Err(payload) => {
                let what = CAUGHT
                    .with(|c| c.borrow_mut().take())
                    .unwrap_or_else(|| panic_message(payload.as_ref()));
                // The path only: a query may carry anything a client sent.
                tracing::error!(
                    method = %self.method, path = %self.uri.path(), panic = %what,
                    "request handler panicked; answered 500"
                );
                Poll::Ready(internal_error())
            }
        }
    }
}

/// The `500` answered for a panicked handler.
fn internal_error() -> Response {
    let body = ErrorBody::new(
        ErrorCode::Internal,
        "internal error: the request could not be answered; the server logged the cause",
    );
    let json = serde_json::to_vec(&body).unwrap_or_default();
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}
