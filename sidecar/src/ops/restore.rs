//! The restore service: picks the artifact of a backup and hands it to its
//! engine ([`crate::engine::EngineKind::restore`]), which puts it back — a SQLite file at a path, a
//! dump into a MySQL/MariaDB or PostgreSQL database, or a tarball into a
//! folder.
//!
//! The `--to` target is checked before any work ([`check_to`]), and the
//! engine holds the target's lock ([`crate::base::restore_lock`]) from its
//! emptiness check to its end, so a second restore of the same target is
//! refused instead of silently replacing the first one's result.
//!
//! It never overwrites something non-empty without `--force`. SQLite and
//! files artifacts are hashed in the same pass that decompresses them into a
//! private temporary location ([`Readback`]); only when size and SHA-256
//! match the manifest (and the content check passed) is the result moved
//! into place, so a failed restore leaves the previous file untouched. A
//! MySQL or PostgreSQL dump is hashed before the import starts, since an
//! import cannot be undone.
//!
//! The SQLite content check: the full `PRAGMA integrity_check` reads every
//! page and every index and dominates restore time on a large database. When
//! the manifest records that this artifact passed `integrity_check` before
//! publishing, a matching SHA-256 proves the bytes are identical to the ones
//! checked, so by default only the cheap [`header_check`] runs; `--check
//! full` (and any manifest without that record) runs the full check.

use std::path::Path;

use anyhow::{bail, ensure};
use maintenance_proto::Artifact;

use crate::config::Config;
use crate::crypt;
use crate::engine::{self, RestoreJob};
pub use crate::engine::{CheckMode, RestoreOptions};
use crate::manifest::Manifest;

/// The one artifact of `manifest` to restore, optionally for `engine`.
pub fn select<'m>(
    manifest: &'m Manifest,
    engine: Option<&str>,
    dir: &Path,
) -> anyhow::Result<&'m Artifact> {
    let candidates: Vec<&Artifact> = manifest
        .artifacts
        .iter()
        .filter(|a| engine.is_none_or(|e| e == a.engine))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no artifact for engine {engine:?} in {}", dir.display()),
        _ => bail!(
            "the backup has several artifacts ({}); choose one with --engine",
            candidates
                .iter()
                .map(|a| a.engine.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Checks a `--to` target before anything is read or decompressed: a path
/// written as a folder (`DIR/`) must be an existing folder (a missing
/// folder's name cannot tell where the file goes). A path without the
/// trailing `/` names the file (SQLite) or folder (files) itself; missing
/// folders above it are created.
pub fn check_to(to: &Path) -> anyhow::Result<()> {
    let as_folder = to.as_os_str().as_encoded_bytes().ends_with(b"/");
    ensure!(
        !as_folder || to.is_dir(),
        "--to {}: no such folder; create it first, or give the path of the file to restore to",
        to.display()
    );
    Ok(())
}

/// Restores one artifact of the backup in `dir`; returns a summary line.
pub fn restore(dir: &Path, opts: &RestoreOptions, cfg: &Config) -> anyhow::Result<String> {
    if let Some(to) = &opts.to {
        check_to(to)?;
    }
    let manifest = Manifest::load(dir)?;
    let artifact = select(&manifest, opts.engine.as_deref(), dir)?;
    let path = dir.join(&artifact.path);
    ensure!(
        opts.identities.is_some() || !crypt::is_encrypted(&path),
        "{} is encrypted with age: restore needs the identity (--identity FILE or BACKUP_AGE_IDENTITY_FILE)",
        artifact.path
    );
    let Ok(kind) = engine::kind(&artifact.engine) else {
        bail!("unknown engine {:?}", artifact.engine);
    };
    kind.restore(&RestoreJob {
        manifest: &manifest,
        artifact,
        path: &path,
        opts,
        cfg,
    })
}
