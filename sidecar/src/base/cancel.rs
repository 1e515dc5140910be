//! A cancellation flag shared between the heartbeat task and the engines.
//!
//! When the lease is lost the backup must stop at once and publish nothing;
//! the engines' copy loops check this flag between chunks. A backup whose
//! passes run side by side gives them a [`CancelToken::child`]: cancelled
//! by the lease like its parent, and also by the first pass that fails, so
//! the others stop too without cancelling the whole run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Cheaply clonable flag; all clones see the same state.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    parent: Option<Arc<CancelToken>>,
}

impl CancelToken {
    /// A flag that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token cancelled when this one is, or on its own (which leaves this
    /// one untouched).
    pub fn child(&self) -> CancelToken {
        CancelToken {
            flag: Arc::default(),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// True once cancelled (or once an ancestor is).
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_follows_its_parent_but_not_the_reverse() {
        let run = CancelToken::new();
        let passes = run.child();
        passes.cancel();
        assert!(passes.is_cancelled() && !run.is_cancelled());
        let passes = run.child();
        assert!(!passes.is_cancelled());
        run.cancel();
        assert!(passes.is_cancelled() && passes.check().is_err());
    }
}
