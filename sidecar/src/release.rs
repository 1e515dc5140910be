//! `release` and `unpin` of one claimed window, over HTTP: the steps the
//! coordinated side of [`crate::backup::Release`] (`fleet/release.rs`) takes for
//! each tracker instance, concurrently.
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

use crate::client::{ClientError, Coordinator};

/// Attempts of `unpin` while the coordinator is unreachable.
const UNPIN_ATTEMPTS: u32 = 5;

/// Releases `window`: the tracker resumes. Returns whether the pin is kept
/// (only asked with `keep_pin`). A 409 (the window ended) is an error; so
/// is any failure with `keep_pin` (the pin could not be confirmed). Other
/// failures are logged: the tracker resumes when the window completes.
pub async fn release(
    coord: &Coordinator,
    window: &WindowId,
    keep_pin: bool,
) -> anyhow::Result<bool> {
    match coord.release(window, keep_pin).await {
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
            tracing::warn!("release failed ({e}); the tracker resumes when the window completes");
            Ok(false)
        }
    }
}

/// Unpins `window` after the last byte was read, retrying a few times
/// while the coordinator is unreachable; an error means the read is not
/// proven consistent.
pub async fn unpin(coord: &Coordinator, window: &WindowId) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=UNPIN_ATTEMPTS {
        match coord.unpin(window).await {
            Ok(done) => {
                tracing::info!(
                    "window {window}: pin held for {:.1} s, through the whole read; unpinned",
                    done.held_secs
                );
                return Ok(());
            }
            Err(e @ ClientError::Unreachable { .. }) if attempt < UNPIN_ATTEMPTS => {
                tracing::warn!("unpin failed ({e}); retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => anyhow::bail!("unpin refused: {e}"),
        }
    }
    anyhow::bail!("unpin failed {UNPIN_ATTEMPTS} times")
}
