//! The services behind the operator commands: verify, restore and drill a
//! backup folder, and find the folder a command names.

pub mod drill;
pub mod restore;
pub mod verify;

use std::path::{Path, PathBuf};

/// Resolves a backup argument: a folder path, a folder name inside the
/// backup dir, or `latest`.
pub fn resolve_backup(backup_dir: &Path, arg: &str) -> anyhow::Result<PathBuf> {
    let direct = PathBuf::from(arg);
    let candidate = if direct.join(crate::manifest::FILE_NAME).is_file() {
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
        resolved.join(crate::manifest::FILE_NAME).is_file(),
        "{} has no {}",
        resolved.display(),
        crate::manifest::FILE_NAME
    );
    Ok(resolved)
}
