//! Files engine: the paths listed in a paths file, archived into one
//! compressed tarball.
//!
//! A missing path (or a missing paths file) is reported (log and manifest)
//! and skipped; it never aborts the backup, matching the original
//! container's behaviour.
//!
//! The restore is all or nothing: the tarball is extracted into a hidden
//! temporary folder created inside the target folder (so it is on the same
//! filesystem, even when the target is a mount point), while its compressed
//! bytes are hashed. Only when the whole archive extracted and its size and
//! SHA-256 match the manifest are the extracted entries renamed into the
//! target. Any failure (a corrupted artifact, an entry escaping the target
//! through a symlink or `..`, a special file such as a FIFO, a full disk)
//! removes the temporary folder: nothing is restored (see [`super::untar`]).
//! The whole restore holds the target's lock
//! ([`crate::base::restore_lock`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use maintenance_proto::Artifact;

use super::{
    DrillJob, Drilled, Engine, EngineContext, EngineKind, EngineOutput, RestoreJob, Staged,
};
use crate::compress::open_decoded;
use crate::config::Config;
use crate::crypt::Identities;
use crate::readback::Readback;

/// The files engine, as registered.
#[derive(Debug, Clone, Copy)]
pub struct Files;

impl EngineKind for Files {
    fn name(&self) -> &'static str {
        "files"
    }

    fn configured(&self, cfg: &Config) -> Option<Box<dyn Engine>> {
        let paths_file = cfg.files.paths_file.as_ref()?;
        Some(Box::new(FilesEngine::new(paths_file.clone())))
    }

    fn content_check(&self) -> &'static str {
        "tar listing"
    }

    fn online_refusals(&self, _cfg: &Config) -> anyhow::Result<Vec<String>> {
        // The listed files are archived as they are read, with or without
        // a coordinator: the online mode has nothing more to refuse.
        Ok(Vec::new())
    }

    fn check_artifact(&self, path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
        check_artifact(path, keys)
    }

    fn restore(&self, job: &RestoreJob<'_>) -> anyhow::Result<String> {
        let to = job
            .opts
            .to
            .as_deref()
            .context("a files restore needs --to DIR")?;
        restore(job.path, job.artifact, to, job.opts.force, job.keys())
    }

    fn drill(&self, job: &DrillJob<'_>) -> anyhow::Result<Drilled> {
        let t = Instant::now();
        let to = job.work.join("files");
        restore(job.path, job.artifact, &to, false, job.keys)?;
        let decompress_secs = t.elapsed().as_secs_f64();
        let bytes = crate::base::fs::tree_size(&to);
        Ok(Drilled {
            line: format!("{}: extracted {bytes} bytes, sha256 ok", job.artifact.path),
            decompress_secs,
            check_secs: 0.0,
            bytes,
        })
    }
}

/// Archives the paths listed in a file.
#[derive(Debug, Clone)]
pub struct FilesEngine {
    paths_file: PathBuf,
}

/// Reads a paths file: one path per line, `#` comments and blank lines
/// ignored.
pub fn read_paths_file(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read paths file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect())
}

impl FilesEngine {
    /// An engine for the list in `paths_file`.
    pub fn new(paths_file: PathBuf) -> Self {
        FilesEngine { paths_file }
    }
}

fn archive_name(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from("root")
    } else {
        rel
    }
}

impl Engine for FilesEngine {
    fn name(&self) -> &'static str {
        "files"
    }

    fn snapshot(&self, ctx: &EngineContext) -> anyhow::Result<Staged> {
        if !self.paths_file.exists() {
            // Compose files default BACKUP_PATHS_FILE to a file the operator
            // may never create: report it like a missing path.
            tracing::warn!(
                "files: paths file {} not found, no files archived",
                self.paths_file.display()
            );
            return Ok(Staged {
                missing: vec![self.paths_file.display().to_string()],
                ..Staged::default()
            });
        }
        let paths = read_paths_file(&self.paths_file)?;
        let writer = ctx.artifact("files.tar")?;
        let mut tar = tar::Builder::new(writer);
        tar.follow_symlinks(false);
        let mut missing = Vec::new();
        let mut added = 0usize;
        for path in &paths {
            ctx.cancel.check()?;
            let meta = match std::fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(_) => {
                    tracing::warn!("files: {} not found, skipped", path.display());
                    missing.push(path.display().to_string());
                    continue;
                }
            };
            let name = archive_name(path);
            if meta.is_dir() {
                tar.append_dir_all(&name, path)
            } else {
                tar.append_path_with_name(path, &name)
            }
            .with_context(|| format!("archive {}", path.display()))?;
            tracing::info!("files: added {}", path.display());
            added += 1;
        }
        let written = tar
            .into_inner()?
            .finish()
            .context("finish files artifact")?;
        tracing::info!("files: {added} paths archived, {} not found", missing.len());
        Ok(Staged {
            artifacts: vec![written],
            missing,
            ..Staged::default()
        })
    }

    fn finish(&self, _ctx: &EngineContext, staged: Staged) -> anyhow::Result<EngineOutput> {
        Ok(EngineOutput {
            engine: "files",
            artifacts: staged.artifacts,
            missing: staged.missing,
        })
    }

    fn tool_version(&self) -> Option<String> {
        None
    }
}

/// Lists every entry of a tarball artifact (decoding it fully).
pub fn check_artifact(path: &Path, keys: Option<&Identities>) -> anyhow::Result<String> {
    let mut archive = tar::Archive::new(open_decoded(path, keys)?);
    let mut count = 0usize;
    for entry in archive
        .entries()
        .with_context(|| format!("read tar {}", path.display()))?
    {
        let mut entry = entry.with_context(|| format!("read tar {}", path.display()))?;
        std::io::copy(&mut entry, &mut std::io::sink())?;
        count += 1;
    }
    Ok(format!("{count} tar entries listed"))
}

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
    // Held to the end: the emptiness check and the move into place.
    let _lock = crate::base::restore_lock::RestoreLock::acquire(to)?;
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
    super::untar::unpack_strict(&mut decoded, staging.path(), &artifact.path).with_context(
        || {
            format!(
                "extract {} (nothing was restored into {})",
                artifact.path,
                to.display()
            )
        },
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_file_skips_comments_and_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("paths");
        std::fs::write(&f, "# c\n\n /a \n#x\n/b/c\n").unwrap();
        assert_eq!(
            read_paths_file(&f).unwrap(),
            vec![PathBuf::from("/a"), PathBuf::from("/b/c")]
        );
    }
}
