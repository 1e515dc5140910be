//! Temporary names that carry their owner, and the sweep of those a killed
//! process left.
//!
//! Every temporary file or folder the sidecar makes outside a staging
//! folder (verify copies, restore temp files beside the target, drill and
//! remote download folders) is named `<kind><host>-<pid>-<random>[...]`.
//! A later `prune`, or the next restore of the same target, can then tell
//! debris of a process that is gone (on this host: its pid no longer
//! exists) from a file still in use, without guessing from ages. A name
//! from another host (another container sharing the volume) or without an
//! owner is only swept after a day, since its process cannot be checked
//! from here.

use std::path::{Path, PathBuf};

use crate::staging::host_name;

/// Age after which a temporary whose owner cannot be checked is debris.
const UNCHECKABLE_AFTER_SECS: u64 = 24 * 3600;

/// The name prefix of this process's temporaries of `kind` (such as
/// `.restore-`): `<kind><host>-<pid>-`; a random part follows.
pub fn prefix(kind: &str) -> String {
    format!("{kind}{}-{}-", host_name(), std::process::id())
}

/// The owner (host name, process id) recorded in a temporary name of
/// `kind`, or in one of its SQLite companions (`-wal`, `-shm`).
pub fn owner(name: &str, kind: &str) -> Option<(String, u32)> {
    let mut parts = name.strip_prefix(kind)?.splitn(3, '-');
    let host = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((host.to_owned(), pid))
}

/// What follows the random part of an owned name (`<kind><host>-<pid>-<random>-<rest>`).
pub fn tail<'a>(name: &'a str, kind: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(kind)?.splitn(3, '-').nth(2)?;
    Some(rest.split_once('-').map_or("", |(_, t)| t))
}

fn older_than(path: &Path, secs: u64) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default().as_secs() > secs)
        .unwrap_or(false)
}

/// Whether the temporary at `path` with `owner` was abandoned: its process
/// on this host is gone, or (owner elsewhere or unknown) it is over a day
/// old.
pub fn abandoned(path: &Path, owner: Option<(String, u32)>) -> bool {
    match owner {
        Some((host, pid)) if host == host_name() => {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => older_than(path, UNCHECKABLE_AFTER_SECS),
    }
}

/// The abandoned temporaries of `kind` directly in `dir` whose name
/// `matches` (given the part after the random one; names without an owner
/// are not asked), sorted. A missing folder has none.
pub fn abandoned_in(dir: &Path, kind: &str, matches: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = tail(&name, kind);
            let ours = name.starts_with(kind) && rest.is_none_or(&matches);
            (ours && abandoned(&e.path(), owner(&name, kind))).then(|| e.path())
        })
        .collect();
    out.sort();
    out
}

/// Removes `paths` (files or folders), logging each; returns how many went.
pub fn remove(paths: &[PathBuf]) -> usize {
    let mut removed = 0;
    for path in paths {
        let r = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match r {
            Ok(()) => {
                tracing::info!("removed {} (left by a killed process)", path.display());
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner_and_target() {
        let name = format!("{}AbC123-tracker.db", prefix(".restore-"));
        let me = Some((host_name(), std::process::id()));
        assert_eq!(owner(&name, ".restore-"), me);
        assert_eq!(owner(&format!("{name}-wal"), ".restore-"), me);
        assert_eq!(tail(&name, ".restore-"), Some("tracker.db"));
        assert_eq!(
            tail(&format!("{name}-wal"), ".restore-"),
            Some("tracker.db-wal")
        );
        assert_eq!(owner(".restore-AbC123", ".restore-"), None);
        assert_eq!(owner(".verify-h-1-x", ".restore-"), None);
    }

    #[test]
    fn only_a_dead_owner_s_temporaries_are_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_name();
        // A pid above the kernel's pid_max cannot be alive.
        let dead = dir
            .path()
            .join(format!(".restore-{host}-4999999-AbC123-a.db"));
        let mine = dir
            .path()
            .join(format!("{}XyZ789-a.db", prefix(".restore-")));
        let other_target = dir
            .path()
            .join(format!(".restore-{host}-4999999-QwE456-b.db"));
        let foreign_fresh = dir.path().join(".restore-elsewhere-1-RtY000-a.db");
        for p in [&dead, &mine, &other_target, &foreign_fresh] {
            std::fs::write(p, b"x").unwrap();
        }
        let found = abandoned_in(dir.path(), ".restore-", |t| t.starts_with("a.db"));
        assert_eq!(found, vec![dead.clone()]);
        assert_eq!(remove(&found), 1);
        assert!(!dead.exists() && mine.exists() && other_target.exists());
    }
}
