//! `list`: a table of the backups in the backup dir with age, size and
//! status, newest first.

use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::progress::mib;
use crate::retention::scan;

/// Formats an age as `3d 4h`, `5h 2m` or `42s`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Renders the table.
pub fn table(root: &Path, now: DateTime<Utc>) -> anyhow::Result<String> {
    let latest = std::fs::read_link(root.join(crate::staging::LATEST))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut out = String::new();
    writeln!(out, "{:<44} {:>8} {:>12}  STATUS", "NAME", "AGE", "SIZE")?;
    for e in scan(root)? {
        let mark = if latest.as_deref() == Some(e.name.as_str()) {
            " (latest)"
        } else {
            ""
        };
        match &e.manifest {
            Ok(m) => writeln!(
                out,
                "{:<44} {:>8} {:>12}  {}{mark}",
                e.name,
                age((now - m.started_at).num_seconds()),
                mib(m.total_bytes()),
                if m.verified { "verified" } else { "unverified" }
            )?,
            Err(err) => writeln!(out, "{:<44} {:>8} {:>12}  invalid: {err}", e.name, "-", "-")?,
        }
    }
    Ok(out)
}
