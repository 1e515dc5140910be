//! What unfinished uploads (a killed sidecar, a lost mount) left on a
//! `file://` remote: object_store's staging files `<object>#<n>`, which an
//! object listing never shows, yet they take space and tell how old an
//! incomplete backup really is. Found by walking the folder.
//!
//! `prune --remote` counts them in an incomplete backup's age and size, and
//! removes them with the backup once the grace period has passed, or on
//! their own once older than the grace period (a killed upload that a later
//! `push` completed). On S3 an unfinished multipart upload is invisible to
//! a listing; a bucket lifecycle rule (`AbortIncompleteMultipartUpload`)
//! removes it (see the README).

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::Remote;

/// One unfinished upload's leftovers.
#[derive(Debug, Clone)]
pub struct Part {
    /// The backup (folder under the prefix) it belongs to.
    pub backup: String,
    /// The staging file, relative to the remote's folder, for reports.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// When the upload last wrote to it.
    pub started: DateTime<Utc>,
    path: PathBuf,
}

/// Every unfinished upload's staging file (none on a remote other than
/// `file://`).
pub async fn list(remote: &Remote) -> anyhow::Result<Vec<Part>> {
    match remote.file_root() {
        Some(root) => {
            let root = root.to_owned();
            tokio::task::spawn_blocking(move || list_files(&root)).await?
        }
        None => Ok(Vec::new()),
    }
}

/// Removes one unfinished upload's staging file.
pub fn remove(part: &Part) -> anyhow::Result<()> {
    match std::fs::remove_file(&part.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("remove {}", part.path.display())),
    }
}

/// The backup a path relative to the remote's folder belongs to.
fn backup_of(rest: &str) -> Option<String> {
    let (backup, file) = rest.split_once('/')?;
    (!backup.is_empty() && !file.is_empty()).then(|| backup.to_owned())
}

fn list_files(root: &std::path::Path) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("read {}", folder.display())),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            let path = entry.path();
            if meta.is_dir() {
                folders.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !meta.is_file() || !name.contains('#') {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let Some(backup) = backup_of(&rel) else {
                continue;
            };
            parts.push(Part {
                backup,
                name: rel,
                bytes: meta.len(),
                started: meta.modified().map(DateTime::<Utc>::from)?,
                path,
            });
        }
    }
    Ok(parts)
}
