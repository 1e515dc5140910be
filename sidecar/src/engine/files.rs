//! Files engine: the paths listed in a paths file, archived into one
//! compressed tarball.
//!
//! A missing path (or a missing paths file) is reported (log and manifest)
//! and skipped; it never aborts the backup, matching the original
//! container's behaviour.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Engine, EngineContext, EngineOutput, Staged};
use crate::compress::open_decoded;
use crate::crypt::Identities;

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
