//! A cancellation flag shared between the heartbeat task and the engines.
//!
//! When the lease is lost (or, in the online mode, the WAL grows past its
//! limit) the backup must stop at once and publish nothing; the engines'
//! copy loops check this flag between chunks. A cancellation may carry its
//! reason, which the error then names.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    reason: Mutex<Option<String>>,
}

/// Cheaply clonable flag; all clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Inner>);

impl CancelToken {
    /// A flag that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
    }

    /// Requests cancellation for `reason` (the first reason given wins),
    /// which the error of [`CancelToken::check`] then carries.
    pub fn cancel_because(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.0.reason.lock() {
            r.get_or_insert_with(|| reason.into());
        }
        self.cancel();
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// An error when cancelled, for `?` in copy loops.
    pub fn check(&self) -> std::io::Result<()> {
        if !self.is_cancelled() {
            return Ok(());
        }
        let reason = self.0.reason.lock().ok().and_then(|r| r.clone());
        Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            match reason {
                Some(why) => format!("backup cancelled: {why}"),
                None => "backup cancelled (lease lost or shutdown)".to_owned(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_named() {
        let t = CancelToken::new();
        assert!(t.check().is_ok());
        let clone = t.clone();
        clone.cancel_because("the WAL grew past 1 MiB");
        t.cancel_because("something later");
        let e = t.check().unwrap_err().to_string();
        assert!(e.contains("the WAL grew past 1 MiB"), "{e}");
        assert!(CancelToken::new().check().is_ok());
    }
}
