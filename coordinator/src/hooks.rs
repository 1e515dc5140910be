//! What the tracker plugs into the coordinator.
//!
//! The coordinator knows nothing about databases: when a window opens it
//! asks the tracker to quiesce (write everything pending, make the files
//! consistent on disk, then stop touching them), and when the window ends it
//! asks the tracker to resume. Both run under timeouts the coordinator owns.
//!
//! A tracker may also end its quiesce with a *pin* ([`MaintenanceHooks::pin_mode`]):
//! something that keeps the database's main file frozen (for SQLite, a read
//! transaction taken right after `wal_checkpoint(TRUNCATE)`), so that the
//! coordinator can resume the tracker as soon as a sidecar is ready to
//! read, and drop the pin ([`MaintenanceHooks::unpin`]) once the sidecar has
//! read everything, or the lease, the deadline or an abort ends the window.

pub use maintenance_proto::PinMode;
use maintenance_proto::{AnnouncePolicy, WindowId, WindowSpan};

/// Error a hook returns; its text is recorded in the window's outcome.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The window a hook is called for.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowInfo {
    /// Fencing id of the window.
    pub window_id: WindowId,
    /// When it started and its hard deadline.
    pub span: WindowSpan,
    /// The announce policy in force.
    pub policy: AnnouncePolicy,
}

/// The tracker's side of a window.
///
/// ```
/// use maintenance_coordinator::{HookError, MaintenanceHooks, WindowInfo};
///
/// struct Tracker;
///
/// #[async_trait::async_trait]
/// impl MaintenanceHooks for Tracker {
///     async fn quiesce(&self, _window: &WindowInfo) -> Result<(), HookError> {
///         // flush buffered writes, PRAGMA wal_checkpoint(TRUNCATE), close the db
///         Ok(())
///     }
///     async fn resume(&self, _window: &WindowInfo) -> Result<(), HookError> {
///         // reopen the db
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait MaintenanceHooks: Send + Sync + 'static {
    /// Write every pending change, make the files consistent on disk, and
    /// stop touching the database until [`resume`](Self::resume).
    async fn quiesce(&self, window: &WindowInfo) -> Result<(), HookError>;

    /// The backup is done (or the window ended): reopen the database.
    async fn resume(&self, window: &WindowInfo) -> Result<(), HookError>;

    /// Asked right after a successful [`quiesce`](Self::quiesce): whether
    /// the tracker now holds a pin freezing the database's main file, and
    /// how writes behave under it. `None` (the default) means no pin: the
    /// files stay untouched only until [`resume`](Self::resume).
    fn pin_mode(&self) -> Option<PinMode> {
        None
    }

    /// Drops the pin taken by [`quiesce`](Self::quiesce). Called exactly
    /// once per pin: before [`resume`](Self::resume) when the pin is not
    /// kept, or after it when the sidecar kept the pin while reading.
    async fn unpin(&self, _window: &WindowInfo) -> Result<(), HookError> {
        Ok(())
    }

    /// Bytes in the database's write-ahead log (SQLite: the `-wal` file),
    /// shown in the metrics; it grows while a pin is held.
    fn wal_bytes(&self) -> Option<u64> {
        None
    }
}

/// Hooks that do nothing, for trackers without persistence and for tests.
///
/// ```
/// use std::sync::Arc;
/// use maintenance_coordinator::{MaintenanceHooks, NoopHooks};
/// let hooks: Arc<dyn MaintenanceHooks> = Arc::new(NoopHooks);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopHooks;

#[async_trait::async_trait]
impl MaintenanceHooks for NoopHooks {
    async fn quiesce(&self, _window: &WindowInfo) -> Result<(), HookError> {
        Ok(())
    }

    async fn resume(&self, _window: &WindowInfo) -> Result<(), HookError> {
        Ok(())
    }
}
