//! Files-engine restore: all or nothing.
//!
//! The tarball is extracted into a hidden temporary folder created inside
//! the target folder (so it is on the same filesystem, even when the target
//! is a mount point), while its compressed bytes are hashed. Only when the
//! whole archive extracted and its size and SHA-256 match the manifest are
//! the extracted entries renamed into the target. Any failure (a corrupted
//! artifact, an entry escaping the target through a symlink, a full disk)
//! removes the temporary folder: nothing is restored.

use std::path::Path;

use anyhow::{bail, Context};
use maintenance_proto::Artifact;

use crate::readback::Readback;

/// Extracts the files artifact at `path` into the folder `to`; refuses a
/// non-empty `to` unless `force` (then extracted entries replace same-named
/// files and merge into same-named folders).
pub fn restore(
    path: &Path,
    artifact: &Artifact,
    to: &Path,
    force: bool,
    keys: Option<&crate::crypt::Identities>,
) -> anyhow::Result<String> {
    // What a killed restore into this folder left would make it look
    // non-empty.
    crate::base::temp::remove(&crate::base::temp::abandoned_in(
        to,
        crate::base::temp::RESTORE_PREFIX,
        |_| true,
    ));
    let non_empty = std::fs::read_dir(to)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        bail!(
            "{} is not empty; refusing to extract into it without --force",
            to.display()
        );
    }
    let created = !to.exists();
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    let result = extract_then_move(path, artifact, to, keys);
    if result.is_err() && created {
        let _ = std::fs::remove_dir(to);
    }
    result?;
    Ok(format!("extracted files into {}", to.display()))
}

fn extract_then_move(
    path: &Path,
    artifact: &Artifact,
    to: &Path,
    keys: Option<&crate::crypt::Identities>,
) -> anyhow::Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(&crate::base::temp::prefix(
            crate::base::temp::RESTORE_PREFIX,
        ))
        .tempdir_in(to)
        .with_context(|| format!("create a temporary folder in {}", to.display()))?;
    let mut decoded = Readback::open(path, artifact, keys)?;
    tar::Archive::new(&mut decoded)
        .unpack(staging.path())
        .with_context(|| {
            format!(
                "extract {} (nothing was restored into {})",
                artifact.path,
                to.display()
            )
        })?;
    decoded.finish()?;
    move_into(staging.path(), to)?;
    crate::base::fs::sync_dir(to)?;
    Ok(())
}

/// Renames every entry of `from` into `to`, merging folders that exist in
/// both.
fn move_into(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let src_is_dir = entry.file_type()?.is_dir();
        let dest_meta = std::fs::symlink_metadata(&dest).ok();
        if src_is_dir && dest_meta.as_ref().is_some_and(|m| m.is_dir()) {
            move_into(&entry.path(), &dest)?;
            continue;
        }
        if dest_meta.is_some_and(|m| m.is_dir()) {
            bail!(
                "{} is a folder in the target but not in the backup; remove it first",
                dest.display()
            );
        }
        std::fs::rename(entry.path(), &dest)
            .with_context(|| format!("move {} into place", dest.display()))?;
    }
    Ok(())
}
