//! The hidden staging folder a backup is built in, and its publication.
//!
//! Nothing a run writes is visible under a backup name until every artifact
//! is verified and fsynced: the folder is renamed into place in one step.
//! On any failure (or a panic) the staging folder is removed when the
//! [`Staging`] value is dropped; folders left by a killed process are swept
//! by retention.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::fsutil;

/// Prefix of staging folder names.
pub const PREFIX: &str = ".staging-";

/// Prefix of the temporary files the verify step decompresses into (in the
/// backup root, beside the staging folders).
pub const VERIFY_PREFIX: &str = ".verify-";

/// Name of the symlink to the newest verified backup.
pub const LATEST: &str = "latest";

/// A staging folder; removed on drop unless published.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    dir: PathBuf,
    published: bool,
}

/// The published folder name for a run started at `started` for `window`.
pub fn backup_name(started: DateTime<Utc>, window: Option<&str>) -> String {
    let label: String = window
        .unwrap_or("once")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{label}", started.format("%Y%m%dT%H%M%SZ"))
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
    let rest = name.strip_prefix(PREFIX)?;
    let (_time, owner) = rest.split_once('-')?;
    let (host, pid) = owner.rsplit_once('-')?;
    Some((host.to_owned(), pid.parse().ok()?))
}

/// The name prefix for this process's verify temp files,
/// `.verify-<host>-<pid>-` (a random part follows), so that retention can
/// tell a file left by a killed process from one still in use.
pub fn verify_prefix() -> String {
    crate::owned_temp::prefix(VERIFY_PREFIX)
}

/// The owner (host name, process id) recorded in a verify temp file name,
/// or in the name of one of its SQLite companions (`-wal`, `-shm`).
pub fn verify_owner(name: &str) -> Option<(String, u32)> {
    crate::owned_temp::owner(name, VERIFY_PREFIX)
}

impl Staging {
    /// Creates `<root>/.staging-<time>-<host>-<pid>`; host and pid let
    /// retention tell a crashed run from one still running elsewhere.
    pub fn create(root: &Path, started: DateTime<Utc>) -> anyhow::Result<Staging> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("create backup dir {}", root.display()))?;
        let dir = root.join(format!(
            "{PREFIX}{}-{}-{}",
            started.format("%Y%m%dT%H%M%S%.3fZ"),
            host_name(),
            std::process::id()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Staging {
            root: root.to_owned(),
            dir,
            published: false,
        })
    }

    /// The staging folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `name`, or `name-2`, `name-3`, ... when a backup of that name exists
    /// (two runs within one second).
    pub fn free_name(&self, name: &str) -> String {
        (1..)
            .map(|i| {
                if i == 1 {
                    name.to_owned()
                } else {
                    format!("{name}-{i}")
                }
            })
            .find(|n| std::fs::symlink_metadata(self.root.join(n)).is_err())
            .expect("an unused name")
    }

    /// Fsyncs everything and renames the folder to `<root>/<name>`, then
    /// points `latest` at it. Returns the published path.
    pub fn publish(mut self, name: &str) -> anyhow::Result<PathBuf> {
        fsutil::sync_tree(&self.dir).context("fsync staging")?;
        let target = self.root.join(name);
        if target.exists() {
            anyhow::bail!("backup {} already exists", target.display());
        }
        std::fs::rename(&self.dir, &target)
            .with_context(|| format!("publish {}", target.display()))?;
        self.published = true;
        fsutil::sync_dir(&self.root).context("fsync backup dir")?;
        fsutil::replace_symlink(Path::new(name), &self.root.join(LATEST))
            .context("update latest symlink")?;
        Ok(target)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("could not remove staging {}: {e}", self.dir.display());
            } else {
                tracing::info!("removed staging {}", self.dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn names() {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 26, 3, 0, 1).unwrap();
        assert_eq!(backup_name(t, None), "20261126T030001Z-once");
        assert_eq!(backup_name(t, Some("w/1")), "20261126T030001Z-w_1");
        assert_eq!(
            staging_owner(".staging-20261126T030001.000Z-my_host-42"),
            Some(("my_host".to_owned(), 42))
        );
        assert_eq!(staging_owner(".staging-x"), None);
    }

    #[test]
    fn dropped_staging_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let s = Staging::create(root.path(), Utc::now()).unwrap();
        let p = s.path().to_owned();
        std::fs::write(p.join("x"), "y").unwrap();
        drop(s);
        assert!(!p.exists());
    }
}
