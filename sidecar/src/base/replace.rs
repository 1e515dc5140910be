//! Atomic replacement of one file (a restored SQLite database).
//!
//! The new content is written to a temporary file created exclusively, under
//! an unpredictable name, beside the target (same filesystem, so the final
//! rename is atomic). The name carries its owner and the target's name
//! (`<prefix><host>-<pid>-<random>-<target name>`, see
//! [`crate::base::temp`]), so what a killed process left can be swept. The temporary file gets the mode and owner of the file
//! it will replace, or, when there is none, the owner of the folder and the
//! folder's read/write bits, so a restore never locks the tracker out of its
//! own database. It is fsynced, renamed over the target and the folder is
//! fsynced. Until the rename, the target is untouched; dropping an
//! uncommitted [`Replacement`] removes the temporary file.

use std::fs::{File, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::base::fs::parent_dir;

/// The temporaries a killed replacement of `target` under `prefix` left
/// beside it (`<prefix><host>-<pid>-<random>-<file name>`, with any
/// companions such as SQLite's `-wal`), once their process is gone; sorted.
pub fn leftovers(target: &Path, prefix: &str) -> Vec<PathBuf> {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    crate::base::temp::abandoned_in(&parent_dir(target), prefix, |rest| {
        rest == name
            || rest
                .strip_prefix(name.as_str())
                .is_some_and(|s| s.starts_with('-'))
    })
}

/// A file being written that will atomically replace `target`.
pub struct Replacement {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl Replacement {
    /// Creates the temporary file `<dir>/<prefix><host>-<pid>-XXXXXX-<name>`
    /// for `target`, with the mode and owner the result must have.
    pub fn create(target: &Path, prefix: &str) -> anyhow::Result<Replacement> {
        let dir = parent_dir(target);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (mode, uid, gid, from) = match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{} is a symbolic link; pass the path of the database file itself",
                target.display()
            ),
            Ok(m) if !m.is_file() => bail!("{} is not a regular file", target.display()),
            Ok(m) => (m.mode() & 0o7777, m.uid(), m.gid(), target.to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let m = std::fs::metadata(&dir)
                    .with_context(|| format!("inspect folder {}", dir.display()))?;
                (m.mode() & 0o666, m.uid(), m.gid(), dir.clone())
            }
            Err(e) => return Err(e).with_context(|| format!("inspect {}", target.display())),
        };
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let tmp = tempfile::Builder::new()
            .prefix(&crate::base::temp::prefix(prefix))
            .suffix(&format!("-{name}"))
            .tempfile_in(&dir)
            .with_context(|| format!("create a temporary file in {}", dir.display()))?;
        let file = tmp.as_file();
        let current = file.metadata()?;
        if current.uid() != uid || current.gid() != gid {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid)).with_context(|| {
                format!(
                    "give the restored file the owner {uid}:{gid} of {} \
                     (run the restore as that user or as root)",
                    from.display()
                )
            })?;
        }
        file.set_permissions(Permissions::from_mode(mode))
            .with_context(|| format!("set mode {mode:o} on {}", tmp.path().display()))?;
        Ok(Replacement {
            tmp,
            target: target.to_owned(),
            dir,
        })
    }

    /// Path of the temporary file (to check it before committing).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The temporary file, to write the new content into.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Fsyncs the new content, removes the given stale companions of the
    /// target (`<target><suffix>`, such as an old database's `-wal`), renames
    /// the temporary file over the target and fsyncs the folder.
    pub fn commit(self, stale_suffixes: &[&str]) -> anyhow::Result<()> {
        self.tmp.as_file().sync_all()?;
        for suffix in stale_suffixes {
            let mut side = self.target.as_os_str().to_owned();
            side.push(suffix);
            let side = PathBuf::from(side);
            if side.exists() {
                tracing::warn!("removing stale {}", side.display());
                std::fs::remove_file(&side)
                    .with_context(|| format!("remove stale {}", side.display()))?;
            }
        }
        self.tmp
            .persist(&self.target)
            .map_err(|e| e.error)
            .with_context(|| format!("rename the restored file to {}", self.target.display()))?;
        crate::base::fs::sync_dir(&self.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_the_mode_of_the_replaced_file_and_cleans_up_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("db");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o640)).unwrap();

        let dropped = Replacement::create(&target, ".restore-").unwrap();
        let tmp = dropped.path().to_owned();
        drop(dropped);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"old");

        let mut r = Replacement::create(&target, ".restore-").unwrap();
        r.file().write_all(b"new").unwrap();
        r.commit(&[]).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let mode = std::fs::metadata(&target).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_a_symlink_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("db");
        std::os::unix::fs::symlink("elsewhere", &link).unwrap();
        let err = Replacement::create(&link, ".restore-").err().unwrap();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
    }
}
