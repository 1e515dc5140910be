//! The services behind the operator commands: verify, restore and drill a
//! backup folder, and find the folder a command names.

pub mod drill;
pub mod restore;
pub mod verify;

use std::path::{Path, PathBuf};

/// True when `dir` holds something named `manifest.json`, of any kind: a
/// link or a FIFO there is refused by name when the manifest is read, not
/// taken for a missing manifest.
fn has_manifest(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(crate::manifest::FILE_NAME)).is_ok()
}

/// Resolves a backup argument: a folder path, a folder name inside the
/// backup dir, or `latest`.
pub fn resolve_backup(backup_dir: &Path, arg: &str) -> anyhow::Result<PathBuf> {
    let direct = PathBuf::from(arg);
    let candidate = if has_manifest(&direct) {
        direct
    } else {
        backup_dir.join(arg)
    };
    let resolved = std::fs::canonicalize(&candidate).map_err(|e| {
        anyhow::anyhow!(
            "backup {arg:?} not found (looked at {} and {}): {e}",
            arg,
            candidate.display()
        )
    })?;
    anyhow::ensure!(
        has_manifest(&resolved),
        "{} has no {}",
        resolved.display(),
        crate::manifest::FILE_NAME
    );
    Ok(resolved)
}
