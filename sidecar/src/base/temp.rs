//! Temporary names that carry their owner, and the sweep of those a killed
//! process left.
//!
//! Every temporary name the sidecar uses outside a staging folder is
//! defined here. Temporary files and folders (verify copies, restore temp
//! files beside the target, drill and remote download folders) are named
//! `<kind><host>-<pid>-<random>[...]`.
//! A later `prune`, or the next restore of the same target, can then tell
//! debris of a process that is gone (on this host: its pid no longer
//! exists) from a file still in use, without guessing from ages. A name
//! from another host (another container sharing the volume) or without an
//! owner is only swept after a day, since its process cannot be checked
//! from here. (A restore's lock file, [`LOCK_SUFFIX`], is the one name
//! whose owner is a lock instead.)

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Prefix of the staging folders a backup is built in (in the backup
/// folder's root; `<prefix><time>-<host>-<pid>`, see [`staging_owner`]).
pub const STAGING_PREFIX: &str = ".staging-";

/// Prefix of the temporary files the verify step decompresses into (in the
/// backup root, beside the staging folders).
pub const VERIFY_PREFIX: &str = ".verify-";

/// Prefix of the drill's temporary restore (and download) folders.
pub const DRILL_PREFIX: &str = ".drill-";

/// Prefix of the temporary file the drill record is written through.
pub const DRILL_RECORD_PREFIX: &str = ".last-drill-";

/// Prefix of the folder `restore --remote` downloads into (in the backup
/// folder's root).
pub const REMOTE_RESTORE_PREFIX: &str = ".remote-restore-";

/// Prefix of the folder `verify --remote --identity` downloads into.
pub const REMOTE_VERIFY_PREFIX: &str = ".remote-verify-";

/// Prefix of the temporary files (and folders) a restore writes beside its
/// target before renaming them into place.
pub const RESTORE_PREFIX: &str = ".restore-";

/// Prefix of the temporary file `keygen` writes the identity through.
pub const IDENTITY_PREFIX: &str = ".age-identity-";

/// Suffix of a restore's lock file, `.<target name>.restore-lock` beside
/// the target ([`crate::base::restore_lock`]). It carries no owner: its
/// owner is whoever holds its `flock`. `prune` does not sweep it, since
/// taking the lock to see that nobody holds it could refuse a restore
/// starting at that moment; the next restore of the same target takes a
/// lock file a killed restore left and removes it when it ends.
pub const LOCK_SUFFIX: &str = ".restore-lock";

/// Prefixes of the owned temporaries that commands leave in the backup
/// folder's root while they run.
pub const ROOT_TEMP_KINDS: [&str; 4] = [
    VERIFY_PREFIX,
    DRILL_PREFIX,
    REMOTE_RESTORE_PREFIX,
    REMOTE_VERIFY_PREFIX,
];

/// The temporary name a symlink `link_name` is created under before it is
/// renamed over the old one (`.<link_name>.tmp-<pid>`).
pub fn symlink_temp_name(link_name: &str) -> String {
    format!(".{link_name}.tmp-{}", std::process::id())
}

/// This machine's host name (the container's, in Docker), `-` free.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // or truncates.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() {
        "host".into()
    } else {
        name
    }
}

/// The owner (host name, process id) recorded in a staging folder name.
pub fn staging_owner(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(STAGING_PREFIX)?;
    let (_time, owner) = rest.split_once('-')?;
    let (host, pid) = owner.rsplit_once('-')?;
    Some((host.to_owned(), pid.parse().ok()?))
}

/// The name prefix for this process's verify temp files,
/// `.verify-<host>-<pid>-` (a random part follows), so that retention can
/// tell a file left by a killed process from one still in use.
pub fn verify_prefix() -> String {
    prefix(VERIFY_PREFIX)
}

/// The owner (host name, process id) recorded in a verify temp file name,
/// or in the name of one of its SQLite companions (`-wal`, `-shm`).
pub fn verify_owner(name: &str) -> Option<(String, u32)> {
    owner(name, VERIFY_PREFIX)
}

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

/// A temporary folder `<dir>/<kind><host>-<pid>-*`, removed on drop (and by
/// `prune` when its process was killed).
pub fn dir_under(dir: &Path, kind: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(&prefix(kind))
        .tempdir_in(dir)
        .with_context(|| format!("create a temporary folder in {}", dir.display()))
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
    fn verify_names_carry_their_owner() {
        let name = format!("{}AbC123", verify_prefix());
        let me = Some((host_name(), std::process::id()));
        assert_eq!(verify_owner(&name), me);
        assert_eq!(verify_owner(&format!("{name}-wal")), me);
        assert_eq!(verify_owner(".verify-AbC123"), None);
        assert_eq!(verify_owner(".staging-x-h-1"), None);
    }

    #[test]
    fn staging_names_carry_their_owner() {
        assert_eq!(
            staging_owner(".staging-20261126T030001.000Z-my_host-42"),
            Some(("my_host".to_owned(), 42))
        );
        assert_eq!(staging_owner(".staging-x"), None);
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
