//! A cancellation flag shared between the heartbeat task and the engines.
//!
//! When the lease is lost the backup must stop at once and publish nothing;
//! the engines' copy loops check this flag between chunks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Cheaply clonable flag; all clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A flag that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error when cancelled, for `?` in copy loops.
    pub fn check(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "backup cancelled (lease lost or shutdown)",
            ))
        } else {
            Ok(())
        }
    }
}
