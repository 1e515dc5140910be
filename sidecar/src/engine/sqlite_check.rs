//! Checks of a SQLite file opened on a connection of its own: the
//! immutable open every check uses, and `PRAGMA integrity_check` /
//! `quick_check` (errors unless "ok"), optionally stopped by a cancellation
//! token (the pinned source's check, minutes at 16 GiB).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};

use crate::base::cancel::CancelToken;
use crate::base::read_pace::{thread_disk_reads, ReadPace};

/// Opens a private database file read-only with `immutable=1`: no locks and,
/// above all, no `-wal`/`-shm` files created beside it (a plain read-only
/// open of a WAL database creates both). Only for files no one else writes
/// (a restore's or verify's own temporary copy).
pub fn open_immutable(path: &Path) -> anyhow::Result<Connection> {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .with_context(|| format!("open {}", path.display()))
}

/// Virtual machine steps of a check between two looks at its cancellation.
pub const CHECK_STEPS: i32 = 100_000;

/// The same for a paced check. `integrity_check` counts a step per page it
/// checks, so [`CHECK_STEPS`] would let it read 400 MB of 4 KiB pages at
/// the disk's full speed between two looks at its pace, in bursts the
/// tracker's I/O would queue behind; a thousand pages (4 MB) keep it
/// steady, for one small `/proc` read each.
pub const PACED_CHECK_STEPS: i32 = 1_000;

/// Runs `PRAGMA <pragma>` on `path`; errors unless "ok". With `cancel`, the
/// check stops once it is cancelled (looked at every [`CHECK_STEPS`]
/// steps, or at every step after sleeping `pause`, a test setting); with
/// `pace`, it waits there too whenever what the disk delivered to its
/// thread runs ahead of the pace it shares with the other readers.
pub(super) fn pragma_check(
    path: &Path,
    pragma: &str,
    cancel: Option<&CancelToken>,
    pause: Option<Duration>,
    pace: Option<ReadPace>,
) -> anyhow::Result<()> {
    let mut conn = open_immutable(path)?;
    if let Some(cancel) = cancel {
        let watch = cancel.clone();
        let mut paced = pace.and_then(|pace| Some((pace, thread_disk_reads()?)));
        let steps = match (pause, &paced) {
            (Some(_), _) => 1,
            (None, Some(_)) => PACED_CHECK_STEPS,
            (None, None) => CHECK_STEPS,
        };
        conn.progress_handler(
            steps,
            Some(move || {
                if let Some(p) = pause {
                    std::thread::sleep(p);
                }
                if let Some((pace, counted)) = paced.as_mut() {
                    let now = thread_disk_reads().unwrap_or(*counted);
                    let wait = pace.add(now.saturating_sub(*counted));
                    *counted = now;
                    watch.sleep(wait);
                }
                watch.is_cancelled()
            }),
        )?;
    }
    let rows: Result<Vec<String>, _> = conn
        .prepare(&format!("PRAGMA {pragma}"))?
        .query_map([], |r| r.get(0))?
        .collect();
    if let Some(cancel) = cancel {
        cancel.check()?;
    }
    let rows = rows.with_context(|| format!("PRAGMA {pragma}"))?;
    if rows != ["ok"] {
        bail!("{pragma} of {} failed: {}", path.display(), rows.join("; "));
    }
    Ok(())
}

/// Runs `PRAGMA integrity_check` on a database file; errors unless "ok".
pub fn integrity_check(path: &Path) -> anyhow::Result<()> {
    pragma_check(path, "integrity_check", None, None, None)
}

/// Runs `PRAGMA quick_check` (every page and record, but not the indexes
/// against their tables); errors unless "ok".
pub fn quick_check(path: &Path) -> anyhow::Result<()> {
    pragma_check(path, "quick_check", None, None, None)
}
