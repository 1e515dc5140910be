//! `release` and `unpin` of a claimed window, over HTTP, from the backup's
//! blocking thread: the coordinated side of [`backup::Release`].
//!
//! With a pin (protocol 2) the release asks the tracker to resume but keep
//! the pin, and the unpin after the last byte is the proof that the read
//! was consistent: the coordinator answers it only when the pin of this
//! window was held without interruption by the instance that owns the
//! window (window ids carry the instance, so a restarted tracker refuses
//! it). Without a pin (a version-1 coordinator, or a tracker whose store
//! takes none) the release comes after the copy, as in protocol 1.

use std::time::Duration;

use maintenance_proto::WindowId;

use crate::backup;
use crate::client::{ClientError, Coordinator};

/// Attempts of `unpin` while the coordinator is unreachable.
const UNPIN_ATTEMPTS: u32 = 5;

/// The release of one claimed window.
pub struct WindowRelease {
    /// Runtime of the HTTP client.
    pub rt: tokio::runtime::Handle,
    /// The coordinator that owns the window.
    pub coord: Coordinator,
    /// The claimed window.
    pub window: WindowId,
    /// The claim offered a pin.
    pub pin_offered: bool,
}

impl backup::Release for WindowRelease {
    fn pin_offered(&self) -> bool {
        self.pin_offered
    }

    fn release(&mut self, keep_pin: bool) -> anyhow::Result<bool> {
        let window = &self.window;
        match self.rt.block_on(self.coord.release(window, keep_pin)) {
            Ok(ack) => {
                tracing::info!(
                    "released window {window}: tracker resumes (state {}){}",
                    ack.state,
                    if ack.pinned {
                        "; the snapshot stays pinned while it is read"
                    } else {
                        ""
                    }
                );
                Ok(ack.pinned)
            }
            Err(e) if e.is_conflict() => Err(anyhow::anyhow!("release refused, lease lost: {e}")),
            Err(e) if keep_pin => Err(anyhow::anyhow!(
                "release failed ({e}); the pin cannot be confirmed, so nothing is read"
            )),
            Err(e) => {
                tracing::warn!(
                    "release failed ({e}); the tracker resumes when the window completes"
                );
                Ok(false)
            }
        }
    }

    fn unpin(&mut self) -> anyhow::Result<()> {
        let window = &self.window;
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=UNPIN_ATTEMPTS {
            match self.rt.block_on(self.coord.unpin(window)) {
                Ok(done) => {
                    tracing::info!(
                        "window {window}: pin held for {:.1} s, through the whole read; unpinned",
                        done.held_secs
                    );
                    return Ok(());
                }
                Err(e @ ClientError::Unreachable { .. }) if attempt < UNPIN_ATTEMPTS => {
                    tracing::warn!("unpin failed ({e}); retrying");
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                Err(e) => anyhow::bail!("unpin refused: {e}"),
            }
        }
        anyhow::bail!("unpin failed {UNPIN_ATTEMPTS} times")
    }
}
