//! A cancellation flag shared between the heartbeat task and the engines.
//!
//! When the lease is lost (or, in the online mode, the WAL grows past its
//! limit) the backup must stop at once and publish nothing; the engines'
//! copy loops check this flag between chunks. A cancellation may carry its
//! reason, which the error then names. A backup whose passes run side by
//! side gives them a [`CancelToken::child`]: cancelled by the lease like
//! its parent, and also by the first pass that fails, so the others stop
//! too without cancelling the whole run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    reason: Mutex<Option<String>>,
    parent: Option<CancelToken>,
}

/// Cheaply clonable flag; all clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Inner>);

impl CancelToken {
    /// A flag that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this one is, or on its own (which leaves this
    /// one untouched).
    pub fn child(&self) -> CancelToken {
        CancelToken(Arc::new(Inner {
            parent: Some(self.clone()),
            ..Inner::default()
        }))
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

    /// True once cancelled (or once an ancestor is).
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
            || self.0.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }

    /// Sleeps for `wait`, or less once cancelled (looked at every 50 ms).
    pub fn sleep(&self, wait: std::time::Duration) {
        let until = std::time::Instant::now() + wait;
        while !self.is_cancelled() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
        }
    }

    /// The reason given with the cancellation, this token's or an ancestor's.
    fn reason(&self) -> Option<String> {
        let own = self.0.reason.lock().ok().and_then(|r| r.clone());
        own.or_else(|| self.0.parent.as_ref().and_then(|p| p.reason()))
    }

    /// An error when cancelled, for `?` in copy loops.
    pub fn check(&self) -> std::io::Result<()> {
        if !self.is_cancelled() {
            return Ok(());
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            match self.reason() {
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
    fn a_sleep_ends_early_once_cancelled() {
        let t = CancelToken::new();
        let started = std::time::Instant::now();
        t.sleep(std::time::Duration::from_millis(120));
        assert!(started.elapsed() >= std::time::Duration::from_millis(120));
        let other = t.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            other.cancel();
        });
        let started = std::time::Instant::now();
        t.sleep(std::time::Duration::from_secs(30));
        canceller.join().unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

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

    #[test]
    fn a_child_follows_its_parent_but_not_the_reverse() {
        let run = CancelToken::new();
        let passes = run.child();
        passes.cancel();
        assert!(passes.is_cancelled() && !run.is_cancelled());
        let passes = run.child();
        assert!(!passes.is_cancelled());
        run.cancel_because("the lease was lost");
        assert!(passes.is_cancelled());
        let e = passes.check().unwrap_err().to_string();
        assert!(e.contains("the lease was lost"), "{e}");
    }
}
