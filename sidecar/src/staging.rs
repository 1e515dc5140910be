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

use crate::base::{fs, temp};

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

impl Staging {
    /// Creates `<root>/.staging-<time>-<host>-<pid>`; host and pid let
    /// retention tell a crashed run from one still running elsewhere.
    pub fn create(root: &Path, started: DateTime<Utc>) -> anyhow::Result<Staging> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("create backup dir {}", root.display()))?;
        let dir = root.join(format!(
            "{}{}-{}-{}",
            temp::STAGING_PREFIX,
            started.format("%Y%m%dT%H%M%S%.3fZ"),
            temp::host_name(),
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
        fs::sync_tree(&self.dir).context("fsync staging")?;
        let target = self.root.join(name);
        if target.exists() {
            anyhow::bail!("backup {} already exists", target.display());
        }
        std::fs::rename(&self.dir, &target)
            .with_context(|| format!("publish {}", target.display()))?;
        self.published = true;
        fs::sync_dir(&self.root).context("fsync backup dir")?;
        fs::replace_symlink(Path::new(name), &self.root.join(LATEST))
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
    fn names() {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 26, 3, 0, 1).unwrap();
        assert_eq!(backup_name(t, None), "20261126T030001Z-once");
        assert_eq!(backup_name(t, Some("w/1")), "20261126T030001Z-w_1");
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
