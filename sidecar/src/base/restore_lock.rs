//! One restore per target at a time: a lock file beside the target.
//!
//! A restore refuses a non-empty target without `--force`, but two restores
//! started together both saw it empty, and the later one silently replaced
//! the earlier one's different backup. So a restore first takes an
//! exclusive `flock` on `.<target name>.restore-lock` in the target's
//! folder, without waiting: a second restore of the same target is refused
//! with a message naming the lock, and the emptiness check runs under the
//! lock. The lock file is removed when the restore ends (or by the next
//! restore: a killed one leaves a file that nobody holds). Taking the lock
//! re-checks that the path still names the locked file, so a lock file
//! removed by its previous holder in between is never trusted.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::temp::LOCK_SUFFIX;

/// A held lock on a restore target; released (and its file removed) on
/// drop.
pub struct RestoreLock {
    path: PathBuf,
    _file: File,
}

/// The lock file of `target`: `.<name>.restore-lock` in its folder.
pub fn lock_path(target: &Path) -> anyhow::Result<PathBuf> {
    let name = target.file_name().with_context(|| {
        format!(
            "{} names no file or folder; give the restore target by its own name",
            target.display()
        )
    })?;
    Ok(super::fs::parent_dir(target).join(format!(".{}{LOCK_SUFFIX}", name.to_string_lossy())))
}

impl RestoreLock {
    /// Takes the lock of `target`, or fails at once when another restore
    /// holds it. The target's folder is created when missing.
    pub fn acquire(target: &Path) -> anyhow::Result<RestoreLock> {
        let path = lock_path(target)?;
        let folder = super::fs::parent_dir(&path);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("create the folder {}", folder.display()))?;
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .with_context(|| format!("create the restore lock {}", path.display()))?;
            // SAFETY: flock on a descriptor owned by `file`.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    bail!(
                        "another restore into {} is running (it holds {}); \
                         wait for it to end, or restore elsewhere",
                        target.display(),
                        path.display()
                    );
                }
                return Err(e).with_context(|| format!("lock {}", path.display()));
            }
            // The previous holder may have removed the file between our
            // open and our lock: then the lock is on an orphan; start over.
            let held = file.metadata()?;
            match std::fs::symlink_metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(RestoreLock { path, _file: file });
                }
                _ => continue,
            }
        }
    }
}

impl Drop for RestoreLock {
    fn drop(&mut self) {
        // Removed while still held, so no other restore can lock this
        // file after it is gone from the folder.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("tracker.db");
        let first = RestoreLock::acquire(&target).unwrap();
        assert!(dir.path().join(".tracker.db.restore-lock").exists());
        let err = RestoreLock::acquire(&target).err().unwrap().to_string();
        assert!(err.contains("another restore into"), "{err}");
        drop(first);
        assert!(!dir.path().join(".tracker.db.restore-lock").exists());
        let _again = RestoreLock::acquire(&target).unwrap();
    }
}
